package consolidation

import (
	"cmp"
	"context"
	"slices"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// empty deletes empty nodes: nodes Flotilla launched that run no pods but
// DaemonSet and mirror pods, receive none in this answer, and have been so
// for their NodePool's consolidateAfter (under either consolidation policy).
// It plans one disruption per NodePool within the pool's budget for the
// Empty reason, the priciest and then the longest-empty nodes first, and
// rejects each empty node the budget or a do-not-disrupt annotation holds
// back.
func (st *state) empty(ctx context.Context) error {
	for _, name := range st.poolNames {
		if err := ctx.Err(); err != nil {
			return err
		}
		pool := st.pools[name]
		if pool.Disruption.ConsolidateNever {
			continue
		}
		var due []*model.Node
		for _, n := range st.nodes {
			c, p, ok := st.managed(n)
			if !ok || p != pool || !st.available(n, c) || st.occupied(n.Name) {
				continue
			}
			if at := since(n).Add(pool.Disruption.ConsolidateAfter); at.After(st.s.Now) {
				st.recheck(at)
				continue
			}
			if why, _ := st.blocker(n, c); why != "" {
				st.reject(n, "empty, but "+why)
				continue
			}
			due = append(due, n)
		}
		if len(due) == 0 {
			continue
		}
		slices.SortFunc(due, func(a, b *model.Node) int {
			return cmp.Or(cmp.Compare(st.nodePrice(b), st.nodePrice(a)), since(a).Compare(since(b)), cmp.Compare(a.Name, b.Name))
		})
		allow := st.budgets.allowed(pool, ReasonEmpty)
		st.recheck(st.budgets.change(pool.Name, ReasonEmpty))
		take := min(allow.remaining, len(due))
		if take > 0 {
			st.commitPlan(model.DisruptionEmpty, pool.Name, allow.budget, &trial{nodes: due[:take]}, nil)
		}
		for _, n := range due[take:] {
			st.reject(n, "empty, but the "+allow.blockedText())
		}
	}
	return nil
}
