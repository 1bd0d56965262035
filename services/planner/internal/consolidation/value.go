package consolidation

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// rates prices resources the way a NodePool buys them: the instance types
// it may launch, reduced to those no cheaper type beats in every resource,
// with the cheapest offering the pool allows. They value the pods on a node
// (what their room would cost on the best type for them), which orders the
// under-utilisation search, and they estimate what new room costs.
type rates struct {
	types []rateType
	// perCPU, perMemory and perPod are the lowest prices of one
	// millicore, one byte and one pod slot over the types.
	perCPU, perMemory, perPod float64
	memo                      map[shape]float64
	// spot is set when the pool may launch spot capacity.
	spot bool
}

type rateType struct {
	price float64
	alloc model.Resources
}

// shape identifies requests with the same value.
type shape struct {
	cpu, mem, pods, storage int64
	ext                     string
}

func shapeOf(r model.Resources) shape {
	s := shape{cpu: r.CPU, mem: r.Memory, pods: r.Pods, storage: r.EphemeralStorage}
	if len(r.Extended) > 0 {
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(r.Extended)) {
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(model.FormatQuantity(k, r.Extended[k]))
			b.WriteByte(';')
		}
		s.ext = b.String()
	}
	return s
}

// unpriceable is the value of requests no type of the pool can hold: such
// pods make their node worth keeping.
const unpriceable = 1e6

// ratesOf returns the pool's rates, computed once per run.
func (st *state) ratesOf(pool *model.NodePool) *rates {
	if r, ok := st.rates[pool.Name]; ok {
		return r
	}
	r := &rates{memo: map[shape]float64{}, perCPU: math.Inf(1), perMemory: math.Inf(1), perPod: math.Inf(1)}
	var k *model.Kubelet
	class := st.classes[pool.NodeClass]
	if class != nil {
		k = model.MergeKubelet(class.Kubelet, pool.Kubelet)
	} else {
		k = model.MergeKubelet(nil, pool.Kubelet)
	}
	var all []rateType
	for _, it := range st.s.InstanceTypes {
		price, spot, ok := st.cheapestAllowed(pool, class, it)
		if !ok {
			continue
		}
		r.spot = r.spot || spot
		all = append(all, rateType{price: price, alloc: it.Allocatable(k)})
	}
	slices.SortStableFunc(all, func(a, b rateType) int {
		return cmp.Or(cmp.Compare(a.price, b.price), cmp.Compare(b.alloc.CPU, a.alloc.CPU), cmp.Compare(b.alloc.Memory, a.alloc.Memory))
	})
	for _, t := range all {
		dominated := false
		for _, u := range r.types {
			if t.alloc.Fits(u.alloc) {
				dominated = true
				break
			}
		}
		if dominated {
			continue
		}
		r.types = append(r.types, t)
		if t.alloc.CPU > 0 {
			r.perCPU = min(r.perCPU, t.price/float64(t.alloc.CPU))
		}
		if t.alloc.Memory > 0 {
			r.perMemory = min(r.perMemory, t.price/float64(t.alloc.Memory))
		}
		if t.alloc.Pods > 0 {
			r.perPod = min(r.perPod, t.price/float64(t.alloc.Pods))
		}
	}
	st.rates[pool.Name] = r
	return r
}

// value is what room for requests req costs on the type that holds it most
// cheaply, counting the share of the type it takes in its scarcest
// resource.
func (r *rates) value(req model.Resources) float64 {
	k := shapeOf(req)
	if v, ok := r.memo[k]; ok {
		return v
	}
	best := math.Inf(1)
	for _, t := range r.types {
		if !req.Fits(t.alloc) {
			continue
		}
		best = min(best, t.price*share(req, t.alloc))
	}
	if math.IsInf(best, 1) {
		best = unpriceable
	}
	r.memo[k] = best
	return best
}

// cost estimates what new room for the given resources costs: the most
// expensive of the resources, each at its lowest unit price.
func (r *rates) cost(cpu, memory, pods float64) float64 {
	c := 0.0
	for _, x := range [][2]float64{{cpu, r.perCPU}, {memory, r.perMemory}, {pods, r.perPod}} {
		if x[0] > 0 && !math.IsInf(x[1], 1) {
			c = max(c, x[0]*x[1])
		}
	}
	return c
}

// share is the largest fraction of avail that req takes in any resource.
func share(req, avail model.Resources) float64 {
	s := 0.0
	f := func(r, a int64) {
		if r > 0 && a > 0 {
			s = max(s, float64(r)/float64(a))
		}
	}
	f(req.CPU, avail.CPU)
	f(req.Memory, avail.Memory)
	f(req.Pods, avail.Pods)
	f(req.EphemeralStorage, avail.EphemeralStorage)
	for k, v := range req.Extended {
		f(v, avail.Extended[k])
	}
	return s
}

// cheapestAllowed returns the lowest price of an available offering of it
// that the pool's requirements and node class allow, and whether the pool
// may buy it as spot.
func (st *state) cheapestAllowed(pool *model.NodePool, class *model.NodeClass, it *model.InstanceType) (price float64, spot, ok bool) {
	labels := st.labelsOf(it)
	for _, r := range pool.Requirements {
		if keyOf(r.Key, labels) == keyType && !r.Matches(labels) {
			return 0, false, false
		}
	}
	var zones map[string]bool
	if class != nil && len(class.Subnets) > 0 {
		zones = map[string]bool{}
		for _, s := range class.Subnets {
			zones[s.Zone] = true
		}
	}
	for _, o := range it.Offerings {
		if !o.Available || zones != nil && !zones[o.Zone] {
			continue
		}
		if !offeringAllowed(pool.Requirements, o) {
			continue
		}
		spot = spot || o.CapacityType == model.CapacitySpot
		if !ok || o.PricePerHour < price {
			price, ok = o.PricePerHour, true
		}
	}
	return price, spot, ok
}

func offeringAllowed(reqs []model.Requirement, o model.Offering) bool {
	for _, r := range reqs {
		switch r.Key {
		case model.LabelZone:
			if !r.MatchesValue(o.Zone, true) {
				return false
			}
		case model.LabelZoneID:
			if !r.MatchesValue(o.ZoneID, o.ZoneID != "") {
				return false
			}
		case model.LabelCapacityType:
			if !r.MatchesValue(o.CapacityType, true) {
				return false
			}
		}
	}
	return true
}

func (st *state) labelsOf(it *model.InstanceType) map[string]string {
	l, ok := st.typeLabels[it]
	if !ok {
		l = it.NodeLabels()
		st.typeLabels[it] = l
	}
	return l
}

type keyKind int

const (
	keyCustom keyKind = iota
	keyType
	keyOffering
)

// keyOf says what decides a label: the offering (zone, capacity type), the
// instance type, or the NodePool (anything else).
func keyOf(key string, typeLabels map[string]string) keyKind {
	switch key {
	case model.LabelZone, model.LabelZoneID, model.LabelCapacityType:
		return keyOffering
	case model.LabelInstanceType, model.LabelArch, model.LabelOS:
		return keyType
	}
	if _, ok := typeLabels[key]; ok || strings.HasPrefix(key, "karpenter.k8s.aws/") {
		return keyType
	}
	return keyCustom
}
