// Package server serves flotilla.watcher.v1.Watcher: the watcher's current
// picture of the cluster, for debugging with grpcurl.
package server

import (
	"context"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	watcherv1 "github.com/flotilla-dev/flotilla/gen/flotilla/watcher/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Source is the cluster picture.
type Source interface {
	// Current returns what the watcher sees; pendingOnly leaves out bound
	// pods.
	Current(pendingOnly bool) *clusterv1.Snapshot
	// Synced reports whether the informer caches have synced.
	Synced() bool
}

// Stream reports on the planner stream.
type Stream interface {
	Sequence() uint64
	Streaming() bool
}

// Watcher implements flotilla.watcher.v1.Watcher.
type Watcher struct {
	watcherv1.UnimplementedWatcherServer
	src    Source
	stream func() Stream
}

// New returns the service. stream returns the planner stream, or nil while
// this replica does not stream (it is not the leader).
func New(src Source, stream func() Stream) *Watcher {
	return &Watcher{src: src, stream: stream}
}

// Snapshot returns the current picture, the sequence of the last event sent
// to the planner and whether a planner stream is up. It answers Unavailable
// until the informer caches have synced.
func (w *Watcher) Snapshot(_ context.Context, req *watcherv1.SnapshotRequest) (*watcherv1.SnapshotResponse, error) {
	if !w.src.Synced() {
		return nil, status.Error(codes.Unavailable, "informer caches are not synced yet")
	}
	resp := &watcherv1.SnapshotResponse{Snapshot: w.src.Current(req.GetPendingOnly())}
	if s := w.stream(); s != nil {
		resp.Sequence = s.Sequence()
		resp.Streaming = s.Streaming()
	}
	return resp, nil
}
