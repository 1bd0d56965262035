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

	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/disruption"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclaim"
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

// syncBuffer is a log sink safe for the server's goroutines.
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

// nameSet is a NodeClaims that refuses names the apiserver would refuse
// and remembers the rest.
type nameSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (n *nameSet) Create(_ context.Context, p *clusterv1.NodeClaimPlan) (nodeclaim.Outcome, string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen[p.GetName()] {
		return nodeclaim.Exists, "exists", nil
	}
	n.seen[p.GetName()] = true
	return nodeclaim.Created, "created", nil
}

type noDisruptions struct{}

func (noDisruptions) Execute(context.Context, *clusterv1.DisruptionPlan) (disruption.Result, error) {
	return disruption.Result{Message: "not now"}, nil
}

// rawConn serves s on Flotilla's gRPC server (validation, recovery, size
// limits) in memory and returns a connection and the server's log.
func rawConn(f testing.TB, s *Server) (*grpc.ClientConn, *syncBuffer) {
	logs := &syncBuffer{}
	srv, err := rpc.NewServer(rpc.ServerOptions{Logger: slog.New(slog.NewTextHandler(logs, nil)), MaxMessageBytes: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	actuatorv1.RegisterActuatorServer(srv, s)
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
	return conn, logs
}

// FuzzExecute sends arbitrary bytes as an ExecuteRequest. Bytes that do not
// decode are InvalidArgument before any handler sees them; a request that decodes is answered
// with one result per plan entry, or InvalidArgument (bad fields, from the
// validation interceptor) or ResourceExhausted (too large) — never a
// panic, never Internal.
func FuzzExecute(f *testing.F) {
	seeds := []*actuatorv1.ExecuteRequest{
		{Plan: &clusterv1.Plan{}},
		{Plan: &clusterv1.Plan{Id: "p", NodeClaims: []*clusterv1.NodeClaimPlan{
			{Name: "default-abc12", NodePool: "default", InstanceType: "m5.large", Pods: []string{"shop/web-1"},
				Options: []*clusterv1.InstanceOption{{InstanceType: "m5.large", Zone: "us-east-1a", CapacityType: "on-demand"}}},
		}}},
		{Plan: &clusterv1.Plan{Disruptions: []*clusterv1.DisruptionPlan{{Id: "d1", NodeClaims: []string{"a"},
			Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_EMPTY}}}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}) // a length past the end
	conn, logs := rawConn(f, New(&nameSet{seen: map[string]bool{}}, noDisruptions{}, catalog{}, "us-east-1", nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var out []byte
		err := conn.Invoke(ctx, "/flotilla.actuator.v1.Actuator/Execute", &data, &out)
		req := &actuatorv1.ExecuteRequest{}
		decodes := proto.Unmarshal(data, req) == nil
		code := status.Code(err)
		switch {
		case strings.Contains(logs.String(), "panic_recovered"):
			t.Fatalf("the server panicked on %x:\n%s", data, logs.String())
		case !decodes:
			// gRPC's own answer to a message that does not decode.
			if code != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "does not decode") {
				t.Fatalf("undecodable request: %v, want InvalidArgument", err)
			}
		case code == codes.OK:
			resp := &actuatorv1.ExecuteResponse{}
			if err := proto.Unmarshal(out, resp); err != nil {
				t.Fatalf("response does not decode: %v", err)
			}
			plan := req.GetPlan()
			if got, want := len(resp.GetResults()), len(plan.GetNodeClaims())+len(plan.GetDisruptions()); got != want {
				t.Fatalf("%d results for %d plan entries", got, want)
			}
		case code == codes.InvalidArgument, code == codes.ResourceExhausted:
		default:
			t.Fatalf("Execute = %v, want a result, InvalidArgument or ResourceExhausted", err)
		}
	})
}

func TestExecuteRefusesOversizedRequests(t *testing.T) {
	t.Parallel()
	conn, logs := rawConn(t, New(&nameSet{seen: map[string]bool{}}, noDisruptions{}, catalog{}, "us-east-1", nil))
	pods := make([]string, 40000)
	for i := range pods {
		pods[i] = "namespace/pod-with-a-long-name-" + strings.Repeat("x", 20)
	}
	data, err := proto.Marshal(&actuatorv1.ExecuteRequest{Plan: &clusterv1.Plan{NodeClaims: []*clusterv1.NodeClaimPlan{{Name: "a", Pods: pods}}}})
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	err = conn.Invoke(t.Context(), "/flotilla.actuator.v1.Actuator/Execute", &data, &out)
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("Execute with %d bytes = %v, want ResourceExhausted", len(data), err)
	}
	if strings.Contains(logs.String(), "panic_recovered") {
		t.Errorf("the server panicked:\n%s", logs.String())
	}
	// The server still answers.
	small, _ := proto.Marshal(&actuatorv1.ExecuteRequest{Plan: &clusterv1.Plan{}})
	if err := conn.Invoke(t.Context(), "/flotilla.actuator.v1.Actuator/Execute", &small, &out); err != nil {
		t.Errorf("Execute after an oversized request: %v", err)
	}
}
