package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/test/localenv"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// demoNodePool is the example the demo applies: general-purpose amd64
// capacity, spot or on-demand, consolidated when empty or under-used.
const demoNodePool = `apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata:
  name: demo
spec:
  role: KarpenterNodeRole-my-cluster
  amiSelectorTerms:
    - alias: al2023@latest
  subnetSelectorTerms:
    - tags: {karpenter.sh/discovery: my-cluster}
  securityGroupSelectorTerms:
    - tags: {karpenter.sh/discovery: my-cluster}
---
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: demo
spec:
  template:
    spec:
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: demo}
      requirements:
        - {key: kubernetes.io/arch, operator: In, values: [amd64]}
        - {key: karpenter.sh/capacity-type, operator: In, values: [spot, on-demand]}
        - {key: karpenter.k8s.aws/instance-category, operator: In, values: [c, m, r, t]}
        - {key: karpenter.k8s.aws/instance-generation, operator: Gt, values: ["4"]}
  limits: {cpu: "200"}
  disruption:
    consolidationPolicy: WhenEmptyOrUnderutilized
    consolidateAfter: 10s
`

var (
	nodePoolGVR  = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodepools"}
	nodeClassGVR = schema.GroupVersionResource{Group: "karpenter.k8s.aws", Version: "v1", Resource: "ec2nodeclasses"}
)

// demo shows Flotilla at work on a running environment: pending pods become
// nodes, and nodes go away when the pods do.
func demo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	dir := dirFlag(fs)
	replicas := fs.Int("replicas", 12, "pods to scale the demo Deployment to")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	_ = fs.Parse(args)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	env, err := localenv.Load(*dir)
	if err != nil {
		return fmt.Errorf("no environment in %s (run make up): %w", *dir, err)
	}
	rc, err := env.RESTConfig()
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	began := time.Now()
	say := func(format string, a ...any) {
		fmt.Fprintf(out, "[%6.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, a...))
	}

	if err := applyManifests(ctx, dyn, demoNodePool); err != nil {
		return err
	}
	say("applied EC2NodeClass demo and NodePool demo (amd64, spot or on-demand, c/m/r/t gen>4, limit 200 cpu)")

	var wg sync.WaitGroup
	wctx, stopWatch := context.WithCancel(ctx)
	defer func() { stopWatch(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchNodes(wctx, kube, say)
	}()

	deploy := demoDeployment()
	if err := ensureDeployment(ctx, kube, deploy); err != nil {
		return err
	}
	say("scaling Deployment demo/inflate to %d pods (1 cpu, 1.5Gi each)", *replicas)
	if err := scale(ctx, kube, *replicas); err != nil {
		return err
	}
	if err := waitRunning(ctx, kube, *replicas); err != nil {
		return err
	}
	say("all %d pods Running", *replicas)
	summary, err := nodeSummary(ctx, kube)
	if err != nil {
		return err
	}
	say("nodes: %s", summary)

	say("scaling demo/inflate to 0")
	if err := scale(ctx, kube, 0); err != nil {
		return err
	}
	err = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "karpenter.sh/nodepool=demo"})
		return err == nil && len(nodes.Items) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("nodes of NodePool demo still there: %w", err)
	}
	say("every node of NodePool demo is gone (empty nodes removed after consolidateAfter 10s)")
	stopWatch()
	wg.Wait()
	fmt.Fprintf(out, "\nDemo done. Try: . %s && kubectl get nodepools,nodeclaims,nodes   |   make down to stop\n", env.EnvFile())
	if jaeger := env.Vars[localenv.VarJaegerURL]; jaeger != "" {
		fmt.Fprintf(out, "Traces (Jaeger HTTP API; this build has no UI): curl '%s/api/traces?service=watcher&limit=20'\n", jaeger)
	}
	for _, svc := range []string{"planner", "actuator", "watcher"} {
		if u := env.MetricsURL(svc); u != "" {
			fmt.Fprintf(out, "Metrics of the %s: curl %s\n", svc, u)
		}
	}
	return nil
}

func applyManifests(ctx context.Context, dyn dynamic.Interface, manifests string) error {
	for _, doc := range strings.Split(manifests, "\n---\n") {
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			return fmt.Errorf("demo manifest: %w", err)
		}
		gvr := nodePoolGVR
		if obj.GetKind() == "EC2NodeClass" {
			gvr = nodeClassGVR
		}
		data, err := obj.MarshalJSON()
		if err != nil {
			return err
		}
		force := true
		if _, err := dyn.Resource(gvr).Patch(ctx, obj.GetName(), types.ApplyPatchType, data,
			metav1.PatchOptions{FieldManager: "flotilla-demo", Force: &force}); err != nil {
			return fmt.Errorf("apply %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	return nil
}

func demoDeployment() *appsv1.Deployment {
	labels := map[string]string{"app": "inflate"}
	zero := int32(0)
	grace := int64(0)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "inflate", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					NodeSelector:                  map[string]string{"karpenter.sh/nodepool": "demo"},
					Containers: []corev1.Container{{
						Name: "inflate", Image: "registry.k8s.io/pause:3.10",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1536Mi")}},
					}},
				},
			},
		},
	}
}

func ensureDeployment(ctx context.Context, kube kubernetes.Interface, d *appsv1.Deployment) error {
	_, err := kube.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func scale(ctx context.Context, kube kubernetes.Interface, n int) error {
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
	_, err := kube.AppsV1().Deployments("default").Patch(ctx, "inflate", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

func waitRunning(ctx context.Context, kube kubernetes.Interface, n int) error {
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=inflate"})
		if err != nil {
			return false, nil
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
		}
		return running == n, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %d pods to run: %w", n, err)
	}
	return nil
}

func nodeSummary(ctx context.Context, kube kubernetes.Interface) (string, error) {
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "karpenter.sh/nodepool=demo"})
	if err != nil {
		return "", err
	}
	count := map[string]int{}
	for _, n := range nodes.Items {
		count[n.Labels[corev1.LabelInstanceTypeStable]+" "+n.Labels["karpenter.sh/capacity-type"]]++
	}
	var parts []string
	for k, v := range count {
		parts = append(parts, fmt.Sprintf("%d × %s", v, k))
	}
	slices.Sort(parts)
	return fmt.Sprintf("%d (%s)", len(nodes.Items), strings.Join(parts, ", ")), nil
}

// watchNodes prints nodes of the demo NodePool as they register and go.
func watchNodes(ctx context.Context, kube kubernetes.Interface, say func(string, ...any)) {
	seen := map[string]bool{}
	for ctx.Err() == nil {
		w, err := kube.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{LabelSelector: "karpenter.sh/nodepool=demo"})
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		for ev := range w.ResultChan() {
			n, ok := ev.Object.(*corev1.Node)
			if !ok {
				continue
			}
			desc := fmt.Sprintf("%s  %s %s %s", n.Name, n.Labels[corev1.LabelInstanceTypeStable],
				n.Labels[corev1.LabelTopologyZone], n.Labels["karpenter.sh/capacity-type"])
			switch {
			case ev.Type == watch.Deleted:
				say("- node %s removed", desc)
				delete(seen, n.Name)
			case !seen[n.Name]:
				seen[n.Name] = true
				say("+ node %s registered", desc)
			}
		}
		w.Stop()
	}
}
