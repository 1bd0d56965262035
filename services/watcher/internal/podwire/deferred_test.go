package podwire

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// decodeEvent decodes p as a watch event's object is decoded.
func decodeEvent(t *testing.T, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	obj, _, err := decoder().Decode(encode(t, p), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*corev1.Pod)
}

// TestWatchedPodsAreDecodedInPart: a watched pod arrives with its key and
// resource version and its trimmed encoding; decoded, it is the trimmed
// pod. A kubelet's status report leaves the encoding as it was; a change
// the planner reads does not.
func TestWatchedPodsAreDecodedInPart(t *testing.T) {
	full := richPod()
	got := decodeEvent(t, full)
	if got.Name != full.Name || got.Namespace != full.Namespace || got.UID != full.UID || got.ResourceVersion != full.ResourceVersion {
		t.Errorf("metadata = %s/%s uid %s rv %s, want the pod's", got.Namespace, got.Name, got.UID, got.ResourceVersion)
	}
	enc, ok := Encoded(got)
	if !ok {
		t.Fatal("a watched pod was decoded in full")
	}
	decoded, err := Decode(got)
	if err != nil {
		t.Fatal(err)
	}
	want := withoutTrimmed(full)
	if d := cmp.Diff(want, decoded); d != "" {
		t.Errorf("decoded in part, then in full (-want +got):\n%s", d)
	}

	report := full.DeepCopy()
	report.ResourceVersion = "12346"
	report.Status.PodIP, report.Status.QOSClass = "10.244.3.3", corev1.PodQOSGuaranteed
	report.Status.Conditions = append(report.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})
	report.Status.ContainerStatuses[0].RestartCount = 3
	report.ManagedFields = append(report.ManagedFields, metav1.ManagedFieldsEntry{Manager: "kubelet", Subresource: "status"})
	after := decodeEvent(t, report)
	if afterEnc, _ := Encoded(after); !bytes.Equal(afterEnc, enc) {
		t.Error("a status report changed the trimmed encoding")
	}
	if after.ResourceVersion != "12346" {
		t.Errorf("resource version = %q, want the report's 12346", after.ResourceVersion)
	}

	relabelled := full.DeepCopy()
	relabelled.Labels["tier"] = "front"
	if relEnc, _ := Encoded(decodeEvent(t, relabelled)); bytes.Equal(relEnc, enc) {
		t.Error("a label change left the trimmed encoding as it was")
	}
	scheduled := full.DeepCopy()
	scheduled.Status.Conditions[1].Status = corev1.ConditionTrue
	if schEnc, _ := Encoded(decodeEvent(t, scheduled)); bytes.Equal(schEnc, enc) {
		t.Error("the pod being scheduled left the trimmed encoding as it was")
	}

	// The bookmark keeps its annotations: it is decoded in full.
	mark := decodeEvent(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "50", Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}})
	if _, deferred := Encoded(mark); deferred || mark.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
		t.Errorf("bookmark = %+v, want it decoded in full with its annotation", mark.ObjectMeta)
	}
}
