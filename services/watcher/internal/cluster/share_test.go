package cluster

import (
	"bytes"
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/api/snapshot"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/flotilla-dev/flotilla/services/watcher/internal/podwire"
)

// replica is pod i of a Deployment whose template carries a bit of
// everything the model reads.
func replica(i int, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("web-5d8c9-%05d", i), UID: types.UID(fmt.Sprintf("uid-%d", i)),
			ResourceVersion: "7", Labels: labels, CreationTimestamp: metav1.NewTime(time.Date(2026, 3, 1, 12, 0, i, 0, time.UTC)),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8c9", Controller: new(true)}},
			Annotations:     map[string]string{snapshot.AnnotationDoNotDisrupt: "true"}},
		Spec: corev1.PodSpec{
			NodeName:     fmt.Sprintf("node-%d", i%3),
			NodeSelector: map[string]string{"karpenter.sh/capacity-type": "spot"},
			Containers: []corev1.Container{{Name: "app", Image: "shop/web:1", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
			}, Ports: []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 8080}}}},
			InitContainers: []corev1.Container{{Name: "migrate", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
			}}},
			Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "shop", Effect: corev1.TaintEffectNoSchedule}},
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone,
				WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
			Volumes:       []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			Priority:      new(int32(1000)),
			SchedulerName: "default-scheduler",
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// TestSharedPodModels: replicas of one template share the parts of their
// models they have in common, and every model still says exactly what its
// pod says.
func TestSharedPodModels(t *testing.T) {
	labels := func() map[string]string { return map[string]string{"app": "web", "pod-template-hash": "5d8c9"} }
	var cached []*cachedPod
	for i := range 3 {
		p := replica(i, labels())
		want, err := snapshot.Pod(p, snapshot.Lookup{})
		if err != nil {
			t.Fatal(err)
		}
		o, err := transformPod(p)
		if err != nil {
			t.Fatal(err)
		}
		cp := o.(*cachedPod)
		if diff := cmp.Diff(want, cp.model, protocmp.Transform()); diff != "" {
			t.Errorf("model of pod %d (-want +got):\n%s", i, diff)
		}
		cached = append(cached, cp)
	}
	a, b := cached[0].model, cached[2].model
	for name, same := range map[string]bool{
		"labels":          reflect.ValueOf(a.GetLabels()).UnsafePointer() == reflect.ValueOf(b.GetLabels()).UnsafePointer(),
		"containers":      a.GetContainers()[0] == b.GetContainers()[0],
		"init containers": a.GetInitContainers()[0] == b.GetInitContainers()[0],
		"tolerations":     a.GetTolerations()[0] == b.GetTolerations()[0],
		"topology spread": a.GetTopologySpread()[0] == b.GetTopologySpread()[0],
		"node selector":   reflect.ValueOf(a.GetNodeSelector()).UnsafePointer() == reflect.ValueOf(b.GetNodeSelector()).UnsafePointer(),
	} {
		if !same {
			t.Errorf("replicas do not share their %s", name)
		}
	}

	// A pod with other labels shares its template, not its labels.
	other := replica(3, map[string]string{"app": "web", "pod-template-hash": "77f4d"})
	o, _ := transformPod(other)
	c := o.(*cachedPod).model
	if reflect.ValueOf(c.GetLabels()).UnsafePointer() == reflect.ValueOf(a.GetLabels()).UnsafePointer() {
		t.Error("pods with different labels share a label map")
	}
	if c.GetContainers()[0] != a.GetContainers()[0] {
		t.Error("pods of one template with different labels do not share their containers")
	}
	if got := c.GetLabels()["pod-template-hash"]; got != "77f4d" {
		t.Errorf("pod-template-hash = %q, want 77f4d", got)
	}
}

// TestSharedPartsAreCollected: parts no cached pod uses any more leave the
// table.
func TestSharedPartsAreCollected(t *testing.T) {
	before := podParts.size()
	for i := range 50 {
		p := replica(i, map[string]string{"app": fmt.Sprintf("unique-%d", i)})
		p.Namespace = fmt.Sprintf("collected-%d", i)
		if _, err := transformPod(p); err != nil {
			t.Fatal(err)
		}
	}
	if grew := podParts.size() - before; grew < 100 {
		t.Fatalf("the table grew by %d parts for 50 distinct pods, want 100", grew)
	}
	deadline := time.Now().Add(10 * time.Second)
	for podParts.size() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d parts of collected pods are still in the table", podParts.size()-before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShareCoversEveryPodField: each field of the pod model is either the
// pod's own or part of what share treats as the template. A field added to
// the model must be placed in one of the two (and, if it is the template's,
// in share).
func TestShareCoversEveryPodField(t *testing.T) {
	own := map[protoreflect.Name]bool{
		"name": true, "uid": true, "labels": true, "node_name": true, "nominated_node_claim": true, "volumes": true,
		"phase": true, "terminating": true, "created": true, "unschedulable": true,
	}
	// Set every template field, share, and see which the template holds.
	full := replica(0, nil)
	full.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}
	full.Spec.Affinity = &corev1.Affinity{
		NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpIn, Values: []string{"arm64"}}},
		}}}},
		PodAffinity: &corev1.PodAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution:  []corev1.PodAffinityTerm{{TopologyKey: "zone", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}},
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 1, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "zone", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}}},
		},
		PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution:  []corev1.PodAffinityTerm{{TopologyKey: "zone", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}},
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 1, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "zone", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}}},
		},
	}
	m, err := snapshot.Pod(full, snapshot.Lookup{})
	if err != nil {
		t.Fatal(err)
	}
	_, spec := share(m)
	template := map[protoreflect.Name]bool{}
	spec.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		template[fd.Name()] = true
		return true
	})
	fields := m.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		name := fields.Get(i).Name()
		switch {
		case own[name] && template[name]:
			t.Errorf("field %s is both the pod's own and the template's", name)
		case !own[name] && !template[name]:
			t.Errorf("field %s is neither the pod's own nor part of the template: classify it here and in share", name)
		}
	}
}

// TestPodUpdateReusesModel: an update the planner cannot see (a status
// heartbeat) keeps the cached model itself; one it can see (a label, the
// node) gets a new model with the change.
func TestPodUpdateReusesModel(t *testing.T) {
	cache := map[string]*cachedPod{}
	transform := podTransform(func(k string) *cachedPod { return cache[k] })
	p := replica(0, map[string]string{"app": "web"})
	o, err := transform(p.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	first := o.(*cachedPod)
	cache[p.Namespace+"/"+p.Name] = first

	heartbeat := p.DeepCopy()
	heartbeat.ResourceVersion = "2"
	heartbeat.Status.Conditions = append(heartbeat.Status.Conditions, corev1.PodCondition{Type: "example.com/Probe", Status: corev1.ConditionTrue})
	o, _ = transform(heartbeat)
	if got := o.(*cachedPod); got.model != first.model || got.resourceVersion != "2" {
		t.Errorf("status heartbeat: new model %v (resource version %q), want the cached one at version 2", got.model != first.model, got.resourceVersion)
	}

	relabelled := p.DeepCopy()
	relabelled.Labels["tier"] = "front"
	o, _ = transform(relabelled)
	got := o.(*cachedPod)
	if got.model == first.model || got.model.GetLabels()["tier"] != "front" || got.fingerprint == first.fingerprint {
		t.Errorf("relabelled pod: model reused or label missing (labels %v)", got.model.GetLabels())
	}
	if first.model.GetLabels()["tier"] != "" {
		t.Error("the cached model was modified")
	}
}

// watched decodes p as the pod informer's watch does: in part.
func watched(t *testing.T, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	info, _ := kruntime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), kruntime.ContentTypeProtobuf)
	var b bytes.Buffer
	if err := scheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion).Encode(p, &b); err != nil {
		t.Fatal(err)
	}
	obj, _, err := podwire.Decoder().Decode(b.Bytes(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*corev1.Pod)
}

// TestWatchedPodUpdatesReuseTheModel: a watched pod, decoded in part,
// converts to the model a full pod does; a status report that leaves its
// trimmed encoding as it was serves the cached model at the new version,
// and a label change makes a new one.
func TestWatchedPodUpdatesReuseTheModel(t *testing.T) {
	cache := map[string]*cachedPod{}
	transform := podTransform(func(k string) *cachedPod { return cache[k] })
	p := replica(1, map[string]string{"app": "web"})
	o, err := transform(watched(t, p))
	if err != nil {
		t.Fatal(err)
	}
	first := o.(*cachedPod)
	eager, _ := transformPod(p.DeepCopy())
	if d := cmp.Diff(eager.(*cachedPod).model, first.model, protocmp.Transform()); d != "" || first.err != nil {
		t.Fatalf("model of the watched pod differs from the full pod's (err %v, -full +watched):\n%s", first.err, d)
	}
	cache[p.Namespace+"/"+p.Name] = first

	report := p.DeepCopy()
	report.ResourceVersion = "8"
	report.Status.PodIP = "10.244.1.7"
	report.Status.Conditions = append(report.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})
	o, _ = transform(watched(t, report))
	if got := o.(*cachedPod); got.model != first.model || got.resourceVersion != "8" || got.encoding != first.encoding || got.encoding == 0 {
		t.Errorf("status report: new model %v (resource version %q), want the cached one at version 8", got.model != first.model, got.resourceVersion)
	}

	relabelled := p.DeepCopy()
	relabelled.Labels = map[string]string{"app": "web", "tier": "front"}
	o, _ = transform(watched(t, relabelled))
	if got := o.(*cachedPod); got.model == first.model || got.model.GetLabels()["tier"] != "front" {
		t.Errorf("relabelled pod: model reused or label missing (labels %v)", got.model.GetLabels())
	}
}
