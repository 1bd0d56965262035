package provisioning

import (
	"cmp"
	"context"
	"maps"
	"math"
	"slices"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/flotilla-dev/flotilla/services/planner/internal/scheduling"
)

// problem is the immutable, preprocessed form of a snapshot: interned zones
// and capacity types, compiled NodePools, existing capacity and the pending
// pods grouped into classes of identical pods.
type problem struct {
	snap *model.Snapshot

	zones    []string
	zoneIdx  map[string]int
	zoneIDs  map[int]string
	allZones uint64
	cts      []string
	ctIdx    map[string]int
	allCTs   uint64

	types      []*model.InstanceType
	typeLabels map[*model.InstanceType]map[string]string
	typeKeys   map[string]bool

	daemons    []*daemon
	pools      []*poolInfo
	poolByName map[string]*poolInfo
	// notReady explains the NodePools that get nothing.
	notReady []string

	// existing are the nodes and in-flight NodeClaims pods may use.
	existing []*baseNode
	classes  []*podClass
	groups   []*group
	topo     topoKeys
	// topoKind caches kindOf for each topology key.
	topoKind []keyKind

	altCache      map[altCacheKey]*altPool
	domainsCache  map[domainsKey][]string
	existingCache map[existingKey][]string
	valueCache    map[valueKey]float64
	fitCache      map[fitCacheKey]bitset

	// minReq is the smallest request of any class in each dimension; a node
	// with less free is full.
	minReq model.Resources
}

func newProblem(ctx context.Context, s *model.Snapshot) (*problem, error) {
	p := &problem{
		snap:          s,
		zoneIdx:       map[string]int{},
		zoneIDs:       map[int]string{},
		ctIdx:         map[string]int{},
		typeLabels:    map[*model.InstanceType]map[string]string{},
		typeKeys:      map[string]bool{},
		poolByName:    map[string]*poolInfo{},
		altCache:      map[altCacheKey]*altPool{},
		domainsCache:  map[domainsKey][]string{},
		existingCache: map[existingKey][]string{},
		valueCache:    map[valueKey]float64{},
		fitCache:      map[fitCacheKey]bitset{},
	}
	p.internZones()
	p.types = slices.Clone(s.InstanceTypes)
	slices.SortStableFunc(p.types, func(a, b *model.InstanceType) int { return cmp.Compare(a.Name, b.Name) })
	for _, it := range p.types {
		l := it.NodeLabels()
		p.typeLabels[it] = l
		for k := range l {
			p.typeKeys[k] = true
		}
	}
	for _, k := range []string{model.LabelInstanceType, model.LabelArch, model.LabelOS} {
		p.typeKeys[k] = true
	}
	p.buildDaemons()
	p.buildPools()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pending := p.buildExisting()
	p.buildClasses(pending)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.buildGroups()
	for _, k := range p.topo.keys {
		p.topoKind = append(p.topoKind, p.kindOf(k))
	}
	for _, c := range p.classes {
		c.tolerates = make([]bool, len(p.pools))
		for _, pi := range p.pools {
			_, c.tolerates[pi.idx] = model.ToleratesAll(c.rep.Tolerations, pi.np.Taints)
		}
		p.buildViews(c)
		for _, gi := range c.views[0].spread {
			if !p.groups[gi].hostname() {
				c.owns = append(c.owns, gi)
			}
		}
	}
	p.estimateValues()
	return p, nil
}

// internZones collects every zone and capacity type the snapshot mentions,
// sorted, so that masks and iteration orders are stable.
func (p *problem) internZones() {
	zones := map[string]string{}
	cts := map[string]bool{model.CapacityOnDemand: true, model.CapacitySpot: true}
	for _, it := range p.snap.InstanceTypes {
		for _, o := range it.Offerings {
			if o.Zone != "" {
				if zones[o.Zone] == "" {
					zones[o.Zone] = o.ZoneID
				}
			}
			if o.CapacityType != "" {
				cts[o.CapacityType] = true
			}
		}
	}
	for _, c := range p.snap.NodeClasses {
		for _, s := range c.Subnets {
			if _, ok := zones[s.Zone]; !ok && s.Zone != "" {
				zones[s.Zone] = s.ZoneID
			}
		}
	}
	for _, n := range p.snap.Nodes {
		if z := n.Labels[model.LabelZone]; z != "" {
			if _, ok := zones[z]; !ok {
				zones[z] = n.Labels[model.LabelZoneID]
			}
		}
	}
	p.zones = slices.Sorted(maps.Keys(zones))
	if len(p.zones) > 64 {
		p.zones = p.zones[:64] // masks hold 64 zones; a region has far fewer
	}
	for i, z := range p.zones {
		p.zoneIdx[z] = i
		if id := zones[z]; id != "" {
			p.zoneIDs[i] = id
		}
		p.allZones |= 1 << uint(i)
	}
	p.cts = slices.Sorted(maps.Keys(cts))
	for i, c := range p.cts {
		p.ctIdx[c] = i
		p.allCTs |= 1 << uint(i)
	}
}

func (p *problem) buildDaemons() {
	for _, ds := range p.snap.DaemonSets {
		if ds.Template == nil {
			continue
		}
		d := &daemon{pod: ds.Template, requests: ds.Template.Requests(), ports: ds.Template.HostPorts()}
		d.alts = nodeAlternatives(ds.Template, nil)
		p.daemons = append(p.daemons, d)
	}
	slices.SortStableFunc(p.daemons, func(a, b *daemon) int { return cmp.Compare(a.pod.Key(), b.pod.Key()) })
}

// nodeKind tells existing nodes, in-flight NodeClaims and new nodes apart.
type nodeKind int

const (
	kindExisting nodeKind = iota
	kindInFlight
	kindNew
)

// baseNode is an existing node or in-flight NodeClaim before solving.
type baseNode struct {
	kind nodeKind
	name string
	pool *poolInfo
	// labels the node carries (for a NodeClaim, what its requirements
	// guarantee); multi holds a NodeClaim's requirements with several
	// values, which a pod must accept in full.
	labels map[string]string
	multi  scheduling.Requirements
	taints []model.Taint
	free   model.Resources
	ports  []model.HostPort
	// bound are the pods on the node (for topology counts).
	bound []*model.Pod
	// nominated are pending pods already waiting for this NodeClaim.
	nominated []string
}

// ignoredTaints are taints a node carries only while it starts or briefly
// misbehaves; Karpenter ignores them when deciding where pods fit.
var ignoredTaints = map[string]bool{
	"node.kubernetes.io/not-ready":                   true,
	"node.kubernetes.io/unreachable":                 true,
	"node.cloudprovider.kubernetes.io/uninitialized": true,
	"karpenter.sh/unregistered":                      true,
}

// buildExisting compiles nodes and in-flight NodeClaims and returns the
// pending pods that still need a place.
func (p *problem) buildExisting() []*model.Pod {
	claims := map[string]*model.NodeClaim{}
	for _, c := range p.snap.NodeClaims {
		claims[c.Name] = c
	}
	nodes := slices.Clone(p.snap.Nodes)
	slices.SortStableFunc(nodes, func(a, b *model.Node) int { return cmp.Compare(a.Name, b.Name) })
	byName := map[string]*baseNode{}
	nodeNames := map[string]bool{}
	for _, n := range nodes {
		nodeNames[n.Name] = true
		if n.Deleting || n.Unschedulable {
			continue
		}
		b := &baseNode{kind: kindExisting, name: n.Name, labels: n.Labels, free: n.Usable()}
		b.pool = p.poolByName[n.NodePool()]
		var startup []model.Taint
		if c := claims[n.NodeClaim]; c != nil {
			startup = c.StartupTaints
			if b.pool == nil {
				b.pool = p.poolByName[c.NodePool]
			}
		}
		for _, t := range n.Taints {
			if ignoredTaints[t.Key] || slices.Contains(startup, t) {
				continue
			}
			b.taints = append(b.taints, t)
		}
		byName[n.Name] = b
		p.existing = append(p.existing, b)
	}
	// Pool usage counts every node of the pool, schedulable or not.
	for _, n := range nodes {
		if pi := p.poolByName[n.NodePool()]; pi != nil {
			pi.usage = pi.usage.Add(n.Capacity)
		}
	}
	cs := slices.Clone(p.snap.NodeClaims)
	slices.SortStableFunc(cs, func(a, b *model.NodeClaim) int { return cmp.Compare(a.Name, b.Name) })
	inflight := map[string]*baseNode{}
	for _, c := range cs {
		if c.NodeName != "" && nodeNames[c.NodeName] {
			continue // the Node stands for it
		}
		b := p.inFlight(c)
		if b.pool != nil {
			cap := c.Capacity
			if cap.IsZero() {
				cap = p.claimCapacity(c, b.pool)
			}
			b.pool.usage = b.pool.usage.Add(cap)
		}
		if c.Deleting {
			continue
		}
		inflight[c.Name] = b
		p.existing = append(p.existing, b)
	}
	var pending []*model.Pod
	for _, pod := range sortedPods(p.snap.Pods) {
		switch {
		case pod.IsBound():
			if b := byName[pod.NodeName]; b != nil {
				b.free = b.free.Sub(pod.Requests())
				b.ports = append(b.ports, pod.HostPorts()...)
				if !pod.Terminating {
					b.bound = append(b.bound, pod)
				}
			}
		case pod.IsPending():
			if b := p.nominatedTarget(pod, claims, byName, inflight); b != nil {
				b.free = b.free.Sub(pod.Requests())
				b.ports = append(b.ports, pod.HostPorts()...)
				b.bound = append(b.bound, pod)
				b.nominated = append(b.nominated, pod.Key())
				continue
			}
			pending = append(pending, pod)
		}
	}
	return pending
}

// sortedPods returns the pods ordered by key ("namespace/name"), each key
// built once rather than at every comparison.
func sortedPods(pods []*model.Pod) []*model.Pod {
	type keyed struct {
		key string
		pod *model.Pod
	}
	ks := make([]keyed, len(pods))
	for i, pod := range pods {
		ks[i] = keyed{key: pod.Key(), pod: pod}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })
	out := make([]*model.Pod, len(ks))
	for i, k := range ks {
		out[i] = k.pod
	}
	return out
}

func (p *problem) nominatedTarget(pod *model.Pod, claims map[string]*model.NodeClaim, nodes, inflight map[string]*baseNode) *baseNode {
	if pod.NominatedNodeClaim == "" {
		return nil
	}
	if b := inflight[pod.NominatedNodeClaim]; b != nil {
		return b
	}
	if c := claims[pod.NominatedNodeClaim]; c != nil && !c.Deleting {
		return nodes[c.NodeName]
	}
	return nil
}

// inFlight compiles a NodeClaim that has no Node yet.
func (p *problem) inFlight(c *model.NodeClaim) *baseNode {
	b := &baseNode{kind: kindInFlight, name: c.Name, pool: p.poolByName[c.NodePool], labels: map[string]string{}}
	for k, v := range c.Labels {
		b.labels[k] = v
	}
	if c.NodePool != "" {
		b.labels[model.LabelNodePool] = c.NodePool
	}
	reqs := scheduling.NewRequirements(c.Requirements...)
	if c.InstanceType != "" {
		reqs = reqs.With(model.LabelInstanceType, scheduling.Set{Values: []string{c.InstanceType}, Gt: math.MinInt64, Lt: math.MaxInt64})
		if it := p.instanceType(c.InstanceType); it != nil {
			for k, v := range p.typeLabels[it] {
				b.labels[k] = v
			}
		}
	}
	if c.Zone != "" {
		b.labels[model.LabelZone] = c.Zone
	}
	if c.CapacityType != "" {
		b.labels[model.LabelCapacityType] = c.CapacityType
	}
	for _, k := range reqs.Keys() {
		if _, ok := b.labels[k]; ok {
			continue
		}
		s, _ := reqs.Get(k)
		if v, ok := s.Single(); ok {
			b.labels[k] = v
		} else {
			b.multi = b.multi.With(k, s)
		}
	}
	b.taints = c.Taints
	b.free = c.Allocatable
	if b.free.IsZero() {
		b.free = p.claimAllocatable(c, b)
	}
	return b
}

func (p *problem) instanceType(name string) *model.InstanceType {
	i, ok := slices.BinarySearchFunc(p.types, name, func(it *model.InstanceType, n string) int { return cmp.Compare(it.Name, n) })
	if !ok {
		return nil
	}
	return p.types[i]
}

// claimTypes returns the instance types a NodeClaim may become.
func (p *problem) claimTypes(c *model.NodeClaim) []*model.InstanceType {
	if c.InstanceType != "" {
		if it := p.instanceType(c.InstanceType); it != nil {
			return []*model.InstanceType{it}
		}
		return nil
	}
	var out []*model.InstanceType
	for _, it := range p.types {
		ok := true
		for _, r := range c.Requirements {
			if p.kindOf(r.Key) == keyType && !r.Matches(p.typeLabels[it]) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, it)
		}
	}
	return out
}

// claimAllocatable is the least a NodeClaim without reported allocatable
// will offer: the smallest allocatable of the types it may become, less the
// DaemonSet pods that will run there.
func (p *problem) claimAllocatable(c *model.NodeClaim, b *baseNode) model.Resources {
	var k *model.Kubelet
	if b.pool != nil {
		k = b.pool.kubelet
	}
	var out model.Resources
	for i, it := range p.claimTypes(c) {
		a := it.Allocatable(k)
		if i == 0 {
			out = a
			continue
		}
		out = minResources(out, a)
	}
	for _, ds := range p.daemons {
		if _, ok := model.ToleratesAll(ds.pod.Tolerations, b.taints); !ok {
			continue
		}
		if p.daemonMayRun(ds, func(r model.Requirement) bool { return existingMayMatch(r, b) }) {
			out = out.Sub(ds.requests)
			b.ports = append(b.ports, ds.ports...)
		}
	}
	return out
}

// claimCapacity is the most a NodeClaim without reported capacity counts
// against its pool's limits.
func (p *problem) claimCapacity(c *model.NodeClaim, pi *poolInfo) model.Resources {
	var out model.Resources
	for _, it := range p.claimTypes(c) {
		cap := it.Capacity
		cap.Pods = it.MaxPods(pi.kubelet)
		out = out.Max(cap)
	}
	return out
}

func minResources(a, b model.Resources) model.Resources {
	out := model.Resources{CPU: min(a.CPU, b.CPU), Memory: min(a.Memory, b.Memory), Pods: min(a.Pods, b.Pods), EphemeralStorage: min(a.EphemeralStorage, b.EphemeralStorage)}
	for k, v := range a.Extended {
		if w, ok := b.Extended[k]; ok {
			out = out.With(k, min(v, w))
		}
	}
	return out
}

// existingMayMatch reports whether an existing node or in-flight NodeClaim
// may satisfy r (for DaemonSet placement: any value the claim may take).
func existingMayMatch(r model.Requirement, b *baseNode) bool {
	if v, ok := b.labels[r.Key]; ok {
		return r.MatchesValue(v, true)
	}
	if s, ok := b.multi.Get(r.Key); ok {
		return !s.Intersect(scheduling.SetOf(r)).Empty()
	}
	return r.MatchesValue("", false)
}

// existingGuarantees reports whether every node the existing node or
// NodeClaim can turn out to be satisfies r.
func existingGuarantees(r model.Requirement, b *baseNode) bool {
	if v, ok := b.labels[r.Key]; ok {
		return r.MatchesValue(v, true)
	}
	s, ok := b.multi.Get(r.Key)
	if !ok {
		return r.MatchesValue("", false)
	}
	if s.Complement || s.AbsentOK && !r.MatchesValue("", false) {
		return false
	}
	for _, v := range s.Values {
		if !r.MatchesValue(v, true) {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
