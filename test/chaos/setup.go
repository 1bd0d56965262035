package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/test/localenv"
	"github.com/flotilla-dev/flotilla/test/moto"
)

// The workload every cycle scales.
const (
	// Namespace, NodePool and EC2NodeClass of the harness.
	Namespace = "chaos"
	Pool      = "chaos"
	// App is the Deployment (and its PodDisruptionBudget).
	App = "app"
	// BaseReplicas pods of PodCPU fit one t3.medium; PeakReplicas need a
	// second one.
	BaseReplicas = 2
	PeakReplicas = 4
	PodCPU       = "600m"
	// InstanceType is the only type the NodePool allows (2 vCPU).
	InstanceType = "t3.medium"
	instanceCPU  = 2
	// LimitCPU is the NodePool's cpu limit: two nodes, what the peak needs.
	LimitCPU = 4
	// MinAvailable is the PodDisruptionBudget's: one of the two pods a
	// consolidation moves must stay up.
	MinAvailable = 1
)

var (
	nodePools   = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodepools"}
	nodeClaims  = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodeclaims"}
	nodeClasses = schema.GroupVersionResource{Group: "karpenter.k8s.aws", Version: "v1", Resource: "ec2nodeclasses"}
)

// Start starts planner, actuator and watcher (one replica each; the
// actuator's EC2 calls pass through the harness's proxy) in env, creates the
// NodePool, the Deployment and its PodDisruptionBudget, and waits until the
// Deployment's BaseReplicas pods run on one node. Call Close when done.
func Start(ctx context.Context, env *localenv.Env, o Options) (h *Harness, err error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	rc, err := env.RESTConfig()
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = 100, 200
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h = &Harness{
		env: env, kube: kube, dyn: dyn, ec2: ec2.NewFromConfig(env.AWSConfig()), logf: logf,
		cancel: cancel, expectDown: map[string]bool{},
	}
	defer func() {
		if err != nil {
			h.Close()
			h = nil
		}
	}()
	if h.proxy, err = startProxy(env.MotoEndpoint, func(action string, after bool) bool {
		if step, ok := ec2Step(action, after); ok {
			return h.observe(step, fmt.Sprintf("EC2 %s %s", action, map[bool]string{false: "request held", true: "answered"}[after]))
		}
		return false
	}); err != nil {
		return h, err
	}
	if trace, err := os.OpenFile(filepath.Join(env.Dir, "logs", "ec2-proxy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		h.proxy.trace = trace
		h.closers = append(h.closers, trace.Close)
	}
	if _, err := env.Prepare(ctx); err != nil {
		return h, err
	}
	procs, err := env.FlotillaProcesses(localenv.FlotillaOptions{BinDir: o.BinDir})
	if err != nil {
		return h, err
	}
	for _, p := range procs {
		if p.Name == localenv.ProcActuator {
			viaProxy(&p, env.MotoEndpoint, h.proxy.URL())
		}
		if err := env.StartProcess(ctx, p); err != nil {
			return h, err
		}
	}
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		followLog(bg, env.LogFile(localenv.ProcActuator), h.onActuatorLog)
	}()
	if h.mon, err = startMonitor(bg, h); err != nil {
		return h, err
	}
	if err := h.createWorkload(ctx); err != nil {
		return h, err
	}
	logf("waiting for %d pods on one node", BaseReplicas)
	if s, ok := h.waitSettled(ctx, BaseReplicas, 1, 3*time.Minute); !ok {
		return h, fmt.Errorf("workload did not come up: %s", s)
	}
	return h, nil
}

// viaProxy points a service process at the proxy instead of moto.
func viaProxy(p *localenv.Process, moto, proxy string) {
	for i, a := range p.Argv {
		if a == "--aws-endpoint="+moto {
			p.Argv[i] = "--aws-endpoint=" + proxy
		}
	}
	// The last value of a repeated variable wins.
	p.Env = append(p.Env, "AWS_ENDPOINT_URL="+proxy)
}

// Close stops the harness's goroutines and proxy (not the environment).
func (h *Harness) Close() {
	h.cancel()
	h.done.Wait()
	if h.proxy != nil {
		h.proxy.close()
	}
	for _, c := range h.closers {
		_ = c()
	}
}

// createWorkload makes the EC2NodeClass, the NodePool (limits, fast
// consolidation), the namespace, the PodDisruptionBudget and the
// Deployment.
func (h *Harness) createWorkload(ctx context.Context) error {
	class := map[string]any{
		"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": map[string]any{"name": Pool},
		"spec": map[string]any{
			"subnetSelectorTerms":        []any{map[string]any{"tags": map[string]any{moto.DiscoveryTag: h.env.ClusterName}}},
			"securityGroupSelectorTerms": []any{map[string]any{"tags": map[string]any{moto.DiscoveryTag: h.env.ClusterName}}},
			"amiSelectorTerms":           []any{map[string]any{"alias": "al2023@latest"}},
		},
	}
	pool := map[string]any{
		"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": map[string]any{"name": Pool},
		"spec": map[string]any{
			"template": map[string]any{"spec": map[string]any{
				"nodeClassRef": map[string]any{"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": Pool},
				"requirements": []any{
					map[string]any{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": []string{InstanceType}},
					map[string]any{"key": "karpenter.sh/capacity-type", "operator": "In", "values": []string{"on-demand"}},
				},
			}},
			"disruption": map[string]any{
				"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "5s",
				"budgets": []any{map[string]any{"nodes": "100%"}},
			},
			"limits": map[string]any{"cpu": fmt.Sprint(LimitCPU)},
		},
	}
	for _, obj := range []struct {
		gvr  schema.GroupVersionResource
		body map[string]any
	}{{nodeClasses, class}, {nodePools, pool}} {
		b, err := json.Marshal(obj.body)
		if err != nil {
			return err
		}
		force := true
		if _, err := h.dyn.Resource(obj.gvr).Patch(ctx, Pool, types.ApplyPatchType, b,
			metav1.PatchOptions{FieldManager: "chaos", Force: &force}); err != nil {
			return fmt.Errorf("apply %s: %w", obj.gvr.Resource, err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}
	if _, err := h.kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace: %w", err)
	}
	if err := poll(ctx, 30*time.Second, func() (bool, error) {
		_, err := h.kube.CoreV1().ServiceAccounts(Namespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("default service account: %w", err)
	}
	labels := map[string]string{"app": App}
	minAvailable := intstr.FromInt32(MinAvailable)
	if _, err := h.kube.PolicyV1().PodDisruptionBudgets(Namespace).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: App},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &minAvailable, Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("pdb: %w", err)
	}
	replicas, grace := int32(BaseReplicas), int64(0)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: App, Namespace: Namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					NodeSelector:                  map[string]string{"karpenter.sh/nodepool": Pool},
					Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU: resource.MustParse(PodCPU), corev1.ResourceMemory: resource.MustParse("256Mi")}}}},
				},
			},
		},
	}
	if _, err := h.kube.AppsV1().Deployments(Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("deployment: %w", err)
	}
	return nil
}

// scale sets the Deployment's replicas.
func (h *Harness) scale(ctx context.Context, replicas int) error {
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	return retry(ctx, func() error {
		_, err := h.kube.AppsV1().Deployments(Namespace).Patch(ctx, App, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	})
}

// retry retries f for up to two minutes (the apiserver may be restarting).
func retry(ctx context.Context, f func() error) error {
	var last error
	err := poll(ctx, 2*time.Minute, func() (bool, error) {
		last = f()
		return last == nil, nil
	})
	if err != nil && last != nil {
		return last
	}
	return err
}

// poll calls cond every 250ms until it holds, fails or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
