package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The disruption tests each use a NodePool and namespace of their own and
// run in parallel with each other (after the package's serial tests). The
// pools consolidate after 5s; the watcher validates a consolidation for 5s
// (its default) before the actuator acts.

// blockFor is how long a blocked consolidation is watched not happening:
// well past consolidateAfter (5s) plus the validation (5s).
const blockFor = 25 * time.Second

// TestEmptyNodeRemoval: nodes a scale-down empties go; the busy one stays.
func TestEmptyNodeRemoval(t *testing.T) {
	t.Parallel()
	const pool = "e2e-empty"
	testPool(t, pool, poolOptions{InstanceTypes: []string{"t3.medium"}, Policy: "WhenEmpty"})
	ns := namespace(t, pool)
	// 1.5 cpu: one pod per t3.medium.
	workload(t, ns, "app", pool, 3, "1500m")
	eventually(t, 90*time.Second, "3 pods Running on 3 nodes", func() (bool, string) {
		on := runningOn(t, ns)
		return len(on) == 3, fmt.Sprintf("running by node: %v", on)
	})
	scale(t, ns, "app", 1)
	began := time.Now()
	took := eventually(t, 90*time.Second, "the two emptied nodes removed", func() (bool, string) {
		nodes, claims, on := poolNodes(t, pool), poolClaims(t, pool), runningOn(t, ns)
		return len(nodes) == 1 && len(claims) == 1 && len(on) == 1 && on[nodes[0].Name] != nil,
			fmt.Sprintf("%d nodes, %d nodeclaims, running by node %v", len(nodes), len(claims), on)
	})
	t.Logf("scale 3 → 1: the 2 empty nodes gone %s after the scale-down (consolidateAfter 5s + validation 5s)", took.Round(time.Millisecond))
	_ = began
}

// TestScaleDownConsolidates: after a scale-down leaves two nodes a pod
// each, the pods end up on fewer, cheaper nodes, all Running.
func TestScaleDownConsolidates(t *testing.T) {
	t.Parallel()
	const pool = "e2e-consolidate"
	testPool(t, pool, poolOptions{InstanceTypes: []string{"t3.medium", "t3.large"}, Policy: "WhenEmptyOrUnderutilized"})
	ns := namespace(t, pool)
	spreadOnePerNode(t, ns, "app", pool)
	before := poolPrice(t, pool)
	took := eventually(t, 90*time.Second, "2 pods Running on 1 node", func() (bool, string) {
		on, nodes := runningOn(t, ns), poolNodes(t, pool)
		running := 0
		for _, ps := range on {
			running += len(ps)
		}
		return len(nodes) == 1 && running == 2 && len(on) == 1 && len(poolClaims(t, pool)) == 1,
			fmt.Sprintf("%d nodes, running by node %v", len(nodes), on)
	})
	after := poolPrice(t, pool)
	if after >= before {
		t.Errorf("cost $%.4f/h after consolidation, want less than $%.4f/h before", after, before)
	}
	_, pending := pods(t, ns)
	if len(pending) != 0 {
		t.Errorf("%d pods pending after consolidation", len(pending))
	}
	t.Logf("2 under-utilised nodes → 1 in %s; $%.4f/h → $%.4f/h", took.Round(time.Millisecond), before, after)
}

// TestPDBBlocksConsolidation: a PodDisruptionBudget that allows no
// disruption keeps both under-utilised nodes, and says so; without it they
// consolidate.
func TestPDBBlocksConsolidation(t *testing.T) {
	t.Parallel()
	const pool = "e2e-pdb"
	testPool(t, pool, poolOptions{InstanceTypes: []string{"t3.medium"}, Policy: "WhenEmptyOrUnderutilized"})
	ns := namespace(t, pool)
	all := intstr.FromInt32(2)
	if _, err := w.kube.PolicyV1().PodDisruptionBudgets(ns).Create(context.Background(), &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &all, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	spreadOnePerNode(t, ns, "app", pool)
	event := eventMentioning(t, pool, 60*time.Second, "PDB", "allows 0 disruptions")
	holds(t, blockFor, "two nodes, nothing disrupted", func() (bool, string) {
		nodes, d := poolNodes(t, pool), disrupting(t, pool)
		return len(nodes) == 2 && len(d) == 0, fmt.Sprintf("%d nodes, disrupting %v", len(nodes), d)
	})
	t.Logf("blocked for %s; the NodeClaim says %q", blockFor, event)

	// The budget goes: the nodes consolidate.
	if err := w.kube.PolicyV1().PodDisruptionBudgets(ns).Delete(context.Background(), "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 90*time.Second, "one node once the PDB is gone", func() (bool, string) {
		nodes, on := poolNodes(t, pool), runningOn(t, ns)
		return len(nodes) == 1 && len(on) == 1 && len(on[nodes[0].Name]) == 2, fmt.Sprintf("%d nodes, running by node %v", len(nodes), on)
	})
	t.Logf("consolidated %s after the PDB went", took.Round(time.Millisecond))
}

// TestDoNotDisruptBlocksConsolidation: pods annotated
// karpenter.sh/do-not-disrupt keep their nodes; without it they
// consolidate.
func TestDoNotDisruptBlocksConsolidation(t *testing.T) {
	t.Parallel()
	const pool = "e2e-do-not-disrupt"
	testPool(t, pool, poolOptions{InstanceTypes: []string{"t3.medium"}, Policy: "WhenEmptyOrUnderutilized"})
	ns := namespace(t, pool)
	spreadOnePerNode(t, ns, "app", pool, func(d *appsv1.Deployment) {
		d.Spec.Template.Annotations = map[string]string{"karpenter.sh/do-not-disrupt": "true"}
	})
	event := eventMentioning(t, pool, 60*time.Second, "has karpenter.sh/do-not-disrupt")
	holds(t, blockFor, "two nodes, nothing disrupted", func() (bool, string) {
		nodes, d := poolNodes(t, pool), disrupting(t, pool)
		return len(nodes) == 2 && len(d) == 0, fmt.Sprintf("%d nodes, disrupting %v", len(nodes), d)
	})
	t.Logf("blocked for %s; the NodeClaim says %q", blockFor, event)

	// The annotation goes from the running pods: they consolidate.
	running, _ := pods(t, ns)
	for _, p := range running {
		patch := []byte(`{"metadata":{"annotations":{"karpenter.sh/do-not-disrupt":null}}}`)
		if _, err := w.kube.CoreV1().Pods(ns).Patch(context.Background(), p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	took := eventually(t, 90*time.Second, "one node once the pods may be disrupted", func() (bool, string) {
		nodes, on := poolNodes(t, pool), runningOn(t, ns)
		return len(nodes) == 1 && len(on) == 1 && len(on[nodes[0].Name]) == 2, fmt.Sprintf("%d nodes, running by node %v", len(nodes), on)
	})
	t.Logf("consolidated %s after the annotation went", took.Round(time.Millisecond))
}

// TestBudgetWindowBlocksConsolidation: a budget of 0 nodes in a daily cron
// window that is open now holds every consolidation back; without it the
// nodes consolidate.
func TestBudgetWindowBlocksConsolidation(t *testing.T) {
	t.Parallel()
	const pool = "e2e-budget"
	// A daily window that opened a minute ago and lasts an hour.
	opened := time.Now().UTC().Add(-time.Minute)
	window := map[string]any{"nodes": "0", "schedule": fmt.Sprintf("%d %d * * *", opened.Minute(), opened.Hour()), "duration": "1h"}
	testPool(t, pool, poolOptions{InstanceTypes: []string{"t3.medium"}, Policy: "WhenEmptyOrUnderutilized",
		Budgets: []map[string]any{{"nodes": "100%"}, window}})
	ns := namespace(t, pool)
	spreadOnePerNode(t, ns, "app", pool)
	event := eventMentioning(t, pool, 60*time.Second, "disruption budget", "allows no more now")
	holds(t, blockFor, "two nodes, nothing disrupted", func() (bool, string) {
		nodes, d := poolNodes(t, pool), disrupting(t, pool)
		return len(nodes) == 2 && len(d) == 0, fmt.Sprintf("%d nodes, disrupting %v", len(nodes), d)
	})
	t.Logf("blocked for %s by the window %v; the NodeClaim says %q", blockFor, window["schedule"], event)

	patchPool(t, pool, map[string]any{"disruption": map[string]any{"budgets": []any{map[string]any{"nodes": "100%"}}}})
	took := eventually(t, 90*time.Second, "one node once the window is gone", func() (bool, string) {
		nodes, on := poolNodes(t, pool), runningOn(t, ns)
		return len(nodes) == 1 && len(on) == 1 && len(on[nodes[0].Name]) == 2, fmt.Sprintf("%d nodes, running by node %v", len(nodes), on)
	})
	t.Logf("consolidated %s after the window went", took.Round(time.Millisecond))
}

// claimImages returns the image id of each of a pool's NodeClaims.
func claimImages(t *testing.T, pool string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range poolClaims(t, pool) {
		id, _, _ := unstructured.NestedString(c.Object, "status", "imageID")
		out[c.GetName()] = id
	}
	return out
}

// TestDriftReplacesOneBudgetAtATime: after the node class's AMI changes,
// every node is replaced by one on the new image, never more than the
// budget's one at a time, and the pods keep running.
func TestDriftReplacesOneBudgetAtATime(t *testing.T) {
	t.Parallel()
	const pool = "e2e-drift"
	testPool(t, pool, poolOptions{InstanceTypes: []string{"t3.medium"}, Policy: "WhenEmpty",
		Budgets: []map[string]any{{"nodes": "1"}}})
	ns := namespace(t, pool)
	workload(t, ns, "app", pool, 3, "1500m")
	eventually(t, 90*time.Second, "3 pods Running on 3 nodes", func() (bool, string) {
		on := runningOn(t, ns)
		return len(on) == 3, fmt.Sprintf("running by node: %v", on)
	})
	old := claimImages(t, pool)
	// Replacement NodeClaims may reuse a name once its first holder is gone
	// (names derive from the plan); the originals are known by UID.
	oldUIDs := map[string]string{}
	for _, c := range poolClaims(t, pool) {
		oldUIDs[string(c.GetUID())] = c.GetName()
	}
	var oldImage string
	for _, id := range old {
		oldImage = id
	}
	newImage := otherImage(t, oldImage)
	apply(t, map[string]any{
		"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": map[string]any{"name": pool},
		"spec": map[string]any{
			"subnetSelectorTerms":        []any{map[string]any{"tags": map[string]any{"karpenter.sh/discovery": w.env.ClusterName}}},
			"securityGroupSelectorTerms": []any{map[string]any{"tags": map[string]any{"karpenter.sh/discovery": w.env.ClusterName}}},
			"amiFamily":                  "AL2023",
			"amiSelectorTerms":           []any{map[string]any{"id": newImage}},
		},
	})
	began := time.Now()
	most := 0
	took := eventually(t, 4*time.Minute, "every node on the new image, pods Running", func() (bool, string) {
		// Old NodeClaims being taken down at the same time.
		claims := poolClaims(t, pool)
		going := 0
		for _, c := range claims {
			if _, isOld := oldUIDs[string(c.GetUID())]; isOld && c.GetDeletionTimestamp() != nil {
				going++
			}
		}
		most = max(most, going)
		if going > 1 {
			t.Fatalf("%d drifted nodes disrupted at once; the budget allows 1", going)
		}
		images := claimImages(t, pool)
		on := runningOn(t, ns)
		running := 0
		for _, ps := range on {
			running += len(ps)
		}
		for name, id := range images {
			if id != newImage {
				return false, fmt.Sprintf("nodeclaim %s on %s; %d running", name, id, running)
			}
		}
		return len(images) == 3 && running == 3 && len(on) == 3, fmt.Sprintf("%d nodeclaims, running by node %v", len(images), on)
	})
	t.Logf("AMI %s → %s: 3 nodes replaced in %s, at most %d at a time", oldImage, newImage, took.Round(time.Millisecond), most)
	_ = began
	for uid, name := range oldUIDs {
		if slices.ContainsFunc(poolClaims(t, pool), func(c unstructured.Unstructured) bool { return string(c.GetUID()) == uid }) {
			t.Errorf("old nodeclaim %s (uid %s) still there", name, uid)
		}
	}
}
