package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EC2NodeClass is the AWS configuration NodePools launch nodes with: where
// (subnets), with what network access (security groups), from which image
// (AMIs), as whom (role or instance profile) and how (kubelet, block devices,
// metadata options, user data).
//
// +kubebuilder:object:root=true
// +kubebuilder:storageversion
// +kubebuilder:resource:path=ec2nodeclasses,scope=Cluster,categories=karpenter,shortName={ec2nc,ec2ncs}
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Role",type="string",JSONPath=".spec.role",priority=1
type EC2NodeClass struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the launch configuration.
	// +required
	Spec EC2NodeClassSpec `json:"spec"`
	// Status is what the selectors resolved to.
	// +optional
	Status EC2NodeClassStatus `json:"status,omitempty"`
}

// EC2NodeClassList is a list of EC2NodeClasses.
//
// +kubebuilder:object:root=true
type EC2NodeClassList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the EC2NodeClasses.
	Items []EC2NodeClass `json:"items"`
}

// EC2NodeClassSpec is the AWS launch configuration of a node class.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.role) && has(self.instanceProfile))",message="'role' and 'instanceProfile' are mutually exclusive"
// +kubebuilder:validation:XValidation:rule="has(self.amiFamily) || self.amiSelectorTerms.exists(t, has(t.alias))",message="amiFamily is required unless amiSelectorTerms use an alias"
// +kubebuilder:validation:XValidation:rule="!has(self.amiFamily) || self.amiFamily == 'Custom' || !self.amiSelectorTerms.exists(t, has(t.alias)) || self.amiSelectorTerms.exists(t, has(t.alias) && t.alias.split('@')[0] == self.amiFamily.lowerAscii())",message="amiFamily must match the alias family or be 'Custom'"
type EC2NodeClassSpec struct {
	// SubnetSelectorTerms select the subnets (and so the zones) instances
	// launch in. Terms are ORed; the fields of one term are ANDed.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=30
	// +required
	SubnetSelectorTerms []SubnetSelectorTerm `json:"subnetSelectorTerms"`
	// SecurityGroupSelectorTerms select the security groups of the
	// instances. Terms are ORed; the fields of one term are ANDed.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=30
	// +required
	SecurityGroupSelectorTerms []SecurityGroupSelectorTerm `json:"securityGroupSelectorTerms"`
	// AMISelectorTerms select the images instances boot from; the newest
	// matching image for the instance's architecture wins. An alias term
	// ("al2023@latest") must be the only term.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=30
	// +kubebuilder:validation:XValidation:rule="!self.exists(t, has(t.alias)) || size(self) == 1",message="an 'alias' term must be the only amiSelectorTerm"
	// +required
	AMISelectorTerms []AMISelectorTerm `json:"amiSelectorTerms"`
	// AMIFamily sets the user data format and default block devices. It is
	// inferred from an alias term; without one it is required.
	// +kubebuilder:validation:Enum={AL2,AL2023,Bottlerocket,Custom,Windows2019,Windows2022}
	// +optional
	AMIFamily string `json:"amiFamily,omitempty"`
	// UserData is merged with the bootstrap Flotilla generates (for Custom,
	// used as is).
	// +kubebuilder:validation:MaxLength=16384
	// +optional
	UserData string `json:"userData,omitempty"`
	// Role is the IAM role nodes use; Flotilla makes an instance profile for
	// it. Mutually exclusive with InstanceProfile. When neither is set, the
	// actuator's default instance profile is used.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Role string `json:"role,omitempty"`
	// InstanceProfile is an existing IAM instance profile for the nodes.
	// Mutually exclusive with Role.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	InstanceProfile string `json:"instanceProfile,omitempty"`
	// Tags are added to the instances, volumes, network interfaces and
	// launch templates. Keys Flotilla sets itself are not allowed.
	// +kubebuilder:validation:MaxProperties=40
	// +kubebuilder:validation:XValidation:rule="self.all(k, k != '' && !(k in ['eks:eks-cluster-name', 'karpenter.sh/nodepool', 'karpenter.sh/nodeclaim', 'karpenter.sh/managed-by', 'karpenter.k8s.aws/ec2nodeclass']) && !k.startsWith('kubernetes.io/cluster/'))",message="tags may not be empty or use a key Flotilla sets (eks:eks-cluster-name, kubernetes.io/cluster/*, karpenter.sh/nodepool, karpenter.sh/nodeclaim, karpenter.sh/managed-by, karpenter.k8s.aws/ec2nodeclass)"
	// +optional
	Tags map[string]string `json:"tags,omitempty"`
	// Kubelet holds kubelet settings for the nodes.
	// +optional
	Kubelet *KubeletConfiguration `json:"kubelet,omitempty"`
	// BlockDeviceMappings are the volumes attached at launch; at most one is
	// the root volume.
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:XValidation:rule="self.filter(m, has(m.rootVolume) && m.rootVolume).size() <= 1",message="at most one blockDeviceMapping may be the rootVolume"
	// +optional
	BlockDeviceMappings []BlockDeviceMapping `json:"blockDeviceMappings,omitempty"`
	// MetadataOptions set the instance metadata service (IMDS) access.
	// +kubebuilder:default={httpEndpoint: enabled, httpProtocolIPv6: disabled, httpPutResponseHopLimit: 1, httpTokens: required}
	// +optional
	MetadataOptions *MetadataOptions `json:"metadataOptions,omitempty"`
	// AssociatePublicIPAddress overrides the subnet's public IP setting.
	// +optional
	AssociatePublicIPAddress *bool `json:"associatePublicIPAddress,omitempty"`
	// DetailedMonitoring turns on 1-minute CloudWatch metrics.
	// +optional
	DetailedMonitoring *bool `json:"detailedMonitoring,omitempty"`
	// InterruptionQueue is the name of the SQS queue that receives EC2 spot
	// interruption warnings, rebalance recommendations, scheduled changes and
	// instance state changes for these nodes (a Flotilla extension). Unset
	// means interruption handling is off for this node class.
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]{1,80}$`
	// +optional
	InterruptionQueue string `json:"interruptionQueue,omitempty"`
}

// SubnetSelectorTerm selects subnets by tags or by id.
//
// +kubebuilder:validation:XValidation:rule="has(self.tags) || has(self.id)",message="a subnet selector term needs 'tags' or 'id'"
// +kubebuilder:validation:XValidation:rule="!(has(self.id) && has(self.tags))",message="'id' cannot be combined with 'tags' in a subnet selector term"
type SubnetSelectorTerm struct {
	// Tags select subnets having all of them; a value of "*" matches any
	// value.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=20
	// +kubebuilder:validation:XValidation:rule="self.all(k, k != '' && self[k] != '')",message="empty tag keys or values are not supported"
	// +optional
	Tags map[string]string `json:"tags,omitempty"`
	// ID is a subnet id.
	// +kubebuilder:validation:Pattern=`^subnet-[0-9a-z]+$`
	// +optional
	ID string `json:"id,omitempty"`
}

// SecurityGroupSelectorTerm selects security groups by tags, id or name.
//
// +kubebuilder:validation:XValidation:rule="has(self.tags) || has(self.id) || has(self.name)",message="a security group selector term needs 'tags', 'id' or 'name'"
// +kubebuilder:validation:XValidation:rule="!(has(self.id) && (has(self.tags) || has(self.name)))",message="'id' cannot be combined with other fields in a security group selector term"
// +kubebuilder:validation:XValidation:rule="!(has(self.name) && (has(self.tags) || has(self.id)))",message="'name' cannot be combined with other fields in a security group selector term"
type SecurityGroupSelectorTerm struct {
	// Tags select security groups having all of them; "*" matches any value.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=20
	// +kubebuilder:validation:XValidation:rule="self.all(k, k != '' && self[k] != '')",message="empty tag keys or values are not supported"
	// +optional
	Tags map[string]string `json:"tags,omitempty"`
	// ID is a security group id.
	// +kubebuilder:validation:Pattern=`^sg-[0-9a-z]+$`
	// +optional
	ID string `json:"id,omitempty"`
	// Name is the security group's name (its GroupName, not a Name tag).
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Name string `json:"name,omitempty"`
}

// AMISelectorTerm selects images by alias, tags, id, name, owner or SSM
// parameter. The fields of one term are ANDed.
//
// +kubebuilder:validation:XValidation:rule="has(self.alias) || has(self.tags) || has(self.id) || has(self.name) || has(self.ssmParameter)",message="an AMI selector term needs 'alias', 'tags', 'id', 'name' or 'ssmParameter'"
// +kubebuilder:validation:XValidation:rule="!(has(self.id) && (has(self.alias) || has(self.tags) || has(self.name) || has(self.owner) || has(self.ssmParameter)))",message="'id' cannot be combined with other fields in an AMI selector term"
// +kubebuilder:validation:XValidation:rule="!(has(self.alias) && (has(self.id) || has(self.tags) || has(self.name) || has(self.owner) || has(self.ssmParameter)))",message="'alias' cannot be combined with other fields in an AMI selector term"
type AMISelectorTerm struct {
	// Alias names an EKS-optimized image family and version as
	// "family@version", e.g. "al2023@latest" or "bottlerocket@v1.20.0".
	// Families: al2, al2023, bottlerocket, windows2019, windows2022 (Windows
	// only with "latest").
	// +kubebuilder:validation:MaxLength=30
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]+@[A-Za-z0-9._-]+$')",message="'alias' must look like 'family@version'"
	// +kubebuilder:validation:XValidation:rule="self.split('@')[0] in ['al2', 'al2023', 'bottlerocket', 'windows2019', 'windows2022']",message="alias family must be one of al2, al2023, bottlerocket, windows2019, windows2022"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('windows') || self.endsWith('@latest')",message="windows aliases only support version 'latest'"
	// +optional
	Alias string `json:"alias,omitempty"`
	// Tags select images having all of them; "*" matches any value.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=20
	// +kubebuilder:validation:XValidation:rule="self.all(k, k != '' && self[k] != '')",message="empty tag keys or values are not supported"
	// +optional
	Tags map[string]string `json:"tags,omitempty"`
	// ID is an image id.
	// +kubebuilder:validation:Pattern=`^ami-[0-9a-z]+$`
	// +optional
	ID string `json:"id,omitempty"`
	// Name is an image name (wildcards allowed, as in DescribeImages).
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Name string `json:"name,omitempty"`
	// Owner is an account id, "self", "amazon" or "aws-marketplace".
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Owner string `json:"owner,omitempty"`
	// SSMParameter is the name or ARN of an SSM parameter holding an image
	// id.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	SSMParameter string `json:"ssmParameter,omitempty"`
}
