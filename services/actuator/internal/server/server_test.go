package server

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/testing/protocmp"

	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclaim"
	"github.com/flotilla-dev/flotilla/services/internal/rpc"
)

// claims is an in-memory NodeClaim store: creating a name twice is Exists;
// names in ready are initialized.
type claims struct {
	mu      sync.Mutex
	created []string
	deleted []string
	ready   map[string]bool
	refuse  map[string]string
}

func (c *claims) Create(_ context.Context, p *clusterv1.NodeClaimPlan) (nodeclaim.Outcome, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if msg, ok := c.refuse[p.Name]; ok {
		return nodeclaim.Failed, msg, nil
	}
	if slices.Contains(c.created, p.Name) {
		return nodeclaim.Exists, "exists", nil
	}
	c.created = append(c.created, p.Name)
	return nodeclaim.Created, "created", nil
}

func (c *claims) Ready(_ context.Context, name string) (bool, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready[name], "nodeclaim " + name + " is launching", nil
}

func (c *claims) Delete(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleted = append(c.deleted, name)
	return nil
}

type catalog []*clusterv1.InstanceType

func (c catalog) InstanceTypes(context.Context, string) ([]*clusterv1.InstanceType, error) {
	return c, nil
}

func dial(t *testing.T, s *Server) actuatorv1.ActuatorClient {
	t.Helper()
	srv, err := rpc.NewServer(rpc.ServerOptions{})
	if err != nil {
		t.Fatal(err)
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
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		<-done
	})
	return actuatorv1.NewActuatorClient(conn)
}

func TestExecute(t *testing.T) {
	t.Parallel()
	cs := &claims{ready: map[string]bool{}, refuse: map[string]string{"too-big": "nodepool default: nodepool limit exceeded"}}
	client := dial(t, New(cs, catalog{}, "us-east-1", nil))
	ctx := t.Context()
	plan := &clusterv1.Plan{
		NodeClaims: []*clusterv1.NodeClaimPlan{
			{Name: "default-a", NodePool: "default", Pods: []string{"ns/p1"}},
			{Name: "too-big", NodePool: "default"},
		},
		Disruptions: []*clusterv1.DisruptionPlan{
			{Id: "empty-1", Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_EMPTY, NodeClaims: []string{"old-1"}},
			{Id: "replace-1", Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_UNDERUTILIZED, NodeClaims: []string{"old-2"},
				Replacements: []*clusterv1.NodeClaimPlan{{Name: "new-1", NodePool: "default"}}},
		},
	}
	got, err := client.Execute(ctx, &actuatorv1.ExecuteRequest{Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	want := &actuatorv1.ExecuteResponse{Results: []*actuatorv1.NodeClaimResult{
		{Name: "default-a", Outcome: actuatorv1.Outcome_OUTCOME_CREATED, Message: "created", Pods: []string{"ns/p1"}},
		{Name: "too-big", Outcome: actuatorv1.Outcome_OUTCOME_FAILED, Message: "nodepool default: nodepool limit exceeded"},
		{Name: "empty-1", Outcome: actuatorv1.Outcome_OUTCOME_DISRUPTING, Message: "draining and terminating 1 nodes (old-1)"},
		{Name: "replace-1", Outcome: actuatorv1.Outcome_OUTCOME_DISRUPTING,
			Message: "waiting for replacements before draining: nodeclaim new-1 is launching"},
	}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("first Execute (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"old-1"}, cs.deleted); diff != "" {
		t.Errorf("deleted before the replacement is ready (-want +got):\n%s", diff)
	}

	// The same plan again: nothing is created twice; the replacement is
	// ready now, so the old node goes.
	cs.ready["new-1"] = true
	got, err = client.Execute(ctx, &actuatorv1.ExecuteRequest{Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	if o := got.Results[0].Outcome; o != actuatorv1.Outcome_OUTCOME_EXISTS {
		t.Errorf("repeated NodeClaim outcome = %s, want OUTCOME_EXISTS", o)
	}
	if diff := cmp.Diff([]string{"default-a", "new-1"}, cs.created); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"old-1", "old-1", "old-2"}, cs.deleted); diff != "" {
		t.Errorf("deleted (-want +got):\n%s", diff)
	}
}

func TestExecuteRejectsMalformedPlans(t *testing.T) {
	t.Parallel()
	client := dial(t, New(&claims{}, catalog{}, "us-east-1", nil))
	for name, req := range map[string]*actuatorv1.ExecuteRequest{
		"no plan":           {},
		"nodeclaim unnamed": {Plan: &clusterv1.Plan{NodeClaims: []*clusterv1.NodeClaimPlan{{NodePool: "default"}}}},
	} {
		_, err := client.Execute(t.Context(), req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: Execute = %v, want InvalidArgument", name, err)
		}
	}
}

func TestListInstanceTypes(t *testing.T) {
	t.Parallel()
	types := catalog{{Name: "t3.medium", Arch: "amd64", Offerings: []*clusterv1.Offering{
		{Zone: "us-east-1a", CapacityType: "on-demand", PricePerHour: 0.0416, Available: true, PriceSource: "embedded"},
	}}}
	client := dial(t, New(&claims{}, types, "us-east-1", nil))
	got, err := client.ListInstanceTypes(t.Context(), &actuatorv1.ListInstanceTypesRequest{NodeClass: "default"})
	if err != nil {
		t.Fatal(err)
	}
	want := &actuatorv1.ListInstanceTypesResponse{InstanceTypes: types, Region: "us-east-1"}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("ListInstanceTypes (-want +got):\n%s", diff)
	}
}
