// Package drain empties a node before its instance is terminated: it taints
// the node karpenter.sh/disrupted:NoSchedule so nothing new lands there and
// evicts its pods through the Eviction API, so PodDisruptionBudgets are
// respected. DaemonSet and mirror pods stay; pods annotated
// karpenter.sh/do-not-disrupt wait until the termination grace period runs
// out, after which every remaining pod is deleted.
package drain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// DisruptedTaint is the taint a node being drained carries.
var DisruptedTaint = corev1.Taint{Key: "karpenter.sh/disrupted", Effect: corev1.TaintEffectNoSchedule}

// DoNotDisruptAnnotation on a pod holds the node until the termination
// grace period runs out.
const DoNotDisruptAnnotation = "karpenter.sh/do-not-disrupt"

var tracer = otel.Tracer("github.com/flotilla-dev/flotilla/services/actuator/internal/drain")

// ErrPending is wrapped by the error Drain returns while pods remain.
var ErrPending = errors.New("node not drained yet")

// PendingError says what still runs on a node being drained, and why.
type PendingError struct {
	Node string
	// Waiting lists the pods that remain, "namespace/name (reason)".
	Waiting []string
}

func (e *PendingError) Error() string {
	w := e.Waiting
	if len(w) > 5 {
		w = append(slices.Clone(w[:5]), fmt.Sprintf("and %d more", len(e.Waiting)-5))
	}
	return fmt.Sprintf("drain %s: %d pods remain: %s", e.Node, len(e.Waiting), strings.Join(w, ", "))
}

// Unwrap makes errors.Is(err, ErrPending) true.
func (e *PendingError) Unwrap() error { return ErrPending }

// Drainer evicts pods from nodes.
type Drainer struct {
	kube kubernetes.Interface
	log  *slog.Logger
	now  func() time.Time
}

// New returns a Drainer; logger and now default to slog.Default and
// time.Now.
func New(kube kubernetes.Interface, logger *slog.Logger, now func() time.Time) *Drainer {
	if logger == nil {
		logger = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	return &Drainer{kube: kube, log: logger, now: now}
}

// Taint puts the disrupted taint on a node (once).
func (d *Drainer) Taint(ctx context.Context, nodeName string) error {
	return d.updateTaints(ctx, nodeName, func(taints []corev1.Taint) []corev1.Taint {
		if slices.ContainsFunc(taints, func(t corev1.Taint) bool { return t.MatchTaint(&DisruptedTaint) }) {
			return nil
		}
		return append(taints, DisruptedTaint)
	})
}

// Untaint removes the disrupted taint (a disruption that was called off).
func (d *Drainer) Untaint(ctx context.Context, nodeName string) error {
	return d.updateTaints(ctx, nodeName, func(taints []corev1.Taint) []corev1.Taint {
		out := slices.DeleteFunc(slices.Clone(taints), func(t corev1.Taint) bool { return t.MatchTaint(&DisruptedTaint) })
		if len(out) == len(taints) {
			return nil
		}
		return out
	})
}

// updateTaints applies change (nil result: nothing to do) with conflict
// retries.
func (d *Drainer) updateTaints(ctx context.Context, nodeName string, change func([]corev1.Taint) []corev1.Taint) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := d.kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		taints := change(node.Spec.Taints)
		if taints == nil {
			return nil
		}
		node.Spec.Taints = taints
		_, err = d.kube.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("taint node %s: %w", nodeName, err)
	}
	return nil
}

// Drain makes one pass over the node's pods: it evicts those that may go
// now and returns nil once none that must go remains, or a *PendingError
// saying what still runs. After deadline (zero: never) the remaining pods
// are deleted whatever their budgets say. Call it again until it returns
// nil.
func (d *Drainer) Drain(ctx context.Context, nodeName string, deadline time.Time) error {
	pods, err := d.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", nodeName).String(),
	})
	if err != nil {
		return fmt.Errorf("drain %s: list pods: %w", nodeName, err)
	}
	expired := !deadline.IsZero() && !d.now().Before(deadline)
	var waiting []string
	var critical, others []*corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName != nodeName || !mustGo(p) {
			continue
		}
		if p.DeletionTimestamp != nil {
			if expired {
				d.delete(ctx, p)
			}
			waiting = append(waiting, key(p)+" (terminating)")
			continue
		}
		if p.Annotations[DoNotDisruptAnnotation] == "true" && !expired {
			waiting = append(waiting, key(p)+" (do-not-disrupt)")
			continue
		}
		if isCritical(p) {
			critical = append(critical, p)
		} else {
			others = append(others, p)
		}
	}
	// Critical pods (DNS, CNI helpers, ...) go last, once the rest is gone.
	batch := others
	if len(others) == 0 {
		batch = critical
	} else {
		for _, p := range critical {
			waiting = append(waiting, key(p)+" (critical, after the others)")
		}
	}
	for _, p := range batch {
		if expired {
			d.delete(ctx, p)
			waiting = append(waiting, key(p)+" (deleted: termination grace period over)")
			continue
		}
		if reason := d.evict(ctx, p); reason != "" {
			waiting = append(waiting, key(p)+" ("+reason+")")
		}
	}
	if len(waiting) == 0 {
		return nil
	}
	slices.Sort(waiting)
	return &PendingError{Node: nodeName, Waiting: waiting}
}

// evict asks the Eviction API to evict a pod; it returns why the pod is
// still there, "" when it is gone.
func (d *Drainer) evict(ctx context.Context, p *corev1.Pod) string {
	if trace.SpanContextFromContext(ctx).IsValid() {
		// Inside a traced termination: each eviction is a span of it.
		var span trace.Span
		ctx, span = tracer.Start(ctx, "eviction", trace.WithAttributes(
			attribute.String("k8s.namespace.name", p.Namespace), attribute.String("k8s.pod.name", p.Name),
			attribute.String("k8s.node.name", p.Spec.NodeName)))
		defer span.End()
	}
	err := d.kube.PolicyV1().Evictions(p.Namespace).Evict(ctx, &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}},
	})
	switch {
	case err == nil:
		d.log.InfoContext(ctx, "pod_evicted", "pod", key(p), "node", p.Spec.NodeName)
		return "evicted"
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// Gone, or replaced by a pod of the same name.
		return ""
	case apierrors.IsTooManyRequests(err):
		return "blocked by a PodDisruptionBudget"
	case apierrors.IsInternalError(err) && strings.Contains(err.Error(), "more than one PodDisruptionBudget"):
		return "covered by more than one PodDisruptionBudget"
	default:
		d.log.WarnContext(ctx, "eviction_failed", "pod", key(p), "error", err.Error())
		return "eviction failed: " + err.Error()
	}
}

func (d *Drainer) delete(ctx context.Context, p *corev1.Pod) {
	err := d.kube.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		d.log.WarnContext(ctx, "pod_delete_failed", "pod", key(p), "error", err.Error())
		return
	}
	d.log.InfoContext(ctx, "pod_deleted_after_grace_period", "pod", key(p), "node", p.Spec.NodeName)
}

// mustGo reports whether a pod has to leave the node before it is
// terminated: not finished, not a mirror pod, not a DaemonSet's.
func mustGo(p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	if _, mirror := p.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return false
	}
	for _, o := range p.OwnerReferences {
		if o.Controller != nil && *o.Controller && o.Kind == "DaemonSet" {
			return false
		}
	}
	return true
}

func isCritical(p *corev1.Pod) bool {
	return p.Spec.PriorityClassName == "system-cluster-critical" || p.Spec.PriorityClassName == "system-node-critical"
}

func key(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }
