package consolidation

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/flotilla-dev/flotilla/services/planner/internal/provisioning"
)

// trial is the provisioning solver's answer for a set of nodes taken away:
// where their pods go.
type trial struct {
	nodes []*model.Node
	// displaced maps the pods that must move to the node each leaves.
	displaced map[string]string
	// moves place displaced pods only: on existing nodes, on capacity in
	// flight, on the new NodeClaims.
	moves []*model.Placement
	// replacements are the new NodeClaims, and the capacity still starting
	// (in-flight NodeClaims, uninitialized nodes) that pods move to, which
	// the actuator must wait for just the same.
	replacements []*model.NodeClaimPlan
	fresh        []*model.NodeClaimPlan
	// newPrice sums the new NodeClaims' prices.
	newPrice float64
	// unplaced lists, per node, its pods nothing can host, with reasons.
	unplaced map[string][]*model.UnschedulablePod
}

// price sums the nodes' prices.
func (t *trial) price(st *state) float64 {
	p := 0.0
	for _, n := range t.nodes {
		p += st.nodePrice(n)
	}
	return p
}

// savings is what the disruption saves per hour.
func (t *trial) savings(st *state) float64 { return round6(t.price(st) - t.newPrice) }

// try runs the provisioning solver on the workspace with the nodes
// cordoned and their pods pending, and the avoided nodes cordoned.
func (st *state) try(ctx context.Context, nodes, avoid []*model.Node) (*trial, error) {
	d, displaced := st.work.derive(nodes, avoid, st.movable)
	sol, err := provisioning.Solve(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("pack displaced pods: %w", err)
	}
	t := &trial{nodes: nodes, displaced: displaced, unplaced: map[string][]*model.UnschedulablePod{}}
	waitFor := map[string]*model.NodeClaimPlan{}
	for _, pl := range sol.Placements {
		var pods []string
		for _, k := range pl.Pods {
			if displaced[k] != "" {
				pods = append(pods, k)
			}
		}
		if len(pods) == 0 {
			continue
		}
		t.moves = append(t.moves, &model.Placement{Node: pl.Node, Pods: pods, InFlight: pl.InFlight})
		if r := st.starting(pl.Node, pl.InFlight); r != nil {
			waitFor[r.Name] = r
		}
	}
	for _, nc := range sol.NodeClaims {
		t.moves = append(t.moves, &model.Placement{Node: nc.Name, Pods: nc.Pods, InFlight: true})
		t.fresh = append(t.fresh, nc)
		t.newPrice += nc.PricePerHour
	}
	t.newPrice = round6(t.newPrice)
	t.replacements = slices.Clone(t.fresh)
	for _, name := range sortedKeys(waitFor) {
		t.replacements = append(t.replacements, waitFor[name])
	}
	slices.SortFunc(t.moves, func(a, b *model.Placement) int { return cmp.Compare(a.Node, b.Node) })
	for _, u := range sol.Unschedulable {
		if from := displaced[u.Pod]; from != "" {
			t.unplaced[from] = append(t.unplaced[from], u)
		}
	}
	return t, nil
}

// starting returns the NodeClaimPlan to wait for when pods move to target:
// an in-flight NodeClaim, or a node whose NodeClaim has not initialized;
// nil for capacity that is up.
func (st *state) starting(target string, inFlight bool) *model.NodeClaimPlan {
	if inFlight {
		if nc := st.claimPlans[target]; nc != nil {
			return nc
		}
		if c := st.claims[target]; c != nil {
			return planFromClaim(c)
		}
		return nil
	}
	n := st.nodeByName[target]
	if n == nil {
		return nil
	}
	c := st.claims[n.NodeClaim]
	if c == nil || n.Ready && initialized(c) {
		return nil
	}
	return planFromClaim(c)
}

// unplacedText explains why the first of a node's pods cannot move.
func unplacedText(us []*model.UnschedulablePod) string {
	u := us[0]
	more := ""
	if len(us) > 1 {
		more = fmt.Sprintf(" (and %d more pods)", len(us)-1)
	}
	return fmt.Sprintf("pod %s could not be placed elsewhere%s: %s", u.Pod, more, u.Reason)
}

// commitPlan appends a disruption to the answer and applies it to the
// workspace: its nodes are taken, the pods' new nodes are busy, the PDB
// evictions and (unless pool is "") the budget are used.
func (st *state) commitPlan(reason model.DisruptionReason, pool, budget string, t *trial, need map[int]int) *model.DisruptionPlan {
	d := &model.DisruptionPlan{Reason: reason, Budget: budget, Moves: t.moves, Replacements: t.replacements}
	for _, n := range t.nodes {
		d.Nodes = append(d.Nodes, n.Name)
		d.NodeClaims = append(d.NodeClaims, n.NodeClaim)
		st.taken[n.Name] = true
	}
	d.SavingsPerHour = t.savings(st)
	d.ID = planID(reason, d.NodeClaims)
	st.plan.Disruptions = append(st.plan.Disruptions, d)
	if pool != "" {
		st.budgets.take(pool, len(t.nodes))
	}
	st.usePDBs(need)
	for _, mv := range t.moves {
		st.busy[mv.Node] = true
	}
	for _, r := range t.fresh {
		st.claimPlans[r.Name] = r
	}
	st.work.commit(d.Nodes, t.displaced, t.moves, t.replacements, st.s.Now)
	return d
}

// nodePrice is the node's price: as reported, else its NodeClaim's, else
// the catalogue's price of its instance type, zone and capacity type.
func (st *state) nodePrice(n *model.Node) float64 {
	if n.PricePerHour > 0 {
		return n.PricePerHour
	}
	if c := st.claims[n.NodeClaim]; c != nil && c.PricePerHour > 0 {
		return c.PricePerHour
	}
	it := st.types[n.Labels[model.LabelInstanceType]]
	if it == nil {
		return 0
	}
	zone, ct := n.Labels[model.LabelZone], n.Labels[model.LabelCapacityType]
	for _, o := range it.Offerings {
		if o.Zone == zone && o.CapacityType == ct {
			return o.PricePerHour
		}
	}
	return 0
}

// capacityType is the node's capacity type: its label, else its
// NodeClaim's.
func (st *state) capacityType(n *model.Node) string {
	if ct := n.Labels[model.LabelCapacityType]; ct != "" {
		return ct
	}
	if c := st.claims[n.NodeClaim]; c != nil {
		return c.CapacityType
	}
	return ""
}

func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// money formats $/h for people: "$0.0030/h".
func money(x float64) string { return fmt.Sprintf("$%.4f/h", x) }
