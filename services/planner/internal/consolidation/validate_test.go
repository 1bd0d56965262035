package consolidation

// An independent checker of disruption plans. It rebuilds the cluster a
// plan leaves behind from the snapshot alone and checks it with its own
// code: every pod that must leave a node has exactly one new place, which
// has room for it and satisfies its node selector, affinity, tolerations
// and hostname anti-affinity; no pod leaves against do-not-disrupt, a PDB,
// or without a controller; NodePool limits and (unscheduled) budgets hold;
// savings add up and clear the threshold. It shares nothing with the
// solver but the model.

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

type vhost struct {
	name   string
	labels map[string]string
	taints []model.Taint
	// allocs are what pods may use: one per instance type a new node may
	// turn out to be.
	allocs []model.Resources
	pods   []*model.Pod
	// arrived are the pods the plan puts here.
	arrived []*model.Pod
	pool    string
}

type checker struct {
	s     *model.Snapshot
	plan  *model.Plan
	opts  Options
	errs  []string
	nodes map[string]*model.Node
	claim map[string]*model.NodeClaim
	pods  map[string]*model.Pod
	pools map[string]*model.NodePool
	types map[string]*model.InstanceType
	hosts map[string]*vhost
	// claimsPlanned are NodeClaimPlans of this answer by name.
	claimsPlanned map[string]*model.NodeClaimPlan
}

func (v *checker) errorf(format string, args ...any) {
	v.errs = append(v.errs, fmt.Sprintf(format, args...))
}

// validate returns every way plan's disruptions are wrong for s.
func validate(s *model.Snapshot, plan *model.Plan, opts Options) []string {
	opts = opts.withDefaults()
	v := &checker{s: s, plan: plan, opts: opts, nodes: map[string]*model.Node{}, claim: map[string]*model.NodeClaim{},
		pods: map[string]*model.Pod{}, pools: map[string]*model.NodePool{}, types: map[string]*model.InstanceType{},
		hosts: map[string]*vhost{}, claimsPlanned: map[string]*model.NodeClaimPlan{}}
	for _, n := range s.Nodes {
		v.nodes[n.Name] = n
	}
	for _, c := range s.NodeClaims {
		v.claim[c.Name] = c
	}
	for _, p := range s.Pods {
		v.pods[p.Namespace+"/"+p.Name] = p
	}
	for _, p := range s.NodePools {
		v.pools[p.Name] = p
	}
	for _, it := range s.InstanceTypes {
		v.types[it.Name] = it
	}
	v.run()
	if len(v.errs) > 12 {
		v.errs = append(v.errs[:12], fmt.Sprintf("... and %d more", len(v.errs)-12))
	}
	return v.errs
}

var vIgnoredTaints = []string{"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable", "node.cloudprovider.kubernetes.io/uninitialized", "karpenter.sh/unregistered"}

func (v *checker) run() {
	disrupted := map[string]string{}
	for _, d := range v.plan.Disruptions {
		for _, n := range d.Nodes {
			if prev, dup := disrupted[n]; dup {
				v.errorf("node %s is disrupted by %s and by %s", n, prev, d.ID)
			}
			disrupted[n] = d.ID
		}
	}
	// The hosts as they are.
	for _, n := range v.s.Nodes {
		if n.Deleting || n.Unschedulable || disrupted[n.Name] != "" {
			continue
		}
		h := &vhost{name: n.Name, labels: n.Labels, allocs: []model.Resources{n.Usable()}, pool: n.Labels[model.LabelNodePool]}
		var startup []model.Taint
		if c := v.claim[n.NodeClaim]; c != nil {
			startup = c.StartupTaints
		}
		for _, t := range n.Taints {
			if !slices.Contains(vIgnoredTaints, t.Key) && !slices.Contains(startup, t) {
				h.taints = append(h.taints, t)
			}
		}
		v.hosts[n.Name] = h
	}
	for _, p := range v.s.Pods {
		if p.NodeName != "" && p.Phase != model.PodSucceeded && p.Phase != model.PodFailed {
			if h := v.hosts[p.NodeName]; h != nil {
				h.pods = append(h.pods, p)
			}
		}
	}
	// The provisioning answer.
	busy := map[string]bool{}
	for _, pl := range v.plan.Placements {
		busy[pl.Node] = true
		if h := v.hosts[pl.Node]; h != nil && !pl.InFlight {
			for _, k := range pl.Pods {
				if p := v.pods[k]; p != nil {
					h.pods = append(h.pods, p)
				}
			}
		}
	}
	for _, nc := range v.plan.NodeClaims {
		v.claimsPlanned[nc.Name] = nc
		h := v.newHost(nc)
		for _, k := range nc.Pods {
			if p := v.pods[k]; p != nil {
				h.pods = append(h.pods, p)
			}
		}
	}
	pdbUsed := make([]int, len(v.s.PodDisruptionBudgets))
	perPoolReason := map[string]map[model.DisruptionReason]int{}
	for _, d := range v.plan.Disruptions {
		v.checkDisruption(d, busy, disrupted, pdbUsed)
		pool := ""
		if len(d.Nodes) > 0 {
			if n := v.nodes[d.Nodes[0]]; n != nil {
				pool = n.Labels[model.LabelNodePool]
			}
		}
		if perPoolReason[pool] == nil {
			perPoolReason[pool] = map[model.DisruptionReason]int{}
		}
		perPoolReason[pool][d.Reason] += len(d.Nodes)
	}
	for i, b := range v.s.PodDisruptionBudgets {
		if pdbUsed[i] > int(b.DisruptionsAllowed) {
			v.errorf("PDB %s/%s allows %d disruptions, the plans evict %d of its pods", b.Namespace, b.Name, b.DisruptionsAllowed, pdbUsed[i])
		}
	}
	v.checkHosts()
	v.checkLimits()
	v.checkBudgets(perPoolReason)
	for _, r := range v.plan.Rejections {
		if strings.TrimSpace(r.Reason) == "" {
			v.errorf("rejection of %s has no reason", r.Node)
		}
		if disrupted[r.Node] != "" {
			v.errorf("node %s is both disrupted and rejected (%s)", r.Node, r.Reason)
		}
	}
}

func (v *checker) newHost(nc *model.NodeClaimPlan) *vhost {
	labels := map[string]string{}
	if it := v.types[nc.InstanceType]; it != nil {
		for k, val := range it.NodeLabels() {
			labels[k] = val
		}
	}
	for k, val := range nc.Labels {
		labels[k] = val
	}
	labels[model.LabelZone], labels[model.LabelCapacityType] = nc.Zone, nc.CapacityType
	labels[model.LabelNodePool], labels[model.LabelHostname] = nc.NodePool, nc.Name
	h := &vhost{name: nc.Name, labels: labels, taints: nc.Taints, pool: nc.NodePool}
	opts := nc.InstanceTypeOptions
	if len(opts) == 0 {
		opts = []string{nc.InstanceType}
	}
	for _, name := range opts {
		it := v.types[name]
		if it == nil {
			v.errorf("NodeClaim %s offers unknown instance type %s", nc.Name, name)
			continue
		}
		alloc := it.Allocatable(nil)
		for _, ds := range v.s.DaemonSets {
			if ds.Template == nil {
				continue
			}
			if _, ok := model.ToleratesAll(ds.Template.Tolerations, nc.Taints); ok && podMayRunOn(ds.Template, labels) {
				alloc = alloc.Sub(ds.Template.Requests())
			}
		}
		h.allocs = append(h.allocs, alloc)
	}
	v.hosts[nc.Name] = h
	return h
}

func (v *checker) movingPods(node string) []*model.Pod {
	var out []*model.Pod
	for _, p := range v.s.Pods {
		if p.NodeName == node && p.Phase != model.PodSucceeded && p.Phase != model.PodFailed && !p.Terminating &&
			p.OwnerKind != "DaemonSet" && p.OwnerKind != "Node" {
			out = append(out, p)
		}
	}
	return out
}

func (v *checker) checkDisruption(d *model.DisruptionPlan, busy map[string]bool, disrupted map[string]string, pdbUsed []int) {
	if d.ID == "" || d.Reason == 0 || strings.TrimSpace(d.Budget) == "" {
		v.errorf("disruption %+v lacks an id, reason or budget", d)
	}
	if len(d.Nodes) != len(d.NodeClaims) {
		v.errorf("disruption %s lists %d nodes and %d NodeClaims", d.ID, len(d.Nodes), len(d.NodeClaims))
		return
	}
	inProgress := strings.HasPrefix(d.Budget, "in progress")
	voluntary := d.Reason != model.DisruptionInterrupted
	price := 0.0
	mustMove := map[string]bool{}
	for i, name := range d.Nodes {
		n := v.nodes[name]
		if n == nil {
			v.errorf("disruption %s: unknown node %s", d.ID, name)
			continue
		}
		price += n.PricePerHour
		if n.NodeClaim != d.NodeClaims[i] {
			v.errorf("disruption %s: node %s belongs to NodeClaim %s, not %s", d.ID, name, n.NodeClaim, d.NodeClaims[i])
		}
		if n.Deleting {
			v.errorf("disruption %s: node %s is already being deleted", d.ID, name)
		}
		if busy[name] {
			v.errorf("disruption %s: the provisioning answer places pods on node %s", d.ID, name)
		}
		if !voluntary || inProgress {
			continue
		}
		if n.Annotations[AnnotationDoNotDisrupt] == "true" {
			v.errorf("disruption %s: node %s has do-not-disrupt", d.ID, name)
		}
		for _, p := range v.movingPods(name) {
			k := p.Namespace + "/" + p.Name
			mustMove[k] = true
			switch {
			case p.DoNotDisrupt:
				v.errorf("disruption %s evicts pod %s, which has do-not-disrupt", d.ID, k)
			case p.OwnerKind == "":
				v.errorf("disruption %s evicts pod %s, which has no controller", d.ID, k)
			case p.LocalStorage && !v.opts.AllowLocalStorage:
				v.errorf("disruption %s evicts pod %s, which uses local storage", d.ID, k)
			}
			for i, b := range v.s.PodDisruptionBudgets {
				if b.Namespace == p.Namespace && b.Selector.Matches(p.Labels) {
					pdbUsed[i]++
				}
			}
		}
	}
	// Replacements: new ones become hosts; the others must exist.
	fresh := 0.0
	listed := map[string]bool{}
	for _, r := range d.Replacements {
		listed[r.Name] = true
		if v.claim[r.Name] != nil || v.claimsPlanned[r.Name] != nil {
			continue
		}
		if v.nodes[r.Name] != nil {
			v.errorf("disruption %s: replacement %s has the name of a node", d.ID, r.Name)
		}
		v.claimsPlanned[r.Name] = r
		v.newHost(r)
		fresh += r.PricePerHour
	}
	moved := map[string]bool{}
	for _, mv := range d.Moves {
		h := v.hosts[mv.Node]
		if disrupted[mv.Node] != "" {
			v.errorf("disruption %s moves pods to node %s, which %s disrupts", d.ID, mv.Node, disrupted[mv.Node])
		}
		if c := v.claim[mv.Node]; c != nil && v.nodes[mv.Node] == nil && !listed[mv.Node] {
			v.errorf("disruption %s moves pods to NodeClaim %s in flight without waiting for it", d.ID, mv.Node)
		}
		if n := v.nodes[mv.Node]; n != nil && (!n.Ready || !initialized(v.claim[n.NodeClaim])) && v.claim[n.NodeClaim] != nil && !listed[n.NodeClaim] {
			v.errorf("disruption %s moves pods to node %s, which is not up, without waiting for it", d.ID, mv.Node)
		}
		for _, k := range mv.Pods {
			if moved[k] {
				v.errorf("disruption %s moves pod %s twice", d.ID, k)
			}
			moved[k] = true
			p := v.pods[k]
			if p == nil || !slices.Contains(d.Nodes, p.NodeName) {
				v.errorf("disruption %s moves pod %s, which is not on its nodes", d.ID, k)
				continue
			}
			if h == nil {
				if v.claim[mv.Node] == nil {
					v.errorf("disruption %s moves pod %s to unknown %s", d.ID, k, mv.Node)
				}
				continue
			}
			h.pods = append(h.pods, p)
			h.arrived = append(h.arrived, p)
		}
	}
	for k := range mustMove {
		if !moved[k] {
			v.errorf("disruption %s drains pod %s without a place for it", d.ID, k)
		}
	}
	want := price - fresh
	if inProgress {
		want = price
		for _, r := range d.Replacements {
			want -= r.PricePerHour
		}
	}
	if math.Abs(want-d.SavingsPerHour) > 1e-5 {
		v.errorf("disruption %s claims savings %v, the nodes and replacements give %v", d.ID, d.SavingsPerHour, want)
	}
	if d.Reason == model.DisruptionUnderutilized && !inProgress {
		if thr := max(v.opts.MinSavingsFraction*price, v.opts.MinSavingsPerHour*float64(len(d.Nodes))); d.SavingsPerHour < thr-1e-9 {
			v.errorf("consolidation %s saves %v, below the threshold %v", d.ID, d.SavingsPerHour, thr)
		}
	}
}

func (v *checker) checkHosts() {
	for _, h := range v.hosts {
		if len(h.arrived) == 0 && len(h.allocs) == 1 {
			// Untouched existing node, or one the provisioning answer
			// filled (its own validator checks that).
			continue
		}
		var used model.Resources
		for _, p := range h.pods {
			used = used.Add(p.Requests())
		}
		for i, a := range h.allocs {
			if !used.Fits(a) {
				v.errorf("node %s (option %d) is overcommitted: pods request %s, it has %s", h.name, i, used, a)
			}
		}
		for _, p := range h.arrived {
			k := p.Namespace + "/" + p.Name
			if t, ok := model.ToleratesAll(p.Tolerations, h.taints); !ok {
				v.errorf("pod %s moves to %s, whose taint %s it does not tolerate", k, h.name, t)
			}
			if !podMayRunOn(p, h.labels) {
				v.errorf("pod %s moves to %s, whose labels its node selector or affinity rule out", k, h.name)
			}
			for _, q := range h.pods {
				if q != p && (antiHost(p, q) || antiHost(q, p)) {
					v.errorf("pod %s moves to %s next to %s, against hostname anti-affinity", k, h.name, q.Namespace+"/"+q.Name)
				}
			}
		}
	}
}

// podMayRunOn checks a pod's node selector and required node affinity.
func podMayRunOn(p *model.Pod, labels map[string]string) bool {
	for k, val := range p.NodeSelector {
		if labels[k] != val {
			return false
		}
	}
	if len(p.NodeAffinity.Required) == 0 {
		return true
	}
	for _, term := range p.NodeAffinity.Required {
		ok := true
		for _, r := range term.Requirements {
			if !r.Matches(labels) {
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

// antiHost reports whether p's hostname anti-affinity rules out q beside it.
func antiHost(p, q *model.Pod) bool {
	for _, t := range p.PodAntiAffinity {
		if t.TopologyKey != model.LabelHostname {
			continue
		}
		ns := t.Namespaces
		if len(ns) == 0 {
			ns = []string{p.Namespace}
		}
		if (t.AllNamespaces || slices.Contains(ns, q.Namespace)) && t.Selector.Matches(q.Labels) {
			return true
		}
	}
	return false
}

func (v *checker) checkLimits() {
	usage := map[string]model.Resources{}
	for _, n := range v.s.Nodes {
		usage[n.Labels[model.LabelNodePool]] = usage[n.Labels[model.LabelNodePool]].Add(n.Capacity)
	}
	for _, c := range v.s.NodeClaims {
		if c.NodeName == "" || v.nodes[c.NodeName] == nil {
			usage[c.NodePool] = usage[c.NodePool].Add(c.Capacity)
		}
	}
	for name, nc := range v.claimsPlanned {
		if v.claim[name] != nil {
			continue
		}
		var most model.Resources
		for _, t := range append([]string{nc.InstanceType}, nc.InstanceTypeOptions...) {
			if it := v.types[t]; it != nil {
				most = most.Max(it.Capacity)
			}
		}
		usage[nc.NodePool] = usage[nc.NodePool].Add(model.Resources{CPU: most.CPU, Memory: most.Memory, Extended: most.Extended})
	}
	for name, p := range v.pools {
		for res, lim := range p.Limits {
			if got := usage[name].Get(res); got > lim {
				v.errorf("NodePool %s uses %d %s with its replacements, above its limit %d", name, got, res, lim)
			}
		}
	}
}

// checkBudgets checks the budgets without a schedule: nodes being deleted
// plus the nodes the plans disrupt for the reasons a budget covers stay
// within it.
func (v *checker) checkBudgets(perPoolReason map[string]map[model.DisruptionReason]int) {
	for name, p := range v.pools {
		total, deleting := 0, 0
		for _, n := range v.s.Nodes {
			if n.Labels[model.LabelNodePool] == name && n.NodeClaim != "" {
				total++
				if n.Deleting {
					deleting++
				}
			}
		}
		budgets := p.Disruption.Budgets
		if len(budgets) == 0 {
			budgets = []model.DisruptionBudget{{Nodes: "10%"}}
		}
		for _, b := range budgets {
			if b.Schedule != "" {
				continue
			}
			allowed := 0
			if pct, ok := strings.CutSuffix(b.Nodes, "%"); ok {
				var x int
				fmt.Sscan(pct, &x)
				allowed = int(math.Ceil(float64(total) * float64(x) / 100))
			} else {
				fmt.Sscan(b.Nodes, &allowed)
			}
			used := deleting
			for r, k := range perPoolReason[name] {
				if r == model.DisruptionInterrupted {
					continue
				}
				names := map[model.DisruptionReason]string{model.DisruptionEmpty: "Empty", model.DisruptionUnderutilized: "Underutilized",
					model.DisruptionDrifted: "Drifted", model.DisruptionExpired: "Expired"}
				if len(b.Reasons) == 0 || slices.Contains(b.Reasons, names[r]) {
					used += k
				}
			}
			if used > allowed && used > deleting {
				v.errorf("NodePool %s budget nodes %s (reasons %v) allows %d nodes, %d are disrupted", name, b.Nodes, b.Reasons, allowed, used)
			}
		}
	}
}
