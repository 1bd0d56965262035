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
	cpu, mem, zones := make([]int64, n), make([]int64, n), make([]uint64, n)
	for i := range n {
		cpu[i], mem[i] = closed, closed
	}
	for step := range 5000 {
		i := r.IntN(n)
		cpu[i], mem[i], zones[i] = r.Int64N(10)-1, r.Int64N(10)-1, 1+r.Uint64N(7)
		f.set(i, cpu[i], mem[i], zones[i])
		c, m, z, from := r.Int64N(10), r.Int64N(10), 1+r.Uint64N(7), r.IntN(n+5)
		want := -1
		for k := from; k < n; k++ {
			if cpu[k] >= c && mem[k] >= m && zones[k]&z != 0 {
				want = k
				break
			}
		}
		if got := f.next(from, c, m, z); got != want && !(want == -1 && got >= n) {
			t.Fatalf("step %d: next(%d, %d, %d, %b) = %d, want %d", step, from, c, m, z, got, want)
		}
	}
}
