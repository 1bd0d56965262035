package actuation

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"

	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
)

// disrupter records the disruption ids of every Execute call and answers
// each as started.
type disrupter struct {
	mu    sync.Mutex
	calls [][]string
}

func (d *disrupter) Execute(_ context.Context, in *actuatorv1.ExecuteRequest, _ ...grpc.CallOption) (*actuatorv1.ExecuteResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	resp := &actuatorv1.ExecuteResponse{}
	for _, x := range in.GetPlan().GetDisruptions() {
		ids = append(ids, x.GetId())
		resp.Results = append(resp.Results, &actuatorv1.NodeClaimResult{Name: x.GetId(), Outcome: actuatorv1.Outcome_OUTCOME_DISRUPTING, Message: "started"})
	}
	d.calls = append(d.calls, ids)
	return resp, nil
}

func TestConsolidationIsValidatedBeforeItIsForwarded(t *testing.T) {
	t.Parallel()
	w := newWorld()
	act := &disrupter{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var asked []time.Duration
	start := now
	f := New(act, w, w, Options{
		DisruptionValidation: 5 * time.Second,
		Recheck:              func(at time.Time) { asked = append(asked, at.Sub(start)) },
		Logger:               slog.New(slog.DiscardHandler),
		Now:                  func() time.Time { return now },
	})
	empty := func(id string, claims ...string) *clusterv1.DisruptionPlan {
		return &clusterv1.DisruptionPlan{Id: id, Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_EMPTY, NodeClaims: claims}
	}
	drift := &clusterv1.DisruptionPlan{Id: "drift", Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_DRIFTED, NodeClaims: []string{"d"}}
	interrupted := &clusterv1.DisruptionPlan{Id: "int", Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_INTERRUPTED, NodeClaims: []string{"i"}}
	at := func(d time.Duration, ds ...*clusterv1.DisruptionPlan) {
		now = start.Add(d)
		f.forward(context.Background(), &item{plan: &clusterv1.Plan{Disruptions: ds}})
	}

	at(0, empty("e-a", "a"), drift, interrupted) // drift and interruption go at once
	at(2*time.Second, empty("e-a", "a"))         // too early
	at(5*time.Second, empty("e-a", "a"))         // held for the whole delay
	// A decision that stops holding starts over.
	at(6*time.Second, empty("e-b", "b"))
	at(8*time.Second, empty("e-c", "c")) // b is no longer planned
	at(11*time.Second, empty("e-b", "b"), empty("e-c", "c"))
	// A long silence (no plan at all) starts over too.
	at(40*time.Second, empty("e-c", "c")) // not forwarded: seen last at 11s
	at(45*time.Second, empty("e-c", "c"))

	want := [][]string{{"drift", "int"}, {"e-a"}, {"e-c"}}
	if diff := cmp.Diff(want, act.calls); diff != "" {
		t.Errorf("forwarded disruptions per Execute (-want +got):\n%s", diff)
	}
	// Every held decision asked the planner to look again when its delay
	// ends.
	wantAsked := []time.Duration{5 * time.Second, 5 * time.Second, 11 * time.Second, 13 * time.Second, 13 * time.Second, 45 * time.Second}
	if diff := cmp.Diff(wantAsked, asked); diff != "" {
		t.Errorf("rechecks asked for (-want +got):\n%s", diff)
	}
}

func TestValidationOff(t *testing.T) {
	t.Parallel()
	act := &disrupter{}
	w := newWorld()
	f := New(act, w, w, Options{Logger: slog.New(slog.DiscardHandler)})
	f.forward(context.Background(), &item{plan: &clusterv1.Plan{Disruptions: []*clusterv1.DisruptionPlan{
		{Id: "e", Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_EMPTY, NodeClaims: []string{"a"}},
	}}})
	if diff := cmp.Diff([][]string{{"e"}}, act.calls); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestRejectionsBecomeEventsOnce(t *testing.T) {
	t.Parallel()
	w := newWorld()
	f := New(&disrupter{}, w, w, Options{Logger: slog.New(slog.DiscardHandler)})
	plan := &clusterv1.Plan{Rejections: []*clusterv1.Rejection{
		{Node: "n-1", NodeClaim: "nc-1", Reason: "pod ns/db is annotated karpenter.sh/do-not-disrupt"},
		{Node: "static", Reason: "not launched by Flotilla"},
	}}
	f.forward(context.Background(), &item{plan: plan})
	f.forward(context.Background(), &item{plan: plan}) // the next plan says the same
	want := []string{"nodeclaim nc-1 Normal DisruptionBlocked: pod ns/db is annotated karpenter.sh/do-not-disrupt"}
	if diff := cmp.Diff(want, w.snapshotEvents()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
