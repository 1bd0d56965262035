package nodeclaim

import (
	"github.com/flotilla-dev/flotilla/api/snapshot"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/bootstrap"
)

func req(key string, op corev1.NodeSelectorOperator, values ...string) karpv1.NodeSelectorRequirementWithMinValues {
	return karpv1.NodeSelectorRequirementWithMinValues{Key: key, Operator: op, Values: values}
}

func TestCompatible(t *testing.T) {
	t.Parallel()
	typeLabels := map[string]string{
		corev1.LabelInstanceTypeStable: "m5.large", "karpenter.k8s.aws/instance-family": "m5", "karpenter.k8s.aws/instance-cpu": "2",
	}
	offer := map[string]string{corev1.LabelTopologyZone: "us-east-1a", karpv1.CapacityTypeLabelKey: "spot"}
	tests := []struct {
		name string
		reqs []karpv1.NodeSelectorRequirementWithMinValues
		want bool
	}{
		{"no requirements", nil, true},
		{"type in", []karpv1.NodeSelectorRequirementWithMinValues{req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, "m5.large", "c5.large")}, true},
		{"type not in", []karpv1.NodeSelectorRequirementWithMinValues{req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpNotIn, "m5.large")}, false},
		{"zone", []karpv1.NodeSelectorRequirementWithMinValues{req(corev1.LabelTopologyZone, corev1.NodeSelectorOpIn, "us-east-1b")}, false},
		{"capacity type", []karpv1.NodeSelectorRequirementWithMinValues{req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, "spot")}, true},
		{"cpu gt", []karpv1.NodeSelectorRequirementWithMinValues{req("karpenter.k8s.aws/instance-cpu", corev1.NodeSelectorOpGt, "1")}, true},
		{"cpu lt", []karpv1.NodeSelectorRequirementWithMinValues{req("karpenter.k8s.aws/instance-cpu", corev1.NodeSelectorOpLt, "2")}, false},
		{"custom label is the node's, not the offering's", []karpv1.NodeSelectorRequirementWithMinValues{req("team", corev1.NodeSelectorOpIn, "a")}, true},
		{"well-known label the type lacks", []karpv1.NodeSelectorRequirementWithMinValues{req("karpenter.k8s.aws/instance-gpu-name", corev1.NodeSelectorOpIn, "t4")}, false},
		{"well-known label absent as asked", []karpv1.NodeSelectorRequirementWithMinValues{req("karpenter.k8s.aws/instance-gpu-name", corev1.NodeSelectorOpDoesNotExist)}, true},
		{"the claim's own labels hold for every offering", []karpv1.NodeSelectorRequirementWithMinValues{
			req(karpv1.NodePoolLabelKey, corev1.NodeSelectorOpIn, "default"),
			req(karpv1.LabelNodeClass, corev1.NodeSelectorOpIn, "default"),
			req(corev1.LabelTopologyRegion, corev1.NodeSelectorOpIn, "us-east-1")}, true},
		{"another NodePool's claim", []karpv1.NodeSelectorRequirementWithMinValues{req(karpv1.NodePoolLabelKey, corev1.NodeSelectorOpIn, "gpu")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			claimLabels := map[string]string{karpv1.NodePoolLabelKey: "default", karpv1.LabelNodeClass: "default", corev1.LabelTopologyRegion: "us-east-1"}
			if got := Compatible(tt.reqs, typeLabels, offer, claimLabels); got != tt.want {
				t.Errorf("Compatible = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRequirementsNarrowToOptions(t *testing.T) {
	t.Parallel()
	plan := &clusterv1.NodeClaimPlan{
		Name: "default-x", NodePool: "default", InstanceType: "t3.medium",
		Requirements: []*clusterv1.Requirement{
			{Key: corev1.LabelInstanceTypeStable, Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"t3.medium", "t3.large", "m5.large"}},
			{Key: karpv1.CapacityTypeLabelKey, Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"spot", "on-demand"}},
			{Key: "karpenter.k8s.aws/instance-family", Operator: clusterv1.Operator_OPERATOR_NOT_IN, Values: []string{"t2"}},
		},
		Options: []*clusterv1.InstanceOption{
			{InstanceType: "t3.medium", Zone: "us-east-1a", CapacityType: "spot"},
			{InstanceType: "t3.large", Zone: "us-east-1b", CapacityType: "spot"},
			{InstanceType: "m5.large", Zone: "us-east-1b", CapacityType: "spot"},
		},
	}
	// m5.large would pass a limit: it is left out.
	capacities := map[string]corev1.ResourceList{"t3.medium": {}, "t3.large": {}}
	got := requirements(plan, capacities)
	want := []karpv1.NodeSelectorRequirementWithMinValues{
		req("karpenter.k8s.aws/instance-family", corev1.NodeSelectorOpNotIn, "t2"),
		req(corev1.LabelInstanceTypeStable, corev1.NodeSelectorOpIn, "t3.medium", "t3.large"),
		// Spot options only, but the pool allows on-demand: fallback kept.
		req(karpv1.CapacityTypeLabelKey, corev1.NodeSelectorOpIn, "spot", "on-demand"),
		req(corev1.LabelTopologyZone, corev1.NodeSelectorOpIn, "us-east-1a", "us-east-1b"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requirements (-want +got):\n%s", diff)
	}
}

func TestCapacityAndAllocatable(t *testing.T) {
	t.Parallel()
	it := &clusterv1.InstanceType{Name: "t3.medium", Arch: "amd64", Capacity: &clusterv1.Resources{CpuMillis: 2000, MemoryBytes: 4096 << 20, Pods: 17}}
	capacity, alloc := capacityAndAllocatable(it, bootstrap.Node{VCPU: 2, ENIMaxPods: 17})
	q := func(s string) resource.Quantity { return resource.MustParse(s) }
	for name, want := range map[corev1.ResourceName]resource.Quantity{
		corev1.ResourceCPU:    q("1930m"),  // 2000m - 70m
		corev1.ResourceMemory: q("3554Mi"), // 4096Mi - 442Mi - 100Mi
		corev1.ResourcePods:   *resource.NewQuantity(17, resource.DecimalSI),
	} {
		got := alloc[name]
		if got.Cmp(want) != 0 {
			t.Errorf("allocatable %s = %s, want %s", name, got.String(), want.String())
		}
	}
	if c := capacity[corev1.ResourceCPU]; c.MilliValue() != 2000 {
		t.Errorf("capacity cpu = %s", c.String())
	}
}

func TestAdopt(t *testing.T) {
	t.Parallel()
	claim := &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "default-x", UID: "uid-1", Labels: map[string]string{karpv1.NodePoolLabelKey: "default", "team": "a"}},
		Spec: karpv1.NodeClaimSpec{
			Taints:        []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}},
			StartupTaints: []corev1.Taint{{Key: "example.com/booting", Effect: corev1.TaintEffectNoSchedule}},
		},
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "ip-10-0-0-1", Labels: map[string]string{corev1.LabelHostname: "ip-10-0-0-1"}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{
			{Key: karpv1.UnregisteredTaintKey, Effect: corev1.TaintEffectNoExecute},
			{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
		}},
	}
	if !adopt(node, claim) {
		t.Fatal("adopt reported no change")
	}
	wantLabels := map[string]string{corev1.LabelHostname: "ip-10-0-0-1", karpv1.NodePoolLabelKey: "default", "team": "a", karpv1.NodeRegisteredLabelKey: "true"}
	if diff := cmp.Diff(wantLabels, node.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	wantTaints := []corev1.Taint{
		{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
		{Key: "example.com/booting", Effect: corev1.TaintEffectNoSchedule},
	}
	if diff := cmp.Diff(wantTaints, node.Spec.Taints); diff != "" {
		t.Errorf("taints (-want +got):\n%s", diff)
	}
	if len(node.Finalizers) != 1 || node.Finalizers[0] != karpv1.TerminationFinalizer {
		t.Errorf("finalizers = %v", node.Finalizers)
	}
	if len(node.OwnerReferences) != 1 || node.OwnerReferences[0].Kind != "NodeClaim" || node.OwnerReferences[0].UID != "uid-1" {
		t.Errorf("owner references = %+v", node.OwnerReferences)
	}
	if adopt(node, claim) {
		t.Error("adopting twice changed the node again")
	}
}

// TestBuildRecordsNominatedPods: the claim names the pods it is for, so a
// restarted watcher still counts them as on their way.
func TestBuildRecordsNominatedPods(t *testing.T) {
	t.Parallel()
	plan := &clusterv1.NodeClaimPlan{Name: "default-x", NodePool: "default", InstanceType: "t3.medium",
		Pods: []string{"shop/web-1", "shop/web-0"}}
	pool := &karpv1.NodePool{}
	pool.Name = "default"
	claim := (&Controller{}).build(plan, pool, map[string]corev1.ResourceList{"t3.medium": {}})
	if got := snapshot.NominatedPods(claim); !slices.Equal(got, []string{"shop/web-0", "shop/web-1"}) {
		t.Errorf("nominated pods = %v, want both pods sorted", got)
	}
}
