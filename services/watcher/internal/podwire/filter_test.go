package podwire

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/flotilla-dev/flotilla/api/snapshot"
)

// richPod sets every field the planner's model reads, and the heavy ones
// it does not (managed fields, images, environments, probes, statuses).
func richPod() *corev1.Pod {
	always := corev1.ContainerRestartPolicyAlways
	prio := int32(1000)
	class := "gp3"
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz"}}}
	heavy := func(name, cpu string) corev1.Container {
		return corev1.Container{
			Name: name, Image: "registry.example.com/team/" + name + ":v1.2.3", Command: []string{"/bin/" + name}, Args: []string{"--serve"},
			WorkingDir: "/srv", Env: []corev1.EnvVar{{Name: "MODE", Value: "prod"}, {Name: "TOKEN", Value: "x"}},
			EnvFrom:      []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, HostPort: 80, Protocol: corev1.ProtocolTCP}},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("256Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi"), "nvidia.com/gpu": resource.MustParse("1")},
			},
			LivenessProbe: probe, ReadinessProbe: probe, StartupProbe: probe,
			Lifecycle:                &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sleep", "5"}}}},
			TerminationMessagePath:   "/dev/termination-log",
			TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			ImagePullPolicy:          corev1.PullIfNotPresent,
			SecurityContext:          &corev1.SecurityContext{RunAsNonRoot: new(true)},
		}
	}
	sidecar := heavy("proxy", "100m")
	sidecar.RestartPolicy = &always
	now := metav1.Unix(1_700_000_100, 0)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-7d9f-abcde", Namespace: "shop", UID: "0d5e6f70-1111-2222-3333-444455556666", ResourceVersion: "12345",
			GenerateName: "web-7d9f-", CreationTimestamp: metav1.Unix(1_700_000_000, 0), DeletionTimestamp: &now,
			Labels: map[string]string{"app": "web", "pod-template-hash": "7d9f"},
			Annotations: map[string]string{
				snapshot.AnnotationDoNotDisrupt:                    "true",
				"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"v1","kind":"Pod"}`,
				"prometheus.io/scrape":                             "true",
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f", UID: "rs-uid", Controller: new(true)}},
			Finalizers:      []string{"example.com/hold"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate,
				APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{}}}`)}}},
		},
		Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-web"}}},
				{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "cache", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{
					Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &class}}}}},
				{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}},
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
			},
			InitContainers: []corev1.Container{heavy("migrate", "500m"), sidecar},
			Containers:     []corev1.Container{heavy("web", "1"), heavy("log", "50m")},
			NodeSelector:   map[string]string{"kubernetes.io/arch": "arm64"},
			NodeName:       "ip-10-0-0-1",
			HostNetwork:    true,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsUser: new(int64(1000)),
			},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "registry"}},
			Affinity: &corev1.Affinity{
				NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"us-east-1a"}}}}}}},
				PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, TopologyKey: "kubernetes.io/hostname"}}},
			},
			SchedulerName: "default-scheduler",
			Tolerations:   []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "web", Effect: corev1.TaintEffectNoSchedule}},
			HostAliases:   []corev1.HostAlias{{IP: "10.0.0.9", Hostnames: []string{"db"}}},
			Priority:      &prio,
			DNSConfig:     &corev1.PodDNSConfig{Nameservers: []string{"10.0.0.2"}},
			Overhead:      corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone",
				WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: now},
				{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available"},
				{Type: corev1.ContainersReady, Status: corev1.ConditionFalse},
			},
			Message: "evicted", Reason: "Evicted", HostIP: "10.0.0.1", ObservedGeneration: 3,
			NominatedNodeName: "ip-10-0-0-2",
			PodIP:             "10.244.0.9",
			PodIPs:            []corev1.PodIP{{IP: "10.244.0.9"}},
			StartTime:         &now,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Image: "registry.example.com/team/web:v1.2.3", ImageID: "sha256:abc", Ready: true}},
			QOSClass:          corev1.PodQOSBurstable,
		},
	}
}

// withoutTrimmed is p without what trimming drops: written by field name,
// so a wrong field number in the rules shows as a difference.
func withoutTrimmed(p *corev1.Pod) *corev1.Pod {
	p = p.DeepCopy()
	p.ManagedFields, p.Finalizers, p.SelfLink = nil, nil, ""
	for k := range p.Annotations {
		if k != snapshot.AnnotationDoNotDisrupt && k != metav1.InitialEventsAnnotationKey {
			delete(p.Annotations, k)
		}
	}
	s := &p.Spec
	s.SecurityContext, s.ImagePullSecrets, s.HostAliases, s.DNSConfig, s.ReadinessGates, s.EphemeralContainers = nil, nil, nil, nil, nil, nil
	for i := range s.Volumes {
		v := &s.Volumes[i].VolumeSource
		v.Secret, v.DownwardAPI, v.ConfigMap, v.Projected = nil, nil, nil, nil
	}
	for _, cs := range [][]corev1.Container{s.Containers, s.InitContainers} {
		for i := range cs {
			c := &cs[i]
			c.Image, c.Command, c.Args, c.WorkingDir, c.Env, c.EnvFrom, c.VolumeMounts, c.VolumeDevices = "", nil, nil, "", nil, nil, nil, nil
			c.LivenessProbe, c.ReadinessProbe, c.StartupProbe, c.Lifecycle, c.SecurityContext = nil, nil, nil, nil, nil
			c.TerminationMessagePath, c.TerminationMessagePolicy, c.ImagePullPolicy, c.ResizePolicy = "", "", "", nil
		}
	}
	st := &p.Status
	st.StartTime, st.ContainerStatuses, st.InitContainerStatuses, st.EphemeralContainerStatuses = nil, nil, nil, nil
	st.PodIPs, st.HostIPs, st.ResourceClaimStatuses = nil, nil, nil
	st.Message, st.Reason, st.HostIP, st.PodIP, st.QOSClass, st.ObservedGeneration = "", "", "", "", "", 0
	var kept []corev1.PodCondition
	for _, c := range st.Conditions {
		if c.Type == corev1.PodScheduled {
			kept = append(kept, c)
		}
	}
	st.Conditions = kept
	return p
}

// trimData trims the object in data as the decoder does.
func trimData(data []byte) ([]byte, bool) {
	e, ok := parseEnvelope(data)
	if !ok {
		return nil, false
	}
	return trimObject(nil, e)
}

func encode(t testing.TB, obj runtime.Object) []byte {
	t.Helper()
	info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	if !ok {
		t.Fatal("no protobuf serializer")
	}
	var b bytes.Buffer
	if err := scheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion).Encode(obj, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func decoder() runtime.Decoder { return Decoder() }

// TestTrimmedPodKeepsWhatThePlannerReads: a pod decoded through the
// trimming decoder (in part, then in full) is the pod minus exactly the
// trimmed fields, and
// converts to the same model, claims and state as the full pod.
func TestTrimmedPodKeepsWhatThePlannerReads(t *testing.T) {
	full := richPod()
	data := encode(t, full)
	obj, _, err := decoder().Decode(data, nil, nil)
	if err != nil {
		t.Fatalf("decode trimmed: %v", err)
	}
	got, ok := obj.(*corev1.Pod)
	if !ok {
		t.Fatalf("decoded %T, want *corev1.Pod", obj)
	}
	if got, err = Decode(got); err != nil {
		t.Fatal(err)
	}
	want := withoutTrimmed(full)
	want.TypeMeta = got.TypeMeta
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("trimmed pod differs from the pod without the trimmed fields (-want +got):\n%s", d)
	}

	wantModel, err := snapshot.Pod(full, snapshot.Lookup{})
	if err != nil {
		t.Fatal(err)
	}
	gotModel, err := snapshot.Pod(got, snapshot.Lookup{})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(wantModel, gotModel) {
		t.Errorf("model of the trimmed pod:\n%v\nwant the full pod's:\n%v", gotModel, wantModel)
	}
	if !wantModel.GetDoNotDisrupt() || !wantModel.GetLocalStorage() || !wantModel.GetUnschedulable() || len(wantModel.GetContainers()) != 2 {
		t.Errorf("the fixture no longer exercises annotations, volumes and containers: %v", wantModel)
	}
	if w, g := snapshot.VolumeClaims(full), snapshot.VolumeClaims(got); !cmp.Equal(w, g) {
		t.Errorf("VolumeClaims = %v, want %v", g, w)
	}
	if trimmed, _ := trimData(data); len(trimmed) > len(data)/2 {
		t.Errorf("trimmed to %d of %d bytes, want less than half", len(trimmed), len(data))
	}
}

// TestBookmarkKeepsItsMark: the bookmark that ends a watch's initial
// events (a pod with only metadata) keeps the annotation the informer
// waits for.
func TestBookmarkKeepsItsMark(t *testing.T) {
	mark := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "42", Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}}
	obj, _, err := decoder().Decode(encode(t, mark), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := obj.(*corev1.Pod); got.ResourceVersion != "42" || got.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
		t.Errorf("bookmark decoded as %+v, want resourceVersion 42 and the initial-events-end annotation", got.ObjectMeta)
	}
}

// TestTrimmedPodList: every pod of a list is trimmed.
func TestTrimmedPodList(t *testing.T) {
	a, b := richPod(), richPod()
	b.Name = "web-7d9f-fghij"
	data := encode(t, &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: "99"}, Items: []corev1.Pod{*a, *b}})
	obj, _, err := decoder().Decode(data, nil, nil)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	list := obj.(*corev1.PodList)
	if list.ResourceVersion != "99" || len(list.Items) != 2 {
		t.Fatalf("list = rv %q, %d items; want rv 99, 2 items", list.ResourceVersion, len(list.Items))
	}
	for i, want := range []*corev1.Pod{withoutTrimmed(a), withoutTrimmed(b)} {
		want.TypeMeta = list.Items[i].TypeMeta
		if d := cmp.Diff(*want, list.Items[i]); d != "" {
			t.Errorf("item %d (-want +got):\n%s", i, d)
		}
	}
}

// TestOtherObjectsPassUntouched: kinds other than pods, and bytes that are
// not a well-formed object, reach the protobuf decoder as they came.
func TestOtherObjectsPassUntouched(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: map[string]string{"a": "b"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}}}
	obj, _, err := decoder().Decode(encode(t, node), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := obj.(*corev1.Node); got.Annotations["a"] != "b" || len(got.ManagedFields) != 1 {
		t.Errorf("node changed on the way: %+v", got.ObjectMeta)
	}
	data := encode(t, richPod())
	for _, bad := range [][]byte{data[:len(data)/2], append(append([]byte{}, protobufPrefix...), 0xff, 0xff), []byte(`{"kind":"Pod"}`)} {
		_, _, wantErr := scheme.Codecs.UniversalDeserializer().Decode(bad, nil, nil)
		_, _, err := decoder().Decode(bad, nil, nil)
		if (err == nil) != (wantErr == nil) {
			t.Errorf("Decode(%d bytes) error = %v, want as the plain decoder: %v", len(bad), err, wantErr)
		}
	}
}

// FuzzTrim: no input makes trimming or decoding in part panic, and a pod
// that decodes still decodes trimmed, and from its deferred encoding.
func FuzzTrim(f *testing.F) {
	f.Add(encode(f, richPod()))
	f.Add(encode(f, &corev1.PodList{Items: []corev1.Pod{*richPod()}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, fullErr := scheme.Codecs.UniversalDeserializer().Decode(data, nil, nil)
		if e, ok := parseEnvelope(data); ok && string(e.kind) == "Pod" {
			if p, ok := deferPod(e.raw); ok && fullErr == nil {
				if _, err := Decode(p); err != nil {
					t.Errorf("a pod that decodes does not decode from its deferred encoding: %v", err)
				}
			}
		}
		trimmed, ok := trimData(data)
		if !ok || fullErr != nil {
			return
		}
		if _, _, err := scheme.Codecs.UniversalDeserializer().Decode(trimmed, nil, nil); err != nil {
			t.Errorf("a pod that decodes does not decode trimmed: %v", err)
		}
	})
}

// BenchmarkDecodePod compares decoding a pod as the API server sends it:
// whole (the client-go decoder), trimmed (into a pod), and in part (a
// watch event: metadata and the trimmed encoding).
func BenchmarkDecodePod(b *testing.B) {
	data := encode(b, richPod())
	plain, _ := runtime.SerializerInfoForMediaType(scheme.Codecs.WithoutConversion().SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	for _, c := range []struct {
		name  string
		dec   runtime.Decoder
		whole bool
	}{{"full", plain.Serializer, true}, {"trimmed", decoder(), true}, {"in-part", decoder(), false}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var into runtime.Object
				if c.whole {
					into = &corev1.Pod{}
				}
				if _, _, err := c.dec.Decode(data, nil, into); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
