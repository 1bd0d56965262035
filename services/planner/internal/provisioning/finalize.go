package provisioning

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/flotilla-dev/flotilla/services/planner/internal/scheduling"
)

// Bounds on what a NodeClaim plan lists.
const (
	maxTypeOptions  = 60
	maxOfferOptions = 100
)

// sized is a new node with its final instance type choice.
type sized struct {
	n     *node
	shape *claimShape
}

// claimShape is what NodeClaims of the same make share: the acceptable
// types and offerings, the requirements and labels. Plans share these
// slices and maps between NodeClaims; treat them as read-only.
type claimShape struct {
	options   []*poolType
	offer     offer
	typeNames []string
	offers    []model.InstanceOption
	reqs      []model.Requirement
	labels    map[string]string
}

// sizeKey identifies new nodes that right-size alike.
type sizeKey struct {
	pool, typ  int
	used       shape
	zones, cts uint64
	types      uint64
	extra      string
}

// rightSize picks, for every new node, the cheapest instance type that holds
// its pods and satisfies their requirements, and the list of acceptable
// types, keeping each pool within its limits whatever type a fleet request
// ends up launching.
func (r *run) rightSize() []*sized {
	usage := slices.Clone(r.usage)
	optCache := map[sizeKey][]*poolType{}
	shapeCache := map[string]*claimShape{}
	var keyBuf []byte
	var out []*sized
	for _, n := range r.nodes {
		if n.kind != kindNew || len(n.placed) == 0 {
			continue
		}
		key, cacheable := r.sizeKey(n)
		opts, ok := optCache[key]
		if !ok || !cacheable {
			opts = r.options(n)
			if cacheable {
				optCache[key] = opts
			}
		}
		if len(n.pool.np.Limits) > 0 {
			opts = r.withinLimits(n, opts, usage)
		}
		sk := ""
		if cacheable && len(n.pool.np.Limits) == 0 {
			keyBuf = shapeKey(keyBuf[:0], n, opts)
			sk = string(keyBuf)
		}
		cs := shapeCache[sk]
		if cs == nil || sk == "" {
			cs = r.claimShape(n, opts)
			if sk != "" {
				shapeCache[sk] = cs
			}
		}
		out = append(out, &sized{n: n, shape: cs})
	}
	return out
}

// shapeKey appends to buf what a node's claim shape depends on: its pool,
// options, zones, capacity types and narrowed custom labels. Nodes with
// equal keys share one claimShape.
func shapeKey(buf []byte, n *node, opts []*poolType) []byte {
	buf = binary.AppendUvarint(buf, uint64(n.pool.idx))
	buf = binary.AppendUvarint(buf, n.zones)
	buf = binary.AppendUvarint(buf, n.cts)
	buf = binary.AppendUvarint(buf, uint64(len(opts)))
	for _, t := range opts {
		buf = binary.AppendUvarint(buf, uint64(t.idx))
	}
	if n.narrowed {
		buf = append(buf, n.custom.String()...)
	}
	return buf
}

// withinLimits keeps the options that keep the pool within its limits even
// if the largest of them is launched; the node's own type, already counted,
// always stays.
func (r *run) withinLimits(n *node, opts []*poolType, usage []model.Resources) []*poolType {
	pi := n.pool
	usage[pi.idx] = usage[pi.idx].Sub(n.typ.capacity)
	var kept []*poolType
	foot := n.typ.capacity
	for _, t := range opts {
		f := foot.Max(t.capacity)
		if t != n.typ && !limitsHold(pi, usage[pi.idx].Add(f)) {
			continue
		}
		kept = append(kept, t)
		foot = f
	}
	usage[pi.idx] = usage[pi.idx].Add(foot)
	return kept
}

func limitsHold(pi *poolInfo, usage model.Resources) bool {
	for name, lim := range pi.np.Limits {
		if usage.Get(name) > lim {
			return false
		}
	}
	return true
}

func (r *run) sizeKey(n *node) (sizeKey, bool) {
	k := sizeKey{pool: n.pool.idx, typ: n.typ.idx, used: shapeOf(n.used), zones: n.zones, cts: n.cts}
	h := fnv.New64a()
	var buf [8]byte
	for _, w := range n.types {
		for i := range buf {
			buf[i] = byte(w >> (8 * i))
		}
		h.Write(buf[:])
	}
	k.types = h.Sum64()
	keys, ports := r.typeKeys(n), r.ports(n)
	if len(keys) > 0 || len(ports) > 0 {
		k.extra = fmt.Sprint(keys, ports)
	}
	return k, len(n.used.Extended) == 0
}

func (r *run) typeKeys(n *node) []string {
	var keys []string
	for _, pl := range n.placed {
		for _, tk := range r.view(r.p.classes[pl.class]).keys {
			if key := r.p.topo.keys[tk]; r.p.topoKind[tk] == keyType && !slices.Contains(keys, key) {
				keys = append(keys, key)
			}
		}
	}
	return keys
}

func (r *run) ports(n *node) []model.HostPort {
	var ports []model.HostPort
	for _, pl := range n.placed {
		ports = append(ports, r.p.classes[pl.class].ports...)
	}
	return ports
}

// options returns the pool's types that can replace a new node's type,
// cheapest first (at most maxTypeOptions, plus the node's own type): they
// satisfy every placed pod's requirements, hold the pods with the type's
// own DaemonSet overhead, keep the values of type-decided topology keys, and
// have an offering in the node's zones and capacity types.
func (r *run) options(n *node) []*poolType {
	typeKeys, ports := r.typeKeys(n), r.ports(n)
	list := r.pricedBuf[:0]
	defer func() { r.pricedBuf = list[:0] }()
	byPrice := func(a, b priced) int { return cmp.Or(cmp.Compare(a.price, b.price), cmp.Compare(a.t.idx, b.t.idx)) }
	// Pool types come cheapest first by their cheapest offering, a lower
	// bound of their price here: once maxTypeOptions are in, a type whose
	// bound exceeds the dearest of them cannot get in, nor can later ones.
	bound := math.Inf(1)
	breadth := len(n.pool.minValues) > 0 // minValues: every acceptable type counts
	for _, t := range n.pool.types {
		if t.cheapest > bound && !breadth {
			break
		}
		if !n.types.has(t.idx) || t != n.typ && (!n.used.Fits(t.alloc) || portsConflict(t.daemonPorts, ports) || !sameLabels(t, n.typ, typeKeys)) {
			continue
		}
		if o, ok := t.cheapestIn(n.zones, n.cts); ok {
			list = append(list, priced{t: t, price: o.price})
		}
		if len(list) == 2*maxTypeOptions && !breadth {
			slices.SortStableFunc(list, byPrice)
			list = list[:maxTypeOptions]
			bound = list[maxTypeOptions-1].price
		}
	}
	slices.SortStableFunc(list, byPrice)
	if len(list) > maxTypeOptions && len(n.pool.minValues) == 0 {
		list = list[:maxTypeOptions]
	}
	out := make([]*poolType, 0, len(list)+1)
	for _, x := range list {
		out = append(out, x.t)
	}
	if !slices.Contains(out, n.typ) {
		out = append(out, n.typ) // already counted against the limits
	}
	return out
}

// priced is an instance type with its price on a node.
type priced struct {
	t     *poolType
	price float64
}

func sameLabels(a, b *poolType, keys []string) bool {
	for _, k := range keys {
		if a.labels[k] != b.labels[k] {
			return false
		}
	}
	return true
}

// plan builds the model plan from the run.
func (r *run) plan() *model.Plan {
	p := r.p
	podsOn := make([][]string, len(r.nodes))
	var unschedulable []*model.UnschedulablePod
	for _, c := range p.classes {
		i := 0
		for _, a := range r.assigned[c.idx] {
			for _, pod := range c.pods[i : i+a.count] {
				podsOn[a.class] = append(podsOn[a.class], pod.Key())
			}
			i += a.count
		}
		if i < len(c.pods) {
			reason := r.reason(c)
			for _, pod := range c.pods[i:] {
				unschedulable = append(unschedulable, &model.UnschedulablePod{Pod: pod.Key(), Reason: reason})
			}
		}
	}
	out := &model.Plan{}
	for _, n := range r.nodes {
		if n.kind == kindNew {
			continue
		}
		pods := append(slices.Clone(n.base.nominated), podsOn[n.idx]...)
		if len(pods) == 0 {
			continue
		}
		slices.Sort(pods)
		out.Placements = append(out.Placements, &model.Placement{Node: n.base.name, Pods: pods, InFlight: n.kind == kindInFlight})
	}
	names := map[string]bool{}
	used := usedNames(r.p.snap)
	for _, s := range r.rightSize() {
		pods := podsOn[s.n.idx]
		slices.Sort(pods)
		nc := r.nodeClaim(s, pods)
		for i := 2; names[nc.Name] || used[nc.Name]; i++ {
			nc.Name = claimName(s.n.pool.np.Name, append(slices.Clone(pods), strconv.Itoa(i)))
		}
		names[nc.Name] = true
		out.NodeClaims = append(out.NodeClaims, nc)
		out.TotalPricePerHour += nc.PricePerHour
	}
	slices.SortFunc(out.NodeClaims, func(a, b *model.NodeClaimPlan) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(out.Placements, func(a, b *model.Placement) int { return cmp.Compare(a.Node, b.Node) })
	slices.SortFunc(unschedulable, func(a, b *model.UnschedulablePod) int { return cmp.Compare(a.Pod, b.Pod) })
	out.Unschedulable = unschedulable
	out.TotalPricePerHour = math.Round(out.TotalPricePerHour*1e6) / 1e6
	out.ID = planID(out)
	return out
}

// nodeClaim describes a right-sized new node.
func (r *run) nodeClaim(s *sized, pods []string) *model.NodeClaimPlan {
	n, pi, cs := s.n, s.n.pool, s.shape
	nc := &model.NodeClaimPlan{
		Name:                claimName(pi.np.Name, pods),
		NodePool:            pi.np.Name,
		NodeClass:           pi.np.NodeClass,
		InstanceType:        cs.options[0].it.Name,
		Zone:                r.p.zones[cs.offer.zone],
		CapacityType:        r.p.cts[cs.offer.ct],
		PricePerHour:        cs.offer.price,
		InstanceTypeOptions: cs.typeNames,
		Options:             cs.offers,
		Requirements:        cs.reqs,
		Labels:              cs.labels,
		Pods:                pods,
		Requests:            n.used.Add(cs.options[0].daemons),
		Taints:              pi.np.Taints,
		StartupTaints:       pi.np.StartupTaints,
		NodePoolHash:        pi.np.Hash,
	}
	if pi.class != nil {
		nc.NodeClassHash = pi.class.Hash
	}
	return nc
}

// claimShape builds what NodeClaims with these options share.
func (r *run) claimShape(n *node, opts []*poolType) *claimShape {
	p, pi := r.p, n.pool
	cs := &claimShape{options: opts}
	cs.offer, _ = opts[0].cheapestIn(n.zones, n.cts)
	bound := math.Inf(1)
	var offers []typeOffer
	for _, t := range opts {
		cs.typeNames = append(cs.typeNames, t.it.Name)
		if t.cheapest > bound {
			continue
		}
		for _, o := range t.offers {
			if maskHas(n.zones, o.zone) && maskHas(n.cts, o.ct) {
				offers = append(offers, typeOffer{t: t, offer: o})
			}
		}
		if len(offers) >= maxOfferOptions {
			sortTypeOffers(offers)
			offers = offers[:maxOfferOptions]
			bound = offers[maxOfferOptions-1].price
		}
	}
	sortTypeOffers(offers)
	cs.offers = make([]model.InstanceOption, len(offers))
	for i, o := range offers {
		cs.offers[i] = model.InstanceOption{InstanceType: o.t.it.Name, Zone: p.zones[o.zone], CapacityType: p.cts[o.ct], PricePerHour: o.price}
	}
	// Requirements: the pool's, its custom labels narrowed by the pods,
	// and the zones, capacity types and instance types left.
	reqs := scheduling.NewRequirements(pi.reqs...)
	for _, k := range n.custom.Keys() {
		set, _ := n.custom.Get(k)
		reqs = reqs.With(k, set)
	}
	anySet := scheduling.Set{Gt: math.MinInt64, Lt: math.MaxInt64}
	zs, cts, its := anySet, anySet, anySet
	for z := range p.zones {
		if maskHas(n.zones, z) && anyOffer(opts, z, -1, n.zones, n.cts) {
			zs.Values = append(zs.Values, p.zones[z])
		}
	}
	for c := range p.cts {
		if maskHas(n.cts, c) && anyOffer(opts, -1, c, n.zones, n.cts) {
			cts.Values = append(cts.Values, p.cts[c])
		}
	}
	its.Values = slices.Sorted(slices.Values(cs.typeNames))
	reqs = reqs.With(model.LabelZone, zs).With(model.LabelCapacityType, cts).With(model.LabelInstanceType, its)
	reqs = reqs.With(model.LabelNodePool, scheduling.Set{Values: []string{pi.np.Name}, Gt: math.MinInt64, Lt: math.MaxInt64})
	cs.reqs = reqs.Model()
	for _, m := range pi.minValues {
		for i := range cs.reqs {
			if cs.reqs[i].Key == m.Key {
				cs.reqs[i].MinValues = m.MinValues
			}
		}
	}
	cs.labels = maps.Clone(pi.fixed)
	delete(cs.labels, model.LabelRegion)
	for k, v := range n.custom.Labels() {
		cs.labels[k] = v
	}
	return cs
}

// typeOffer is an offering of a pool's instance type.
type typeOffer struct {
	t *poolType
	offer
}

// sortTypeOffers orders offerings by price, then instance type name, zone
// and capacity type (zone and capacity type indices follow their names).
func sortTypeOffers(o []typeOffer) {
	slices.SortFunc(o, func(a, b typeOffer) int {
		if a.price != b.price {
			return cmp.Compare(a.price, b.price)
		}
		return cmp.Or(cmp.Compare(a.t.it.Name, b.t.it.Name), cmp.Compare(a.zone, b.zone), cmp.Compare(a.ct, b.ct))
	})
}

// anyOffer reports whether one of the types has an offering in the zone and
// capacity type (-1 for any) within the masks.
func anyOffer(types []*poolType, zone, ct int, zones, cts uint64) bool {
	for _, t := range types {
		for _, o := range t.offers {
			if (zone < 0 || o.zone == zone) && (ct < 0 || o.ct == ct) && maskHas(zones, o.zone) && maskHas(cts, o.ct) {
				return true
			}
		}
	}
	return false
}

// usedNames are the names of NodeClaims that exist and can no longer stand
// for the pods their name was made from: registered (the scheduler may have
// bound other pods to their node) or being deleted. A new claim that would
// get one of these names takes the next one instead. A claim still in flight
// keeps its name, so the same pods asked for again find it and nothing
// launches twice.
func usedNames(s *model.Snapshot) map[string]bool {
	used := map[string]bool{}
	for _, c := range s.NodeClaims {
		registered, _ := c.Condition("Registered")
		if c.NodeName != "" || c.Deleting || registered.Status == "True" {
			used[c.Name] = true
		}
	}
	return used
}

// claimName is "<nodepool>-<10 hex digits of a hash of the pod keys>",
// a valid DNS-1123 name: the same pods always give the same name.
func claimName(pool string, pods []string) string {
	h := sha256.New()
	for _, p := range pods {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	sum := hex.EncodeToString(h.Sum(nil))[:10]
	prefix := strings.ToLower(pool)
	if len(prefix) > 253-11 {
		prefix = strings.TrimRight(prefix[:253-11], "-.")
	}
	return prefix + "-" + sum
}

// planID hashes a plan's content.
func planID(p *model.Plan) string {
	h := sha256.New()
	w := func(s ...string) {
		for _, x := range s {
			h.Write([]byte(x))
			h.Write([]byte{0})
		}
	}
	for _, nc := range p.NodeClaims {
		w("nc", nc.Name, nc.InstanceType, nc.Zone, nc.CapacityType)
		w(nc.Pods...)
	}
	for _, pl := range p.Placements {
		w("pl", pl.Node)
		w(pl.Pods...)
	}
	for _, u := range p.Unschedulable {
		w("u", u.Pod, u.Reason)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
