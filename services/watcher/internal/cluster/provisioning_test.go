package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func podNames(s *clusterv1.Snapshot) []string {
	var out []string
	for _, p := range s.GetPods() {
		out = append(out, p.GetName())
	}
	slices.Sort(out)
	return out
}

// Provisioning (what the metrics poll) holds the pending pods, the
// NodeClaims and the NodePools, and follows pods as they are bound,
// unbound and deleted.
func TestProvisioningFollowsPendingPods(t *testing.T) {
	t.Parallel()
	bound := func(p *corev1.Pod) { p.Spec.NodeName = "node-1"; p.Status.Phase = corev1.PodRunning }
	e := start(t, []runtime.Object{
		pod("waiting"), pod("also-waiting"), pod("running", bound),
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}},
	}, nodeClaim("in-flight"))

	snap := e.c.Provisioning()
	if got, want := podNames(snap), []string{"also-waiting", "waiting"}; !slices.Equal(got, want) {
		t.Errorf("pods %v, want the pending ones %v", got, want)
	}
	if len(snap.GetNodeClaims()) != 1 || len(snap.GetNodes()) != 0 {
		t.Errorf("%d NodeClaims and %d nodes, want 1 and none", len(snap.GetNodeClaims()), len(snap.GetNodes()))
	}

	before := e.c.Changes()
	ctx := context.Background()
	p, err := e.kube.CoreV1().Pods("default").Get(ctx, "waiting", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bound(p)
	if _, err := e.kube.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.kube.CoreV1().Pods("default").Delete(ctx, "also-waiting", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kube.CoreV1().Pods("default").Create(ctx, pod("new"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string {
		if got, want := podNames(e.c.Provisioning()), []string{"new"}; !slices.Equal(got, want) {
			return fmt.Sprintf("pods %v, want %v", got, want)
		}
		return ""
	})
	if e.c.Changes() == before {
		t.Error("Changes did not move on pod changes")
	}
	// Current(false) still holds every pod.
	if got, want := podNames(e.c.Current(false)), []string{"new", "running", "waiting"}; !slices.Equal(got, want) {
		t.Errorf("Current(false) pods %v, want %v", got, want)
	}
}
