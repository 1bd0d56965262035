package v1

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Labels Flotilla puts on nodes and NodeClaims, with Karpenter's names.
const (
	// NodePoolLabelKey names the NodePool a node or NodeClaim belongs to.
	NodePoolLabelKey = Group + "/nodepool"
	// CapacityTypeLabelKey is on-demand, spot or reserved.
	CapacityTypeLabelKey = Group + "/capacity-type"
	// NodeRegisteredLabelKey is set to "true" once the Node has joined.
	NodeRegisteredLabelKey = Group + "/registered"
	// NodeInitializedLabelKey is set to "true" once the Node is Ready and its
	// startup taints are gone.
	NodeInitializedLabelKey = Group + "/initialized"
	// ProvisionerNameLabelKey is Karpenter v1alpha5's label for the
	// Provisioner a node came from. Flotilla keeps it on nodes of a NodePool
	// mapped from a Provisioner, so old node selectors keep working, and on
	// the mapped NodePool and EC2NodeClass objects, so users can find them.
	ProvisionerNameLabelKey = Group + "/provisioner-name"
)

// Kubernetes well-known node labels.
const (
	LabelInstanceType   = corev1.LabelInstanceTypeStable // node.kubernetes.io/instance-type
	LabelTopologyZone   = corev1.LabelTopologyZone       // topology.kubernetes.io/zone
	LabelTopologyRegion = corev1.LabelTopologyRegion     // topology.kubernetes.io/region
	LabelArch           = corev1.LabelArchStable         // kubernetes.io/arch
	LabelOS             = corev1.LabelOSStable           // kubernetes.io/os
	LabelHostname       = corev1.LabelHostname           // kubernetes.io/hostname
	LabelWindowsBuild   = corev1.LabelWindowsBuild       // node.kubernetes.io/windows-build
	LabelTopologyZoneID = "topology.k8s.aws/zone-id"
)

// AWS instance labels (group karpenter.k8s.aws), derived from the instance
// type a node runs on. Pods and NodePool requirements may select on them.
const (
	awsGroup = "karpenter.k8s.aws"
	// LabelNodeClass names the EC2NodeClass a node was launched from.
	LabelNodeClass                       = awsGroup + "/ec2nodeclass"
	LabelInstanceCategory                = awsGroup + "/instance-category"
	LabelInstanceFamily                  = awsGroup + "/instance-family"
	LabelInstanceGeneration              = awsGroup + "/instance-generation"
	LabelInstanceSize                    = awsGroup + "/instance-size"
	LabelInstanceCPU                     = awsGroup + "/instance-cpu"
	LabelInstanceCPUManufacturer         = awsGroup + "/instance-cpu-manufacturer"
	LabelInstanceCPUSustainedClockSpeed  = awsGroup + "/instance-cpu-sustained-clock-speed-mhz"
	LabelInstanceMemory                  = awsGroup + "/instance-memory"
	LabelInstanceEBSBandwidth            = awsGroup + "/instance-ebs-bandwidth"
	LabelInstanceNetworkBandwidth        = awsGroup + "/instance-network-bandwidth"
	LabelInstanceHypervisor              = awsGroup + "/instance-hypervisor"
	LabelInstanceEncryptionInTransit     = awsGroup + "/instance-encryption-in-transit-supported"
	LabelInstanceLocalNVMe               = awsGroup + "/instance-local-nvme"
	LabelInstanceGPUName                 = awsGroup + "/instance-gpu-name"
	LabelInstanceGPUManufacturer         = awsGroup + "/instance-gpu-manufacturer"
	LabelInstanceGPUCount                = awsGroup + "/instance-gpu-count"
	LabelInstanceGPUMemory               = awsGroup + "/instance-gpu-memory"
	LabelInstanceAcceleratorName         = awsGroup + "/instance-accelerator-name"
	LabelInstanceAcceleratorManufacturer = awsGroup + "/instance-accelerator-manufacturer"
	LabelInstanceAcceleratorCount        = awsGroup + "/instance-accelerator-count"
	LabelInstanceCapabilityFlex          = awsGroup + "/instance-capability-flex"
)

// Values of well-known labels.
const (
	CapacityTypeOnDemand = "on-demand"
	CapacityTypeSpot     = "spot"
	CapacityTypeReserved = "reserved"
	ArchitectureAmd64    = "amd64"
	ArchitectureArm64    = "arm64"
	OSLinux              = "linux"
	OSWindows            = "windows"
)

// Annotations.
const (
	// DoNotDisruptAnnotationKey set to "true" on a pod or node blocks
	// voluntary disruption of the node it runs on.
	DoNotDisruptAnnotationKey = Group + "/do-not-disrupt"
	// NodePoolHashAnnotationKey holds the hash of the NodePool template a
	// NodeClaim was made from (drift detection).
	NodePoolHashAnnotationKey = Group + "/nodepool-hash"
	// NodePoolHashVersionAnnotationKey holds the version of that hash.
	NodePoolHashVersionAnnotationKey = Group + "/nodepool-hash-version"
	// NodeClassHashAnnotationKey holds the hash of the EC2NodeClass a
	// NodeClaim was launched with (drift detection).
	NodeClassHashAnnotationKey = awsGroup + "/ec2nodeclass-hash"
	// NodeClassHashVersionAnnotationKey holds the version of that hash.
	NodeClassHashVersionAnnotationKey = awsGroup + "/ec2nodeclass-hash-version"
	// NodeTerminationTimestampAnnotationKey is when a draining node's
	// terminationGracePeriod runs out (RFC 3339).
	NodeTerminationTimestampAnnotationKey = Group + "/node-termination-time"
	// ManagedByAnnotationKey names the cluster whose controller manages an
	// object.
	ManagedByAnnotationKey = Group + "/managed-by"
)

// Taint keys.
const (
	// DisruptedTaintKey marks a node that is being disrupted; no new pods
	// land on it.
	DisruptedTaintKey = Group + "/disrupted"
	// UnregisteredTaintKey is on a node from its creation until Flotilla has
	// synced the NodeClaim's labels and taints onto it.
	UnregisteredTaintKey = Group + "/unregistered"
)

// DisruptedNoScheduleTaint is the taint put on a node before it is drained.
var DisruptedNoScheduleTaint = corev1.Taint{Key: DisruptedTaintKey, Effect: corev1.TaintEffectNoSchedule}

// UnregisteredNoExecuteTaint is the taint a node registers with.
var UnregisteredNoExecuteTaint = corev1.Taint{Key: UnregisteredTaintKey, Effect: corev1.TaintEffectNoExecute}

// TerminationFinalizer is on every NodeClaim and Node Flotilla launches; it
// is removed once the instance is terminated.
const TerminationFinalizer = Group + "/termination"

// wellKnownLabels are labels in restricted domains that NodePools and pods
// may still use: Flotilla knows their values for every instance type.
var wellKnownLabels = []string{
	NodePoolLabelKey,
	CapacityTypeLabelKey,
	ProvisionerNameLabelKey,
	LabelInstanceType,
	LabelTopologyZone,
	LabelTopologyRegion,
	LabelTopologyZoneID,
	LabelArch,
	LabelOS,
	LabelWindowsBuild,
	"beta.kubernetes.io/instance-type",
	"beta.kubernetes.io/arch",
	"beta.kubernetes.io/os",
	corev1.LabelFailureDomainBetaZone,
	corev1.LabelFailureDomainBetaRegion,
	LabelNodeClass,
	LabelInstanceCategory,
	LabelInstanceFamily,
	LabelInstanceGeneration,
	LabelInstanceSize,
	LabelInstanceCPU,
	LabelInstanceCPUManufacturer,
	LabelInstanceCPUSustainedClockSpeed,
	LabelInstanceMemory,
	LabelInstanceEBSBandwidth,
	LabelInstanceNetworkBandwidth,
	LabelInstanceHypervisor,
	LabelInstanceEncryptionInTransit,
	LabelInstanceLocalNVMe,
	LabelInstanceGPUName,
	LabelInstanceGPUManufacturer,
	LabelInstanceGPUCount,
	LabelInstanceGPUMemory,
	LabelInstanceAcceleratorName,
	LabelInstanceAcceleratorManufacturer,
	LabelInstanceAcceleratorCount,
	LabelInstanceCapabilityFlex,
}

// WellKnownLabels returns the label keys in restricted domains that
// requirements and template labels may use, sorted.
func WellKnownLabels() []string {
	out := slices.Clone(wellKnownLabels)
	slices.Sort(out)
	return out
}

// IsWellKnownLabel reports whether key is one of [WellKnownLabels].
func IsWellKnownLabel(key string) bool {
	return slices.Contains(wellKnownLabels, key)
}

// restrictedDomains are label domains reserved for the kubelet, Kubernetes or
// Flotilla, each with the sub-domains that stay open to users.
var restrictedDomains = []struct {
	domain     string
	exceptions []string
}{
	{domain: "kubernetes.io", exceptions: []string{"node.kubernetes.io", "node-restriction.kubernetes.io"}},
	{domain: "k8s.io", exceptions: []string{"kops.k8s.io"}},
	{domain: Group},
	{domain: awsGroup},
}

// LabelDomain returns the prefix of a label key before the "/", or "" when
// the key has none.
func LabelDomain(key string) string {
	domain, _, found := strings.Cut(key, "/")
	if !found {
		return ""
	}
	return domain
}

// IsRestrictedLabel returns an error when key lies in a domain reserved for
// Kubernetes or Flotilla (kubernetes.io, k8s.io, karpenter.sh,
// karpenter.k8s.aws) and is not a well-known label. It applies the same rules
// as the CRD schema for requirement keys and template labels.
func IsRestrictedLabel(key string) error {
	if IsWellKnownLabel(key) {
		return nil
	}
	domain := LabelDomain(key)
	if domain == "" {
		return nil
	}
	for _, r := range restrictedDomains {
		if !inDomain(domain, r.domain) {
			continue
		}
		for _, ex := range r.exceptions {
			if inDomain(domain, ex) {
				return nil
			}
		}
		return fmt.Errorf("label %q is restricted: domain %q is reserved; use a well-known label or another domain", key, r.domain)
	}
	return nil
}

// inDomain reports whether domain is parent or a sub-domain of it.
func inDomain(domain, parent string) bool {
	return domain == parent || strings.HasSuffix(domain, "."+parent)
}
