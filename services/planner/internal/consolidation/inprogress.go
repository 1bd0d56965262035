package consolidation

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// inProgress repeats the disruptions whose replacements the actuator has
// launched (NodeClaims annotated flotilla.dev/replaces) while the nodes they
// replace are not being deleted yet, so the actuator, which drains only once
// every replacement is up, is asked again. Their old nodes count against the
// budgets, and neither the old nodes nor the replacements are candidates for
// anything else.
func (st *state) inProgress(ctx context.Context) error {
	groups := map[string][]*model.NodeClaim{}
	for _, c := range st.s.NodeClaims {
		v := c.Annotations[AnnotationReplaces]
		if v == "" || c.Deleting || launchFailed(c) {
			continue
		}
		var names []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				names = append(names, s)
			}
		}
		slices.Sort(names)
		names = slices.Compact(names)
		key := strings.Join(names, ",")
		groups[key] = append(groups[key], c)
	}
	for _, key := range sortedKeys(groups) {
		if err := ctx.Err(); err != nil {
			return err
		}
		st.repeat(strings.Split(key, ","), groups[key])
	}
	// NodeClaims the actuator began to disrupt (it annotates them with the
	// plan's id first) and whose replacements are not out yet: the
	// actuator carries on by itself; they count against the budgets.
	var held []string
	for _, n := range st.nodes {
		c := st.claims[n.NodeClaim]
		if c == nil || c.Annotations[AnnotationDisruption] == "" || c.Deleting || n.Deleting || st.taken[n.Name] {
			continue
		}
		st.taken[n.Name] = true
		held = append(held, n.Name)
		if c.Annotations[AnnotationDisruptionReason] != ReasonInterrupted {
			st.budgets.take(st.poolOf(n), 1)
		}
	}
	st.work.hold(held, nil)
	return nil
}

// repeat handles one disruption in progress: the NodeClaims it replaces and
// its replacements.
func (st *state) repeat(replaced []string, replacements []*model.NodeClaim) {
	slices.SortFunc(replacements, func(a, b *model.NodeClaim) int { return strings.Compare(a.Name, b.Name) })
	var oldNodes, oldClaims []string
	var pool string
	left, price := false, 0.0
	for _, name := range replaced {
		c := st.claims[name]
		if c == nil {
			continue
		}
		left = true
		n := st.nodeOfClaim[name]
		if n != nil {
			st.taken[n.Name] = true
		}
		if c.Deleting || n != nil && n.Deleting {
			continue // being drained: the actuator carries on, the budget counts it
		}
		oldClaims = append(oldClaims, name)
		if n != nil {
			oldNodes = append(oldNodes, n.Name)
			price += st.nodePrice(n)
		} else {
			price += c.PricePerHour
		}
		if pool == "" {
			pool = c.NodePool
		}
	}
	if !left {
		return // done: the replacements are ordinary nodes now
	}
	var heldNodes, heldClaims []string
	for _, r := range replacements {
		heldClaims = append(heldClaims, r.Name)
		if n := st.nodeOfClaim[r.Name]; n != nil {
			st.protected[n.Name] = true
			heldNodes = append(heldNodes, n.Name)
		}
	}
	st.work.hold(append(heldNodes, oldNodes...), heldClaims)
	if len(oldClaims) == 0 {
		return
	}
	reason := reasonOf(replacements[0].Annotations[AnnotationDisruptionReason])
	if reason == 0 {
		reason = model.DisruptionUnderutilized
	}
	id := replacements[0].Annotations[AnnotationReplacementFor]
	if id == "" {
		id = planID(reason, replaced)
	}
	d := &model.DisruptionPlan{
		ID:         id,
		Reason:     reason,
		NodeClaims: oldClaims,
		Nodes:      oldNodes,
		Budget:     fmt.Sprintf("in progress: replacements %s launched before the drain", strings.Join(heldClaims, ", ")),
	}
	for _, r := range replacements {
		d.Replacements = append(d.Replacements, planFromClaim(r))
		price -= r.PricePerHour
	}
	d.SavingsPerHour = round6(price)
	st.plan.Disruptions = append(st.plan.Disruptions, d)
	if pool != "" && reason != model.DisruptionInterrupted {
		st.budgets.take(pool, len(oldClaims))
	}
}
