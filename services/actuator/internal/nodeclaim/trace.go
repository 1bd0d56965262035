package nodeclaim

import (
	"context"
	"encoding/json"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

// AnnotationTraceparent on a NodeClaim is the W3C trace context of the
// batch that created (or disrupted) it. The launch and the termination run
// later, in the controller's workers, and continue that trace, so one trace
// shows a batch from the watcher through the planner to CreateFleet and the
// evictions.
const AnnotationTraceparent = "flotilla.dev/traceparent"

var tracer = otel.Tracer("github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclaim")

// traceparent returns the W3C traceparent of ctx's span, "" when it has
// none.
func traceparent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier["traceparent"]
}

// claimTrace returns ctx continuing the trace recorded on the claim, and
// whether there is one.
func claimTrace(ctx context.Context, claim *karpv1.NodeClaim) (context.Context, bool) {
	tp := claim.Annotations[AnnotationTraceparent]
	if tp == "" {
		return ctx, false
	}
	ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
	return ctx, trace.SpanContextFromContext(ctx).IsValid()
}

// recordTrace writes ctx's trace onto an existing NodeClaim (one about to
// be deleted), so its termination joins the trace.
func (c *Controller) recordTrace(ctx context.Context, name string) error {
	tp := traceparent(ctx)
	if tp == "" {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{AnnotationTraceparent: tp}}})
	_, err := c.crd.PatchNodeClaim(ctx, name, patch)
	return err
}

// startSpan starts a span for a step of the claim when the claim carries a
// trace; otherwise it returns ctx and a no-op end.
func startSpan(ctx context.Context, claim *karpv1.NodeClaim, name string) (context.Context, trace.Span, bool) {
	ctx, ok := claimTrace(ctx, claim)
	if !ok {
		return ctx, trace.SpanFromContext(ctx), false
	}
	ctx, span := tracer.Start(ctx, name, trace.WithAttributes(nodeClaimAttrs(claim)...))
	return ctx, span, true
}

func nodeClaimAttrs(claim *karpv1.NodeClaim) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("flotilla.nodeclaim", claim.Name),
		attribute.String("flotilla.nodepool", claim.Labels[karpv1.NodePoolLabelKey]),
	}
}

// Annotations the disruption package writes (it imports this package, so
// the names are repeated here): a replacement names its disruption, a
// disrupted NodeClaim its reason. They label the created and disrupted
// counters.
const (
	annotationReplacementFor   = "flotilla.dev/replacement-for"
	annotationDisruptionReason = "flotilla.dev/disruption-reason"
)
