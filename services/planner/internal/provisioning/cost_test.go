package provisioning_test

import (
	"fmt"
	"testing"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// TestCostNearLowerBound: on workloads without constraints the plan costs
// at most 3 % over the LP lower bound and never more than Karpenter's
// greedy first-fit.
func TestCostNearLowerBound(t *testing.T) {
	t.Parallel()
	its := fullCatalog(t)
	// The 3 % target holds from a thousand pods up, spot or on-demand.
	// With 200 pods whole nodes lose more against the fractional bound
	// (measured: 3.2 %).
	for _, tc := range []struct {
		n      int
		seed   uint64
		spot   bool
		maxGap float64
	}{{200, 1, false, 0.04}, {1000, 2, false, 0.03}, {1000, 3, true, 0.03}, {5000, 4, false, 0.03}} {
		t.Run(fmt.Sprintf("pods=%d/seed=%d/spot=%t", tc.n, tc.seed, tc.spot), func(t *testing.T) {
			t.Parallel()
			if testing.Short() && tc.n > 1000 {
				t.Skip("the LP bound for thousands of pods takes a while")
			}
			s := workload(tc.n, 0, mixPlain, its, tc.seed)
			if !tc.spot {
				s.NodePools[0].Requirements = []model.Requirement{onDemand}
			}
			p := solve(t, s)
			if len(p.Unschedulable) > 0 {
				t.Fatalf("unschedulable: %v", p.Unschedulable[0])
			}
			lb, greedy := lowerBound(s), greedyCost(s)
			gap := p.TotalPricePerHour/lb - 1
			t.Logf("plan $%.4f/h, LP bound $%.4f/h (gap %.2f%%), greedy $%.4f/h (%.1f%% more than the plan), %d nodes",
				p.TotalPricePerHour, lb, 100*gap, greedy, 100*(greedy/p.TotalPricePerHour-1), len(p.NodeClaims))
			if gap > tc.maxGap {
				t.Errorf("plan is %.2f%% over the LP bound, want at most %.0f%%", 100*gap, 100*tc.maxGap)
			}
			if p.TotalPricePerHour > greedy+1e-9 {
				t.Errorf("plan $%.4f/h costs more than greedy first-fit $%.4f/h", p.TotalPricePerHour, greedy)
			}
		})
	}
}
