package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConsolidationPolicy says which nodes consolidation may remove or replace.
type ConsolidationPolicy string

// Consolidation policies.
const (
	// ConsolidationPolicyWhenEmpty removes only nodes without pods (other
	// than DaemonSet pods).
	ConsolidationPolicyWhenEmpty ConsolidationPolicy = "WhenEmpty"
	// ConsolidationPolicyWhenEmptyOrUnderutilized also moves pods off nodes
	// to remove them or replace them with cheaper ones.
	ConsolidationPolicyWhenEmptyOrUnderutilized ConsolidationPolicy = "WhenEmptyOrUnderutilized"
)

// DisruptionReason is why a node is disrupted; budgets may apply to some
// reasons only.
//
// +kubebuilder:validation:Enum={Empty,Drifted,Underutilized,Expired}
type DisruptionReason string

// Disruption reasons.
const (
	DisruptionReasonEmpty         DisruptionReason = "Empty"
	DisruptionReasonDrifted       DisruptionReason = "Drifted"
	DisruptionReasonUnderutilized DisruptionReason = "Underutilized"
	DisruptionReasonExpired       DisruptionReason = "Expired"
)

// DefaultBudgetNodes is the budget a NodePool gets when it sets none.
const DefaultBudgetNodes = "10%"

// Disruption holds the settings for voluntary disruption (consolidation,
// drift, expiry) of a NodePool's nodes.
type Disruption struct {
	// ConsolidateAfter is how long a node must have seen no pod arrive or
	// leave before consolidation may act on it, or "Never".
	// +kubebuilder:validation:Pattern=`^(([0-9]+(s|m|h))+|Never)$`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Schemaless
	// +required
	ConsolidateAfter NillableDuration `json:"consolidateAfter"`
	// ConsolidationPolicy is WhenEmpty or WhenEmptyOrUnderutilized (the
	// default).
	// +kubebuilder:default=WhenEmptyOrUnderutilized
	// +kubebuilder:validation:Enum={WhenEmpty,WhenEmptyOrUnderutilized}
	// +optional
	ConsolidationPolicy ConsolidationPolicy `json:"consolidationPolicy,omitempty"`
	// Budgets limit how many nodes may be disrupted at once. When several
	// are active, the strictest wins. Defaults to one budget of 10%.
	// +kubebuilder:default={{nodes: "10%"}}
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:XValidation:rule="self.all(b, has(b.schedule) == has(b.duration))",message="'schedule' must be set with 'duration'"
	// +optional
	Budgets []Budget `json:"budgets,omitempty"`
}

// Budget caps the number of a NodePool's nodes that may be disrupted at
// once, for some or all reasons, always or in a recurring window.
type Budget struct {
	// Reasons are the disruption reasons the budget applies to; unset means
	// all of them.
	// +kubebuilder:validation:MaxItems=4
	// +listType=set
	// +optional
	Reasons []DisruptionReason `json:"reasons,omitempty"`
	// Nodes is how many nodes may be disrupted at once: a count ("3") or a
	// percentage of the NodePool's nodes ("10%", rounded up).
	// +kubebuilder:default="10%"
	// +kubebuilder:validation:Pattern=`^((100|[0-9]{1,2})%|[0-9]+)$`
	// +kubebuilder:validation:MaxLength=10
	// +required
	Nodes string `json:"nodes"`
	// Schedule is a cron expression (5 fields, UTC, or a macro such as
	// "@daily") for when the budget's window opens; unset means always.
	// +kubebuilder:validation:Pattern=`^(@(annually|yearly|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*/,?-]+( +[0-9A-Za-z*/,?-]+){4})$`
	// +kubebuilder:validation:MaxLength=100
	// +optional
	Schedule *string `json:"schedule,omitempty"`
	// Duration is how long the window stays open after each schedule hit,
	// in hours and minutes ("1h30m"). Required with Schedule.
	// +kubebuilder:validation:Pattern=`^((([0-9]+(h|m))|([0-9]+h[0-9]+m))(0s)?)$`
	// +kubebuilder:validation:Type=string
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`
}
