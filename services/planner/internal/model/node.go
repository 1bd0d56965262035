package model

import "time"

// Node is a Kubernetes Node.
type Node struct {
	Name       string
	ProviderID string
	Labels     map[string]string
	Taints     []Taint
	Capacity   Resources
	// Allocatable is what pods may request; when empty the planner falls
	// back to Capacity.
	Allocatable   Resources
	Ready         bool
	Unschedulable bool
	// NodeClaim names the NodeClaim that owns the node, if any.
	NodeClaim string
	Created   time.Time
	// PricePerHour is the price to assume for the node; 0 when unknown.
	PricePerHour float64
	// Deleting is set when the node is being deleted or tainted
	// karpenter.sh/disrupted.
	Deleting    bool
	Annotations map[string]string
	// LastPodEvent is the last time a pod was bound to or left the node, as
	// far as the watcher knows (never earlier than the node's creation).
	LastPodEvent time.Time
}

// NodePool returns the NodePool the node belongs to (its
// karpenter.sh/nodepool label), or "".
func (n *Node) NodePool() string { return n.Labels[LabelNodePool] }

// Usable returns what pods may request on the node: Allocatable, or Capacity
// when Allocatable was not reported.
func (n *Node) Usable() Resources {
	if n.Allocatable.IsZero() {
		return n.Capacity
	}
	return n.Allocatable
}

// Condition is a status condition as Kubernetes spells it.
type Condition struct {
	Type string
	// "True", "False" or "Unknown".
	Status         string
	Reason         string
	Message        string
	LastTransition time.Time
}

// NodeClaim is a request for one node, in flight or done.
type NodeClaim struct {
	Name          string
	NodePool      string
	NodeClass     string
	Requirements  []Requirement
	Requests      Resources
	Labels        map[string]string
	Taints        []Taint
	StartupTaints []Taint
	ProviderID    string
	// NodeName is set once the node registered.
	NodeName string
	// Resolved after launch.
	InstanceType  string
	Zone          string
	CapacityType  string
	Capacity      Resources
	Allocatable   Resources
	Conditions    []Condition
	Created       time.Time
	Deleting      bool
	PricePerHour  float64
	NodePoolHash  string
	NodeClassHash string
	ImageID       string
	Annotations   map[string]string
}

// Condition returns the condition of the given type, if present.
func (c *NodeClaim) Condition(typ string) (Condition, bool) {
	for _, cond := range c.Conditions {
		if cond.Type == typ {
			return cond, true
		}
	}
	return Condition{}, false
}
