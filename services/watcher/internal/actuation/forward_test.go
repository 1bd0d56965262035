package actuation

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// world records what the forwarder does: nominations, events, Execute
// calls. Execute answers with outcome for every NodeClaim, or err.
type world struct {
	mu       sync.Mutex
	noms     map[string]string // pod → claim
	events   []string
	calls    [][]string // NodeClaim names per Execute
	atCall   []map[string]string
	outcome  actuatorv1.Outcome
	err      error
	block    chan struct{}
	executed chan struct{}
}

func newWorld() *world {
	return &world{noms: map[string]string{}, outcome: actuatorv1.Outcome_OUTCOME_CREATED, executed: make(chan struct{}, 100)}
}

func (w *world) Nominate(claim string, pods []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range pods {
		w.noms[p] = claim
	}
}

func (w *world) Release(claim string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for p, c := range w.noms {
		if c == claim {
			delete(w.noms, p)
		}
	}
}

func (w *world) NominatedClaim(pod string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.noms[pod]
}

func (w *world) Pod(pod, eventType, reason, message string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, fmt.Sprintf("pod %s %s %s: %s", pod, eventType, reason, message))
}

func (w *world) NodeClaim(claim, eventType, reason, message string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, fmt.Sprintf("nodeclaim %s %s %s: %s", claim, eventType, reason, message))
}

func (w *world) Execute(ctx context.Context, in *actuatorv1.ExecuteRequest, _ ...grpc.CallOption) (*actuatorv1.ExecuteResponse, error) {
	w.mu.Lock()
	var names []string
	resp := &actuatorv1.ExecuteResponse{}
	for _, nc := range in.GetPlan().GetNodeClaims() {
		names = append(names, nc.GetName())
		resp.Results = append(resp.Results, &actuatorv1.NodeClaimResult{Name: nc.GetName(), Outcome: w.outcome, Message: "limit reached", Pods: nc.GetPods()})
	}
	w.calls = append(w.calls, names)
	snapshot := map[string]string{}
	for k, v := range w.noms {
		snapshot[k] = v
	}
	w.atCall = append(w.atCall, snapshot)
	block, err := w.block, w.err
	w.mu.Unlock()
	defer func() { w.executed <- struct{}{} }()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (w *world) snapshotEvents() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.events)
}

func run(t *testing.T, w *world) *Forwarder {
	t.Helper()
	f := New(w, w, w, Options{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return f
}

func waitExecuted(t *testing.T, w *world) {
	t.Helper()
	select {
	case <-w.executed:
	case <-time.After(5 * time.Second):
		t.Fatal("Execute was not called")
	}
}

// settle waits until the forwarder has had time to act on queued plans.
func settle(f *Forwarder) {
	for range 100 {
		f.mu.Lock()
		idle := f.pending == nil
		f.mu.Unlock()
		if idle {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
}

func TestCreatedNodeClaimNominatesItsPods(t *testing.T) {
	t.Parallel()
	w := newWorld()
	f := run(t, w)
	f.Handle(context.Background(), &clusterv1.Plan{Id: "p", NodeClaims: []*clusterv1.NodeClaimPlan{{Name: "nc-1", NodePool: "default", Pods: []string{"default/a", "default/b"}}}})
	waitExecuted(t, w)
	settle(f)
	w.mu.Lock()
	defer w.mu.Unlock()
	if diff := cmp.Diff(map[string]string{"default/a": "nc-1", "default/b": "nc-1"}, w.atCall[0]); diff != "" {
		t.Errorf("nominations when Execute was called (-want +got):\n%s", diff)
	}
	want := []string{
		"pod default/a Normal Nominated: Pod should schedule on: nodeclaim/nc-1",
		"pod default/b Normal Nominated: Pod should schedule on: nodeclaim/nc-1",
		"nodeclaim nc-1 Normal Planned: Launching for 2 pod(s): default/a, default/b",
	}
	if diff := cmp.Diff(want, w.events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestFailedNodeClaimReleasesItsPods(t *testing.T) {
	t.Parallel()
	w := newWorld()
	w.outcome = actuatorv1.Outcome_OUTCOME_FAILED
	f := run(t, w)
	f.Handle(context.Background(), &clusterv1.Plan{NodeClaims: []*clusterv1.NodeClaimPlan{{Name: "nc-1", Pods: []string{"default/a"}}}})
	waitExecuted(t, w)
	settle(f)
	if got := w.NominatedClaim("default/a"); got != "" {
		t.Errorf("pod still nominated to %q after the launch failed", got)
	}
	want := []string{
		"pod default/a Warning FlotillaLaunchFailed: NodeClaim nc-1 could not be created: limit reached",
		"nodeclaim nc-1 Warning FlotillaLaunchFailed: limit reached",
	}
	if diff := cmp.Diff(want, w.snapshotEvents()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestExecuteErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		kept bool
	}{
		{"unavailable: nothing happened", status.Error(codes.Unavailable, "connection refused"), false},
		{"deadline: it may have happened", status.Error(codes.DeadlineExceeded, "slow"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld()
			w.err = tc.err
			f := run(t, w)
			f.Handle(context.Background(), &clusterv1.Plan{NodeClaims: []*clusterv1.NodeClaimPlan{{Name: "nc-1", Pods: []string{"default/a"}}}})
			waitExecuted(t, w)
			settle(f)
			if kept := w.NominatedClaim("default/a") == "nc-1"; kept != tc.kept {
				t.Errorf("nomination kept = %v, want %v", kept, tc.kept)
			}
		})
	}
}

func TestStaleNodeClaimsAreNotLaunched(t *testing.T) {
	t.Parallel()
	w := newWorld()
	w.noms["default/a"] = "nc-old"
	f := run(t, w)
	f.Handle(context.Background(), &clusterv1.Plan{NodeClaims: []*clusterv1.NodeClaimPlan{
		{Name: "nc-new", Pods: []string{"default/a", "default/b"}},
		{Name: "nc-other", Pods: []string{"default/c"}},
		{Name: "nc-old", Pods: []string{"default/a"}},
	}})
	waitExecuted(t, w)
	settle(f)
	w.mu.Lock()
	defer w.mu.Unlock()
	if diff := cmp.Diff([][]string{{"nc-other", "nc-old"}}, w.calls); diff != "" {
		t.Errorf("Execute calls (-want +got):\n%s", diff)
	}
}

func TestNewerPlanSupersedesWaitingOne(t *testing.T) {
	t.Parallel()
	w := newWorld()
	w.block = make(chan struct{})
	f := run(t, w)
	plan := func(name string) *clusterv1.Plan {
		return &clusterv1.Plan{NodeClaims: []*clusterv1.NodeClaimPlan{{Name: name, Pods: []string{"default/" + name}}}}
	}
	f.Handle(context.Background(), plan("first"))
	for {
		w.mu.Lock()
		n := len(w.calls)
		w.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	f.Handle(context.Background(), plan("second"))
	f.Handle(context.Background(), plan("third"))
	close(w.block)
	waitExecuted(t, w)
	waitExecuted(t, w)
	settle(f)
	w.mu.Lock()
	defer w.mu.Unlock()
	if diff := cmp.Diff([][]string{{"first"}, {"third"}}, w.calls); diff != "" {
		t.Errorf("Execute calls (-want +got):\n%s", diff)
	}
}

func TestUnschedulableAndPlacementEvents(t *testing.T) {
	t.Parallel()
	w := newWorld()
	f := run(t, w)
	plan := &clusterv1.Plan{
		Unschedulable: []*clusterv1.Unschedulable{{Pod: "default/big", Reason: "no instance type in NodePool default has 96 GiB memory"}},
		ExistingNodes: []*clusterv1.NodePlacement{
			{Node: "node-1", Pods: []string{"default/a"}},
			{Node: "nc-9", InFlight: true, Pods: []string{"default/b"}},
		},
	}
	f.Handle(context.Background(), plan)
	settle(f)
	f.Handle(context.Background(), plan) // the next batch's plan says the same
	settle(f)
	want := []string{
		"pod default/big Warning FlotillaUnschedulable: no instance type in NodePool default has 96 GiB memory",
		"pod default/a Normal Nominated: Pod should schedule on: node/node-1",
		"pod default/b Normal Nominated: Pod should schedule on: nodeclaim/nc-9",
	}
	if diff := cmp.Diff(want, w.snapshotEvents()); diff != "" {
		t.Errorf("events, each once (-want +got):\n%s", diff)
	}
	if got := w.NominatedClaim("default/b"); got != "nc-9" {
		t.Errorf("pod placed on an in-flight NodeClaim is nominated to %q, want nc-9", got)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.calls) != 0 {
		t.Errorf("Execute called %d times for a plan with nothing to launch", len(w.calls))
	}
}

func TestCatalogFetch(t *testing.T) {
	t.Parallel()
	sink := &catalogSink{}
	err := FetchCatalog(context.Background(), catalogFunc(func() (*actuatorv1.ListInstanceTypesResponse, error) {
		return &actuatorv1.ListInstanceTypesResponse{Region: "eu-west-1", InstanceTypes: []*clusterv1.InstanceType{{Name: "m5.large"}}}, nil
	}), sink, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if sink.region != "eu-west-1" || len(sink.types) != 1 {
		t.Errorf("sink got region %q and %d types", sink.region, len(sink.types))
	}
	err = FetchCatalog(context.Background(), catalogFunc(func() (*actuatorv1.ListInstanceTypesResponse, error) {
		return nil, status.Error(codes.Unavailable, "down")
	}), sink, time.Second)
	if status.Code(err) != codes.Unavailable {
		t.Errorf("error %v, want the Unavailable wrapped", err)
	}
}

type catalogFunc func() (*actuatorv1.ListInstanceTypesResponse, error)

func (f catalogFunc) ListInstanceTypes(context.Context, *actuatorv1.ListInstanceTypesRequest, ...grpc.CallOption) (*actuatorv1.ListInstanceTypesResponse, error) {
	return f()
}

type catalogSink struct {
	region string
	types  []*clusterv1.InstanceType
}

func (s *catalogSink) SetInstanceTypes(region string, types []*clusterv1.InstanceType) {
	s.region, s.types = region, types
}
