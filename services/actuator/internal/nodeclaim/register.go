package nodeclaim

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/instance"
)

// nodeFor returns the Node with the claim's providerID, or nil.
func (c *Controller) nodeFor(claim *karpv1.NodeClaim) *corev1.Node {
	if claim.Status.ProviderID == "" {
		if claim.Status.NodeName == "" {
			return nil
		}
		n, err := c.nodeLister.Get(claim.Status.NodeName)
		if err != nil {
			return nil
		}
		return n
	}
	objs, err := c.nodes.GetIndexer().ByIndex(providerIDIndex, claim.Status.ProviderID)
	if err != nil || len(objs) == 0 {
		return nil
	}
	return objs[0].(*corev1.Node)
}

// register adopts the Node that joined with the claim's providerID: it
// syncs the claim's labels onto it, lifts the unregistered taint, adds the
// termination finalizer and makes the claim its owner.
func (c *Controller) register(ctx context.Context, claim *karpv1.NodeClaim) (time.Duration, error) {
	node := c.nodeFor(claim)
	if node == nil {
		launched := claim.Condition(karpv1.ConditionTypeLaunched)
		if launched != nil && c.opts.Now().Sub(launched.LastTransitionTime.Time) > c.opts.RegistrationTimeout {
			return c.expire(ctx, claim, karpv1.ConditionTypeRegistered, ReasonRegistrationTimeout,
				fmt.Sprintf("no Node with providerID %s joined within %s", claim.Status.ProviderID, c.opts.RegistrationTimeout))
		}
		if cond := claim.Condition(karpv1.ConditionTypeRegistered); cond == nil {
			c.setCondition(claim, karpv1.ConditionTypeRegistered, false, "AwaitingNode",
				fmt.Sprintf("waiting for a Node with providerID %s", claim.Status.ProviderID))
			if _, err := c.crd.UpdateNodeClaimStatus(ctx, claim); err != nil {
				return 0, err
			}
		}
		return 30 * time.Second, nil
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.kube.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !adopt(n, claim) {
			return nil
		}
		_, err = c.kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("register node %s: %w", node.Name, err)
	}
	// The instance shows up under the node's name in the EC2 console.
	if id, err := instance.ParseProviderID(claim.Status.ProviderID); err == nil {
		if err := c.instances.Tag(ctx, map[string]string{"Name": node.Name}, id); err != nil {
			return 0, fmt.Errorf("name instance %s after node %s: %w", id, node.Name, err)
		}
	}
	claim.Status.NodeName = node.Name
	c.setCondition(claim, karpv1.ConditionTypeRegistered, true, ReasonRegistered, "node "+node.Name+" joined")
	if _, err := c.crd.UpdateNodeClaimStatus(ctx, claim); err != nil {
		return 0, err
	}
	c.log.InfoContext(ctx, "nodeclaim_registered", "nodeclaim", claim.Name, "node", node.Name)
	return 0, nil
}

// adopt changes a Node to belong to its claim; false when it already does.
func adopt(n *corev1.Node, claim *karpv1.NodeClaim) bool {
	before := n.DeepCopy()
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	maps.Copy(n.Labels, claim.Labels)
	n.Labels[karpv1.NodeRegisteredLabelKey] = "true"
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	maps.Copy(n.Annotations, claim.Annotations)
	if !slices.Contains(n.Finalizers, karpv1.TerminationFinalizer) {
		n.Finalizers = append(n.Finalizers, karpv1.TerminationFinalizer)
	}
	// The taints the claim asks for, in case the kubelet did not register
	// with them, and without the unregistered taint.
	n.Spec.Taints = slices.DeleteFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == karpv1.UnregisteredTaintKey })
	for _, t := range append(slices.Clone(claim.Spec.Taints), claim.Spec.StartupTaints...) {
		if !slices.ContainsFunc(n.Spec.Taints, func(h corev1.Taint) bool { return h.MatchTaint(&t) }) {
			n.Spec.Taints = append(n.Spec.Taints, t)
		}
	}
	owned := slices.ContainsFunc(n.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == claim.UID })
	if !owned {
		block := true
		n.OwnerReferences = append(n.OwnerReferences, metav1.OwnerReference{
			APIVersion: karpv1.SchemeGroupVersion.String(), Kind: "NodeClaim", Name: claim.Name, UID: claim.UID,
			BlockOwnerDeletion: &block,
		})
	}
	return !equalNode(before, n)
}

func equalNode(a, b *corev1.Node) bool {
	return maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations) &&
		slices.Equal(a.Finalizers, b.Finalizers) && len(a.OwnerReferences) == len(b.OwnerReferences) &&
		slices.EqualFunc(a.Spec.Taints, b.Spec.Taints, func(x, y corev1.Taint) bool { return x.MatchTaint(&y) && x.Value == y.Value })
}

// initialize waits for the Node to be Ready, lifts the startup taints
// (unless told to leave them) and marks the claim Initialized and Ready.
func (c *Controller) initialize(ctx context.Context, claim *karpv1.NodeClaim) (time.Duration, error) {
	node := c.nodeFor(claim)
	registered := claim.Condition(karpv1.ConditionTypeRegistered)
	timedOut := registered != nil && c.opts.Now().Sub(registered.LastTransitionTime.Time) > c.opts.InitializationTimeout
	if node == nil {
		if timedOut {
			return c.expire(ctx, claim, karpv1.ConditionTypeInitialized, ReasonInitializationTimeout, "the Node went away before it was initialized")
		}
		return 30 * time.Second, nil
	}
	if !nodeReady(node) {
		if timedOut {
			return c.expire(ctx, claim, karpv1.ConditionTypeInitialized, ReasonInitializationTimeout,
				fmt.Sprintf("node %s not Ready within %s", node.Name, c.opts.InitializationTimeout))
		}
		if cond := claim.Condition(karpv1.ConditionTypeInitialized); cond == nil || cond.Reason != ReasonNodeNotReady {
			c.setCondition(claim, karpv1.ConditionTypeInitialized, false, ReasonNodeNotReady, "node "+node.Name+" is not Ready")
			if _, err := c.crd.UpdateNodeClaimStatus(ctx, claim); err != nil {
				return 0, err
			}
		}
		return 30 * time.Second, nil
	}
	startup := claim.Spec.StartupTaints
	remaining := slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool {
		return slices.ContainsFunc(startup, func(s corev1.Taint) bool { return s.MatchTaint(&t) })
	})
	if remaining && c.opts.KeepStartupTaints {
		if timedOut {
			return c.expire(ctx, claim, karpv1.ConditionTypeInitialized, ReasonInitializationTimeout,
				fmt.Sprintf("startup taints still on node %s after %s", node.Name, c.opts.InitializationTimeout))
		}
		return 15 * time.Second, nil
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.kube.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		before := len(n.Spec.Taints)
		n.Spec.Taints = slices.DeleteFunc(n.Spec.Taints, func(t corev1.Taint) bool {
			return slices.ContainsFunc(startup, func(s corev1.Taint) bool { return s.MatchTaint(&t) })
		})
		if n.Labels[karpv1.NodeInitializedLabelKey] == "true" && before == len(n.Spec.Taints) {
			return nil
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[karpv1.NodeInitializedLabelKey] = "true"
		_, err = c.kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("initialize node %s: %w", node.Name, err)
	}
	if len(node.Status.Allocatable) > 0 {
		claim.Status.Allocatable = node.Status.Allocatable.DeepCopy()
	}
	if len(node.Status.Capacity) > 0 {
		claim.Status.Capacity = node.Status.Capacity.DeepCopy()
	}
	c.setCondition(claim, karpv1.ConditionTypeInitialized, true, ReasonInitialized, "node "+node.Name+" is Ready")
	c.setCondition(claim, karpv1.ConditionTypeReady, true, ReasonInitialized, "node "+node.Name+" is Ready")
	if _, err := c.crd.UpdateNodeClaimStatus(ctx, claim); err != nil {
		return 0, err
	}
	c.log.InfoContext(ctx, "nodeclaim_initialized", "nodeclaim", claim.Name, "node", node.Name)
	return 0, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
