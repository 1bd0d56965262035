package cluster

import (
	"bytes"
	"hash/maphash"
	"maps"
	"runtime"
	"sync"
	"weak"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"google.golang.org/protobuf/proto"
)

// Pods come in templates: the replicas of a Deployment, a StatefulSet or a
// Job carry the same containers, requests, tolerations, affinities and
// (most of the time) labels. At 100,000 pods those parts are most of the
// models' memory, so each distinct one is kept once and shared by every
// pod model that has it. Models are never modified once cached (pod clones
// before it adds anything), so sharing is safe.

// share makes m use the shared copy of its labels and of its template (its
// spec, owner and namespace) and returns both, for the cached pod to keep
// alive. Every field of the model is either per pod or part of the template
// (TestShareCoversEveryPodField keeps it so).
func share(m *clusterv1.Pod) (labels, spec *clusterv1.Pod) {
	if len(m.Labels) > 0 {
		labels = podParts.intern(&clusterv1.Pod{Labels: m.Labels}, true)
		m.Labels = labels.Labels
	}
	spec = podParts.intern(&clusterv1.Pod{
		Namespace:                m.Namespace,
		Containers:               m.Containers,
		InitContainers:           m.InitContainers,
		Overhead:                 m.Overhead,
		NodeSelector:             m.NodeSelector,
		NodeAffinity:             m.NodeAffinity,
		PodAffinity:              m.PodAffinity,
		PreferredPodAffinity:     m.PreferredPodAffinity,
		PodAntiAffinity:          m.PodAntiAffinity,
		PreferredPodAntiAffinity: m.PreferredPodAntiAffinity,
		TopologySpread:           m.TopologySpread,
		Tolerations:              m.Tolerations,
		OwnerKind:                m.OwnerKind,
		OwnerName:                m.OwnerName,
		Priority:                 m.Priority,
		DoNotDisrupt:             m.DoNotDisrupt,
		LocalStorage:             m.LocalStorage,
		SchedulerName:            m.SchedulerName,
	}, false)
	m.Namespace = spec.Namespace
	m.Containers = spec.Containers
	m.InitContainers = spec.InitContainers
	m.Overhead = spec.Overhead
	m.NodeSelector = spec.NodeSelector
	m.NodeAffinity = spec.NodeAffinity
	m.PodAffinity = spec.PodAffinity
	m.PreferredPodAffinity = spec.PreferredPodAffinity
	m.PodAntiAffinity = spec.PodAntiAffinity
	m.PreferredPodAntiAffinity = spec.PreferredPodAntiAffinity
	m.TopologySpread = spec.TopologySpread
	m.Tolerations = spec.Tolerations
	m.OwnerKind = spec.OwnerKind
	m.OwnerName = spec.OwnerName
	m.SchedulerName = spec.SchedulerName
	return labels, spec
}

// podParts holds the shared parts of the pods in every cache of the
// process (like the unique package, it is process-wide by nature).
var podParts = &partTable{byHash: map[uint64]part{}}

// partTable interns partial pod models by content. It holds them weakly:
// a part no cached pod uses any more is collected and its entry removed.
type partTable struct {
	mu     sync.Mutex
	byHash map[uint64]part
}

// part is an interned part and, for a template part, its deterministic
// encoding, which a candidate's encoding is compared with: far cheaper than
// proto.Equal on every pod event, for a few hundred bytes per template.
// Labels, which may be unique to a pod (a StatefulSet's), are compared as
// maps instead, so they cost no encoding kept.
type part struct {
	ptr     weak.Pointer[clusterv1.Pod]
	encoded []byte
}

// intern returns the table's copy of p, adding p when there is none;
// labelsOnly says p holds nothing but labels. Parts are keyed by a hash of
// their deterministic encoding and compared in full on a hit, so a hash
// collision costs sharing, never correctness.
func (t *partTable) intern(p *clusterv1.Pod, labelsOnly bool) *clusterv1.Pod {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		return p
	}
	h := maphash.Bytes(seed, b)
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.byHash[h]; ok {
		if have := e.ptr.Value(); have != nil {
			if labelsOnly && maps.Equal(have.GetLabels(), p.GetLabels()) || !labelsOnly && bytes.Equal(e.encoded, b) {
				return have
			}
			return p
		}
	}
	wp := weak.Make(p)
	e := part{ptr: wp}
	if !labelsOnly {
		e.encoded = b
	}
	t.byHash[h] = e
	runtime.AddCleanup(p, t.forget, partEntry{hash: h, ptr: wp})
	return p
}

type partEntry struct {
	hash uint64
	ptr  weak.Pointer[clusterv1.Pod]
}

// forget removes a collected part, unless its hash has been taken by a
// newer one since.
func (t *partTable) forget(e partEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byHash[e.hash].ptr == e.ptr {
		delete(t.byHash, e.hash)
	}
}

// size returns how many parts are interned.
func (t *partTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byHash)
}
