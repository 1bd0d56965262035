package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flotilla-dev/flotilla/test/moto"
)

// poolOptions shape the NodePool and EC2NodeClass of one test.
type poolOptions struct {
	// InstanceTypes and CapacityTypes the NodePool allows.
	InstanceTypes []string
	CapacityTypes []string
	// Policy is WhenEmpty or WhenEmptyOrUnderutilized.
	Policy           string
	ConsolidateAfter string
	// Budgets are the NodePool's disruption budgets (default: 100%, so
	// only the behaviour under test limits disruption).
	Budgets []map[string]any
	// InterruptionQueue is the EC2NodeClass's spec.interruptionQueue.
	InterruptionQueue string
	// Limits are the NodePool's spec.limits (none when nil).
	Limits map[string]any
}

// testPool creates an EC2NodeClass and a NodePool of the given name for
// one test; at its end the NodePool goes and the test waits until its
// NodeClaims are gone, so that tests never see each other's nodes.
func testPool(t *testing.T, name string, o poolOptions) {
	t.Helper()
	if len(o.CapacityTypes) == 0 {
		o.CapacityTypes = []string{"on-demand"}
	}
	if o.Policy == "" {
		o.Policy = "WhenEmpty"
	}
	if o.ConsolidateAfter == "" {
		o.ConsolidateAfter = "5s"
	}
	if o.Budgets == nil {
		o.Budgets = []map[string]any{{"nodes": "100%"}}
	}
	class := map[string]any{
		"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"subnetSelectorTerms":        []any{map[string]any{"tags": map[string]any{moto.DiscoveryTag: w.env.ClusterName}}},
			"securityGroupSelectorTerms": []any{map[string]any{"tags": map[string]any{moto.DiscoveryTag: w.env.ClusterName}}},
			"amiSelectorTerms":           []any{map[string]any{"alias": "al2023@latest"}},
		},
	}
	if o.InterruptionQueue != "" {
		class["spec"].(map[string]any)["interruptionQueue"] = o.InterruptionQueue
	}
	pool := map[string]any{
		"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"template": map[string]any{"spec": map[string]any{
				"nodeClassRef": map[string]any{"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": name},
				"requirements": []any{
					map[string]any{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": o.InstanceTypes},
					map[string]any{"key": "karpenter.sh/capacity-type", "operator": "In", "values": o.CapacityTypes},
				},
			}},
			"disruption": map[string]any{
				"consolidationPolicy": o.Policy, "consolidateAfter": o.ConsolidateAfter, "budgets": o.Budgets,
			},
		},
	}
	if o.Limits != nil {
		pool["spec"].(map[string]any)["limits"] = o.Limits
	}
	t.Cleanup(func() { waitPoolGone(t, name) })
	apply(t, class)
	apply(t, pool)
}

// apply server-side applies an object (deleted when the test ends).
func apply(t *testing.T, obj map[string]any) {
	t.Helper()
	u := &unstructured.Unstructured{Object: obj}
	gvr, ok := resourceNames[u.GetKind()]
	if !ok {
		t.Fatalf("no resource for kind %s", u.GetKind())
	}
	body, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	force := true
	if _, err := w.dyn.Resource(gvr).Patch(context.Background(), u.GetName(), types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: "e2e", Force: &force}); err != nil {
		t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	t.Cleanup(func() { _ = w.dyn.Resource(gvr).Delete(context.Background(), u.GetName(), metav1.DeleteOptions{}) })
}

// patchPool merge-patches a NodePool's spec.
func patchPool(t *testing.T, name string, spec map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"spec": spec})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.dyn.Resource(nodePools).Patch(context.Background(), name, types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch nodepool %s: %v", name, err)
	}
}

// waitPoolGone waits until the NodeClaims of a NodePool are gone (the
// NodePool itself is deleted by apply's cleanup, which runs first).
func waitPoolGone(t *testing.T, pool string) {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if len(poolClaims(t, pool)) == 0 {
			return
		}
		// NodeClaims the garbage collector has not reached yet.
		for _, c := range poolClaims(t, pool) {
			_ = w.dyn.Resource(nodeClaims).Delete(context.Background(), c.GetName(), metav1.DeleteOptions{})
		}
		time.Sleep(time.Second)
	}
	t.Errorf("nodeclaims of nodepool %s still there 90s after the test", pool)
}

// poolClaims returns the NodeClaims of a NodePool.
func poolClaims(t *testing.T, pool string) []unstructured.Unstructured {
	t.Helper()
	list, err := w.dyn.Resource(nodeClaims).List(context.Background(), metav1.ListOptions{LabelSelector: "karpenter.sh/nodepool=" + pool})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// poolNodes returns the Nodes of a NodePool.
func poolNodes(t *testing.T, pool string) []corev1.Node {
	t.Helper()
	list, err := w.kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: "karpenter.sh/nodepool=" + pool})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// workload creates a Deployment of replicas pods of cpu each, pinned to a
// NodePool; change adjusts it before it is created.
func workload(t *testing.T, ns, name, pool string, replicas int32, cpu string, change ...func(*appsv1.Deployment)) {
	t.Helper()
	labels := map[string]string{"app": name}
	grace := int64(0)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					NodeSelector:                  map[string]string{"karpenter.sh/nodepool": pool},
					Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("256Mi")}}}},
				},
			},
		},
	}
	for _, c := range change {
		c(d)
	}
	if _, err := w.kube.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// runningOn returns the namespace's Running pods by node.
func runningOn(t *testing.T, ns string) map[string][]string {
	t.Helper()
	running, _ := pods(t, ns)
	out := map[string][]string{}
	for _, p := range running {
		out[p.Spec.NodeName] = append(out[p.Spec.NodeName], p.Name)
	}
	return out
}

// spreadOnePerNode runs a Deployment of 600m pods in a NodePool of
// t3.medium nodes (three fit a node) and scales it down to one pod on each
// of two nodes: two under-utilised nodes whose pods fit on one. It returns
// the two nodes.
func spreadOnePerNode(t *testing.T, ns, name, pool string, change ...func(*appsv1.Deployment)) []string {
	t.Helper()
	workload(t, ns, name, pool, 4, "600m", change...)
	eventually(t, 90*time.Second, "4 pods Running on 2 nodes", func() (bool, string) {
		on := runningOn(t, ns)
		n := 0
		for _, ps := range on {
			n += len(ps)
		}
		return n == 4 && len(on) == 2, fmt.Sprintf("running by node: %v", on)
	})
	// Keep one pod on each node: the ReplicaSet deletes the cheapest first.
	var nodes []string
	for node, ps := range runningOn(t, ns) {
		nodes = append(nodes, node)
		slices.Sort(ps)
		for i, p := range ps {
			cost := "-1000"
			if i == 0 {
				cost = "1000"
			}
			patch := fmt.Sprintf(`{"metadata":{"annotations":{"controller.kubernetes.io/pod-deletion-cost":%q}}}`, cost)
			if _, err := w.kube.CoreV1().Pods(ns).Patch(context.Background(), p, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.Sort(nodes)
	scale(t, ns, name, 2)
	eventually(t, 30*time.Second, "one pod on each of two nodes", func() (bool, string) {
		on := runningOn(t, ns)
		return len(on) == 2 && len(on[nodes[0]]) == 1 && len(on[nodes[1]]) == 1, fmt.Sprintf("running by node: %v", on)
	})
	return nodes
}

// disrupting returns the pool's NodeClaims being deleted and Nodes
// tainted karpenter.sh/disrupted.
func disrupting(t *testing.T, pool string) []string {
	t.Helper()
	var out []string
	for _, c := range poolClaims(t, pool) {
		if c.GetDeletionTimestamp() != nil {
			out = append(out, "nodeclaim/"+c.GetName())
		}
	}
	for _, n := range poolNodes(t, pool) {
		for _, taint := range n.Spec.Taints {
			if taint.Key == "karpenter.sh/disrupted" {
				out = append(out, "node/"+n.Name)
			}
		}
	}
	return out
}

// holds checks for d that cond keeps holding (polling every 500ms).
func holds(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if ok, why := cond(); !ok {
			t.Fatalf("%s stopped holding: %s", what, why)
		}
	}
}

// claimEvents returns the events recorded on a pool's NodeClaims, "reason:
// message".
func claimEvents(t *testing.T, pool string) []string {
	t.Helper()
	var out []string
	for _, c := range poolClaims(t, pool) {
		list, err := w.kube.CoreV1().Events("").List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.kind=NodeClaim,involvedObject.name=" + c.GetName()})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

// eventMentioning waits for an event on a pool's NodeClaims that contains
// every one of words.
func eventMentioning(t *testing.T, pool string, timeout time.Duration, words ...string) string {
	t.Helper()
	var found string
	eventually(t, timeout, fmt.Sprintf("a NodeClaim event mentioning %q", words), func() (bool, string) {
		events := claimEvents(t, pool)
		for _, e := range events {
			if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(e, w) }) {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("events: %v", events)
	})
	return found
}

// onDemandPrice is the us-east-1 on-demand price of the instance types the
// tests use ($/h).
var onDemandPrice = map[string]float64{"t3.small": 0.0208, "t3.medium": 0.0416, "t3.large": 0.0832, "t3.xlarge": 0.1664}

// poolPrice is what a NodePool's nodes cost per hour, on demand.
func poolPrice(t *testing.T, pool string) float64 {
	t.Helper()
	total := 0.0
	for _, n := range poolNodes(t, pool) {
		p, ok := onDemandPrice[n.Labels["node.kubernetes.io/instance-type"]]
		if !ok {
			t.Fatalf("no price for %s", n.Labels["node.kubernetes.io/instance-type"])
		}
		total += p
	}
	return total
}
