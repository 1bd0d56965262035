package model

import "time"

// Consolidation policies.
const (
	ConsolidateWhenEmpty                = "WhenEmpty"
	ConsolidateWhenEmptyOrUnderutilized = "WhenEmptyOrUnderutilized"
)

// NodePool is a karpenter.sh/v1 NodePool, or a Provisioner mapped onto one.
type NodePool struct {
	Name   string
	Weight int32
	// Requirements constrain the nodes the pool may launch.
	Requirements  []Requirement
	Labels        map[string]string
	Taints        []Taint
	StartupTaints []Taint
	// Limits cap the summed capacity of the pool's nodes, by resource name
	// ("cpu", "memory", "nvidia.com/gpu", ...) in base units (millicores for
	// cpu, bytes for memory).
	Limits     map[string]int64
	NodeClass  string
	Disruption Disruption
	// ExpireAfter replaces nodes older than this; 0 means never.
	ExpireAfter time.Duration
	// Kubelet overrides the node class's kubelet settings field by field.
	Kubelet *Kubelet
	// SourceKind is "NodePool", or "Provisioner" for the brief's v1alpha5
	// object.
	SourceKind             string
	Hash                   string
	TerminationGracePeriod time.Duration
	// Ready is false when the pool or its node class is not ready; the
	// planner launches nothing for it.
	Ready          bool
	NotReadyReason string
}

// Disruption is a NodePool's disruption settings.
type Disruption struct {
	// ConsolidationPolicy is WhenEmpty or WhenEmptyOrUnderutilized.
	ConsolidationPolicy string
	ConsolidateAfter    time.Duration
	// ConsolidateNever disables consolidation (consolidateAfter: Never).
	ConsolidateNever bool
	Budgets          []DisruptionBudget
}

// DisruptionBudget limits how many nodes may be disrupted at once.
type DisruptionBudget struct {
	// Nodes is a count ("3") or a percentage ("10%").
	Nodes string
	// Reasons the budget applies to; empty means every reason.
	Reasons []string
	// Schedule is a cron schedule of the window the budget is active in,
	// Duration its length; an empty schedule means always active.
	Schedule string
	Duration time.Duration
}

// Eviction signals the planner reads.
const (
	SignalMemoryAvailable = "memory.available"
	SignalNodeFSAvailable = "nodefs.available"
)

// Kubelet holds kubelet settings that change a node's allocatable.
type Kubelet struct {
	// MaxPods caps pods per node; 0 means the instance type's ENI limit.
	MaxPods int32
	// PodsPerCore caps pods per vCPU; 0 means no cap.
	PodsPerCore int32
	// KubeReserved and SystemReserved by resource name in base units; a
	// key set here replaces the default for that resource only.
	KubeReserved   map[string]int64
	SystemReserved map[string]int64
	// EvictionHard thresholds by signal (memory.available, nodefs.available).
	EvictionHard map[string]Threshold
}

// Threshold is an eviction threshold: an absolute quantity in base units or
// a percentage of capacity.
type Threshold struct {
	Quantity int64
	// Percent is used when IsPercent is set.
	Percent   float64
	IsPercent bool
}

// Of returns the threshold for a resource with the given capacity.
func (t Threshold) Of(capacity int64) int64 {
	if !t.IsPercent {
		return t.Quantity
	}
	if t.Percent >= 100 { // 100% disables the threshold, as in the kubelet
		return 0
	}
	v := float64(capacity) * t.Percent / 100
	iv := int64(v)
	if float64(iv) < v {
		iv++
	}
	return iv
}

// MergeKubelet returns the settings of base overridden by every field set in
// over; either may be nil.
func MergeKubelet(base, over *Kubelet) *Kubelet {
	if base == nil && over == nil {
		return nil
	}
	out := &Kubelet{}
	for _, k := range []*Kubelet{base, over} {
		if k == nil {
			continue
		}
		if k.MaxPods > 0 {
			out.MaxPods = k.MaxPods
		}
		if k.PodsPerCore > 0 {
			out.PodsPerCore = k.PodsPerCore
		}
		out.KubeReserved = mergeMap(out.KubeReserved, k.KubeReserved)
		out.SystemReserved = mergeMap(out.SystemReserved, k.SystemReserved)
		out.EvictionHard = mergeMap(out.EvictionHard, k.EvictionHard)
	}
	return out
}

func mergeMap[V any](a, b map[string]V) map[string]V {
	if len(b) == 0 {
		return a
	}
	out := make(map[string]V, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// Subnet is a resolved subnet.
type Subnet struct {
	ID           string
	Zone         string
	ZoneID       string
	AvailableIPs int64
}

// Image is a resolved machine image.
type Image struct {
	ID           string
	Name         string
	Requirements []Requirement
}

// NodeClass is a karpenter.k8s.aws/v1 EC2NodeClass with what it resolved to.
type NodeClass struct {
	Name string
	// Subnets restrict the zones nodes of the class can launch in; none
	// means no restriction.
	Subnets        []Subnet
	SecurityGroups []string
	Images         []Image
	Kubelet        *Kubelet
	Hash           string
	Ready          bool
	NotReadyReason string
	// InterruptionQueue is the SQS queue the actuator reads.
	InterruptionQueue string
}

// DaemonSet is a DaemonSet's pod template, for overhead on new nodes.
type DaemonSet struct {
	Namespace string
	Name      string
	Template  *Pod
}

// PodDisruptionBudget is a PDB with what it allows right now.
type PodDisruptionBudget struct {
	Namespace          string
	Name               string
	Selector           *LabelSelector
	DisruptionsAllowed int32
}
