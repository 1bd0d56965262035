package provisioning

import (
	"cmp"
	"slices"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// candidate is a scored way to open a new node for a class.
type candidate struct {
	t          *poolType
	zones, cts uint64
	steps      []step
	score      float64
	price      float64
}

func (a *candidate) better(b *candidate) bool {
	if b == nil {
		return true
	}
	return cmp.Or(cmp.Compare(a.score, b.score), cmp.Compare(a.price, b.price), cmp.Compare(a.t.idx, b.t.idx)) < 0
}

// openFor opens new nodes for the class: in the highest-weight NodePool that
// can take its pods, the instance type whose node — filled with the class's
// pods and then other pending pods — serves the most value per dollar. The
// node is then repeated while the same pods are still waiting. It reports
// false when no new node can take a pod of the class.
func (r *run) openFor(c *podClass, want int) bool {
	v := r.view(c)
	r.refreshActive()
	// Only zones (or capacity types) the class's topology allows now.
	zoneMask, ctMask := ^uint64(0), ^uint64(0)
	if tk, mask := r.domainFilter(c); tk >= 0 {
		switch r.p.topoKind[tk] {
		case keyZone:
			zoneMask = mask
		case keyCapacity:
			ctMask = mask
		}
	}
	for _, pi := range r.p.pools {
		if !c.tolerates[pi.idx] {
			continue
		}
		// Step storage is the run's, kept from one call to the next.
		var best *candidate
		cand := candidate{steps: r.candSteps[0][:0]}
		for _, a := range v.alts {
			ap := a.pool[pi.idx]
			if !ap.ok {
				continue
			}
			zones, cts := r.quotaMasks(ap.zones&zoneMask, ap.cts&ctMask)
			for _, t := range r.shortlist(r.candidates(pi, ap, c, zones, cts), pi, zones, cts) {
				if !r.simulate(&cand, pi, t, zones, cts, c, want) || !cand.better(best) {
					continue
				}
				if best == nil {
					best = &candidate{steps: r.candSteps[1][:0]}
				}
				// The best keeps the steps; the next simulation
				// reuses the old best's storage.
				*best, cand = cand, *best
			}
		}
		if best == nil {
			r.candSteps[0] = cand.steps
			continue
		}
		n := r.newNode(pi, best.t, best.zones, best.cts)
		r.commitNode(n, best.steps)
		r.replicate(pi, best)
		r.candSteps = [2][]step{cand.steps, best.steps}
		return true
	}
	return false
}

// shortlistSize is how many instance types a new node is simulated with.
const shortlistSize = 10

// refreshActive drops classes that have no pods left from the fill list
// and sums what the rest still ask for.
func (r *run) refreshActive() {
	keep := r.active[:0]
	r.demand = model.Resources{}
	for _, c := range r.active {
		if n := r.remaining[c.idx]; n > 0 {
			keep = append(keep, c)
			r.demand.CPU += c.req.CPU * int64(n)
			r.demand.Memory += c.req.Memory * int64(n)
			r.demand.Pods += int64(n)
		}
	}
	r.active = keep
}

// shortlist keeps the types (within the pool's limits) that look cheapest
// for what is still pending: the price of a node over the share of the
// pending CPU, memory and pods it can take in its scarcest resource (at most
// all of it). The cheapest type always stays.
func (r *run) shortlist(types []*poolType, pi *poolInfo, zones, cts uint64) []*poolType {
	list := r.scoredBuf[:0]
	defer func() { r.scoredBuf = list }()
	for _, t := range types {
		if !r.fitsLimits(pi, t) {
			continue
		}
		o, _ := t.cheapestIn(zones, cts)
		f := 1.0
		for _, d := range [][2]int64{{t.alloc.CPU, r.demand.CPU}, {t.alloc.Memory, r.demand.Memory}, {t.alloc.Pods, r.demand.Pods}} {
			if d[1] > 0 {
				f = min(f, float64(max(d[0], 0))/float64(d[1]))
			}
		}
		if f <= 0 {
			continue
		}
		list = append(list, scored{t: t, score: o.price / f})
	}
	size := shortlistSize * r.widen
	out := r.shortBuf[:0]
	defer func() { r.shortBuf = out }()
	if len(list) <= size {
		for _, x := range list {
			out = append(out, x.t)
		}
		return out
	}
	out = append(out, list[0].t)
	// The size-1 best of the rest, best first: kept sorted in top by
	// insertion, as most types fall behind the last kept one.
	top := r.topBuf[:0]
	for _, x := range list[1:] {
		if len(top) == size-1 && !x.less(top[len(top)-1]) {
			continue
		}
		i := len(top)
		if i < size-1 {
			top = append(top, x)
		}
		for ; i > 0 && x.less(top[i-1]); i-- {
			if i < len(top) {
				top[i] = top[i-1]
			}
		}
		top[i] = x
	}
	r.topBuf = top
	for _, x := range top {
		out = append(out, x.t)
	}
	return out
}

// less orders shortlist entries: lower score, then lower type index.
func (a scored) less(b scored) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return a.t.idx < b.t.idx
}

// scored is an instance type with its shortlist score.
type scored struct {
	t     *poolType
	score float64
}

// quotaMasks narrows zones and capacity types to the domain a spread quota
// is filling.
func (r *run) quotaMasks(zones, cts uint64) (uint64, uint64) {
	q := r.quota
	if q == nil {
		return zones, cts
	}
	g := r.p.groups[q.g]
	switch r.p.kindOf(g.key) {
	case keyZone:
		zones &= 1 << uint(q.d)
	case keyCapacity:
		cts &= 1 << uint(q.d)
	case keyZoneID:
		var m uint64
		for z, id := range r.p.zoneIDs {
			if r.p.topo.lookup(g.tk, id) == q.d {
				m |= 1 << uint(z)
			}
		}
		zones &= m
	}
	return zones, cts
}

// simulate opens a scratch node of type t, adds the class's pods and fills
// it with others, scores it and undoes it all.
// It sets out (reusing out.steps) and reports whether the node takes
// anything.
func (r *run) simulate(out *candidate, pi *poolInfo, t *poolType, zones, cts uint64, c *podClass, want int) bool {
	n := r.scratchNode(pi, t, zones, cts)
	if n == nil {
		return false
	}
	m := r.mark()
	defer r.undo(m)
	k, ch := r.canAdd(n, c, want)
	if k == 0 {
		return false
	}
	r.add(n, c, k, ch)
	steps := append(out.steps[:0], step{c: c, k: k, ch: ch})
	value := float64(k)*r.values[c.idx] + r.fill(n, c, &steps)
	*out = candidate{t: t, zones: zones, cts: cts, steps: steps, score: n.off.price / value, price: n.off.price}
	return value > 0
}

// replicate opens more nodes like the best candidate while its pods are
// still waiting and the pool's limits allow.
func (r *run) replicate(pi *poolInfo, best *candidate) {
	for r.fitsLimits(pi, best.t) {
		n := r.scratchNode(pi, best.t, best.zones, best.cts)
		m := r.mark()
		ok := true
		steps := r.stepBuf[:0]
		for _, s := range best.steps {
			k, ch := r.canAdd(n, s.c, s.k)
			if k < s.k {
				ok = false
				break
			}
			r.add(n, s.c, k, ch)
			steps = append(steps, step{c: s.c, k: k, ch: ch})
		}
		r.undo(m)
		r.stepBuf = steps
		if !ok {
			return
		}
		r.commitNode(r.newNode(pi, best.t, best.zones, best.cts), steps)
	}
}

// newNode returns an empty new node of type t, or nil when t has no
// offering in the zones and capacity types.
func (r *run) newNode(pi *poolInfo, t *poolType, zones, cts uint64) *node {
	n := &node{}
	if !r.resetNode(n, pi, t, zones, cts) {
		return nil
	}
	return n
}

// scratchNode returns the run's scratch node, reset to an empty new node of
// type t, for simulations; nil as newNode.
func (r *run) scratchNode(pi *poolInfo, t *poolType, zones, cts uint64) *node {
	if r.scratch == nil {
		r.scratch = &node{}
	}
	if !r.resetNode(r.scratch, pi, t, zones, cts) {
		return nil
	}
	return r.scratch
}

// resetNode makes n an empty new node of type t, reusing its storage; it
// reports false when t has no offering in the zones and capacity types.
func (r *run) resetNode(n *node, pi *poolInfo, t *poolType, zones, cts uint64) bool {
	zones &= t.zones
	cts &= t.cts
	o, ok := t.cheapestIn(zones, cts)
	if !ok {
		return false
	}
	*n = node{kind: kindNew, idx: -1, pool: pi, typ: t, off: o, free: t.alloc, zones: zones, cts: cts, custom: pi.custom,
		ports: append(n.ports[:0], t.daemonPorts...), types: pi.all, typesBuf: n.typesBuf,
		dom: n.dom[:0], host: n.host[:0], placed: n.placed[:0]}
	n.dom = slices.Grow(n.dom, len(r.p.topo.keys))[:len(r.p.topo.keys)]
	for k, key := range r.p.topo.keys {
		n.dom[k] = -1
		switch r.p.topoKind[k] {
		case keyType:
			if v, ok := t.labels[key]; ok {
				n.dom[k] = r.p.topo.lookup(k, v)
			}
		case keyCustom:
			if s, ok := pi.custom.Get(key); ok {
				if v, ok := s.Single(); ok {
					n.dom[k] = r.p.topo.lookup(k, v)
				}
			}
		}
	}
	return true
}

// fitsLimits reports whether one more node of type t keeps the pool within
// its limits.
func (r *run) fitsLimits(pi *poolInfo, t *poolType) bool {
	for name, lim := range pi.np.Limits {
		if r.usage[pi.idx].Get(name)+t.capacity.Get(name) > lim {
			return false
		}
	}
	return true
}

// candidates returns the pool's instance types worth opening for the class
// under an alternative: those on the pool's frontier (see frontier) that
// hold one of its pods and have an offering in the zones and capacity
// types, cheapest first.
func (r *run) candidates(pi *poolInfo, ap *altPool, c *podClass, zones, cts uint64) []*poolType {
	out := r.candBuf[:0]
	fit := c.fit[pi.idx]
	for _, t := range pi.frontier {
		if !ap.types.has(t.idx) || !fit.has(t.idx) || t.zones&zones == 0 || t.cts&cts == 0 {
			continue
		}
		if _, ok := t.cheapestIn(zones, cts); ok {
			out = append(out, t)
		}
	}
	r.candBuf = out
	return out
}
