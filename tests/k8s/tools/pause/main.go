// The pod sandbox ("pause") image's only program: it holds the pod's
// namespaces open, reaps zombies (it is PID 1 of a pod sharing its PID
// namespace) and exits on SIGTERM or SIGINT. Built static, into an image
// FROM scratch, because no registry can give us registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
