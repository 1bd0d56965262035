package consolidation

import (
	"context"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// interruptedBudget is the budget field of an interruption's plan.
const interruptedBudget = "none: an interrupted node goes away whatever the disruption budgets say"

// interrupted replaces the nodes the actuator marked interrupted (condition
// Interrupted=True or annotation flotilla.dev/interrupted): one plan per
// NodePool, replacements for the pods (existing room first), ignoring
// budgets, PDBs and do-not-disrupt, since the instance goes away
// regardless. Pods nothing can host do not hold the plan back. The nodes
// still count against their pools' budgets for the voluntary disruptions
// that follow.
func (st *state) interrupted(ctx context.Context) error {
	byPool := map[string][]*model.Node{}
	for _, n := range st.nodes {
		c := st.claims[n.NodeClaim]
		if c == nil || c.Deleting || n.Deleting || st.taken[n.Name] || !isInterrupted(c) {
			continue
		}
		pool := st.poolOf(n)
		byPool[pool] = append(byPool[pool], n)
	}
	for _, pool := range sortedKeys(byPool) {
		t, err := st.try(ctx, byPool[pool], nil)
		if err != nil {
			return err
		}
		st.commitPlan(model.DisruptionInterrupted, pool, interruptedBudget, t, nil)
	}
	return nil
}

// isInterrupted reports whether the actuator marked the NodeClaim
// interrupted.
func isInterrupted(c *model.NodeClaim) bool {
	if c.Annotations[AnnotationInterrupted] != "" {
		return true
	}
	cond, ok := c.Condition(ConditionInterrupted)
	return ok && cond.Status == "True"
}
