package localenv_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

// bootstrapUserData is the user data the actuator writes: base64 of a MIME
// document with an AL2023 NodeConfig part.
func bootstrapUserData(nodePool, capacityType string) string {
	doc := `MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="//"

--//
Content-Type: application/node.eks.aws

apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: my-cluster
    apiServerEndpoint: https://127.0.0.1:6443
    cidr: 10.96.0.0/16
  kubelet:
    config:
      maxPods: 17
      kubeReserved: {cpu: 70m, memory: 442Mi, ephemeral-storage: 1Gi}
      systemReserved: {cpu: 100m, memory: 100Mi}
      evictionHard: {memory.available: 100Mi}
    flags:
    - --node-labels=karpenter.sh/nodepool=` + nodePool + `,karpenter.sh/capacity-type=` + capacityType + `
    - --register-with-taints=example.com/startup=true:NoSchedule
--//--
`
	return base64.StdEncoding.EncodeToString([]byte(doc))
}

func clients(t *testing.T, env *localenv.Env) (*ec2.Client, kubernetes.Interface) {
	t.Helper()
	cfg, err := env.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ec2Client := ec2.New(ec2.Options{
		Region:       env.Region,
		BaseEndpoint: aws.String(env.MotoEndpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	return ec2Client, kube
}

func anyImage(t *testing.T, c *ec2.Client) string {
	t.Helper()
	out, err := c.DescribeImages(t.Context(), &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(out.Images) == 0 {
		t.Fatalf("describe images: %v (%d images)", err, len(out.Images))
	}
	return aws.ToString(out.Images[0].ImageId)
}

func clusterTag(env *localenv.Env) []ec2types.TagSpecification {
	return []ec2types.TagSpecification{{
		ResourceType: ec2types.ResourceTypeInstance,
		Tags:         []ec2types.Tag{{Key: aws.String("kubernetes.io/cluster/" + env.ClusterName), Value: aws.String("owned")}},
	}}
}

// waitFor polls cond every 50ms until it returns true or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) time.Duration {
	t.Helper()
	began := time.Now()
	var last error
	for time.Since(began) < timeout {
		ok, err := cond()
		if ok {
			return time.Since(began)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s (last error: %v)", what, timeout, last)
	return 0
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

var quantityEqual = cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })

// TestInstanceBecomesReadyNodeRunsPodsAndGoesAway is the simulated kubelet
// on the real stack: a RunInstances in moto becomes a Ready Node, the real
// scheduler binds a Deployment's pod to it, kwok runs it, and terminating
// the instance removes the Node.
func TestInstanceBecomesReadyNodeRunsPodsAndGoesAway(t *testing.T) {
	env := sharedEnv(t)
	ec2Client, kube := clients(t, env)
	ctx := t.Context()

	run, err := ec2Client.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId:           aws.String(anyImage(t, ec2Client)),
		InstanceType:      ec2types.InstanceTypeT3Medium,
		MinCount:          aws.Int32(1),
		MaxCount:          aws.Int32(1),
		UserData:          aws.String(bootstrapUserData("default", "on-demand")),
		TagSpecifications: clusterTag(env),
	})
	if err != nil {
		t.Fatalf("run instances: %v", err)
	}
	inst := run.Instances[0]
	id, name := aws.ToString(inst.InstanceId), aws.ToString(inst.PrivateDnsName)
	zone := aws.ToString(inst.Placement.AvailabilityZone)

	var node *corev1.Node
	readyAfter := waitFor(t, 10*time.Second, "node Ready", func() (bool, error) {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		node = n
		return nodeReady(n), nil
	})
	t.Logf("node %s Ready %s after RunInstances returned", name, readyAfter.Round(time.Millisecond))
	// Measured 0.3–1.3 s on a quiet machine; the bound only catches a
	// kubelet that waits for a poll period instead of reacting.
	if readyAfter > 20*time.Second {
		t.Errorf("node Ready after %s; the simulated kubelet should register at once", readyAfter)
	}

	wantLabels := map[string]string{
		"karpenter.sh/capacity-type":       "on-demand",
		"karpenter.sh/nodepool":            "default",
		"kubernetes.io/arch":               "amd64",
		"kubernetes.io/hostname":           name,
		"kubernetes.io/os":                 "linux",
		"node.kubernetes.io/instance-type": "t3.medium",
		"topology.kubernetes.io/region":    "us-east-1",
		"topology.kubernetes.io/zone":      zone,
	}
	for k, want := range wantLabels {
		if got, ok := node.Labels[k]; !ok || got != want {
			t.Errorf("node label %s = %q (present %t), want %q", k, got, ok, want)
		}
	}
	if got, want := node.Spec.ProviderID, fmt.Sprintf("aws:///%s/%s", zone, id); got != want {
		t.Errorf("providerID = %q, want %q", got, want)
	}
	// t3.medium: 2 vCPU, 4 GiB; minus kube/system reserved and eviction.
	wantAllocatable := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("1830m"),
		corev1.ResourceMemory:           resource.MustParse("3454Mi"),
		corev1.ResourcePods:             resource.MustParse("17"),
		corev1.ResourceEphemeralStorage: resource.MustParse("19Gi"),
	}
	if diff := cmp.Diff(wantAllocatable, node.Status.Allocatable, quantityEqual); diff != "" {
		t.Errorf("allocatable (-want +got):\n%s", diff)
	}
	wantTaints := []corev1.Taint{{Key: "example.com/startup", Value: "true", Effect: corev1.TaintEffectNoSchedule}}
	// node.kubernetes.io/* taints belong to the node lifecycle controller.
	var gotTaints []corev1.Taint
	for _, tt := range node.Spec.Taints {
		if !strings.HasPrefix(tt.Key, "node.kubernetes.io/") {
			gotTaints = append(gotTaints, tt)
		}
	}
	if diff := cmp.Diff(wantTaints, gotTaints, cmpIgnoreTaintTime); diff != "" {
		t.Errorf("taints (-want +got):\n%s", diff)
	}

	// The operator removes the startup taint once the node is initialized.
	removeTaint(t, kube, name, "example.com/startup")

	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "inflate", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: aws.Int32(2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "inflate"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "inflate"}},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"karpenter.sh/nodepool": "default"},
					Containers: []corev1.Container{{
						Name:  "pause",
						Image: "registry.k8s.io/pause:3.10",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU:    resource.MustParse("800m"),
							corev1.ResourceMemory: resource.MustParse("1Gi"),
						}},
					}},
				},
			},
		},
	}
	if _, err := kube.AppsV1().Deployments("default").Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kube.AppsV1().Deployments("default").Delete(context.Background(), "inflate", metav1.DeleteOptions{})
	})
	runningAfter := waitFor(t, 30*time.Second, "2 pods Running on the node", func() (bool, error) {
		pods, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=inflate"})
		if err != nil {
			return false, err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Spec.NodeName == name && p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running == 2, fmt.Errorf("%d of %d pods running on %s", running, len(pods.Items), name)
	})
	t.Logf("2 pods Running on the node %s after the Deployment was created", runningAfter.Round(time.Millisecond))

	// A third pod does not fit (3 × 800m > 1830m): the scheduler says so.
	if _, err := kube.AppsV1().Deployments("default").Patch(ctx, "inflate", types.MergePatchType,
		[]byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "third pod unschedulable for lack of cpu", func() (bool, error) {
		pods, err := kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=inflate"})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonUnschedulable {
					return true, nil
				}
			}
		}
		return false, nil
	})

	if _, err := ec2Client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	goneAfter := waitFor(t, 10*time.Second, "node deleted after termination", func() (bool, error) {
		_, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	t.Logf("node %s deleted %s after TerminateInstances", name, goneAfter.Round(time.Millisecond))
}

var cmpIgnoreTaintTime = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".TimeAdded" }, cmp.Ignore())

func removeTaint(t *testing.T, kube kubernetes.Interface, node, key string) {
	t.Helper()
	for range 5 {
		n, err := kube.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var kept []corev1.Taint
		for _, tt := range n.Spec.Taints {
			if tt.Key != key {
				kept = append(kept, tt)
			}
		}
		n.Spec.Taints = kept
		_, err = kube.CoreV1().Nodes().Update(t.Context(), n, metav1.UpdateOptions{})
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	t.Fatalf("remove taint %s from %s: kept conflicting", key, node)
}

// TestFleetLaunchFromLaunchTemplate is the actuator's way to launch: a spot
// CreateFleet from a launch template carrying the user data. The Node gets
// the bootstrap's labels and the spot capacity type.
func TestFleetLaunchFromLaunchTemplate(t *testing.T) {
	env := sharedEnv(t)
	ec2Client, kube := clients(t, env)
	ctx := t.Context()

	lt, err := ec2Client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("flotilla-test-" + fmt.Sprint(time.Now().UnixNano())),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{
			ImageId:  aws.String(anyImage(t, ec2Client)),
			UserData: aws.String(bootstrapUserData("spot-pool", "spot")),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := ec2Client.CreateFleet(ctx, &ec2.CreateFleetInput{
		Type: ec2types.FleetTypeInstant,
		LaunchTemplateConfigs: []ec2types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &ec2types.FleetLaunchTemplateSpecificationRequest{
				LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId,
				Version:          aws.String("$Latest"),
			},
			Overrides: []ec2types.FleetLaunchTemplateOverridesRequest{{InstanceType: ec2types.InstanceTypeM5Large}},
		}},
		TargetCapacitySpecification: &ec2types.TargetCapacitySpecificationRequest{
			TotalTargetCapacity:       aws.Int32(1),
			DefaultTargetCapacityType: ec2types.DefaultTargetCapacityTypeSpot,
		},
		TagSpecifications: clusterTag(env),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(fleet.Instances) != 1 || len(fleet.Instances[0].InstanceIds) != 1 {
		t.Fatalf("fleet instances = %+v, errors = %+v", fleet.Instances, fleet.Errors)
	}
	id := fleet.Instances[0].InstanceIds[0]
	t.Cleanup(func() {
		_, _ = ec2Client.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	})
	desc, err := ec2Client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	name := aws.ToString(desc.Reservations[0].Instances[0].PrivateDnsName)

	var node *corev1.Node
	readyAfter := waitFor(t, 10*time.Second, "fleet node Ready", func() (bool, error) {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		node = n
		return nodeReady(n), nil
	})
	t.Logf("fleet node %s Ready %s after CreateFleet returned", name, readyAfter.Round(time.Millisecond))
	for k, want := range map[string]string{
		"karpenter.sh/nodepool":            "spot-pool",
		"karpenter.sh/capacity-type":       "spot",
		"node.kubernetes.io/instance-type": "m5.large",
	} {
		if got := node.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if got := node.Status.Capacity.Memory(); got.Cmp(resource.MustParse("8Gi")) != 0 {
		t.Errorf("memory capacity = %s, want 8Gi (m5.large)", got.String())
	}
}

// TestUntaggedInstanceGetsNoNode: instances of other clusters are not ours.
func TestUntaggedInstanceGetsNoNode(t *testing.T) {
	env := sharedEnv(t)
	ec2Client, kube := clients(t, env)
	ctx := t.Context()
	run, err := ec2Client.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId:      aws.String(anyImage(t, ec2Client)),
		InstanceType: ec2types.InstanceTypeT3Small,
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	t.Cleanup(func() {
		_, _ = ec2Client.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	})
	time.Sleep(2500 * time.Millisecond) // more than two sync intervals
	_, err = kube.CoreV1().Nodes().Get(ctx, aws.ToString(run.Instances[0].PrivateDnsName), metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("node for an untagged instance: err = %v, want NotFound", err)
	}
}
