package disruption

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclaim"
)

// Run advances every disruption under way, drains interrupted nodes whose
// deadline is near and tidies up finished ones, every Interval until ctx
// ends. A pass that fails is logged and tried again on the next.
func (e *Executor) Run(ctx context.Context) error {
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := e.Pass(ctx); err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "disruption_pass_failed", "error", err.Error())
		}
	}
}

// Pass makes one pass over the NodeClaims: it advances each disruption
// under way, drains interrupted nodes whose deadline is near and clears
// the replacement marks of disruptions that finished.
func (e *Executor) Pass(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	cached := e.claims.Cached()
	present := map[string]bool{}
	var ids []string
	for _, nc := range cached {
		present[nc.Name] = true
		if id := nc.Annotations[AnnotationID]; id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var errs []error
	for _, id := range ids {
		if _, err := e.advance(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("disruption %s: %w", id, err))
		}
	}
	now := e.opts.Now()
	for _, nc := range cached {
		if nc.DeletionTimestamp != nil {
			continue
		}
		if deadline, ok := nodeclaim.InterruptionDeadline(nc); ok && nc.Annotations[AnnotationID] == "" && !now.Before(deadline.Add(-e.opts.DrainLead)) {
			e.log.WarnContext(ctx, "interrupted_node_draining", "nodeclaim", nc.Name, "node", nc.Status.NodeName,
				"deadline", deadline.Format(time.RFC3339), "why", "no replacement planned in time")
			if err := e.drainNow(ctx, []*karpv1.NodeClaim{nc}); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if replaces := nc.Annotations[AnnotationReplaces]; replaces != "" &&
			!slices.ContainsFunc(split(replaces), func(old string) bool { return present[old] }) {
			// The old NodeClaims are gone: this is an ordinary node now.
			if err := e.claims.Annotate(ctx, nc.Name, map[string]*string{AnnotationReplaces: nil, AnnotationReplacementFor: nil}); err != nil && !isNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// advance moves one disruption a step: on to draining once every
// replacement is initialized, called off when one failed, or nothing while
// they start.
func (e *Executor) advance(ctx context.Context, id string) (Result, error) {
	var group []*karpv1.NodeClaim
	for _, cached := range e.claims.Cached() {
		if cached.Annotations[AnnotationID] != id {
			continue
		}
		// Decide on the API server's copy, not the cache's.
		nc, err := e.claims.Get(ctx, cached.Name)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return Result{}, err
		}
		if nc.Annotations[AnnotationID] == id {
			group = append(group, nc)
		}
	}
	if len(group) == 0 {
		return Result{Disrupting: true, Message: "disruption " + id + " finished"}, nil
	}
	reason := group[0].Annotations[AnnotationReason]
	var replacements []string
	committed := false
	for _, nc := range group {
		for _, r := range split(nc.Annotations[AnnotationReplacements]) {
			if !slices.Contains(replacements, r) {
				replacements = append(replacements, r)
			}
		}
		committed = committed || nc.DeletionTimestamp != nil
	}
	if committed {
		// Draining started: finish what a restart may have interrupted.
		return e.commit(ctx, id, group, false)
	}
	var waiting, failed []string
	for _, name := range replacements {
		r, err := e.claims.Get(ctx, name)
		switch {
		case isNotFound(err):
			failed = append(failed, name+" is gone (its launch failed or timed out; its events say why)")
		case err != nil:
			return Result{}, err
		case r.DeletionTimestamp != nil:
			failed = append(failed, name+" is being deleted"+lastWords(r))
		case !r.IsTrue(karpv1.ConditionTypeInitialized):
			waiting = append(waiting, name+" is "+progress(r))
		}
	}
	if reason == "Interrupted" {
		deadline, ok := earliestDeadline(group)
		near := ok && !e.opts.Now().Before(deadline.Add(-e.opts.DrainLead))
		if len(waiting) == 0 || len(failed) > 0 || near {
			// The instance goes anyway: drain now rather than lose the
			// pods with it.
			return e.commit(ctx, id, group, false)
		}
		return Result{Disrupting: true, Message: "interrupted; waiting for replacements before draining: " + strings.Join(waiting, "; ")}, nil
	}
	if len(failed) > 0 {
		return e.callOff(ctx, id, "replacement "+strings.Join(failed, "; "))
	}
	if len(waiting) > 0 {
		return Result{Disrupting: true, Message: "waiting for replacements before draining: " + strings.Join(waiting, "; ")}, nil
	}
	return e.commit(ctx, id, group, voluntary(reason))
}

// commit taints the old nodes, checks them once more when the disruption
// is voluntary (calling it off if a pod or budget now forbids it), and
// deletes their NodeClaims, whose finalizer drains and terminates them.
func (e *Executor) commit(ctx context.Context, id string, group []*karpv1.NodeClaim, check bool) (Result, error) {
	var names []string
	for _, nc := range group {
		names = append(names, nc.Name)
		if nc.DeletionTimestamp != nil || nc.Status.NodeName == "" {
			continue
		}
		if err := e.nodes.Taint(ctx, nc.Status.NodeName); err != nil {
			return Result{}, err
		}
	}
	if check {
		for _, nc := range group {
			if nc.DeletionTimestamp != nil || nc.Status.NodeName == "" {
				continue
			}
			blockers, err := e.nodes.Blockers(ctx, nc.Status.NodeName)
			if err != nil && !isNotFound(err) {
				return Result{}, err
			}
			if len(blockers) > 0 {
				return e.callOff(ctx, id, fmt.Sprintf("node %s may not be disrupted now: %s", nc.Status.NodeName, summary(blockers)))
			}
		}
	}
	for _, nc := range group {
		if nc.DeletionTimestamp != nil {
			continue
		}
		if err := e.claims.Delete(ctx, nc.Name); err != nil && !isNotFound(err) {
			return Result{}, err
		}
		e.log.InfoContext(ctx, "disruption_draining", "id", id, "reason", nc.Annotations[AnnotationReason], "nodeclaim", nc.Name, "node", nc.Status.NodeName)
	}
	return Result{Disrupting: true, Message: fmt.Sprintf("draining and terminating %d nodes (%s)", len(names), strings.Join(names, ", "))}, nil
}

// drainNow taints and deletes NodeClaims at once (an interrupted node
// whose deadline is near).
func (e *Executor) drainNow(ctx context.Context, claims []*karpv1.NodeClaim) error {
	for _, nc := range claims {
		if nc.Status.NodeName != "" {
			if err := e.nodes.Taint(ctx, nc.Status.NodeName); err != nil {
				return err
			}
		}
		if err := e.claims.Delete(ctx, nc.Name); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// callOff ends a disruption before anything was drained: the old nodes are
// untainted and keep running, replacements that never became ready are
// deleted, the ready ones stay as ordinary nodes (pods may already use
// them; the planner consolidates them if not), and the NodeClaims remember
// the plan so it is not tried again at once.
func (e *Executor) callOff(ctx context.Context, id, why string) (Result, error) {
	var group []*karpv1.NodeClaim
	var replacements []string
	for _, cached := range e.claims.Cached() {
		if cached.Annotations[AnnotationID] != id {
			continue
		}
		nc, err := e.claims.Get(ctx, cached.Name)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return Result{}, err
		}
		if nc.Annotations[AnnotationID] != id || nc.DeletionTimestamp != nil {
			continue
		}
		group = append(group, nc)
		for _, r := range split(nc.Annotations[AnnotationReplacements]) {
			if !slices.Contains(replacements, r) {
				replacements = append(replacements, r)
			}
		}
	}
	// Untaint first and forget last, so that a restart in between calls it
	// off again instead of leaving a node cordoned.
	for _, nc := range group {
		if nc.Status.NodeName == "" {
			continue
		}
		if err := e.nodes.Untaint(ctx, nc.Status.NodeName); err != nil && !isNotFound(err) {
			return Result{}, err
		}
	}
	for _, name := range replacements {
		r, err := e.claims.Get(ctx, name)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return Result{}, err
		}
		if r.Annotations[AnnotationReplacementFor] != id || r.DeletionTimestamp != nil {
			continue
		}
		if r.IsTrue(karpv1.ConditionTypeInitialized) {
			err = e.claims.Annotate(ctx, name, map[string]*string{AnnotationReplaces: nil, AnnotationReplacementFor: nil})
		} else {
			err = e.claims.Delete(ctx, name)
		}
		if err != nil && !isNotFound(err) {
			return Result{}, err
		}
	}
	now := e.opts.Now().UTC().Format(time.RFC3339)
	for _, nc := range group {
		if err := e.claims.SetCondition(ctx, nc.Name, metav1.Condition{
			Type: karpv1.ConditionTypeDisruptionReason, Status: metav1.ConditionFalse, Reason: ReasonCalledOff,
			Message: truncate(why+"; the node stays", 1024),
		}); err != nil && !isNotFound(err) {
			return Result{}, err
		}
		if err := e.claims.Annotate(ctx, nc.Name, map[string]*string{
			AnnotationID: nil, AnnotationReason: nil, AnnotationReplacements: nil, AnnotationStarted: nil,
			AnnotationCalledOff: ptr(id), AnnotationCalledOffAt: ptr(now),
		}); err != nil && !isNotFound(err) {
			return Result{}, err
		}
		e.log.WarnContext(ctx, "disruption_called_off", "id", id, "nodeclaim", nc.Name, "node", nc.Status.NodeName, "why", why)
	}
	return refused(why + "; the old nodes stay"), nil
}

func earliestDeadline(claims []*karpv1.NodeClaim) (time.Time, bool) {
	var out time.Time
	found := false
	for _, nc := range claims {
		if t, ok := nodeclaim.InterruptionDeadline(nc); ok && (!found || t.Before(out)) {
			out, found = t, true
		}
	}
	return out, found
}

// progress says how far a replacement got.
func progress(nc *karpv1.NodeClaim) string {
	for _, t := range []string{karpv1.ConditionTypeInitialized, karpv1.ConditionTypeRegistered, karpv1.ConditionTypeLaunched} {
		if c := nc.Condition(t); c != nil && c.Status == metav1.ConditionFalse && c.Message != "" {
			return "not " + strings.ToLower(t) + " yet: " + c.Message
		}
	}
	switch {
	case nc.IsTrue(karpv1.ConditionTypeRegistered):
		return "registered, not initialized yet"
	case nc.IsTrue(karpv1.ConditionTypeLaunched):
		return "launched, not registered yet"
	}
	return "launching"
}

// lastWords is the failure a deleted replacement recorded, if any.
func lastWords(nc *karpv1.NodeClaim) string {
	if nc == nil {
		return ""
	}
	for _, t := range []string{karpv1.ConditionTypeLaunched, karpv1.ConditionTypeRegistered, karpv1.ConditionTypeInitialized} {
		if c := nc.Condition(t); c != nil && c.Status == metav1.ConditionFalse && c.Message != "" {
			return " (" + c.Reason + ": " + c.Message + ")"
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
