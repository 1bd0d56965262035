package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"k8s.io/apimachinery/pkg/api/resource"
)

// defaultMemoryLimit is the Go runtime's soft memory limit unless
// --memory-limit or GOMEMLIMIT says otherwise. The runtime lets the heap
// grow to the limit before it collects, and the process's RSS is the heap
// plus about 50 MiB (code, stacks, the collector's own), so the limit sets
// the watcher's RSS: at 5,000 nodes and 100,000 pods the caches hold about
// 140 MiB, and the rest is room for a snapshot being built and sent (with
// less, 220Mi say, the collector runs through the first snapshot's build
// and doubles its time). A larger cluster needs a larger limit (the deploy
// manifests set GOMEMLIMIT from the container's memory limit).
const defaultMemoryLimit = "250Mi"

// setMemoryLimit applies the soft memory limit (a quantity such as "250Mi";
// "0" leaves the heap to GOGC alone). Without it the heap may grow to twice
// what is live before the collector runs, and at 100,000 pods a snapshot
// makes that twice a lot. GOMEMLIMIT, when set, wins. It returns the limit
// in force, in bytes (math.MaxInt64: none).
func setMemoryLimit(limit string) (int64, error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), nil
	}
	q, err := resource.ParseQuantity(limit)
	if err != nil {
		return 0, fmt.Errorf("--memory-limit %q: %w", limit, err)
	}
	n := q.Value()
	if n < 0 {
		return 0, fmt.Errorf("--memory-limit %q: negative", limit)
	}
	if n == 0 {
		return debug.SetMemoryLimit(-1), nil
	}
	debug.SetMemoryLimit(n)
	return n, nil
}
