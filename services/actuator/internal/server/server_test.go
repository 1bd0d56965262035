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
	"github.com/flotilla-dev/flotilla/services/actuator/internal/disruption"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclaim"
	"github.com/flotilla-dev/flotilla/services/internal/rpc"
)

// claims is an in-memory NodeClaim store: creating a name twice is Exists.
type claims struct {
	mu      sync.Mutex
	created []string
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

// disruptions answers Execute from a table by plan id and records the ids.
type disruptions struct {
	mu       sync.Mutex
	results  map[string]disruption.Result
	executed []string
}

func (d *disruptions) Execute(_ context.Context, p *clusterv1.DisruptionPlan) (disruption.Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.executed = append(d.executed, p.GetId())
	return d.results[p.GetId()], nil
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
	cs := &claims{refuse: map[string]string{"too-big": "nodepool default: nodepool limit exceeded"}}
	ds := &disruptions{results: map[string]disruption.Result{
		"empty-1":   {Disrupting: true, Message: "draining and terminating 1 nodes (old-1)"},
		"replace-1": {Disrupting: true, Message: "waiting for replacements before draining: new-1 is launching"},
		"blocked-1": {Message: "node n-3 may not be disrupted now: pod ns/db is annotated karpenter.sh/do-not-disrupt"},
	}}
	client := dial(t, New(cs, ds, catalog{}, "us-east-1", nil))
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
			{Id: "blocked-1", Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_UNDERUTILIZED, NodeClaims: []string{"old-3"}},
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
		{Name: "replace-1", Outcome: actuatorv1.Outcome_OUTCOME_DISRUPTING, Message: "waiting for replacements before draining: new-1 is launching"},
		{Name: "blocked-1", Outcome: actuatorv1.Outcome_OUTCOME_FAILED,
			Message: "node n-3 may not be disrupted now: pod ns/db is annotated karpenter.sh/do-not-disrupt"},
	}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("first Execute (-want +got):\n%s", diff)
	}

	// The same plan again: no NodeClaim is created twice; the disruptions
	// are handed on again (the executor moves them along).
	got, err = client.Execute(ctx, &actuatorv1.ExecuteRequest{Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	if o := got.Results[0].Outcome; o != actuatorv1.Outcome_OUTCOME_EXISTS {
		t.Errorf("repeated NodeClaim outcome = %s, want OUTCOME_EXISTS", o)
	}
	if diff := cmp.Diff([]string{"default-a"}, cs.created); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"empty-1", "replace-1", "blocked-1", "empty-1", "replace-1", "blocked-1"}, ds.executed); diff != "" {
		t.Errorf("disruptions executed (-want +got):\n%s", diff)
	}
}

func TestExecuteRejectsMalformedPlans(t *testing.T) {
	t.Parallel()
	client := dial(t, New(&claims{}, &disruptions{}, catalog{}, "us-east-1", nil))
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
	client := dial(t, New(&claims{}, &disruptions{}, types, "us-east-1", nil))
	got, err := client.ListInstanceTypes(t.Context(), &actuatorv1.ListInstanceTypesRequest{NodeClass: "default"})
	if err != nil {
		t.Fatal(err)
	}
	want := &actuatorv1.ListInstanceTypesResponse{InstanceTypes: types, Region: "us-east-1"}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("ListInstanceTypes (-want +got):\n%s", diff)
	}
}
