package provisioning

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// groupKind is the kind of a topology group.
type groupKind int

const (
	groupSpread groupKind = iota
	groupAffinity
	groupAnti
)

// group is a set of pods counted per topology domain: the pods a spread
// constraint or a pod (anti-)affinity term selects. Owners are the pods
// carrying the constraint.
type group struct {
	idx  int
	kind groupKind
	key  string
	// tk indexes topo.keys; -1 for kubernetes.io/hostname, whose domains
	// are the nodes themselves.
	tk         int
	sel        *model.LabelSelector
	allNS      bool
	namespaces []string
	// Spread constraints only.
	maxSkew    int32
	minDomains int32
	// viable are the domains the owners may land in (spread only);
	// isViable is the same as a set.
	viable   []int32
	isViable bitset
	// members are the classes the selector selects.
	members bitset
	sig     string
	// desc describes the constraint for unschedulable reasons.
	desc string
}

func (g *group) hostname() bool { return g.tk < 0 }

// selects reports whether the group's selector selects a pod with these
// labels in namespace ns.
func (g *group) selects(ns string, labels map[string]string) bool {
	if !g.allNS && !slices.Contains(g.namespaces, ns) {
		return false
	}
	return g.sel.Matches(labels)
}

// topoKeys interns topology keys and their values.
type topoKeys struct {
	keys   []string
	idx    map[string]int
	values [][]string
	valIdx []map[string]int32
}

func (t *topoKeys) key(k string) int {
	if t.idx == nil {
		t.idx = map[string]int{}
	}
	if i, ok := t.idx[k]; ok {
		return i
	}
	t.idx[k] = len(t.keys)
	t.keys = append(t.keys, k)
	t.values = append(t.values, nil)
	t.valIdx = append(t.valIdx, map[string]int32{})
	return len(t.keys) - 1
}

func (t *topoKeys) value(k int, v string) int32 {
	if i, ok := t.valIdx[k][v]; ok {
		return i
	}
	i := int32(len(t.values[k]))
	t.valIdx[k][v] = i
	t.values[k] = append(t.values[k], v)
	return i
}

func (t *topoKeys) lookup(k int, v string) int32 {
	if i, ok := t.valIdx[k][v]; ok {
		return i
	}
	return -1
}

// buildGroups creates the topology groups of the pending pods' constraints
// and of the bound pods' required anti-affinity, and the classes'
// preferences.
func (p *problem) buildGroups() {
	bySig := map[string]*group{}
	intern := func(g *group) int {
		g.sig = fmt.Sprintf("%d|%s|%s|%t|%s|%d|%d|%v", g.kind, g.key, selectorSig(g.sel), g.allNS,
			strings.Join(g.namespaces, ","), g.maxSkew, g.minDomains, g.viable)
		if old, ok := bySig[g.sig]; ok {
			return old.idx
		}
		g.idx = len(p.groups)
		if g.key == model.LabelHostname {
			g.tk = -1
		} else {
			g.tk = p.topo.key(g.key)
		}
		bySig[g.sig] = g
		p.groups = append(p.groups, g)
		return g.idx
	}
	term := func(kind groupKind, ns string, t model.PodAffinityTerm) *group {
		g := &group{kind: kind, key: t.TopologyKey, sel: t.Selector, allNS: t.AllNamespaces}
		if !t.AllNamespaces {
			g.namespaces = slices.Clone(t.Namespaces)
			if len(g.namespaces) == 0 {
				g.namespaces = []string{ns}
			}
			slices.Sort(g.namespaces)
		}
		what := map[groupKind]string{groupAffinity: "pod affinity", groupAnti: "pod anti-affinity"}[kind]
		g.desc = fmt.Sprintf("%s to %s on %s", what, selectorText(t.Selector), t.TopologyKey)
		return g
	}
	// Zone and capacity-type values keep the problem's order so that a
	// domain index is the zone or capacity type index.
	zk := p.topo.key(model.LabelZone)
	for _, z := range p.zones {
		p.topo.value(zk, z)
	}
	ck := p.topo.key(model.LabelCapacityType)
	for _, c := range p.cts {
		p.topo.value(ck, c)
	}
	for _, c := range p.classes {
		pod := c.rep
		for _, t := range pod.PodAffinity {
			c.affinity = append(c.affinity, intern(term(groupAffinity, pod.Namespace, t)))
		}
		for _, t := range pod.PodAntiAffinity {
			c.anti = append(c.anti, intern(term(groupAnti, pod.Namespace, t)))
		}
		for _, t := range pod.PreferredPodAffinity {
			g := intern(term(groupAffinity, pod.Namespace, t.Term))
			c.prefs = append(c.prefs, preference{kind: prefPodAffinity, weight: t.Weight, group: g})
		}
		for _, t := range pod.PreferredPodAntiAffinity {
			g := intern(term(groupAnti, pod.Namespace, t.Term))
			c.prefs = append(c.prefs, preference{kind: prefPodAntiAffinity, weight: t.Weight, group: g})
		}
		for _, t := range pod.NodeAffinity.Preferred {
			c.prefs = append(c.prefs, preference{kind: prefNodeAffinity, weight: t.Weight, term: t.Term})
		}
		for _, s := range pod.TopologySpread {
			g := intern(p.spreadGroup(c, s))
			if s.DoNotSchedule {
				c.spread = append(c.spread, g)
			} else {
				c.prefs = append(c.prefs, preference{kind: prefSpread, group: g})
			}
		}
		slices.SortStableFunc(c.prefs, func(a, b preference) int {
			return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.weight, b.weight))
		})
	}
	// Bound pods' required anti-affinity keeps matching pods away.
	for _, b := range p.existing {
		for _, pod := range b.bound {
			for _, t := range pod.PodAntiAffinity {
				intern(term(groupAnti, pod.Namespace, t))
			}
		}
	}
	for _, g := range p.groups {
		g.members = newBitset(len(p.classes))
		for _, c := range p.classes {
			if g.selects(c.rep.Namespace, c.rep.Labels) {
				g.members.set(c.idx)
				c.matched = append(c.matched, g.idx)
			}
		}
	}
	// Domain values every node may take.
	for _, b := range p.existing {
		for k := range p.topo.keys {
			if v, ok := b.labels[p.topo.keys[k]]; ok {
				p.topo.value(k, v)
			}
		}
	}
	for _, pi := range p.pools {
		for k, key := range p.topo.keys {
			if s, ok := pi.custom.Get(key); ok {
				if v, ok := s.Single(); ok {
					p.topo.value(k, v)
				}
			}
			if p.kindOf(key) == keyType {
				for _, t := range pi.types {
					if v, ok := t.labels[key]; ok {
						p.topo.value(k, v)
					}
				}
			}
			if p.kindOf(key) == keyZoneID {
				for _, id := range p.zoneIDs {
					p.topo.value(k, id)
				}
			}
		}
	}
	for _, c := range p.classes {
		c.exclusive = p.isExclusive(c)
	}
	for _, g := range p.groups {
		if g.hostname() {
			continue
		}
		g.isViable = newBitset(len(p.topo.values[g.tk]))
		for _, d := range g.viable {
			g.isViable.set(int(d))
		}
	}
}

// spreadGroup builds the group of one spread constraint of class c. Its
// domains are those of the existing nodes c may use and of the new nodes
// c could get, as Karpenter counts them.
func (p *problem) spreadGroup(c *podClass, s model.TopologySpreadConstraint) *group {
	sel := s.Selector
	if sel != nil && len(s.MatchLabelKeys) > 0 {
		sel = &model.LabelSelector{Requirements: slices.Clone(sel.Requirements)}
		for _, k := range s.MatchLabelKeys {
			if v, ok := c.rep.Labels[k]; ok {
				sel.Requirements = append(sel.Requirements, model.Requirement{Key: k, Operator: model.OpIn, Values: []string{v}})
			}
		}
	}
	g := &group{kind: groupSpread, key: s.TopologyKey, sel: sel, namespaces: []string{c.rep.Namespace},
		maxSkew: s.MaxSkew, minDomains: s.MinDomains}
	g.desc = fmt.Sprintf("topology spread on %s (maxSkew %d) of %s", s.TopologyKey, s.MaxSkew, selectorText(sel))
	if s.TopologyKey == model.LabelHostname {
		return g
	}
	tk := p.topo.key(s.TopologyKey)
	seen := map[int32]bool{}
	add := func(v string) {
		d := p.topo.value(tk, v)
		if !seen[d] {
			seen[d] = true
			g.viable = append(g.viable, d)
		}
	}
	for _, v := range p.existingDomains(c, s) {
		add(v)
	}
	for _, pi := range p.pools {
		if _, ok := model.ToleratesAll(c.rep.Tolerations, pi.np.Taints); !ok && s.NodeTaintsPolicyHonor {
			continue
		}
		for _, reqs := range c.required {
			for _, v := range p.newDomains(pi, reqs, s.TopologyKey) {
				add(v)
			}
		}
	}
	slices.Sort(g.viable)
	return g
}

type existingKey struct {
	key, alts, tolerations string
	ignoreAffinity         bool
}

// existingDomains returns the values of a spread constraint's key on the
// existing nodes the class's pods count as domains: those their required
// node affinity admits (unless the policy ignores it) and, when the policy
// honours taints, whose taints they tolerate.
func (p *problem) existingDomains(c *podClass, s model.TopologySpreadConstraint) []string {
	ek := existingKey{key: s.TopologyKey, ignoreAffinity: s.NodeAffinityPolicyIgnore}
	if !s.NodeAffinityPolicyIgnore {
		for _, a := range c.required {
			ek.alts += requirementsSig(a) + "|"
		}
	}
	if s.NodeTaintsPolicyHonor {
		ek.tolerations = fmt.Sprint(c.rep.Tolerations)
	}
	if v, ok := p.existingCache[ek]; ok {
		return v
	}
	var out []string
	seen := map[string]bool{}
	for _, b := range p.existing {
		v, ok := b.labels[s.TopologyKey]
		if !ok || seen[v] {
			continue
		}
		if s.NodeTaintsPolicyHonor {
			if _, ok := model.ToleratesAll(c.rep.Tolerations, b.taints); !ok {
				continue
			}
		}
		if !s.NodeAffinityPolicyIgnore && !anyAltMatches(c.required, b) {
			continue
		}
		seen[v] = true
		out = append(out, v)
	}
	p.existingCache[ek] = out
	return out
}

type domainsKey struct {
	pool     int
	alt, key string
}

// newDomains returns the values of a topology key the pool's new nodes may
// take that pods with the given requirements are eligible for (whether or
// not they fit: Kubernetes counts a domain by labels, not by room).
func (p *problem) newDomains(pi *poolInfo, reqs []model.Requirement, key string) []string {
	sig := requirementsSig(reqs)
	dk := domainsKey{pool: pi.idx, alt: sig, key: key}
	if v, ok := p.domainsCache[dk]; ok {
		return v
	}
	var out []string
	seen := map[string]bool{}
	add := func(v string) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	a := p.compileAlt(pi, reqs, sig)
	if a.ok {
		a.types.each(func(i int) {
			t := pi.types[i]
			for _, o := range t.offers {
				if !maskHas(a.zones, o.zone) || !maskHas(a.cts, o.ct) {
					continue
				}
				switch p.kindOf(key) {
				case keyZone:
					add(p.zones[o.zone])
				case keyZoneID:
					if id, ok := p.zoneIDs[o.zone]; ok {
						add(id)
					}
				case keyCapacity:
					add(p.cts[o.ct])
				case keyType:
					if v, ok := t.labels[key]; ok {
						add(v)
					}
				}
			}
			if p.kindOf(key) == keyCustom {
				if cs, ok := pi.custom.Get(key); ok {
					if v, ok := cs.Single(); ok {
						add(v)
					}
				}
			}
		})
	}
	p.domainsCache[dk] = out
	return out
}

func anyAltMatches(alts [][]model.Requirement, b *baseNode) bool {
	for _, a := range alts {
		ok := true
		for _, r := range a {
			if !existingGuarantees(r, b) {
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

// isExclusive reports whether the class allows only a few of its own pods
// per node: hostname anti-affinity against itself, or hostname spread.
func (p *problem) isExclusive(c *podClass) bool {
	for _, g := range c.anti {
		if p.groups[g].hostname() && p.groups[g].members.has(c.idx) {
			return true
		}
	}
	for _, g := range c.spread {
		if p.groups[g].hostname() && p.groups[g].members.has(c.idx) {
			return true
		}
	}
	return len(c.ports) > 0
}

// relevantKeys returns the topology keys (indices) whose domain a new node
// must fix before pods of the class join it: keys of the groups the class
// owns or is counted in.
func (p *problem) relevantKeys(c *podClass, v *classView) []int {
	var keys []int
	add := func(g int) {
		if tk := p.groups[g].tk; tk >= 0 && !slices.Contains(keys, tk) {
			keys = append(keys, tk)
		}
	}
	for _, gs := range [][]int{v.affinity, v.anti, v.spread, c.matched} {
		for _, g := range gs {
			add(g)
		}
	}
	slices.Sort(keys)
	return keys
}

func selectorText(s *model.LabelSelector) string {
	if s == nil {
		return "no pods"
	}
	if len(s.Requirements) == 0 {
		return "all pods"
	}
	var parts []string
	for _, r := range s.Requirements {
		if r.Operator == model.OpIn && len(r.Values) == 1 {
			parts = append(parts, r.Key+"="+r.Values[0])
			continue
		}
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ",")
}
