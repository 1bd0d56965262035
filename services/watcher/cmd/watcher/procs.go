package main

import (
	"fmt"
	"os"
	"runtime"
)

// defaultProcs is how many threads run the watcher's Go code at once
// (GOMAXPROCS) unless --procs or GOMAXPROCS says otherwise. The watcher's
// work is a chain of handoffs, one event at a time: the HTTP/2 reader, the
// watch decoder, the informer's queue, its handlers, the batcher, the
// stream. With a second thread the runtime wakes it for every handoff and
// puts it back to sleep, which at 100 pod changes a second was a third of
// the watcher's CPU. Measured at 5,000 nodes and 100,000 pods: 9.4% of a
// core on one thread, 11.5–12.0% on two; the snapshot build (one thread
// either way) and a 1,000-pod burst's latency were unchanged.
const defaultProcs = 1

// setProcs sets GOMAXPROCS to n (0: the runtime's own choice, the
// container's CPU limit or the machine's cores). GOMAXPROCS, when set,
// wins. It returns the value in force.
func setProcs(n int) (int, error) {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0), nil
	}
	if n < 0 {
		return 0, fmt.Errorf("--procs %d: negative", n)
	}
	if n > 0 {
		runtime.GOMAXPROCS(n)
	}
	return runtime.GOMAXPROCS(0), nil
}
