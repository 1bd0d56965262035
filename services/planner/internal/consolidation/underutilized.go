package consolidation

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// Tuning of the estimate that picks which nodes to try.
const (
	// packing is how much more than the pods' value new room for them
	// costs, for the waste of packing real pods onto real instance types.
	packing = 1.15
	// usableRoom is the share of the free room on kept nodes that displaced
	// pods are expected to fill (the rest is fragments too small for them).
	usableRoom = 0.9
)

// candidate is a node the under-utilisation search may take away.
type candidate struct {
	n *model.Node
	c *model.NodeClaim
	// price is what the node costs; value what room for its pods would cost
	// on the pool's best types for them.
	price, value float64
	// req sums the requests of the pods that would move; free is the room
	// left on the node, which other nodes' pods could use if it stays.
	req, free model.Resources
	need      map[int]int
}

// waste is what the node costs beyond what its pods are worth.
func (cd *candidate) waste() float64 { return cd.price - packing*cd.value }

// underutilized consolidates the nodes of every WhenEmptyOrUnderutilized
// NodePool (the policy Karpenter defaults to).
func (st *state) underutilized(ctx context.Context) error {
	for _, name := range st.poolNames {
		pool := st.pools[name]
		if pool.Disruption.ConsolidateNever || pool.Disruption.ConsolidationPolicy == model.ConsolidateWhenEmpty {
			continue
		}
		if err := st.consolidate(ctx, pool); err != nil {
			return err
		}
	}
	return nil
}

// consolidate looks, across every node of the pool at once, for the set of
// nodes whose removal saves the most: their pods move to room on the nodes
// that stay and, for what does not fit, to fewer or cheaper new nodes. It
// ranks the nodes by waste (price less the value of their pods), estimates
// the savings of taking away each prefix of that ranking (the displaced
// pods filling the kept nodes' free room first, new room priced at the
// pool's best rates), and checks the best prefix with the provisioning
// solver; when the check fails it drops the nodes whose pods cannot move,
// or tries half as many nodes, up to Options.MaxSolves runs. A plan is
// emitted only when it saves Options.threshold.
func (st *state) consolidate(ctx context.Context, pool *model.NodePool) error {
	rt := st.ratesOf(pool)
	var cands []*candidate
	// smallest is the least any displaced pod asks in each resource: room
	// smaller than that on a node holds none of them.
	smallest := model.Resources{CPU: math.MaxInt64, Memory: math.MaxInt64, Pods: 1}
	for _, n := range st.nodes {
		c, p, ok := st.managed(n)
		if !ok || p != pool || !st.available(n, c) {
			continue
		}
		pods := st.movable(n.Name)
		if len(pods) == 0 {
			continue // empty: the empty step's
		}
		if at := since(n).Add(pool.Disruption.ConsolidateAfter); at.After(st.s.Now) {
			st.recheck(at)
			continue
		}
		why, need := st.blocker(n, c)
		if why != "" {
			st.reject(n, why)
			continue
		}
		cd := &candidate{n: n, c: c, price: st.nodePrice(n), need: need}
		for _, p := range pods {
			r := p.Requests()
			cd.req = cd.req.Add(r)
			cd.value += rt.value(r)
			smallest.CPU, smallest.Memory = min(smallest.CPU, r.CPU), min(smallest.Memory, r.Memory)
		}
		cd.free = st.freeOn(n)
		cands = append(cands, cd)
	}
	if len(cands) == 0 {
		return nil
	}
	for _, cd := range cands {
		cd.free = roomFor(cd.free, smallest)
	}
	slices.SortFunc(cands, func(a, b *candidate) int {
		return cmp.Or(cmp.Compare(b.waste(), a.waste()), cmp.Compare(a.n.Name, b.n.Name))
	})
	allow := st.budgets.allowed(pool, ReasonUnderutilized)
	st.recheck(st.budgets.change(pool.Name, ReasonUnderutilized))

	// Nodes whose pods' PDBs the nodes ranked before them use up stay, and
	// their room with them.
	room := st.roomOutside(pool, cands, smallest)
	var list []*candidate
	acc := map[int]int{}
	for _, cd := range cands {
		if !st.fitsPDBs(cd.need, acc) {
			st.reject(cd.n, "its pods' PDBs allow no more disruptions with the nodes consolidated before it")
			room = room.Add(cd.free)
			continue
		}
		list = append(list, cd)
		for i, k := range cd.need {
			acc[i] += k
		}
	}
	limit := min(allow.remaining, len(list))
	var chosen, failed *trial
	solves := 0
	for ; solves < st.opts.MaxSolves && limit > 0; solves++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		ests := st.estimates(rt, list, limit, room)
		k := st.bestPrefix(list, ests, limit)
		if k == 0 {
			break
		}
		t, bad, err := st.check(ctx, list[:k])
		if err != nil {
			return err
		}
		if len(bad) > 0 {
			list = slices.DeleteFunc(list, func(cd *candidate) bool {
				why, out := bad[cd.n.Name]
				if out {
					st.reject(cd.n, why)
					room = room.Add(cd.free)
				}
				return out
			})
			limit = min(limit, len(list))
			continue
		}
		if t.savings(st) < st.opts.threshold(t.price(st), len(t.nodes)) {
			failed, limit = t, k/2
			continue
		}
		chosen = t
		// Fewer nodes for about the same savings are fewer evictions: when
		// the nodes beyond a shorter prefix do not seem to carry their
		// weight, check the shorter one too.
		j := st.bestPrefix(list, ests, k-1)
		if j == 0 || solves+1 >= st.opts.MaxSolves || st.marginal(t.savings(st)-ests[j-1], prefixPrice(list, j, k), k-j) {
			break
		}
		solves++
		u, bad, err := st.check(ctx, list[:j])
		if err != nil {
			return err
		}
		if len(bad) == 0 && u.savings(st) >= st.opts.threshold(u.price(st), j) && !st.marginal(t.savings(st)-u.savings(st), prefixPrice(list, j, k), k-j) {
			chosen = u
		}
		break
	}
	in := func(t *trial, n *model.Node) bool { return t != nil && slices.Contains(t.nodes, n) }
	if chosen != nil {
		need := map[int]int{}
		for _, cd := range list {
			if in(chosen, cd.n) {
				for i, k := range cd.need {
					need[i] += k
				}
			}
		}
		st.commitPlan(model.DisruptionUnderutilized, pool.Name, allow.budget, chosen, need)
	}
	for i, cd := range list {
		switch {
		case in(chosen, cd.n):
		case in(failed, cd.n):
			st.reject(cd.n, st.shortfall(failed))
		case i >= allow.remaining && cd.waste() >= st.opts.threshold(cd.price, 1):
			st.reject(cd.n, "under-utilised, but the "+allow.blockedText())
		case cd.waste() >= st.opts.threshold(cd.price, 1) && rt.spot && !st.opts.SpotToSpot && st.capacityType(cd.n) == model.CapacitySpot:
			st.reject(cd.n, "under-utilised, but it is a spot node, its pods do not fit on the nodes that stay, and spot-to-spot consolidation is off (planner flag --spot-to-spot-consolidation)")
		default:
			st.reject(cd.n, fmt.Sprintf("no cheaper place for its pods was found that saves at least %s", st.thresholdText(cd.price, 1)))
		}
	}
	return nil
}

// estimates returns, for every prefix of list up to limit nodes, the
// estimated savings of taking its nodes away: their price, less new room for
// the pods that do not fit in the free room of the nodes that stay (the
// candidates after the prefix, and outside), priced at the pool's rates
// with a packing allowance.
func (st *state) estimates(rt *rates, list []*candidate, limit int, outside model.Resources) []float64 {
	room := outside
	for _, cd := range list {
		room = room.Add(cd.free)
	}
	var demand model.Resources
	price, spot := 0.0, false
	out := make([]float64, limit)
	for k := 1; k <= limit; k++ {
		cd := list[k-1]
		price += cd.price
		demand = demand.Add(cd.req)
		room = room.Sub(cd.free)
		spot = spot || st.capacityType(cd.n) == model.CapacitySpot
		over := func(d, r int64) float64 { return max(0, float64(d)-usableRoom*float64(r)) }
		cost := rt.cost(over(demand.CPU, room.CPU), over(demand.Memory, room.Memory), over(demand.Pods, room.Pods))
		if cost > 0 && spot && rt.spot && !st.opts.SpotToSpot {
			// New room would be spot, and a spot node may not be
			// replaced by spot.
			out[k-1] = math.Inf(-1)
			continue
		}
		out[k-1] = price - packing*cost
	}
	return out
}

// bestPrefix returns how many of the first nodes of list (at most limit) to
// take away for the most estimated savings that pass the threshold, 0 when
// none does. A longer prefix wins only when its extra nodes save the
// threshold share of their own price.
func (st *state) bestPrefix(list []*candidate, ests []float64, limit int) int {
	price, best, bestEst, bestPrice := 0.0, 0, 0.0, 0.0
	for k := 1; k <= limit; k++ {
		price += list[k-1].price
		est := ests[k-1]
		if est < st.opts.threshold(price, k) {
			continue
		}
		if best == 0 || st.marginal(est-bestEst, price-bestPrice, k-best) {
			best, bestEst, bestPrice = k, est, price
		}
	}
	return best
}

// marginal reports whether extra savings justify disrupting n extra nodes
// costing price: they must clear the threshold for those nodes.
func (st *state) marginal(extra, price float64, n int) bool {
	return extra > 0 && extra >= st.opts.threshold(price, n)
}

// prefixPrice sums the prices of list[from:to].
func prefixPrice(list []*candidate, from, to int) float64 {
	p := 0.0
	for _, cd := range list[from:to] {
		p += cd.price
	}
	return p
}

// check tries taking the candidates away and returns, beside the trial,
// the nodes it may not take with the reason: pods nothing else can host,
// or a spot replacement the options forbid.
func (st *state) check(ctx context.Context, cands []*candidate) (*trial, map[string]string, error) {
	nodes := make([]*model.Node, len(cands))
	for i, cd := range cands {
		nodes[i] = cd.n
	}
	t, err := st.try(ctx, nodes, nil)
	if err != nil {
		return nil, nil, err
	}
	bad := map[string]string{}
	for name, us := range t.unplaced {
		bad[name] = unplacedText(us)
	}
	if len(bad) == 0 {
		bad = st.spotViolations(t)
	}
	return t, bad, nil
}

// freeOn is the room left on a node: what pods may request less what its
// pods request, never negative.
func (st *state) freeOn(n *model.Node) model.Resources {
	free := n.Usable()
	for _, p := range st.work.podsOn(n.Name) {
		free = free.Sub(p.Requests())
	}
	return model.Resources{CPU: max(free.CPU, 0), Memory: max(free.Memory, 0), Pods: max(free.Pods, 0)}
}

// roomOutside sums the free room of the nodes displaced pods of pool may
// use, apart from the candidates: schedulable ready nodes of the pool, and
// of other pools when they have no taints that keep pods off.
func (st *state) roomOutside(pool *model.NodePool, cands []*candidate, smallest model.Resources) model.Resources {
	skip := map[string]bool{}
	for _, cd := range cands {
		skip[cd.n.Name] = true
	}
	var room model.Resources
	for _, n := range st.work.s.Nodes {
		if skip[n.Name] || n.Unschedulable || n.Deleting || !n.Ready {
			continue
		}
		if st.poolOf(n) != pool.Name && slices.ContainsFunc(n.Taints, func(t model.Taint) bool { return t.Effect != model.TaintPreferNoSchedule }) {
			continue
		}
		room = room.Add(roomFor(st.freeOn(n), smallest))
	}
	return room
}

// roomFor is the free room on a node that can hold pods of at least the
// smallest size: all of it, or nothing when not even one fits.
func roomFor(free, smallest model.Resources) model.Resources {
	if !smallest.Fits(free) {
		return model.Resources{}
	}
	return free
}

// spotViolations returns, per node, why a trial may not replace it: a spot
// node whose pods go to new capacity that may be spot, when spot-to-spot
// consolidation is off or too few cheaper spot types could replace it.
func (st *state) spotViolations(t *trial) map[string]string {
	bad := map[string]string{}
	for _, r := range t.fresh {
		if !mayBeSpot(r) {
			continue
		}
		seen := map[string]bool{}
		var srcs []*model.Node
		for _, k := range r.Pods {
			name := t.displaced[k]
			if n := st.nodeByName[name]; n != nil && !seen[name] && st.capacityType(n) == model.CapacitySpot {
				seen[name] = true
				srcs = append(srcs, n)
			}
		}
		if len(srcs) == 0 {
			continue
		}
		if !st.opts.SpotToSpot {
			for _, n := range srcs {
				bad[n.Name] = "it is a spot node and would be replaced by spot capacity, and spot-to-spot consolidation is off (planner flag --spot-to-spot-consolidation)"
			}
			continue
		}
		price := 0.0
		for _, n := range srcs {
			price += st.nodePrice(n)
		}
		if k := st.cheaperSpotTypes(r, price); k < st.opts.SpotToSpotMinTypes {
			for _, n := range srcs {
				bad[n.Name] = fmt.Sprintf("it is a spot node, and only %d spot instance types cheaper than %s could replace it; spot-to-spot consolidation needs at least %d", k, money(price), st.opts.SpotToSpotMinTypes)
			}
		}
	}
	return bad
}

func mayBeSpot(r *model.NodeClaimPlan) bool {
	if r.CapacityType == model.CapacitySpot {
		return true
	}
	return slices.ContainsFunc(r.Options, func(o model.InstanceOption) bool { return o.CapacityType == model.CapacitySpot })
}

// cheaperSpotTypes counts the replacement's instance types with an
// available spot offering it allows below price.
func (st *state) cheaperSpotTypes(r *model.NodeClaimPlan, price float64) int {
	n := 0
	for _, name := range r.InstanceTypeOptions {
		it := st.types[name]
		if it == nil {
			continue
		}
		if slices.ContainsFunc(it.Offerings, func(o model.Offering) bool {
			return o.Available && o.CapacityType == model.CapacitySpot && o.PricePerHour < price && offeringAllowed(r.Requirements, o)
		}) {
			n++
		}
	}
	return n
}

// shortfall says why a trial that saves too little was turned down.
func (st *state) shortfall(t *trial) string {
	with := ""
	if len(t.nodes) > 1 {
		with = " together with " + plural(len(t.nodes)-1, "other node")
	}
	save := t.savings(st)
	if math.Abs(save) < 1e-6 {
		return fmt.Sprintf("consolidating it%s would save nothing", with)
	}
	if save < 0 {
		return fmt.Sprintf("consolidating it%s would cost %s more, not less", with, money(-save))
	}
	return fmt.Sprintf("consolidating it%s would save %s, below %s", with, money(save), st.thresholdText(t.price(st), len(t.nodes)))
}

// thresholdText spells the threshold for n nodes costing price.
func (st *state) thresholdText(price float64, n int) string {
	thr := st.opts.threshold(price, n)
	if st.opts.MinSavingsFraction*price >= st.opts.MinSavingsPerHour*float64(n) {
		return fmt.Sprintf("the %g %% threshold (%s)", st.opts.MinSavingsFraction*100, money(thr))
	}
	if n == 1 {
		return fmt.Sprintf("the %s minimum", money(thr))
	}
	return fmt.Sprintf("the minimum of %s per node (%s)", money(st.opts.MinSavingsPerHour), money(thr))
}
