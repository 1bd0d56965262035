package catalog

// Well-known label keys, spelled as Kubernetes and Karpenter spell them.
const (
	LabelInstanceType = "node.kubernetes.io/instance-type"
	LabelArch         = "kubernetes.io/arch"
	LabelOS           = "kubernetes.io/os"
	LabelRegion       = "topology.kubernetes.io/region"
	LabelZone         = "topology.kubernetes.io/zone"
	LabelZoneID       = "topology.k8s.aws/zone-id"
	LabelCapacityType = "karpenter.sh/capacity-type"

	LabelInstanceFamily                  = "karpenter.k8s.aws/instance-family"
	LabelInstanceCategory                = "karpenter.k8s.aws/instance-category"
	LabelInstanceGeneration              = "karpenter.k8s.aws/instance-generation"
	LabelInstanceSize                    = "karpenter.k8s.aws/instance-size"
	LabelInstanceCapabilityFlex          = "karpenter.k8s.aws/instance-capability-flex"
	LabelInstanceCPU                     = "karpenter.k8s.aws/instance-cpu"
	LabelInstanceCPUManufacturer         = "karpenter.k8s.aws/instance-cpu-manufacturer"
	LabelInstanceCPUSustainedClockMhz    = "karpenter.k8s.aws/instance-cpu-sustained-clock-speed-mhz"
	LabelInstanceMemory                  = "karpenter.k8s.aws/instance-memory"
	LabelInstanceHypervisor              = "karpenter.k8s.aws/instance-hypervisor"
	LabelInstanceNetworkBandwidth        = "karpenter.k8s.aws/instance-network-bandwidth"
	LabelInstanceEBSBandwidth            = "karpenter.k8s.aws/instance-ebs-bandwidth"
	LabelInstanceLocalNVMe               = "karpenter.k8s.aws/instance-local-nvme"
	LabelInstanceGPUName                 = "karpenter.k8s.aws/instance-gpu-name"
	LabelInstanceGPUManufacturer         = "karpenter.k8s.aws/instance-gpu-manufacturer"
	LabelInstanceGPUCount                = "karpenter.k8s.aws/instance-gpu-count"
	LabelInstanceGPUMemory               = "karpenter.k8s.aws/instance-gpu-memory"
	LabelInstanceAcceleratorName         = "karpenter.k8s.aws/instance-accelerator-name"
	LabelInstanceAcceleratorManufacturer = "karpenter.k8s.aws/instance-accelerator-manufacturer"
	LabelInstanceAcceleratorCount        = "karpenter.k8s.aws/instance-accelerator-count"
)

// Extended resource names for accelerators and pod ENIs, as the device
// plugins (and Karpenter) name them.
const (
	ResourceNVIDIAGPU     = "nvidia.com/gpu"
	ResourceAMDGPU        = "amd.com/gpu"
	ResourceHabanaGaudi   = "habana.ai/gaudi"
	ResourceAWSNeuron     = "aws.amazon.com/neuron"
	ResourceAWSNeuronCore = "aws.amazon.com/neuroncore"
	ResourceAWSPodENI     = "vpc.amazonaws.com/pod-eni"
)

// Capacity types.
const (
	CapacityTypeOnDemand = "on-demand"
	CapacityTypeSpot     = "spot"
)

// Offering price sources this package produces (Offering.price_source).
const (
	// PriceSourceEmbedded is an on-demand price from the embedded table.
	PriceSourceEmbedded = "embedded"
	// PriceSourceSynthetic is a made-up spot price (see SyntheticSpotPrice):
	// no real spot price is embedded anywhere.
	PriceSourceSynthetic = "synthetic"
	// PriceSourceCatalogFile is a price read from a --catalog file.
	PriceSourceCatalogFile = "catalog-file"
)

// Kubernetes architecture names.
const (
	ArchAMD64 = "amd64"
	ArchARM64 = "arm64"
)

// nameLabels returns the labels that follow from an instance type's name.
func nameLabels(labels map[string]string, name string) {
	labels[LabelInstanceType] = name
	n, _ := ParseName(name)
	if n.Family != "" {
		labels[LabelInstanceFamily] = n.Family
		labels[LabelInstanceSize] = n.Size
		labels[LabelInstanceCapabilityFlex] = boolString(n.Flex)
	}
	if n.Generation > 0 {
		labels[LabelInstanceCategory] = n.Category
		labels[LabelInstanceGeneration] = itoa(int64(n.Generation))
	}
}
