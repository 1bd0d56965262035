package v1

// EC2 tag keys Flotilla puts on the instances, volumes, network interfaces
// and launch templates it creates, with Karpenter's names.
const (
	// TagNodePool names the NodePool an instance belongs to.
	TagNodePool = "karpenter.sh/nodepool"
	// TagNodeClaim names the NodeClaim an instance was launched for.
	TagNodeClaim = "karpenter.sh/nodeclaim"
	// TagEC2NodeClass names the EC2NodeClass an instance was launched with.
	TagEC2NodeClass = Group + "/ec2nodeclass"
	// TagManagedBy names the cluster whose Flotilla manages the resource;
	// garbage collection only ever touches resources with its own value.
	TagManagedBy = "karpenter.sh/managed-by"
	// TagClusterPrefix followed by the cluster name ("owned") is the
	// Kubernetes cluster tag.
	TagClusterPrefix = "kubernetes.io/cluster/"
	// TagEKSClusterName is the EKS cluster-name tag.
	TagEKSClusterName = "eks:eks-cluster-name"
	// TagName is the EC2 Name tag; Flotilla sets it to the node name.
	TagName = "Name"
)

// AMI aliases and families.
const (
	// DefaultAMIAlias is the alias a Provisioner without an AMI selector
	// maps to.
	DefaultAMIAlias = "al2023@latest"

	AMIFamilyAL2          = "AL2"
	AMIFamilyAL2023       = "AL2023"
	AMIFamilyBottlerocket = "Bottlerocket"
	AMIFamilyWindows2019  = "Windows2019"
	AMIFamilyWindows2022  = "Windows2022"
	AMIFamilyCustom       = "Custom"
)
