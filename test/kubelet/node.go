package kubelet

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Well-known names the simulator writes on the Nodes it registers.
const (
	// KwokAnnotation marks a Node kwok keeps Ready and runs pods on; the
	// simulator only ever touches Nodes that carry it with KwokAnnotationValue.
	KwokAnnotation      = "kwok.x-k8s.io/node"
	KwokAnnotationValue = "fake"

	LabelCapacityType = "karpenter.sh/capacity-type"
	CapacityOnDemand  = "on-demand"
	CapacitySpot      = "spot"

	// DefaultMaxPods is the kubelet's default when the bootstrap sets none.
	DefaultMaxPods = 110
)

// DefaultEphemeralStorage is the root volume size a node reports (the
// AL2023 default EBS volume).
var DefaultEphemeralStorage = resource.MustParse("20Gi")

// Instance is what the simulator knows about one running EC2 instance.
type Instance struct {
	ID             string
	Type           string
	Zone           string
	PrivateDNSName string
	PrivateIP      string
	Spot           bool
	LaunchTime     time.Time
}

// NodeName is the name the instance's Node is registered under: its private
// DNS name, or its instance id when it has none.
func (i Instance) NodeName() string {
	if i.PrivateDNSName != "" {
		return i.PrivateDNSName
	}
	return i.ID
}

// ProviderID is the instance's spec.providerID, aws:///<zone>/<instance-id>.
func (i Instance) ProviderID() string {
	return fmt.Sprintf("aws:///%s/%s", i.Zone, i.ID)
}

// InstanceType holds the facts of an instance type a Node reports.
type InstanceType struct {
	// Arch is the Kubernetes architecture (amd64, arm64).
	Arch      string
	VCPU      int32
	MemoryMiB int64
}

// KubernetesArch maps an EC2 processor architecture to its Kubernetes name.
func KubernetesArch(ec2Arch string) string {
	switch ec2Arch {
	case "arm64", "arm64_mac":
		return "arm64"
	case "i386":
		return "386"
	default:
		return "amd64"
	}
}

// instanceIDFromProviderID returns the instance id of an aws:///zone/i-…
// provider ID, or "" when it is not one.
func instanceIDFromProviderID(providerID string) string {
	rest, ok := strings.CutPrefix(providerID, "aws://")
	if !ok {
		return ""
	}
	i := strings.LastIndex(rest, "/")
	id := rest[i+1:]
	if !strings.HasPrefix(id, "i-") {
		return ""
	}
	return id
}

// regionOf derives a region from a zone name (us-east-1a → us-east-1).
func regionOf(zone string) string {
	return strings.TrimRight(zone, "abcdefghijklmnopqrstuvwxyz")
}

// NodeFor builds the Node a kubelet on inst would register. b is the
// instance's bootstrap, nil when its user data was missing or unparseable.
func NodeFor(inst Instance, it InstanceType, region string, b *Bootstrap) *corev1.Node {
	if region == "" {
		region = regionOf(inst.Zone)
	}
	if b == nil {
		b = &Bootstrap{}
	}
	name := inst.NodeName()
	capacityType := CapacityOnDemand
	if inst.Spot {
		capacityType = CapacitySpot
	}
	labels := map[string]string{LabelCapacityType: capacityType}
	for k, v := range b.Labels {
		labels[k] = v
	}
	// The kubelet and the cloud provider own these; they win over --node-labels.
	for k, v := range map[string]string{
		corev1.LabelHostname:           name,
		corev1.LabelOSStable:           "linux",
		corev1.LabelArchStable:         it.Arch,
		corev1.LabelInstanceTypeStable: inst.Type,
		corev1.LabelTopologyZone:       inst.Zone,
		corev1.LabelTopologyRegion:     region,
	} {
		labels[k] = v
	}

	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(it.VCPU), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(it.MemoryMiB*1024*1024, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(int64(maxPods(b)), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: DefaultEphemeralStorage.DeepCopy(),
	}
	var addresses []corev1.NodeAddress
	if inst.PrivateIP != "" {
		addresses = append(addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: inst.PrivateIP})
	}
	if inst.PrivateDNSName != "" {
		addresses = append(addresses, corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: inst.PrivateDNSName})
	}
	addresses = append(addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})

	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      labels,
			Annotations: map[string]string{KwokAnnotation: KwokAnnotationValue},
		},
		Spec: corev1.NodeSpec{
			ProviderID: inst.ProviderID(),
			Taints:     b.Taints,
		},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: allocatable(capacity, b),
			Addresses:   addresses,
			NodeInfo: corev1.NodeSystemInfo{
				Architecture:    it.Arch,
				OperatingSystem: "linux",
			},
		},
	}
}

func maxPods(b *Bootstrap) int32 {
	if b.MaxPods > 0 {
		return b.MaxPods
	}
	return DefaultMaxPods
}

// allocatable is capacity minus the kube and system reservations and, for
// memory and ephemeral storage, the hard eviction thresholds, floored at 0.
func allocatable(capacity corev1.ResourceList, b *Bootstrap) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name, c := range capacity {
		a := c.DeepCopy()
		for _, reserved := range []corev1.ResourceList{b.KubeReserved, b.SystemReserved} {
			if r, ok := reserved[name]; ok {
				a.Sub(r)
			}
		}
		signal := map[corev1.ResourceName]string{
			corev1.ResourceMemory:           "memory.available",
			corev1.ResourceEphemeralStorage: "nodefs.available",
		}[name]
		if th, ok := b.EvictionHard[signal]; ok && signal != "" {
			a.Sub(th.Of(c))
		}
		if a.Sign() < 0 {
			a = *resource.NewQuantity(0, c.Format)
		}
		out[name] = a
	}
	return out
}
