package provisioning

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/flotilla-dev/flotilla/services/planner/internal/scheduling"
)

// keyKind says which part of a new node decides a label.
type keyKind int

const (
	keyType     keyKind = iota // the instance type (arch, family, ...)
	keyZone                    // the offering's zone
	keyZoneID                  // the offering's zone ID
	keyCapacity                // the offering's capacity type
	keyHostname                // unknown until the node exists
	keyCustom                  // the NodePool (labels, requirements)
)

// offer is an available offering of a pool's instance type.
type offer struct {
	zone, ct int
	price    float64
}

// poolType is an instance type as one NodePool would launch it.
type poolType struct {
	idx    int
	it     *model.InstanceType
	labels map[string]string
	// capacity is what the node counts against the pool's limits.
	capacity model.Resources
	// alloc is what pending pods may use: allocatable less the DaemonSet
	// pods that would run there.
	alloc   model.Resources
	daemons model.Resources
	// daemonPorts are host ports DaemonSet pods hold on the node.
	daemonPorts []model.HostPort
	// offers are available and allowed by the pool, cheapest first.
	offers     []offer
	zones, cts uint64
	cheapest   float64
}

// cheapestIn returns the cheapest offer within the zone and capacity type
// masks.
func (t *poolType) cheapestIn(zones, cts uint64) (offer, bool) {
	for _, o := range t.offers {
		if maskHas(zones, o.zone) && maskHas(cts, o.ct) {
			return o, true
		}
	}
	return offer{}, false
}

// poolInfo is a ready NodePool compiled for solving.
type poolInfo struct {
	idx     int
	np      *model.NodePool
	class   *model.NodeClass
	kubelet *model.Kubelet
	// fixed are labels every node of the pool carries (template labels,
	// NodePool and node class names, region).
	fixed map[string]string
	// custom are the pool's requirements and labels on keys the instance
	// type and offering do not decide.
	custom scheduling.Requirements
	reqs   []model.Requirement
	types  []*poolType
	// all holds every type (shared, read-only).
	all bitset
	// frontier are the types worth opening new nodes of.
	frontier []*poolType
	zones    uint64
	cts      uint64
	// usage is the capacity of the pool's existing nodes and in-flight
	// NodeClaims.
	usage model.Resources
	// minValues are the pool's requirements with minValues set.
	minValues []model.Requirement
}

func (p *problem) kindOf(key string) keyKind {
	switch key {
	case model.LabelZone:
		return keyZone
	case model.LabelZoneID:
		return keyZoneID
	case model.LabelCapacityType:
		return keyCapacity
	case model.LabelHostname:
		return keyHostname
	case model.LabelNodeClass:
		return keyCustom
	}
	if p.typeKeys[key] || strings.HasPrefix(key, "karpenter.k8s.aws/") {
		return keyType
	}
	return keyCustom
}

// zoneMatches reports whether zone index z satisfies a zone or zone-ID
// requirement.
func (p *problem) zoneMatches(r model.Requirement, z int) bool {
	if p.kindOf(r.Key) == keyZoneID {
		id, ok := p.zoneIDs[z]
		return r.MatchesValue(id, ok)
	}
	return r.MatchesValue(p.zones[z], true)
}

func (p *problem) zoneMaskOf(reqs []model.Requirement) uint64 {
	m := p.allZones
	for _, r := range reqs {
		k := p.kindOf(r.Key)
		if k != keyZone && k != keyZoneID {
			continue
		}
		for z := range p.zones {
			if !p.zoneMatches(r, z) {
				m &^= 1 << uint(z)
			}
		}
	}
	return m
}

func (p *problem) ctMaskOf(reqs []model.Requirement) uint64 {
	m := p.allCTs
	for _, r := range reqs {
		if p.kindOf(r.Key) != keyCapacity {
			continue
		}
		for c := range p.cts {
			if !r.MatchesValue(p.cts[c], true) {
				m &^= 1 << uint(c)
			}
		}
	}
	return m
}

// buildPools compiles the ready NodePools, sorted by weight (highest
// first) then name, and records why the others get nothing.
func (p *problem) buildPools() {
	nps := slices.Clone(p.snap.NodePools)
	slices.SortFunc(nps, func(a, b *model.NodePool) int {
		return cmp.Or(cmp.Compare(b.Weight, a.Weight), cmp.Compare(a.Name, b.Name))
	})
	for _, np := range nps {
		pi, why := p.buildPool(np)
		if pi == nil {
			p.notReady = append(p.notReady, fmt.Sprintf("NodePool %s %s", np.Name, why))
			continue
		}
		pi.idx = len(p.pools)
		p.pools = append(p.pools, pi)
		p.poolByName[np.Name] = pi
	}
}

func (p *problem) buildPool(np *model.NodePool) (*poolInfo, string) {
	if !np.Ready {
		return nil, notReadyText("is not ready", np.NotReadyReason)
	}
	var class *model.NodeClass
	if np.NodeClass != "" {
		class = p.snap.NodeClass(np.NodeClass)
		if class == nil {
			return nil, fmt.Sprintf("references node class %s, which does not exist", np.NodeClass)
		}
		if !class.Ready {
			return nil, notReadyText("has node class "+class.Name+", which is not ready", class.NotReadyReason)
		}
	}
	pi := &poolInfo{np: np, class: class, reqs: np.Requirements}
	if class != nil {
		pi.kubelet = model.MergeKubelet(class.Kubelet, np.Kubelet)
	} else {
		pi.kubelet = model.MergeKubelet(nil, np.Kubelet)
	}
	pi.fixed = map[string]string{model.LabelNodePool: np.Name}
	if class != nil {
		pi.fixed[model.LabelNodeClass] = class.Name
	}
	if p.snap.Region != "" {
		pi.fixed[model.LabelRegion] = p.snap.Region
	}
	for k, v := range np.Labels {
		pi.fixed[k] = v
	}
	for _, k := range sortedKeys(pi.fixed) {
		pi.custom = pi.custom.With(k, scheduling.Set{Values: []string{pi.fixed[k]}, Gt: math.MinInt64, Lt: math.MaxInt64})
	}
	var typeReqs []model.Requirement
	for _, r := range np.Requirements {
		if r.MinValues > 0 {
			pi.minValues = append(pi.minValues, r)
		}
		switch p.kindOf(r.Key) {
		case keyType:
			typeReqs = append(typeReqs, r)
		case keyCustom:
			pi.custom = pi.custom.With(r.Key, scheduling.SetOf(r))
		}
	}
	for _, k := range pi.custom.Keys() {
		if s, _ := pi.custom.Get(k); s.Empty() {
			return nil, fmt.Sprintf("has contradicting requirements and labels on %s", k)
		}
	}
	pi.zones = p.zoneMaskOf(np.Requirements)
	if class != nil && len(class.Subnets) > 0 {
		var sub uint64
		for _, s := range class.Subnets {
			if z, ok := p.zoneIdx[s.Zone]; ok {
				sub |= 1 << uint(z)
			}
		}
		pi.zones &= sub
	}
	pi.cts = p.ctMaskOf(np.Requirements)
	for _, it := range p.types {
		labels := p.typeLabels[it]
		if !matchesAll(typeReqs, labels) {
			continue
		}
		pt := &poolType{it: it, labels: labels}
		for _, o := range it.Offerings {
			z, zok := p.zoneIdx[o.Zone]
			c, cok := p.ctIdx[o.CapacityType]
			if !o.Available || !zok || !cok || !maskHas(pi.zones, z) || !maskHas(pi.cts, c) {
				continue
			}
			pt.offers = append(pt.offers, offer{zone: z, ct: c, price: o.PricePerHour})
			pt.zones |= 1 << uint(z)
			pt.cts |= 1 << uint(c)
		}
		if len(pt.offers) == 0 {
			continue
		}
		slices.SortStableFunc(pt.offers, func(a, b offer) int {
			return cmp.Or(cmp.Compare(a.price, b.price), cmp.Compare(a.zone, b.zone), cmp.Compare(a.ct, b.ct))
		})
		pt.cheapest = pt.offers[0].price
		pt.capacity = it.Capacity
		pt.capacity.Pods = it.MaxPods(pi.kubelet)
		pt.alloc = it.Allocatable(pi.kubelet)
		p.addDaemons(pi, pt)
		pi.types = append(pi.types, pt)
	}
	slices.SortStableFunc(pi.types, func(a, b *poolType) int {
		return cmp.Or(cmp.Compare(a.cheapest, b.cheapest), cmp.Compare(a.it.Name, b.it.Name))
	})
	pi.all = newBitset(len(pi.types))
	for i, t := range pi.types {
		t.idx = i
		pi.all.set(i)
	}
	pi.frontier = frontier(pi)
	return pi, ""
}

// frontier returns the pool's types no other type beats on price and on
// every resource, cheapest first; with limits, every type (a smaller one
// may fit under a limit where a better one does not).
func frontier(pi *poolInfo) []*poolType {
	if len(pi.np.Limits) > 0 {
		return pi.types
	}
	var kept []*poolType
	for _, t := range pi.types {
		dominated := false
		for _, u := range kept {
			if u.cheapest <= t.cheapest && t.alloc.Fits(u.alloc) && len(u.daemonPorts) <= len(t.daemonPorts) && u.zones&t.zones == t.zones && u.cts&t.cts == t.cts {
				dominated = true
				break
			}
		}
		if !dominated {
			kept = append(kept, t)
		}
	}
	return kept
}

func notReadyText(what, reason string) string {
	if reason == "" {
		return what
	}
	return what + ": " + reason
}

func matchesAll(reqs []model.Requirement, labels map[string]string) bool {
	for _, r := range reqs {
		if !r.Matches(labels) {
			return false
		}
	}
	return true
}

// addDaemons reserves on a pool's instance type the DaemonSet pods that
// would run there: those that tolerate the pool's taints and whose node
// selector and required node affinity the node may satisfy.
func (p *problem) addDaemons(pi *poolInfo, pt *poolType) {
	for _, ds := range p.daemons {
		if _, ok := model.ToleratesAll(ds.pod.Tolerations, pi.np.Taints); !ok {
			continue
		}
		if !p.daemonMayRun(ds, func(r model.Requirement) bool { return p.newNodeMayMatch(r, pi, pt) }) {
			continue
		}
		pt.daemons = pt.daemons.Add(ds.requests)
		pt.daemonPorts = append(pt.daemonPorts, ds.ports...)
	}
	pt.alloc = pt.alloc.Sub(pt.daemons)
}

// newNodeMayMatch reports whether some node of the pool's type could
// satisfy r (some offering, the pool's custom labels).
func (p *problem) newNodeMayMatch(r model.Requirement, pi *poolInfo, pt *poolType) bool {
	switch p.kindOf(r.Key) {
	case keyType:
		return r.Matches(pt.labels)
	case keyZone, keyZoneID:
		for _, o := range pt.offers {
			if p.zoneMatches(r, o.zone) {
				return true
			}
		}
		return false
	case keyCapacity:
		for _, o := range pt.offers {
			if r.MatchesValue(p.cts[o.ct], true) {
				return true
			}
		}
		return false
	case keyHostname:
		return r.Operator == model.OpNotIn || r.Operator == model.OpExists
	}
	s, ok := pi.custom.Get(r.Key)
	if !ok {
		return r.MatchesValue("", false)
	}
	return !s.Intersect(scheduling.SetOf(r)).Empty()
}

// daemon is a DaemonSet's pod as it lands on new nodes.
type daemon struct {
	pod      *model.Pod
	requests model.Resources
	ports    []model.HostPort
	alts     [][]model.Requirement
}

func (p *problem) daemonMayRun(ds *daemon, may func(model.Requirement) bool) bool {
	for _, alt := range ds.alts {
		ok := true
		for _, r := range alt {
			if !may(r) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
