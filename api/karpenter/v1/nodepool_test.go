package v1_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

// decodeFile strictly decodes a YAML file into out.
func decodeFile(t *testing.T, path string, out any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, out); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
}

// roundTrip encodes in to YAML and strictly decodes it into out.
func roundTrip(t *testing.T, in, out any) {
	t.Helper()
	data, err := yaml.Marshal(in)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	if err := yaml.UnmarshalStrict(data, out); err != nil {
		t.Fatalf("decode own output: %v\n%s", err, data)
	}
}

func TestNodePoolExamplesRoundTrip(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/nodepool-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			var np karpv1.NodePool
			decodeFile(t, f, &np)
			var again karpv1.NodePool
			roundTrip(t, &np, &again)
			if diff := cmp.Diff(np, again); diff != "" {
				t.Errorf("round trip changed the NodePool (-before +after):\n%s", diff)
			}
			if dc := np.DeepCopy(); !cmp.Equal(dc, &np) {
				t.Errorf("DeepCopy differs: %s", cmp.Diff(&np, dc))
			}
		})
	}
}

func TestNodePoolDecodesEveryField(t *testing.T) {
	t.Parallel()
	var np karpv1.NodePool
	decodeFile(t, "testdata/nodepool-full.yaml", &np)
	weight := int32(50)
	two, five := 2, 5
	schedule, daily := "0 9 * * mon-fri", "@daily"
	want := karpv1.NodePoolSpec{
		Template: karpv1.NodeClaimTemplate{
			TemplateMetadata: karpv1.TemplateMetadata{
				Labels: map[string]string{
					"team":                        "data",
					"node.kubernetes.io/pool":     "batch",
					"topology.kubernetes.io/zone": "us-east-1a",
				},
				Annotations: map[string]string{"example.com/owner": "data-platform"},
			},
			Spec: karpv1.NodeClaimTemplateSpec{
				NodeClassRef:           karpv1.NodeClassReference{Group: "karpenter.k8s.aws", Kind: "EC2NodeClass", Name: "batch"},
				Taints:                 []corev1.Taint{{Key: "example.com/batch", Value: "true", Effect: corev1.TaintEffectNoSchedule}},
				StartupTaints:          []corev1.Taint{{Key: "example.com/agent-not-ready", Effect: corev1.TaintEffectNoExecute}},
				ExpireAfter:            karpv1.NeverDuration(),
				TerminationGracePeriod: &metav1.Duration{Duration: 48 * time.Hour},
				Requirements: []karpv1.NodeSelectorRequirementWithMinValues{
					{Key: karpv1.CapacityTypeLabelKey, Operator: karpv1.OperatorIn, Values: []string{"spot", "on-demand"}},
					{Key: karpv1.LabelInstanceFamily, Operator: karpv1.OperatorExists, MinValues: &five},
					{Key: karpv1.LabelInstanceType, Operator: karpv1.OperatorIn, Values: []string{"m5.large", "m5.xlarge", "m6i.large", "c5.large"}, MinValues: &two},
					{Key: karpv1.LabelInstanceCPU, Operator: karpv1.OperatorLt, Values: []string{"65"}},
					{Key: karpv1.LabelInstanceGPUCount, Operator: karpv1.OperatorDoesNotExist},
					{Key: karpv1.LabelTopologyZone, Operator: karpv1.OperatorNotIn, Values: []string{"us-east-1e"}},
					{Key: "example.com/custom", Operator: karpv1.OperatorExists},
				},
			},
		},
		Disruption: karpv1.Disruption{
			ConsolidationPolicy: karpv1.ConsolidationPolicyWhenEmpty,
			ConsolidateAfter:    karpv1.NillableDuration{Duration: 10 * time.Minute},
			Budgets: []karpv1.Budget{
				{Nodes: "20%", Reasons: []karpv1.DisruptionReason{karpv1.DisruptionReasonEmpty, karpv1.DisruptionReasonDrifted}},
				{Nodes: "5"},
				{Nodes: "0", Schedule: &schedule, Duration: &metav1.Duration{Duration: 8 * time.Hour}, Reasons: []karpv1.DisruptionReason{karpv1.DisruptionReasonUnderutilized, karpv1.DisruptionReasonExpired}},
				{Nodes: "1", Schedule: &daily, Duration: &metav1.Duration{Duration: 90 * time.Minute}},
			},
		},
		Limits: karpv1.Limits{
			corev1.ResourceCPU:    resource.MustParse("500"),
			corev1.ResourceMemory: resource.MustParse("2000Gi"),
			"nvidia.com/gpu":      resource.MustParse("8"),
		},
		Weight: &weight,
	}
	if diff := cmp.Diff(want, np.Spec); diff != "" {
		t.Errorf("decoded spec mismatch (-want +got):\n%s", diff)
	}
}

func TestNodePoolRejectsUnknownFields(t *testing.T) {
	t.Parallel()
	// consolidationPolicy under template.spec is a typical misplacement.
	in := []byte(`
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: x}
spec:
  template:
    spec:
      consolidationPolicy: WhenEmpty
      requirements: []
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}
`)
	var np karpv1.NodePool
	if err := yaml.UnmarshalStrict(in, &np); err == nil {
		t.Fatal("strict decode accepted an unknown field")
	}
}

func TestNodePoolSetDefaults(t *testing.T) {
	t.Parallel()
	var np karpv1.NodePool
	if err := yaml.UnmarshalStrict([]byte(`
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: minimal}
spec:
  template:
    spec:
      requirements: []
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}
`), &np); err != nil {
		t.Fatal(err)
	}
	np.SetDefaults()
	want := karpv1.Disruption{
		ConsolidationPolicy: karpv1.ConsolidationPolicyWhenEmptyOrUnderutilized,
		Budgets:             []karpv1.Budget{{Nodes: "10%"}},
	}
	if diff := cmp.Diff(want, np.Spec.Disruption); diff != "" {
		t.Errorf("defaulted disruption mismatch (-want +got):\n%s", diff)
	}
	if d, ok := np.Spec.Template.Spec.ExpireAfter.Get(); !ok || d != 720*time.Hour {
		t.Errorf("expireAfter = %v, %v; want 720h", d, ok)
	}

	// Explicit values survive.
	np.Spec.Disruption.ConsolidationPolicy = karpv1.ConsolidationPolicyWhenEmpty
	np.Spec.Template.Spec.ExpireAfter = karpv1.NeverDuration()
	np.SetDefaults()
	if np.Spec.Disruption.ConsolidationPolicy != karpv1.ConsolidationPolicyWhenEmpty {
		t.Errorf("SetDefaults overwrote consolidationPolicy")
	}
	if _, ok := np.Spec.Template.Spec.ExpireAfter.Get(); ok {
		t.Errorf("SetDefaults overwrote expireAfter Never")
	}
}

func TestNodeClaimExampleRoundTrips(t *testing.T) {
	t.Parallel()
	var nc karpv1.NodeClaim
	decodeFile(t, "testdata/nodeclaim.yaml", &nc)
	var again karpv1.NodeClaim
	roundTrip(t, &nc, &again)
	if diff := cmp.Diff(nc, again); diff != "" {
		t.Errorf("round trip changed the NodeClaim (-before +after):\n%s", diff)
	}
	if !nc.IsTrue(karpv1.ConditionTypeLaunched) || nc.IsTrue(karpv1.ConditionTypeInitialized) {
		t.Errorf("conditions: Launched=%v Initialized=%v, want true, false",
			nc.IsTrue(karpv1.ConditionTypeLaunched), nc.IsTrue(karpv1.ConditionTypeInitialized))
	}
	if got := nc.Status.Allocatable.Cpu().MilliValue(); got != 1930 {
		t.Errorf("allocatable cpu = %dm, want 1930m", got)
	}
	if got := nc.Status.LastPodEventTime.UTC(); !got.Equal(time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)) {
		t.Errorf("lastPodEventTime = %v", got)
	}
}
