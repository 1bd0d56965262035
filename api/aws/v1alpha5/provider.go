package v1alpha5

import (
	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
)

// Selector keys with a special meaning in v1alpha5 selectors; every other key
// is a tag key.
const (
	// SelectorIDs lists ids, comma-separated ("subnet-a,subnet-b").
	SelectorIDs = "aws::ids"
	// SelectorIDsLegacy is the older spelling of SelectorIDs.
	SelectorIDsLegacy = "aws-ids"
	// SelectorName is an AMI name (wildcards allowed).
	SelectorName = "aws::name"
	// SelectorOwners lists AMI owners, comma-separated.
	SelectorOwners = "aws::owners"
)

// Provider is the v1alpha5 AWS provider block of a Provisioner.
//
// +kubebuilder:validation:XValidation:rule="has(self.amiSelector) || !has(self.amiFamily) || self.amiFamily != 'Custom'",message="amiFamily 'Custom' needs an amiSelector"
type Provider struct {
	// SubnetSelector selects subnets by tag ("*" matches any value) or, with
	// the key "aws::ids", by a comma-separated list of ids.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=20
	// +kubebuilder:validation:XValidation:rule="self.all(k, k != '' && self[k] != '')",message="empty selector keys or values are not supported"
	// +required
	SubnetSelector map[string]string `json:"subnetSelector"`
	// SecurityGroupSelector selects security groups by tag or, with the key
	// "aws::ids", by ids.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=20
	// +kubebuilder:validation:XValidation:rule="self.all(k, k != '' && self[k] != '')",message="empty selector keys or values are not supported"
	// +required
	SecurityGroupSelector map[string]string `json:"securityGroupSelector"`
	// AMIFamily is the image family; AL2023 when unset. Ubuntu is accepted
	// but cannot be mapped (karpenter.k8s.aws/v1 dropped it).
	// +kubebuilder:validation:Enum={AL2,AL2023,Bottlerocket,Ubuntu,Windows2019,Windows2022,Custom}
	// +optional
	AMIFamily string `json:"amiFamily,omitempty"`
	// AMISelector selects images by tag or with the keys "aws::ids",
	// "aws::name" and "aws::owners". Unset: the latest EKS-optimized image
	// of the family.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=20
	// +kubebuilder:validation:XValidation:rule="self.all(k, k != '' && self[k] != '')",message="empty selector keys or values are not supported"
	// +optional
	AMISelector map[string]string `json:"amiSelector,omitempty"`
	// InstanceProfile is the IAM instance profile of the nodes; unset means
	// the actuator's default.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	InstanceProfile string `json:"instanceProfile,omitempty"`
	// Tags are added to everything launched for the nodes.
	// +kubebuilder:validation:MaxProperties=40
	// +kubebuilder:validation:XValidation:rule="self.all(k, k != '' && !(k in ['eks:eks-cluster-name', 'karpenter.sh/nodepool', 'karpenter.sh/nodeclaim', 'karpenter.sh/managed-by', 'karpenter.k8s.aws/ec2nodeclass']) && !k.startsWith('kubernetes.io/cluster/'))",message="tags may not be empty or use a key Flotilla sets (eks:eks-cluster-name, kubernetes.io/cluster/*, karpenter.sh/nodepool, karpenter.sh/nodeclaim, karpenter.sh/managed-by, karpenter.k8s.aws/ec2nodeclass)"
	// +optional
	Tags map[string]string `json:"tags,omitempty"`
	// MetadataOptions set instance metadata service access.
	// +optional
	MetadataOptions *awsv1.MetadataOptions `json:"metadataOptions,omitempty"`
	// BlockDeviceMappings are the volumes attached at launch.
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:XValidation:rule="self.filter(m, has(m.rootVolume) && m.rootVolume).size() <= 1",message="at most one blockDeviceMapping may be the rootVolume"
	// +optional
	BlockDeviceMappings []awsv1.BlockDeviceMapping `json:"blockDeviceMappings,omitempty"`
	// UserData is merged with the bootstrap Flotilla generates.
	// +kubebuilder:validation:MaxLength=16384
	// +optional
	UserData string `json:"userData,omitempty"`
	// DetailedMonitoring turns on 1-minute CloudWatch metrics.
	// +optional
	DetailedMonitoring *bool `json:"detailedMonitoring,omitempty"`
}
