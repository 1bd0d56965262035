package provisioning_test

import (
	"fmt"
	"slices"
	"sort"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

type vPod struct {
	p *model.Pod
	h *vhost
}

// domainOf returns a host's value for a topology key; known is false when
// the host has no such label, open when a new node's value is not decided.
func domainOf(h *vhost, key string) (val string, known, open bool) {
	if key == "kubernetes.io/hostname" {
		if v, ok := h.labels[key]; ok {
			return v, true, false
		}
		return h.name, true, false
	}
	if h.unknown[key] {
		return "", false, true
	}
	v, ok := h.labels[key]
	return v, ok, false
}

func selects(sel *model.LabelSelector, namespaces []string, all bool, ownNS string, q *model.Pod) bool {
	if sel == nil {
		return false
	}
	if !all {
		if len(namespaces) == 0 {
			namespaces = []string{ownNS}
		}
		if !slices.Contains(namespaces, q.Namespace) {
			return false
		}
	}
	return vAll(sel.Requirements, q.Labels)
}

// checkTopology checks the final state: required pod (anti-)affinity both
// ways, and that every placed pod's DoNotSchedule spread holds with all the
// pods its selector counts.
func (v *validator) checkTopology() {
	names := make([]string, 0, len(v.hosts))
	for n := range v.hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	var all []vPod
	for _, n := range names {
		h := v.hosts[n]
		for _, p := range h.pods {
			if !p.Terminating {
				all = append(all, vPod{p, h})
			}
		}
		for _, p := range h.placed {
			all = append(all, vPod{p, h})
		}
	}
	placed := map[*model.Pod]bool{}
	for _, h := range v.hosts {
		for _, p := range h.placed {
			placed[p] = true
		}
	}
	spreadCache := map[string]map[string]int{}
	// lone holds, per affinity term, the placed pods with no match in
	// their domain: at most one, matching its own term, can be the first
	// of its group to bind.
	lone := map[string][]string{}
	for _, x := range all {
		if !placed[x.p] {
			continue
		}
		p, h := x.p, x.h
		key := p.Namespace + "/" + p.Name
		for _, t := range p.PodAntiAffinity {
			d, known, open := domainOf(h, t.TopologyKey)
			if open {
				v.errorf("pod %s has anti-affinity on %s but its node's value is not decided", key, t.TopologyKey)
				continue
			}
			if !known {
				continue
			}
			for _, y := range all {
				if y.p == p {
					continue
				}
				if e, ok, _ := domainOf(y.h, t.TopologyKey); ok && e == d && selects(t.Selector, t.Namespaces, t.AllNamespaces, p.Namespace, y.p) {
					v.errorf("pod %s shares %s=%s with %s/%s against its anti-affinity", key, t.TopologyKey, d, y.p.Namespace, y.p.Name)
				}
			}
		}
		for _, y := range all {
			if y.p == p {
				continue
			}
			for _, t := range y.p.PodAntiAffinity {
				if !selects(t.Selector, t.Namespaces, t.AllNamespaces, y.p.Namespace, p) {
					continue
				}
				d1, ok1, _ := domainOf(h, t.TopologyKey)
				d2, ok2, _ := domainOf(y.h, t.TopologyKey)
				if ok1 && ok2 && d1 == d2 {
					v.errorf("pod %s lands in %s=%s next to %s/%s, whose anti-affinity forbids it", key, t.TopologyKey, d1, y.p.Namespace, y.p.Name)
				}
			}
		}
		for _, t := range p.PodAffinity {
			d, known, open := domainOf(h, t.TopologyKey)
			if open || !known {
				v.errorf("pod %s has affinity on %s but its node has no decided value", key, t.TopologyKey)
				continue
			}
			near, anywhere := false, false
			for _, y := range all {
				if y.p == p || !selects(t.Selector, t.Namespaces, t.AllNamespaces, p.Namespace, y.p) {
					continue
				}
				anywhere = true
				if e, ok, _ := domainOf(y.h, t.TopologyKey); ok && e == d {
					near = true
				}
			}
			self := selects(t.Selector, t.Namespaces, t.AllNamespaces, p.Namespace, p)
			if !near && !(self && !anywhere) {
				if !self {
					v.errorf("pod %s in %s=%s has no pod its affinity asks for there", key, t.TopologyKey, d)
					continue
				}
				tk := fmt.Sprintf("%s|%v|%v|%v", t.TopologyKey, t.Selector, t.Namespaces, t.AllNamespaces)
				lone[tk] = append(lone[tk], key)
			}
		}
		for _, s := range p.TopologySpread {
			if !s.DoNotSchedule {
				continue
			}
			d, known, open := domainOf(h, s.TopologyKey)
			if open || !known {
				v.errorf("pod %s spreads over %s but its node has no decided value", key, s.TopologyKey)
				continue
			}
			sel := spreadSelector(p, s)
			ck := fmt.Sprintf("%s|%s|%v|%v", p.Namespace, s.TopologyKey, sel, s)
			counts, ok := spreadCache[ck]
			if !ok {
				counts = v.spreadCounts(all, p, s, sel)
				spreadCache[ck] = counts
			}
			lowest := -1
			for _, c := range counts {
				if lowest < 0 || c < lowest {
					lowest = c
				}
			}
			if len(counts) < int(s.MinDomains) || lowest < 0 {
				lowest = 0
			}
			if counts[d]-lowest > int(s.MaxSkew) {
				v.errorf("pod %s: %s=%s holds %d pods of its spread, the least domain %d, maxSkew %d", key, s.TopologyKey, d, counts[d], lowest, s.MaxSkew)
			}
		}
	}
	for term, pods := range lone {
		if len(pods) > 1 {
			v.errorf("pods %v each lack a pod their affinity (%s) asks for; only one can be first", pods, term)
		}
	}
}

func spreadSelector(p *model.Pod, s model.TopologySpreadConstraint) *model.LabelSelector {
	if s.Selector == nil {
		return nil
	}
	sel := &model.LabelSelector{Requirements: slices.Clone(s.Selector.Requirements)}
	for _, k := range s.MatchLabelKeys {
		if val, ok := p.Labels[k]; ok {
			sel.Requirements = append(sel.Requirements, model.Requirement{Key: k, Operator: model.OpIn, Values: []string{val}})
		}
	}
	return sel
}

// spreadCounts counts, per domain of the eligible hosts, the pods the
// spread selector selects.
func (v *validator) spreadCounts(all []vPod, p *model.Pod, s model.TopologySpreadConstraint, sel *model.LabelSelector) map[string]int {
	counts := map[string]int{}
	for _, h := range v.hosts {
		d, known, _ := domainOf(h, s.TopologyKey)
		if !known {
			continue
		}
		if !s.NodeAffinityPolicyIgnore && !podFitsLabels(p, h.labels) && !h.isNew {
			continue
		}
		if s.NodeTaintsPolicyHonor && !vTolerates(p, h.taints) {
			continue
		}
		if _, ok := counts[d]; !ok {
			counts[d] = 0
		}
	}
	for _, y := range all {
		if !selects(sel, nil, false, p.Namespace, y.p) {
			continue
		}
		d, known, open := domainOf(y.h, s.TopologyKey)
		if open {
			v.errorf("pod %s/%s counts for a %s spread but its node's value is not decided", y.p.Namespace, y.p.Name, s.TopologyKey)
			continue
		}
		if known {
			if _, ok := counts[d]; ok {
				counts[d]++
			}
		}
	}
	return counts
}
