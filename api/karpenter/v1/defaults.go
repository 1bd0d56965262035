package v1

import "time"

// DefaultExpireAfter is the expireAfter of a NodePool that sets none.
const DefaultExpireAfter = 720 * time.Hour

// SetDefaults fills in what the API server's schema defaults would when the
// NodePool was read from a file rather than from the API server:
// consolidationPolicy WhenEmptyOrUnderutilized, one budget of 10% and
// expireAfter 720h. (consolidateAfter's zero value is already its default,
// 0s.)
func (in *NodePool) SetDefaults() {
	d := &in.Spec.Disruption
	if d.ConsolidationPolicy == "" {
		d.ConsolidationPolicy = ConsolidationPolicyWhenEmptyOrUnderutilized
	}
	if d.Budgets == nil {
		d.Budgets = []Budget{{Nodes: DefaultBudgetNodes}}
	}
	for i := range d.Budgets {
		if d.Budgets[i].Nodes == "" {
			d.Budgets[i].Nodes = DefaultBudgetNodes
		}
	}
	if in.Spec.Template.Spec.ExpireAfter == nil {
		in.Spec.Template.Spec.ExpireAfter = NewDuration(DefaultExpireAfter)
	}
}

// SetDefaults fills in expireAfter (720h) when unset, as the API server
// would.
func (in *NodeClaim) SetDefaults() {
	if in.Spec.ExpireAfter == nil {
		in.Spec.ExpireAfter = NewDuration(DefaultExpireAfter)
	}
}
