// Package server serves flotilla.watcher.v1.Watcher: the watcher's current
// picture of the cluster, for debugging with grpcurl.
package server

import (
	"context"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	watcherv1 "github.com/flotilla-dev/flotilla/gen/flotilla/watcher/v1"
	"github.com/flotilla-dev/flotilla/services/internal/parts"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
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
	// maxUnary is MaxUnarySnapshot (smaller in tests).
	maxUnary int
}

// New returns the service. stream returns the planner stream, or nil while
// this replica does not stream (it is not the leader).
func New(src Source, stream func() Stream) *Watcher {
	return &Watcher{src: src, stream: stream, maxUnary: MaxUnarySnapshot}
}

// Snapshot returns the current picture, the sequence of the last event sent
// to the planner and whether a planner stream is up. It answers Unavailable
// until the informer caches have synced, and ResourceExhausted for a
// picture over MaxUnarySnapshot (StreamSnapshot sends it).
func (w *Watcher) Snapshot(_ context.Context, req *watcherv1.SnapshotRequest) (*watcherv1.SnapshotResponse, error) {
	if !w.src.Synced() {
		return nil, status.Error(codes.Unavailable, "informer caches are not synced yet")
	}
	resp := &watcherv1.SnapshotResponse{Snapshot: w.src.Current(req.GetPendingOnly())}
	if size := proto.Size(resp); size > w.maxUnary {
		return nil, status.Errorf(codes.ResourceExhausted,
			"the snapshot is %.1f MiB, over the %.1f MiB one answer may take: call StreamSnapshot for all of it, or set pending_only",
			float64(size)/(1<<20), float64(w.maxUnary)/(1<<20))
	}
	if s := w.stream(); s != nil {
		resp.Sequence = s.Sequence()
		resp.Streaming = s.Streaming()
	}
	return resp, nil
}

// MaxUnarySnapshot is the largest snapshot Snapshot returns in one answer
// (some 40,000 pods). A larger one, marshalled whole, would hold as much
// memory again as the watcher's caches for a while.
const MaxUnarySnapshot = 16 << 20

// PartObjects is how many objects each StreamSnapshot part holds at most.
const PartObjects = parts.Objects

// StreamSnapshot sends the current picture in parts of at most PartObjects
// objects; the first part carries the scalars. Only one part is marshalled
// at a time, and flow control holds the next back while the client is
// slow, so the answer costs a part's memory whatever the cluster's size.
func (w *Watcher) StreamSnapshot(req *watcherv1.StreamSnapshotRequest, out grpc.ServerStreamingServer[watcherv1.StreamSnapshotResponse]) error {
	if !w.src.Synced() {
		return status.Error(codes.Unavailable, "informer caches are not synced yet")
	}
	for i, part := range parts.Split(w.src.Current(req.GetPendingOnly()), PartObjects) {
		resp := &watcherv1.StreamSnapshotResponse{Snapshot: part}
		if i == 0 {
			if s := w.stream(); s != nil {
				resp.Sequence, resp.Streaming = s.Sequence(), s.Streaming()
			}
		}
		if err := out.Send(resp); err != nil {
			return err
		}
	}
	return nil
}
