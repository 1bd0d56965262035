package v1alpha5_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	"github.com/flotilla-dev/flotilla/api/aws/v1alpha5"
	"github.com/flotilla-dev/flotilla/api/crds"
	"github.com/flotilla-dev/flotilla/api/crds/crdtest"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

func readSeed(t *testing.T) []byte {
	t.Helper()
	// testdata/seed-provisioner.yaml is a verbatim copy of the brief's file.
	data, err := os.ReadFile("testdata/seed-provisioner.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func decode(t *testing.T, data []byte) *v1alpha5.Provisioner {
	t.Helper()
	var p v1alpha5.Provisioner
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatalf("decode provisioner: %v", err)
	}
	return &p
}

func req(key string, op corev1.NodeSelectorOperator, values ...string) karpv1.NodeSelectorRequirementWithMinValues {
	return karpv1.NodeSelectorRequirementWithMinValues{Key: key, Operator: op, Values: values}
}

func TestSeedProvisionerConverts(t *testing.T) {
	t.Parallel()
	p := decode(t, readSeed(t))

	gotPool, gotClass, err := p.Convert()
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	meta := metav1.ObjectMeta{Name: "default", Labels: map[string]string{"karpenter.sh/provisioner-name": "default"}}
	wantPool := &karpv1.NodePool{
		TypeMeta:   metav1.TypeMeta{APIVersion: "karpenter.sh/v1", Kind: "NodePool"},
		ObjectMeta: meta,
		Spec: karpv1.NodePoolSpec{
			Template: karpv1.NodeClaimTemplate{
				TemplateMetadata: karpv1.TemplateMetadata{
					Labels: map[string]string{"karpenter.sh/provisioner-name": "default"},
				},
				Spec: karpv1.NodeClaimTemplateSpec{
					Requirements: []karpv1.NodeSelectorRequirementWithMinValues{
						req("node.kubernetes.io/instance-type", corev1.NodeSelectorOpIn, "t3.medium", "t3.large"),
						req("karpenter.sh/capacity-type", corev1.NodeSelectorOpIn, "on-demand"),
						req("kubernetes.io/arch", corev1.NodeSelectorOpIn, "amd64"),
					},
					NodeClassRef: karpv1.NodeClassReference{Group: "karpenter.k8s.aws", Kind: "EC2NodeClass", Name: "default"},
					ExpireAfter:  karpv1.NeverDuration(),
				},
			},
			Disruption: karpv1.Disruption{
				ConsolidationPolicy: karpv1.ConsolidationPolicyWhenEmpty,
				ConsolidateAfter:    karpv1.NillableDuration{Duration: v1alpha5.DefaultEmptyAfter},
				Budgets:             []karpv1.Budget{{Nodes: "100%"}},
			},
			Limits: karpv1.Limits{
				corev1.ResourceCPU:    resource.MustParse("100"),
				corev1.ResourceMemory: resource.MustParse("200Gi"),
			},
		},
	}
	if diff := cmp.Diff(wantPool, gotPool); diff != "" {
		t.Errorf("NodePool mismatch (-want +got):\n%s", diff)
	}
	discovery := map[string]string{"karpenter.sh/discovery": "my-cluster"}
	wantClass := &awsv1.EC2NodeClass{
		TypeMeta:   metav1.TypeMeta{APIVersion: "karpenter.k8s.aws/v1", Kind: "EC2NodeClass"},
		ObjectMeta: meta,
		Spec: awsv1.EC2NodeClassSpec{
			SubnetSelectorTerms:        []awsv1.SubnetSelectorTerm{{Tags: discovery}},
			SecurityGroupSelectorTerms: []awsv1.SecurityGroupSelectorTerm{{Tags: discovery}},
			AMISelectorTerms:           []awsv1.AMISelectorTerm{{Alias: "al2023@latest"}},
		},
	}
	if diff := cmp.Diff(wantClass, gotClass); diff != "" {
		t.Errorf("EC2NodeClass mismatch (-want +got):\n%s", diff)
	}
}

// TestConvertedObjectsAreAccepted admits the seed Provisioner and what it
// maps to through the generated CRDs, as an API server would.
func TestConvertedObjectsAreAccepted(t *testing.T) {
	t.Parallel()
	var manifests [][]byte
	for _, m := range crds.All() {
		manifests = append(manifests, m.Data)
	}
	v, err := crdtest.New(manifests...)
	if err != nil {
		t.Fatal(err)
	}
	seed := readSeed(t)
	if _, err := v.Create(seed); err != nil {
		t.Fatalf("the Provisioner CRD rejects the brief's Provisioner: %v", err)
	}
	for name, in := range map[string][]byte{"seed": seed, "full": []byte(fullProvisioner)} {
		pool, class, err := decode(t, in).Convert()
		if err != nil {
			t.Fatalf("%s: Convert: %v", name, err)
		}
		for _, obj := range []any{pool, class} {
			data, err := yaml.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Create(data); err != nil {
				t.Errorf("%s: converted object rejected: %v\n%s", name, err, data)
			}
		}
	}
}

const fullProvisioner = `
apiVersion: karpenter.k8s.aws/v1alpha5
kind: Provisioner
metadata:
  name: spot
  uid: 6f1c8a2e-0000-4000-8000-000000000001
spec:
  labels:
    team: web
    karpenter.sh/capacity-type: spot
  annotations:
    example.com/owner: web
  taints:
    - {key: example.com/web, value: "true", effect: NoSchedule}
  startupTaints:
    - {key: example.com/agent, effect: NoExecute}
  requirements:
    - key: karpenter.k8s.aws/instance-category
      operator: In
      values: [c, m]
    - key: kubernetes.io/arch
      operator: In
      values: [arm64, amd64]
  kubeletConfiguration:
    containerRuntime: containerd
    maxPods: 58
    systemReserved: {cpu: 100m}
  ttlSecondsUntilExpired: 2592000
  consolidation:
    enabled: true
  limits:
    resources:
      cpu: 1000
  weight: 10
  provider:
    amiFamily: Bottlerocket
    subnetSelector:
      aws::ids: "subnet-b, subnet-a"
    securityGroupSelector:
      aws-ids: sg-1
    instanceProfile: WebNodes
    tags: {team: web}
    metadataOptions:
      httpTokens: required
    blockDeviceMappings:
      - deviceName: /dev/xvda
        ebs: {volumeSize: 50Gi, volumeType: gp3}
    userData: "echo hi"
    detailedMonitoring: true
`

func TestFullProvisionerConverts(t *testing.T) {
	t.Parallel()
	pool, class, err := decode(t, []byte(fullProvisioner)).Convert()
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	controller := true
	owner := []metav1.OwnerReference{{
		APIVersion: "karpenter.k8s.aws/v1alpha5", Kind: "Provisioner", Name: "spot",
		UID: types.UID("6f1c8a2e-0000-4000-8000-000000000001"), Controller: &controller,
	}}
	if diff := cmp.Diff(owner, pool.OwnerReferences); diff != "" {
		t.Errorf("NodePool owner mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(owner, class.OwnerReferences); diff != "" {
		t.Errorf("EC2NodeClass owner mismatch (-want +got):\n%s", diff)
	}
	weight := int32(10)
	wantSpec := karpv1.NodePoolSpec{
		Template: karpv1.NodeClaimTemplate{
			TemplateMetadata: karpv1.TemplateMetadata{
				Labels:      map[string]string{"team": "web", "karpenter.sh/capacity-type": "spot", "karpenter.sh/provisioner-name": "spot"},
				Annotations: map[string]string{"example.com/owner": "web"},
			},
			Spec: karpv1.NodeClaimTemplateSpec{
				Taints:        []corev1.Taint{{Key: "example.com/web", Value: "true", Effect: corev1.TaintEffectNoSchedule}},
				StartupTaints: []corev1.Taint{{Key: "example.com/agent", Effect: corev1.TaintEffectNoExecute}},
				// capacity-type is fixed by a label and arch and category
				// by requirements, so no defaults are added.
				Requirements: []karpv1.NodeSelectorRequirementWithMinValues{
					req("karpenter.k8s.aws/instance-category", corev1.NodeSelectorOpIn, "c", "m"),
					req("kubernetes.io/arch", corev1.NodeSelectorOpIn, "arm64", "amd64"),
				},
				NodeClassRef: karpv1.NodeClassReference{Group: "karpenter.k8s.aws", Kind: "EC2NodeClass", Name: "spot"},
				ExpireAfter:  karpv1.NewDuration(720 * time.Hour),
			},
		},
		Disruption: karpv1.Disruption{
			ConsolidationPolicy: karpv1.ConsolidationPolicyWhenEmptyOrUnderutilized,
			Budgets:             []karpv1.Budget{{Nodes: "100%"}},
		},
		Limits: karpv1.Limits{corev1.ResourceCPU: resource.MustParse("1000")},
		Weight: &weight,
	}
	if diff := cmp.Diff(wantSpec, pool.Spec); diff != "" {
		t.Errorf("NodePool spec mismatch (-want +got):\n%s", diff)
	}
	maxPods, required, monitoring := int32(58), "required", true
	size := resource.MustParse("50Gi")
	device, gp3 := "/dev/xvda", "gp3"
	wantClass := awsv1.EC2NodeClassSpec{
		SubnetSelectorTerms:        []awsv1.SubnetSelectorTerm{{ID: "subnet-a"}, {ID: "subnet-b"}},
		SecurityGroupSelectorTerms: []awsv1.SecurityGroupSelectorTerm{{ID: "sg-1"}},
		AMISelectorTerms:           []awsv1.AMISelectorTerm{{Alias: "bottlerocket@latest"}},
		InstanceProfile:            "WebNodes",
		Tags:                       map[string]string{"team": "web"},
		Kubelet:                    &awsv1.KubeletConfiguration{MaxPods: &maxPods, SystemReserved: map[string]string{"cpu": "100m"}},
		MetadataOptions:            &awsv1.MetadataOptions{HTTPTokens: &required},
		BlockDeviceMappings:        []awsv1.BlockDeviceMapping{{DeviceName: &device, EBS: &awsv1.BlockDevice{VolumeSize: &size, VolumeType: &gp3}}},
		UserData:                   "echo hi",
		DetailedMonitoring:         &monitoring,
	}
	if diff := cmp.Diff(wantClass, class.Spec); diff != "" {
		t.Errorf("EC2NodeClass spec mismatch (-want +got):\n%s", diff)
	}
}

func TestConvertDisruptionAndExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		spec       string
		wantPolicy karpv1.ConsolidationPolicy
		wantAfter  karpv1.NillableDuration
		wantExpire *karpv1.NillableDuration
	}{
		{
			name:       "nothing set removes empty nodes after the default and never expires",
			spec:       ``,
			wantPolicy: karpv1.ConsolidationPolicyWhenEmpty, wantAfter: karpv1.NillableDuration{Duration: v1alpha5.DefaultEmptyAfter},
			wantExpire: karpv1.NeverDuration(),
		},
		{
			name:       "ttlSecondsAfterEmpty",
			spec:       `ttlSecondsAfterEmpty: 30`,
			wantPolicy: karpv1.ConsolidationPolicyWhenEmpty, wantAfter: karpv1.NillableDuration{Duration: 30 * time.Second},
			wantExpire: karpv1.NeverDuration(),
		},
		{
			name:       "ttlSecondsAfterEmpty zero",
			spec:       `ttlSecondsAfterEmpty: 0`,
			wantPolicy: karpv1.ConsolidationPolicyWhenEmpty, wantAfter: karpv1.NillableDuration{},
			wantExpire: karpv1.NeverDuration(),
		},
		{
			name:       "consolidation enabled",
			spec:       "consolidation: {enabled: true}\n  ttlSecondsUntilExpired: 86400",
			wantPolicy: karpv1.ConsolidationPolicyWhenEmptyOrUnderutilized, wantAfter: karpv1.NillableDuration{},
			wantExpire: karpv1.NewDuration(24 * time.Hour),
		},
		{
			name:       "consolidation disabled",
			spec:       `consolidation: {enabled: false}`,
			wantPolicy: karpv1.ConsolidationPolicyWhenEmpty, wantAfter: karpv1.NillableDuration{Never: true},
			wantExpire: karpv1.NeverDuration(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := decode(t, []byte(provisionerWith(tc.spec)))
			pool, _, err := p.Convert()
			if err != nil {
				t.Fatal(err)
			}
			if got := pool.Spec.Disruption.ConsolidationPolicy; got != tc.wantPolicy {
				t.Errorf("consolidationPolicy = %s, want %s", got, tc.wantPolicy)
			}
			if got := pool.Spec.Disruption.ConsolidateAfter; !got.Equal(tc.wantAfter) {
				t.Errorf("consolidateAfter = %s, want %s", got, tc.wantAfter)
			}
			if got := pool.Spec.Template.Spec.ExpireAfter; !got.Equal(*tc.wantExpire) {
				t.Errorf("expireAfter = %s, want %s", got, tc.wantExpire)
			}
		})
	}
}

// provisionerWith is a minimal Provisioner with extra spec lines.
func provisionerWith(spec string) string {
	return `
apiVersion: karpenter.k8s.aws/v1alpha5
kind: Provisioner
metadata: {name: p}
spec:
  ` + spec + `
  provider:
    subnetSelector: {karpenter.sh/discovery: c}
    securityGroupSelector: {karpenter.sh/discovery: c}
`
}

func TestConvertDefaultsInstanceCategories(t *testing.T) {
	t.Parallel()
	pool, _, err := decode(t, []byte(provisionerWith(""))).Convert()
	if err != nil {
		t.Fatal(err)
	}
	want := []karpv1.NodeSelectorRequirementWithMinValues{
		req("karpenter.sh/capacity-type", corev1.NodeSelectorOpIn, "on-demand"),
		req("kubernetes.io/arch", corev1.NodeSelectorOpIn, "amd64"),
		req("karpenter.k8s.aws/instance-category", corev1.NodeSelectorOpIn, "c", "m", "r"),
		req("karpenter.k8s.aws/instance-generation", corev1.NodeSelectorOpGt, "2"),
	}
	if diff := cmp.Diff(want, pool.Spec.Template.Spec.Requirements); diff != "" {
		t.Errorf("requirements mismatch (-want +got):\n%s", diff)
	}
}

func TestConvertProviderRef(t *testing.T) {
	t.Parallel()
	p := decode(t, []byte(`
apiVersion: karpenter.k8s.aws/v1alpha5
kind: Provisioner
metadata: {name: p}
spec:
  providerRef: {name: shared, kind: AWSNodeTemplate}
`))
	pool, class, err := p.Convert()
	if err != nil {
		t.Fatal(err)
	}
	if class != nil {
		t.Errorf("EC2NodeClass = %v, want nil for providerRef", class.Name)
	}
	want := karpv1.NodeClassReference{Group: "karpenter.k8s.aws", Kind: "EC2NodeClass", Name: "shared"}
	if diff := cmp.Diff(want, pool.Spec.Template.Spec.NodeClassRef); diff != "" {
		t.Errorf("nodeClassRef mismatch (-want +got):\n%s", diff)
	}
}

func TestConvertAMISelector(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		provider   string
		wantFamily string
		want       []awsv1.AMISelectorTerm
	}{
		{
			name:     "family alias",
			provider: `amiFamily: AL2`,
			want:     []awsv1.AMISelectorTerm{{Alias: "al2@latest"}},
		},
		{
			name:       "ids",
			provider:   `amiSelector: {aws::ids: "ami-2,ami-1"}`,
			wantFamily: "AL2023",
			want:       []awsv1.AMISelectorTerm{{ID: "ami-1"}, {ID: "ami-2"}},
		},
		{
			name:       "name, owners and tags",
			provider:   "amiFamily: Custom\n    amiSelector: {aws::name: my-ami-*, aws::owners: \"self,123456789012\", team: web}",
			wantFamily: "Custom",
			want: []awsv1.AMISelectorTerm{
				{Name: "my-ami-*", Owner: "123456789012", Tags: map[string]string{"team": "web"}},
				{Name: "my-ami-*", Owner: "self", Tags: map[string]string{"team": "web"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, class, err := decode(t, []byte(providerWith(tc.provider))).Convert()
			if err != nil {
				t.Fatal(err)
			}
			if class.Spec.AMIFamily != tc.wantFamily {
				t.Errorf("amiFamily = %q, want %q", class.Spec.AMIFamily, tc.wantFamily)
			}
			if diff := cmp.Diff(tc.want, class.Spec.AMISelectorTerms); diff != "" {
				t.Errorf("amiSelectorTerms mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// providerWith is a minimal Provisioner with extra provider lines.
func providerWith(provider string) string {
	return `
apiVersion: karpenter.k8s.aws/v1alpha5
kind: Provisioner
metadata: {name: p}
spec:
  provider:
    subnetSelector: {karpenter.sh/discovery: c}
    securityGroupSelector: {karpenter.sh/discovery: c}
    ` + provider + `
`
}

func TestConvertErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
	}{
		{name: "ubuntu", in: providerWith(`amiFamily: Ubuntu`)},
		{name: "custom without selector", in: providerWith(`amiFamily: Custom`)},
		{name: "ids with tags", in: `
apiVersion: karpenter.k8s.aws/v1alpha5
kind: Provisioner
metadata: {name: p}
spec:
  provider:
    subnetSelector: {aws::ids: subnet-1, team: a}
    securityGroupSelector: {karpenter.sh/discovery: c}
`},
		{name: "subnet id without prefix", in: `
apiVersion: karpenter.k8s.aws/v1alpha5
kind: Provisioner
metadata: {name: p}
spec:
  provider:
    subnetSelector: {aws::ids: "subnet-1, sg-2"}
    securityGroupSelector: {karpenter.sh/discovery: c}
`},
		{name: "ami id without prefix", in: providerWith(`amiSelector: {aws::ids: "image-1"}`)},
		{name: "ami ids with name", in: providerWith(`amiSelector: {aws::ids: ami-1, aws::name: x}`)},
		{name: "owners alone", in: providerWith(`amiSelector: {aws::owners: self}`)},
		{name: "dockerd", in: provisionerWith("kubeletConfiguration: {containerRuntime: dockerd}")},
		{name: "kubelet with providerRef", in: `
apiVersion: karpenter.k8s.aws/v1alpha5
kind: Provisioner
metadata: {name: p}
spec:
  providerRef: {name: shared}
  kubeletConfiguration: {maxPods: 10}
`},
		{name: "neither provider nor providerRef", in: `
apiVersion: karpenter.k8s.aws/v1alpha5
kind: Provisioner
metadata: {name: p}
spec: {}
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool, class, err := decode(t, []byte(tc.in)).Convert()
			if !errors.Is(err, v1alpha5.ErrNotConvertible) {
				t.Fatalf("Convert() error = %v, want ErrNotConvertible", err)
			}
			if pool != nil || class != nil {
				t.Errorf("Convert() returned objects with an error")
			}
		})
	}
}
