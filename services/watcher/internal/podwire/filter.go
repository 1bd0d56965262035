// Package podwire trims pods on the wire: it removes, from the protobuf
// bytes the API server sends, the parts of a pod the watcher never reads
// (managed fields, container images, commands, environments, probes,
// container statuses, annotations other than Flotilla's), before the bytes
// are decoded. Decoding is most of the watcher's CPU at 100,000 pods, and
// what it allocates for those parts is most of its garbage: a trimmed pod
// decodes in a fraction of the time and leaves a fraction of the garbage.
//
// Only fields are removed, never changed, so a trimmed pod decodes into
// the same corev1.Pod minus those fields; fields unknown here (added to
// the API later) are kept.
package podwire

import (
	"errors"
	"fmt"
	"maps"

	"google.golang.org/protobuf/encoding/protowire"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/api/snapshot"
)

// message says what to do with the fields of one protobuf message: drop
// some, trim others (nested messages, or map entries by key).
type message struct {
	drop   map[protowire.Number]bool
	nested map[protowire.Number]*message
	// entries keeps, of a repeated message field, the elements whose
	// field 1 it accepts: map entries by key, conditions by type.
	entries map[protowire.Number]func(key []byte) bool
}

// Field numbers are those of k8s.io/api/core/v1/generated.proto and
// k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto.
var (
	objectMeta = &message{
		drop: set(4 /* selfLink */, 14 /* finalizers */, 17 /* managedFields */),
		entries: map[protowire.Number]func([]byte) bool{
			12: keptAnnotation, // annotations
		},
	}
	container = &message{drop: set(
		2 /* image */, 3 /* command */, 4 /* args */, 5 /* workingDir */, 7 /* env */, 9, /* volumeMounts */
		10 /* livenessProbe */, 11 /* readinessProbe */, 12 /* lifecycle */, 13, /* terminationMessagePath */
		14 /* imagePullPolicy */, 15 /* securityContext */, 19 /* envFrom */, 20, /* terminationMessagePolicy */
		21 /* volumeDevices */, 22 /* startupProbe */, 23, /* resizePolicy */
	)}
	// volumeSource keeps what decides local storage and volume topology
	// (emptyDir, hostPath, claims, ephemeral and in-line volumes) and drops
	// the sources that are only files for the containers.
	volumeSource = &message{drop: set(6 /* secret */, 16 /* downwardAPI */, 19 /* configMap */, 26 /* projected */)}
	volume       = &message{nested: map[protowire.Number]*message{2: volumeSource}}
	podSpec      = &message{
		drop: set(14 /* securityContext */, 15 /* imagePullSecrets */, 23 /* hostAliases */, 26, /* dnsConfig */
			28 /* readinessGates */, 34 /* ephemeralContainers */),
		nested: map[protowire.Number]*message{1: volume, 2: container, 20: container},
	}
	// podStatus keeps the phase and whether the scheduler found no room
	// (the PodScheduled condition). A kubelet's status reports change the
	// rest, so a trimmed report is the pod as it was.
	podStatus = &message{
		drop: set(3 /* message */, 4 /* reason */, 5 /* hostIP */, 6 /* podIP */, 7 /* startTime */, 8, /* containerStatuses */
			9 /* qosClass */, 10 /* initContainerStatuses */, 12 /* podIPs */, 13, /* ephemeralContainerStatuses */
			15 /* resourceClaimStatuses */, 16 /* hostIPs */, 17 /* observedGeneration */, 21, 22),
		entries: map[protowire.Number]func([]byte) bool{
			2: func(condition []byte) bool { return string(condition) == string(corev1.PodScheduled) }, // conditions
		},
	}
	pod     = &message{nested: map[protowire.Number]*message{1: objectMeta, 2: podSpec, 3: podStatus}}
	podList = &message{nested: map[protowire.Number]*message{2: pod}}
)

// dropping returns m dropping field n as well.
func (m *message) dropping(n protowire.Number) *message {
	c := *m
	c.drop = maps.Clone(m.drop)
	c.drop[n] = true
	return &c
}

// nesting returns m with field n's messages trimmed as sub says.
func (m *message) nesting(n protowire.Number, sub *message) *message {
	c := *m
	c.nested = maps.Clone(m.nested)
	c.nested[n] = sub
	return &c
}

// keptAnnotation says which annotations are kept: the one the planner
// reads, and the one that marks the end of a watch's initial events (on
// the bookmark, a pod with nothing but metadata), which the informer waits
// for.
func keptAnnotation(key []byte) bool {
	return string(key) == snapshot.AnnotationDoNotDisrupt || string(key) == metav1.InitialEventsAnnotationKey
}

func set(nums ...protowire.Number) map[protowire.Number]bool {
	m := make(map[protowire.Number]bool, len(nums))
	for _, n := range nums {
		m[n] = true
	}
	return m
}

// errMalformed is wrapped by every error about bytes that are not a
// well-formed message.
var errMalformed = errors.New("malformed protobuf")

// Pod appends to dst the encoding of a corev1.Pod, trimmed.
func Pod(dst, src []byte) ([]byte, error) { return trim(dst, src, pod, 0) }

// PodList appends to dst the encoding of a corev1.PodList, every pod
// trimmed.
func PodList(dst, src []byte) ([]byte, error) { return trim(dst, src, podList, 0) }

// maxDepth bounds the nesting the rules describe (pod list, pod, spec,
// volume, source): deeper input is copied, not walked.
const maxDepth = 8

// trim appends src to dst without the fields m drops, trimming nested
// messages as m says.
func trim(dst, src []byte, m *message, depth int) ([]byte, error) {
	for len(src) > 0 {
		num, typ, n := protowire.ConsumeTag(src)
		if n < 0 {
			return nil, fmt.Errorf("%w: %w", errMalformed, protowire.ParseError(n))
		}
		vn := protowire.ConsumeFieldValue(num, typ, src[n:])
		if vn < 0 {
			return nil, fmt.Errorf("%w: field %d: %w", errMalformed, num, protowire.ParseError(vn))
		}
		field, value := src[:n+vn], src[n:n+vn]
		src = src[n+vn:]
		if m.drop[num] {
			continue
		}
		if typ != protowire.BytesType || depth >= maxDepth {
			dst = append(dst, field...)
			continue
		}
		if keep := m.entries[num]; keep != nil {
			body, _ := protowire.ConsumeBytes(value)
			if key, ok := entryKey(body); ok && !keep(key) {
				continue
			}
			dst = append(dst, field...)
			continue
		}
		sub := m.nested[num]
		if sub == nil {
			dst = append(dst, field...)
			continue
		}
		body, _ := protowire.ConsumeBytes(value)
		var err error
		if dst, err = appendTrimmed(dst, num, body, sub, depth+1); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// appendTrimmed appends field num holding body trimmed as m says. The
// trimmed body is written after room for the original's length, then moved
// back if its own length takes fewer bytes.
func appendTrimmed(dst []byte, num protowire.Number, body []byte, m *message, depth int) ([]byte, error) {
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	at := len(dst)
	room := protowire.SizeVarint(uint64(len(body)))
	dst = append(dst, make([]byte, room)...)
	dst, err := trim(dst, body, m, depth)
	if err != nil {
		return nil, err
	}
	size := len(dst) - at - room
	need := protowire.SizeVarint(uint64(size))
	protowire.AppendVarint(dst[at:at], uint64(size))
	if need < room {
		copy(dst[at+need:], dst[at+room:])
		dst = dst[:len(dst)-(room-need)]
	}
	return dst, nil
}

// entryKey returns field 1 of a message: a map entry's key, a condition's
// type.
func entryKey(entry []byte) ([]byte, bool) {
	for len(entry) > 0 {
		num, typ, n := protowire.ConsumeTag(entry)
		if n < 0 {
			return nil, false
		}
		entry = entry[n:]
		if num == 1 && typ == protowire.BytesType {
			key, kn := protowire.ConsumeBytes(entry)
			return key, kn >= 0
		}
		vn := protowire.ConsumeFieldValue(num, typ, entry)
		if vn < 0 {
			return nil, false
		}
		entry = entry[vn:]
	}
	return nil, false
}
