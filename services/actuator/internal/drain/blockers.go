package drain

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

// Blockers lists why a node may not be disrupted voluntarily right now, in
// words: the node or one of the pods that would have to leave carries
// karpenter.sh/do-not-disrupt, or a PodDisruptionBudget covering such a pod
// allows no disruption at the moment. An empty list means draining can
// start without waiting on anything but the evictions themselves.
func (d *Drainer) Blockers(ctx context.Context, nodeName string) ([]string, error) {
	node, err := d.kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("blockers of %s: %w", nodeName, err)
	}
	var out []string
	if node.Annotations[DoNotDisruptAnnotation] == "true" {
		out = append(out, "node "+nodeName+" is annotated "+DoNotDisruptAnnotation)
	}
	pods, err := d.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", nodeName).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("blockers of %s: list pods: %w", nodeName, err)
	}
	budgets := map[string][]budget{} // by namespace, listed when first needed
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName != nodeName || !mustGo(p) || p.DeletionTimestamp != nil {
			continue
		}
		if p.Annotations[DoNotDisruptAnnotation] == "true" {
			out = append(out, "pod "+key(p)+" is annotated "+DoNotDisruptAnnotation)
			continue
		}
		bs, ok := budgets[p.Namespace]
		if !ok {
			if bs, err = d.budgets(ctx, p.Namespace); err != nil {
				return nil, err
			}
			budgets[p.Namespace] = bs
		}
		for _, b := range bs {
			if b.allowed <= 0 && b.selector.Matches(labels.Set(p.Labels)) {
				out = append(out, fmt.Sprintf("pod %s: PodDisruptionBudget %s/%s allows no disruption now", key(p), p.Namespace, b.name))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

type budget struct {
	name     string
	selector labels.Selector
	allowed  int32
}

func (d *Drainer) budgets(ctx context.Context, namespace string) ([]budget, error) {
	list, err := d.kube.PolicyV1().PodDisruptionBudgets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list poddisruptionbudgets in %s: %w", namespace, err)
	}
	var out []budget
	for _, pdb := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() {
			// An invalid or empty selector matches nothing for eviction.
			continue
		}
		out = append(out, budget{name: pdb.Name, selector: sel, allowed: pdb.Status.DisruptionsAllowed})
	}
	return out, nil
}

// Tainted reports whether a node carries the disrupted taint.
func Tainted(n *corev1.Node) bool {
	return slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.MatchTaint(&DisruptedTaint) })
}
