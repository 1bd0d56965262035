package provisioning

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/flotilla-dev/flotilla/services/planner/internal/scheduling"
)

// maxAlternatives bounds the node requirement alternatives of a pod (the
// product of its OR-ed node affinity and volume terms).
const maxAlternatives = 64

// podClass is a set of pending pods that are identical for scheduling:
// same requests, labels, namespace and constraints. The solver places
// classes with counts, not pods one by one.
type podClass struct {
	idx  int
	sig  string
	pods []*model.Pod
	rep  *model.Pod
	req  model.Resources
	// ports are the host ports each pod holds.
	ports []model.HostPort
	// required node requirement alternatives (nodeSelector, required node
	// affinity, volume topology); a pod needs one of them.
	required [][]model.Requirement
	// prefs are the soft constraints in the order they are given up.
	prefs []preference
	// hard topology constraints (group indices).
	affinity, anti, spread []int
	// views[i] is the constraint set with the first i preferences given
	// up.
	views []*classView
	// matched are the groups whose selector selects these pods.
	matched []int
	// owns are the keyed spread groups (zone, capacity type, ...) the
	// class's pods carry, hard or preferred.
	owns []int
	size float64
	// value estimates what serving one pod costs, $/h.
	value float64
	// fit holds, per pool, the instance types that hold one pod.
	fit []bitset
	// tolerates says, per pool, whether the pods tolerate its taints.
	tolerates []bool
	// exclusive classes tolerate only a few of their pods per node
	// (hostname anti-affinity or spread); they seed new nodes first.
	exclusive bool
}

type prefKind int

const (
	prefPodAffinity prefKind = iota
	prefPodAntiAffinity
	prefNodeAffinity
	prefSpread
)

// preference is one soft constraint.
type preference struct {
	kind   prefKind
	weight int32
	group  int
	term   model.NodeSelectorTerm
}

// classView is what a class must satisfy at its current relaxation level.
type classView struct {
	alts                   []*alt
	affinity, anti, spread []int
	// keys are the topology keys (indices) whose domain a new node must
	// fix before these pods join it.
	keys []int
}

// alt is one node requirement alternative, compiled per pool on demand.
type alt struct {
	reqs []model.Requirement
	sig  string
	pool []*altPool
}

// altPool is an alternative as one NodePool can satisfy it.
type altPool struct {
	ok  bool
	why string
	// types are the pool's instance types whose labels satisfy the
	// alternative and that have an offering it allows.
	types bitset
	// allTypes says types holds every type of the pool.
	allTypes   bool
	zones, cts uint64
	// custom narrows the pool's custom labels.
	custom scheduling.Requirements
}

type altCacheKey struct {
	pool int
	sig  string
}

type fitCacheKey struct {
	pool int
	req  shape
}

// shape is the comparable part of a request (without extended resources).
type shape struct {
	cpu, mem, pods, storage int64
}

func shapeOf(r model.Resources) shape {
	return shape{cpu: r.CPU, mem: r.Memory, pods: r.Pods, storage: r.EphemeralStorage}
}

// nodeAlternatives returns a pod's node requirement alternatives: its node
// selector and the preferred terms given, combined with each required node
// affinity term and each volume's topology terms. An empty node affinity
// term matches nothing, as in Kubernetes.
func nodeAlternatives(p *model.Pod, extra []model.NodeSelectorTerm) [][]model.Requirement {
	var base []model.Requirement
	for _, k := range sortedKeys(p.NodeSelector) {
		base = append(base, model.Requirement{Key: k, Operator: model.OpIn, Values: []string{p.NodeSelector[k]}})
	}
	for _, t := range extra {
		base = append(base, t.Requirements...)
	}
	alts := [][]model.Requirement{base}
	product := func(terms []model.NodeSelectorTerm) {
		var out [][]model.Requirement
		for _, a := range alts {
			for _, t := range terms {
				if len(t.Requirements) == 0 {
					continue
				}
				if len(out) >= maxAlternatives {
					break
				}
				out = append(out, append(slices.Clone(a), t.Requirements...))
			}
		}
		alts = out
	}
	if len(p.NodeAffinity.Required) > 0 {
		product(p.NodeAffinity.Required)
	}
	for _, v := range p.Volumes {
		if len(v.Terms) > 0 {
			product(v.Terms)
		}
	}
	return alts
}

func requirementsSig(reqs []model.Requirement) string {
	var b strings.Builder
	for _, r := range reqs {
		b.WriteString(r.Key)
		b.WriteByte(' ')
		b.WriteString(r.Operator.String())
		for _, v := range r.Values {
			b.WriteByte(' ')
			b.WriteString(v)
		}
		b.WriteByte(';')
	}
	return b.String()
}

// parallelAbove is the number of pods above which signatures are computed
// on two goroutines.
const parallelAbove = 2000

// signatures returns the pods' signatures, in their order; for many pods
// the second half is computed on another goroutine.
func signatures(pods []*model.Pod) []string {
	sigs := make([]string, len(pods))
	fill := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			sigs[i] = podSignature(pods[i])
		}
	}
	if len(pods) <= parallelAbove {
		fill(0, len(pods))
		return sigs
	}
	half := len(pods) / 2
	var wg sync.WaitGroup
	wg.Go(func() { fill(half, len(pods)) })
	fill(0, half)
	wg.Wait()
	return sigs
}

// buildClasses groups the pending pods into classes and orders them for
// placement.
func (p *problem) buildClasses(pending []*model.Pod) {
	sigs := signatures(pending)
	bySig := map[string]*podClass{}
	for i, pod := range pending {
		sig := sigs[i]
		c := bySig[sig]
		if c == nil {
			c = &podClass{idx: len(p.classes), sig: sig, rep: pod, req: pod.Requests(), ports: pod.HostPorts()}
			c.required = nodeAlternatives(pod, nil)
			bySig[sig] = c
			p.classes = append(p.classes, c)
		}
		c.pods = append(c.pods, pod)
	}
	p.minReq = model.Resources{}
	for i, c := range p.classes {
		cpu, mem := float64(c.req.CPU)/1000, float64(c.req.Memory)/float64(4<<30)
		c.size = max(cpu, mem)
		if i == 0 {
			p.minReq = c.req
		} else {
			p.minReq = minResources(p.minReq, c.req)
		}
	}
}

// podSignature encodes everything that decides where a pod may run, so
// that pods with equal signatures are interchangeable.
func podSignature(p *model.Pod) string {
	var w sigWriter
	w.buf = make([]byte, 0, 256)
	r := p.Requests()
	w.str(p.Namespace).int(r.CPU).int(r.Memory).int(r.EphemeralStorage).end()
	for _, k := range keysOf(r.Extended) {
		w.str(k).int(r.Extended[k]).end()
	}
	for _, k := range keysOf(p.Labels) {
		w.str("l").str(k).str(p.Labels[k]).end()
	}
	for _, k := range keysOf(p.NodeSelector) {
		w.str("s").str(k).str(p.NodeSelector[k]).end()
	}
	for _, t := range p.NodeAffinity.Required {
		w.str("na").str(requirementsSig(t.Requirements)).end()
	}
	for _, t := range p.NodeAffinity.Preferred {
		w.str("np").int(int64(t.Weight)).str(requirementsSig(t.Term.Requirements)).end()
	}
	term := func(tag string, weight int32, t model.PodAffinityTerm) {
		w.str(tag).int(int64(weight)).str(t.TopologyKey).str(selectorSig(t.Selector)).str(strings.Join(t.Namespaces, ",")).str(strconv.FormatBool(t.AllNamespaces)).end()
	}
	for _, t := range p.PodAffinity {
		term("pa", 0, t)
	}
	for _, t := range p.PreferredPodAffinity {
		term("ppa", t.Weight, t.Term)
	}
	for _, t := range p.PodAntiAffinity {
		term("aa", 0, t)
	}
	for _, t := range p.PreferredPodAntiAffinity {
		term("paa", t.Weight, t.Term)
	}
	for _, s := range p.TopologySpread {
		w.str("ts").str(spreadSig(s)).end()
	}
	for _, t := range p.Tolerations {
		w.str("t").str(t.Key).str(t.Operator).str(t.Value).str(t.Effect).end()
	}
	for _, hp := range p.HostPorts() {
		w.str("hp").int(int64(hp.Port)).str(hp.Protocol).str(hp.HostIP).end()
	}
	for _, v := range p.Volumes {
		for _, t := range v.Terms {
			w.str("v").str(requirementsSig(t.Requirements)).end()
		}
		w.buf = append(w.buf, '/')
	}
	return string(w.buf)
}

// sigWriter appends quoted fields to a signature; end closes a group.
type sigWriter struct{ buf []byte }

func (w *sigWriter) str(s string) *sigWriter {
	w.buf = strconv.AppendQuote(w.buf, s)
	return w
}

// int appends v as str(strconv.FormatInt(v, 10)) would, without the
// intermediate string.
func (w *sigWriter) int(v int64) *sigWriter {
	w.buf = append(w.buf, '"')
	w.buf = strconv.AppendInt(w.buf, v, 10)
	w.buf = append(w.buf, '"')
	return w
}

func (w *sigWriter) end() { w.buf = append(w.buf, '|') }

// keysOf is sortedKeys without the allocation for the common maps of at
// most one key.
func keysOf[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	if len(m) == 1 {
		for k := range m {
			return []string{k}
		}
	}
	return sortedKeys(m)
}

func selectorSig(s *model.LabelSelector) string {
	if s == nil {
		return "<nil>"
	}
	return "{" + requirementsSig(s.Requirements) + "}"
}

func spreadSig(s model.TopologySpreadConstraint) string {
	return fmt.Sprintf("%d %s %t %s %d %t %t %s", s.MaxSkew, s.TopologyKey, s.DoNotSchedule, selectorSig(s.Selector),
		s.MinDomains, s.NodeAffinityPolicyIgnore, s.NodeTaintsPolicyHonor, strings.Join(s.MatchLabelKeys, ","))
}

// compileAlt returns the alternative as pool pi can satisfy it.
func (p *problem) compileAlt(pi *poolInfo, reqs []model.Requirement, sig string) *altPool {
	key := altCacheKey{pool: pi.idx, sig: sig}
	if a, ok := p.altCache[key]; ok {
		return a
	}
	a := &altPool{ok: true, zones: pi.zones & p.zoneMaskOf(reqs), cts: pi.cts & p.ctMaskOf(reqs)}
	var typeReqs []model.Requirement
	for _, r := range reqs {
		switch p.kindOf(r.Key) {
		case keyType:
			typeReqs = append(typeReqs, r)
		case keyHostname:
			if r.Operator == model.OpIn || r.Operator == model.OpDoesNotExist {
				a.ok, a.why = false, "the pod requires "+r.String()+", which only an existing node can satisfy"
			}
		case keyCustom:
			s := scheduling.SetOf(r)
			ps, has := pi.custom.Get(r.Key)
			if !has {
				if !r.MatchesValue("", false) {
					a.ok, a.why = false, fmt.Sprintf("the pod requires %s, but NodePool %s does not set label %s", r, pi.np.Name, r.Key)
				}
				continue
			}
			if ps.Intersect(s).Empty() {
				a.ok, a.why = false, fmt.Sprintf("the pod requires %s, but NodePool %s sets %s", r, pi.np.Name, describeSet(r.Key, ps))
			}
			a.custom = a.custom.With(r.Key, s)
		}
	}
	a.types = newBitset(len(pi.types))
	if a.ok {
		for _, t := range pi.types {
			if !matchesAll(typeReqs, t.labels) {
				continue
			}
			if _, ok := t.cheapestIn(a.zones, a.cts); ok {
				a.types.set(t.idx)
			}
		}
	}
	a.allTypes = a.types.count() == len(pi.types)
	p.altCache[key] = a
	return a
}

func describeSet(key string, s scheduling.Set) string {
	if v, ok := s.Single(); ok {
		return key + "=" + v
	}
	return scheduling.NewRequirements().With(key, s).String()
}

// fits returns the pool's types that can hold one pod with requests req.
func (p *problem) fits(pi *poolInfo, req model.Resources) bitset {
	key := fitCacheKey{pool: pi.idx, req: shapeOf(req)}
	if len(req.Extended) == 0 {
		if b, ok := p.fitCache[key]; ok {
			return b
		}
	}
	b := newBitset(len(pi.types))
	for _, t := range pi.types {
		if req.Fits(t.alloc) {
			b.set(t.idx)
		}
	}
	if len(req.Extended) == 0 {
		p.fitCache[key] = b
	}
	return b
}

// buildViews computes a class's constraint sets at every relaxation level.
func (p *problem) buildViews(c *podClass) {
	c.views = nil
	for relaxed := 0; relaxed <= len(c.prefs); relaxed++ {
		c.views = append(c.views, p.view(c, relaxed))
	}
}

// view computes a class's constraints with the first relaxed preferences
// given up.
func (p *problem) view(c *podClass, relaxed int) *classView {
	v := &classView{affinity: slices.Clone(c.affinity), anti: slices.Clone(c.anti), spread: slices.Clone(c.spread)}
	var nodeTerms []model.WeightedNodeSelectorTerm
	for _, pr := range c.prefs[relaxed:] {
		switch pr.kind {
		case prefPodAffinity:
			v.affinity = append(v.affinity, pr.group)
		case prefPodAntiAffinity:
			v.anti = append(v.anti, pr.group)
		case prefSpread:
			v.spread = append(v.spread, pr.group)
		case prefNodeAffinity:
			nodeTerms = append(nodeTerms, model.WeightedNodeSelectorTerm{Weight: pr.weight, Term: pr.term})
		}
	}
	slices.SortStableFunc(nodeTerms, func(a, b model.WeightedNodeSelectorTerm) int { return cmp.Compare(b.Weight, a.Weight) })
	extra := make([]model.NodeSelectorTerm, len(nodeTerms))
	for i, t := range nodeTerms {
		extra[i] = t.Term
	}
	altReqs := c.required
	if len(extra) > 0 {
		altReqs = nodeAlternatives(c.rep, extra)
	}
	for _, reqs := range altReqs {
		a := &alt{reqs: reqs, sig: requirementsSig(reqs), pool: make([]*altPool, len(p.pools))}
		for _, pi := range p.pools {
			a.pool[pi.idx] = p.compileAlt(pi, reqs, a.sig)
		}
		v.alts = append(v.alts, a)
	}
	v.keys = p.relevantKeys(c, v)
	return v
}
