package server

import (
	"context"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
)

// The fuzz targets feed the planner's request paths what a client could
// send: bytes that decode into a request (undecodable ones never reach a
// handler) and pass the request validation interceptor. The answer must be
// a plan or InvalidArgument (DeadlineExceeded when the solve runs out of
// time), never a panic or an Internal error, and the same request must get
// the same plan. Seeds are in testdata/fuzz and added below.

// planErrorCodes are the codes a Plan may answer with for client input.
var planErrorCodes = map[codes.Code]bool{codes.InvalidArgument: true, codes.DeadlineExceeded: true, codes.ResourceExhausted: true}

func fuzzPlanner() *Planner {
	return New(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, "us-east-1")
}

func mustMarshal(f *testing.F, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func FuzzPlan(f *testing.F) {
	for _, s := range []*clusterv1.Snapshot{validSnapshot(), impossibleSnapshot(), underusedSnapshot(), {}, adversarialSnapshot()} {
		f.Add(mustMarshal(f, &plannerv1.PlanRequest{Snapshot: s}), false)
		f.Add(mustMarshal(f, &plannerv1.PlanRequest{Snapshot: s, Disruption: true}), true)
	}
	validator, err := protovalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	p := fuzzPlanner()
	f.Fuzz(func(t *testing.T, data []byte, disruption bool) {
		req := &plannerv1.PlanRequest{}
		if err := proto.Unmarshal(data, req); err != nil {
			return
		}
		req.Disruption = req.Disruption || disruption
		if err := validator.Validate(req); err != nil {
			return // InvalidArgument from the interceptor
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := p.Plan(ctx, req)
		if err != nil {
			if !planErrorCodes[status.Code(err)] {
				t.Fatalf("Plan = %v, want a plan or InvalidArgument", err)
			}
			return
		}
		checkPlan(t, req.GetSnapshot(), resp)
		again, err := p.Plan(ctx, proto.CloneOf(req))
		if err == nil && !proto.Equal(resp, again) {
			t.Fatalf("the same request planned twice differs:\n%v\n%v", resp, again)
		}
	})
}

// adversarialSnapshot has values no cluster reports: prices that are not
// numbers, requests and capacities at the int64 limit, a type with no
// capacity at all.
func adversarialSnapshot() *clusterv1.Snapshot {
	s := impossibleSnapshot()
	s.InstanceTypes[0].Offerings[0].PricePerHour = math.NaN()
	s.InstanceTypes[1].Offerings[0].PricePerHour = math.Inf(1)
	s.InstanceTypes = append(s.InstanceTypes,
		&clusterv1.InstanceType{Name: "zero.none", Arch: "arm64", Capacity: &clusterv1.Resources{},
			Offerings: []*clusterv1.Offering{{Zone: "us-east-1a", CapacityType: "on-demand", PricePerHour: -1, Available: true}}},
		&clusterv1.InstanceType{Name: "max.huge", Arch: "arm64",
			Capacity:  &clusterv1.Resources{CpuMillis: math.MaxInt64, MemoryBytes: math.MaxInt64, Pods: math.MaxInt64},
			Offerings: []*clusterv1.Offering{{Zone: "us-east-1a", CapacityType: "spot", PricePerHour: 1e308, Available: true}}})
	s.Pods[1].Containers[0].Requests = &clusterv1.Resources{CpuMillis: math.MaxInt64, MemoryBytes: math.MaxInt64}
	s.NodePools[0].Limits = map[string]int64{"cpu": math.MaxInt64, "memory": 0}
	return s
}

// checkPlan checks what a plan may say of the snapshot: each pending pod
// placed at most once, on a NodeClaim of a NodePool and instance type the
// snapshot has, and no price for a plan that launches nothing.
func checkPlan(t *testing.T, snap *clusterv1.Snapshot, resp *plannerv1.PlanResponse) {
	t.Helper()
	pools := map[string]bool{}
	for _, np := range snap.GetNodePools() {
		pools[np.GetName()] = true
	}
	types := map[string]bool{}
	for _, it := range snap.GetInstanceTypes() {
		types[it.GetName()] = true
	}
	placed := map[string]string{}
	place := func(pod, where string) {
		if prev, ok := placed[pod]; ok {
			t.Fatalf("pod %s placed twice: %s and %s", pod, prev, where)
		}
		placed[pod] = where
	}
	for _, nc := range resp.GetNodeClaims() {
		if !pools[nc.GetNodePool()] || !types[nc.GetInstanceType()] {
			t.Fatalf("NodeClaim %s in NodePool %q of type %q: not in the snapshot", nc.GetName(), nc.GetNodePool(), nc.GetInstanceType())
		}
		for _, pod := range nc.GetPods() {
			place(pod, "nodeclaim "+nc.GetName())
		}
	}
	for _, u := range resp.GetUnschedulable() {
		if u.GetReason() == "" {
			t.Fatalf("pod %s unschedulable without a reason", u.GetPod())
		}
		place(u.GetPod(), "unschedulable")
	}
	if len(resp.GetNodeClaims()) == 0 && resp.GetTotalPricePerHour() != 0 {
		t.Fatalf("a plan that launches nothing costs %v/h", resp.GetTotalPricePerHour())
	}
}

// reconcileStream is a Reconcile stream with scripted requests.
type reconcileStream struct {
	grpc.ServerStream
	ctx  context.Context
	reqs []*plannerv1.ReconcileRequest
	sent []*plannerv1.ReconcileResponse
}

func (s *reconcileStream) Context() context.Context { return s.ctx }

func (s *reconcileStream) Recv() (*plannerv1.ReconcileRequest, error) {
	if len(s.reqs) == 0 {
		return nil, io.EOF
	}
	r := s.reqs[0]
	s.reqs = s.reqs[1:]
	return r, nil
}

func (s *reconcileStream) Send(r *plannerv1.ReconcileResponse) error {
	s.sent = append(s.sent, r)
	return nil
}

func FuzzReconcile(f *testing.F) {
	delta := &clusterv1.Delta{Now: timestamppb.New(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))}
	for _, s := range []*clusterv1.Snapshot{validSnapshot(), impossibleSnapshot(), underusedSnapshot()} {
		f.Add(mustMarshal(f, s), mustMarshal(f, delta), uint64(1), uint64(2))
		f.Add(mustMarshal(f, s), mustMarshal(f, delta), uint64(7), uint64(9))
	}
	validator, err := protovalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	p := fuzzPlanner()
	f.Fuzz(func(t *testing.T, snapshot, deltaBytes []byte, seq1, seq2 uint64) {
		snap, d := &clusterv1.Snapshot{}, &clusterv1.Delta{}
		if proto.Unmarshal(snapshot, snap) != nil || proto.Unmarshal(deltaBytes, d) != nil {
			return
		}
		reqs := []*plannerv1.ReconcileRequest{
			{Event: &clusterv1.ClusterEvent{Sequence: seq1, Body: &clusterv1.ClusterEvent_Snapshot{Snapshot: snap}}},
			{Event: &clusterv1.ClusterEvent{Sequence: seq2, Body: &clusterv1.ClusterEvent_Delta{Delta: d}}},
		}
		for _, r := range reqs {
			if validator.Validate(r) != nil {
				return // InvalidArgument from the interceptor
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stream := &reconcileStream{ctx: ctx, reqs: reqs}
		if err := p.Reconcile(stream); err != nil {
			t.Fatalf("Reconcile = %v, want the stream to end cleanly", err)
		}
		if len(stream.sent) == 0 {
			t.Fatal("Reconcile answered nothing")
		}
		for _, r := range stream.sent {
			if r.GetAckedSequence() != seq1 && r.GetAckedSequence() != seq2 && !r.GetResync() {
				t.Fatalf("acked sequence %d, sent %d and %d", r.GetAckedSequence(), seq1, seq2)
			}
		}
	})
}
