package provisioning

import (
	"slices"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/flotilla-dev/flotilla/services/planner/internal/scheduling"
)

// node is a node during one solving run: an existing node, an in-flight
// NodeClaim or a new node the run opened.
type node struct {
	kind nodeKind
	idx  int
	base *baseNode
	pool *poolInfo
	free model.Resources
	// used sums the requests of the pods the run placed here.
	used  model.Resources
	ports []model.HostPort
	// dom holds the node's domain per topology key: a value index, -1 when
	// the node has no such label, -2 while a new node's zone or capacity
	// type is open.
	dom    []int32
	host   []hostCount
	placed []placement
	full   bool

	// New nodes only.
	typ   *poolType
	off   offer
	types bitset
	// ownTypes says types is the node's own copy (else shared, read-only);
	// typesBuf is storage for that copy.
	ownTypes   bool
	typesBuf   bitset
	zones, cts uint64
	custom     scheduling.Requirements
	// narrowed is set once pods narrowed custom away from the pool's.
	narrowed bool
}

// hostCount counts a hostname group's pods on one node.
type hostCount struct {
	g               int
	matched, owners int32
}

// placement is a number of pods of a class placed on a node.
type placement struct {
	class, count int
}

// choice is how pods join a new node: which alternative they use and which
// zone and capacity type they pin (-1 for none).
type choice struct {
	alt, zone, ct int
}

var noChoice = choice{alt: -1, zone: -1, ct: -1}

// quota restricts a spread group's owners to one domain and a target count
// while the run places a class's share in that domain.
type quota struct {
	class  int
	g      int
	d      int32
	target int32
}

type undoKind int

const (
	undoCount undoKind = iota
	undoOwner
	undoTotal
	undoRemaining
	undoUsage
	undoOwnersLeft
)

type undoEntry struct {
	kind  undoKind
	a     int
	b     int32
	delta int
	res   model.Resources
}

// run is the mutable state of one solving run.
type run struct {
	p      *problem
	nodes  []*node
	counts [][]int32
	owners [][]int32
	totals []int32
	// ownersLeft counts, per keyed spread group, the pods still to place
	// that carry its constraint.
	ownersLeft []int32
	remaining  []int
	level      []int
	// assigned lists, per class, the nodes its pods went to in order.
	assigned [][]placement
	usage    []model.Resources
	log      []undoEntry
	logging  bool
	quota    *quota
	// why records, per class, the last reason a placement failed.
	why []blocker
	// fillOrder is the order new nodes take in other classes' pods.
	fillOrder []*podClass
	// active are the classes with pods left, in fill order; demand sums
	// their requests (refreshed when a node is opened).
	active  []*podClass
	demand  model.Resources
	candBuf []*poolType
	// lp makes the run start with the pattern LP's nodes.
	lp bool
	// widen multiplies how many instance types a new node is tried with.
	widen int
	// values are what the run thinks a pod of each class is worth ($/h):
	// the class's estimate, or the pattern LP's dual for its shape.
	values  []float64
	fillBuf []dense
	// shares memoises, per instance type, the share of a node each class's
	// pod takes (fill's density).
	shares map[*poolType][]float64
	// free indexes the nodes with room.
	free freeIndex
	// scratch is the node simulations try pods on; stepBuf is storage for
	// the steps replayed on a copy.
	scratch *node
	stepBuf []step
	// candSteps is storage for the steps of openFor's candidates.
	candSteps [2][]step
	// Storage for shortlists.
	scoredBuf []scored
	topBuf    []scored
	shortBuf  []*poolType
	// pricedBuf is storage for options.
	pricedBuf []priced
}

func newRun(p *problem) *run {
	r := &run{p: p, widen: 1}
	r.counts = make([][]int32, len(p.groups))
	r.owners = make([][]int32, len(p.groups))
	r.totals = make([]int32, len(p.groups))
	for _, g := range p.groups {
		if !g.hostname() {
			r.counts[g.idx] = make([]int32, len(p.topo.values[g.tk]))
			r.owners[g.idx] = make([]int32, len(p.topo.values[g.tk]))
		}
	}
	r.remaining = make([]int, len(p.classes))
	r.ownersLeft = make([]int32, len(p.groups))
	for _, c := range p.classes {
		for _, gi := range c.owns {
			r.ownersLeft[gi] += int32(len(c.pods))
		}
	}
	r.values = make([]float64, len(p.classes))
	for _, c := range p.classes {
		r.values[c.idx] = c.value
	}
	r.level = make([]int, len(p.classes))
	r.assigned = make([][]placement, len(p.classes))
	r.why = make([]blocker, len(p.classes))
	for _, c := range p.classes {
		r.remaining[c.idx] = len(c.pods)
	}
	r.usage = make([]model.Resources, len(p.pools))
	for _, pi := range p.pools {
		r.usage[pi.idx] = pi.usage
	}
	memo := map[string][]int32{}
	for _, b := range p.existing {
		n := &node{kind: b.kind, idx: len(r.nodes), base: b, pool: b.pool, free: b.free, ports: slices.Clip(b.ports)}
		n.dom = make([]int32, len(p.topo.keys))
		for k, key := range p.topo.keys {
			n.dom[k] = -1
			if v, ok := b.labels[key]; ok {
				n.dom[k] = p.topo.lookup(k, v)
			}
		}
		r.countBound(n, b, memo)
		n.full = r.isFull(n)
		r.nodes = append(r.nodes, n)
		r.noteFree(n)
	}
	return r
}

// clone returns an independent copy of a run that has not placed anything
// yet (the state after newRun), so that strategies share its setup.
func (r *run) clone() *run {
	c := *r
	c.nodes = make([]*node, len(r.nodes))
	for i, n := range r.nodes {
		nn := *n
		nn.host = slices.Clone(n.host)
		nn.ports = slices.Clip(n.ports)
		c.nodes[i] = &nn
	}
	c.free = r.free.clone()
	c.counts = make([][]int32, len(r.counts))
	c.owners = make([][]int32, len(r.owners))
	for i := range r.counts {
		c.counts[i] = slices.Clone(r.counts[i])
		c.owners[i] = slices.Clone(r.owners[i])
	}
	c.totals = slices.Clone(r.totals)
	c.ownersLeft = slices.Clone(r.ownersLeft)
	c.remaining = slices.Clone(r.remaining)
	c.values = slices.Clone(r.values)
	c.level = make([]int, len(r.level))
	c.assigned = make([][]placement, len(r.assigned))
	c.why = make([]blocker, len(r.why))
	c.usage = slices.Clone(r.usage)
	c.log, c.logging, c.quota, c.shares, c.candSteps = nil, false, nil, nil, [2][]step{}
	c.pricedBuf = nil
	c.fillBuf, c.candBuf, c.scratch, c.stepBuf, c.scoredBuf, c.shortBuf, c.topBuf = nil, nil, nil, nil, nil, nil, nil
	return &c
}

// countBound counts the pods already on an existing node or waiting for an
// in-flight NodeClaim in the groups that select them.
// Pods with the same namespace and labels fall in the same groups; memo
// holds those groups per labelsKey.
func (r *run) countBound(n *node, b *baseNode, memo map[string][]int32) {
	var buf []byte
	for _, pod := range b.bound {
		buf = labelsKey(buf[:0], pod.Namespace, pod.Labels)
		selecting, ok := memo[string(buf)]
		if !ok {
			for _, g := range r.p.groups {
				if g.selects(pod.Namespace, pod.Labels) {
					selecting = append(selecting, int32(g.idx))
				}
			}
			memo[string(buf)] = selecting
		}
		for _, gi := range selecting {
			r.bump(n, r.p.groups[gi], 1, false)
		}
		if len(pod.PodAntiAffinity) == 0 {
			continue
		}
		for _, g := range r.p.groups {
			if g.kind != groupAnti {
				continue
			}
			for _, t := range pod.PodAntiAffinity {
				if t.TopologyKey == g.key && selectorSig(t.Selector) == selectorSig(g.sel) && termNamespacesEqual(t, pod.Namespace, g) {
					r.bump(n, g, 1, true)
					break
				}
			}
		}
	}
}

// labelsKey appends to buf an encoding of a namespace and labels that two
// pods share exactly when both are equal.
func labelsKey(buf []byte, ns string, labels map[string]string) []byte {
	w := sigWriter{buf: buf}
	w.str(ns)
	for _, k := range keysOf(labels) {
		w.str(k).str(labels[k])
	}
	return w.buf
}

func termNamespacesEqual(t model.PodAffinityTerm, ns string, g *group) bool {
	if t.AllNamespaces != g.allNS {
		return false
	}
	if g.allNS {
		return true
	}
	want := t.Namespaces
	if len(want) == 0 {
		want = []string{ns}
	}
	if len(want) != len(g.namespaces) {
		return false
	}
	for _, w := range want {
		found := false
		for _, h := range g.namespaces {
			if h == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// view returns the class's constraints at its current relaxation level.
func (r *run) view(c *podClass) *classView { return c.views[r.level[c.idx]] }

func (r *run) isFull(n *node) bool {
	m := r.p.minReq
	return n.free.Pods < 1 || n.free.CPU < m.CPU || n.free.Memory < m.Memory
}

// domain returns node n's domain for topology key tk, with a zone and
// capacity type about to be pinned (-1 for none).
func (r *run) domain(n *node, tk int, zone, ct int) int32 {
	if n.kind != kindNew {
		return n.dom[tk]
	}
	switch r.p.topoKind[tk] {
	case keyZone:
		if z := r.pinnedZone(n, zone); z >= 0 {
			return int32(z)
		}
		return -2
	case keyZoneID:
		if z := r.pinnedZone(n, zone); z >= 0 {
			return r.p.topo.lookup(tk, r.p.zoneIDs[z])
		}
		return -2
	case keyCapacity:
		if c := r.pinnedCT(n, ct); c >= 0 {
			return int32(c)
		}
		return -2
	}
	return n.dom[tk]
}

func (r *run) pinnedZone(n *node, zone int) int {
	if zone >= 0 {
		return zone
	}
	if single(n.zones) {
		return lowBit(n.zones)
	}
	return -1
}

func (r *run) pinnedCT(n *node, ct int) int {
	if ct >= 0 {
		return ct
	}
	if single(n.cts) {
		return lowBit(n.cts)
	}
	return -1
}

func single(m uint64) bool { return m != 0 && m&(m-1) == 0 }

func lowBit(m uint64) int {
	for i := 0; i < 64; i++ {
		if m&(1<<uint(i)) != 0 {
			return i
		}
	}
	return -1
}

// narrowTypes keeps the node's possible instance types that are in b.
func (n *node) narrowTypes(b bitset) {
	if !n.ownTypes {
		n.typesBuf = append(n.typesBuf[:0], n.types...)
		n.types, n.ownTypes = n.typesBuf, true
	}
	for i := range n.types {
		n.types[i] &= b[i]
	}
}

func (n *node) hostCount(g int) *hostCount {
	for i := range n.host {
		if n.host[i].g == g {
			return &n.host[i]
		}
	}
	n.host = append(n.host, hostCount{g: g})
	return &n.host[len(n.host)-1]
}

func (n *node) hostMatched(g int) (matched, owners int32) {
	for _, h := range n.host {
		if h.g == g {
			return h.matched, h.owners
		}
	}
	return 0, 0
}

// bump adds one pod to group g's count (or owner count) in node n's domain.
func (r *run) bump(n *node, g *group, k int, owner bool) {
	if g.hostname() {
		h := n.hostCount(g.idx)
		if owner {
			h.owners += int32(k)
		} else {
			h.matched += int32(k)
		}
		if !owner {
			r.addTotal(g.idx, k)
		}
		return
	}
	d := r.domain(n, g.tk, -1, -1)
	if !owner {
		r.addTotal(g.idx, k)
	}
	if d < 0 {
		return
	}
	if owner {
		r.owners[g.idx][d] += int32(k)
		r.record(undoEntry{kind: undoOwner, a: g.idx, b: d, delta: k})
		return
	}
	r.counts[g.idx][d] += int32(k)
	r.record(undoEntry{kind: undoCount, a: g.idx, b: d, delta: k})
}

func (r *run) addTotal(g, k int) {
	r.totals[g] += int32(k)
	r.record(undoEntry{kind: undoTotal, a: g, delta: k})
}

func (r *run) record(e undoEntry) {
	if r.logging {
		r.log = append(r.log, e)
	}
}

// mark starts recording changes to the run's shared counts, to undo a
// simulated placement on a scratch node.
func (r *run) mark() int {
	r.logging = true
	return len(r.log)
}

// undo reverts the shared counts to a mark and stops recording.
func (r *run) undo(m int) {
	for i := len(r.log) - 1; i >= m; i-- {
		e := r.log[i]
		switch e.kind {
		case undoCount:
			r.counts[e.a][e.b] -= int32(e.delta)
		case undoOwner:
			r.owners[e.a][e.b] -= int32(e.delta)
		case undoTotal:
			r.totals[e.a] -= int32(e.delta)
		case undoRemaining:
			r.remaining[e.a] += e.delta
		case undoOwnersLeft:
			r.ownersLeft[e.a] += int32(e.delta)
		case undoUsage:
			r.usage[e.a] = r.usage[e.a].Sub(e.res)
		}
	}
	r.log = r.log[:m]
	if m == 0 {
		r.logging = false
	}
}

// commit stops recording and keeps the changes since the mark.
func (r *run) commit(m int) {
	r.log = r.log[:m]
	if m == 0 {
		r.logging = false
	}
}

// minCount is the smallest count of a spread group over its viable domains
// (0 when fewer domains than minDomains exist, and for hostname groups, where
// a new node is always an empty domain).
func (r *run) minCount(g *group) int32 {
	if g.hostname() || len(g.viable) == 0 || int32(len(g.viable)) < g.minDomains {
		return 0
	}
	m := r.counts[g.idx][g.viable[0]]
	for _, d := range g.viable[1:] {
		m = min(m, r.counts[g.idx][d])
	}
	return m
}

// fitCount returns how many pods with requests req fit into free, at most
// limit.
func fitCount(free, req model.Resources, limit int) int {
	k := int64(limit)
	// Most calls find all or none of the pods fit: multiplications answer
	// "all" without the divisions.
	if k > 0 && len(req.Extended) == 0 && req.CPU*k <= free.CPU && req.Memory*k <= free.Memory &&
		req.Pods*k <= free.Pods && req.EphemeralStorage*k <= free.EphemeralStorage {
		return limit
	}
	if req.CPU > 0 {
		k = min(k, max(free.CPU, -1)/req.CPU)
	}
	if req.Memory > 0 {
		k = min(k, max(free.Memory, -1)/req.Memory)
	}
	if req.Pods > 0 {
		k = min(k, max(free.Pods, -1)/req.Pods)
	}
	if req.EphemeralStorage > 0 {
		k = min(k, max(free.EphemeralStorage, -1)/req.EphemeralStorage)
	}
	if len(req.Extended) > 0 {
		for name, v := range req.Extended {
			if v > 0 {
				k = min(k, max(free.Extended[name], -1)/v)
			}
		}
	}
	if k < 0 {
		return 0
	}
	return int(k)
}

// fitsOne reports whether one pod with requests req fits into free
// (fitCount(free, req, 1) == 1).
func fitsOne(free, req model.Resources) bool {
	if req.CPU > 0 && req.CPU > free.CPU || req.Memory > 0 && req.Memory > free.Memory ||
		req.Pods > 0 && req.Pods > free.Pods || req.EphemeralStorage > 0 && req.EphemeralStorage > free.EphemeralStorage {
		return false
	}
	for name, v := range req.Extended {
		if v > 0 && v > free.Extended[name] {
			return false
		}
	}
	return true
}

func subScaled(r, req model.Resources, k int) model.Resources {
	r.CPU -= req.CPU * int64(k)
	r.Memory -= req.Memory * int64(k)
	r.Pods -= req.Pods * int64(k)
	r.EphemeralStorage -= req.EphemeralStorage * int64(k)
	if len(req.Extended) > 0 {
		r = r.Sub(model.Resources{Extended: req.Scale(int64(k)).Extended})
	}
	return r
}

func addScaled(r, req model.Resources, k int) model.Resources {
	return subScaled(r, req, -k)
}

func portsConflict(have, want []model.HostPort) bool {
	for _, w := range want {
		for _, h := range have {
			if w.Conflicts(h) {
				return true
			}
		}
	}
	return false
}
