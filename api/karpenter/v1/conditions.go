package v1

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Status condition types, with Karpenter's names.
const (
	// ConditionTypeReady is the summary condition of every object.
	ConditionTypeReady = "Ready"

	// ConditionTypeLaunched: the NodeClaim's instance was created.
	ConditionTypeLaunched = "Launched"
	// ConditionTypeRegistered: a Node with the claim's providerID joined.
	ConditionTypeRegistered = "Registered"
	// ConditionTypeInitialized: the Node is Ready, its startup taints are
	// gone and its resources are registered.
	ConditionTypeInitialized = "Initialized"
	// ConditionTypeDrifted: the NodeClaim no longer matches its NodePool or
	// node class and will be replaced.
	ConditionTypeDrifted = "Drifted"
	// ConditionTypeConsolidatable: consolidateAfter has passed since the
	// last pod event, so consolidation may consider the node.
	ConditionTypeConsolidatable = "Consolidatable"
	// ConditionTypeExpired: the node outlived expireAfter and will be
	// replaced.
	ConditionTypeExpired = "Expired"
	// ConditionTypeInstanceTerminating: the instance is being terminated.
	ConditionTypeInstanceTerminating = "InstanceTerminating"
	// ConditionTypeDisruptionReason: the node is being disrupted; the reason
	// says why.
	ConditionTypeDisruptionReason = "DisruptionReason"

	// ConditionTypeValidationSucceeded: the NodePool passed the checks the
	// schema cannot make.
	ConditionTypeValidationSucceeded = "ValidationSucceeded"
	// ConditionTypeNodeClassReady: the NodePool's node class exists and is
	// Ready.
	ConditionTypeNodeClassReady = "NodeClassReady"
)

// Condition returns the NodeClaim's condition of the given type, or nil.
func (in *NodeClaim) Condition(conditionType string) *metav1.Condition {
	return meta.FindStatusCondition(in.Status.Conditions, conditionType)
}

// IsTrue reports whether the NodeClaim's condition of the given type is
// True.
func (in *NodeClaim) IsTrue(conditionType string) bool {
	return meta.IsStatusConditionTrue(in.Status.Conditions, conditionType)
}

// Condition returns the NodePool's condition of the given type, or nil.
func (in *NodePool) Condition(conditionType string) *metav1.Condition {
	return meta.FindStatusCondition(in.Status.Conditions, conditionType)
}

// IsTrue reports whether the NodePool's condition of the given type is True.
func (in *NodePool) IsTrue(conditionType string) bool {
	return meta.IsStatusConditionTrue(in.Status.Conditions, conditionType)
}
