package v1

import (
	corev1 "k8s.io/api/core/v1"
)

// Requirement operators (the same as a node selector's).
const (
	OperatorIn           = corev1.NodeSelectorOpIn
	OperatorNotIn        = corev1.NodeSelectorOpNotIn
	OperatorExists       = corev1.NodeSelectorOpExists
	OperatorDoesNotExist = corev1.NodeSelectorOpDoesNotExist
	OperatorGt           = corev1.NodeSelectorOpGt
	OperatorLt           = corev1.NodeSelectorOpLt
)

// NodeSelectorRequirementWithMinValues is a node selector requirement (key,
// operator, values) that may also ask for flexibility: at least MinValues
// distinct values of the key among the instance types a NodeClaim may use.
//
// The key may not lie in a domain reserved for Kubernetes or Flotilla unless
// it is a well-known label (see [IsRestrictedLabel]).
//
// +kubebuilder:validation:XValidation:rule="self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : true",message="requirements with operator 'In' or 'NotIn' must have at least one value"
// +kubebuilder:validation:XValidation:rule="self.operator in ['Exists', 'DoesNotExist'] ? !has(self.values) || size(self.values) == 0 : true",message="requirements with operator 'Exists' or 'DoesNotExist' must not have values"
// +kubebuilder:validation:XValidation:rule="self.operator in ['Gt', 'Lt'] ? has(self.values) && size(self.values) == 1 && self.values[0].matches('^[0-9]+$') : true",message="requirements with operator 'Gt' or 'Lt' must have a single non-negative integer value"
// +kubebuilder:validation:XValidation:rule="self.operator == 'In' && has(self.minValues) ? has(self.values) && size(self.values) >= self.minValues : true",message="requirements with 'minValues' must have at least that many values"
// +kubebuilder:validation:XValidation:rule="self.operator == 'DoesNotExist' ? !has(self.minValues) : true",message="requirements with operator 'DoesNotExist' cannot have 'minValues'"
type NodeSelectorRequirementWithMinValues struct {
	// Key is the label key the requirement applies to.
	// +kubebuilder:validation:MaxLength=316
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self in ['kubernetes.io/arch', 'kubernetes.io/os', 'beta.kubernetes.io/arch', 'beta.kubernetes.io/os', 'beta.kubernetes.io/instance-type', 'topology.kubernetes.io/zone', 'topology.kubernetes.io/region', 'failure-domain.beta.kubernetes.io/zone', 'failure-domain.beta.kubernetes.io/region'] || !self.matches('^([^/]*[.])?kubernetes[.]io/') || self.matches('^([^/]*[.])?(node|node-restriction)[.]kubernetes[.]io/')",message="label domain \"kubernetes.io\" is restricted"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([^/]*[.])?k8s[.]io/') || self.matches('^([^/]*[.])?kops[.]k8s[.]io/')",message="label domain \"k8s.io\" is restricted"
	// +kubebuilder:validation:XValidation:rule="self in ['karpenter.sh/capacity-type', 'karpenter.sh/nodepool', 'karpenter.sh/provisioner-name'] || !self.matches('^([^/]*[.])?karpenter[.]sh/')",message="label domain \"karpenter.sh\" is restricted"
	// +kubebuilder:validation:XValidation:rule="self in ['karpenter.k8s.aws/ec2nodeclass', 'karpenter.k8s.aws/instance-category', 'karpenter.k8s.aws/instance-family', 'karpenter.k8s.aws/instance-generation', 'karpenter.k8s.aws/instance-size', 'karpenter.k8s.aws/instance-cpu', 'karpenter.k8s.aws/instance-cpu-manufacturer', 'karpenter.k8s.aws/instance-cpu-sustained-clock-speed-mhz', 'karpenter.k8s.aws/instance-memory', 'karpenter.k8s.aws/instance-ebs-bandwidth', 'karpenter.k8s.aws/instance-network-bandwidth', 'karpenter.k8s.aws/instance-hypervisor', 'karpenter.k8s.aws/instance-encryption-in-transit-supported', 'karpenter.k8s.aws/instance-local-nvme', 'karpenter.k8s.aws/instance-gpu-name', 'karpenter.k8s.aws/instance-gpu-manufacturer', 'karpenter.k8s.aws/instance-gpu-count', 'karpenter.k8s.aws/instance-gpu-memory', 'karpenter.k8s.aws/instance-accelerator-name', 'karpenter.k8s.aws/instance-accelerator-manufacturer', 'karpenter.k8s.aws/instance-accelerator-count', 'karpenter.k8s.aws/instance-capability-flex'] || !self.matches('^([^/]*[.])?karpenter[.]k8s[.]aws/')",message="label domain \"karpenter.k8s.aws\" is restricted to its well-known instance labels"
	// +required
	Key string `json:"key"`
	// Operator relates the key to the values: In, NotIn, Exists,
	// DoesNotExist, Gt or Lt. In and NotIn need values, Exists and
	// DoesNotExist take none, Gt and Lt take exactly one integer.
	// +kubebuilder:validation:Enum={In,NotIn,Exists,DoesNotExist,Gt,Lt}
	// +required
	Operator corev1.NodeSelectorOperator `json:"operator"`
	// Values are the label values the operator applies to.
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`
	// +listType=atomic
	// +optional
	Values []string `json:"values,omitempty"`
	// MinValues is the least number of distinct values of the key that the
	// instance types a NodeClaim may use must cover (flexibility, for spot
	// diversity for example).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=50
	// +optional
	MinValues *int `json:"minValues,omitempty"`
}

// NodeSelectorRequirement returns the requirement as a core node selector
// requirement (without MinValues).
func (r NodeSelectorRequirementWithMinValues) NodeSelectorRequirement() corev1.NodeSelectorRequirement {
	return corev1.NodeSelectorRequirement{
		Key:      r.Key,
		Operator: r.Operator,
		Values:   append([]string(nil), r.Values...),
	}
}
