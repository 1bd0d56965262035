package provisioning_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/provisioning"
)

// cpuTime is the process's user and system CPU time so far; on a shared,
// loaded machine it says more than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSolve solves generated workloads against the full us-east-1
// catalogue: a fifth each of plain pods, zone spread, hostname spread, zone
// affinity and hostname anti-affinity, with 2,000 existing nodes.
func BenchmarkSolve(b *testing.B) {
	its := fullCatalog(b)
	for _, n := range []int{1000, 5000, 50000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			s := workload(n, 2000, mixDiverse, its, 1)
			b.ReportAllocs()
			var nodes int
			var price float64
			peak := watchHeap()
			start := cpuTime()
			for b.Loop() {
				p, err := provisioning.Solve(context.Background(), s)
				if err != nil {
					b.Fatal(err)
				}
				nodes, price = len(p.NodeClaims), p.TotalPricePerHour
			}
			cpu := cpuTime() - start
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "pods/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(nodes), "nodeclaims")
			b.ReportMetric(price, "$/h")
			b.ReportMetric(float64(peak()>>20), "peak-heap-MiB")
		})
	}
}

// watchHeap samples the heap in use until the returned function is called,
// which returns the most it saw.
func watchHeap() func() uint64 {
	done := make(chan struct{})
	var most atomic.Uint64
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > most.Load() {
				most.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		return most.Load()
	}
}
