package nodeclaim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/drain"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/instance"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/metrics"
)

// ConditionDrained is False on a NodeClaim being terminated while pods
// remain on its node; the message names them and why they wait (a
// PodDisruptionBudget, karpenter.sh/do-not-disrupt, ...).
const ConditionDrained = "Drained"

// ReasonDraining is the reason of the Drained condition while pods remain.
const ReasonDraining = "Draining"

// Delete deletes a NodeClaim; its finalizer drains the node, terminates the
// instance and removes the Node. A NodeClaim already gone is not an error.
func (c *Controller) Delete(ctx context.Context, name string) error {
	// The termination continues the trace of the plan that asked for it.
	if err := c.recordTrace(ctx, name); err != nil && !isNotFound(err) {
		return err
	}
	if err := c.crd.DeleteNodeClaim(ctx, name); err != nil && !isNotFound(err) {
		return err
	}
	c.queue.Add(name)
	return nil
}

// finalize takes a deleted NodeClaim down: taint and drain its Node (PDBs
// respected until the termination grace period is over), terminate the
// instance, wait until EC2 says it is going, delete the Node, then drop the
// finalizer.
func (c *Controller) finalize(ctx context.Context, claim *karpv1.NodeClaim) (time.Duration, error) {
	if !hasString(claim.Finalizers, karpv1.TerminationFinalizer) {
		return 0, nil
	}
	ctx, span, traced := startSpan(ctx, claim, "nodeclaim.terminate")
	if traced {
		defer span.End()
	}
	node := c.nodeFor(claim)
	if node != nil {
		if err := c.drainer.Taint(ctx, node.Name); err != nil {
			return 0, err
		}
		err := c.drainer.Drain(ctx, node.Name, c.drainDeadline(claim))
		var pending *drain.PendingError
		if errors.As(err, &pending) {
			c.log.InfoContext(ctx, "nodeclaim_draining", "nodeclaim", claim.Name, "node", node.Name, "waiting", pending.Error())
			// Say what the drain waits for, where users look; not more
			// often than every few seconds.
			if cond := claim.Condition(ConditionDrained); cond == nil || cond.Message != pending.Error() &&
				c.opts.Now().Sub(cond.LastTransitionTime.Time) > 10*time.Second {
				c.setCondition(claim, ConditionDrained, false, ReasonDraining, pending.Error())
				if _, err := c.crd.UpdateNodeClaimStatus(ctx, claim); err != nil && !isNotFound(err) {
					return 0, err
				}
			}
			return 2 * time.Second, nil
		}
		if err != nil {
			return 0, err
		}
	}

	ids, err := c.instanceIDs(ctx, claim)
	if err != nil {
		return 0, err
	}
	if len(ids) > 0 {
		if !claim.IsTrue(karpv1.ConditionTypeInstanceTerminating) {
			c.setCondition(claim, karpv1.ConditionTypeInstanceTerminating, true, ReasonInstanceTerminating, "terminating "+fmt.Sprint(ids))
			if _, err := c.crd.UpdateNodeClaimStatus(ctx, claim); err != nil && !isNotFound(err) {
				return 0, err
			}
		}
		if err := c.instances.Terminate(ctx, ids...); err != nil {
			return 0, err
		}
		c.log.InfoContext(ctx, "instance_terminating", "nodeclaim", claim.Name, "instances", fmt.Sprint(ids))
		// Come back once EC2 reports them shutting down.
		for _, id := range ids {
			if _, err := c.instances.Get(ctx, id); err == nil {
				return 2 * time.Second, nil
			} else if !errors.Is(err, instance.ErrNotFound) {
				return 0, err
			}
		}
	}

	if node != nil {
		if err := c.removeNode(ctx, node.Name); err != nil {
			return 0, err
		}
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"finalizers":      slices.DeleteFunc(slices.Clone(claim.Finalizers), func(f string) bool { return f == karpv1.TerminationFinalizer }),
		"resourceVersion": claim.ResourceVersion,
	}})
	if _, err := c.crd.PatchNodeClaim(ctx, claim.Name, patch); err != nil {
		if isNotFound(err) {
			return 0, nil
		}
		return 0, err
	}
	pool := claim.Labels[karpv1.NodePoolLabelKey]
	metrics.NodeClaimsTerminated.WithLabelValues(pool).Inc()
	if reason := claim.Annotations[annotationDisruptionReason]; reason != "" {
		metrics.NodeClaimsDisrupted.WithLabelValues(reason, pool).Inc()
	}
	c.releaseLaunch(claim.UID)
	c.log.InfoContext(ctx, "nodeclaim_terminated", "nodeclaim", claim.Name, "node", claim.Status.NodeName)
	return 0, nil
}

// drainDeadline is when the claim's termination grace period runs out, or
// its interrupted instance is taken away if that is sooner (after that the
// pods go with the instance anyway); zero when neither applies.
func (c *Controller) drainDeadline(claim *karpv1.NodeClaim) time.Time {
	var deadline time.Time
	if claim.Spec.TerminationGracePeriod != nil && claim.DeletionTimestamp != nil {
		deadline = claim.DeletionTimestamp.Add(claim.Spec.TerminationGracePeriod.Duration)
	}
	if t, ok := InterruptionDeadline(claim); ok && (deadline.IsZero() || t.Before(deadline)) {
		deadline = t
	}
	return deadline
}

// instanceIDs are the live instances of a claim: the recorded one, and any
// tagged for it (a launch whose result was never recorded).
func (c *Controller) instanceIDs(ctx context.Context, claim *karpv1.NodeClaim) ([]string, error) {
	var ids []string
	if claim.Status.ProviderID != "" {
		id, err := instance.ParseProviderID(claim.Status.ProviderID)
		if err == nil {
			if _, err := c.instances.Get(ctx, id); err == nil {
				ids = append(ids, id)
			} else if !errors.Is(err, instance.ErrNotFound) {
				return nil, err
			}
		}
	}
	tagged, err := c.instances.FindByNodeClaim(ctx, claim.Name)
	switch {
	case err == nil && !slices.Contains(ids, tagged.ID):
		ids = append(ids, tagged.ID)
	case err != nil && !errors.Is(err, instance.ErrNotFound):
		return nil, err
	}
	return ids, nil
}

// removeNode deletes a Node and lifts its termination finalizer.
func (c *Controller) removeNode(ctx context.Context, name string) error {
	nodes := c.kube.CoreV1().Nodes()
	if err := nodes.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	n, err := nodes.Get(ctx, name, metav1.GetOptions{})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get node %s: %w", name, err)
	}
	if !slices.Contains(n.Finalizers, karpv1.TerminationFinalizer) {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"finalizers":      slices.DeleteFunc(slices.Clone(n.Finalizers), func(f string) bool { return f == karpv1.TerminationFinalizer }),
		"resourceVersion": n.ResourceVersion,
	}})
	if _, err := nodes.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("remove finalizer of node %s: %w", name, err)
	}
	c.log.InfoContext(ctx, "node_deleted", "node", name)
	return nil
}
