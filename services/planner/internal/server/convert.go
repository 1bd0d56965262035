package server

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// FieldError is a snapshot field whose value the solver cannot use, named by
// its path (e.g. "snapshot.pods[3].node_affinity.required[0].requirements[1].values").
type FieldError struct {
	Field       string
	Description string
}

// Error returns "field: description".
func (e *FieldError) Error() string { return e.Field + ": " + e.Description }

// path builds field paths.
type path string

func (p path) f(name string) path { return path(string(p) + "." + name) }
func (p path) i(name string, i int) path {
	return path(string(p) + "." + name + "[" + strconv.Itoa(i) + "]")
}
func (p path) k(name, key string) path {
	return path(string(p) + "." + name + "[" + strconv.Quote(key) + "]")
}
func (p path) err(format string, args ...any) error {
	return &FieldError{Field: string(p), Description: fmt.Sprintf(format, args...)}
}

// decodeSnapshot converts a snapshot to the solver's model and checks what
// the proto schema cannot: operators and their values, duplicate names,
// negative quantities, malformed kubelet quantities, references to unknown
// node classes. Problems come back as *FieldError. An empty catalogue stays
// empty (the caller fills it first).
func decodeSnapshot(s *clusterv1.Snapshot) (*model.Snapshot, error) {
	root := path("snapshot")
	if s == nil {
		return nil, root.err("is required")
	}
	out := &model.Snapshot{Region: s.GetRegion()}
	if s.GetNow() != nil {
		out.Now = s.GetNow().AsTime()
	}
	seen := map[string]int{}
	for i, p := range s.GetPods() {
		fp := root.i("pods", i)
		m, err := decodePod(fp, p)
		if err != nil {
			return nil, err
		}
		if j, dup := seen[m.Key()]; dup {
			return nil, fp.f("name").err("duplicate pod %s (also snapshot.pods[%d])", m.Key(), j)
		}
		seen[m.Key()] = i
		out.Pods = append(out.Pods, m)
	}
	names := map[string]int{}
	dup := func(fp path, kind, name string, i int) error {
		if name == "" {
			return fp.f("name").err("must not be empty")
		}
		if j, ok := names[kind+"/"+name]; ok {
			return fp.f("name").err("duplicate %s %s (also index %d)", kind, name, j)
		}
		names[kind+"/"+name] = i
		return nil
	}
	for i, n := range s.GetNodes() {
		fp := root.i("nodes", i)
		if err := dup(fp, "node", n.GetName(), i); err != nil {
			return nil, err
		}
		m, err := decodeNode(fp, n)
		if err != nil {
			return nil, err
		}
		out.Nodes = append(out.Nodes, m)
	}
	for i, c := range s.GetNodeClaims() {
		fp := root.i("node_claims", i)
		if err := dup(fp, "NodeClaim", c.GetName(), i); err != nil {
			return nil, err
		}
		m, err := decodeNodeClaim(fp, c)
		if err != nil {
			return nil, err
		}
		out.NodeClaims = append(out.NodeClaims, m)
	}
	for i, c := range s.GetNodeClasses() {
		fp := root.i("node_classes", i)
		if err := dup(fp, "node class", c.GetName(), i); err != nil {
			return nil, err
		}
		m, err := decodeNodeClass(fp, c)
		if err != nil {
			return nil, err
		}
		out.NodeClasses = append(out.NodeClasses, m)
	}
	for i, np := range s.GetNodePools() {
		fp := root.i("node_pools", i)
		if err := dup(fp, "NodePool", np.GetName(), i); err != nil {
			return nil, err
		}
		m, err := decodeNodePool(fp, np)
		if err != nil {
			return nil, err
		}
		if m.NodeClass != "" {
			if _, ok := names["node class/"+m.NodeClass]; !ok {
				return nil, fp.f("node_class").err("unknown node class %q", m.NodeClass)
			}
		}
		out.NodePools = append(out.NodePools, m)
	}
	for i, d := range s.GetDaemonSets() {
		fp := root.i("daemon_sets", i)
		if d.GetTemplate() == nil {
			return nil, fp.f("template").err("is required")
		}
		t, err := decodePod(fp.f("template"), d.GetTemplate())
		if err != nil {
			return nil, err
		}
		if t.Namespace == "" {
			t.Namespace = d.GetNamespace()
		}
		if t.Name == "" {
			t.Name = d.GetName()
		}
		t.OwnerKind, t.OwnerName = "DaemonSet", d.GetName()
		out.DaemonSets = append(out.DaemonSets, &model.DaemonSet{Namespace: d.GetNamespace(), Name: d.GetName(), Template: t})
	}
	for i, b := range s.GetPodDisruptionBudgets() {
		fp := root.i("pod_disruption_budgets", i)
		sel, err := decodeSelector(fp.f("selector"), b.GetSelector())
		if err != nil {
			return nil, err
		}
		out.PodDisruptionBudgets = append(out.PodDisruptionBudgets, &model.PodDisruptionBudget{
			Namespace: b.GetNamespace(), Name: b.GetName(), Selector: sel, DisruptionsAllowed: b.GetDisruptionsAllowed()})
	}
	for i, it := range s.GetInstanceTypes() {
		fp := root.i("instance_types", i)
		if err := dup(fp, "instance type", it.GetName(), i); err != nil {
			return nil, err
		}
		m, err := decodeInstanceType(fp, it)
		if err != nil {
			return nil, err
		}
		out.InstanceTypes = append(out.InstanceTypes, m)
	}
	return out, nil
}

func decodeResources(fp path, r *clusterv1.Resources) (model.Resources, error) {
	if r == nil {
		return model.Resources{}, nil
	}
	out := model.Resources{CPU: r.GetCpuMillis(), Memory: r.GetMemoryBytes(), Pods: r.GetPods(), EphemeralStorage: r.GetEphemeralStorageBytes()}
	for _, f := range []struct {
		name string
		v    int64
	}{{"cpu_millis", out.CPU}, {"memory_bytes", out.Memory}, {"pods", out.Pods}, {"ephemeral_storage_bytes", out.EphemeralStorage}} {
		if f.v < 0 {
			return out, fp.f(f.name).err("must not be negative, got %d", f.v)
		}
	}
	for _, k := range sortedKeys(r.GetExtended()) {
		v := r.GetExtended()[k]
		if v < 0 {
			return out, fp.k("extended", k).err("must not be negative, got %d", v)
		}
		out = out.With(k, v)
	}
	return out, nil
}

var operators = map[clusterv1.Operator]model.Operator{
	clusterv1.Operator_OPERATOR_IN:             model.OpIn,
	clusterv1.Operator_OPERATOR_NOT_IN:         model.OpNotIn,
	clusterv1.Operator_OPERATOR_EXISTS:         model.OpExists,
	clusterv1.Operator_OPERATOR_DOES_NOT_EXIST: model.OpDoesNotExist,
	clusterv1.Operator_OPERATOR_GT:             model.OpGt,
	clusterv1.Operator_OPERATOR_LT:             model.OpLt,
}

func decodeRequirement(fp path, r *clusterv1.Requirement) (model.Requirement, error) {
	if r.GetKey() == "" {
		return model.Requirement{}, fp.f("key").err("must not be empty")
	}
	op, ok := operators[r.GetOperator()]
	if !ok {
		return model.Requirement{}, fp.f("operator").err("unknown operator %s", r.GetOperator())
	}
	out := model.Requirement{Key: r.GetKey(), Operator: op, Values: r.GetValues(), MinValues: int(r.GetMinValues())}
	vals := fp.f("values")
	switch op {
	case model.OpIn, model.OpNotIn:
		if len(out.Values) == 0 {
			return out, vals.err("%s needs at least one value", op)
		}
	case model.OpExists, model.OpDoesNotExist:
		if len(out.Values) != 0 {
			return out, vals.err("%s takes no values, got %q", op, out.Values)
		}
	case model.OpGt, model.OpLt:
		if len(out.Values) != 1 {
			return out, vals.err("%s needs exactly one integer value, got %q", op, out.Values)
		}
		if _, err := strconv.ParseInt(out.Values[0], 10, 64); err != nil {
			return out, vals.err("%s needs an integer value, got %q", op, out.Values[0])
		}
	}
	if out.MinValues < 0 {
		return out, fp.f("min_values").err("must not be negative")
	}
	if out.MinValues > 0 && op == model.OpIn && out.MinValues > len(out.Values) {
		return out, fp.f("min_values").err("%d is more than the %d values listed", out.MinValues, len(out.Values))
	}
	return out, nil
}

func decodeRequirements(fp path, name string, rs []*clusterv1.Requirement) ([]model.Requirement, error) {
	var out []model.Requirement
	for i, r := range rs {
		m, err := decodeRequirement(fp.i(name, i), r)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func decodeTerm(fp path, t *clusterv1.NodeSelectorTerm) (model.NodeSelectorTerm, error) {
	reqs, err := decodeRequirements(fp, "requirements", t.GetRequirements())
	return model.NodeSelectorTerm{Requirements: reqs}, err
}

func decodeSelector(fp path, s *clusterv1.LabelSelector) (*model.LabelSelector, error) {
	if s == nil {
		return nil, nil
	}
	reqs, err := decodeRequirements(fp, "requirements", s.GetRequirements())
	if err != nil {
		return nil, err
	}
	return &model.LabelSelector{Requirements: reqs}, nil
}

func decodeAffinityTerm(fp path, t *clusterv1.PodAffinityTerm) (model.PodAffinityTerm, error) {
	if t == nil {
		return model.PodAffinityTerm{}, fp.err("is required")
	}
	if t.GetTopologyKey() == "" {
		return model.PodAffinityTerm{}, fp.f("topology_key").err("must not be empty")
	}
	sel, err := decodeSelector(fp.f("selector"), t.GetSelector())
	return model.PodAffinityTerm{Selector: sel, Namespaces: t.GetNamespaces(), AllNamespaces: t.GetAllNamespaces(), TopologyKey: t.GetTopologyKey()}, err
}

func decodeTerms(fp path, name string, ts []*clusterv1.PodAffinityTerm) ([]model.PodAffinityTerm, error) {
	var out []model.PodAffinityTerm
	for i, t := range ts {
		term, err := decodeAffinityTerm(fp.i(name, i), t)
		if err != nil {
			return nil, err
		}
		out = append(out, term)
	}
	return out, nil
}

func decodeWeightedTerms(fp path, name string, ts []*clusterv1.WeightedPodAffinityTerm) ([]model.WeightedPodAffinityTerm, error) {
	var out []model.WeightedPodAffinityTerm
	for i, t := range ts {
		tp := fp.i(name, i)
		if t.GetWeight() < 1 || t.GetWeight() > 100 {
			return nil, tp.f("weight").err("must be between 1 and 100, got %d", t.GetWeight())
		}
		term, err := decodeAffinityTerm(tp.f("term"), t.GetTerm())
		if err != nil {
			return nil, err
		}
		out = append(out, model.WeightedPodAffinityTerm{Weight: t.GetWeight(), Term: term})
	}
	return out, nil
}

var effects = map[string]bool{model.TaintNoSchedule: true, model.TaintPreferNoSchedule: true, model.TaintNoExecute: true}

func decodeTaints(fp path, name string, ts []*clusterv1.Taint) ([]model.Taint, error) {
	var out []model.Taint
	for i, t := range ts {
		tp := fp.i(name, i)
		if t.GetKey() == "" {
			return nil, tp.f("key").err("must not be empty")
		}
		if !effects[t.GetEffect()] {
			return nil, tp.f("effect").err("unknown effect %q", t.GetEffect())
		}
		out = append(out, model.Taint{Key: t.GetKey(), Value: t.GetValue(), Effect: t.GetEffect()})
	}
	return out, nil
}

func decodePod(fp path, p *clusterv1.Pod) (*model.Pod, error) {
	m := &model.Pod{
		Namespace: p.GetNamespace(), Name: p.GetName(), UID: p.GetUid(), Labels: p.GetLabels(),
		NodeName: p.GetNodeName(), NominatedNodeClaim: p.GetNominatedNodeClaim(), NodeSelector: p.GetNodeSelector(),
		OwnerKind: p.GetOwnerKind(), OwnerName: p.GetOwnerName(), Priority: p.GetPriority(),
		DoNotDisrupt: p.GetDoNotDisrupt(), LocalStorage: p.GetLocalStorage(), Phase: p.GetPhase(),
		Terminating: p.GetTerminating(), Unschedulable: p.GetUnschedulable(), SchedulerName: p.GetSchedulerName(),
	}
	if p.GetCreated() != nil {
		m.Created = p.GetCreated().AsTime()
	}
	var err error
	if m.Containers, err = decodeContainers(fp, "containers", p.GetContainers()); err != nil {
		return nil, err
	}
	if m.InitContainers, err = decodeContainers(fp, "init_containers", p.GetInitContainers()); err != nil {
		return nil, err
	}
	if m.Overhead, err = decodeResources(fp.f("overhead"), p.GetOverhead()); err != nil {
		return nil, err
	}
	na := fp.f("node_affinity")
	for i, t := range p.GetNodeAffinity().GetRequired() {
		term, err := decodeTerm(na.i("required", i), t)
		if err != nil {
			return nil, err
		}
		m.NodeAffinity.Required = append(m.NodeAffinity.Required, term)
	}
	for i, t := range p.GetNodeAffinity().GetPreferred() {
		tp := na.i("preferred", i)
		if t.GetWeight() < 1 || t.GetWeight() > 100 {
			return nil, tp.f("weight").err("must be between 1 and 100, got %d", t.GetWeight())
		}
		term, err := decodeTerm(tp.f("term"), t.GetTerm())
		if err != nil {
			return nil, err
		}
		m.NodeAffinity.Preferred = append(m.NodeAffinity.Preferred, model.WeightedNodeSelectorTerm{Weight: t.GetWeight(), Term: term})
	}
	if m.PodAffinity, err = decodeTerms(fp, "pod_affinity", p.GetPodAffinity()); err != nil {
		return nil, err
	}
	if m.PodAntiAffinity, err = decodeTerms(fp, "pod_anti_affinity", p.GetPodAntiAffinity()); err != nil {
		return nil, err
	}
	if m.PreferredPodAffinity, err = decodeWeightedTerms(fp, "preferred_pod_affinity", p.GetPreferredPodAffinity()); err != nil {
		return nil, err
	}
	if m.PreferredPodAntiAffinity, err = decodeWeightedTerms(fp, "preferred_pod_anti_affinity", p.GetPreferredPodAntiAffinity()); err != nil {
		return nil, err
	}
	for i, s := range p.GetTopologySpread() {
		sp := fp.i("topology_spread", i)
		if s.GetMaxSkew() < 1 {
			return nil, sp.f("max_skew").err("must be at least 1, got %d", s.GetMaxSkew())
		}
		if s.GetTopologyKey() == "" {
			return nil, sp.f("topology_key").err("must not be empty")
		}
		if s.GetMinDomains() < 0 {
			return nil, sp.f("min_domains").err("must not be negative")
		}
		sel, err := decodeSelector(sp.f("selector"), s.GetSelector())
		if err != nil {
			return nil, err
		}
		m.TopologySpread = append(m.TopologySpread, model.TopologySpreadConstraint{
			MaxSkew: s.GetMaxSkew(), TopologyKey: s.GetTopologyKey(), DoNotSchedule: s.GetDoNotSchedule(), Selector: sel,
			MinDomains: s.GetMinDomains(), NodeAffinityPolicyIgnore: s.GetNodeAffinityPolicyIgnore(),
			NodeTaintsPolicyHonor: s.GetNodeTaintsPolicyHonor(), MatchLabelKeys: s.GetMatchLabelKeys()})
	}
	for i, t := range p.GetTolerations() {
		tp := fp.i("tolerations", i)
		switch t.GetOperator() {
		case "", "Equal":
			if t.GetKey() == "" {
				return nil, tp.f("key").err("must not be empty unless the operator is Exists")
			}
		case "Exists":
			if t.GetValue() != "" {
				return nil, tp.f("value").err("must be empty when the operator is Exists")
			}
		default:
			return nil, tp.f("operator").err("unknown operator %q", t.GetOperator())
		}
		if t.GetEffect() != "" && !effects[t.GetEffect()] {
			return nil, tp.f("effect").err("unknown effect %q", t.GetEffect())
		}
		m.Tolerations = append(m.Tolerations, model.Toleration{Key: t.GetKey(), Operator: t.GetOperator(), Value: t.GetValue(), Effect: t.GetEffect()})
	}
	for i, v := range p.GetVolumes() {
		vt := model.VolumeTopology{Claim: v.GetClaim()}
		for j, t := range v.GetTerms() {
			term, err := decodeTerm(fp.i("volumes", i).i("terms", j), t)
			if err != nil {
				return nil, err
			}
			vt.Terms = append(vt.Terms, term)
		}
		m.Volumes = append(m.Volumes, vt)
	}
	return m, nil
}

func decodeContainers(fp path, name string, cs []*clusterv1.Container) ([]model.Container, error) {
	var out []model.Container
	for i, c := range cs {
		cp := fp.i(name, i)
		req, err := decodeResources(cp.f("requests"), c.GetRequests())
		if err != nil {
			return nil, err
		}
		mc := model.Container{Name: c.GetName(), Requests: req, Sidecar: c.GetSidecar()}
		for j, hp := range c.GetHostPorts() {
			pp := cp.i("host_ports", j)
			if hp.GetPort() < 1 || hp.GetPort() > 65535 {
				return nil, pp.f("port").err("must be between 1 and 65535, got %d", hp.GetPort())
			}
			switch hp.GetProtocol() {
			case "", "TCP", "UDP", "SCTP":
			default:
				return nil, pp.f("protocol").err("unknown protocol %q", hp.GetProtocol())
			}
			mc.HostPorts = append(mc.HostPorts, model.HostPort{Port: hp.GetPort(), Protocol: hp.GetProtocol(), HostIP: hp.GetHostIp()})
		}
		out = append(out, mc)
	}
	return out, nil
}

func timeOf(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func durationOf(fp path, d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, fp.err("invalid duration: %v", err)
	}
	if d.AsDuration() < 0 {
		return 0, fp.err("must not be negative")
	}
	return d.AsDuration(), nil
}

func decodeNode(fp path, n *clusterv1.Node) (*model.Node, error) {
	taints, err := decodeTaints(fp, "taints", n.GetTaints())
	if err != nil {
		return nil, err
	}
	capacity, err := decodeResources(fp.f("capacity"), n.GetCapacity())
	if err != nil {
		return nil, err
	}
	alloc, err := decodeResources(fp.f("allocatable"), n.GetAllocatable())
	if err != nil {
		return nil, err
	}
	if err := checkPrice(fp.f("price_per_hour"), n.GetPricePerHour()); err != nil {
		return nil, err
	}
	return &model.Node{Name: n.GetName(), ProviderID: n.GetProviderId(), Labels: n.GetLabels(), Taints: taints,
		Capacity: capacity, Allocatable: alloc, Ready: n.GetReady(), Unschedulable: n.GetUnschedulable(),
		NodeClaim: n.GetNodeClaim(), Created: timeOf(n.GetCreated()), PricePerHour: n.GetPricePerHour(),
		Deleting: n.GetDeleting(), Annotations: n.GetAnnotations(), LastPodEvent: timeOf(n.GetLastPodEvent())}, nil
}

func checkPrice(fp path, v float64) error {
	if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return fp.err("must be a non-negative number, got %v", v)
	}
	return nil
}

func decodeNodeClaim(fp path, c *clusterv1.NodeClaim) (*model.NodeClaim, error) {
	m := &model.NodeClaim{Name: c.GetName(), NodePool: c.GetNodePool(), NodeClass: c.GetNodeClass(), Labels: c.GetLabels(),
		ProviderID: c.GetProviderId(), NodeName: c.GetNodeName(), InstanceType: c.GetInstanceType(), Zone: c.GetZone(),
		CapacityType: c.GetCapacityType(), Created: timeOf(c.GetCreated()), Deleting: c.GetDeleting(),
		PricePerHour: c.GetPricePerHour(), NodePoolHash: c.GetNodePoolHash(), NodeClassHash: c.GetNodeClassHash(),
		ImageID: c.GetImageId(), Annotations: c.GetAnnotations()}
	var err error
	if m.Requirements, err = decodeRequirements(fp, "requirements", c.GetRequirements()); err != nil {
		return nil, err
	}
	if m.Requests, err = decodeResources(fp.f("requests"), c.GetRequests()); err != nil {
		return nil, err
	}
	if m.Taints, err = decodeTaints(fp, "taints", c.GetTaints()); err != nil {
		return nil, err
	}
	if m.StartupTaints, err = decodeTaints(fp, "startup_taints", c.GetStartupTaints()); err != nil {
		return nil, err
	}
	if m.Capacity, err = decodeResources(fp.f("capacity"), c.GetCapacity()); err != nil {
		return nil, err
	}
	if m.Allocatable, err = decodeResources(fp.f("allocatable"), c.GetAllocatable()); err != nil {
		return nil, err
	}
	if err := checkPrice(fp.f("price_per_hour"), c.GetPricePerHour()); err != nil {
		return nil, err
	}
	for _, cond := range c.GetConditions() {
		m.Conditions = append(m.Conditions, model.Condition{Type: cond.GetType(), Status: cond.GetStatus(),
			Reason: cond.GetReason(), Message: cond.GetMessage(), LastTransition: timeOf(cond.GetLastTransition())})
	}
	return m, nil
}

// evictionSignals are the kubelet's hard eviction signals.
var evictionSignals = map[string]bool{
	model.SignalMemoryAvailable: true, model.SignalNodeFSAvailable: true, "nodefs.inodesFree": true,
	"imagefs.available": true, "imagefs.inodesFree": true, "pid.available": true,
}

// reservable are the resources kube-reserved and system-reserved may name.
var reservable = map[string]bool{model.ResourceCPU: true, model.ResourceMemory: true, model.ResourceEphemeralStorage: true, "pid": true}

func decodeKubelet(fp path, k *clusterv1.Kubelet) (*model.Kubelet, error) {
	if k == nil {
		return nil, nil
	}
	out := &model.Kubelet{MaxPods: k.GetMaxPods(), PodsPerCore: k.GetPodsPerCore()}
	if out.MaxPods < 0 {
		return nil, fp.f("max_pods").err("must not be negative")
	}
	if out.PodsPerCore < 0 {
		return nil, fp.f("pods_per_core").err("must not be negative")
	}
	reserved := func(name string, in map[string]string) (map[string]int64, error) {
		var m map[string]int64
		for _, res := range sortedKeys(in) {
			if !reservable[res] {
				return nil, fp.k(name, res).err("unknown resource %q (want cpu, memory, ephemeral-storage or pid)", res)
			}
			v, err := model.ParseQuantity(res, in[res])
			if err != nil {
				return nil, fp.k(name, res).err("%v", err)
			}
			if v < 0 {
				return nil, fp.k(name, res).err("must not be negative")
			}
			if res == "pid" {
				continue
			}
			if m == nil {
				m = map[string]int64{}
			}
			m[res] = v
		}
		return m, nil
	}
	var err error
	if out.KubeReserved, err = reserved("kube_reserved", k.GetKubeReserved()); err != nil {
		return nil, err
	}
	if out.SystemReserved, err = reserved("system_reserved", k.GetSystemReserved()); err != nil {
		return nil, err
	}
	for _, sig := range sortedKeys(k.GetEvictionHard()) {
		v := k.GetEvictionHard()[sig]
		ep := fp.k("eviction_hard", sig)
		if !evictionSignals[sig] {
			return nil, ep.err("unknown eviction signal %q", sig)
		}
		t := model.Threshold{}
		if pct, isPct, err := model.ParsePercent(v); isPct {
			if err != nil {
				return nil, ep.err("%v", err)
			}
			t.Percent, t.IsPercent = pct, true
		} else {
			res := model.ResourceMemory
			if strings.HasPrefix(sig, "pid") || strings.Contains(sig, "inodes") {
				res = "count"
			}
			q, err := model.ParseQuantity(res, v)
			if err != nil {
				return nil, ep.err("%v", err)
			}
			if q < 0 {
				return nil, ep.err("must not be negative")
			}
			t.Quantity = q
		}
		if out.EvictionHard == nil {
			out.EvictionHard = map[string]model.Threshold{}
		}
		out.EvictionHard[sig] = t
	}
	return out, nil
}

func decodeNodePool(fp path, np *clusterv1.NodePool) (*model.NodePool, error) {
	m := &model.NodePool{Name: np.GetName(), Weight: np.GetWeight(), Labels: np.GetLabels(), NodeClass: np.GetNodeClass(),
		SourceKind: np.GetSourceKind(), Hash: np.GetHash(), Ready: np.GetReady(), NotReadyReason: np.GetNotReadyReason()}
	if m.Weight < 0 || m.Weight > 100 {
		return nil, fp.f("weight").err("must be between 0 and 100, got %d", m.Weight)
	}
	var err error
	if m.Requirements, err = decodeRequirements(fp, "requirements", np.GetRequirements()); err != nil {
		return nil, err
	}
	if m.Taints, err = decodeTaints(fp, "taints", np.GetTaints()); err != nil {
		return nil, err
	}
	if m.StartupTaints, err = decodeTaints(fp, "startup_taints", np.GetStartupTaints()); err != nil {
		return nil, err
	}
	for _, k := range sortedKeys(np.GetLimits()) {
		v := np.GetLimits()[k]
		if v < 0 {
			return nil, fp.k("limits", k).err("must not be negative, got %d", v)
		}
		if m.Limits == nil {
			m.Limits = map[string]int64{}
		}
		m.Limits[k] = v
	}
	if m.Kubelet, err = decodeKubelet(fp.f("kubelet"), np.GetKubelet()); err != nil {
		return nil, err
	}
	if m.ExpireAfter, err = durationOf(fp.f("expire_after"), np.GetExpireAfter()); err != nil {
		return nil, err
	}
	if m.TerminationGracePeriod, err = durationOf(fp.f("termination_grace_period"), np.GetTerminationGracePeriod()); err != nil {
		return nil, err
	}
	d := np.GetDisruption()
	dp := fp.f("disruption")
	switch d.GetConsolidationPolicy() {
	case "", model.ConsolidateWhenEmpty, model.ConsolidateWhenEmptyOrUnderutilized:
	default:
		return nil, dp.f("consolidation_policy").err("unknown policy %q", d.GetConsolidationPolicy())
	}
	m.Disruption = model.Disruption{ConsolidationPolicy: d.GetConsolidationPolicy(), ConsolidateNever: d.GetConsolidateNever() || d.GetConsolidateAfter() == nil}
	if m.Disruption.ConsolidateAfter, err = durationOf(dp.f("consolidate_after"), d.GetConsolidateAfter()); err != nil {
		return nil, err
	}
	for i, b := range d.GetBudgets() {
		bp := dp.i("budgets", i)
		if err := checkBudgetNodes(bp.f("nodes"), b.GetNodes()); err != nil {
			return nil, err
		}
		dur, err := durationOf(bp.f("duration"), b.GetDuration())
		if err != nil {
			return nil, err
		}
		if b.GetSchedule() != "" && dur == 0 {
			return nil, bp.f("duration").err("is required with a schedule")
		}
		m.Disruption.Budgets = append(m.Disruption.Budgets, model.DisruptionBudget{Nodes: b.GetNodes(), Reasons: b.GetReasons(), Schedule: b.GetSchedule(), Duration: dur})
	}
	return m, nil
}

func checkBudgetNodes(fp path, v string) error {
	if pct, isPct, err := model.ParsePercent(v); isPct {
		if err != nil || pct > 100 {
			return fp.err("malformed percentage %q", v)
		}
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return fp.err("must be a node count or a percentage, got %q", v)
	}
	return nil
}

func decodeNodeClass(fp path, c *clusterv1.NodeClass) (*model.NodeClass, error) {
	m := &model.NodeClass{Name: c.GetName(), SecurityGroups: c.GetSecurityGroups(), Hash: c.GetHash(), Ready: c.GetReady(),
		NotReadyReason: c.GetNotReadyReason(), InterruptionQueue: c.GetInterruptionQueue()}
	for _, s := range c.GetSubnets() {
		m.Subnets = append(m.Subnets, model.Subnet{ID: s.GetId(), Zone: s.GetZone(), ZoneID: s.GetZoneId(), AvailableIPs: s.GetAvailableIps()})
	}
	for i, im := range c.GetImages() {
		reqs, err := decodeRequirements(fp.i("images", i), "requirements", im.GetRequirements())
		if err != nil {
			return nil, err
		}
		m.Images = append(m.Images, model.Image{ID: im.GetId(), Name: im.GetName(), Requirements: reqs})
	}
	var err error
	if m.Kubelet, err = decodeKubelet(fp.f("kubelet"), c.GetKubelet()); err != nil {
		return nil, err
	}
	return m, nil
}

var capacityTypes = map[string]bool{model.CapacityOnDemand: true, model.CapacitySpot: true, model.CapacityReserved: true}

func decodeInstanceType(fp path, it *clusterv1.InstanceType) (*model.InstanceType, error) {
	capacity, err := decodeResources(fp.f("capacity"), it.GetCapacity())
	if err != nil {
		return nil, err
	}
	switch it.GetArch() {
	case "", "amd64", "arm64":
	default:
		return nil, fp.f("arch").err("unknown architecture %q (want amd64 or arm64)", it.GetArch())
	}
	m := &model.InstanceType{Name: it.GetName(), Arch: it.GetArch(), Capacity: capacity, Labels: it.GetLabels(), OperatingSystems: it.GetOperatingSystems()}
	for i, o := range it.GetOfferings() {
		op := fp.i("offerings", i)
		if o.GetZone() == "" {
			return nil, op.f("zone").err("must not be empty")
		}
		if !capacityTypes[o.GetCapacityType()] {
			return nil, op.f("capacity_type").err("unknown capacity type %q", o.GetCapacityType())
		}
		if err := checkPrice(op.f("price_per_hour"), o.GetPricePerHour()); err != nil {
			return nil, err
		}
		m.Offerings = append(m.Offerings, model.Offering{Zone: o.GetZone(), ZoneID: o.GetZoneId(), CapacityType: o.GetCapacityType(),
			PricePerHour: o.GetPricePerHour(), Available: o.GetAvailable(), PriceSource: o.GetPriceSource()})
	}
	return m, nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// encodePlan converts a plan to its wire form.
func encodePlan(p *model.Plan) *clusterv1.Plan {
	if p == nil {
		return &clusterv1.Plan{}
	}
	out := &clusterv1.Plan{Id: p.ID, Sequence: p.Sequence, TotalPricePerHour: p.TotalPricePerHour}
	for _, nc := range p.NodeClaims {
		out.NodeClaims = append(out.NodeClaims, encodeNodeClaimPlan(nc))
	}
	out.ExistingNodes = encodePlacements(p.Placements)
	for _, u := range p.Unschedulable {
		out.Unschedulable = append(out.Unschedulable, &clusterv1.Unschedulable{Pod: u.Pod, Reason: u.Reason})
	}
	for _, d := range p.Disruptions {
		dp := &clusterv1.DisruptionPlan{Id: d.ID, Reason: clusterv1.DisruptionReason(d.Reason), NodeClaims: d.NodeClaims,
			Nodes: d.Nodes, SavingsPerHour: d.SavingsPerHour, Budget: d.Budget, Moves: encodePlacements(d.Moves)}
		for _, r := range d.Replacements {
			dp.Replacements = append(dp.Replacements, encodeNodeClaimPlan(r))
		}
		out.Disruptions = append(out.Disruptions, dp)
	}
	for _, r := range p.Rejections {
		out.Rejections = append(out.Rejections, &clusterv1.Rejection{Node: r.Node, NodeClaim: r.NodeClaim, Reason: r.Reason})
	}
	return out
}

func encodePlacements(ps []*model.Placement) []*clusterv1.NodePlacement {
	var out []*clusterv1.NodePlacement
	for _, pl := range ps {
		out = append(out, &clusterv1.NodePlacement{Node: pl.Node, Pods: pl.Pods, InFlight: pl.InFlight})
	}
	return out
}

func encodeNodeClaimPlan(nc *model.NodeClaimPlan) *clusterv1.NodeClaimPlan {
	out := &clusterv1.NodeClaimPlan{
		Name: nc.Name, NodePool: nc.NodePool, NodeClass: nc.NodeClass, InstanceType: nc.InstanceType, Zone: nc.Zone,
		CapacityType: nc.CapacityType, PricePerHour: nc.PricePerHour, InstanceTypeOptions: nc.InstanceTypeOptions,
		Pods: nc.Pods, Requests: encodeResources(nc.Requests), Labels: nc.Labels, Taints: encodeTaints(nc.Taints),
		StartupTaints: encodeTaints(nc.StartupTaints), NodePoolHash: nc.NodePoolHash, NodeClassHash: nc.NodeClassHash,
	}
	for _, r := range nc.Requirements {
		out.Requirements = append(out.Requirements, encodeRequirement(r))
	}
	for _, o := range nc.Options {
		out.Options = append(out.Options, &clusterv1.InstanceOption{InstanceType: o.InstanceType, Zone: o.Zone, CapacityType: o.CapacityType, PricePerHour: o.PricePerHour})
	}
	return out
}

func encodeRequirement(r model.Requirement) *clusterv1.Requirement {
	var op clusterv1.Operator
	for k, v := range operators {
		if v == r.Operator {
			op = k
		}
	}
	return &clusterv1.Requirement{Key: r.Key, Operator: op, Values: r.Values, MinValues: int32(r.MinValues)}
}

func encodeResources(r model.Resources) *clusterv1.Resources {
	return &clusterv1.Resources{CpuMillis: r.CPU, MemoryBytes: r.Memory, Pods: r.Pods, EphemeralStorageBytes: r.EphemeralStorage, Extended: r.Extended}
}

func encodeTaints(ts []model.Taint) []*clusterv1.Taint {
	var out []*clusterv1.Taint
	for _, t := range ts {
		out = append(out, &clusterv1.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect})
	}
	return out
}
