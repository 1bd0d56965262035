package consolidation

import (
	"cmp"
	"context"
	"slices"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// Plan adds disruptions to plan, the provisioning answer for s, and sets
// plan.RecheckAt to the earliest time a time-driven decision changes. In
// order, each step building on the ones before:
//
//  1. disruptions in progress (replacements launched, old nodes not yet
//     deleting) are repeated;
//  2. interrupted nodes are replaced, whatever the budgets;
//  3. empty nodes are deleted once consolidateAfter has passed;
//  4. drifted, then 5. expired nodes are replaced, launching before
//     draining;
//  6. under-utilised nodes of WhenEmptyOrUnderutilized pools are removed
//     or replaced by fewer or cheaper nodes when that saves enough.
//
// Voluntary disruptions stay within the NodePools' budgets and the PDBs,
// skip nodes the plan places pods on, and leave nodes whose pods cannot
// move; every candidate left gets a Rejection saying why.
func Plan(ctx context.Context, s *model.Snapshot, plan *model.Plan, opts Options) error {
	if s == nil || plan == nil {
		return nil
	}
	st := newState(s, plan, opts.withDefaults())
	steps := []func(context.Context) error{st.inProgress, st.interrupted, st.empty, st.drifted, st.expired, st.underutilized}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := step(ctx); err != nil {
			return err
		}
	}
	slices.SortStableFunc(plan.Rejections, func(a, b *model.Rejection) int { return cmp.Compare(a.Node, b.Node) })
	return nil
}
