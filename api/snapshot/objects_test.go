package snapshot

import (
	"errors"
	"testing"
	"time"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestNode(t *testing.T) {
	t.Parallel()
	now := metav1.Now()
	tests := []struct {
		name string
		node *corev1.Node
		want *clusterv1.Node
	}{
		{
			name: "ready node of a NodeClaim with quantities in base units",
			node: &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{
					Name: "ip-10-0-0-1", CreationTimestamp: created,
					Labels:          map[string]string{"node.kubernetes.io/instance-type": "t3.large"},
					Annotations:     map[string]string{"karpenter.sh/do-not-disrupt": "true", "node.alpha.kubernetes.io/ttl": "0"},
					OwnerReferences: []metav1.OwnerReference{{Kind: "NodeClaim", Name: "default-abc"}},
				},
				Spec: corev1.NodeSpec{ProviderID: "aws:///us-east-1a/i-1", Taints: []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}},
				Status: corev1.NodeStatus{
					Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("35")},
					Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1930m"), corev1.ResourceMemory: resource.MustParse("7Gi"), corev1.ResourcePods: resource.MustParse("35"), "hugepages-2Mi": resource.MustParse("0")},
					Conditions:  []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
				},
			},
			want: &clusterv1.Node{
				Name: "ip-10-0-0-1", ProviderId: "aws:///us-east-1a/i-1", Created: timestamppb.New(created.Time),
				Labels:      map[string]string{"node.kubernetes.io/instance-type": "t3.large"},
				Annotations: map[string]string{"karpenter.sh/do-not-disrupt": "true"},
				Taints:      []*clusterv1.Taint{{Key: "dedicated", Value: "gpu", Effect: "NoSchedule"}},
				Capacity:    &clusterv1.Resources{CpuMillis: 2000, MemoryBytes: 8 << 30, Pods: 35},
				Allocatable: &clusterv1.Resources{CpuMillis: 1930, MemoryBytes: 7 << 30, Pods: 35, Extended: map[string]int64{"hugepages-2Mi": 0}},
				Ready:       true,
				NodeClaim:   "default-abc",
			},
		},
		{
			name: "cordoned, not ready, disrupted",
			node: &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "n"},
				Spec:       corev1.NodeSpec{Unschedulable: true, Taints: []corev1.Taint{{Key: "karpenter.sh/disrupted", Effect: corev1.TaintEffectNoSchedule}}},
				Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}},
			},
			want: &clusterv1.Node{Name: "n", Unschedulable: true, Deleting: true, Taints: []*clusterv1.Taint{{Key: "karpenter.sh/disrupted", Effect: "NoSchedule"}}},
		},
		{
			name: "being deleted",
			node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", DeletionTimestamp: &now}},
			want: &clusterv1.Node{Name: "n", Deleting: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Node(tc.node)
			if err != nil {
				t.Fatalf("Node: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Node mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodeClaim(t *testing.T) {
	t.Parallel()
	transition := metav1.NewTime(created.Add(time.Minute))
	nc := &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: "default-abc", CreationTimestamp: created,
			Labels: map[string]string{"karpenter.sh/nodepool": "default", "node.kubernetes.io/instance-type": "t3.large"},
			Annotations: map[string]string{
				"karpenter.sh/nodepool-hash":          "np1",
				"karpenter.k8s.aws/ec2nodeclass-hash": "nc1",
				AnnotationNominatedPods:               "default/a,default/b",
				"kubectl.kubernetes.io/last-applied":  "{}",
			},
		},
		Spec: karpv1.NodeClaimSpec{
			Requirements: []karpv1.NodeSelectorRequirementWithMinValues{
				{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"us-east-1b"}},
				{Key: "karpenter.sh/capacity-type", Operator: corev1.NodeSelectorOpIn, Values: []string{"spot", "on-demand"}},
				{Key: "node.kubernetes.io/instance-type", Operator: corev1.NodeSelectorOpIn, Values: []string{"t3.large", "m5.large"}, MinValues: new(2)},
			},
			Resources:     karpv1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m"), corev1.ResourcePods: resource.MustParse("3")}},
			Taints:        []corev1.Taint{{Key: "t", Effect: corev1.TaintEffectNoExecute}},
			StartupTaints: []corev1.Taint{{Key: "cni", Effect: corev1.TaintEffectNoSchedule}},
			NodeClassRef:  karpv1.NodeClassReference{Group: "karpenter.k8s.aws", Kind: "EC2NodeClass", Name: "default"},
		},
		Status: karpv1.NodeClaimStatus{
			ProviderID: "aws:///us-east-1b/i-1", NodeName: "ip-1", ImageID: "ami-1",
			Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi")},
			Conditions: []metav1.Condition{{Type: "Launched", Status: metav1.ConditionTrue, Reason: "Launched", Message: "ok", LastTransitionTime: transition}},
		},
	}
	got, err := NodeClaim(nc)
	if err != nil {
		t.Fatalf("NodeClaim: %v", err)
	}
	want := &clusterv1.NodeClaim{
		Name: "default-abc", NodePool: "default", NodeClass: "default", Created: timestamppb.New(created.Time),
		Labels: nc.Labels,
		Requirements: []*clusterv1.Requirement{
			{Key: "topology.kubernetes.io/zone", Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"us-east-1b"}},
			{Key: "karpenter.sh/capacity-type", Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"spot", "on-demand"}},
			{Key: "node.kubernetes.io/instance-type", Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"t3.large", "m5.large"}, MinValues: 2},
		},
		Requests:      &clusterv1.Resources{CpuMillis: 1500, Pods: 3},
		Taints:        []*clusterv1.Taint{{Key: "t", Effect: "NoExecute"}},
		StartupTaints: []*clusterv1.Taint{{Key: "cni", Effect: "NoSchedule"}},
		ProviderId:    "aws:///us-east-1b/i-1", NodeName: "ip-1", ImageId: "ami-1",
		InstanceType: "t3.large", Zone: "us-east-1b",
		Capacity:      &clusterv1.Resources{CpuMillis: 2000, MemoryBytes: 8 << 30},
		Conditions:    []*clusterv1.Condition{{Type: "Launched", Status: "True", Reason: "Launched", Message: "ok", LastTransition: timestamppb.New(transition.Time)}},
		NodePoolHash:  "np1",
		NodeClassHash: "nc1",
		Annotations:   map[string]string{"karpenter.sh/nodepool-hash": "np1", "karpenter.k8s.aws/ec2nodeclass-hash": "nc1"},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("NodeClaim mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"default/a", "default/b"}, NominatedPods(nc)); diff != "" {
		t.Errorf("NominatedPods mismatch (-want +got):\n%s", diff)
	}
}

func TestInFlight(t *testing.T) {
	t.Parallel()
	now := metav1.Now()
	claim := func(conds ...metav1.Condition) *karpv1.NodeClaim {
		return &karpv1.NodeClaim{Status: karpv1.NodeClaimStatus{Conditions: conds}}
	}
	deleting := claim()
	deleting.DeletionTimestamp = &now
	tests := []struct {
		name string
		nc   *karpv1.NodeClaim
		want bool
	}{
		{"just created", claim(), true},
		{"launched, not registered", claim(metav1.Condition{Type: "Launched", Status: metav1.ConditionTrue}), true},
		{"launch failed", claim(metav1.Condition{Type: "Launched", Status: metav1.ConditionFalse}), false},
		{"initialized", claim(metav1.Condition{Type: "Launched", Status: metav1.ConditionTrue}, metav1.Condition{Type: "Initialized", Status: metav1.ConditionTrue}), false},
		{"ready", claim(metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue}), false},
		{"deleting", deleting, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := InFlight(tc.nc); got != tc.want {
				t.Errorf("InFlight = %v, want %v", got, tc.want)
			}
		})
	}
}

func testNodePool() *karpv1.NodePool {
	return &karpv1.NodePool{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: karpv1.NodePoolSpec{
			Weight: new(int32(10)),
			Limits: karpv1.Limits{corev1.ResourceCPU: resource.MustParse("100"), corev1.ResourceMemory: resource.MustParse("200Gi"), "nvidia.com/gpu": resource.MustParse("4")},
			Template: karpv1.NodeClaimTemplate{
				TemplateMetadata: karpv1.TemplateMetadata{Labels: map[string]string{"team": "a"}},
				Spec: karpv1.NodeClaimTemplateSpec{
					Requirements:           []karpv1.NodeSelectorRequirementWithMinValues{{Key: "karpenter.sh/capacity-type", Operator: corev1.NodeSelectorOpIn, Values: []string{"spot"}}},
					Taints:                 []corev1.Taint{{Key: "a", Effect: corev1.TaintEffectNoSchedule}},
					StartupTaints:          []corev1.Taint{{Key: "b", Effect: corev1.TaintEffectNoExecute}},
					NodeClassRef:           karpv1.NodeClassReference{Group: "karpenter.k8s.aws", Kind: "EC2NodeClass", Name: "default"},
					ExpireAfter:            karpv1.NewDuration(720 * time.Hour),
					TerminationGracePeriod: &metav1.Duration{Duration: time.Hour},
				},
			},
			Disruption: karpv1.Disruption{
				ConsolidationPolicy: karpv1.ConsolidationPolicyWhenEmpty,
				ConsolidateAfter:    karpv1.NillableDuration{Duration: 30 * time.Second},
				Budgets: []karpv1.Budget{
					{Nodes: "10%"},
					{Nodes: "0", Reasons: []karpv1.DisruptionReason{karpv1.DisruptionReasonDrifted}, Schedule: new("@daily"), Duration: &metav1.Duration{Duration: 2 * time.Hour}},
				},
			},
		},
	}
}

func TestNodePool(t *testing.T) {
	t.Parallel()
	np := testNodePool()
	got, err := NodePool(np)
	if err != nil {
		t.Fatalf("NodePool: %v", err)
	}
	want := &clusterv1.NodePool{
		Name: "default", Weight: 10, NodeClass: "default", SourceKind: "NodePool", Ready: true,
		Requirements:  []*clusterv1.Requirement{{Key: "karpenter.sh/capacity-type", Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"spot"}}},
		Labels:        map[string]string{"team": "a"},
		Taints:        []*clusterv1.Taint{{Key: "a", Effect: "NoSchedule"}},
		StartupTaints: []*clusterv1.Taint{{Key: "b", Effect: "NoExecute"}},
		Limits:        map[string]int64{"cpu": 100_000, "memory": 200 << 30, "nvidia.com/gpu": 4},
		Disruption: &clusterv1.Disruption{
			ConsolidationPolicy: "WhenEmpty",
			ConsolidateAfter:    durationpb.New(30 * time.Second),
			Budgets: []*clusterv1.DisruptionBudget{
				{Nodes: "10%"},
				{Nodes: "0", Reasons: []string{"Drifted"}, Schedule: "@daily", Duration: durationpb.New(2 * time.Hour)},
			},
		},
		ExpireAfter:            durationpb.New(720 * time.Hour),
		TerminationGracePeriod: durationpb.New(time.Hour),
		Hash:                   NodePoolHash(np),
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("NodePool mismatch (-want +got):\n%s", diff)
	}

	t.Run("never expires, never consolidates, not ready", func(t *testing.T) {
		np := testNodePool()
		np.Spec.Template.Spec.ExpireAfter = karpv1.NeverDuration()
		np.Spec.Disruption.ConsolidateAfter = karpv1.NillableDuration{Never: true}
		np.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "NodeClassNotReady", Message: "EC2NodeClass default has no subnets"}}
		got, err := NodePool(np)
		if err != nil {
			t.Fatalf("NodePool: %v", err)
		}
		if got.GetExpireAfter() != nil || !got.GetDisruption().GetConsolidateNever() || got.GetDisruption().GetConsolidateAfter() != nil {
			t.Errorf("expireAfter %v consolidateNever %v, want unset and true", got.GetExpireAfter(), got.GetDisruption().GetConsolidateNever())
		}
		if got.GetReady() || got.GetNotReadyReason() != "NodePool default is not ready: EC2NodeClass default has no subnets" {
			t.Errorf("ready %v reason %q", got.GetReady(), got.GetNotReadyReason())
		}
	})
}

func TestNodePoolHash(t *testing.T) {
	t.Parallel()
	base := NodePoolHash(testNodePool())
	if base == "" || base != NodePoolHash(testNodePool()) {
		t.Fatalf("hash %q is not stable", base)
	}
	tests := []struct {
		name    string
		modify  func(np *karpv1.NodePool)
		drifted bool
	}{
		{"template label", func(np *karpv1.NodePool) { np.Spec.Template.Labels["team"] = "b" }, true},
		{"taint", func(np *karpv1.NodePool) { np.Spec.Template.Spec.Taints = nil }, true},
		{"node class", func(np *karpv1.NodePool) { np.Spec.Template.Spec.NodeClassRef.Name = "other" }, true},
		{"requirements are checked on their own", func(np *karpv1.NodePool) { np.Spec.Template.Spec.Requirements = nil }, false},
		{"limits", func(np *karpv1.NodePool) { np.Spec.Limits = nil }, false},
		{"expireAfter", func(np *karpv1.NodePool) { np.Spec.Template.Spec.ExpireAfter = nil }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			np := testNodePool()
			tc.modify(np)
			if got := NodePoolHash(np) != base; got != tc.drifted {
				t.Errorf("hash changed = %v, want %v", got, tc.drifted)
			}
		})
	}
}

func TestNodeClass(t *testing.T) {
	t.Parallel()
	nc := &awsv1.EC2NodeClass{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: awsv1.EC2NodeClassSpec{
			SubnetSelectorTerms: []awsv1.SubnetSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": "c"}}},
			Kubelet:             &awsv1.KubeletConfiguration{MaxPods: new(int32(58)), KubeReserved: map[string]string{"cpu": "100m"}, EvictionHard: map[string]string{"memory.available": "5%"}},
			InterruptionQueue:   "q",
		},
		Status: awsv1.EC2NodeClassStatus{
			Subnets:        []awsv1.Subnet{{ID: "subnet-1", Zone: "us-east-1a", ZoneID: "use1-az1"}},
			SecurityGroups: []awsv1.SecurityGroup{{ID: "sg-1", Name: "nodes"}},
			AMIs:           []awsv1.AMI{{ID: "ami-1", Name: "al2023", Requirements: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}}}}},
		},
	}
	got, err := NodeClass(nc)
	if err != nil {
		t.Fatalf("NodeClass: %v", err)
	}
	want := &clusterv1.NodeClass{
		Name: "default", Ready: true, InterruptionQueue: "q", Hash: NodeClassHash(nc),
		Subnets:        []*clusterv1.Subnet{{Id: "subnet-1", Zone: "us-east-1a", ZoneId: "use1-az1"}},
		SecurityGroups: []string{"sg-1"},
		Images:         []*clusterv1.Image{{Id: "ami-1", Name: "al2023", Requirements: []*clusterv1.Requirement{{Key: "kubernetes.io/arch", Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"amd64"}}}}},
		Kubelet:        &clusterv1.Kubelet{MaxPods: 58, KubeReserved: map[string]string{"cpu": "100m"}, EvictionHard: map[string]string{"memory.available": "5%"}},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("NodeClass mismatch (-want +got):\n%s", diff)
	}

	// Resolved subnets do not change the hash; launch settings do.
	moved := nc.DeepCopy()
	moved.Status.Subnets = nil
	moved.Spec.SubnetSelectorTerms = nil
	if NodeClassHash(moved) != NodeClassHash(nc) {
		t.Errorf("hash moved with the subnets")
	}
	moved.Spec.Kubelet.MaxPods = new(int32(10))
	if NodeClassHash(moved) == NodeClassHash(nc) {
		t.Errorf("hash did not move with the kubelet settings")
	}

	nc.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "SubnetsNotFound"}}
	got, err = NodeClass(nc)
	if err != nil {
		t.Fatalf("NodeClass: %v", err)
	}
	if got.GetReady() || got.GetNotReadyReason() != "EC2NodeClass default is not ready: SubnetsNotFound" {
		t.Errorf("ready %v reason %q", got.GetReady(), got.GetNotReadyReason())
	}
}

func TestLinkNodeClasses(t *testing.T) {
	t.Parallel()
	pools := []*clusterv1.NodePool{
		{Name: "ok", NodeClass: "good", Ready: true},
		{Name: "missing", NodeClass: "gone", Ready: true},
		{Name: "blocked", NodeClass: "bad", Ready: true},
	}
	classes := []*clusterv1.NodeClass{{Name: "good", Ready: true}, {Name: "bad", NotReadyReason: "EC2NodeClass bad is not ready: no subnets"}}
	LinkNodeClasses(pools, classes)
	got := map[string]string{}
	for _, p := range pools {
		if !p.GetReady() {
			got[p.GetName()] = p.GetNotReadyReason()
		}
	}
	want := map[string]string{
		"missing": "NodePool missing: EC2NodeClass gone not found",
		"blocked": "NodePool blocked: EC2NodeClass bad is not ready: no subnets",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("not-ready reasons mismatch (-want +got):\n%s", diff)
	}
}

func TestDaemonSet(t *testing.T) {
	t.Parallel()
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-node", UID: "ds-uid"},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"k8s-app": "aws-node"}},
			Spec: corev1.PodSpec{
				HostNetwork: true,
				Containers: []corev1.Container{{Name: "cni", Ports: []corev1.ContainerPort{{ContainerPort: 61678}},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("25m")}}}},
				Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}, {Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}},
			},
		}},
	}
	got, err := DaemonSet(ds, Lookup{})
	if err != nil {
		t.Fatalf("DaemonSet: %v", err)
	}
	tol := func(key, effect string) *clusterv1.Toleration {
		return &clusterv1.Toleration{Key: key, Operator: "Exists", Effect: effect}
	}
	want := &clusterv1.DaemonSet{Namespace: "kube-system", Name: "aws-node", Template: &clusterv1.Pod{
		Namespace: "kube-system", Name: "aws-node", Labels: map[string]string{"k8s-app": "aws-node"},
		OwnerKind: "DaemonSet", OwnerName: "aws-node",
		Containers: []*clusterv1.Container{{Name: "cni", Requests: &clusterv1.Resources{CpuMillis: 25}, HostPorts: []*clusterv1.HostPort{{Port: 61678}}}},
		Tolerations: []*clusterv1.Toleration{
			{Operator: "Exists"},
			tol("node.kubernetes.io/not-ready", "NoExecute"),
			tol("node.kubernetes.io/unreachable", "NoExecute"),
			tol("node.kubernetes.io/disk-pressure", "NoSchedule"),
			tol("node.kubernetes.io/memory-pressure", "NoSchedule"),
			tol("node.kubernetes.io/pid-pressure", "NoSchedule"),
			tol("node.kubernetes.io/unschedulable", "NoSchedule"),
			tol("node.kubernetes.io/network-unavailable", "NoSchedule"),
		},
	}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("DaemonSet mismatch (-want +got):\n%s", diff)
	}
	if len(ds.Spec.Template.Spec.Tolerations) != 2 {
		t.Errorf("conversion changed the DaemonSet's own tolerations: %v", ds.Spec.Template.Spec.Tolerations)
	}

	ds.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory] = resource.MustParse("-1Mi")
	_, err = DaemonSet(ds, Lookup{})
	var oe *ObjectError
	if !errors.As(err, &oe) || oe.Field() != "spec.template.spec.containers[0].resources.requests[memory]" || oe.Kind != "DaemonSet" {
		t.Errorf("error = %v, want one naming DaemonSet spec.template.spec.containers[0].resources.requests[memory]", err)
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	t.Parallel()
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: new(intstr.FromInt32(2)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}, MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"batch"}}}},
		},
		Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 1},
	}
	got, err := PodDisruptionBudget(pdb)
	if err != nil {
		t.Fatalf("PodDisruptionBudget: %v", err)
	}
	want := &clusterv1.PodDisruptionBudget{Namespace: "default", Name: "web", DisruptionsAllowed: 1, Selector: &clusterv1.LabelSelector{Requirements: []*clusterv1.Requirement{
		{Key: "app", Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"web"}},
		{Key: "tier", Operator: clusterv1.Operator_OPERATOR_NOT_IN, Values: []string{"batch"}},
	}}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("PodDisruptionBudget mismatch (-want +got):\n%s", diff)
	}
}

func TestResourcesRejectsOutOfRange(t *testing.T) {
	t.Parallel()
	for _, q := range []string{"-1", "10E"} {
		if _, err := Resources("r", corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(q)}); err == nil {
			t.Errorf("cpu %s: no error", q)
		}
	}
	got, err := Resources("r", corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0.0001"), corev1.ResourceMemory: resource.MustParse("1.5Ki")})
	if err != nil {
		t.Fatal(err)
	}
	// Fractions round up, as Kubernetes rounds requests.
	if got.GetCpuMillis() != 1 || got.GetMemoryBytes() != 1536 {
		t.Errorf("got cpu %d memory %d, want 1 and 1536", got.GetCpuMillis(), got.GetMemoryBytes())
	}
}
