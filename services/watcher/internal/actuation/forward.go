// Package actuation hands the planner's plans to the actuator's Execute and
// records what came of them: pods waiting for a new NodeClaim are nominated
// to it (so no later plan launches for them again), a NodeClaim that fails
// releases its pods, and users see the outcome as Kubernetes events on their
// pods (Nominated, FlotillaUnschedulable with the planner's reason) and
// NodeClaims.
package actuation

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
)

// Event reasons.
const (
	// ReasonNominated: the pod should schedule on a node or NodeClaim.
	ReasonNominated = "Nominated"
	// ReasonUnschedulable: the planner found no capacity for the pod; the
	// message is the planner's reason.
	ReasonUnschedulable = "FlotillaUnschedulable"
	// ReasonLaunchFailed: the NodeClaim meant for the pod could not be
	// created.
	ReasonLaunchFailed = "FlotillaLaunchFailed"
	// ReasonPlanned: a NodeClaim was created for pods.
	ReasonPlanned = "Planned"
	// ReasonDisrupting: a node is being disrupted.
	ReasonDisrupting = "Disrupting"
	// ReasonDisruptionBlocked: the planner turned a node down as a
	// disruption candidate (Normal), or the actuator refused or called off
	// its disruption (Warning); the message says why and the node stays.
	ReasonDisruptionBlocked = "DisruptionBlocked"
)

// Actuator is the part of the actuator's API the forwarder calls.
type Actuator interface {
	Execute(ctx context.Context, in *actuatorv1.ExecuteRequest, opts ...grpc.CallOption) (*actuatorv1.ExecuteResponse, error)
}

// Nominator keeps track of pods waiting for NodeClaims.
type Nominator interface {
	Nominate(claim string, pods []string)
	Release(claim string)
	// NominatedClaim returns the in-flight NodeClaim a pod is nominated to.
	NominatedClaim(pod string) string
}

// Events records Kubernetes events; objects are named "namespace/name"
// (pods) or "name" (NodeClaims).
type Events interface {
	Pod(pod, eventType, reason, message string)
	NodeClaim(claim, eventType, reason, message string)
}

// Options tune a Forwarder.
type Options struct {
	// ExecuteTimeout bounds one Execute call (default 2 minutes).
	ExecuteTimeout time.Duration
	// RepeatAfter is how long an identical event on the same pod is held
	// back (default 10 minutes).
	RepeatAfter time.Duration
	// DisruptionValidation: a consolidation disruption (Empty,
	// Underutilized) is forwarded only once plans computed at least this
	// long apart both contain it (the same nodes for the same reason), so a
	// picture that holds for a moment only (a rollout between its old and
	// new pods, a burst the scheduler is still binding) moves nothing. Zero
	// forwards at once. Drift, expiry and interruption are never held back.
	DisruptionValidation time.Duration
	// Recheck asks the planner to plan again at a time even if nothing
	// changes (the end of a validation); nil when nothing can.
	Recheck func(at time.Time)
	Logger  *slog.Logger
	Now     func() time.Time
}

// Forwarder forwards plans to the actuator one at a time. A plan that
// arrives while another is executing waits; a newer one replaces it (it was
// computed from newer state).
type Forwarder struct {
	actuator Actuator
	noms     Nominator
	events   Events
	opts     Options

	mu      sync.Mutex
	pending *item
	wake    chan struct{}

	// last event per pod, to keep a plan per batch from flooding pods with
	// the same event.
	seenMu sync.Mutex
	seen   map[string]seenEvent

	// validating holds the consolidation disruptions seen but not
	// validated yet, by nodes and reason (touched by Run's goroutine only).
	validating map[string]sighting
}

// sighting is when a disruption was first and last seen in a plan.
type sighting struct {
	first, last time.Time
}

type item struct {
	// span is the batch's trace the plan answers.
	span trace.SpanContext
	plan *clusterv1.Plan
}

type seenEvent struct {
	message string
	at      time.Time
}

// New returns a Forwarder; Run forwards.
func New(actuator Actuator, noms Nominator, events Events, opts Options) *Forwarder {
	if opts.ExecuteTimeout <= 0 {
		opts.ExecuteTimeout = 2 * time.Minute
	}
	if opts.RepeatAfter <= 0 {
		opts.RepeatAfter = 10 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Forwarder{actuator: actuator, noms: noms, events: events, opts: opts, wake: make(chan struct{}, 1), seen: map[string]seenEvent{},
		validating: map[string]sighting{}}
}

// Handle queues a plan; it never blocks. ctx carries the plan's trace.
func (f *Forwarder) Handle(ctx context.Context, plan *clusterv1.Plan) {
	f.mu.Lock()
	if f.pending != nil {
		f.opts.Logger.Debug("plan_superseded", "plan", f.pending.plan.GetId(), "by", plan.GetId())
	}
	f.pending = &item{span: trace.SpanContextFromContext(ctx), plan: plan}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run forwards queued plans until ctx is done.
func (f *Forwarder) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		}
		f.mu.Lock()
		it := f.pending
		f.pending = nil
		f.mu.Unlock()
		if it != nil {
			f.forward(ctx, it)
		}
	}
}

// forward carries out one plan.
func (f *Forwarder) forward(ctx context.Context, it *item) {
	plan := it.plan
	f.recordUnschedulable(plan.GetUnschedulable())
	f.recordPlacements(plan.GetExistingNodes())
	f.recordRejections(plan.GetRejections())

	claims := f.fresh(plan.GetNodeClaims())
	disruptions := f.validated(plan.GetDisruptions())
	if len(claims) == 0 && len(disruptions) == 0 {
		return
	}
	// Nominate before Execute: a batch that arrives while the actuator
	// works must not plan these pods again.
	for _, nc := range claims {
		f.noms.Nominate(nc.GetName(), nc.GetPods())
	}
	req := &actuatorv1.ExecuteRequest{Plan: &clusterv1.Plan{
		Id:                plan.GetId(),
		Sequence:          plan.GetSequence(),
		NodeClaims:        claims,
		TotalPricePerHour: plan.GetTotalPricePerHour(),
		Disruptions:       disruptions,
	}}
	if it.span.IsValid() {
		// The call belongs to the forwarder's lifetime but to the batch's
		// trace.
		ctx = trace.ContextWithSpanContext(ctx, it.span)
	}
	callCtx, cancel := context.WithTimeout(ctx, f.opts.ExecuteTimeout)
	defer cancel()
	start := f.opts.Now()
	resp, err := f.actuator.Execute(callCtx, req)
	if err != nil {
		f.opts.Logger.Error("execute_failed", "plan", plan.GetId(), "node_claims", len(claims), "error", err.Error())
		if definite(err) {
			// Nothing was created: let the planner place the pods again.
			for _, nc := range claims {
				f.noms.Release(nc.GetName())
			}
		}
		return
	}
	f.opts.Logger.Info("plan_executed", "plan", plan.GetId(), "sequence", plan.GetSequence(), "node_claims", len(claims),
		"disruptions", len(disruptions), "duration", f.opts.Now().Sub(start).String())
	f.recordResults(claims, disruptions, resp.GetResults())
}

// fresh drops NodeClaims with a pod already nominated to another NodeClaim:
// the plan was made before that nomination reached the planner, and
// launching it would launch twice for the pod. The next plan, made with the
// nomination, places what is left.
func (f *Forwarder) fresh(claims []*clusterv1.NodeClaimPlan) []*clusterv1.NodeClaimPlan {
	var out []*clusterv1.NodeClaimPlan
	for _, nc := range claims {
		stale := slices.ContainsFunc(nc.GetPods(), func(p string) bool {
			other := f.noms.NominatedClaim(p)
			return other != "" && other != nc.GetName()
		})
		if stale {
			f.opts.Logger.Info("node_claim_skipped", "node_claim", nc.GetName(), "reason", "pods already nominated to another NodeClaim")
			continue
		}
		out = append(out, nc)
	}
	return out
}

func (f *Forwarder) recordUnschedulable(us []*clusterv1.Unschedulable) {
	for _, u := range us {
		f.podEvent(u.GetPod(), corev1.EventTypeWarning, ReasonUnschedulable, u.GetReason())
	}
}

func (f *Forwarder) recordPlacements(placements []*clusterv1.NodePlacement) {
	for _, pl := range placements {
		target := "node/" + pl.GetNode()
		if pl.GetInFlight() {
			target = "nodeclaim/" + pl.GetNode()
			var fresh []string
			for _, p := range pl.GetPods() {
				if f.noms.NominatedClaim(p) != pl.GetNode() {
					fresh = append(fresh, p)
				}
			}
			if len(fresh) > 0 {
				f.noms.Nominate(pl.GetNode(), fresh)
			}
		}
		for _, p := range pl.GetPods() {
			f.podEvent(p, corev1.EventTypeNormal, ReasonNominated, "Pod should schedule on: "+target)
		}
	}
}

func (f *Forwarder) recordResults(claims []*clusterv1.NodeClaimPlan, disruptions []*clusterv1.DisruptionPlan, results []*actuatorv1.NodeClaimResult) {
	podsOf := map[string][]string{}
	for _, nc := range claims {
		podsOf[nc.GetName()] = nc.GetPods()
	}
	byID := map[string]*clusterv1.DisruptionPlan{}
	for _, d := range disruptions {
		byID[d.GetId()] = d
	}
	for _, r := range results {
		if d, ok := byID[r.GetName()]; ok {
			f.recordDisruption(d, r)
			continue
		}
		pods := r.GetPods()
		if len(pods) == 0 {
			pods = podsOf[r.GetName()]
		}
		switch r.GetOutcome() {
		case actuatorv1.Outcome_OUTCOME_CREATED, actuatorv1.Outcome_OUTCOME_EXISTS:
			for _, p := range pods {
				f.podEvent(p, corev1.EventTypeNormal, ReasonNominated, "Pod should schedule on: nodeclaim/"+r.GetName())
			}
			if r.GetOutcome() == actuatorv1.Outcome_OUTCOME_CREATED {
				f.events.NodeClaim(r.GetName(), corev1.EventTypeNormal, ReasonPlanned, fmt.Sprintf("Launching for %d pod(s): %s", len(pods), summary(pods)))
			}
		case actuatorv1.Outcome_OUTCOME_FAILED:
			f.noms.Release(r.GetName())
			msg := fmt.Sprintf("NodeClaim %s could not be created: %s", r.GetName(), r.GetMessage())
			for _, p := range pods {
				f.podEvent(p, corev1.EventTypeWarning, ReasonLaunchFailed, msg)
			}
			f.events.NodeClaim(r.GetName(), corev1.EventTypeWarning, ReasonLaunchFailed, r.GetMessage())
		}
	}
}

// recordRejections records, on each NodeClaim the planner considered for
// a disruption and turned down, why (once per reason while it holds).
func (f *Forwarder) recordRejections(rs []*clusterv1.Rejection) {
	for _, r := range rs {
		if r.GetNodeClaim() == "" {
			continue
		}
		if f.isNewEvent("nodeclaim/"+r.GetNodeClaim(), ReasonDisruptionBlocked, r.GetReason()) {
			f.events.NodeClaim(r.GetNodeClaim(), corev1.EventTypeNormal, ReasonDisruptionBlocked, r.GetReason())
		}
	}
}

// recordDisruption records a disruption's outcome on the NodeClaims it
// disrupts, once per message (the planner repeats a disruption in every
// plan until it is done).
func (f *Forwarder) recordDisruption(d *clusterv1.DisruptionPlan, r *actuatorv1.NodeClaimResult) {
	eventType, reason, verb := corev1.EventTypeNormal, ReasonDisrupting, "Disrupting"
	if r.GetOutcome() == actuatorv1.Outcome_OUTCOME_FAILED {
		eventType, reason, verb = corev1.EventTypeWarning, ReasonDisruptionBlocked, "Not disrupted"
	}
	msg := fmt.Sprintf("%s (%s, plan %s): %s", verb, reasonName(d.GetReason()), d.GetId(), r.GetMessage())
	for _, nc := range d.GetNodeClaims() {
		if f.isNewEvent("nodeclaim/"+nc, reason, msg) {
			f.events.NodeClaim(nc, eventType, reason, msg)
		}
	}
}

// podEvent records an event on a pod unless the same one was recorded
// recently.
func (f *Forwarder) podEvent(pod, eventType, reason, message string) {
	if f.isNewEvent(pod, reason, message) {
		f.events.Pod(pod, eventType, reason, message)
	}
}

// fresh1 reports whether an event about an object is new (not the same
// message recently) and remembers it.
func (f *Forwarder) isNewEvent(object, reason, message string) bool {
	now := f.opts.Now()
	k := object + "\x00" + reason
	f.seenMu.Lock()
	last, ok := f.seen[k]
	if ok && last.message == message && now.Sub(last.at) < f.opts.RepeatAfter {
		f.seenMu.Unlock()
		return false
	}
	f.seen[k] = seenEvent{message: message, at: now}
	if len(f.seen) > 200_000 {
		// Bounded: forget the oldest half.
		for key, e := range f.seen {
			if now.Sub(e.at) > f.opts.RepeatAfter/2 {
				delete(f.seen, key)
			}
		}
	}
	f.seenMu.Unlock()
	return true
}

func summary(pods []string) string {
	const show = 5
	if len(pods) <= show {
		return strings.Join(pods, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(pods[:show], ", "), len(pods)-show)
}

func reasonName(r clusterv1.DisruptionReason) string {
	s := strings.TrimPrefix(r.String(), "DISRUPTION_REASON_")
	return strings.ToLower(s)
}

// definite reports whether an Execute error means the call did nothing.
func definite(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.Unimplemented, codes.PermissionDenied, codes.Unauthenticated, codes.ResourceExhausted, codes.Unavailable:
		return true
	}
	return false
}
