package interruption

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/instance"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclaim"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/offering"
)

// Claims is what the handler needs of the NodeClaims.
type Claims interface {
	Cached() []*karpv1.NodeClaim
	Annotate(ctx context.Context, name string, annotations map[string]*string) error
	SetCondition(ctx context.Context, name string, cond metav1.Condition) error
	Delete(ctx context.Context, name string) error
}

// Offerings remembers offerings that should not be launched for a while.
type Offerings interface {
	Mark(k offering.Key, reason string)
}

// Handler acts on notices.
type Handler struct {
	claims    Claims
	offerings Offerings
	log       *slog.Logger
}

// NewHandler returns a Handler; offerings may be nil.
func NewHandler(claims Claims, offerings Offerings, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return &Handler{claims: claims, offerings: offerings, log: logger}
}

// Handle acts on a notice for every NodeClaim whose instance it names; an
// instance no NodeClaim owns is ignored. The error is for API failures (the
// message should then come back).
func (h *Handler) Handle(ctx context.Context, n Notice) error {
	for _, id := range n.InstanceIDs {
		nc := h.claimOf(id)
		if nc == nil {
			h.log.DebugContext(ctx, "interruption_for_unknown_instance", "instance", id, "kind", n.Kind.String())
			continue
		}
		if err := h.handle(ctx, n, id, nc); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("%s for nodeclaim %s: %w", n.Kind, nc.Name, err)
		}
	}
	return nil
}

func (h *Handler) handle(ctx context.Context, n Notice, id string, nc *karpv1.NodeClaim) error {
	h.log.InfoContext(ctx, "interruption_received", "kind", n.Kind.String(), "instance", id, "nodeclaim", nc.Name,
		"node", nc.Status.NodeName, "deadline", formatTime(n.Deadline), "event", n.ID)
	if n.Kind == KindStateChange {
		reason := nodeclaim.ReasonInstanceStopping
		if n.State == "terminated" || n.State == "shutting-down" {
			reason = nodeclaim.ReasonInstanceTerminated
		}
		if nc.DeletionTimestamp != nil {
			return nil
		}
		// Its pods went with the instance: the drain need not wait on
		// their budgets.
		gone := n.Time
		if gone.IsZero() {
			gone = time.Now()
		}
		deadline := gone.UTC().Format(time.RFC3339)
		if err := h.claims.Annotate(ctx, nc.Name, map[string]*string{nodeclaim.AnnotationInterruptionDeadline: &deadline}); err != nil {
			return err
		}
		if err := h.claims.SetCondition(ctx, nc.Name, condition(reason, n.Detail+"; the NodeClaim is deleted and its pods move")); err != nil {
			return err
		}
		// The instance is gone or going: drain what is left and clean up.
		return h.claims.Delete(ctx, nc.Name)
	}
	if nc.DeletionTimestamp != nil {
		return nil
	}
	reason := map[Kind]string{
		KindSpotInterruption:        nodeclaim.ReasonSpotInterruption,
		KindRebalanceRecommendation: nodeclaim.ReasonRebalanceRecommendation,
		KindScheduledChange:         nodeclaim.ReasonScheduledChange,
	}[n.Kind]
	if n.Kind == KindSpotInterruption && h.offerings != nil && nc.Labels[karpv1.CapacityTypeLabelKey] == karpv1.CapacityTypeSpot {
		h.offerings.Mark(offering.Key{
			InstanceType: nc.Labels[karpv1.LabelInstanceType], Zone: nc.Labels[karpv1.LabelTopologyZone], CapacityType: karpv1.CapacityTypeSpot,
		}, "SpotInterruption")
	}
	// A milder notice never replaces a sharper one, nor a later deadline an
	// earlier one.
	current, hasDeadline := nodeclaim.InterruptionDeadline(nc)
	if nc.IsTrue(nodeclaim.ConditionInterrupted) && (n.Deadline.IsZero() || (hasDeadline && !n.Deadline.Before(current))) {
		return nil
	}
	msg := n.Detail
	if !n.Deadline.IsZero() {
		msg += fmt.Sprintf("; the instance goes at %s: a replacement is launched now and the node drained once it is ready, at the latest 30s before",
			n.Deadline.UTC().Format(time.RFC3339))
		// The deadline first, so that whoever sees the condition sees it.
		deadline := n.Deadline.UTC().Format(time.RFC3339)
		if err := h.claims.Annotate(ctx, nc.Name, map[string]*string{nodeclaim.AnnotationInterruptionDeadline: &deadline}); err != nil {
			return err
		}
	} else {
		msg += "; a replacement is launched now and the node drained once it is ready"
	}
	return h.claims.SetCondition(ctx, nc.Name, condition(reason, msg))
}

// claimOf returns the cached NodeClaim of an instance.
func (h *Handler) claimOf(id string) *karpv1.NodeClaim {
	for _, nc := range h.claims.Cached() {
		if got, err := instance.ParseProviderID(nc.Status.ProviderID); err == nil && got == id {
			return nc
		}
	}
	return nil
}

func condition(reason, message string) metav1.Condition {
	return metav1.Condition{Type: nodeclaim.ConditionInterrupted, Status: metav1.ConditionTrue, Reason: reason, Message: message}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// queueURL reports whether a queue setting is a URL rather than a name.
func queueURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}
