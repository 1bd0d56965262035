package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	"github.com/flotilla-dev/flotilla/services/internal/rpc"
	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// serve starts the planner on Flotilla's gRPC server (interceptors,
// validation, size limits) over an in-memory listener.
func serve(t *testing.T, maxBytes int) plannerv1.PlannerClient {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := rpc.NewServer(rpc.ServerOptions{Logger: logger, MaxMessageBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	plannerv1.RegisterPlannerServer(srv.Server, New(logger, nil, "us-east-1"))
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
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		<-done
	})
	return plannerv1.NewPlannerClient(conn)
}

// impossibleSnapshot has one pod that fits an m7g.xlarge and three that fit
// nothing the NodePool may launch.
func impossibleSnapshot() *clusterv1.Snapshot {
	s := validSnapshot()
	s.InstanceTypes = append(s.InstanceTypes, &clusterv1.InstanceType{Name: "m7g.2xlarge", Arch: "arm64",
		Capacity:  &clusterv1.Resources{CpuMillis: 8000, MemoryBytes: 32 << 30, Pods: 58},
		Offerings: []*clusterv1.Offering{{Zone: "us-east-1a", CapacityType: "on-demand", PricePerHour: 0.3264, Available: true}}})
	pod := func(name string, r *clusterv1.Resources) *clusterv1.Pod {
		return &clusterv1.Pod{Namespace: "default", Name: name, Containers: []*clusterv1.Container{{Name: "app", Requests: r}}}
	}
	huge := pod("huge-memory", &clusterv1.Resources{CpuMillis: 100, MemoryBytes: 96 << 30})
	gpu := pod("wants-gpu", &clusterv1.Resources{CpuMillis: 100, Extended: map[string]int64{"nvidia.com/gpu": 1}})
	amd := pod("wants-amd64", &clusterv1.Resources{CpuMillis: 100})
	amd.NodeSelector = map[string]string{model.LabelArch: "amd64"}
	s.Pods = append(s.Pods, huge, gpu, amd)
	return s
}

func TestPlanReportsImpossiblePodsAtNoCost(t *testing.T) {
	t.Parallel()
	client := serve(t, 0)
	ctx := t.Context()
	resp, err := client.Plan(ctx, &plannerv1.PlanRequest{Snapshot: impossibleSnapshot()})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, u := range resp.GetUnschedulable() {
		reasons[u.GetPod()] = u.GetReason()
	}
	for _, pod := range []string{"default/huge-memory", "default/wants-gpu", "default/wants-amd64"} {
		if strings.TrimSpace(reasons[pod]) == "" {
			t.Errorf("pod %s is not reported unschedulable with a reason (unschedulable: %v)", pod, reasons)
		}
	}
	if _, ok := reasons["default/web-1"]; ok {
		t.Errorf("the pod that fits is reported unschedulable: %s", reasons["default/web-1"])
	}
	for _, nc := range resp.GetNodeClaims() {
		for _, p := range nc.GetPods() {
			if p != "default/web-1" {
				t.Errorf("NodeClaim %s carries the impossible pod %s", nc.GetName(), p)
			}
		}
	}

	// The impossible pods cost nothing: the plan costs what the plan for
	// the possible pod alone costs.
	alone, err := client.Plan(ctx, &plannerv1.PlanRequest{Snapshot: validSnapshot()})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.GetTotalPricePerHour(), alone.GetTotalPricePerHour(); got != want || want == 0 {
		t.Errorf("price with the impossible pods = %v/h, want %v/h (the possible pod's alone, non-zero)", got, want)
	}
}

func TestPlanRejectsBadRequests(t *testing.T) {
	t.Parallel()
	client := serve(t, 256<<10)
	big := validSnapshot()
	big.Pods[0].Labels = map[string]string{"blob": strings.Repeat("x", 300<<10)}
	noPods := validSnapshot()
	noPods.Pods[0].Containers[0].Requests.CpuMillis = -5
	badOp := validSnapshot()
	badOp.Pods[0].NodeAffinity.Required[0].Requirements[0].Operator = 42
	dup := validSnapshot()
	dup.Pods = append(dup.Pods, proto.CloneOf(dup.Pods[0]))
	tests := []struct {
		name string
		req  *plannerv1.PlanRequest
		want codes.Code
		// field is a part of the message naming what is wrong.
		field string
	}{
		{"oversized", &plannerv1.PlanRequest{Snapshot: big}, codes.ResourceExhausted, ""},
		{"no snapshot", &plannerv1.PlanRequest{}, codes.InvalidArgument, "snapshot"},
		{"negative request", &plannerv1.PlanRequest{Snapshot: noPods}, codes.InvalidArgument, "cpu_millis"},
		{"unknown operator", &plannerv1.PlanRequest{Snapshot: badOp}, codes.InvalidArgument, "operator"},
		{"duplicate pod", &plannerv1.PlanRequest{Snapshot: dup}, codes.InvalidArgument, "snapshot.pods[1].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.Plan(t.Context(), tt.req)
			st := status.Convert(err)
			if st.Code() != tt.want || !strings.Contains(st.Message(), tt.field) {
				t.Errorf("Plan = %v %q, want %v naming %q", st.Code(), st.Message(), tt.want, tt.field)
			}
		})
	}

	// The server still answers after all that.
	if _, err := client.Plan(t.Context(), &plannerv1.PlanRequest{Snapshot: validSnapshot()}); err != nil {
		t.Errorf("Plan after bad requests: %v", err)
	}
}
