package snapshot

import (
	"errors"
	"testing"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

var created = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))

func basePod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1", UID: "u1", Labels: map[string]string{"app": "web"}, CreationTimestamp: created},
		Spec: corev1.PodSpec{
			SchedulerName: "default-scheduler",
			Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("1Gi"),
			}}}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
}

func baseModel() *clusterv1.Pod {
	return &clusterv1.Pod{
		Namespace: "default", Name: "web-1", Uid: "u1", Labels: map[string]string{"app": "web"},
		Containers:    []*clusterv1.Container{{Name: "app", Requests: &clusterv1.Resources{CpuMillis: 250, MemoryBytes: 1 << 30}}},
		Phase:         "Pending",
		Created:       timestamppb.New(created.Time),
		SchedulerName: "default-scheduler",
	}
}

func TestPod(t *testing.T) {
	t.Parallel()
	always := corev1.ContainerRestartPolicyAlways
	honor, ignore := corev1.NodeInclusionPolicyHonor, corev1.NodeInclusionPolicyIgnore
	tests := []struct {
		name   string
		modify func(p *corev1.Pod)
		want   func(m *clusterv1.Pod)
	}{
		{name: "plain pending pod", modify: func(*corev1.Pod) {}, want: func(*clusterv1.Pod) {}},
		{
			name: "unschedulable, bound, priority, owner, terminating",
			modify: func(p *corev1.Pod) {
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable"}}
				p.Spec.NodeName = "node-a"
				p.Spec.Priority = new(int32(1000))
				p.OwnerReferences = []metav1.OwnerReference{
					{Kind: "Other", Name: "x"},
					{Kind: "ReplicaSet", Name: "web-abc", Controller: new(true)},
				}
				now := metav1.Now()
				p.DeletionTimestamp = &now
			},
			want: func(m *clusterv1.Pod) {
				m.Unschedulable = true
				m.NodeName = "node-a"
				m.Priority = 1000
				m.OwnerKind, m.OwnerName = "ReplicaSet", "web-abc"
				m.Terminating = true
			},
		},
		{
			name: "PodScheduled False for another reason is not unschedulable",
			modify: func(p *corev1.Pod) {
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "SchedulingGated"}}
			},
			want: func(*clusterv1.Pod) {},
		},
		{
			name: "sidecar and plain init containers, overhead, limits as requests, extended resources",
			modify: func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{
					{Name: "init", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}},
					{Name: "proxy", RestartPolicy: &always, Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")}}},
				}
				p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{
					corev1.ResourceCPU:              resource.MustParse("1"),
					"nvidia.com/gpu":                resource.MustParse("1"),
					corev1.ResourceEphemeralStorage: resource.MustParse("10G"),
				}
				p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
			},
			want: func(m *clusterv1.Pod) {
				m.InitContainers = []*clusterv1.Container{
					{Name: "init", Requests: &clusterv1.Resources{CpuMillis: 2000}},
					{Name: "proxy", Sidecar: true, Requests: &clusterv1.Resources{MemoryBytes: 128 << 20}},
				}
				m.Containers[0].Requests.EphemeralStorageBytes = 10_000_000_000
				m.Containers[0].Requests.Extended = map[string]int64{"nvidia.com/gpu": 1}
				m.Overhead = &clusterv1.Resources{CpuMillis: 100, MemoryBytes: 64 << 20}
			},
		},
		{
			name: "host ports, with host networking container ports count",
			modify: func(p *corev1.Pod) {
				p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: corev1.ProtocolUDP, HostIP: "10.0.0.1"}, {ContainerPort: 9090}}
				p.Spec.InitContainers = []corev1.Container{{Name: "i", Ports: []corev1.ContainerPort{{ContainerPort: 53}}}}
				p.Spec.HostNetwork = true
			},
			want: func(m *clusterv1.Pod) {
				m.Containers[0].HostPorts = []*clusterv1.HostPort{{Port: 8080, Protocol: "UDP", HostIp: "10.0.0.1"}, {Port: 9090}}
				m.InitContainers = []*clusterv1.Container{{Name: "i", HostPorts: []*clusterv1.HostPort{{Port: 53}}}}
			},
		},
		{
			name: "node selector, node affinity with matchFields, tolerations",
			modify: func(p *corev1.Pod) {
				p.Spec.NodeSelector = map[string]string{"kubernetes.io/arch": "arm64"}
				p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
						{MatchExpressions: []corev1.NodeSelectorRequirement{
							{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"us-east-1a", "us-east-1b"}},
							{Key: "karpenter.k8s.aws/instance-cpu", Operator: corev1.NodeSelectorOpGt, Values: []string{"3"}},
						}},
						{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"node-a"}}}},
					}},
					PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 10, Preference: corev1.NodeSelectorTerm{
						MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "karpenter.sh/capacity-type", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"spot"}}},
					}}},
				}}
				p.Spec.Tolerations = []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}, {Key: "team", Value: "a"}}
			},
			want: func(m *clusterv1.Pod) {
				m.NodeSelector = map[string]string{"kubernetes.io/arch": "arm64"}
				m.NodeAffinity = &clusterv1.NodeAffinity{
					Required: []*clusterv1.NodeSelectorTerm{
						{Requirements: []*clusterv1.Requirement{
							{Key: "topology.kubernetes.io/zone", Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"us-east-1a", "us-east-1b"}},
							{Key: "karpenter.k8s.aws/instance-cpu", Operator: clusterv1.Operator_OPERATOR_GT, Values: []string{"3"}},
						}},
						{Requirements: []*clusterv1.Requirement{{Key: "kubernetes.io/hostname", Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"node-a"}}}},
					},
					Preferred: []*clusterv1.WeightedNodeSelectorTerm{{Weight: 10, Term: &clusterv1.NodeSelectorTerm{Requirements: []*clusterv1.Requirement{
						{Key: "karpenter.sh/capacity-type", Operator: clusterv1.Operator_OPERATOR_NOT_IN, Values: []string{"spot"}},
					}}}},
				}
				m.Tolerations = []*clusterv1.Toleration{{Key: "gpu", Operator: "Exists", Effect: "NoSchedule"}, {Key: "team", Value: "a"}}
			},
		},
		{
			name: "pod affinity and anti-affinity: matchLabels folded, namespaces, empty namespaceSelector",
			modify: func(p *corev1.Pod) {
				p.Labels["version"] = "v2"
				p.Spec.Affinity = &corev1.Affinity{
					PodAffinity: &corev1.PodAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
							LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"b": "2", "a": "1"}},
							Namespaces:    []string{"other"},
							TopologyKey:   "topology.kubernetes.io/zone",
						}},
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 50, PodAffinityTerm: corev1.PodAffinityTerm{
							LabelSelector:     &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpExists}}},
							NamespaceSelector: &metav1.LabelSelector{},
							TopologyKey:       "kubernetes.io/hostname",
						}}},
					},
					PodAntiAffinity: &corev1.PodAntiAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
							LabelSelector:  &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
							MatchLabelKeys: []string{"version", "absent"},
							TopologyKey:    "kubernetes.io/hostname",
						}},
					},
				}
			},
			want: func(m *clusterv1.Pod) {
				m.Labels["version"] = "v2"
				m.PodAffinity = []*clusterv1.PodAffinityTerm{{
					Selector: &clusterv1.LabelSelector{Requirements: []*clusterv1.Requirement{
						{Key: "a", Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"1"}},
						{Key: "b", Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"2"}},
					}},
					Namespaces:  []string{"other"},
					TopologyKey: "topology.kubernetes.io/zone",
				}}
				m.PreferredPodAffinity = []*clusterv1.WeightedPodAffinityTerm{{Weight: 50, Term: &clusterv1.PodAffinityTerm{
					Selector:      &clusterv1.LabelSelector{Requirements: []*clusterv1.Requirement{{Key: "tier", Operator: clusterv1.Operator_OPERATOR_EXISTS}}},
					AllNamespaces: true,
					TopologyKey:   "kubernetes.io/hostname",
				}}}
				m.PodAntiAffinity = []*clusterv1.PodAffinityTerm{{
					Selector: &clusterv1.LabelSelector{Requirements: []*clusterv1.Requirement{
						{Key: "app", Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"web"}},
						{Key: "version", Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"v2"}},
					}},
					TopologyKey: "kubernetes.io/hostname",
				}}
			},
		},
		{
			name: "topology spread with Kubernetes defaults and explicit policies",
			modify: func(p *corev1.Pod) {
				p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{
					{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
					{MaxSkew: 2, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.ScheduleAnyway, MinDomains: new(int32(3)),
						NodeAffinityPolicy: &ignore, NodeTaintsPolicy: &honor, MatchLabelKeys: []string{"app"}},
				}
			},
			want: func(m *clusterv1.Pod) {
				m.TopologySpread = []*clusterv1.TopologySpreadConstraint{
					{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", DoNotSchedule: true,
						Selector: &clusterv1.LabelSelector{Requirements: []*clusterv1.Requirement{{Key: "app", Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"web"}}}}},
					{MaxSkew: 2, TopologyKey: "kubernetes.io/hostname", MinDomains: 3, NodeAffinityPolicyIgnore: true, NodeTaintsPolicyHonor: true, MatchLabelKeys: []string{"app"}},
				}
			},
		},
		{
			name: "do-not-disrupt and local storage",
			modify: func(p *corev1.Pod) {
				p.Annotations = map[string]string{"karpenter.sh/do-not-disrupt": "true"}
				p.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}, {Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			},
			want: func(m *clusterv1.Pod) {
				m.DoNotDisrupt = true
				m.LocalStorage = true
			},
		},
		{
			name: "config map volume is not local storage; do-not-disrupt needs true",
			modify: func(p *corev1.Pod) {
				p.Annotations = map[string]string{"karpenter.sh/do-not-disrupt": "false"}
				p.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}}
			},
			want: func(*clusterv1.Pod) {},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := basePod()
			tc.modify(p)
			want := baseModel()
			tc.want(want)
			got, err := Pod(p, Lookup{})
			if err != nil {
				t.Fatalf("Pod: %v", err)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Pod mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodErrorsNameTheField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(p *corev1.Pod)
		field  string
	}{
		{"negative request", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("-1")
		}, "spec.containers[0].resources.requests[cpu]"},
		{"unknown node selector operator", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "k", Operator: "Near"}}}},
			}}}
		}, "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator"},
		{"Gt with a non-integer", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "k", Operator: corev1.NodeSelectorOpGt, Values: []string{"x"}}}}},
			}}}
		}, "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values[0]"},
		{"zero maxSkew", func(p *corev1.Pod) {
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{TopologyKey: "k"}}
		}, "spec.topologySpreadConstraints[0].maxSkew"},
		{"bad toleration effect", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Effect: "Sometimes"}}
		}, "spec.tolerations[0].effect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := basePod()
			tc.modify(p)
			_, err := Pod(p, Lookup{})
			var oe *ObjectError
			if !errors.As(err, &oe) {
				t.Fatalf("Pod error = %v, want an *ObjectError", err)
			}
			if oe.Kind != "Pod" || oe.Name != "default/web-1" || oe.Field() != tc.field {
				t.Errorf("error names %s %s field %q, want Pod default/web-1 field %q (%v)", oe.Kind, oe.Name, oe.Field(), tc.field, err)
			}
		})
	}
}

// volumes is a VolumeSource over fixed objects.
type volumes struct {
	claims  map[string]*corev1.PersistentVolumeClaim
	pvs     map[string]*corev1.PersistentVolume
	classes map[string]*storagev1.StorageClass
}

func (v volumes) PersistentVolumeClaim(ns, name string) *corev1.PersistentVolumeClaim {
	return v.claims[ns+"/"+name]
}
func (v volumes) PersistentVolume(name string) *corev1.PersistentVolume { return v.pvs[name] }
func (v volumes) StorageClass(name string) *storagev1.StorageClass      { return v.classes[name] }

func TestPodVolumeTopology(t *testing.T) {
	t.Parallel()
	wffc, immediate := storagev1.VolumeBindingWaitForFirstConsumer, storagev1.VolumeBindingImmediate
	gp3, fast := "gp3", "fast"
	vs := volumes{
		claims: map[string]*corev1.PersistentVolumeClaim{
			"default/bound":     {Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-1"}},
			"default/legacy":    {Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-legacy"}},
			"default/unbound":   {Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &gp3}},
			"default/immediate": {Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &fast}},
			"default/efs":       {Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-efs"}},
			"default/nfs":       {Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-nfs"}},
		},
		pvs: map[string]*corev1.PersistentVolume{
			"pv-1": {Spec: corev1.PersistentVolumeSpec{NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "topology.ebs.csi.aws.com/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"us-east-1b"}}},
			}}}}, PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "ebs.csi.aws.com", VolumeHandle: "vol-1"}}}},
			"pv-legacy": {ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"failure-domain.beta.kubernetes.io/zone": "us-east-1c__us-east-1a"}},
				Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{AWSElasticBlockStore: &corev1.AWSElasticBlockStoreVolumeSource{VolumeID: "vol-2"}}}},
			"pv-efs": {Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "efs.csi.aws.com", VolumeHandle: "fs-1"}}}},
			"pv-nfs": {Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{NFS: &corev1.NFSVolumeSource{Server: "nfs", Path: "/"}}}},
		},
		classes: map[string]*storagev1.StorageClass{
			"gp3": {Provisioner: "ebs.csi.aws.com", VolumeBindingMode: &wffc, AllowedTopologies: []corev1.TopologySelectorTerm{{MatchLabelExpressions: []corev1.TopologySelectorLabelRequirement{
				{Key: "topology.kubernetes.io/zone", Values: []string{"us-east-1a"}},
			}}}},
			"fast": {VolumeBindingMode: &immediate, AllowedTopologies: []corev1.TopologySelectorTerm{{MatchLabelExpressions: []corev1.TopologySelectorLabelRequirement{
				{Key: "topology.kubernetes.io/zone", Values: []string{"us-east-1d"}},
			}}}},
		},
	}
	p := basePod()
	claim := func(name, claim string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}
	}
	p.Spec.Volumes = []corev1.Volume{
		claim("a", "bound"), claim("b", "legacy"), claim("c", "unbound"), claim("d", "immediate"), claim("e", "missing"),
		claim("f", "efs"), claim("g", "nfs"),
		{Name: "eph", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{
			Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &gp3},
		}}}},
	}
	got, err := Pod(p, Lookup{Volumes: vs})
	if err != nil {
		t.Fatalf("Pod: %v", err)
	}
	zone := func(zones ...string) []*clusterv1.NodeSelectorTerm {
		return []*clusterv1.NodeSelectorTerm{{Requirements: []*clusterv1.Requirement{{Key: "topology.kubernetes.io/zone", Operator: clusterv1.Operator_OPERATOR_IN, Values: zones}}}}
	}
	// Terms say where the pod may run, drivers what attaches its volumes
	// (an in-tree EBS volume is attached by the EBS CSI driver); a claim
	// with neither (immediate binding, no driver; missing; NFS) is left
	// out.
	want := []*clusterv1.VolumeTopology{
		{Claim: "bound", Terms: zone("us-east-1b"), Driver: "ebs.csi.aws.com"},
		{Claim: "legacy", Terms: zone("us-east-1a", "us-east-1c"), Driver: "ebs.csi.aws.com"},
		{Claim: "unbound", Terms: zone("us-east-1a"), Driver: "ebs.csi.aws.com"},
		{Claim: "efs", Driver: "efs.csi.aws.com"},
		{Claim: "web-1-eph", Terms: zone("us-east-1a"), Driver: "ebs.csi.aws.com"},
	}
	if diff := cmp.Diff(want, got.GetVolumes(), protocmp.Transform()); diff != "" {
		t.Errorf("volume topology mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"bound", "legacy", "unbound", "immediate", "missing", "efs", "nfs", "web-1-eph"}, ClaimNames(p)); diff != "" {
		t.Errorf("ClaimNames mismatch (-want +got):\n%s", diff)
	}
}

type namespaces map[string]map[string]string

func (n namespaces) Namespaces(sel labels.Selector) []string {
	var out []string
	for name, l := range n {
		if sel.Matches(labels.Set(l)) {
			out = append(out, name)
		}
	}
	return out
}

func TestPodAffinityNamespaceSelector(t *testing.T) {
	t.Parallel()
	ns := namespaces{"a": {"team": "x"}, "b": {"team": "x"}, "c": {"team": "y"}}
	term := func(sel map[string]string, listed ...string) *corev1.Pod {
		p := basePod()
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{}, Namespaces: listed,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: sel}, TopologyKey: "kubernetes.io/hostname",
		}}}}
		return p
	}
	tests := []struct {
		name    string
		pod     *corev1.Pod
		lookup  Lookup
		wantNS  []string
		wantAll bool
	}{
		{"resolved and merged with the listed ones", term(map[string]string{"team": "x"}, "z"), Lookup{Namespaces: ns}, []string{"a", "b", "z"}, false},
		{"matching nothing matches no pod", term(map[string]string{"team": "none"}), Lookup{Namespaces: ns}, []string{""}, false},
		{"without a resolver every namespace", term(map[string]string{"team": "x"}), Lookup{}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Pod(tc.pod, tc.lookup)
			if err != nil {
				t.Fatalf("Pod: %v", err)
			}
			term := got.GetPodAntiAffinity()[0]
			if diff := cmp.Diff(tc.wantNS, term.GetNamespaces()); diff != "" || term.GetAllNamespaces() != tc.wantAll {
				t.Errorf("namespaces %v all=%v, want %v all=%v", term.GetNamespaces(), term.GetAllNamespaces(), tc.wantNS, tc.wantAll)
			}
		})
	}
}

func TestAttachableVolumes(t *testing.T) {
	t.Parallel()
	count := func(n int32) *storagev1.VolumeNodeResources { return &storagev1.VolumeNodeResources{Count: &n} }
	tests := []struct {
		name string
		node *storagev1.CSINode
		want map[string]int64
	}{
		{"no CSINode yet", nil, nil},
		{"drivers with and without a limit", &storagev1.CSINode{Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{
			{Name: "ebs.csi.aws.com", NodeID: "i-1", Allocatable: count(25)},
			{Name: "efs.csi.aws.com", NodeID: "i-1"},
			{Name: "fsx.csi.aws.com", NodeID: "i-1", Allocatable: &storagev1.VolumeNodeResources{}},
		}}}, map[string]int64{"ebs.csi.aws.com": 25}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, AttachableVolumes(tc.node)); diff != "" {
				t.Errorf("AttachableVolumes (-want +got):\n%s", diff)
			}
		})
	}
}
