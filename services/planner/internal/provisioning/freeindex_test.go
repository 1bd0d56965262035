package provisioning

import (
	"math/rand/v2"
	"testing"
)

// TestFreeIndex compares the index with a linear scan on random updates.
func TestFreeIndex(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	var f freeIndex
	const n = 300
	cpu, mem := make([]int64, n), make([]int64, n)
	for i := range n {
		cpu[i], mem[i] = closed, closed
	}
	for step := range 5000 {
		i := r.IntN(n)
		cpu[i], mem[i] = r.Int64N(10)-1, r.Int64N(10)-1
		f.set(i, cpu[i], mem[i])
		c, m, from := r.Int64N(10), r.Int64N(10), r.IntN(n+5)
		want := -1
		for k := from; k < n; k++ {
			if cpu[k] >= c && mem[k] >= m {
				want = k
				break
			}
		}
		if got := f.next(from, c, m); got != want && !(want == -1 && got >= n) {
			t.Fatalf("step %d: next(%d, %d, %d) = %d, want %d", step, from, c, m, got, want)
		}
	}
}
