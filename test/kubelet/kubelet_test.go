package kubelet

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// fakeEC2 serves instances, instance types and user data from memory,
// applies the tag and state filters the way EC2 does, and counts calls.
type fakeEC2 struct {
	mu        sync.Mutex
	instances []ec2types.Instance
	types     map[string]ec2types.InstanceTypeInfo
	userData  map[string]string
	err       error
	calls     map[string]int
}

func newFakeEC2() *fakeEC2 {
	return &fakeEC2{
		types: map[string]ec2types.InstanceTypeInfo{
			"t3.medium": typeInfo("t3.medium", ec2types.ArchitectureTypeX8664, 2, 4096),
			"m7g.large": typeInfo("m7g.large", ec2types.ArchitectureTypeArm64, 2, 8192),
		},
		userData: map[string]string{},
		calls:    map[string]int{},
	}
}

func typeInfo(name string, arch ec2types.ArchitectureType, vcpu int32, mib int64) ec2types.InstanceTypeInfo {
	return ec2types.InstanceTypeInfo{
		InstanceType:  ec2types.InstanceType(name),
		ProcessorInfo: &ec2types.ProcessorInfo{SupportedArchitectures: []ec2types.ArchitectureType{arch}},
		VCpuInfo:      &ec2types.VCpuInfo{DefaultVCpus: aws.Int32(vcpu)},
		MemoryInfo:    &ec2types.MemoryInfo{SizeInMiB: aws.Int64(mib)},
	}
}

func (f *fakeEC2) add(id, typ, zone, ip string, tags map[string]string, spot bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst := ec2types.Instance{
		InstanceId:       aws.String(id),
		InstanceType:     ec2types.InstanceType(typ),
		Placement:        &ec2types.Placement{AvailabilityZone: aws.String(zone)},
		PrivateIpAddress: aws.String(ip),
		PrivateDnsName:   aws.String("ip-" + strings.ReplaceAll(ip, ".", "-") + ".ec2.internal"),
		State:            &ec2types.InstanceState{Name: ec2types.InstanceStateNameRunning},
		LaunchTime:       aws.Time(time.Now()),
	}
	if spot {
		inst.InstanceLifecycle = ec2types.InstanceLifecycleTypeSpot
	}
	for k, v := range tags {
		inst.Tags = append(inst.Tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	f.instances = append(f.instances, inst)
}

func (f *fakeEC2) setState(id string, state ec2types.InstanceStateName) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.instances {
		if aws.ToString(f.instances[i].InstanceId) == id {
			f.instances[i].State.Name = state
		}
	}
}

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["DescribeInstances"]++
	if f.err != nil {
		return nil, f.err
	}
	var out []ec2types.Instance
	for _, inst := range f.instances {
		if matches(inst, in.Filters) {
			out = append(out, inst)
		}
	}
	return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{Instances: out}}}, nil
}

func matches(inst ec2types.Instance, filters []ec2types.Filter) bool {
	for _, f := range filters {
		name := aws.ToString(f.Name)
		var have string
		switch {
		case name == "instance-state-name":
			have = string(inst.State.Name)
		case strings.HasPrefix(name, "tag:"):
			for _, t := range inst.Tags {
				if aws.ToString(t.Key) == strings.TrimPrefix(name, "tag:") {
					have = aws.ToString(t.Value)
				}
			}
		default:
			return false
		}
		found := false
		for _, v := range f.Values {
			found = found || v == have
		}
		if !found {
			return false
		}
	}
	return true
}

func (f *fakeEC2) DescribeInstanceTypes(_ context.Context, in *ec2.DescribeInstanceTypesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["DescribeInstanceTypes"]++
	out := &ec2.DescribeInstanceTypesOutput{}
	for _, t := range in.InstanceTypes {
		if info, ok := f.types[string(t)]; ok {
			out.InstanceTypes = append(out.InstanceTypes, info)
		}
	}
	return out, nil
}

func (f *fakeEC2) DescribeInstanceAttribute(_ context.Context, in *ec2.DescribeInstanceAttributeInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstanceAttributeOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["DescribeInstanceAttribute"]++
	if in.Attribute != ec2types.InstanceAttributeNameUserData {
		return nil, errors.New("unexpected attribute " + string(in.Attribute))
	}
	out := &ec2.DescribeInstanceAttributeOutput{InstanceId: in.InstanceId}
	if ud, ok := f.userData[aws.ToString(in.InstanceId)]; ok {
		out.UserData = &ec2types.AttributeValue{Value: aws.String(ud)}
	}
	return out, nil
}

const owned = "kubernetes.io/cluster/my-cluster"

type harness struct {
	ec2  *fakeEC2
	kube *fake.Clientset
	sim  *Simulator
	logs *bytes.Buffer
}

func newHarness(t *testing.T, objects ...*corev1.Node) *harness {
	t.Helper()
	h := &harness{ec2: newFakeEC2(), kube: fake.NewClientset(), logs: &bytes.Buffer{}}
	for _, n := range objects {
		if _, err := h.kube.CoreV1().Nodes().Create(t.Context(), n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(h.logs, nil))
	h.sim = New(h.ec2, h.kube, Config{ClusterName: "my-cluster", Region: "us-east-1"}, log)
	return h
}

func (h *harness) sync(t *testing.T) {
	t.Helper()
	if err := h.sim.Sync(t.Context()); err != nil {
		t.Fatalf("Sync() error = %v", err)
	}
}

func (h *harness) nodes(t *testing.T) map[string]corev1.Node {
	t.Helper()
	list, err := h.kube.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]corev1.Node{}
	for _, n := range list.Items {
		out[n.Name] = n
	}
	return out
}

func names(nodes map[string]corev1.Node) []string {
	return slices.Sorted(maps.Keys(nodes))
}

func TestSyncRegistersNodeFromInstanceAndBootstrap(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ec2.add("i-1", "t3.medium", "us-east-1b", "10.0.1.5", map[string]string{owned: "owned"}, true)
	h.ec2.userData["i-1"] = b64(mimeDoc([2]string{NodeConfigMediaType, nodeConfigYAML}))
	h.sync(t)

	n, ok := h.nodes(t)["ip-10-0-1-5.ec2.internal"]
	if !ok {
		t.Fatalf("no node registered; nodes: %v", names(h.nodes(t)))
	}
	wantLabels := map[string]string{
		"karpenter.sh/capacity-type":       "on-demand", // the bootstrap's label wins, as with a real kubelet
		"karpenter.sh/nodepool":            "default",
		"kubernetes.io/hostname":           "ip-10-0-1-5.ec2.internal",
		"kubernetes.io/os":                 "linux",
		"kubernetes.io/arch":               "amd64",
		"node.kubernetes.io/instance-type": "t3.medium",
		"topology.kubernetes.io/zone":      "us-east-1b",
		"topology.kubernetes.io/region":    "us-east-1",
	}
	if diff := cmp.Diff(wantLabels, n.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if got := n.Annotations[KwokAnnotation]; got != "fake" {
		t.Errorf("kwok annotation = %q, want fake", got)
	}
	if got, want := n.Spec.ProviderID, "aws:///us-east-1b/i-1"; got != want {
		t.Errorf("providerID = %q, want %q", got, want)
	}
	wantTaints := []corev1.Taint{
		{Key: "karpenter.sh/unregistered", Effect: corev1.TaintEffectNoExecute},
		{Key: "example.com/startup", Value: "true", Effect: corev1.TaintEffectNoSchedule},
	}
	if diff := cmp.Diff(wantTaints, n.Spec.Taints); diff != "" {
		t.Errorf("taints (-want +got):\n%s", diff)
	}
	wantCapacity := corev1.ResourceList{"cpu": q("2"), "memory": q("4Gi"), "pods": q("17"), "ephemeral-storage": q("20Gi")}
	if diff := cmp.Diff(wantCapacity, n.Status.Capacity, quantityEqual); diff != "" {
		t.Errorf("capacity (-want +got):\n%s", diff)
	}
	// cpu 2000m-70m-100m; memory 4096Mi-442Mi-100Mi-100Mi; storage 20Gi-1Gi-10%.
	wantAllocatable := corev1.ResourceList{"cpu": q("1830m"), "memory": q("3454Mi"), "pods": q("17"), "ephemeral-storage": q("17Gi")}
	if diff := cmp.Diff(wantAllocatable, n.Status.Allocatable, quantityEqual); diff != "" {
		t.Errorf("allocatable (-want +got):\n%s", diff)
	}
}

func TestSyncWithoutUserDataRegistersInstanceLabelsOnlyAndWarnsOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ec2.add("i-arm", "m7g.large", "us-east-1a", "10.0.0.9", map[string]string{owned: "owned"}, true)
	h.ec2.add("i-bad", "t3.medium", "us-east-1a", "10.0.0.10", map[string]string{owned: "owned"}, false)
	h.ec2.userData["i-bad"] = b64("#!/bin/bash\necho not a node config\n")
	h.sync(t)
	h.sync(t)

	nodes := h.nodes(t)
	arm := nodes["ip-10-0-0-9.ec2.internal"]
	if got := arm.Labels["kubernetes.io/arch"]; got != "arm64" {
		t.Errorf("arch label = %q, want arm64", got)
	}
	if got := arm.Labels[LabelCapacityType]; got != "spot" {
		t.Errorf("capacity type = %q, want spot", got)
	}
	if got := arm.Status.Capacity.Pods().Value(); got != DefaultMaxPods {
		t.Errorf("pods = %d, want %d", got, DefaultMaxPods)
	}
	if len(arm.Spec.Taints) != 0 {
		t.Errorf("taints = %v, want none", arm.Spec.Taints)
	}
	bad := nodes["ip-10-0-0-10.ec2.internal"]
	if got := bad.Labels[LabelCapacityType]; got != "on-demand" {
		t.Errorf("capacity type = %q, want on-demand", got)
	}
	if diff := cmp.Diff(bad.Status.Capacity, bad.Status.Allocatable, quantityEqual); diff != "" {
		t.Errorf("allocatable differs from capacity without a bootstrap:\n%s", diff)
	}
	logs := h.logs.String()
	if got := strings.Count(logs, "user_data_missing"); got != 1 {
		t.Errorf("user_data_missing logged %d times, want 1:\n%s", got, logs)
	}
	if got := strings.Count(logs, "user_data_unparseable"); got != 1 {
		t.Errorf("user_data_unparseable logged %d times, want 1:\n%s", got, logs)
	}
	if got := h.ec2.calls["DescribeInstanceAttribute"]; got != 2 {
		t.Errorf("DescribeInstanceAttribute called %d times, want 2 (once per instance)", got)
	}
}

func TestSyncIgnoresInstancesNotRunningOrNotOwned(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ec2.add("i-other", "t3.medium", "us-east-1a", "10.0.0.1", map[string]string{"kubernetes.io/cluster/other": "owned"}, false)
	h.ec2.add("i-none", "t3.medium", "us-east-1a", "10.0.0.2", nil, false)
	h.ec2.add("i-stopped", "t3.medium", "us-east-1a", "10.0.0.3", map[string]string{owned: "owned"}, false)
	h.ec2.setState("i-stopped", ec2types.InstanceStateNameStopped)
	h.sync(t)
	if nodes := h.nodes(t); len(nodes) != 0 {
		t.Errorf("nodes = %v, want none", names(nodes))
	}
}

func TestSyncDeletesOnlyKwokNodesOfGoneInstances(t *testing.T) {
	t.Parallel()
	foreign := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "real-node"},
		Spec:       corev1.NodeSpec{ProviderID: "aws:///us-east-1a/i-gone"},
	}
	static := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "static-kwok", Annotations: map[string]string{KwokAnnotation: "fake"}},
	}
	h := newHarness(t, foreign, static)
	h.ec2.add("i-1", "t3.medium", "us-east-1a", "10.0.0.1", map[string]string{owned: "owned"}, false)
	h.ec2.add("i-2", "t3.medium", "us-east-1a", "10.0.0.2", map[string]string{owned: "owned"}, false)
	h.sync(t)
	if got := len(h.nodes(t)); got != 4 {
		t.Fatalf("nodes = %v, want 4", names(h.nodes(t)))
	}

	h.ec2.setState("i-1", ec2types.InstanceStateNameTerminated)
	h.sync(t)
	got := names(h.nodes(t))
	want := []string{"ip-10-0-0-2.ec2.internal", "real-node", "static-kwok"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nodes after termination (-want +got):\n%s", diff)
	}
	if !strings.Contains(h.logs.String(), "node_deleted") {
		t.Errorf("no node_deleted log:\n%s", h.logs.String())
	}
}

func TestSyncKeepsNodesOfInstancesRunningForAnotherCluster(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ec2.add("i-other", "t3.medium", "us-east-1a", "10.0.0.7", map[string]string{"kubernetes.io/cluster/other": "owned"}, false)
	other := New(h.ec2, h.kube, Config{ClusterName: "other"}, slog.New(slog.DiscardHandler))
	if err := other.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.sync(t) // my-cluster's simulator must leave the other cluster's Node alone
	if _, ok := h.nodes(t)["ip-10-0-0-7.ec2.internal"]; !ok {
		t.Fatalf("node of a running instance of another cluster was deleted; nodes: %v", names(h.nodes(t)))
	}
	h.ec2.setState("i-other", ec2types.InstanceStateNameTerminated)
	h.sync(t)
	if _, ok := h.nodes(t)["ip-10-0-0-7.ec2.internal"]; ok {
		t.Errorf("node of a terminated instance was kept")
	}
}

func TestSyncDoesNotRestoreRemovedStartupTaints(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.ec2.add("i-1", "t3.medium", "us-east-1a", "10.0.0.1", map[string]string{owned: "owned"}, false)
	h.ec2.userData["i-1"] = b64(mimeDoc([2]string{NodeConfigMediaType, nodeConfigYAML}))
	h.sync(t)
	n := h.nodes(t)["ip-10-0-0-1.ec2.internal"]
	n.Spec.Taints = nil
	n.Labels["karpenter.sh/registered"] = "true"
	if _, err := h.kube.CoreV1().Nodes().Update(t.Context(), &n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.sync(t)
	n = h.nodes(t)["ip-10-0-0-1.ec2.internal"]
	if len(n.Spec.Taints) != 0 {
		t.Errorf("taints = %v after the operator removed them, want none", n.Spec.Taints)
	}
	if n.Labels["karpenter.sh/registered"] != "true" {
		t.Errorf("label added by the operator was lost: %v", n.Labels)
	}
}

func TestSyncLeavesForeignNodeWithSameName(t *testing.T) {
	t.Parallel()
	taken := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "ip-10-0-0-1.ec2.internal", Labels: map[string]string{"owner": "someone"}}}
	h := newHarness(t, taken)
	h.ec2.add("i-1", "t3.medium", "us-east-1a", "10.0.0.1", map[string]string{owned: "owned"}, false)
	h.sync(t)
	h.sync(t)
	n := h.nodes(t)["ip-10-0-0-1.ec2.internal"]
	if diff := cmp.Diff(map[string]string{"owner": "someone"}, n.Labels); diff != "" {
		t.Errorf("foreign node changed (-want +got):\n%s", diff)
	}
	if got := strings.Count(h.logs.String(), "node_name_taken"); got != 1 {
		t.Errorf("node_name_taken logged %d times, want 1", got)
	}
}

func TestHealthy(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if err := h.sim.Healthy(); err == nil {
		t.Fatal("Healthy() = nil before the first sync")
	}
	h.ec2.err = errors.New("moto down")
	if err := h.sim.Sync(t.Context()); err == nil || !strings.Contains(err.Error(), "moto down") {
		t.Fatalf("Sync() error = %v, want moto down", err)
	}
	if err := h.sim.Healthy(); err == nil || !strings.Contains(err.Error(), "moto down") {
		t.Fatalf("Healthy() = %v after a failed first sync, want moto down", err)
	}
	h.ec2.err = nil
	h.sync(t)
	if err := h.sim.Healthy(); err != nil {
		t.Fatalf("Healthy() = %v after a successful sync", err)
	}
}
