package cluster

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"
)

// kind is the kind of a model object.
type kind uint8

const (
	kindPod kind = iota + 1
	kindNode
	kindNodeClaim
	kindNodePool
	kindNodeClass
	kindDaemonSet
	kindPDB
	kindInstanceType
)

var kindNames = map[kind]string{
	kindPod: "Pod", kindNode: "Node", kindNodeClaim: "NodeClaim", kindNodePool: "NodePool",
	kindNodeClass: "NodeClass", kindDaemonSet: "DaemonSet", kindPDB: "PodDisruptionBudget", kindInstanceType: "InstanceType",
}

func (k kind) String() string { return kindNames[k] }

// key names one model object: its kind and "namespace/name" (or "name").
type key struct {
	kind kind
	name string
}

// tracker remembers which objects changed since the last snapshot or delta
// (the dirty set) and a fingerprint of what the planner was last sent for
// each object. Changes coalesce in the dirty set, latest state wins: the
// objects are read from the informer caches only when a delta is built, so
// however long the planner is away, memory stays bounded by the number of
// objects in the cluster.
type tracker struct {
	mu      sync.Mutex
	dirty   map[key]struct{}
	changed chan struct{}
	// marks counts the calls to mark that marked something.
	marks atomic.Uint64

	// sent (guarded by sentMu) maps each object the planner has to the
	// fingerprint of the version it has.
	sentMu sync.Mutex
	sent   map[key]uint64
}

// seed keys the fingerprints of this process.
var seed = maphash.MakeSeed()

func newTracker() *tracker {
	return &tracker{
		dirty:   map[key]struct{}{},
		changed: make(chan struct{}, 1),
		sent:    map[key]uint64{},
	}
}

// mark records that the objects changed and wakes the batcher.
func (t *tracker) mark(keys ...key) {
	if len(keys) == 0 {
		return
	}
	t.mu.Lock()
	for _, k := range keys {
		t.dirty[k] = struct{}{}
	}
	t.mu.Unlock()
	t.marks.Add(1)
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// take returns the dirty set and starts a new one.
func (t *tracker) take() map[key]struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.dirty
	t.dirty = make(map[key]struct{}, len(d)/2)
	return d
}

// pending returns how many objects changed since the last take.
func (t *tracker) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.dirty)
}

// fingerprint hashes an object's deterministic encoding (never 0).
func fingerprint(m proto.Message) uint64 {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		// Unreachable for the model's messages; a zero fingerprint only
		// means the object is sent again.
		return 0
	}
	h := maphash.Bytes(seed, b)
	if h == 0 {
		h = 1
	}
	return h
}
