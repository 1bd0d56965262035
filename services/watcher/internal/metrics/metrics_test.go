package metrics

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
)

type fakeSource struct{ snap *clusterv1.Snapshot }

func (f *fakeSource) Provisioning() *clusterv1.Snapshot { return f.snap }
func (f *fakeSource) Synced() bool                      { return true }

func TestCollector(t *testing.T) {
	src := &fakeSource{snap: &clusterv1.Snapshot{
		Pods: []*clusterv1.Pod{
			{Namespace: "a", Name: "waiting"},
			{Namespace: "a", Name: "nominated", NominatedNodeClaim: "nc-1"},
			{Namespace: "a", Name: "bound", NodeName: "n1"},
			{Namespace: "a", Name: "going", Terminating: true},
		},
		NodePools: []*clusterv1.NodePool{{Name: "default", Limits: map[string]int64{"cpu": 100_000, "memory": 200 << 30}}},
		NodeClaims: []*clusterv1.NodeClaim{
			{Name: "nc-1", NodePool: "default", Capacity: &clusterv1.Resources{CpuMillis: 2000, MemoryBytes: 4 << 30, Pods: 17}},
			{Name: "nc-2", NodePool: "default", Requests: &clusterv1.Resources{CpuMillis: 1500}},
		},
	}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(src))
	want := `
# HELP flotilla_pods_nominated Pending pods nominated to a NodeClaim in flight (capacity launched or launching for them).
# TYPE flotilla_pods_nominated gauge
flotilla_pods_nominated 1
# HELP flotilla_pods_pending Pods not bound to a node (and not terminating), as the watcher sees them.
# TYPE flotilla_pods_pending gauge
flotilla_pods_pending 2
# HELP karpenter_nodepools_limit Limits specified on the nodepool that restrict the quantity of resources provisioned. Labeled by nodepool name and resource type.
# TYPE karpenter_nodepools_limit gauge
karpenter_nodepools_limit{nodepool="default",resource_type="cpu"} 100
karpenter_nodepools_limit{nodepool="default",resource_type="memory"} 2.147483648e+11
# HELP karpenter_nodepools_usage The amount of resources that have been provisioned for a nodepool (the capacity of its NodeClaims). Labeled by nodepool name and resource type.
# TYPE karpenter_nodepools_usage gauge
karpenter_nodepools_usage{nodepool="default",resource_type="cpu"} 3.5
karpenter_nodepools_usage{nodepool="default",resource_type="memory"} 4.294967296e+09
karpenter_nodepools_usage{nodepool="default",resource_type="pods"} 17
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestObserveLaunches(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	launched := func(name string, at time.Time) *clusterv1.NodeClaim {
		return &clusterv1.NodeClaim{Name: name, NodePool: "lat", Conditions: []*clusterv1.Condition{
			{Type: "Launched", Status: "True", LastTransition: timestamppb.New(at)}}}
	}
	pod := func(name, claim string, created time.Time) *clusterv1.Pod {
		return &clusterv1.Pod{Namespace: "a", Name: name, NominatedNodeClaim: claim, Created: timestamppb.New(created)}
	}
	l := newLaunches()
	// Launched before the watcher looked: remembered, not measured.
	l.observe(&clusterv1.Snapshot{
		NodeClaims: []*clusterv1.NodeClaim{launched("old", t0)},
		Pods:       []*clusterv1.Pod{pod("p0", "old", t0.Add(-time.Minute))},
	}, true)
	// Two pods wait for "new", one for "later".
	waiting := &clusterv1.Snapshot{
		NodeClaims: []*clusterv1.NodeClaim{launched("old", t0), {Name: "new", NodePool: "lat"}, {Name: "later", NodePool: "lat"}},
		Pods: []*clusterv1.Pod{
			pod("p0", "old", t0.Add(-time.Minute)),
			pod("p1", "new", t0.Add(8*time.Second)), pod("p2", "new", t0.Add(16*time.Second)),
			pod("p3", "later", t0),
		},
	}
	l.observe(waiting, false)
	// "new" launched 12s and 4s after its pods were created; by the next
	// look one of them is already bound (and no longer nominated).
	bound := pod("p1", "", t0.Add(8*time.Second))
	bound.NodeName = "n-new"
	snap := &clusterv1.Snapshot{
		NodeClaims: []*clusterv1.NodeClaim{launched("old", t0), launched("new", t0.Add(20*time.Second)), {Name: "later", NodePool: "lat"}},
		Pods:       []*clusterv1.Pod{pod("p0", "old", t0.Add(-time.Minute)), bound, pod("p2", "new", t0.Add(16*time.Second)), pod("p3", "later", t0)},
	}
	l.observe(snap, false)
	l.observe(snap, false) // seen: not observed twice
	h, err := LaunchLatency.GetMetricWithLabelValues("lat")
	if err != nil {
		t.Fatal(err)
	}
	m := &dto.Metric{}
	if err := h.(prometheus.Histogram).Write(m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetHistogram().GetSampleCount(); got != 2 {
		t.Errorf("observations = %d, want 2 (p1 and p2 once each)", got)
	}
	if got := m.GetHistogram().GetSampleSum(); got != 16 {
		t.Errorf("sum = %v s, want 12+4 = 16", got)
	}
}

// countingSource counts the pictures WatchLaunches asks for.
type countingSource struct {
	changes, looks atomic.Uint64
}

func (s *countingSource) Provisioning() *clusterv1.Snapshot {
	s.looks.Add(1)
	return &clusterv1.Snapshot{}
}
func (s *countingSource) Synced() bool    { return true }
func (s *countingSource) Changes() uint64 { return s.changes.Load() }

// An idle cluster is looked at once, not on every tick.
func TestWatchLaunchesSkipsUnchanged(t *testing.T) {
	src := &countingSource{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchLaunches(ctx, src, time.Millisecond)
	}()
	defer func() { cancel(); <-done }()
	waitFor := func(n uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for src.looks.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d looks, want %d", src.looks.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(1)
	time.Sleep(50 * time.Millisecond) // fifty ticks, nothing changed
	if got := src.looks.Load(); got != 1 {
		t.Errorf("%d looks at an unchanged cluster, want 1", got)
	}
	src.changes.Add(1)
	waitFor(2)
}
