package snapshot

import (
	"maps"
	"strings"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	corev1 "k8s.io/api/core/v1"
)

// TaintDisrupted marks a node that is being disrupted (Karpenter's key).
const TaintDisrupted = "karpenter.sh/disrupted"

// kindNodeClaim is the owner kind of a node launched for a NodeClaim.
const kindNodeClaim = "NodeClaim"

// Node converts a node into the model. The owning NodeClaim comes from the
// node's owner references; Link fills it in from the NodeClaims' status
// when the node has none.
func Node(n *corev1.Node) (*clusterv1.Node, error) {
	out, err := node(n)
	if err != nil {
		return nil, objectError("Node", "", n.Name, err)
	}
	return out, nil
}

func node(n *corev1.Node) (*clusterv1.Node, error) {
	out := &clusterv1.Node{
		Name:          n.Name,
		ProviderId:    n.Spec.ProviderID,
		Labels:        maps.Clone(n.Labels),
		Unschedulable: n.Spec.Unschedulable,
		Created:       timestamp(n.CreationTimestamp),
		Deleting:      n.DeletionTimestamp != nil,
		Annotations:   plannerAnnotations(n.Annotations),
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Ready = c.Status == corev1.ConditionTrue
		}
	}
	for _, ref := range n.OwnerReferences {
		if ref.Kind == kindNodeClaim {
			out.NodeClaim = ref.Name
		}
	}
	for _, t := range n.Spec.Taints {
		if t.Key == TaintDisrupted {
			out.Deleting = true
		}
	}
	var err error
	if out.Taints, err = Taints("spec.taints", n.Spec.Taints); err != nil {
		return nil, err
	}
	if out.Capacity, err = Resources("status.capacity", n.Status.Capacity); err != nil {
		return nil, err
	}
	if out.Allocatable, err = Resources("status.allocatable", n.Status.Allocatable); err != nil {
		return nil, err
	}
	return out, nil
}

// plannerAnnotationPrefixes are the annotation domains the planner reads
// (do-not-disrupt, hashes, Flotilla's own); everything else is dropped.
var plannerAnnotationPrefixes = []string{"karpenter.sh/", "karpenter.k8s.aws/", "flotilla.dev/"}

// PlannerAnnotation reports whether the planner reads an annotation key.
func PlannerAnnotation(key string) bool {
	for _, p := range plannerAnnotationPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func plannerAnnotations(in map[string]string) map[string]string {
	var out map[string]string
	for k, v := range in {
		if PlannerAnnotation(k) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}
