// Command clientgo-informer is the client-go peer of kube-persist's bench
// children: a SharedIndexInformer on pods in all namespaces, set up the way
// a controller does (SharedInformerFactory, no resync), that prints one
// JSON line in the shape of kube-persist's ChildReport and exits 0.
//
//	clientgo-informer --server http://127.0.0.1:PORT --probe NS/NAME
//	clientgo-informer --kubeconfig FILE --probe NS/NAME
//
// The *_ns fields are CLOCK_MONOTONIC nanoseconds: main_ns when main starts,
// ready_ns when the informer has synced (HasSynced), first_read_ns after the
// first lookup of the probe in the informer's indexer (client-go has no
// store before sync, so this is right after ready). objects is the indexer
// size at ready, peak_rss_bytes is VmHWM. Extra fields: requests, bytes
// (response bodies), lists and watches up to ready, and client.
//
// Exit status: 0 after the report, 1 on an error, 2 on a bad command line.
package main

import (
	"errors"
	"fmt"
	"os"

	"kube-persist.dev/tests/apiserver/internal/peer"
	"kube-persist.dev/tests/apiserver/internal/report"
)

func main() {
	mainNs := report.NowNs()
	if err := peer.Run(mainNs, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "clientgo-informer:", err)
		var u peer.UsageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
