package provisioning

import (
	"math"
	"slices"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// canAdd returns how many of k pods of class c may join node n (0 when
// none), and how they join a new node.
func (r *run) canAdd(n *node, c *podClass, k int) (int, choice) {
	k = min(k, r.remaining[c.idx])
	if k <= 0 {
		return 0, noChoice
	}
	if k = fitCount(n.free, c.req, k); k == 0 {
		return 0, noChoice
	}
	v := r.view(c)
	ch := noChoice
	switch n.kind {
	case kindExisting, kindInFlight:
		if _, ok := model.ToleratesAll(c.rep.Tolerations, n.base.taints); !ok {
			return 0, noChoice
		}
		ch.alt = -1
		for i, a := range v.alts {
			if altGuaranteed(a.reqs, n.base) {
				ch.alt = i
				break
			}
		}
		if ch.alt < 0 {
			return 0, noChoice
		}
	case kindNew:
		if !c.tolerates[n.pool.idx] {
			return 0, noChoice
		}
		ch.alt = -1
		for i, a := range v.alts {
			ap := a.pool[n.pool.idx]
			if !ap.ok || !ap.types.has(n.typ.idx) {
				continue
			}
			if _, ok := n.typ.cheapestIn(n.zones&ap.zones, n.cts&ap.cts); !ok {
				continue
			}
			if ap.custom.Len() > 0 && n.custom.Conflict(ap.custom) != "" {
				continue
			}
			ch.alt = i
			break
		}
		if ch.alt < 0 {
			return 0, noChoice
		}
	}
	if len(c.ports) > 0 {
		if portsConflict(n.ports, c.ports) {
			return 0, noChoice
		}
		k = 1
	}
	if n.kind == kindNew && len(n.pool.minValues) > 0 {
		if k = r.minValuesLimit(n, c, k, ch); k == 0 {
			return 0, noChoice
		}
	}
	if len(v.keys) == 0 && len(v.anti) == 0 && len(v.affinity) == 0 && len(v.spread) == 0 && len(c.matched) == 0 {
		return k, ch
	}
	if n.kind != kindNew {
		return r.topoLimit(n, c, v, k, -1, -1), ch
	}
	return r.pinAndLimit(n, c, v, k, ch)
}

// altGuaranteed reports whether every requirement holds on the existing
// node or in-flight NodeClaim whatever it turns out to be.
func altGuaranteed(reqs []model.Requirement, b *baseNode) bool {
	for _, req := range reqs {
		if !existingGuarantees(req, b) {
			return false
		}
	}
	return true
}

// pinAndLimit picks the zone and capacity type a new node must fix for the
// class's topology constraints (the one letting the most pods join, the
// cheapest on ties) and returns the topology limit there.
func (r *run) pinAndLimit(n *node, c *podClass, v *classView, k int, ch choice) (int, choice) {
	needZone, needCT := false, false
	for _, tk := range v.keys {
		switch r.p.topoKind[tk] {
		case keyZone, keyZoneID:
			needZone = needZone || !single(n.zones)
		case keyCapacity:
			needCT = needCT || !single(n.cts)
		}
	}
	if !needZone && !needCT {
		return r.topoLimit(n, c, v, k, -1, -1), ch
	}
	ap := v.alts[ch.alt].pool[n.pool.idx]
	zones, cts := n.zones&ap.zones, n.cts&ap.cts
	best, bestCh := 0, noChoice
	var tried [8][2]int
	nt := 0
	for _, o := range n.typ.offers {
		if !maskHas(zones, o.zone) || !maskHas(cts, o.ct) {
			continue
		}
		z, ct := -1, -1
		if needZone {
			z = o.zone
		}
		if needCT {
			ct = o.ct
		}
		dup := false
		for _, t := range tried[:nt] {
			if t == [2]int{z, ct} {
				dup = true
			}
		}
		if dup {
			continue
		}
		if nt < len(tried) {
			tried[nt] = [2]int{z, ct}
			nt++
		}
		if got := r.topoLimit(n, c, v, k, z, ct); got > best {
			best, bestCh = got, choice{alt: ch.alt, zone: z, ct: ct}
			if best == k {
				break
			}
		}
	}
	return best, bestCh
}

// topoLimit caps k by the class's pod (anti-)affinity and spread constraints
// and by the constraints of the pods already counted where node n is, with
// zone and capacity type about to be pinned.
func (r *run) topoLimit(n *node, c *podClass, v *classView, k int, zone, ct int) int {
	p := r.p
	dom := func(g *group) int32 {
		if g.hostname() {
			return 0
		}
		return r.domain(n, g.tk, zone, ct)
	}
	counts := func(g *group, d int32) (matched, owners int32) {
		if g.hostname() {
			return n.hostMatched(g.idx)
		}
		return r.counts[g.idx][d], r.owners[g.idx][d]
	}
	for _, gi := range v.anti {
		g := p.groups[gi]
		d := dom(g)
		if d == -2 {
			return 0
		}
		if d < 0 {
			continue
		}
		if m, _ := counts(g, d); m > 0 {
			r.why[c.idx] = whyOf(blockSpread, g)
			return 0
		}
		if g.members.has(c.idx) {
			k = 1
		}
	}
	for _, gi := range c.matched {
		g := p.groups[gi]
		if g.kind == groupAffinity || g.kind == groupSpread && slices.Contains(v.spread, gi) {
			continue
		}
		d := dom(g)
		if d == -2 {
			return 0
		}
		if d < 0 {
			continue
		}
		if q := r.quota; q != nil && q.g == gi && q.d == d {
			return 0 // the domain's room is for the class filling its share
		}
		m, o := counts(g, d)
		if o == 0 {
			if lim := r.keepLive(g, d, m); lim < k {
				k = lim
				if k <= 0 {
					r.why[c.idx] = whyOf(blockKeepLive, g)
					return 0
				}
			}
			continue
		}
		if g.kind == groupAnti {
			r.why[c.idx] = whyOf(blockTheirAnti, g)
			return 0
		}
		k = min(k, int(g.maxSkew+r.minCount(g)-m))
		if k <= 0 {
			r.why[c.idx] = whyOf(blockSpread, g)
			return 0
		}
	}
	for _, gi := range v.affinity {
		g := p.groups[gi]
		d := dom(g)
		if d < 0 {
			return 0
		}
		if m, _ := counts(g, d); m > 0 {
			continue
		}
		// While no pod matches, one that matches its own term may go
		// anywhere: the first of its group (Kubernetes' rule).
		if r.totals[gi] == 0 && g.members.has(c.idx) {
			continue
		}
		if r.totals[gi] == 0 {
			r.why[c.idx] = whyOf(blockNoMatch, g)
		} else {
			r.why[c.idx] = whyOf(blockAffinity, g)
		}
		return 0
	}
	for _, gi := range v.spread {
		g := p.groups[gi]
		d := dom(g)
		if d < 0 {
			return 0
		}
		m, _ := counts(g, d)
		if q := r.quota; q != nil && q.g == gi {
			if d != q.d || c.idx != q.class {
				return 0
			}
			k = min(k, int(q.target-m))
		} else if g.members.has(c.idx) {
			k = min(k, int(g.maxSkew+r.minCount(g)-m))
		} else if m-r.minCount(g) > g.maxSkew {
			k = 0
		}
		if k <= 0 {
			r.why[c.idx] = whyOf(blockSpread, g)
			return 0
		}
	}
	return k
}

// add places k pods of class c on node n as ch says.
func (r *run) add(n *node, c *podClass, k int, ch choice) {
	v := r.view(c)
	n.free = subScaled(n.free, c.req, k)
	n.used = addScaled(n.used, c.req, k)
	if len(c.ports) > 0 {
		n.ports = append(n.ports, c.ports...)
	}
	if n.kind == kindNew {
		ap := v.alts[ch.alt].pool[n.pool.idx]
		if !ap.allTypes {
			n.narrowTypes(ap.types)
		}
		n.zones &= ap.zones
		n.cts &= ap.cts
		if ch.zone >= 0 {
			n.zones &= 1 << uint(ch.zone)
		}
		if ch.ct >= 0 {
			n.cts &= 1 << uint(ch.ct)
		}
		if ap.custom.Len() > 0 {
			n.custom, _ = n.custom.Intersect(ap.custom)
			n.narrowed = true
		}
		if o, ok := n.typ.cheapestIn(n.zones, n.cts); ok {
			n.off = o
		}
	}
	if len(n.placed) > 0 && n.placed[len(n.placed)-1].class == c.idx {
		n.placed[len(n.placed)-1].count += k
	} else {
		n.placed = append(n.placed, placement{class: c.idx, count: k})
	}
	for _, gi := range c.matched {
		r.bump(n, r.p.groups[gi], k, false)
	}
	for _, gi := range c.anti {
		r.bump(n, r.p.groups[gi], k, true)
	}
	for _, gi := range v.spread {
		r.bump(n, r.p.groups[gi], k, true)
	}
	r.remaining[c.idx] -= k
	r.record(undoEntry{kind: undoRemaining, a: c.idx, delta: k})
	for _, gi := range c.owns {
		r.ownersLeft[gi] -= int32(k)
		r.record(undoEntry{kind: undoOwnersLeft, a: gi, delta: k})
	}
	n.full = r.isFull(n)
	if n.idx >= 0 {
		r.noteFree(n)
	}
}

// minValuesLimit caps k so that, with the pods on it, a new node can still
// become instance types with at least minValues distinct values of each key
// the pool asks breadth for (Karpenter's minValues).
func (r *run) minValuesLimit(n *node, c *podClass, k int, ch choice) int {
	ap := r.view(c).alts[ch.alt].pool[n.pool.idx]
	ok := func(k int) bool {
		used := addScaled(n.used, c.req, k)
		return minValuesHold(n.pool, func(t *poolType) bool {
			return n.types.has(t.idx) && ap.types.has(t.idx) && used.Fits(t.alloc) && t.zones&n.zones&ap.zones != 0 && t.cts&n.cts&ap.cts != 0
		})
	}
	if ok(k) {
		return k
	}
	lo, hi := 0, k // ok(lo), !ok(hi)
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; ok(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// minValuesHold reports whether the pool's types that pass keep offer at
// least minValues distinct values for each requirement asking for them.
func minValuesHold(pi *poolInfo, keep func(*poolType) bool) bool {
	for _, req := range pi.minValues {
		seen := map[string]bool{}
		for _, t := range pi.types {
			if v, has := t.labels[req.Key]; has && !seen[v] && req.Matches(t.labels) && keep(t) {
				seen[v] = true
				if len(seen) >= req.MinValues {
					break
				}
			}
		}
		if len(seen) < req.MinValues {
			return false
		}
	}
	return true
}

// keepLive bounds how many pods a keyed spread group selects, but whose
// constraint they do not carry, may join domain d where none of the
// group's own pods are yet: while some of those are still to place, a
// domain they may use must stay within maxSkew of the group's least
// domain, or it closes to them, and with it the only domains where pods
// they select in turn may go. A domain already beyond maxSkew, or not the
// group's, takes any number.
func (r *run) keepLive(g *group, d int32, m int32) int {
	if g.kind != groupSpread || g.hostname() || r.ownersLeft[g.idx] == 0 || !g.isViable.has(int(d)) {
		return math.MaxInt
	}
	lim := g.maxSkew + r.minCount(g) - m
	if lim < 0 {
		return math.MaxInt
	}
	return int(lim)
}
