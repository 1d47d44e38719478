// tcp-probe: the client of the NetworkPolicy check (j). The project's image
// has no shell and no TCP client besides its services, and nothing can be
// pulled, so the check runs this in a pod of its own image (FROM scratch,
// like the pause image): for each HOST:PORT argument it opens a TCP
// connection and prints one line, "HOST:PORT open" or "HOST:PORT closed
// (reason)", then exits 0. A TCP connect is the question a NetworkPolicy
// answers; no protocol is spoken.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 3*time.Second, "connect timeout per address")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: tcp-probe [-timeout 3s] HOST:PORT...")
		os.Exit(2)
	}
	for _, addr := range flag.Args() {
		conn, err := net.DialTimeout("tcp", addr, *timeout)
		if err != nil {
			fmt.Printf("%s closed (%v)\n", addr, err)
			continue
		}
		conn.Close()
		fmt.Printf("%s open\n", addr)
	}
}
