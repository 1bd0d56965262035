package model

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Well-known labels, spelled as Kubernetes and Karpenter spell them.
const (
	LabelInstanceType       = "node.kubernetes.io/instance-type"
	LabelZone               = "topology.kubernetes.io/zone"
	LabelRegion             = "topology.kubernetes.io/region"
	LabelZoneID             = "topology.k8s.aws/zone-id"
	LabelArch               = "kubernetes.io/arch"
	LabelOS                 = "kubernetes.io/os"
	LabelCapacityType       = "karpenter.sh/capacity-type"
	LabelNodePool           = "karpenter.sh/nodepool"
	LabelNodeClass          = "karpenter.k8s.aws/ec2nodeclass"
	LabelInstanceFamily     = "karpenter.k8s.aws/instance-family"
	LabelInstanceCategory   = "karpenter.k8s.aws/instance-category"
	LabelInstanceGeneration = "karpenter.k8s.aws/instance-generation"
	LabelInstanceSize       = "karpenter.k8s.aws/instance-size"
	LabelInstanceCPU        = "karpenter.k8s.aws/instance-cpu"
	LabelInstanceMemory     = "karpenter.k8s.aws/instance-memory"
	LabelInstanceGPUCount   = "karpenter.k8s.aws/instance-gpu-count"
)

// Capacity types.
const (
	CapacityOnDemand = "on-demand"
	CapacitySpot     = "spot"
	CapacityReserved = "reserved"
)

// ResourceNvidiaGPU is the extended resource NVIDIA GPUs are counted in.
const ResourceNvidiaGPU = "nvidia.com/gpu"

// Offering is where and how an instance type can be bought.
type Offering struct {
	Zone         string
	ZoneID       string
	CapacityType string
	PricePerHour float64
	Available    bool
	// PriceSource says where the price came from ("pricing-api",
	// "synthetic", ...).
	PriceSource string
}

// InstanceType is an entry of the instance catalogue.
type InstanceType struct {
	Name string
	// Arch is the Kubernetes architecture name: amd64 or arm64.
	Arch string
	// Capacity is the raw capacity: vCPUs, memory, max pods (the ENI limit),
	// GPUs and other devices as extended resources.
	Capacity Resources
	// Labels are the well-known labels of the type; see NodeLabels.
	Labels           map[string]string
	Offerings        []Offering
	OperatingSystems []string
}

var instanceTypeScheme = regexp.MustCompile(`^([a-z]+)(-[0-9]+tb)?([0-9]+)`)

// NodeLabels returns the labels a node of this type carries apart from zone
// and capacity type: the catalogue's labels completed with the well-known
// ones derivable from the name and capacity (instance type, arch, os,
// family, category, generation, size, cpu, memory in MiB, GPU count).
func (it *InstanceType) NodeLabels() map[string]string {
	out := maps.Clone(it.Labels)
	if out == nil {
		out = map[string]string{}
	}
	set := func(k, v string) {
		if _, ok := out[k]; !ok && v != "" {
			out[k] = v
		}
	}
	set(LabelInstanceType, it.Name)
	set(LabelArch, it.Arch)
	if len(it.OperatingSystems) > 0 {
		set(LabelOS, it.OperatingSystems[0])
	} else {
		set(LabelOS, "linux")
	}
	if family, size, ok := strings.Cut(it.Name, "."); ok {
		set(LabelInstanceFamily, family)
		set(LabelInstanceSize, size)
		if m := instanceTypeScheme.FindStringSubmatch(family); m != nil {
			set(LabelInstanceCategory, m[1])
			set(LabelInstanceGeneration, m[3])
		}
	}
	if it.Capacity.CPU > 0 {
		set(LabelInstanceCPU, strconv.FormatInt(it.Capacity.CPU/1000, 10))
	}
	if it.Capacity.Memory > 0 {
		set(LabelInstanceMemory, strconv.FormatInt(it.Capacity.Memory>>20, 10))
	}
	if g := it.Capacity.Extended[ResourceNvidiaGPU]; g > 0 {
		set(LabelInstanceGPUCount, strconv.FormatInt(g, 10))
	}
	return out
}

// SupportsOS reports whether the type runs the given operating system; a
// type that lists none runs linux.
func (it *InstanceType) SupportsOS(os string) bool {
	if len(it.OperatingSystems) == 0 {
		return os == "linux"
	}
	return slices.Contains(it.OperatingSystems, os)
}

// Defaults the planner assumes for new nodes, following Karpenter on EKS.
const (
	// VMMemoryOverheadPercent is the share of memory the hypervisor and
	// firmware keep; the node reports that much less capacity.
	VMMemoryOverheadPercent = 0.075
	// DefaultEphemeralStorage is the root volume size when the catalogue
	// says nothing (the EKS AMIs' 20 GiB).
	DefaultEphemeralStorage = 20 << 30
	// DefaultMaxPods is used when neither the catalogue nor the kubelet
	// settings give a pod limit.
	DefaultMaxPods = 110
	// DefaultEvictionMemory is the kubelet's hard memory.available
	// threshold.
	DefaultEvictionMemory = 100 << 20
	// DefaultEvictionNodeFSPercent is the kubelet's hard nodefs.available
	// threshold, in percent.
	DefaultEvictionNodeFSPercent = 10
	// DefaultKubeReservedStorage is the EKS kube-reserved ephemeral storage.
	DefaultKubeReservedStorage = 1 << 30
	// graviton memory kept for the contiguous memory allocator.
	armCMAReservedMemory = 64 << 20
)

// MaxPods returns the pod limit of a node of this type under the given
// kubelet settings (nil for defaults): the kubelet's maxPods, else the
// catalogue's ENI-derived limit, else 110; capped by podsPerCore × vCPUs.
func (it *InstanceType) MaxPods(k *Kubelet) int64 {
	n := it.Capacity.Pods
	if n <= 0 {
		n = DefaultMaxPods
	}
	if k != nil && k.MaxPods > 0 {
		n = int64(k.MaxPods)
	}
	if k != nil && k.PodsPerCore > 0 {
		n = min(n, int64(k.PodsPerCore)*(it.Capacity.CPU/1000))
	}
	return n
}

// NodeCapacity returns the capacity a node of this type reports: memory less
// the VM overhead (and, on arm64, the CMA reserve), pods from MaxPods,
// ephemeral storage defaulted to the root volume size.
func (it *InstanceType) NodeCapacity(k *Kubelet) Resources {
	c := it.Capacity
	c.Extended = maps.Clone(c.Extended)
	mem := c.Memory
	if it.Arch == "arm64" && mem > armCMAReservedMemory {
		mem -= armCMAReservedMemory
	}
	mib := mem >> 20
	overheadMiB := int64(float64(mib) * VMMemoryOverheadPercent)
	if float64(overheadMiB) < float64(mib)*VMMemoryOverheadPercent {
		overheadMiB++
	}
	c.Memory = mem - overheadMiB<<20
	c.Pods = it.MaxPods(k)
	if c.EphemeralStorage <= 0 {
		c.EphemeralStorage = DefaultEphemeralStorage
	}
	return c
}

// Overhead returns what a node of this type keeps for itself: kube-reserved,
// system-reserved and the hard eviction thresholds, computed with the EKS
// formulas unless the kubelet settings override them (per resource).
//
// Defaults: kube-reserved CPU is 6 % of the first core, 1 % of the second,
// 0.5 % of the third and fourth and 0.25 % of every further core;
// kube-reserved memory is 11 MiB per pod the node may run plus 255 MiB;
// kube-reserved ephemeral storage 1 GiB; eviction at 100 MiB of memory and
// 10 % of the root volume.
func (it *InstanceType) Overhead(k *Kubelet) Resources {
	capacity := it.NodeCapacity(k)
	var kube Resources
	kube.CPU = kubeReservedCPU(capacity.CPU)
	kube.Memory = (11*capacity.Pods + 255) << 20
	kube.EphemeralStorage = DefaultKubeReservedStorage
	var system Resources
	evictMem := int64(DefaultEvictionMemory)
	evictFS := Threshold{Percent: DefaultEvictionNodeFSPercent, IsPercent: true}.Of(capacity.EphemeralStorage)
	if k != nil {
		for name, v := range k.KubeReserved {
			kube = kube.With(name, v)
		}
		for name, v := range k.SystemReserved {
			system = system.With(name, v)
		}
		if t, ok := k.EvictionHard[SignalMemoryAvailable]; ok {
			evictMem = t.Of(capacity.Memory)
		}
		if t, ok := k.EvictionHard[SignalNodeFSAvailable]; ok {
			evictFS = t.Of(capacity.EphemeralStorage)
		}
	}
	out := kube.Add(system)
	out.Memory += evictMem
	out.EphemeralStorage += evictFS
	out.Pods = 0
	return out
}

// Allocatable returns what pods may request on a node of this type:
// NodeCapacity less Overhead, never negative.
func (it *InstanceType) Allocatable(k *Kubelet) Resources {
	a := it.NodeCapacity(k).Sub(it.Overhead(k))
	a.CPU = max(a.CPU, 0)
	a.Memory = max(a.Memory, 0)
	a.EphemeralStorage = max(a.EphemeralStorage, 0)
	for name, v := range a.Extended {
		if v < 0 {
			a.Extended[name] = 0
		}
	}
	return a
}

func kubeReservedCPU(millis int64) int64 {
	bands := []struct {
		upTo   int64
		permyr int64 // per ten thousand
	}{{1000, 600}, {2000, 100}, {4000, 50}, {1 << 62, 25}}
	var reserved, lower int64
	for _, b := range bands {
		if millis <= lower {
			break
		}
		span := min(millis, b.upTo) - lower
		reserved += span * b.permyr / 10000
		lower = b.upTo
	}
	return reserved
}
