package nodeclaim

import (
	"time"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

// Interruption: what the interruption handler records on a NodeClaim whose
// instance is going away, what the planner reads (it plans an
// Interrupted disruption with replacements) and what bounds the drain.
const (
	// ConditionInterrupted is True on a NodeClaim whose instance received an
	// interruption notice; the reason names the kind (Reason* below) and the
	// message says what AWS said, in words.
	ConditionInterrupted = "Interrupted"
	// AnnotationInterruptionDeadline is when the instance will be taken away
	// (RFC 3339); absent when AWS gave none (a rebalance recommendation).
	AnnotationInterruptionDeadline = "flotilla.dev/interruption-deadline"
)

// Reasons of the Interrupted condition.
const (
	ReasonSpotInterruption        = "SpotInterruption"
	ReasonRebalanceRecommendation = "RebalanceRecommendation"
	ReasonScheduledChange         = "ScheduledChange"
	ReasonInstanceStopping        = "InstanceStopping"
	ReasonInstanceTerminated      = "InstanceTerminated"
)

// InterruptionDeadline returns when an interrupted NodeClaim's instance
// will be taken away, if AWS said.
func InterruptionDeadline(nc *karpv1.NodeClaim) (time.Time, bool) {
	if !nc.IsTrue(ConditionInterrupted) {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, nc.Annotations[AnnotationInterruptionDeadline])
	return t, err == nil
}
