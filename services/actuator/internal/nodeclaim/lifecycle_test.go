package nodeclaim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"github.com/flotilla-dev/flotilla/test/localenv"
	"k8s.io/client-go/util/retry"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/middleware"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	"github.com/flotilla-dev/flotilla/api/crds"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/bootstrap"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/drain"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/instance"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/karpenter"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclass"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/offering"
	"github.com/flotilla-dev/flotilla/test/moto"
)

// KubeconfigEnv names a kubeconfig of a running API server for the
// lifecycle tests; without it they start a local control plane of their own
// (test/localenv; no simulated kubelet: the tests play the kubelet).
const KubeconfigEnv = "KUBECONFIG_FLOTILLA_TEST"

var server *moto.Server

// kube is the package's own control plane, started by the first test that
// needs one.
var kube struct {
	once sync.Once
	env  *localenv.Env
	err  error
}

func TestMain(m *testing.M) { moto.Main(stopEnvAfter{m}, &server) }

type stopEnvAfter struct{ m *testing.M }

func (s stopEnvAfter) Run() int {
	code := s.m.Run()
	if kube.env != nil {
		_ = kube.env.Stop(context.Background())
	}
	return code
}

// lifecycle is one test's world: a real API server, moto, and a
// Controller wired to both.
type lifecycle struct {
	name   string
	kube   kubernetes.Interface
	crd    *karpenter.Client
	ec2    *ec2.Client
	ctrl   *Controller
	cancel context.CancelFunc
	done   chan struct{}
}

func restConfig(t *testing.T) *rest.Config {
	t.Helper()
	path := os.Getenv(KubeconfigEnv)
	if path == "" {
		kube.once.Do(func() {
			kube.env, kube.err = localenv.Start(context.Background(), localenv.Options{NoKubelet: true})
		})
		if errors.Is(kube.err, localenv.ErrNotBuilt) {
			t.Skipf("no API server for the NodeClaim lifecycle tests: %v", kube.err)
		}
		if kube.err != nil {
			t.Fatalf("start a local control plane: %v", kube.err)
		}
		cfg, err := kube.env.RESTConfig()
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var installCRDs sync.Once

// ensureCRDs creates (or updates) Flotilla's CRDs and waits until they
// serve.
func ensureCRDs(t *testing.T, cfg *rest.Config) {
	t.Helper()
	var err error
	installCRDs.Do(func() {
		dyn, derr := dynamic.NewForConfig(cfg)
		if derr != nil {
			err = derr
			return
		}
		gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
		ctx := context.Background()
		for _, m := range crds.All() {
			if !strings.HasPrefix(m.Name, "karpenter.sh_") && !strings.Contains(m.Name, "ec2nodeclasses") {
				continue
			}
			obj := &unstructured.Unstructured{}
			if err = yaml.Unmarshal(m.Data, &obj.Object); err != nil {
				return
			}
			existing, gerr := dyn.Resource(gvr).Get(ctx, obj.GetName(), metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(gerr):
				_, err = dyn.Resource(gvr).Create(ctx, obj, metav1.CreateOptions{})
			case gerr == nil:
				obj.SetResourceVersion(existing.GetResourceVersion())
				_, err = dyn.Resource(gvr).Update(ctx, obj, metav1.UpdateOptions{})
			default:
				err = gerr
			}
			if err != nil {
				return
			}
		}
		crd, cerr := karpenter.NewClient(cfg)
		if cerr != nil {
			err = cerr
			return
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, lerr := crd.ListNodeClaims(ctx); lerr == nil {
				return
			} else if time.Now().After(deadline) {
				err = lerr
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	if err != nil {
		t.Fatalf("install CRDs: %v", err)
	}
}

func newLifecycle(t *testing.T, cpuLimit string, apiOptions ...func(*middleware.Stack) error) *lifecycle {
	t.Helper()
	cfg := restConfig(t)
	ensureCRDs(t, cfg)
	ctx := t.Context()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	l := &lifecycle{name: "lc-" + hex.EncodeToString(suffix)}
	var err error
	if l.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if l.crd, err = karpenter.NewClient(cfg); err != nil {
		t.Fatal(err)
	}
	awsCfg, err := server.Config(ctx, apiOptions...)
	if err != nil {
		t.Fatal(err)
	}
	l.ec2 = ec2.NewFromConfig(awsCfg)
	ssmClient := ssm.NewFromConfig(awsCfg)
	if _, err := moto.CreateNetwork(ctx, l.ec2, l.name); err != nil {
		t.Fatal(err)
	}
	if _, err := moto.SeedAMIParameters(ctx, ssmClient, moto.AMIParameterPrefix, "1.33"); err != nil {
		t.Fatal(err)
	}

	selector := map[string]string{moto.DiscoveryTag: l.name}
	class := &awsv1.EC2NodeClass{ObjectMeta: metav1.ObjectMeta{Name: l.name}, Spec: awsv1.EC2NodeClassSpec{
		SubnetSelectorTerms:        []awsv1.SubnetSelectorTerm{{Tags: selector}},
		SecurityGroupSelectorTerms: []awsv1.SecurityGroupSelectorTerm{{Tags: selector}},
		AMISelectorTerms:           []awsv1.AMISelectorTerm{{Alias: "al2023@latest"}},
	}}
	pool := &karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: l.name}, Spec: karpv1.NodePoolSpec{
		Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
			Requirements: []karpv1.NodeSelectorRequirementWithMinValues{req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, "on-demand")},
			NodeClassRef: karpv1.NodeClassReference{Group: awsv1.Group, Kind: "EC2NodeClass", Name: l.name},
		}},
		Limits: karpv1.Limits{corev1.ResourceCPU: resource.MustParse(cpuLimit)},
	}}
	create(t, cfg, awsv1.SchemeGroupVersion, karpenter.EC2NodeClasses, class)
	create(t, cfg, karpv1.SchemeGroupVersion, karpenter.NodePools, pool)

	unavailable := offering.NewUnavailable(0, nil)
	catalog := offering.NewCatalog(l.ec2, offering.CatalogOptions{Region: moto.Region, Unavailable: unavailable})
	resolver := nodeclass.NewResolver(l.ec2, ssmClient, nodeclass.Options{AMIParameterPrefix: moto.AMIParameterPrefix, KubernetesVersion: "1.33"})
	provider := instance.New(l.ec2, instance.Options{ClusterName: l.name, Unavailable: unavailable})
	l.ctrl = New(l.kube, l.crd, provider, resolver, catalog, drain.New(l.kube, nil, nil), Options{
		Cluster: bootstrap.Cluster{Name: l.name, APIServerEndpoint: cfg.Host, CIDR: "10.96.0.0/16"},
		Workers: 2,
	})
	runCtx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		if err := l.ctrl.Run(runCtx); err != nil {
			t.Errorf("controller: %v", err)
		}
	}()
	t.Cleanup(func() {
		cleanup := context.Background()
		_ = l.crd.DeleteNodeClaim(cleanup, l.name+"-a")
		_ = l.crd.DeleteNodeClaim(cleanup, l.name+"-b")
		_ = l.crd.DeleteNodeClaim(cleanup, l.name+"-c")
		// Let the controller finalize what is left before it stops.
		waitFor(t, "nodeclaims gone", func() (bool, error) {
			claims, err := l.crd.ListNodeClaims(cleanup)
			for _, c := range claims {
				if strings.HasPrefix(c.Name, l.name) {
					return false, err
				}
			}
			return true, err
		})
		l.cancel()
		<-l.done
		del(cfg, karpv1.SchemeGroupVersion, karpenter.NodePools, l.name)
		del(cfg, awsv1.SchemeGroupVersion, karpenter.EC2NodeClasses, l.name)
	})
	if err := l.ctrl.WaitStarted(ctx); err != nil {
		t.Fatal(err)
	}
	return l
}

func rawClient(t testing.TB, cfg *rest.Config, gv schema.GroupVersion) rest.Interface {
	c := rest.CopyConfig(cfg)
	c.GroupVersion, c.APIPath = &gv, "/apis"
	c.NegotiatedSerializer = karpenter.Codecs()
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func create(t *testing.T, cfg *rest.Config, gv schema.GroupVersion, resource string, obj any) {
	t.Helper()
	if err := rawClient(t, cfg, gv).Post().Resource(resource).Body(obj).Do(t.Context()).Error(); err != nil {
		t.Fatalf("create %s: %v", resource, err)
	}
}

func del(cfg *rest.Config, gv schema.GroupVersion, resource, name string) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion, c.APIPath = &gv, "/apis"
	c.NegotiatedSerializer = karpenter.Codecs()
	if rc, err := rest.RESTClientFor(c); err == nil {
		_ = rc.Delete().Resource(resource).Name(name).Do(context.Background()).Error()
	}
}

func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error %v)", what, last)
}

func (l *lifecycle) plan(name, instanceType string) *clusterv1.NodeClaimPlan {
	return &clusterv1.NodeClaimPlan{
		Name: name, NodePool: l.name, InstanceType: instanceType,
		Options: []*clusterv1.InstanceOption{{InstanceType: instanceType, Zone: "us-east-1a", CapacityType: "on-demand"}},
	}
}

// join plays the kubelet: a Node for the instance, registered with the
// unregistered taint, Ready.
func (l *lifecycle) join(t *testing.T, claim *karpv1.NodeClaim) *corev1.Node {
	t.Helper()
	name := "ip-" + strings.ReplaceAll(claim.Name, ".", "-")
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Spec: corev1.NodeSpec{ProviderID: claim.Status.ProviderID, Taints: []corev1.Taint{
			{Key: karpv1.UnregisteredTaintKey, Effect: corev1.TaintEffectNoExecute},
		}},
	}
	n, err := l.kube.CoreV1().Nodes().Create(t.Context(), n, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The controller adopts the node (labels, taints) at the same time: the
	// kubelet's status report retries on conflict, as a kubelet does.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := l.kube.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
		cur.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourcePods: resource.MustParse("17")}
		cur.Status.Allocatable = cur.Status.Capacity
		n, err = l.kube.CoreV1().Nodes().UpdateStatus(t.Context(), cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (l *lifecycle) instances(t *testing.T, nodeClaim string) []ec2types.Instance {
	t.Helper()
	out, err := l.ec2.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:karpenter.sh/nodeclaim"), Values: []string{nodeClaim}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var is []ec2types.Instance
	for _, r := range out.Reservations {
		is = append(is, r.Instances...)
	}
	return is
}

func TestLifecycle(t *testing.T) {
	l := newLifecycle(t, "4")
	ctx := t.Context()
	a := l.name + "-a"

	outcome, msg, err := l.ctrl.Create(ctx, l.plan(a, "t3.medium"))
	if err != nil || outcome != Created {
		t.Fatalf("Create = %v %q %v, want Created", outcome, msg, err)
	}
	if outcome, _, err := l.ctrl.Create(ctx, l.plan(a, "t3.medium")); err != nil || outcome != Exists {
		t.Fatalf("second Create = %v %v, want Exists", outcome, err)
	}

	// Launched: providerID, labels, capacity recorded; one instance.
	var claim *karpv1.NodeClaim
	waitFor(t, "Launched", func() (bool, error) {
		claim, err = l.crd.GetNodeClaim(ctx, a)
		return err == nil && claim.IsTrue(karpv1.ConditionTypeLaunched), err
	})
	if !strings.HasPrefix(claim.Status.ProviderID, "aws:///us-east-1a/i-") {
		t.Errorf("providerID = %q", claim.Status.ProviderID)
	}
	for k, v := range map[string]string{corev1.LabelInstanceTypeStable: "t3.medium", corev1.LabelTopologyZone: "us-east-1a",
		karpv1.CapacityTypeLabelKey: "on-demand", karpv1.NodePoolLabelKey: l.name, corev1.LabelArchStable: "amd64"} {
		if claim.Labels[k] != v {
			t.Errorf("nodeclaim label %s = %q, want %q", k, claim.Labels[k], v)
		}
	}
	if c := claim.Status.Capacity[corev1.ResourceCPU]; c.Value() != 2 {
		t.Errorf("capacity cpu = %s, want 2", c.String())
	}
	if n := len(l.instances(t, a)); n != 1 {
		t.Fatalf("instances = %d, want 1", n)
	}

	// NodePool limits: cpu 4, 2 in use. A 4-CPU type passes the limit;
	// of two concurrent 2-CPU claims exactly one fits.
	if outcome, msg, _ := l.ctrl.Create(ctx, l.plan(l.name+"-x", "t3.xlarge")); outcome != Failed || !strings.Contains(msg, "limit") {
		t.Errorf("Create over the limit = %v %q, want Failed naming the limit", outcome, msg)
	}
	var wg sync.WaitGroup
	outcomes := make([]Outcome, 2)
	for i, name := range []string{l.name + "-b", l.name + "-c"} {
		wg.Go(func() { outcomes[i], _, _ = l.ctrl.Create(ctx, l.plan(name, "t3.medium")) })
	}
	wg.Wait()
	if (outcomes[0] == Created) == (outcomes[1] == Created) {
		t.Errorf("concurrent creations = %v, want exactly one Created within the limit", outcomes)
	}

	// Registered: the Node is adopted.
	node := l.join(t, claim)
	waitFor(t, "Initialized", func() (bool, error) {
		claim, err = l.crd.GetNodeClaim(ctx, a)
		return err == nil && claim.IsTrue(karpv1.ConditionTypeInitialized), err
	})
	node, err = l.kube.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if claim.Status.NodeName != node.Name || !claim.IsTrue(karpv1.ConditionTypeRegistered) {
		t.Errorf("nodeName = %q registered = %v", claim.Status.NodeName, claim.IsTrue(karpv1.ConditionTypeRegistered))
	}
	for k, v := range map[string]string{karpv1.NodePoolLabelKey: l.name, karpv1.NodeRegisteredLabelKey: "true", karpv1.NodeInitializedLabelKey: "true"} {
		if node.Labels[k] != v {
			t.Errorf("node label %s = %q, want %q", k, node.Labels[k], v)
		}
	}
	for _, taint := range node.Spec.Taints {
		if taint.Key == karpv1.UnregisteredTaintKey {
			t.Error("node still has the unregistered taint")
		}
	}
	if len(node.Finalizers) == 0 || node.Finalizers[0] != karpv1.TerminationFinalizer {
		t.Errorf("node finalizers = %v", node.Finalizers)
	}
	// Once registered, the instance carries the node's name.
	for _, inst := range l.instances(t, a) {
		name := ""
		for _, tag := range inst.Tags {
			if aws.ToString(tag.Key) == "Name" {
				name = aws.ToString(tag.Value)
			}
		}
		if name != node.Name {
			t.Errorf("instance %s Name tag = %q, want the node name %q", aws.ToString(inst.InstanceId), name, node.Name)
		}
	}

	// Termination respects a PDB: both pods are guarded by minAvailable 2.
	ns := l.name
	if _, err := l.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	zero := int64(0)
	for _, name := range []string{"web-1", "web-2"} {
		p, err := l.kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: node.Name, TerminationGracePeriodSeconds: &zero,
				Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
				Containers:  []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Running and Ready, as the kubelet would report (a Pending pod
		// is evicted whatever its budget says).
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
		if _, err := l.kube.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	all := intstr.FromInt32(2)
	if _, err := l.kube.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &all, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The disruption controller has seen both pods healthy.
	waitFor(t, "PDB status", func() (bool, error) {
		pdb, err := l.kube.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && pdb.Status.ObservedGeneration == pdb.Generation && pdb.Status.CurrentHealthy == 2, err
	})
	if err := l.ctrl.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node tainted disrupted", func() (bool, error) {
		n, err := l.kube.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, taint := range n.Spec.Taints {
			if taint.MatchTaint(&drain.DisruptedTaint) {
				return true, nil
			}
		}
		return false, nil
	})
	time.Sleep(5 * time.Second)
	pods, err := l.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 2 {
		t.Errorf("pods left while the PDB forbids evictions = %d, want 2", len(pods.Items))
	}
	if n := len(l.instances(t, a)); n != 1 {
		t.Errorf("instance terminated before the node was drained (running = %d)", n)
	}

	// The budget allows it: pods evicted, instance terminated, Node and
	// NodeClaim gone.
	if err := l.kube.PolicyV1().PodDisruptionBudgets(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "nodeclaim gone", func() (bool, error) {
		_, err := l.crd.GetNodeClaim(ctx, a)
		return apierrors.IsNotFound(err), nil
	})
	if _, err := l.kube.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node after termination: %v, want not found", err)
	}
	if n := len(l.instances(t, a)); n != 0 {
		t.Errorf("running instances after termination = %d, want 0", n)
	}
	if pods, _ := l.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); len(pods.Items) != 0 {
		t.Errorf("pods after drain = %d, want 0", len(pods.Items))
	}
}

func TestLaunchTimeoutCleansUp(t *testing.T) {
	l := newLifecycle(t, "100")
	ctx := t.Context()
	// A NodeClaim whose node class does not exist never launches; past the
	// launch timeout it is deleted with the reason recorded.
	l.ctrl.opts.LaunchTimeout = 3 * time.Second
	claim := &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: l.name + "-a", Labels: map[string]string{karpv1.NodePoolLabelKey: l.name}},
		Spec: karpv1.NodeClaimSpec{
			Requirements: []karpv1.NodeSelectorRequirementWithMinValues{req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, "t3.medium")},
			NodeClassRef: karpv1.NodeClassReference{Group: awsv1.Group, Kind: "EC2NodeClass", Name: "does-not-exist"},
		},
	}
	if _, err := l.crd.CreateNodeClaim(ctx, claim); err != nil {
		t.Fatal(err)
	}
	var reason string
	waitFor(t, "NodeClassNotFound", func() (bool, error) {
		nc, err := l.crd.GetNodeClaim(ctx, claim.Name)
		if err != nil {
			return false, err
		}
		if c := nc.Condition(karpv1.ConditionTypeLaunched); c != nil {
			reason = c.Reason
		}
		return reason == ReasonNodeClassNotFound, nil
	})
	l.ctrl.Enqueue(claim.Name)
	time.Sleep(3 * time.Second)
	l.ctrl.Enqueue(claim.Name)
	waitFor(t, "nodeclaim deleted after the launch timeout", func() (bool, error) {
		_, err := l.crd.GetNodeClaim(ctx, claim.Name)
		return apierrors.IsNotFound(err), nil
	})
	if n := len(l.instances(t, claim.Name)); n != 0 {
		t.Errorf("instances = %d, want 0", n)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		t.Fatal("test context ended")
	}
}
