package v1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Status condition types of an EC2NodeClass (besides Ready).
const (
	// ConditionTypeSubnetsReady: the subnet selectors matched subnets.
	ConditionTypeSubnetsReady = "SubnetsReady"
	// ConditionTypeSecurityGroupsReady: the security group selectors
	// matched security groups.
	ConditionTypeSecurityGroupsReady = "SecurityGroupsReady"
	// ConditionTypeAMIsReady: the AMI selectors matched images.
	ConditionTypeAMIsReady = "AMIsReady"
	// ConditionTypeInstanceProfileReady: the instance profile exists.
	ConditionTypeInstanceProfileReady = "InstanceProfileReady"
	// ConditionTypeValidationSucceeded: the node class passed the checks
	// the schema cannot make.
	ConditionTypeValidationSucceeded = "ValidationSucceeded"
	// ConditionTypeReady is the summary of the others.
	ConditionTypeReady = "Ready"
)

// EC2NodeClassStatus is what an EC2NodeClass's selectors resolved to.
type EC2NodeClassStatus struct {
	// Subnets are the matching subnets.
	// +optional
	Subnets []Subnet `json:"subnets,omitempty"`
	// SecurityGroups are the matching security groups.
	// +optional
	SecurityGroups []SecurityGroup `json:"securityGroups,omitempty"`
	// AMIs are the matching images, with the requirements an instance type
	// must meet to use each (architecture, for example).
	// +optional
	AMIs []AMI `json:"amis,omitempty"`
	// InstanceProfile is the instance profile nodes launch with.
	// +optional
	InstanceProfile string `json:"instanceProfile,omitempty"`
	// Conditions say what resolved and what did not, and why.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Subnet is a resolved subnet.
type Subnet struct {
	// ID is the subnet id.
	// +required
	ID string `json:"id"`
	// Zone is the availability zone name, e.g. us-east-1a.
	// +required
	Zone string `json:"zone"`
	// ZoneID is the availability zone id, e.g. use1-az1.
	// +optional
	ZoneID string `json:"zoneID,omitempty"`
}

// SecurityGroup is a resolved security group.
type SecurityGroup struct {
	// ID is the security group id.
	// +required
	ID string `json:"id"`
	// Name is the security group name.
	// +optional
	Name string `json:"name,omitempty"`
}

// AMI is a resolved image.
type AMI struct {
	// ID is the image id.
	// +required
	ID string `json:"id"`
	// Name is the image name.
	// +optional
	Name string `json:"name,omitempty"`
	// Requirements an instance type must meet to boot this image.
	// +required
	Requirements []corev1.NodeSelectorRequirement `json:"requirements"`
}

// Condition returns the node class's condition of the given type, or nil.
func (in *EC2NodeClass) Condition(conditionType string) *metav1.Condition {
	return meta.FindStatusCondition(in.Status.Conditions, conditionType)
}

// IsTrue reports whether the node class's condition of the given type is
// True.
func (in *EC2NodeClass) IsTrue(conditionType string) bool {
	return meta.IsStatusConditionTrue(in.Status.Conditions, conditionType)
}
