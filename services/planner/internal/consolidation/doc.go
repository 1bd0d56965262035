// Package consolidation decides which nodes to take away: empty nodes once
// their NodePool's consolidateAfter has passed, always within the NodePool's
// disruption budgets. It is part of the planner's pure solver: model in,
// disruption plans out, deterministic, no clock (the snapshot's Now is the
// time).
package consolidation
