package consolidation

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// Budget reasons, as NodePool disruption budgets spell them.
const (
	ReasonEmpty         = "Empty"
	ReasonUnderutilized = "Underutilized"
	ReasonDrifted       = "Drifted"
	ReasonExpired       = "Expired"
	ReasonInterrupted   = "Interrupted"
)

// defaultBudget is Karpenter's budget for a NodePool that sets none.
const defaultBudget = "10%"

// allowance is how many more nodes of a pool may be disrupted for a reason
// now, and the budget that sets it.
type allowance struct {
	remaining int
	// budget describes the strictest active budget, e.g. "NodePool
	// default (nodes 0 on schedule @daily for 8h)".
	budget string
}

// unlimited reports whether no budget limits the reason.
func (a allowance) unlimited() bool { return a.remaining == math.MaxInt }

// blockedText is the rejection reason for a node the allowance holds back.
func (a allowance) blockedText() string {
	return fmt.Sprintf("disruption budget %s allows no more now", a.budget)
}

// budgets tracks, per NodePool, how many nodes there are and how many are
// being disrupted (including those the plan being built disrupts), and
// evaluates the pools' budgets at the snapshot's time.
type budgets struct {
	now        time.Time
	total      map[string]int
	disrupting map[string]int
	// changes collects when a budget window opens or closes, per pool and
	// reason, for RecheckAt.
	changes map[string]time.Time
}

func newBudgets(now time.Time) *budgets {
	return &budgets{now: now, total: map[string]int{}, disrupting: map[string]int{}, changes: map[string]time.Time{}}
}

// allowed returns the strictest active budget of pool for reason: the number
// of nodes it allows (a count, or a percentage of the pool's nodes rounded
// up) minus the nodes already being disrupted. A pool without budgets gets
// 10 %, Karpenter's default; a pool whose budgets are all inactive or for
// other reasons is not limited. A budget that does not parse allows nothing,
// and says why.
func (b *budgets) allowed(pool *model.NodePool, reason string) allowance {
	list := pool.Disruption.Budgets
	dflt := len(list) == 0
	if dflt {
		list = []model.DisruptionBudget{{Nodes: defaultBudget}}
	}
	total := b.total[pool.Name]
	best := allowance{remaining: math.MaxInt, budget: fmt.Sprintf("NodePool %s (no active budget for %s)", pool.Name, reason)}
	for i, bd := range list {
		if !appliesTo(bd, reason) {
			continue
		}
		desc := describe(pool.Name, bd, dflt)
		if bd.Schedule != "" {
			sch, err := parseSchedule(bd.Schedule)
			if err != nil {
				return allowance{remaining: 0, budget: fmt.Sprintf("NodePool %s (budget %d is invalid: %v)", pool.Name, i, err)}
			}
			active, change := sch.window(b.now, bd.Duration)
			b.noteChange(pool.Name, reason, change)
			if !active {
				continue
			}
		}
		n, err := budgetNodes(bd.Nodes, total)
		if err != nil {
			return allowance{remaining: 0, budget: fmt.Sprintf("NodePool %s (budget %d is invalid: %v)", pool.Name, i, err)}
		}
		if n < best.remaining {
			best = allowance{remaining: n, budget: desc}
		}
	}
	if !best.unlimited() {
		best.remaining = max(best.remaining-b.disrupting[pool.Name], 0)
	}
	return best
}

func (b *budgets) noteChange(pool, reason string, at time.Time) {
	if at.IsZero() {
		return
	}
	k := pool + "\x00" + reason
	if cur, ok := b.changes[k]; !ok || at.Before(cur) {
		b.changes[k] = at
	}
}

// change returns when pool's budgets for reason change next (zero: never).
func (b *budgets) change(pool, reason string) time.Time {
	return b.changes[pool+"\x00"+reason]
}

// take records n more nodes of pool being disrupted.
func (b *budgets) take(pool string, n int) { b.disrupting[pool] += n }

// describe spells a budget for people: "NodePool default (nodes 0 on
// schedule @daily for 8h, reasons Drifted)".
func describe(pool string, b model.DisruptionBudget, dflt bool) string {
	s := "nodes " + b.Nodes
	if b.Schedule != "" {
		s += fmt.Sprintf(" on schedule %s for %s", b.Schedule, formatDuration(b.Duration))
	}
	if len(b.Reasons) > 0 {
		s += ", reasons " + strings.Join(b.Reasons, ", ")
	}
	if dflt {
		s += ", the default"
	}
	return fmt.Sprintf("NodePool %s (%s)", pool, s)
}

// formatDuration prints 8h0m0s as 8h and 90m as 1h30m.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
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
	spec = strings.TrimSpace(spec)
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
