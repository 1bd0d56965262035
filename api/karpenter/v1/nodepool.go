package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodePool is a group of nodes Flotilla may launch, described by a template
// (labels, taints, requirements, node class) and bounded by limits and
// disruption budgets.
//
// +kubebuilder:object:root=true
// +kubebuilder:storageversion
// +kubebuilder:resource:path=nodepools,scope=Cluster,categories=karpenter
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="NodeClass",type="string",JSONPath=".spec.template.spec.nodeClassRef.name"
// +kubebuilder:printcolumn:name="Nodes",type="integer",JSONPath=".status.nodes"
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Weight",type="integer",JSONPath=".spec.weight",priority=1
// +kubebuilder:printcolumn:name="CPU",type="string",JSONPath=".status.resources.cpu",priority=1
// +kubebuilder:printcolumn:name="Memory",type="string",JSONPath=".status.resources.memory",priority=1
type NodePool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what the NodePool launches and how its nodes are disrupted.
	// +required
	Spec NodePoolSpec `json:"spec"`
	// Status is what Flotilla observed.
	// +optional
	Status NodePoolStatus `json:"status,omitempty"`
}

// NodePoolList is a list of NodePools.
//
// +kubebuilder:object:root=true
type NodePoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the NodePools.
	Items []NodePool `json:"items"`
}

// NodePoolSpec describes the nodes a NodePool launches. The properties of a
// node come from the template narrowed by the pods it is launched for.
type NodePoolSpec struct {
	// Template is what every NodeClaim of this NodePool starts from.
	// +required
	Template NodeClaimTemplate `json:"template"`
	// Disruption says when Flotilla may remove or replace nodes.
	// +kubebuilder:default={consolidateAfter: "0s"}
	// +optional
	Disruption Disruption `json:"disruption"`
	// Limits caps the total resources (cpu, memory, nvidia.com/gpu, ...) of
	// all nodes in this NodePool; nothing is launched past them.
	// +kubebuilder:validation:XValidation:rule="self.all(k, !string(self[k]).startsWith('-'))",message="limits must not be negative"
	// +kubebuilder:validation:MaxProperties=24
	// +optional
	Limits Limits `json:"limits,omitempty"`
	// Weight orders NodePools: a pod goes to the highest-weight NodePool that
	// can host it. Unset counts as 0.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	Weight *int32 `json:"weight,omitempty"`
}

// NodeClaimTemplate is the template NodeClaims of a NodePool are made from.
type NodeClaimTemplate struct {
	// TemplateMetadata holds the labels and annotations every node gets.
	// +optional
	TemplateMetadata `json:"metadata,omitempty"`
	// Spec is the NodeClaim spec, without resource requests.
	// +required
	Spec NodeClaimTemplateSpec `json:"spec"`
}

// TemplateMetadata is the metadata a NodePool puts on its nodes.
type TemplateMetadata struct {
	// Labels are put on every node; each also acts as a requirement
	// "key In [value]". Keys in reserved domains must be well-known labels.
	// +kubebuilder:validation:MaxProperties=100
	// +kubebuilder:validation:XValidation:rule="self.all(k, k in ['kubernetes.io/arch', 'kubernetes.io/os', 'beta.kubernetes.io/arch', 'beta.kubernetes.io/os', 'beta.kubernetes.io/instance-type', 'topology.kubernetes.io/zone', 'topology.kubernetes.io/region', 'failure-domain.beta.kubernetes.io/zone', 'failure-domain.beta.kubernetes.io/region'] || !k.matches('^([^/]*[.])?kubernetes[.]io/') || k.matches('^([^/]*[.])?(node|node-restriction)[.]kubernetes[.]io/'))",message="label domain \"kubernetes.io\" is restricted"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.matches('^([^/]*[.])?k8s[.]io/') || k.matches('^([^/]*[.])?kops[.]k8s[.]io/'))",message="label domain \"k8s.io\" is restricted"
	// +kubebuilder:validation:XValidation:rule="self.all(k, k in ['karpenter.sh/capacity-type', 'karpenter.sh/provisioner-name'] || !k.matches('^([^/]*[.])?karpenter[.]sh/'))",message="label domain \"karpenter.sh\" is restricted; karpenter.sh/nodepool is set by Flotilla"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.matches('^([^/]*[.])?karpenter[.]k8s[.]aws/'))",message="label domain \"karpenter.k8s.aws\" is restricted: its labels come from the instance type"
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are put on every node.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// NodeClaimTemplateSpec is the part of a NodeClaim spec a NodePool sets.
type NodeClaimTemplateSpec struct {
	// Taints are put on every node; only pods that tolerate them land there.
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:XValidation:rule="self.all(t, t.effect in ['NoSchedule', 'PreferNoSchedule', 'NoExecute'])",message="taint effect must be NoSchedule, PreferNoSchedule or NoExecute"
	// +optional
	Taints []corev1.Taint `json:"taints,omitempty"`
	// StartupTaints are put on new nodes and expected to be removed by
	// something on the node (a DaemonSet, typically) once it is ready. Pods
	// need not tolerate them.
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:XValidation:rule="self.all(t, t.effect in ['NoSchedule', 'PreferNoSchedule', 'NoExecute'])",message="taint effect must be NoSchedule, PreferNoSchedule or NoExecute"
	// +optional
	StartupTaints []corev1.Taint `json:"startupTaints,omitempty"`
	// Requirements narrow the instance types, zones, capacity types and other
	// labels of the nodes. They combine with the template labels and with
	// each pod's own scheduling constraints. Unset leaves every instance type
	// of the node class open.
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:XValidation:rule="self.all(r, r.key != 'karpenter.sh/nodepool')",message="label \"karpenter.sh/nodepool\" is set by Flotilla and cannot be required"
	// +optional
	Requirements []NodeSelectorRequirementWithMinValues `json:"requirements,omitempty"`
	// NodeClassRef names the EC2NodeClass nodes are launched with.
	// +kubebuilder:validation:XValidation:rule="self.group == oldSelf.group",message="nodeClassRef.group is immutable"
	// +kubebuilder:validation:XValidation:rule="self.kind == oldSelf.kind",message="nodeClassRef.kind is immutable"
	// +required
	NodeClassRef NodeClassReference `json:"nodeClassRef"`
	// ExpireAfter is how long a node may live before it is replaced, or
	// "Never". Defaults to 720h.
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:Pattern=`^(([0-9]+(s|m|h))+|Never)$`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Schemaless
	// +optional
	ExpireAfter *NillableDuration `json:"expireAfter,omitempty"`
	// TerminationGracePeriod caps how long a node may take to drain; once it
	// has passed, remaining pods are deleted even against PDBs and
	// do-not-disrupt. Unset means drain for as long as it takes.
	// +kubebuilder:validation:Pattern=`^([0-9]+(s|m|h))+$`
	// +kubebuilder:validation:Type=string
	// +optional
	TerminationGracePeriod *metav1.Duration `json:"terminationGracePeriod,omitempty"`
}

// NodePoolStatus is what Flotilla observed about a NodePool.
type NodePoolStatus struct {
	// Resources is the sum of the capacity of the NodePool's nodes.
	// +optional
	Resources corev1.ResourceList `json:"resources,omitempty"`
	// Nodes is how many nodes the NodePool has.
	// +optional
	Nodes *int64 `json:"nodes,omitempty"`
	// NodeClassObservedGeneration is the generation of the node class last
	// checked for readiness.
	// +optional
	NodeClassObservedGeneration int64 `json:"nodeClassObservedGeneration,omitempty"`
	// Conditions are the NodePool's status conditions (see
	// ConditionTypeNodeClassReady, ConditionTypeValidationSucceeded,
	// ConditionTypeReady).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
