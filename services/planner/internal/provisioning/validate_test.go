package provisioning_test

// An independent plan validator: it re-derives everything it checks from
// the snapshot with its own code (allocatable formulas, label matching,
// topology counting) and shares nothing with the solver but the model.

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// validatePlan fails t for every way plan is wrong for snapshot s.
func validatePlan(t testing.TB, s *model.Snapshot, plan *model.Plan) {
	t.Helper()
	for _, e := range planErrors(s, plan) {
		t.Error(e)
	}
}

func planErrors(s *model.Snapshot, plan *model.Plan) []string {
	v := &validator{s: s, plan: plan}
	v.run()
	if len(v.errs) > 10 {
		v.errs = append(v.errs[:10], fmt.Sprintf("... and %d more", len(v.errs)-10))
	}
	return v.errs
}

type validator struct {
	s    *model.Snapshot
	plan *model.Plan
	errs []string
	// hosts are the final nodes, keyed by name; pods maps pod keys to hosts.
	hosts map[string]*vhost
	where map[string]*vhost
	pods  map[string]*model.Pod
}

// vhost is a node in the final state.
type vhost struct {
	name   string
	labels map[string]string
	// unknown keys have several possible values (a new node's open zone).
	unknown map[string]bool
	taints  []model.Taint
	pods    []*model.Pod
	placed  []*model.Pod
	isNew   bool
}

func (v *validator) errorf(format string, args ...any) {
	v.errs = append(v.errs, fmt.Sprintf(format, args...))
}

func isPending(p *model.Pod) bool {
	return p.NodeName == "" && p.Phase != "Succeeded" && p.Phase != "Failed" && !p.Terminating && p.OwnerKind != "DaemonSet"
}

func (v *validator) run() {
	v.hosts, v.where, v.pods = map[string]*vhost{}, map[string]*vhost{}, map[string]*model.Pod{}
	for _, p := range v.s.Pods {
		v.pods[p.Namespace+"/"+p.Name] = p
	}
	seen := map[string]string{}
	mark := func(key, where string) {
		p, ok := v.pods[key]
		switch {
		case !ok:
			v.errorf("%s lists unknown pod %s", where, key)
		case !isPending(p):
			v.errorf("%s lists pod %s, which is not pending", where, key)
		case seen[key] != "":
			v.errorf("pod %s is in %s and in %s", key, seen[key], where)
		default:
			seen[key] = where
		}
	}
	for _, nc := range v.plan.NodeClaims {
		for _, k := range nc.Pods {
			mark(k, "NodeClaim "+nc.Name)
		}
	}
	for _, pl := range v.plan.Placements {
		for _, k := range pl.Pods {
			mark(k, "placement on "+pl.Node)
		}
	}
	for _, u := range v.plan.Unschedulable {
		mark(u.Pod, "unschedulable")
		if strings.TrimSpace(u.Reason) == "" {
			v.errorf("unschedulable pod %s has no reason", u.Pod)
		}
	}
	for _, p := range v.s.Pods {
		if isPending(p) && seen[p.Namespace+"/"+p.Name] == "" {
			v.errorf("pending pod %s is missing from the plan", p.Namespace+"/"+p.Name)
		}
	}
	v.checkExisting()
	v.checkNew()
	v.checkLimits()
	v.checkTopology()
	total := 0.0
	for _, nc := range v.plan.NodeClaims {
		total += nc.PricePerHour
	}
	if math.Abs(total-v.plan.TotalPricePerHour) > 1e-6 {
		v.errorf("total price %v, NodeClaims add up to %v", v.plan.TotalPricePerHour, total)
	}
}

// --- allocatable, written from the EKS formulas ---

func vKubelet(np *model.NodePool, s *model.Snapshot) *model.Kubelet {
	out := &model.Kubelet{KubeReserved: map[string]int64{}, SystemReserved: map[string]int64{}, EvictionHard: map[string]model.Threshold{}}
	layers := []*model.Kubelet{}
	for _, c := range s.NodeClasses {
		if c.Name == np.NodeClass && c.Kubelet != nil {
			layers = append(layers, c.Kubelet)
		}
	}
	if np.Kubelet != nil {
		layers = append(layers, np.Kubelet)
	}
	for _, k := range layers {
		if k.MaxPods > 0 {
			out.MaxPods = k.MaxPods
		}
		if k.PodsPerCore > 0 {
			out.PodsPerCore = k.PodsPerCore
		}
		for a, b := range k.KubeReserved {
			out.KubeReserved[a] = b
		}
		for a, b := range k.SystemReserved {
			out.SystemReserved[a] = b
		}
		for a, b := range k.EvictionHard {
			out.EvictionHard[a] = b
		}
	}
	return out
}

func vMaxPods(it *model.InstanceType, k *model.Kubelet) int64 {
	pods := it.Capacity.Pods
	if pods == 0 {
		pods = 110
	}
	if k.MaxPods > 0 {
		pods = int64(k.MaxPods)
	}
	if k.PodsPerCore > 0 && int64(k.PodsPerCore)*it.Capacity.CPU/1000 < pods {
		pods = int64(k.PodsPerCore) * it.Capacity.CPU / 1000
	}
	return pods
}

func vAllocatable(it *model.InstanceType, k *model.Kubelet) model.Resources {
	const mi = 1 << 20
	memMiB := it.Capacity.Memory / mi
	if it.Arch == "arm64" {
		memMiB -= 64
	}
	memMiB -= int64(math.Ceil(float64(memMiB) * 0.075))
	mem := memMiB * mi
	pods := vMaxPods(it, k)
	storage := it.Capacity.EphemeralStorage
	if storage == 0 {
		storage = 20 << 30
	}
	cores := float64(it.Capacity.CPU) / 1000
	cpuRes := 0.0
	for i, pct := range []float64{6, 1, 0.5, 0.5} {
		if cores > float64(i) {
			cpuRes += math.Min(1, cores-float64(i)) * pct * 10
		}
	}
	if cores > 4 {
		cpuRes += (cores - 4) * 2.5
	}
	kube := map[string]int64{"cpu": int64(cpuRes), "memory": (11*pods + 255) * mi, "ephemeral-storage": 1 << 30}
	for r, q := range k.KubeReserved {
		kube[r] = q
	}
	evictMem := int64(100 * mi)
	if th, ok := k.EvictionHard["memory.available"]; ok {
		evictMem = threshold(th, mem)
	}
	evictFS := int64(math.Ceil(float64(storage) * 0.10))
	if th, ok := k.EvictionHard["nodefs.available"]; ok {
		evictFS = threshold(th, storage)
	}
	out := model.Resources{
		CPU:              it.Capacity.CPU - kube["cpu"] - k.SystemReserved["cpu"],
		Memory:           mem - kube["memory"] - k.SystemReserved["memory"] - evictMem,
		Pods:             pods,
		EphemeralStorage: storage - kube["ephemeral-storage"] - k.SystemReserved["ephemeral-storage"] - evictFS,
		Extended:         it.Capacity.Extended,
	}
	return out
}

func threshold(t model.Threshold, capacity int64) int64 {
	if !t.IsPercent {
		return t.Quantity
	}
	if t.Percent == 100 {
		return 0
	}
	return int64(math.Ceil(float64(capacity) * t.Percent / 100))
}

// --- label matching ---

func vMatches(r model.Requirement, labels map[string]string) bool {
	val, ok := labels[r.Key]
	switch r.Operator {
	case model.OpIn:
		return ok && slices.Contains(r.Values, val)
	case model.OpNotIn:
		return !ok || !slices.Contains(r.Values, val)
	case model.OpExists:
		return ok
	case model.OpDoesNotExist:
		return !ok
	case model.OpGt, model.OpLt:
		a, err1 := strconv.Atoi(val)
		b, err2 := strconv.Atoi(r.Values[0])
		if !ok || err1 != nil || err2 != nil {
			return false
		}
		return r.Operator == model.OpGt && a > b || r.Operator == model.OpLt && a < b
	}
	return false
}

func vAll(reqs []model.Requirement, labels map[string]string) bool {
	for _, r := range reqs {
		if !vMatches(r, labels) {
			return false
		}
	}
	return true
}

// podFitsLabels checks a pod's node selector, required node affinity and
// volume topology against node labels.
func podFitsLabels(p *model.Pod, labels map[string]string) bool {
	for k, val := range p.NodeSelector {
		if labels[k] != val {
			return false
		}
	}
	anyTerm := func(terms []model.NodeSelectorTerm) bool {
		if len(terms) == 0 {
			return true
		}
		for _, t := range terms {
			if len(t.Requirements) > 0 && vAll(t.Requirements, labels) {
				return true
			}
		}
		return false
	}
	if !anyTerm(p.NodeAffinity.Required) {
		return false
	}
	for _, vol := range p.Volumes {
		if !anyTerm(vol.Terms) {
			return false
		}
	}
	return true
}

func vTolerates(p *model.Pod, taints []model.Taint) bool {
	for _, taint := range taints {
		if taint.Effect == model.TaintPreferNoSchedule {
			continue
		}
		ok := false
		for _, tol := range p.Tolerations {
			effectOK := tol.Effect == "" || tol.Effect == taint.Effect
			keyOK := tol.Key == taint.Key || tol.Key == "" && tol.Operator == "Exists"
			valueOK := tol.Operator == "Exists" || tol.Value == taint.Value
			if effectOK && keyOK && valueOK {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// typeLabels derives an instance type's labels independently of the model's
// helper (only the keys the tests use).
func typeLabels(it *model.InstanceType) map[string]string {
	l := map[string]string{"node.kubernetes.io/instance-type": it.Name, "kubernetes.io/arch": it.Arch, "kubernetes.io/os": "linux",
		"karpenter.k8s.aws/instance-cpu":    strconv.FormatInt(it.Capacity.CPU/1000, 10),
		"karpenter.k8s.aws/instance-memory": strconv.FormatInt(it.Capacity.Memory>>20, 10)}
	if fam, size, ok := strings.Cut(it.Name, "."); ok {
		l["karpenter.k8s.aws/instance-family"] = fam
		l["karpenter.k8s.aws/instance-size"] = size
		l["karpenter.k8s.aws/instance-category"] = strings.TrimRight(fam[:1], "0123456789")
	}
	if g := it.Capacity.Extended["nvidia.com/gpu"]; g > 0 {
		l["karpenter.k8s.aws/instance-gpu-count"] = strconv.FormatInt(g, 10)
	}
	for k, val := range it.Labels {
		l[k] = val
	}
	return l
}

func (v *validator) instanceType(name string) *model.InstanceType {
	for _, it := range v.s.InstanceTypes {
		if it.Name == name {
			return it
		}
	}
	return nil
}

func (v *validator) nodePool(name string) *model.NodePool {
	for _, np := range v.s.NodePools {
		if np.Name == name {
			return np
		}
	}
	return nil
}

func podRequests(p *model.Pod) model.Resources {
	var sum, sidecars, peak model.Resources
	for _, c := range p.Containers {
		sum = sum.Add(c.Requests)
	}
	for _, c := range p.InitContainers {
		if c.Sidecar {
			sum = sum.Add(c.Requests)
			sidecars = sidecars.Add(c.Requests)
			peak = peak.Max(sidecars)
		} else {
			peak = peak.Max(c.Requests.Add(sidecars))
		}
	}
	out := sum.Max(peak).Add(p.Overhead)
	out.Pods = 1
	return out
}

func hostPorts(p *model.Pod) []model.HostPort {
	var out []model.HostPort
	for _, c := range append(slices.Clone(p.Containers), p.InitContainers...) {
		out = append(out, c.HostPorts...)
	}
	return out
}

func portClash(pods []*model.Pod) string {
	type key struct {
		port  int32
		proto string
	}
	used := map[key]string{}
	for _, p := range pods {
		for _, hp := range hostPorts(p) {
			proto := hp.Protocol
			if proto == "" {
				proto = "TCP"
			}
			k := key{hp.Port, proto}
			if other, ok := used[k]; ok {
				return fmt.Sprintf("host port %d/%s wanted by %s and %s", hp.Port, proto, other, p.Name)
			}
			used[k] = p.Name
		}
	}
	return ""
}

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// --- existing nodes and in-flight NodeClaims ---

var startupLike = map[string]bool{"node.kubernetes.io/not-ready": true, "node.kubernetes.io/unreachable": true,
	"node.cloudprovider.kubernetes.io/uninitialized": true, "karpenter.sh/unregistered": true}

func (v *validator) checkExisting() {
	claims := map[string]*model.NodeClaim{}
	for _, c := range v.s.NodeClaims {
		claims[c.Name] = c
	}
	nodes := map[string]*model.Node{}
	for _, n := range v.s.Nodes {
		nodes[n.Name] = n
		h := &vhost{name: n.Name, labels: n.Labels}
		for _, taint := range n.Taints {
			if c := claims[n.NodeClaim]; startupLike[taint.Key] || c != nil && slices.Contains(c.StartupTaints, taint) {
				continue
			}
			h.taints = append(h.taints, taint)
		}
		v.hosts[n.Name] = h
	}
	for _, p := range v.s.Pods {
		if p.NodeName != "" && p.Phase != "Succeeded" && p.Phase != "Failed" {
			if h := v.hosts[p.NodeName]; h != nil {
				h.pods = append(h.pods, p)
			}
		}
	}
	for _, pl := range v.plan.Placements {
		if pl.InFlight {
			c := claims[pl.Node]
			if c == nil || c.Deleting {
				v.errorf("placement on in-flight NodeClaim %s, which does not exist or is deleting", pl.Node)
				continue
			}
			h := &vhost{name: c.Name, labels: map[string]string{"karpenter.sh/nodepool": c.NodePool}, unknown: map[string]bool{}, taints: c.Taints}
			for k, val := range c.Labels {
				h.labels[k] = val
			}
			if c.Zone != "" {
				h.labels["topology.kubernetes.io/zone"] = c.Zone
			}
			if it := v.instanceType(c.InstanceType); it != nil {
				for k, val := range typeLabels(it) {
					h.labels[k] = val
				}
			}
			for _, r := range c.Requirements {
				if r.Operator == model.OpIn && len(r.Values) == 1 {
					h.labels[r.Key] = r.Values[0]
				} else if _, ok := h.labels[r.Key]; !ok {
					h.unknown[r.Key] = true
				}
			}
			for _, k := range pl.Pods {
				p := v.pods[k]
				h.placed = append(h.placed, p)
				v.where[k] = h
				if !vTolerates(p, h.taints) {
					v.errorf("pod %s on in-flight %s does not tolerate its taints", k, c.Name)
				}
				if !podFitsLabels(p, h.labels) {
					v.errorf("pod %s on in-flight %s does not match its labels %v", k, c.Name, h.labels)
				}
			}
			if !c.Allocatable.IsZero() {
				used := model.Resources{}
				for _, p := range h.placed {
					used = used.Add(podRequests(p))
				}
				if !used.Fits(c.Allocatable) {
					v.errorf("in-flight %s gets %v, allocatable %v", c.Name, used, c.Allocatable)
				}
			}
			v.hosts[c.Name] = h
			continue
		}
		n := nodes[pl.Node]
		if n == nil || n.Deleting || n.Unschedulable {
			v.errorf("placement on node %s, which does not exist, is deleting or cordoned", pl.Node)
			continue
		}
		h := v.hosts[n.Name]
		alloc := n.Allocatable
		if alloc.IsZero() {
			alloc = n.Capacity
		}
		used := model.Resources{}
		for _, p := range h.pods {
			used = used.Add(podRequests(p))
		}
		for _, k := range pl.Pods {
			p := v.pods[k]
			used = used.Add(podRequests(p))
			h.placed = append(h.placed, p)
			v.where[k] = h
			if !vTolerates(p, h.taints) {
				v.errorf("pod %s on node %s does not tolerate its taints %v", k, n.Name, h.taints)
			}
			if !podFitsLabels(p, n.Labels) {
				v.errorf("pod %s on node %s does not match its labels", k, n.Name)
			}
		}
		if !used.Fits(alloc) {
			v.errorf("node %s gets %v, allocatable %v", n.Name, used, alloc)
		}
		if c := portClash(append(slices.Clone(h.pods), h.placed...)); c != "" {
			v.errorf("node %s: %s", n.Name, c)
		}
	}
}
