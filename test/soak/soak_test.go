package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/test/moto"
)

// Pod sizes the Deployments pick from (cpu, memory).
var sizes = [][2]string{{"50m", "64Mi"}, {"100m", "128Mi"}, {"200m", "256Mi"}, {"250m", "512Mi"}}

// meanCPU is the mean cpu request of sizes, in millicores.
const meanCPU = 150

const (
	pool      = "soak"
	namespace = "soak"
)

// TestSoak scales Deployments up and down at random for the soak's
// duration, checks the invariants every interval, then scales everything
// to zero and checks that the capacity goes.
func TestSoak(t *testing.T) {
	ctx := t.Context()
	rc, err := env.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = 100, 200
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	ec2c := ec2.NewFromConfig(env.AWSConfig())

	// The limit sits below the most the Deployments can ask for, so it is
	// reached and must hold.
	limitCPU := int64(*maxPods) * meanCPU * 3 / 4
	createPool(t, dyn, limitCPU)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "default ServiceAccount", func() bool {
		_, err := kube.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	rng := rand.New(rand.NewPCG(uint64(*seed), 0))
	perDeployment := max(1, 2**maxPods / *deployments)
	for i := range *deployments {
		size := sizes[rng.IntN(len(sizes))]
		createDeployment(t, kube, fmt.Sprintf("app-%02d", i), size[0], size[1])
	}

	c := newChecker(kube, dyn, ec2c, env.ClusterName, pool, namespace, limitCPU)
	if err := c.watchPods(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("soak: %s, %d Deployments, up to %d pods (%d per Deployment), cpu limit %dm, seed %d",
		*duration, *deployments, *maxPods, perDeployment, limitCPU, *seed)

	replicas := make([]int, *deployments)
	end := time.Now().Add(*duration)
	nextScale := time.Now()
	nextCheck := time.Now().Add(*interval)
	scalings := 0
	for time.Now().Before(end) {
		now := time.Now()
		if !now.Before(nextScale) {
			// Change one to three Deployments; keep the total under
			// maxPods.
			for range 1 + rng.IntN(3) {
				i := rng.IntN(*deployments)
				total := 0
				for j, r := range replicas {
					if j != i {
						total += r
					}
				}
				want := rng.IntN(perDeployment + 1)
				if rng.IntN(3) == 0 {
					want = 0 // scale-downs to zero empty nodes
				}
				want = min(want, *maxPods-total)
				scale(t, kube, fmt.Sprintf("app-%02d", i), want)
				replicas[i] = want
				scalings++
			}
			nextScale = now.Add(time.Duration(5+rng.IntN(16)) * time.Second)
		}
		if !now.Before(nextCheck) {
			if err := c.check(ctx, now); err != nil {
				t.Logf("check: %v", err)
			}
			nextCheck = now.Add(*interval)
			if c.checks%6 == 0 {
				total := 0
				for _, r := range replicas {
					total += r
				}
				t.Logf("soak %s: %d pods wanted, %+v", time.Until(end).Round(time.Second), total, c.counts())
			}
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Scale everything down: the capacity goes, nothing is left running.
	for i := range replicas {
		scale(t, kube, fmt.Sprintf("app-%02d", i), 0)
	}
	settle := time.Now()
	deadline := settle.Add(8 * time.Minute)
	for {
		if err := c.check(ctx, time.Now()); err != nil {
			t.Logf("check: %v", err)
		}
		claims, err := dyn.Resource(nodeClaimsGVR).List(ctx, metav1.ListOptions{LabelSelector: "karpenter.sh/nodepool=" + pool})
		insts, ierr := c.liveInstances(ctx)
		if err == nil && ierr == nil && len(claims.Items) == 0 && len(insts) == 0 {
			break
		}
		if time.Now().After(deadline) {
			n := -1
			if claims != nil {
				n = len(claims.Items)
			}
			t.Errorf("after scaling to zero: %d NodeClaims and %d instances left after %s", n, len(insts), deadline.Sub(settle))
			break
		}
		time.Sleep(*interval)
	}
	t.Logf("soak: %d scalings; everything gone %s after scaling to zero", scalings, time.Since(settle).Round(time.Second))
	t.Logf("soak report:\n%s", c.report())
	if got := c.counts(); got != (counts{}) {
		t.Errorf("invariants broken: %+v", got)
	}
}

func createPool(t *testing.T, dyn dynamic.Interface, limitCPU int64) {
	t.Helper()
	selector := map[string]any{"tags": map[string]any{moto.DiscoveryTag: env.ClusterName}}
	class := map[string]any{
		"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": map[string]any{"name": pool},
		"spec": map[string]any{
			"subnetSelectorTerms":        []any{selector},
			"securityGroupSelectorTerms": []any{selector},
			"amiSelectorTerms":           []any{map[string]any{"alias": "al2023@latest"}},
		},
	}
	np := map[string]any{
		"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": map[string]any{"name": pool},
		"spec": map[string]any{
			"template": map[string]any{"spec": map[string]any{
				"nodeClassRef": map[string]any{"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": pool},
				"requirements": []any{
					map[string]any{"key": "node.kubernetes.io/instance-type", "operator": "In",
						"values": []any{"c5.large", "c5.xlarge", "c5.2xlarge", "m5.large", "m5.xlarge", "m5.2xlarge", "r5.large"}},
					map[string]any{"key": "karpenter.sh/capacity-type", "operator": "In", "values": []any{"on-demand", "spot"}},
				},
			}},
			"disruption": map[string]any{
				"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "30s",
				"budgets": []any{map[string]any{"nodes": "20%"}},
			},
			"limits": map[string]any{"cpu": fmt.Sprintf("%dm", limitCPU)},
		},
	}
	for _, obj := range []map[string]any{class, np} {
		u := &unstructured.Unstructured{Object: obj}
		gvr := schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodepools"}
		if u.GetKind() == "EC2NodeClass" {
			gvr = schema.GroupVersionResource{Group: "karpenter.k8s.aws", Version: "v1", Resource: "ec2nodeclasses"}
		}
		body, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		force := true
		if _, err := dyn.Resource(gvr).Patch(t.Context(), u.GetName(), types.ApplyPatchType, body,
			metav1.PatchOptions{FieldManager: "soak", Force: &force}); err != nil {
			t.Fatalf("apply %s: %v", u.GetKind(), err)
		}
	}
}

// createDeployment creates a Deployment at zero replicas and a PDB that
// lets one of its pods be disrupted at a time.
func createDeployment(t *testing.T, kube kubernetes.Interface, name, cpu, memory string) {
	t.Helper()
	labels := map[string]string{"app": name}
	grace := int64(0)
	zero := int32(0)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					NodeSelector:                  map[string]string{"karpenter.sh/nodepool": pool},
					Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)}}}},
				},
			},
		},
	}
	if _, err := kube.AppsV1().Deployments(namespace).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	one := intstr.FromInt32(1)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}
	if _, err := kube.PolicyV1().PodDisruptionBudgets(namespace).Create(t.Context(), pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func scale(t *testing.T, kube kubernetes.Interface, name string, replicas int) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	if _, err := kube.AppsV1().Deployments(namespace).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Errorf("scale %s to %d: %v", name, replicas, err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
