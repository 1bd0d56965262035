package nodeclaim

import (
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

// setCondition sets a status condition; the transition time is the
// controller's clock when the status changes.
func (c *Controller) setCondition(claim *karpv1.NodeClaim, conditionType string, status bool, reason, message string) {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&claim.Status.Conditions, metav1.Condition{
		Type: conditionType, Status: s, Reason: reason, Message: truncate(message, 2048),
		ObservedGeneration: claim.Generation, LastTransitionTime: metav1.NewTime(c.opts.Now()),
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func hasString(list []string, s string) bool { return slices.Contains(list, s) }

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

func isAlreadyExists(err error) bool { return apierrors.IsAlreadyExists(err) }

func isInvalid(err error) bool { return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) }
