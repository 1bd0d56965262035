package consolidation

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// Budget reasons, as NodePool disruption budgets spell them.
const (
	ReasonEmpty         = "Empty"
	ReasonUnderutilized = "Underutilized"
	ReasonDrifted       = "Drifted"
	ReasonExpired       = "Expired"
)

// allowance is how many more nodes of a pool may be disrupted for a reason
// now, and the budget that sets it.
type allowance struct {
	remaining int
	budget    string
}

// allowed returns the strictest active budget of pool for reason: the number
// of nodes it allows (a count, or a percentage of total rounded up) minus
// the nodes already being disrupted. A pool without budgets allows 10 %,
// Karpenter's default. Budgets with a schedule are treated as always active
// (the strictest reading) until schedules are evaluated.
func allowed(pool *model.NodePool, reason string, total, disrupting int) (allowance, error) {
	budgets := pool.Disruption.Budgets
	if len(budgets) == 0 {
		budgets = []model.DisruptionBudget{{Nodes: "10%"}}
	}
	best := allowance{remaining: math.MaxInt}
	for i, b := range budgets {
		if !appliesTo(b, reason) {
			continue
		}
		n, err := budgetNodes(b.Nodes, total)
		if err != nil {
			return allowance{}, fmt.Errorf("nodepool %s budget %d: %w", pool.Name, i, err)
		}
		if n < best.remaining {
			best = allowance{remaining: n, budget: fmt.Sprintf("NodePool %s: nodes %s", pool.Name, b.Nodes)}
		}
	}
	if best.remaining == math.MaxInt {
		return allowance{remaining: math.MaxInt, budget: fmt.Sprintf("NodePool %s: no budget for %s", pool.Name, reason)}, nil
	}
	best.remaining = max(best.remaining-disrupting, 0)
	return best, nil
}

func appliesTo(b model.DisruptionBudget, reason string) bool {
	if len(b.Reasons) == 0 {
		return true
	}
	for _, r := range b.Reasons {
		if strings.EqualFold(r, reason) {
			return true
		}
	}
	return false
}

// budgetNodes turns "3" or "10%" of total into a node count; percentages
// round up, so a budget above 0 % always lets one node go.
func budgetNodes(spec string, total int) (int, error) {
	if pct, ok := strings.CutSuffix(spec, "%"); ok {
		p, err := strconv.Atoi(pct)
		if err != nil || p < 0 || p > 100 {
			return 0, fmt.Errorf("nodes %q: want a percentage 0-100%%", spec)
		}
		return (total*p + 99) / 100, nil
	}
	n, err := strconv.Atoi(spec)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("nodes %q: want a count or a percentage", spec)
	}
	return n, nil
}
