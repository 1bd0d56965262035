package provisioning

import (
	"cmp"
	"context"
	"slices"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// A new node takes in other classes' pods when it is opened: the first
// maxFillTake of the first maxFillScan classes with pods left that fit.
const (
	maxFillScan = 1024
	maxFillTake = 64
)

// order returns the classes in placement order: pods others need for their
// pod affinity first, then classes that allow few pods per node (they
// decide how many nodes there are and others fill around them), then the
// largest.
func (p *problem) order() []*podClass {
	depth := make([]int, len(p.classes))
	for range len(p.classes) {
		changed := false
		for _, c := range p.classes {
			for _, gi := range c.affinity {
				p.groups[gi].members.each(func(m int) {
					if m != c.idx && depth[m]+1 > depth[c.idx] && depth[m] < len(p.classes) {
						depth[c.idx] = depth[m] + 1
						changed = true
					}
				})
			}
		}
		if !changed {
			break
		}
	}
	out := slices.Clone(p.classes)
	slices.SortStableFunc(out, func(a, b *podClass) int {
		ex := func(c *podClass) int {
			if c.exclusive {
				return 0
			}
			return 1
		}
		return cmp.Or(cmp.Compare(depth[a.idx], depth[b.idx]), cmp.Compare(ex(a), ex(b)),
			cmp.Compare(b.size, a.size), cmp.Compare(b.req.CPU, a.req.CPU), cmp.Compare(b.req.Memory, a.req.Memory),
			cmp.Compare(a.sig, b.sig))
	})
	return out
}

// solve places every class, retrying classes that wait for others' pods
// (pod affinity) while that makes progress.
func (r *run) solve(ctx context.Context, order []*podClass) error {
	r.fillOrder = order
	r.active = slices.Clone(order)
	if r.lp {
		// Existing capacity first, then the pattern LP's whole nodes for
		// the pods without constraints; the greedy does the rest.
		for _, c := range order {
			if r.drivingSpread(c) == nil {
				r.firstFit(c, r.remaining[c.idx])
			}
		}
		r.applyLP(ctx)
	}
	pending := order
	for len(pending) > 0 {
		var again []*podClass
		progress := false
		for _, c := range pending {
			if err := ctx.Err(); err != nil {
				return err
			}
			before := r.remaining[c.idx]
			r.placeClass(ctx, c)
			if r.remaining[c.idx] < before {
				progress = true
			}
			if r.remaining[c.idx] > 0 && r.waitsForOthers(c) {
				again = append(again, c)
			}
		}
		if !progress {
			break
		}
		pending = again
	}
	return ctx.Err()
}

// waitsForOthers reports whether a class has required pod affinity to pods
// it does not match itself, which later placements may provide.
func (r *run) waitsForOthers(c *podClass) bool {
	for _, gi := range c.affinity {
		if !r.p.groups[gi].members.has(c.idx) {
			return true
		}
	}
	return false
}

// placeClass places the class's remaining pods: on nodes with room first,
// then on new nodes; when that fails it gives up a preference and tries
// again.
func (r *run) placeClass(ctx context.Context, c *podClass) {
	for r.remaining[c.idx] > 0 {
		if ctx.Err() != nil {
			return
		}
		if g := r.drivingSpread(c); g != nil {
			r.placeSpread(c, g)
		} else {
			r.placeFree(c)
		}
		if r.remaining[c.idx] == 0 || r.level[c.idx] >= len(c.prefs) {
			return
		}
		r.level[c.idx]++
	}
}

// drivingSpread returns the class's first spread constraint over a keyed
// topology (zone, capacity type, ...) that counts the class's own pods; the
// run places such classes domain by domain.
func (r *run) drivingSpread(c *podClass) *group {
	for _, gi := range r.view(c).spread {
		g := r.p.groups[gi]
		if !g.hostname() && g.members.has(c.idx) && len(g.viable) > 0 {
			return g
		}
	}
	return nil
}

func (r *run) placeFree(c *podClass) {
	r.firstFit(c, r.remaining[c.idx])
	for r.remaining[c.idx] > 0 {
		if !r.openFor(c, r.remaining[c.idx]) {
			return
		}
	}
}

// placeSpread places a class whose own pods count in a keyed spread group
// domain by domain, emptiest first, raising each at most to the current
// lowest count plus maxSkew, round after round. A domain that cannot take
// its share is closed and keeps its count, which then bounds the others:
// the spread holds after every step, whatever could not be placed.
func (r *run) placeSpread(c *podClass, g *group) {
	closedDom := map[int32]bool{}
	counts := r.counts[g.idx]
	lowest := func() int32 {
		if int32(len(g.viable)) < g.minDomains {
			return 0
		}
		m := counts[g.viable[0]]
		for _, d := range g.viable[1:] {
			m = min(m, counts[d])
		}
		return m
	}
	doms := slices.Clone(g.viable)
	for r.remaining[c.idx] > 0 {
		slices.SortStableFunc(doms, func(a, b int32) int { return cmp.Compare(counts[a], counts[b]) })
		progress := false
		for _, d := range doms {
			want := min(int(lowest()+g.maxSkew-counts[d]), r.remaining[c.idx])
			if closedDom[d] || want <= 0 {
				continue
			}
			r.quota = &quota{class: c.idx, g: g.idx, d: d, target: counts[d] + int32(want)}
			before := r.remaining[c.idx]
			r.firstFit(c, want)
			for placed := before - r.remaining[c.idx]; placed < want; placed = before - r.remaining[c.idx] {
				if !r.openFor(c, want-placed) {
					break
				}
			}
			r.quota = nil
			if placed := before - r.remaining[c.idx]; placed < want {
				closedDom[d] = true
			}
			progress = progress || r.remaining[c.idx] < before
		}
		if !progress {
			return
		}
	}
}

// firstFit puts up to want pods of the class on nodes that have room, in
// node order.
func (r *run) firstFit(c *podClass, want int) {
	tk, mask := r.domainFilter(c)
	zones := ^uint64(0)
	if tk >= 0 && r.p.topoKind[tk] == keyZone {
		zones = mask
	}
	cpu, mem := max(c.req.CPU, 0), max(c.req.Memory, 0)
	for i := r.free.next(0, cpu, mem, zones); i >= 0 && want > 0; i = r.free.next(i+1, cpu, mem, zones) {
		n := r.nodes[i]
		if !r.domainOK(n, tk, mask) || !fitsOne(n.free, c.req) {
			continue
		}
		if k, ch := r.canAdd(n, c, want); k > 0 {
			r.add(n, c, k, ch)
			r.assigned[c.idx] = append(r.assigned[c.idx], placement{class: n.idx, count: k})
			want -= k
		}
	}
}

// domainOK is the domain filter's verdict on an existing node.
func (r *run) domainOK(n *node, tk int, mask uint64) bool {
	if tk < 0 || n.kind == kindNew {
		return true
	}
	d := n.dom[tk]
	return d < 0 || mask&(1<<uint(d)) != 0
}

// noteFree records a node's room and zones in the free index.
func (r *run) noteFree(n *node) {
	if n.full {
		r.free.set(n.idx, closed, closed, 0)
		return
	}
	r.free.set(n.idx, n.free.CPU, n.free.Memory, r.zonesOf(n))
}

// zonesOf returns the zones a node is in or may end up in: all of them
// for a node without a known zone.
func (r *run) zonesOf(n *node) uint64 {
	if n.kind == kindNew {
		return n.zones
	}
	if z, ok := r.p.zoneIdx[n.base.labels[model.LabelZone]]; ok {
		return 1 << uint(z)
	}
	return ^uint64(0)
}

// domainFilter returns, for a class whose topology constraints all use one
// keyed topology (say the zone), that key and the domains where a pod may
// go now; tk is -1 when there is nothing to filter by. The domains only
// shrink while the class is placed, so skipping the others loses nothing.
func (r *run) domainFilter(c *podClass) (tk int, mask uint64) {
	v := r.view(c)
	tk = -1
	for _, gs := range [][]int{v.anti, v.affinity, v.spread, c.matched} {
		for _, gi := range gs {
			g := r.p.groups[gi]
			if g.hostname() {
				continue
			}
			if tk >= 0 && g.tk != tk {
				return -1, 0
			}
			tk = g.tk
		}
	}
	if tk < 0 || len(r.p.topo.values[tk]) > 64 {
		return -1, 0
	}
	probe := &node{kind: kindExisting, dom: make([]int32, len(r.p.topo.keys))}
	for d := range r.p.topo.values[tk] {
		probe.dom[tk] = int32(d)
		if r.topoLimit(probe, c, v, 1, -1, -1) > 0 {
			mask |= 1 << uint(d)
		}
	}
	return tk, mask
}

// step is one addition to a new node, replayed when the node is kept.
type step struct {
	c  *podClass
	k  int
	ch choice
}

// fill adds other classes' pods to a new node, in placement order, and
// returns the value they add.
func (r *run) fill(n *node, seed *podClass, steps *[]step) float64 {
	value := 0.0
	// The first classes in placement order that fit at all, taken by value
	// per share of the node they use, the densest first.
	cands := r.fillBuf[:0]
	shares := r.sharesOn(n.typ)
	for i, c := range r.active {
		if len(cands) >= maxFillTake || i >= maxFillScan {
			break
		}
		if c == seed || r.remaining[c.idx] == 0 || !fitsOne(n.free, c.req) {
			continue
		}
		sh := shares[c.idx]
		if sh < 0 {
			sh = share(c.req, n.typ.alloc)
			shares[c.idx] = sh
		}
		cands = append(cands, dense{c: c, d: r.values[c.idx] / sh, i: i})
	}
	slices.SortFunc(cands, func(a, b dense) int {
		if a.d != b.d {
			return cmp.Compare(b.d, a.d)
		}
		return cmp.Compare(a.i, b.i)
	})
	r.fillBuf = cands
	for _, x := range cands {
		c := x.c
		if n.full {
			break
		}
		if !fitsOne(n.free, c.req) {
			continue // as canAdd would say, only sooner
		}
		if k, ch := r.canAdd(n, c, r.remaining[c.idx]); k > 0 {
			r.add(n, c, k, ch)
			*steps = append(*steps, step{c: c, k: k, ch: ch})
			value += float64(k) * r.values[c.idx]
		}
	}
	return value
}

// sharesOn returns the run's memo of the share of a node of type t each
// class's pod takes (see share), -1 where not computed yet.
func (r *run) sharesOn(t *poolType) []float64 {
	if r.shares == nil {
		r.shares = map[*poolType][]float64{}
	}
	s := r.shares[t]
	if s == nil {
		s = make([]float64, len(r.p.classes))
		for i := range s {
			s[i] = -1
		}
		r.shares[t] = s
	}
	return s
}

// dense is a class with its value per share of a node and its position
// in the fill order.
type dense struct {
	c *podClass
	d float64
	i int
}

// commitNode replays the steps on a fresh node of the type and keeps it.
func (r *run) commitNode(n *node, steps []step) {
	n.idx = len(r.nodes)
	r.nodes = append(r.nodes, n)
	r.usage[n.pool.idx] = r.usage[n.pool.idx].Add(n.typ.capacity)
	for _, s := range steps {
		r.add(n, s.c, s.k, s.ch)
		r.assigned[s.c.idx] = append(r.assigned[s.c.idx], placement{class: n.idx, count: s.k})
	}
	r.noteFree(n)
}
