package podwire

import (
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// A pod from a watch is decoded in part: its metadata, which the informer
// needs (key, resource version), and its trimmed encoding without the
// resource version, kept for whoever needs the rest. Most pod updates are
// a kubelet's status reports, which trimming leaves equal to the pod as it
// was: a cache that compares the encoding with the one it holds decodes
// only the pods that did change.

// encodedAnnotation holds, on a pod decoded in part, its encoding. It never
// leaves the process.
const encodedAnnotation = "podwire.flotilla.dev/encoded"

// podUnversioned is pod without the resource version (metadata field 6),
// which changes with every update.
var podUnversioned = pod.nesting(1, objectMeta.dropping(6))

// deferPod returns the pod in raw decoded in part. It reports false for a
// pod without a name (the bookmark that ends a watch's initial events is
// one, and the informer reads its annotations) and for bytes it cannot
// read.
func deferPod(raw []byte) (*corev1.Pod, bool) {
	var meta metav1.ObjectMeta
	if !readMeta(raw, &meta) || meta.Name == "" {
		return nil, false
	}
	buf := buffers.Get().(*[]byte)
	defer buffers.Put(buf)
	enc, err := trim((*buf)[:0], raw, podUnversioned, 0)
	if err != nil {
		return nil, false
	}
	meta.Annotations = map[string]string{encodedAnnotation: string(enc)}
	if cap(enc) <= maxPooled {
		*buf = enc
	}
	return &corev1.Pod{ObjectMeta: meta}, true
}

// readMeta reads a pod's name, namespace, uid and resource version from
// its encoding.
func readMeta(raw []byte, meta *metav1.ObjectMeta) bool {
	md, ok := field(raw, 1)
	if !ok {
		return false
	}
	for len(md) > 0 {
		num, typ, n := protowire.ConsumeTag(md)
		if n < 0 {
			return false
		}
		vn := protowire.ConsumeFieldValue(num, typ, md[n:])
		if vn < 0 {
			return false
		}
		if typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(md[n:])
			switch num {
			case 1:
				meta.Name = string(v)
			case 3:
				meta.Namespace = string(v)
			case 5:
				meta.UID = types.UID(v)
			case 6:
				meta.ResourceVersion = string(v)
			}
		}
		md = md[n+vn:]
	}
	return true
}

// field returns the bytes of the last occurrence of a length-delimited
// field, and false when there is none or the bytes cannot be read.
func field(msg []byte, want protowire.Number) ([]byte, bool) {
	var out []byte
	found := false
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, false
		}
		vn := protowire.ConsumeFieldValue(num, typ, msg[n:])
		if vn < 0 {
			return nil, false
		}
		if num == want && typ == protowire.BytesType {
			out, _ = protowire.ConsumeBytes(msg[n:])
			found = true
		}
		msg = msg[n+vn:]
	}
	return out, found
}

// Encoded returns the trimmed encoding of a pod decoded in part (without
// its resource version: equal encodings are equal pods, as far as the
// planner can tell), and false for a pod decoded in full.
func Encoded(p *corev1.Pod) ([]byte, bool) {
	s, ok := p.Annotations[encodedAnnotation]
	if !ok || len(p.Annotations) != 1 {
		return nil, false
	}
	return unsafe.Slice(unsafe.StringData(s), len(s)), true
}

// Decode decodes the rest of a pod decoded in part; a pod decoded in full
// is returned as it is.
func Decode(p *corev1.Pod) (*corev1.Pod, error) {
	enc, ok := Encoded(p)
	if !ok {
		return p, nil
	}
	full := &corev1.Pod{}
	// Unmarshal copies what it keeps and never writes to its input.
	if err := full.Unmarshal(enc); err != nil {
		return nil, err
	}
	full.ResourceVersion = p.ResourceVersion
	return full, nil
}
