package provisioning_test

import (
	"context"
	"fmt"
	"runtime/metrics"
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
// catalogue: 1,000, 5,000 and 50,000 pending pods, plain (no constraints)
// or constrained (a fifth each of plain pods, zone spread, hostname spread,
// zone affinity and hostname anti-affinity, as Karpenter's benchmark cuts
// them), on an empty cluster and next to 2,000 existing nodes.
func BenchmarkSolve(b *testing.B) {
	its := fullCatalog(b)
	cases := []struct {
		name     string
		m        mix
		existing int
	}{
		{"plain", mixPlain, 0},
		{"constrained", mixDiverse, 0},
		{"constrained+2000nodes", mixDiverse, 2000},
	}
	for _, tc := range cases {
		for _, n := range []int{1000, 5000, 50000} {
			b.Run(fmt.Sprintf("mix=%s/pods=%d", tc.name, n), func(b *testing.B) {
				s := workload(n, tc.existing, tc.m, its, 1)
				b.ReportAllocs()
				var nodes, left int
				var price float64
				peak := watchHeap()
				start := cpuTime()
				for b.Loop() {
					p, err := provisioning.Solve(context.Background(), s)
					if err != nil {
						b.Fatal(err)
					}
					nodes, left, price = len(p.NodeClaims), len(p.Unschedulable), p.TotalPricePerHour
				}
				cpu := cpuTime() - start
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "pods/s")
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(nodes), "nodeclaims")
				b.ReportMetric(float64(left), "unschedulable")
				b.ReportMetric(price, "$/h")
				b.ReportMetric(float64(peak()>>20), "peak-heap-MiB")
			})
		}
	}
}

// watchHeap samples the heap in use until the returned function is called,
// which returns the most it saw. It reads runtime/metrics, which, unlike
// runtime.ReadMemStats, does not stop the world.
func watchHeap() func() uint64 {
	done := make(chan struct{})
	var most atomic.Uint64
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
		for {
			metrics.Read(sample)
			if inUse := sample[0].Value.Uint64() + sample[1].Value.Uint64(); inUse > most.Load() {
				most.Store(inUse)
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
