package v1alpha5

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

// Provisioner is Karpenter's v1alpha5 node group: requirements, limits,
// labels, taints and an AWS provider block in one object. Flotilla serves it
// as the NodePool and EC2NodeClass of the same name (see Convert).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=provisioners,scope=Cluster,categories=karpenter
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Template",type="string",JSONPath=".spec.providerRef.name",priority=1
// +kubebuilder:printcolumn:name="Weight",type="integer",JSONPath=".spec.weight",priority=1
type Provisioner struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec describes the nodes the Provisioner launches.
	// +required
	Spec ProvisionerSpec `json:"spec"`
	// Status is what Flotilla observed.
	// +optional
	Status ProvisionerStatus `json:"status,omitempty"`
}

// ProvisionerList is a list of Provisioners.
//
// +kubebuilder:object:root=true
type ProvisionerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the Provisioners.
	Items []Provisioner `json:"items"`
}

// ProvisionerSpec is the v1alpha5 Provisioner specification.
//
// +kubebuilder:validation:XValidation:rule="has(self.provider) != has(self.providerRef)",message="exactly one of 'provider' or 'providerRef' must be set"
// +kubebuilder:validation:XValidation:rule="!(has(self.ttlSecondsAfterEmpty) && has(self.consolidation) && has(self.consolidation.enabled) && self.consolidation.enabled)",message="'ttlSecondsAfterEmpty' and 'consolidation.enabled' are mutually exclusive"
type ProvisionerSpec struct {
	// Annotations are put on every node.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// Labels are put on every node and act as requirements.
	// +kubebuilder:validation:MaxProperties=100
	// +kubebuilder:validation:XValidation:rule="self.all(k, k in ['kubernetes.io/arch', 'kubernetes.io/os', 'beta.kubernetes.io/arch', 'beta.kubernetes.io/os', 'beta.kubernetes.io/instance-type', 'topology.kubernetes.io/zone', 'topology.kubernetes.io/region', 'failure-domain.beta.kubernetes.io/zone', 'failure-domain.beta.kubernetes.io/region'] || !k.matches('^([^/]*[.])?kubernetes[.]io/') || k.matches('^([^/]*[.])?(node|node-restriction)[.]kubernetes[.]io/'))",message="label domain \"kubernetes.io\" is restricted"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.matches('^([^/]*[.])?k8s[.]io/') || k.matches('^([^/]*[.])?kops[.]k8s[.]io/'))",message="label domain \"k8s.io\" is restricted"
	// +kubebuilder:validation:XValidation:rule="self.all(k, k == 'karpenter.sh/capacity-type' || !k.matches('^([^/]*[.])?karpenter[.]sh/'))",message="label domain \"karpenter.sh\" is restricted"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.matches('^([^/]*[.])?karpenter[.]k8s[.]aws/'))",message="label domain \"karpenter.k8s.aws\" is restricted: its labels come from the instance type"
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Taints are put on every node.
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:XValidation:rule="self.all(t, t.effect in ['NoSchedule', 'PreferNoSchedule', 'NoExecute'])",message="taint effect must be NoSchedule, PreferNoSchedule or NoExecute"
	// +optional
	Taints []corev1.Taint `json:"taints,omitempty"`
	// StartupTaints are put on new nodes and expected to be removed once
	// they are ready; pods need not tolerate them.
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:XValidation:rule="self.all(t, t.effect in ['NoSchedule', 'PreferNoSchedule', 'NoExecute'])",message="taint effect must be NoSchedule, PreferNoSchedule or NoExecute"
	// +optional
	StartupTaints []corev1.Taint `json:"startupTaints,omitempty"`
	// Requirements narrow instance types, zones, capacity types and labels.
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:XValidation:rule="self.all(r, !(r.key in ['karpenter.sh/nodepool', 'karpenter.sh/provisioner-name']))",message="requirements cannot use karpenter.sh/nodepool or karpenter.sh/provisioner-name: Flotilla sets them"
	// +optional
	Requirements []karpv1.NodeSelectorRequirementWithMinValues `json:"requirements,omitempty"`
	// KubeletConfiguration are kubelet settings for the nodes.
	// +optional
	KubeletConfiguration *KubeletConfiguration `json:"kubeletConfiguration,omitempty"`
	// Provider is the AWS launch configuration, inline. Exactly one of
	// Provider and ProviderRef is set.
	// +optional
	Provider *Provider `json:"provider,omitempty"`
	// ProviderRef names an existing EC2NodeClass to launch with instead.
	// +optional
	ProviderRef *ProviderRef `json:"providerRef,omitempty"`
	// TTLSecondsAfterEmpty removes a node this many seconds after its last
	// pod (other than DaemonSet pods) left. Unset: empty nodes are kept,
	// unless consolidation is enabled.
	// +kubebuilder:validation:Minimum=0
	// +optional
	TTLSecondsAfterEmpty *int64 `json:"ttlSecondsAfterEmpty,omitempty"`
	// TTLSecondsUntilExpired replaces a node this many seconds after it was
	// created. Unset: nodes never expire.
	// +kubebuilder:validation:Minimum=0
	// +optional
	TTLSecondsUntilExpired *int64 `json:"ttlSecondsUntilExpired,omitempty"`
	// Limits caps the total resources of the Provisioner's nodes.
	// +optional
	Limits *Limits `json:"limits,omitempty"`
	// Weight orders Provisioners and NodePools; higher goes first.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	Weight *int32 `json:"weight,omitempty"`
	// Consolidation turns on consolidation of under-utilized nodes.
	// +optional
	Consolidation *Consolidation `json:"consolidation,omitempty"`
}

// Limits caps a Provisioner's total resources.
type Limits struct {
	// Resources are the caps by resource name (cpu, memory, ...).
	// +kubebuilder:validation:XValidation:rule="self.all(k, !string(self[k]).startsWith('-'))",message="limits must not be negative"
	// +kubebuilder:validation:MaxProperties=24
	// +optional
	Resources corev1.ResourceList `json:"resources,omitempty"`
}

// Consolidation holds the v1alpha5 consolidation switch.
type Consolidation struct {
	// Enabled turns consolidation on: nodes are removed or replaced with
	// cheaper ones when their pods fit elsewhere.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
}

// ProviderRef names the node class object a Provisioner launches with.
type ProviderRef struct {
	// APIVersion of the referent; karpenter.k8s.aws/v1 (or the old
	// karpenter.k8s.aws/v1alpha1) when set.
	// +kubebuilder:validation:Enum={karpenter.k8s.aws/v1,karpenter.k8s.aws/v1alpha1}
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind of the referent: EC2NodeClass, or the old name AWSNodeTemplate
	// (both mean the EC2NodeClass of that name).
	// +kubebuilder:validation:Enum={EC2NodeClass,AWSNodeTemplate}
	// +optional
	Kind string `json:"kind,omitempty"`
	// Name of the EC2NodeClass.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// KubeletConfiguration is the v1alpha5 kubelet block: the v1 settings plus
// the container runtime.
type KubeletConfiguration struct {
	awsv1.KubeletConfiguration `json:",inline"`
	// ContainerRuntime is the node's container runtime; only containerd is
	// supported.
	// +kubebuilder:validation:Enum={containerd,dockerd}
	// +optional
	ContainerRuntime *string `json:"containerRuntime,omitempty"`
}

// ProvisionerStatus is what Flotilla observed about a Provisioner.
type ProvisionerStatus struct {
	// Resources is the sum of the capacity of the Provisioner's nodes.
	// +optional
	Resources corev1.ResourceList `json:"resources,omitempty"`
	// Conditions say whether the Provisioner maps onto a valid NodePool and
	// EC2NodeClass and whether those are Ready.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
