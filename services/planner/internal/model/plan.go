package model

import "time"

// Plan is a solver's answer for one snapshot.
type Plan struct {
	// ID is a content hash: the same answer gets the same ID.
	ID string
	// Sequence is the cluster event the plan answers (set by the caller).
	Sequence uint64
	// NodeClaims are the new nodes to launch.
	NodeClaims []*NodeClaimPlan
	// Placements are pods placed on existing nodes and in-flight NodeClaims.
	Placements []*Placement
	// Unschedulable lists pods no capacity can host, each with a reason.
	Unschedulable []*UnschedulablePod
	// TotalPricePerHour sums the new nodes' prices.
	TotalPricePerHour float64
	Disruptions       []*DisruptionPlan
	Rejections        []*Rejection
	// RecheckAt, when not zero, is the earliest time the answer changes
	// without any change to the cluster (an empty node reaching its
	// NodePool's consolidateAfter); the caller asks again then.
	RecheckAt time.Time
}

// InstanceOption is one acceptable offering for a NodeClaim.
type InstanceOption struct {
	InstanceType string
	Zone         string
	CapacityType string
	PricePerHour float64
}

// NodeClaimPlan asks for one new node.
type NodeClaimPlan struct {
	// Name is deterministic: the same pods give the same name.
	Name      string
	NodePool  string
	NodeClass string
	// The cheapest offering the planner expects.
	InstanceType string
	Zone         string
	CapacityType string
	PricePerHour float64
	// InstanceTypeOptions are the acceptable instance types, cheapest first.
	InstanceTypeOptions []string
	// Pods the node is for, "namespace/name", sorted.
	Pods []string
	// Requirements for the NodeClaim: the pool's, narrowed by the pods'.
	Requirements []Requirement
	// Requests sums the pods' and DaemonSets' requests.
	Requests      Resources
	Labels        map[string]string
	Taints        []Taint
	StartupTaints []Taint
	// Options are the acceptable offerings, cheapest first (bounded).
	Options       []InstanceOption
	NodePoolHash  string
	NodeClassHash string
}

// Placement lists pods placed on an existing node or in-flight NodeClaim.
type Placement struct {
	// Node is the node name, or the NodeClaim name when InFlight.
	Node     string
	Pods     []string
	InFlight bool
}

// UnschedulablePod is a pod the plan could not place, and why.
type UnschedulablePod struct {
	Pod    string
	Reason string
}

// DisruptionReason says why a node is disrupted.
type DisruptionReason int

// Disruption reasons.
const (
	DisruptionEmpty DisruptionReason = iota + 1
	DisruptionUnderutilized
	DisruptionDrifted
	DisruptionExpired
	DisruptionInterrupted
)

// DisruptionPlan removes nodes, launching replacements first when needed.
type DisruptionPlan struct {
	ID     string
	Reason DisruptionReason
	// NodeClaims and Nodes to drain and terminate.
	NodeClaims []string
	Nodes      []string
	// Replacements to launch and wait for before draining.
	Replacements   []*NodeClaimPlan
	SavingsPerHour float64
	// Budget names the disruption budget that allowed the plan.
	Budget string
	// Moves says where the displaced pods go.
	Moves []*Placement
}

// Rejection is a disruption candidate a solver turned down, and why.
type Rejection struct {
	Node      string
	NodeClaim string
	Reason    string
}
