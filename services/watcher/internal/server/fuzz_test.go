package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	watcherv1 "github.com/flotilla-dev/flotilla/gen/flotilla/watcher/v1"
	"github.com/flotilla-dev/flotilla/services/internal/rpc"
)

// rawCodec sends a request's bytes as they are, so the fuzz target reaches
// the server with what a hostile client could put on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = slices.Clone(data)
	return nil
}
func (rawCodec) Name() string { return "proto" }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FuzzSnapshot sends arbitrary bytes as a SnapshotRequest through
// Flotilla's gRPC server: bytes that do not decode are InvalidArgument
// before any handler sees them; a request that decodes gets the picture (pending pods only when
// asked), never a panic or Internal.
func FuzzSnapshot(f *testing.F) {
	for _, r := range []*watcherv1.SnapshotRequest{{}, {PendingOnly: true}} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x08, 0x80})                   // a truncated varint
	f.Add([]byte{0x12, 0x03, 'a', 'b', 'c'})    // an unknown field
	f.Add([]byte{0x08, 0xff, 0xff, 0xff, 0x0f}) // a large bool

	logs := &syncBuffer{}
	srv, err := rpc.NewServer(rpc.ServerOptions{Logger: slog.New(slog.NewTextHandler(logs, nil)), MaxMessageBytes: 64 << 10})
	if err != nil {
		f.Fatal(err)
	}
	src := &source{synced: true, pods: []*clusterv1.Pod{
		{Namespace: "shop", Name: "web-1", NodeName: "n1"},
		{Namespace: "shop", Name: "web-2"},
	}}
	watcherv1.RegisterWatcherServer(srv, New(src, func() Stream { return stream{} }))
	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, lis, time.Second)
	}()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallSendMsgSize(8<<20)))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		_ = conn.Close()
		cancel()
		<-done
	})

	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var out []byte
		err := conn.Invoke(ctx, "/flotilla.watcher.v1.Watcher/Snapshot", &data, &out)
		req := &watcherv1.SnapshotRequest{}
		decodes := proto.Unmarshal(data, req) == nil
		code := status.Code(err)
		switch {
		case strings.Contains(logs.String(), "panic_recovered"):
			t.Fatalf("the server panicked on %x:\n%s", data, logs.String())
		case len(data) > 64<<10:
			if code != codes.ResourceExhausted {
				t.Fatalf("oversized request: %v, want ResourceExhausted", err)
			}
		case !decodes:
			if code != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "does not decode") {
				t.Fatalf("undecodable request: %v, want InvalidArgument", err)
			}
		case code == codes.OK:
			resp := &watcherv1.SnapshotResponse{}
			if err := proto.Unmarshal(out, resp); err != nil {
				t.Fatalf("response does not decode: %v", err)
			}
			want := 2
			if req.GetPendingOnly() {
				want = 1
			}
			if got := len(resp.GetSnapshot().GetPods()); got != want || resp.GetSequence() != 42 {
				t.Fatalf("snapshot of %d pods at sequence %d, want %d at 42", got, resp.GetSequence(), want)
			}
		default:
			t.Fatalf("Snapshot = %v, want the picture", err)
		}
	})
}

func TestSnapshotRefusesOversizedRequests(t *testing.T) {
	t.Parallel()
	srv, err := rpc.NewServer(rpc.ServerOptions{MaxMessageBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	watcherv1.RegisterWatcherServer(srv, New(&source{synced: true}, func() Stream { return nil }))
	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, lis, time.Second)
	}()
	t.Cleanup(func() { cancel(); <-done })
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// A valid request padded with an unknown field past the limit.
	data := append([]byte{0x08, 0x01, 0x7a, 0x80, 0x40}, bytes.Repeat([]byte{'x'}, 8<<10)...)
	var out []byte
	if err := conn.Invoke(t.Context(), "/flotilla.watcher.v1.Watcher/Snapshot", &data, &out); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("Snapshot with %d bytes = %v, want ResourceExhausted", len(data), err)
	}
}
