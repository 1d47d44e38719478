// tcp-probe: the client of the NetworkPolicy check (j). The project's image
// has no shell and no TCP client besides its services, and nothing can be
// pulled, so the check runs this in a pod of its own image (FROM scratch,
// like the pause image): for each HOST:PORT argument it opens a TCP
// connection and prints one line, "HOST:PORT open" or "HOST:PORT closed
// (reason)", then exits 0. A TCP connect is the question a NetworkPolicy
// answers; no protocol is spoken.
//
// A policy controller learns of a new pod (this one) a moment after it
// starts, so a closed address is tried again, every 250 ms, until it opens
// or -retry has passed: "open" means it opened within that time, "closed"
// that it stayed closed all along. Addresses are probed at once.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 2*time.Second, "connect timeout per attempt")
	retry := flag.Duration("retry", 15*time.Second, "how long a closed address is tried again")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: tcp-probe [-timeout 2s] [-retry 15s] HOST:PORT...")
		os.Exit(2)
	}
	results := make([]string, flag.NArg())
	var wg sync.WaitGroup
	for i, addr := range flag.Args() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = probe(addr, *timeout, *retry)
		}()
	}
	wg.Wait()
	for _, line := range results {
		fmt.Println(line)
	}
}

func probe(addr string, timeout, retry time.Duration) string {
	giveUp := time.Now().Add(retry)
	for {
		conn, err := net.DialTimeout("tcp", addr, timeout)
		if err == nil {
			conn.Close()
			return addr + " open"
		}
		if time.Now().After(giveUp) {
			return fmt.Sprintf("%s closed (%v)", addr, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
