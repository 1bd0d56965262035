package provisioning

import (
	"fmt"
	"strings"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// reason explains, in terms a user can act on, why pods of the class are
// left without a place: the first obstacle in each NodePool, from taints
// to requirements, sizes, offerings, limits and topology.
func (r *run) reason(c *podClass) string {
	p := r.p
	if len(c.views[len(c.views)-1].alts) == 0 {
		return "the pod's node affinity has no term that can match a node"
	}
	if len(p.pools) == 0 {
		if len(p.notReady) == 0 {
			return "no NodePool exists and no existing node fits"
		}
		return "no ready NodePool (" + strings.Join(p.notReady, "; ") + ") and no existing node fits"
	}
	var parts []string
	for _, pi := range p.pools {
		parts = append(parts, r.poolReason(c, pi))
	}
	out := strings.Join(dedupe(parts), "; ")
	if len(p.notReady) > 0 {
		out += " (" + strings.Join(p.notReady, "; ") + ")"
	}
	return out
}

func (r *run) poolReason(c *podClass, pi *poolInfo) string {
	name := pi.np.Name
	if t, ok := model.ToleratesAll(c.rep.Tolerations, pi.np.Taints); !ok {
		return fmt.Sprintf("NodePool %s has taint %s, which the pod does not tolerate", name, t)
	}
	v := c.views[len(c.views)-1] // every preference given up
	var why string
	var typed, fitting bitset
	var firstReqs []model.Requirement
	for _, a := range v.alts {
		ap := a.pool[pi.idx]
		if !ap.ok {
			if why == "" {
				why = ap.why
			}
			continue
		}
		if firstReqs == nil {
			firstReqs = a.reqs
		}
		if typed == nil {
			typed, fitting = newBitset(len(pi.types)), newBitset(len(pi.types))
		}
		typed = or(typed, ap.types)
		fitting = or(fitting, ap.types.and(c.fit[pi.idx]))
	}
	if typed == nil {
		return why
	}
	reqText := describeRequirements(firstReqs)
	if !typed.any() {
		if reqText == "" {
			return fmt.Sprintf("NodePool %s has no instance type with an available offering", name)
		}
		return fmt.Sprintf("no instance type in NodePool %s has %s with an available offering", name, reqText)
	}
	if !fitting.any() {
		return fmt.Sprintf("no instance type in NodePool %s has %s", name, joinAnd(r.missing(c, pi, typed), reqText))
	}
	limitHit := ""
	anyUnder := false
	fitting.each(func(i int) {
		t := pi.types[i]
		if r.fitsLimits(pi, t) {
			anyUnder = true
			return
		}
		if limitHit == "" {
			limitHit = r.limitText(pi, t)
		}
	})
	if !anyUnder {
		return limitHit
	}
	for _, req := range pi.minValues {
		if !minValuesHold(&poolInfo{types: pi.types, minValues: []model.Requirement{req}}, func(t *poolType) bool { return fitting.has(t.idx) }) {
			return fmt.Sprintf("NodePool %s asks for minValues %d of %s, but fewer instance types that hold the pod differ in it", name, req.MinValues, req.Key)
		}
	}
	if w := r.why[c.idx]; w.g != nil {
		return fmt.Sprintf("NodePool %s cannot satisfy the pod's %s", name, w)
	}

	if len(c.ports) > 0 {
		return fmt.Sprintf("NodePool %s: the pod's host ports conflict with DaemonSet pods on its nodes", name)
	}
	return fmt.Sprintf("NodePool %s cannot satisfy the pod's scheduling constraints", name)
}

// missing names the requested resources no type that satisfies the
// requirements offers, or all of them when only the combination is too
// much.
func (r *run) missing(c *podClass, pi *poolInfo, typed bitset) string {
	var most, raw model.Resources
	typed.each(func(i int) {
		t := pi.types[i]
		most = most.Max(t.alloc)
		raw = raw.Max(t.alloc.Add(t.daemons))
	})
	var short []string
	for _, name := range c.req.Names() {
		if name == model.ResourcePods {
			continue
		}
		if c.req.Get(name) > most.Get(name) {
			short = append(short, model.FormatQuantity(name, c.req.Get(name))+" "+name)
		}
	}
	text := ""
	switch {
	case len(short) > 0:
		text = strings.Join(short, " and ")
	default:
		var all []string
		for _, name := range c.req.Names() {
			if name != model.ResourcePods {
				all = append(all, model.FormatQuantity(name, c.req.Get(name))+" "+name)
			}
		}
		text = strings.Join(all, " and ") + " together"
	}
	if !c.req.Fits(most) && c.req.Fits(raw) {
		text += " left after its DaemonSet pods"
	}
	return text
}

func (r *run) limitText(pi *poolInfo, t *poolType) string {
	for _, name := range sortedKeys(pi.np.Limits) {
		lim := pi.np.Limits[name]
		if r.usage[pi.idx].Get(name)+t.capacity.Get(name) > lim {
			return fmt.Sprintf("NodePool %s %s limit %s reached", pi.np.Name, name, limitQuantity(name, lim))
		}
	}
	return fmt.Sprintf("NodePool %s limits reached", pi.np.Name)
}

func limitQuantity(name string, v int64) string {
	switch name {
	case model.ResourceCPU:
		return model.FormatQuantity(name, v)
	case model.ResourceMemory, model.ResourceEphemeralStorage:
		return strings.ReplaceAll(model.FormatBytes(v), " ", "")
	}
	return fmt.Sprint(v)
}

var shortKeys = map[string]string{
	model.LabelArch:         "arch",
	model.LabelOS:           "os",
	model.LabelZone:         "zone",
	model.LabelInstanceType: "instance type",
	model.LabelCapacityType: "capacity type",
}

// describeRequirements formats requirements the way people say them:
// "arch arm64 and zone us-east-1a".
func describeRequirements(reqs []model.Requirement) string {
	var parts []string
	for _, r := range reqs {
		name, short := shortKeys[r.Key]
		switch {
		case short && r.Operator == model.OpIn:
			parts = append(parts, name+" "+strings.Join(r.Values, " or "))
		case r.Operator == model.OpIn && len(r.Values) == 1:
			parts = append(parts, r.Key+"="+r.Values[0])
		default:
			parts = append(parts, r.String())
		}
	}
	return strings.Join(parts, " and ")
}

func joinAnd(a, b string) string {
	if b == "" {
		return a
	}
	return a + " and " + b
}

func or(a, b bitset) bitset {
	out := make(bitset, len(a))
	for i := range a {
		out[i] = a[i] | b[i]
	}
	return out
}

func dedupe(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// blockKind is how a topology constraint kept a pod off a node.
type blockKind int

const (
	blockSpread    blockKind = iota // the group's skew or anti-affinity
	blockKeepLive                   // room kept for the group's own pods
	blockTheirAnti                  // pods there have anti-affinity to it
	blockNoMatch                    // affinity, but no pod matches at all
	blockAffinity                   // affinity, and no match where it could go
)

// blocker records the last topology constraint that kept a class's pods
// off a node; the text is built only for the reason.
type blocker struct {
	kind blockKind
	g    *group
}

func whyOf(kind blockKind, g *group) blocker { return blocker{kind: kind, g: g} }

// String describes the constraint for an unschedulable reason.
func (b blocker) String() string {
	switch b.kind {
	case blockKeepLive:
		return "room that " + b.g.desc + " keeps for its pods"
	case blockTheirAnti:
		return "pods already there have " + b.g.desc
	case blockNoMatch:
		return b.g.desc + ", but no pod matches " + selectorText(b.g.sel)
	case blockAffinity:
		return b.g.desc + " where the matching pods are"
	}
	return b.g.desc
}
