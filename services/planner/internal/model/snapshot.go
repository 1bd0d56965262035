package model

import "time"

// Snapshot is everything a solver needs to answer one question.
type Snapshot struct {
	Pods                 []*Pod
	Nodes                []*Node
	NodeClaims           []*NodeClaim
	NodePools            []*NodePool
	NodeClasses          []*NodeClass
	DaemonSets           []*DaemonSet
	PodDisruptionBudgets []*PodDisruptionBudget
	// InstanceTypes is the catalogue with offerings and prices.
	InstanceTypes []*InstanceType
	Region        string
	// Now is the time the snapshot describes; solvers read no clock.
	Now time.Time
}

// NodeClass returns the node class with the given name, or nil.
func (s *Snapshot) NodeClass(name string) *NodeClass {
	for _, c := range s.NodeClasses {
		if c.Name == name {
			return c
		}
	}
	return nil
}
