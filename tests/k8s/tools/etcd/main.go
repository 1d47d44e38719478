// etcd for the test cluster, built from the etcd server module that
// k8s.io/kubernetes itself pins (Debian's etcd 3.4 is too old for it).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
