package drain

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func pod(name string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + "name"},
		Spec:       corev1.PodSpec{NodeName: "node-1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

// evictions makes the fake clientset answer evictions: blocked pods get 429
// as a PodDisruptionBudget would give, the rest are deleted.
func evictions(kube *fake.Clientset, blocked map[string]bool, evicted *[]string) {
	kube.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		e := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		if blocked[e.Name] {
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
		}
		*evicted = append(*evicted, e.Name)
		return true, nil, kube.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, e.Namespace, e.Name)
	})
}

func TestDrain(t *testing.T) {
	t.Parallel()
	ctrl := true
	kube := fake.NewClientset(
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}},
		pod("web-1"),
		pod("web-2"),
		pod("guarded"),
		pod("precious", func(p *corev1.Pod) { p.Annotations = map[string]string{DoNotDisruptAnnotation: "true"} }),
		pod("dns", func(p *corev1.Pod) { p.Spec.PriorityClassName = "system-cluster-critical" }),
		pod("agent", func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "DaemonSet", Name: "agent", Controller: &ctrl}}
		}),
		pod("static", func(p *corev1.Pod) { p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"} }),
		pod("done", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
		pod("elsewhere", func(p *corev1.Pod) { p.Spec.NodeName = "node-2" }),
	)
	var evicted []string
	blocked := map[string]bool{"guarded": true}
	evictions(kube, blocked, &evicted)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := New(kube, nil, func() time.Time { return now })
	ctx := t.Context()

	if err := d.Taint(ctx, "node-1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Taint(ctx, "node-1"); err != nil {
		t.Fatal(err)
	}
	n, _ := kube.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	if diff := cmp.Diff([]corev1.Taint{DisruptedTaint}, n.Spec.Taints); diff != "" {
		t.Errorf("taints after tainting twice (-want +got):\n%s", diff)
	}

	deadline := now.Add(time.Hour)
	// First pass: the ordinary pods go, the PDB-guarded one stays, the
	// critical one waits for the others, do-not-disrupt waits.
	err := d.Drain(ctx, "node-1", deadline)
	var pending *PendingError
	if !errors.As(err, &pending) || !errors.Is(err, ErrPending) {
		t.Fatalf("Drain = %v, want a *PendingError", err)
	}
	wantWaiting := []string{
		"default/dns (critical, after the others)",
		"default/guarded (blocked by a PodDisruptionBudget)",
		"default/precious (do-not-disrupt)",
		"default/web-1 (evicted)",
		"default/web-2 (evicted)",
	}
	if diff := cmp.Diff(wantWaiting, pending.Waiting); diff != "" {
		t.Errorf("waiting (-want +got):\n%s", diff)
	}

	// The budget allows it now: the guarded pod goes, then the critical one.
	delete(blocked, "guarded")
	_ = d.Drain(ctx, "node-1", deadline) // evicts the guarded pod
	_ = d.Drain(ctx, "node-1", deadline) // then the critical one
	err = d.Drain(ctx, "node-1", deadline)
	if !errors.As(err, &pending) || !slices.Equal(pending.Waiting, []string{"default/precious (do-not-disrupt)"}) {
		t.Fatalf("Drain before the deadline = %v, want only the do-not-disrupt pod left", err)
	}

	// After the termination grace period the do-not-disrupt pod is deleted.
	now = deadline
	_ = d.Drain(ctx, "node-1", deadline)
	if err := d.Drain(ctx, "node-1", deadline); err != nil {
		t.Fatalf("Drain after the deadline = %v, want nil", err)
	}
	pods, _ := kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	var left []string
	for _, p := range pods.Items {
		left = append(left, p.Name)
	}
	slices.Sort(left)
	if diff := cmp.Diff([]string{"agent", "done", "elsewhere", "static"}, left); diff != "" {
		t.Errorf("pods left (-want +got):\n%s", diff)
	}
	slices.Sort(evicted)
	if diff := cmp.Diff([]string{"dns", "guarded", "web-1", "web-2"}, evicted); diff != "" {
		t.Errorf("evicted (-want +got):\n%s", diff)
	}

	if err := d.Untaint(ctx, "node-1"); err != nil {
		t.Fatal(err)
	}
	n, _ = kube.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	if len(n.Spec.Taints) != 0 {
		t.Errorf("taints after Untaint = %v, want none", n.Spec.Taints)
	}
}

func TestBlockers(t *testing.T) {
	t.Parallel()
	ctrl := true
	pdb := func(name string, allowed int32, labels map[string]string) *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}},
			Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed},
		}
	}
	withLabels := func(l map[string]string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Labels = l } }
	for _, tc := range []struct {
		name string
		objs []runtime.Object
		want []string
	}{
		{
			name: "nothing protects the pods",
			objs: []runtime.Object{pod("web-1", withLabels(map[string]string{"app": "web"})), pdb("web", 1, map[string]string{"app": "web"})},
		},
		{
			name: "a budget that allows nothing",
			objs: []runtime.Object{pod("web-1", withLabels(map[string]string{"app": "web"})), pod("other"), pdb("web", 0, map[string]string{"app": "web"})},
			want: []string{"pod default/web-1: PodDisruptionBudget default/web allows no disruption now"},
		},
		{
			name: "do-not-disrupt pods, not DaemonSet pods",
			objs: []runtime.Object{
				pod("precious", func(p *corev1.Pod) { p.Annotations = map[string]string{DoNotDisruptAnnotation: "true"} }),
				pod("agent", func(p *corev1.Pod) {
					p.Annotations = map[string]string{DoNotDisruptAnnotation: "true"}
					p.OwnerReferences = []metav1.OwnerReference{{Kind: "DaemonSet", Name: "agent", Controller: &ctrl}}
				}),
			},
			want: []string{"pod default/precious is annotated karpenter.sh/do-not-disrupt"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kube := fake.NewClientset(append(tc.objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}})...)
			got, err := New(kube, nil, nil).Blockers(t.Context(), "node-1")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Blockers (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("a node marked do-not-disrupt", func(t *testing.T) {
		t.Parallel()
		kube := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Annotations: map[string]string{DoNotDisruptAnnotation: "true"}}})
		got, err := New(kube, nil, nil).Blockers(t.Context(), "node-1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"node node-1 is annotated karpenter.sh/do-not-disrupt"}, got); diff != "" {
			t.Errorf("Blockers (-want +got):\n%s", diff)
		}
	})
}
