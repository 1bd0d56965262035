package cluster

import (
	"fmt"
	"hash/maphash"

	"github.com/flotilla-dev/flotilla/api/snapshot"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/watcher/internal/podwire"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// cachedPod is what the pod cache holds instead of a *corev1.Pod: the pod's
// model, converted once as the pod arrives, plus what is derived from other
// objects later (its claims, for volume topology). A corev1.Pod takes about
// 3 KiB even stripped; this takes about a quarter of that (the model's parts
// that pods of one template have in common are shared, see share), which
// at 100,000 pods is the watcher's memory budget. The model is never
// modified once cached, so snapshots and deltas share it instead of copying
// it.
type cachedPod struct {
	// model holds the pod's namespace, name and uid even when err is set.
	model *clusterv1.Pod
	// labels and spec are the shared parts of model; held here so they
	// stay interned while the pod is cached.
	labels, spec *clusterv1.Pod
	// resourceVersion tells the informer an update from a resync.
	resourceVersion string
	claims          []snapshot.VolumeClaim
	finished        bool
	// fingerprint of model, computed once.
	fingerprint uint64
	// encoding is a hash of the pod's trimmed encoding when it came from a
	// watch decoded in part (podwire), 0 otherwise.
	encoding uint64
	// err is the conversion error of a pod the planner cannot be told
	// about.
	err error
}

// GetObjectKind implements runtime.Object.
func (p *cachedPod) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object; the model is immutable, so the
// copy shares it.
func (p *cachedPod) DeepCopyObject() runtime.Object {
	c := *p
	return &c
}

// GetObjectMeta implements metav1.ObjectMetaAccessor, which is all the
// informer machinery needs (keys and resource versions) of a cached object.
// Keeping the metadata out of the struct saves 200 bytes a pod.
func (p *cachedPod) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{
		Namespace: p.model.GetNamespace(), Name: p.model.GetName(), UID: types.UID(p.model.GetUid()), ResourceVersion: p.resourceVersion,
	}
}

// transformPod converts a pod into its cached form.
func transformPod(obj any) (any, error) { return podTransform(nil)(obj) }

// podTransform returns the pod cache's transform. cached, when not nil,
// returns the pod's version in the cache: an update whose model is the
// cached one's (most updates: status heartbeats, conditions the planner
// does not read; told by the fingerprint, as deltas tell changes) reuses
// its model and shared parts: one encoding of the pod instead of three (the
// fingerprint and interning two parts), and nothing new that lives on.
func podTransform(cached func(key string) *cachedPod) cache.TransformFunc {
	return func(obj any) (any, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return obj, nil
		}
		key := p.Namespace + "/" + p.Name
		var old *cachedPod
		if cached != nil {
			old = cached(key)
		}
		var encoding uint64
		if enc, ok := podwire.Encoded(p); ok {
			// Equal encodings are equal pods as far as the planner can
			// tell (a kubelet's status report, mostly): the cached one
			// serves at the new version, and the pod is never decoded.
			encoding = maphash.Bytes(seed, enc) | 1
			if old != nil && old.encoding == encoding {
				cp := *old
				cp.resourceVersion = p.ResourceVersion
				return &cp, nil
			}
			full, err := podwire.Decode(p)
			if err != nil {
				return &cachedPod{model: nameOnly(p), resourceVersion: p.ResourceVersion,
					err: fmt.Errorf("pod %s: decode: %w", key, err)}, nil
			}
			p = full
		}
		cp := &cachedPod{
			encoding:        encoding,
			resourceVersion: p.ResourceVersion,
			claims:          snapshot.VolumeClaims(p),
			finished:        snapshot.Finished(p),
		}
		cp.model, cp.err = snapshot.Pod(p, snapshot.Lookup{})
		if cp.err != nil {
			cp.model = nameOnly(p)
			return cp, nil
		}
		// The fingerprint is the same before and after sharing: sharing
		// swaps parts for equal ones.
		cp.fingerprint = fingerprint(cp.model)
		if old != nil && old.err == nil && old.fingerprint == cp.fingerprint {
			cp.model, cp.labels, cp.spec = old.model, old.labels, old.spec
			return cp, nil
		}
		cp.labels, cp.spec = share(cp.model)
		return cp, nil
	}
}

// nameOnly is the model of a pod the planner cannot be told about: its
// namespace, name and uid.
func nameOnly(p *corev1.Pod) *clusterv1.Pod {
	return &clusterv1.Pod{Namespace: p.Namespace, Name: p.Name, Uid: string(p.UID)}
}

// key is the pod's "namespace/name".
func (p *cachedPod) key() string { return p.model.GetNamespace() + "/" + p.model.GetName() }

// nodeName is the node the pod is bound to.
func (p *cachedPod) nodeName() string { return p.model.GetNodeName() }

// reference names the pod in an event.
func (p *cachedPod) reference() *corev1.ObjectReference {
	return &corev1.ObjectReference{
		Kind: "Pod", APIVersion: "v1", Namespace: p.model.GetNamespace(), Name: p.model.GetName(), UID: types.UID(p.model.GetUid()),
		ResourceVersion: p.resourceVersion,
	}
}
