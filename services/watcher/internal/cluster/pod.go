package cluster

import (
	"github.com/flotilla-dev/flotilla/api/snapshot"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// cachedPod is what the pod cache holds instead of a *corev1.Pod: the pod's
// model, converted once as the pod arrives, plus what is derived from other
// objects later (its claims, for volume topology). A corev1.Pod takes about
// 3 KiB even stripped; this takes about a third of that, which at 100,000
// pods is the watcher's memory budget. The model is never modified once
// cached, so snapshots and deltas share it instead of copying it.
type cachedPod struct {
	metav1.ObjectMeta
	model    *clusterv1.Pod
	claims   []snapshot.VolumeClaim
	finished bool
	// fingerprint of the Change carrying model, computed once.
	fingerprint uint64
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
	c.ObjectMeta = *p.ObjectMeta.DeepCopy()
	return &c
}

// transformPod converts a pod into its cached form.
func transformPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	cp := &cachedPod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion},
		claims:     snapshot.VolumeClaims(p),
		finished:   snapshot.Finished(p),
	}
	cp.model, cp.err = snapshot.Pod(p, snapshot.Lookup{})
	if cp.err == nil {
		cp.fingerprint = fingerprint(&clusterv1.Change{Object: &clusterv1.Change_Pod{Pod: cp.model}})
	}
	return cp, nil
}

// nodeName is the node the pod is bound to.
func (p *cachedPod) nodeName() string { return p.model.GetNodeName() }

// reference names the pod in an event.
func (p *cachedPod) reference() *corev1.ObjectReference {
	return &corev1.ObjectReference{
		Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion,
	}
}
