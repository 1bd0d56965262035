package cluster

import (
	"sync"
	"time"
)

// podEvents remembers, per node, the last time a pod was bound to it, left
// it or finished on it: the start of the node's current empty (or busy)
// spell, which consolidateAfter counts from. It is soft state: after a
// restart every node's clock starts at the watcher's start, so emptiness is
// never over-counted (an empty node is removed late, never early).
type podEvents struct {
	mu    sync.Mutex
	since time.Time
	last  map[string]time.Time
}

func newPodEvents(start time.Time) *podEvents {
	return &podEvents{since: start, last: map[string]time.Time{}}
}

// record notes a pod event on node at t.
func (e *podEvents) record(node string, t time.Time) {
	if node == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if t.After(e.last[node]) {
		e.last[node] = t
	}
}

// get returns the last pod event on node, never earlier than the watcher's
// start.
func (e *podEvents) get(node string) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.last[node]; ok && t.After(e.since) {
		return t
	}
	return e.since
}

// forget drops a deleted node.
func (e *podEvents) forget(node string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.last, node)
}

// podNodeEvent returns the node whose pod clock a pod change moves, if any:
// the pod appeared bound, was bound, left (deleted), or finished.
func podNodeEvent(old, cur *cachedPod) (node string, ok bool) {
	switch {
	case old == nil && cur != nil:
		return cur.nodeName(), cur.nodeName() != ""
	case old != nil && cur == nil:
		return old.nodeName(), old.nodeName() != ""
	case old != nil && cur != nil:
		if old.nodeName() != cur.nodeName() {
			return cur.nodeName(), cur.nodeName() != ""
		}
		if !old.finished && cur.finished {
			return cur.nodeName(), cur.nodeName() != ""
		}
	}
	return "", false
}
