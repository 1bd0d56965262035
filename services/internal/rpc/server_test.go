package rpc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// panicky answers Plan by panicking when the snapshot names region "boom".
type panicky struct {
	plannerv1.UnimplementedPlannerServer
}

func (panicky) Plan(_ context.Context, req *plannerv1.PlanRequest) (*plannerv1.PlanResponse, error) {
	if req.GetSnapshot().GetRegion() == "boom" {
		panic("solver exploded")
	}
	return &plannerv1.PlanResponse{TotalPricePerHour: 1}, nil
}

func startServer(t *testing.T) *grpc.ClientConn {
	t.Helper()
	srv, err := NewServer(ServerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxMessageBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	plannerv1.RegisterPlannerServer(srv, panicky{})
	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, time.Second) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return conn
}

func TestServerDefaults(t *testing.T) {
	conn := startServer(t)
	ctx := context.Background()
	client := plannerv1.NewPlannerClient(conn)

	t.Run("valid request is served", func(t *testing.T) {
		resp, err := client.Plan(ctx, &plannerv1.PlanRequest{Snapshot: &clusterv1.Snapshot{}})
		if err != nil || resp.GetTotalPricePerHour() != 1 {
			t.Fatalf("Plan = %v, %v", resp, err)
		}
	})
	t.Run("invalid request is InvalidArgument naming the field", func(t *testing.T) {
		_, err := client.Plan(ctx, &plannerv1.PlanRequest{Snapshot: &clusterv1.Snapshot{
			Pods: []*clusterv1.Pod{{Namespace: "default", Name: "web", Containers: []*clusterv1.Container{{Requests: &clusterv1.Resources{CpuMillis: -5}}}}},
		}})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("code = %v (%v), want InvalidArgument", status.Code(err), err)
		}
		if !strings.Contains(err.Error(), "snapshot.pods[0].containers[0].requests.cpu_millis") {
			t.Errorf("error %q does not name the field", err)
		}
	})
	t.Run("missing required field", func(t *testing.T) {
		_, err := client.Plan(ctx, &plannerv1.PlanRequest{})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "snapshot") {
			t.Fatalf("err = %v, want InvalidArgument naming snapshot", err)
		}
	})
	t.Run("panic becomes Internal and the server lives on", func(t *testing.T) {
		_, err := client.Plan(ctx, &plannerv1.PlanRequest{Snapshot: &clusterv1.Snapshot{Region: "boom"}})
		if status.Code(err) != codes.Internal {
			t.Fatalf("code = %v, want Internal", status.Code(err))
		}
		if _, err := client.Plan(ctx, &plannerv1.PlanRequest{Snapshot: &clusterv1.Snapshot{}}); err != nil {
			t.Fatalf("server unusable after panic: %v", err)
		}
	})
	t.Run("oversized request is ResourceExhausted", func(t *testing.T) {
		_, err := client.Plan(ctx, &plannerv1.PlanRequest{Snapshot: &clusterv1.Snapshot{Region: strings.Repeat("x", 100<<10)}})
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("code = %v, want ResourceExhausted", status.Code(err))
		}
	})
	t.Run("health answers", func(t *testing.T) {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health = %v, %v", resp, err)
		}
	})
	t.Run("reflection lists the service", func(t *testing.T) {
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !strings.Contains(strings.Join(names, ","), "flotilla.planner.v1.Planner") {
			t.Errorf("reflection services = %v", names)
		}
		_ = stream.CloseSend()
	})
}

func TestServeStopsOnCancel(t *testing.T) {
	srv, err := NewServer(ServerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, time.Second) }()
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

// wireBytes sends a request's bytes as they are, as a hostile or broken
// client could.
type wireBytes struct{}

func (wireBytes) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (wireBytes) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (wireBytes) Name() string { return "proto" }

// TestUndecodableRequests: bytes that are not the method's message are the
// caller's fault, InvalidArgument, on unary and streaming methods alike,
// and the server goes on serving.
func TestUndecodableRequests(t *testing.T) {
	conn := startServer(t)
	ctx := context.Background()
	// Field 1 (snapshot) as a length-delimited field that claims 100 bytes
	// and has 1; then a field of wire type 7, which does not exist.
	for name, data := range map[string][]byte{"truncated field": {0x0a, 0x64, 0x01}, "bad wire type": {0x0f}} {
		t.Run("unary "+name, func(t *testing.T) {
			var out []byte
			err := conn.Invoke(ctx, "/flotilla.planner.v1.Planner/Plan", &data, &out, grpc.ForceCodec(wireBytes{}))
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "does not decode") {
				t.Fatalf("Plan(%x) = %v, want InvalidArgument: does not decode", data, err)
			}
		})
	}
	t.Run("stream", func(t *testing.T) {
		desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
		stream, err := conn.NewStream(ctx, desc, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", grpc.ForceCodec(wireBytes{}))
		if err != nil {
			t.Fatal(err)
		}
		bad := []byte{0x0f}
		if err := stream.SendMsg(&bad); err != nil {
			t.Fatal(err)
		}
		var out []byte
		err = stream.RecvMsg(&out)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("ServerReflectionInfo(%x) = %v, want InvalidArgument", bad, err)
		}
	})
	t.Run("server still serves", func(t *testing.T) {
		if _, err := plannerv1.NewPlannerClient(conn).Plan(ctx, &plannerv1.PlanRequest{Snapshot: &clusterv1.Snapshot{}}); err != nil {
			t.Fatal(err)
		}
		n := 0
		undecodable.Range(func(any, any) bool { n++; return true })
		if n != 0 {
			t.Errorf("%d decode errors left behind (a leak)", n)
		}
	})
}
