package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	watcherv1 "github.com/flotilla-dev/flotilla/gen/flotilla/watcher/v1"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
)

type source struct {
	synced bool
	pods   []*clusterv1.Pod
}

func (s *source) Synced() bool { return s.synced }

func (s *source) Current(pendingOnly bool) *clusterv1.Snapshot {
	snap := &clusterv1.Snapshot{Region: "us-east-1"}
	for _, p := range s.pods {
		if !pendingOnly || p.GetNodeName() == "" {
			snap.Pods = append(snap.Pods, p)
		}
	}
	return snap
}

type stream struct{}

func (stream) Sequence() uint64 { return 42 }
func (stream) Streaming() bool  { return true }

func dial(t *testing.T, w *Watcher) watcherv1.WatcherClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	watcherv1.RegisterWatcherServer(srv, w)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return watcherv1.NewWatcherClient(conn)
}

func TestSnapshot(t *testing.T) {
	t.Parallel()
	src := &source{pods: []*clusterv1.Pod{{Namespace: "a", Name: "pending"}, {Namespace: "a", Name: "bound", NodeName: "n"}}}
	var st Stream
	client := dial(t, New(src, func() Stream { return st }))
	ctx := context.Background()

	_, err := client.Snapshot(ctx, &watcherv1.SnapshotRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("before sync: error %v, want Unavailable", err)
	}
	src.synced = true

	resp, err := client.Snapshot(ctx, &watcherv1.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetSnapshot().GetPods()) != 2 || resp.GetStreaming() || resp.GetSequence() != 0 {
		t.Errorf("not streaming: got %d pods, streaming %v, sequence %d", len(resp.GetSnapshot().GetPods()), resp.GetStreaming(), resp.GetSequence())
	}

	st = stream{}
	resp, err = client.Snapshot(ctx, &watcherv1.SnapshotRequest{PendingOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range resp.GetSnapshot().GetPods() {
		names = append(names, p.GetName())
	}
	if diff := cmp.Diff([]string{"pending"}, names); diff != "" || !resp.GetStreaming() || resp.GetSequence() != 42 {
		t.Errorf("pending only: pods %v streaming %v sequence %d", names, resp.GetStreaming(), resp.GetSequence())
	}
}

// TestStreamSnapshot: a snapshot too large for one answer is refused by
// Snapshot with a pointer to StreamSnapshot, which sends it in parts of at
// most PartObjects objects that merge back into the whole.
func TestStreamSnapshot(t *testing.T) {
	t.Parallel()
	src := &source{synced: true}
	for i := range 2*PartObjects + 500 {
		src.pods = append(src.pods, &clusterv1.Pod{Namespace: "ns", Name: fmt.Sprintf("pod-%05d", i), Uid: strings.Repeat("u", 36)})
	}
	w := New(src, func() Stream { return stream{} })
	w.maxUnary = 64 << 10
	client := dial(t, w)
	ctx := t.Context()

	_, err := client.Snapshot(ctx, &watcherv1.SnapshotRequest{})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "StreamSnapshot") {
		t.Fatalf("Snapshot of %d pods: %v, want ResourceExhausted naming StreamSnapshot", len(src.pods), err)
	}

	parts, err := client.StreamSnapshot(ctx, &watcherv1.StreamSnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	whole := &clusterv1.Snapshot{}
	n := 0
	for {
		part, err := parts.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if objects := len(part.GetSnapshot().GetPods()); objects > PartObjects {
			t.Errorf("part %d holds %d objects, want at most %d", n, objects, PartObjects)
		}
		if first := n == 0; (part.GetSequence() == 42 && part.GetStreaming()) != first {
			t.Errorf("part %d: sequence %d streaming %v; want 42 and true on the first part only", n, part.GetSequence(), part.GetStreaming())
		}
		proto.Merge(whole, part.GetSnapshot())
		n++
	}
	if n != 3 {
		t.Errorf("%d parts, want 3", n)
	}
	if want := src.Current(false); !proto.Equal(whole, want) {
		t.Errorf("merged parts hold %d pods (region %q), want the snapshot's %d (region %q) in order",
			len(whole.GetPods()), whole.GetRegion(), len(want.GetPods()), want.GetRegion())
	}
}
