package nodeclaim

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

// Get reads a NodeClaim from the API server.
func (c *Controller) Get(ctx context.Context, name string) (*karpv1.NodeClaim, error) {
	return c.crd.GetNodeClaim(ctx, name)
}

// Cached returns the informer's copies of every NodeClaim (read-only).
func (c *Controller) Cached() []*karpv1.NodeClaim {
	objs := c.claims.GetStore().List()
	out := make([]*karpv1.NodeClaim, 0, len(objs))
	for _, obj := range objs {
		if nc, ok := obj.(*karpv1.NodeClaim); ok {
			out = append(out, nc)
		}
	}
	return out
}

// ByProviderID returns the cached NodeClaim with that providerID.
func (c *Controller) ByProviderID(providerID string) (*karpv1.NodeClaim, bool) {
	nc := c.claimForProviderID(providerID)
	return nc, nc != nil
}

// Annotate merges annotations into a NodeClaim's (a nil value removes the
// key).
func (c *Controller) Annotate(ctx context.Context, name string, annotations map[string]*string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		return fmt.Errorf("annotate nodeclaim %s: %w", name, err)
	}
	if _, err := c.crd.PatchNodeClaim(ctx, name, patch); err != nil {
		return err
	}
	c.queue.Add(name)
	return nil
}

// SetCondition sets one status condition of a NodeClaim (retrying on
// conflicts); the transition time is now when the status changes.
func (c *Controller) SetCondition(ctx context.Context, name string, cond metav1.Condition) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		nc, err := c.crd.GetNodeClaim(ctx, name)
		if err != nil {
			return err
		}
		if old := meta.FindStatusCondition(nc.Status.Conditions, cond.Type); old != nil &&
			old.Status == cond.Status && old.Reason == cond.Reason && old.Message == cond.Message {
			return nil
		}
		c.setCondition(nc, cond.Type, cond.Status == metav1.ConditionTrue, cond.Reason, cond.Message)
		_, err = c.crd.UpdateNodeClaimStatus(ctx, nc)
		return err
	})
}
