package server

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
)

func snapshotEvent(seq uint64, s *clusterv1.Snapshot, more bool) *plannerv1.ReconcileRequest {
	return &plannerv1.ReconcileRequest{Event: &clusterv1.ClusterEvent{Sequence: seq, More: more,
		Body: &clusterv1.ClusterEvent_Snapshot{Snapshot: s}}}
}

func reconcile(t *testing.T, reqs ...*plannerv1.ReconcileRequest) []*plannerv1.ReconcileResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream := &reconcileStream{ctx: ctx, reqs: reqs}
	if err := fuzzPlanner().Reconcile(stream); err != nil {
		t.Fatalf("Reconcile = %v", err)
	}
	return stream.sent
}

// halves splits a snapshot in two parts as the watcher does: the first
// with the scalars and the first pods, the second with the rest.
func halves(s *clusterv1.Snapshot) (first, second *clusterv1.Snapshot) {
	first = &clusterv1.Snapshot{Region: s.Region, Now: s.Now, Pods: s.Pods[:1]}
	second = &clusterv1.Snapshot{Pods: s.Pods[1:], Nodes: s.Nodes, NodeClaims: s.NodeClaims, NodePools: s.NodePools,
		NodeClasses: s.NodeClasses, DaemonSets: s.DaemonSets, PodDisruptionBudgets: s.PodDisruptionBudgets, InstanceTypes: s.InstanceTypes}
	return first, second
}

// TestSnapshotInParts: a snapshot sent in parts is applied once its last
// part arrives, with no answer before, and plans as the whole snapshot
// does.
func TestSnapshotInParts(t *testing.T) {
	whole := reconcile(t, snapshotEvent(6, impossibleSnapshot(), false))
	first, second := halves(impossibleSnapshot())
	parted := reconcile(t, snapshotEvent(5, first, true), snapshotEvent(6, second, false))
	if len(whole) != 1 || whole[0].GetPlan() == nil {
		t.Fatalf("answers to the whole snapshot: %v, want one with a plan", whole)
	}
	if len(parted) != 1 || parted[0].GetAckedSequence() != 6 || parted[0].GetResync() {
		t.Fatalf("answers to the parts: %v, want one, acknowledging 6", parted)
	}
	if d := cmp.Diff(whole[0].GetPlan(), parted[0].GetPlan(), protocmp.Transform(), protocmp.IgnoreFields(&clusterv1.Plan{}, "id")); d != "" {
		t.Errorf("plan from the parts differs from the whole's (-whole +parts):\n%s", d)
	}
}

// TestSnapshotCutShort: a delta where the next part of a snapshot was due
// asks for a new snapshot; a snapshot started over is taken whole.
func TestSnapshotCutShort(t *testing.T) {
	first, second := halves(impossibleSnapshot())
	delta := &plannerv1.ReconcileRequest{Event: &clusterv1.ClusterEvent{Sequence: 6, Body: &clusterv1.ClusterEvent_Delta{Delta: &clusterv1.Delta{}}}}
	got := reconcile(t, snapshotEvent(5, first, true), delta)
	if len(got) != 1 || !got[0].GetResync() {
		t.Fatalf("answers to a part then a delta: %v, want one resync", got)
	}
	// A new snapshot (a sequence that does not follow) replaces the parts
	// so far.
	got = reconcile(t, snapshotEvent(5, &clusterv1.Snapshot{Region: "eu-west-1"}, true), snapshotEvent(9, first, true), snapshotEvent(10, second, false))
	if len(got) != 1 || got[0].GetAckedSequence() != 10 || got[0].GetPlan() == nil {
		t.Fatalf("answers: %v, want one plan acknowledging 10", got)
	}
}
