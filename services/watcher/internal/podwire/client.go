package podwire

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// ListWatch lists and watches the pods that match fieldSelector (every
// pod when empty), over protobuf, trimmed before they are decoded.
func ListWatch(cfg *rest.Config, fieldSelector string) (*cache.ListWatch, error) {
	c := rest.CopyConfig(cfg)
	gv := corev1.SchemeGroupVersion
	c.GroupVersion = &gv
	c.APIPath = "/api"
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf
	c.NegotiatedSerializer = trimmingSerializer{scheme.Codecs.WithoutConversion()}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("pod client: %w", err)
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fieldSelector
			out := &corev1.PodList{}
			err := rc.Get().Resource("pods").VersionedParams(&o, scheme.ParameterCodec).Do(ctx).Into(out)
			return out, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fieldSelector
			o.Watch = true
			return rc.Get().Resource("pods").VersionedParams(&o, scheme.ParameterCodec).Watch(ctx)
		},
	}, nil
}

// trimmingSerializer is the client's serializers with the protobuf one
// trimming pods and pod lists before it decodes them.
type trimmingSerializer struct {
	runtime.NegotiatedSerializer
}

func (s trimmingSerializer) SupportedMediaTypes() []runtime.SerializerInfo {
	infos := slices.Clone(s.NegotiatedSerializer.SupportedMediaTypes())
	for i, info := range infos {
		if info.MediaType != runtime.ContentTypeProtobuf {
			continue
		}
		info.Serializer = trimmingDecoder{info.Serializer}
		infos[i] = info
	}
	return infos
}

// trimmingDecoder trims what it decodes; everything else is the protobuf
// serializer's.
type trimmingDecoder struct {
	runtime.Serializer
}

// maxPooled is the largest buffer kept for reuse: a pod list can take
// hundreds of megabytes, a pod a few kilobytes.
const maxPooled = 1 << 20

// protobufPrefix starts every protobuf-encoded Kubernetes object.
var protobufPrefix = []byte{0x6b, 0x38, 0x73, 0x00}

// buffers holds the buffers trimmed objects are written to: decoding
// copies what it keeps, so a buffer is free again once it returns.
var buffers = sync.Pool{New: func() any { return new([]byte) }}

func (d trimmingDecoder) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	e, parsed := parseEnvelope(data)
	if parsed && into == nil && string(e.kind) == "Pod" {
		// A watch event's pod: decoded when its content is needed.
		if p, ok := deferPod(e.raw); ok {
			gvk := corev1.SchemeGroupVersion.WithKind("Pod")
			return p, &gvk, nil
		}
	}
	buf := buffers.Get().(*[]byte)
	var trimmed []byte
	ok := false
	if parsed {
		if trimmed, ok = trimObject((*buf)[:0], e); ok {
			data = trimmed
		}
	}
	obj, gvk, err := d.Serializer.Decode(data, defaults, into)
	if ok && cap(trimmed) <= maxPooled {
		*buf = trimmed
	}
	buffers.Put(buf)
	return obj, gvk, err
}

// envelope is a protobuf-encoded object: the kind its runtime.Unknown
// names and where its raw bytes are.
type envelope struct {
	src           []byte // data without the prefix
	kind, raw     []byte
	rawAt, rawEnd int
}

// parseEnvelope reads the envelope of data (the protobuf prefix, then a
// runtime.Unknown: type, raw bytes, encodings); it reports false for bytes
// it cannot read.
func parseEnvelope(data []byte) (envelope, bool) {
	if !bytes.HasPrefix(data, protobufPrefix) {
		return envelope{}, false
	}
	e := envelope{src: data[len(protobufPrefix):], rawAt: -1}
	for at := 0; at < len(e.src); {
		num, typ, n := protowire.ConsumeTag(e.src[at:])
		if n < 0 {
			return envelope{}, false
		}
		vn := protowire.ConsumeFieldValue(num, typ, e.src[at+n:])
		if vn < 0 {
			return envelope{}, false
		}
		if typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(e.src[at+n:])
			switch num {
			case 1: // typeMeta
				e.kind = typeKind(v)
			case 2: // raw
				e.raw, e.rawAt, e.rawEnd = v, at, at+n+vn
			}
		}
		at += n + vn
	}
	return e, e.rawAt >= 0
}

// trimObject appends to dst the object e holds with a pod or pod list in
// it trimmed. It reports false, and leaves the object to the serializer as
// it is, for any other kind and for bytes it cannot read.
func trimObject(dst []byte, e envelope) ([]byte, bool) {
	var m *message
	switch string(e.kind) {
	case "Pod":
		m = pod
	case "PodList":
		m = podList
	default:
		return nil, false
	}
	// Everything before raw, raw trimmed, everything after it.
	dst = append(dst, protobufPrefix...)
	dst = append(dst, e.src[:e.rawAt]...)
	dst, err := appendTrimmed(dst, 2, e.raw, m, 0)
	if err != nil {
		return nil, false
	}
	return append(dst, e.src[e.rawEnd:]...), true
}

// typeKind returns the kind (field 2) of a runtime.TypeMeta.
func typeKind(typeMeta []byte) []byte {
	for len(typeMeta) > 0 {
		num, typ, n := protowire.ConsumeTag(typeMeta)
		if n < 0 {
			return nil
		}
		typeMeta = typeMeta[n:]
		vn := protowire.ConsumeFieldValue(num, typ, typeMeta)
		if vn < 0 {
			return nil
		}
		if num == 2 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(typeMeta)
			return v
		}
		typeMeta = typeMeta[vn:]
	}
	return nil
}

// Decoder is the pod client's protobuf decoder: it decodes a watched pod
// in part (see Encoded) and trims pods and pod lists decoded into an
// object.
func Decoder() runtime.Decoder {
	info, _ := runtime.SerializerInfoForMediaType(trimmingSerializer{scheme.Codecs.WithoutConversion()}.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	return info.Serializer
}
