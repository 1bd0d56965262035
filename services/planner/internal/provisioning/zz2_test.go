package provisioning_test

import (
	"context"
	"github.com/flotilla-dev/flotilla/services/planner/internal/provisioning"
	"testing"
	"time"
)

func TestZZ2(t *testing.T) {
	for _, n := range []int{5000, 50000} {
		s := workload(n, 2000, mixDiverse, fullCatalog(t), 1)
		st := time.Now()
		p, _ := provisioning.Solve(context.Background(), s)
		t.Log(n, time.Since(st), p.TotalPricePerHour, len(p.NodeClaims), len(p.Unschedulable))
		cnt := map[string]int{}
		for _, u := range p.Unschedulable {
			cnt[u.Reason[:60]]++
		}
		t.Log(cnt)
		if n == 5000 {
			st = time.Now()
			t.Log(len(planErrors(s, p)), planErrors(s, p), time.Since(st))
		}
	}
}
