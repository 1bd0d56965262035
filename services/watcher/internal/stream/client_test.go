package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	"github.com/flotilla-dev/flotilla/services/internal/parts"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// source is a Source over pods named by string with an integer version;
// changes coalesce per pod, as the cluster's tracker does.
type source struct {
	mu        sync.Mutex
	pods      map[string]string
	dirty     map[string]bool
	changed   chan struct{}
	snapshots int
}

func newSource() *source {
	return &source{pods: map[string]string{}, dirty: map[string]bool{}, changed: make(chan struct{}, 1)}
}

func (s *source) set(name, version string) {
	s.mu.Lock()
	if version == "" {
		delete(s.pods, name)
	} else {
		s.pods[name] = version
	}
	s.dirty[name] = true
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *source) Snapshot() *clusterv1.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshots++
	s.dirty = map[string]bool{}
	snap := &clusterv1.Snapshot{}
	for _, name := range sortedKeys(s.pods) {
		snap.Pods = append(snap.Pods, &clusterv1.Pod{Namespace: "default", Name: name, Uid: s.pods[name]})
	}
	return snap
}

func (s *source) Delta() []*clusterv1.Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*clusterv1.Change
	for _, name := range sortedKeys(s.dirty) {
		v, ok := s.pods[name]
		out = append(out, &clusterv1.Change{Deleted: !ok, Object: &clusterv1.Change_Pod{Pod: &clusterv1.Pod{Namespace: "default", Name: name, Uid: v}}})
	}
	s.dirty = map[string]bool{}
	return out
}

func (s *source) Changed() <-chan struct{} { return s.changed }

func (s *source) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dirty)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// planner is a fake Reconcile server that follows the protocol: it applies
// a snapshot, then deltas in sequence, and answers a gap with resync. Tests
// can hold its acknowledgements, force a resync, or add a plan to answers.
type planner struct {
	plannerv1.UnimplementedPlannerServer
	mu      sync.Mutex
	events  []*clusterv1.ClusterEvent
	streams int
	arrived chan *clusterv1.ClusterEvent
	// gate, when set, is received from before each answer.
	gate chan struct{}
	// resyncNext answers the next delta with resync.
	resyncNext bool
	// plan, when set, is attached to every answer to a delta.
	plan *clusterv1.Plan
	// recheckIn, when set, asks (once, on the next answer) to be asked
	// again this long from now.
	recheckIn time.Duration
	// snapshots are the whole snapshots applied, parts merged.
	snapshots []*clusterv1.Snapshot
	// partsAsWholes answers every snapshot part as a whole snapshot, with
	// the plan, as a planner that does not know parts would.
	partsAsWholes bool
}

func newPlanner() *planner {
	return &planner{arrived: make(chan *clusterv1.ClusterEvent, 10000)}
}

func (p *planner) Reconcile(st plannerv1.Planner_ReconcileServer) error {
	p.mu.Lock()
	p.streams++
	p.mu.Unlock()
	var last uint64
	synced := false
	var partial *clusterv1.Snapshot
	for {
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		ev := req.GetEvent()
		p.mu.Lock()
		p.events = append(p.events, ev)
		gate, resync, plan, recheckIn := p.gate, p.resyncNext, p.plan, p.recheckIn
		p.recheckIn = 0
		if ev.GetDelta() != nil && resync {
			p.resyncNext = false
		}
		p.mu.Unlock()
		p.arrived <- ev
		if gate != nil {
			select {
			case <-gate:
			case <-st.Context().Done():
				return st.Context().Err()
			}
		}
		p.mu.Lock()
		asWholes := p.partsAsWholes
		p.mu.Unlock()
		resp := &plannerv1.ReconcileResponse{}
		switch {
		case ev.GetSnapshot() != nil && asWholes:
			synced, last = true, ev.GetSequence()
			if plan != nil {
				resp.Plan = &clusterv1.Plan{Id: plan.GetId(), Sequence: last}
			}
		case ev.GetSnapshot() != nil:
			if partial == nil || ev.GetSequence() != last+1 {
				partial = &clusterv1.Snapshot{}
			}
			proto.Merge(partial, ev.GetSnapshot())
			last = ev.GetSequence()
			if ev.GetMore() {
				continue
			}
			p.mu.Lock()
			p.snapshots = append(p.snapshots, partial)
			p.mu.Unlock()
			partial, synced = nil, true
		case synced && !resync && ev.GetSequence() == last+1:
			last = ev.GetSequence()
			if plan != nil {
				resp.Plan = &clusterv1.Plan{Id: plan.GetId(), Sequence: last}
			}
		default:
			synced = false
			resp.Resync = true
		}
		resp.AckedSequence = last
		if recheckIn > 0 {
			resp.RecheckAt = timestamppb.New(time.Now().Add(recheckIn))
		}
		if err := st.Send(resp); err != nil {
			return err
		}
	}
}

// next waits for the next event the planner receives.
func (p *planner) next(t *testing.T) *clusterv1.ClusterEvent {
	t.Helper()
	select {
	case ev := <-p.arrived:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event reached the planner within 10s")
		return nil
	}
}

// quiet asserts no event arrives for d.
func (p *planner) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case ev := <-p.arrived:
		t.Fatalf("unexpected event %d (snapshot %v, %d changes)", ev.GetSequence(), ev.GetSnapshot() != nil, len(ev.GetDelta().GetChanges()))
	case <-time.After(d):
	}
}

// server serves a planner over an in-memory listener that can be swapped
// for a new one, as a planner restart does.
type server struct {
	mu  sync.Mutex
	lis *bufconn.Listener
	srv *grpc.Server
}

func (s *server) start(p *planner) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lis = bufconn.Listen(1 << 20)
	s.srv = grpc.NewServer()
	plannerv1.RegisterPlannerServer(s.srv, p)
	go func() { _ = s.srv.Serve(s.lis) }()
}

func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv.Stop()
}

func (s *server) dial(ctx context.Context, _ string) (net.Conn, error) {
	s.mu.Lock()
	lis := s.lis
	s.mu.Unlock()
	return lis.DialContext(ctx)
}

type plans struct {
	mu  sync.Mutex
	ids []string
}

func (h *plans) Handle(_ context.Context, p *clusterv1.Plan) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ids = append(h.ids, fmt.Sprintf("%s@%d", p.GetId(), p.GetSequence()))
}

func (h *plans) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ids)
}

type harness struct {
	src     *source
	planner *planner
	server  *server
	client  *Client
	plans   *plans
	status  chan bool
}

func start(t *testing.T, opts Options) *harness {
	t.Helper()
	h := &harness{src: newSource(), planner: newPlanner(), server: &server{}, plans: &plans{}, status: make(chan bool, 100)}
	h.server.start(h.planner)
	t.Cleanup(h.server.stop)
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(h.server.dial), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	opts.OnStreaming = func(up bool) { h.status <- up }
	h.client = New(plannerv1.NewPlannerClient(conn), h.src, h.plans, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.client.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
	return h
}

func (h *harness) waitStreaming(t *testing.T, want bool) {
	t.Helper()
	for {
		select {
		case up := <-h.status:
			if up == want {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("streaming never became %v", want)
		}
	}
}

func podNames(ev *clusterv1.ClusterEvent) []string {
	var out []string
	for _, p := range ev.GetSnapshot().GetPods() {
		out = append(out, p.GetName()+"="+p.GetUid())
	}
	for _, c := range ev.GetDelta().GetChanges() {
		v := c.GetPod().GetUid()
		if c.GetDeleted() {
			v = "deleted"
		}
		out = append(out, c.GetPod().GetName()+"="+v)
	}
	return out
}

func TestSnapshotFirstThenDeltasInOrder(t *testing.T) {
	t.Parallel()
	h := start(t, Options{IdleWindow: 20 * time.Millisecond})
	h.src.set("a", "1")
	first := h.planner.next(t)
	if first.GetSnapshot() == nil || first.GetSequence() != 1 {
		t.Fatalf("first event: sequence %d snapshot %v, want sequence 1 and a snapshot", first.GetSequence(), first.GetSnapshot() != nil)
	}
	h.waitStreaming(t, true)

	var got [][]string
	seq := first.GetSequence()
	for i, change := range [][2]string{{"b", "1"}, {"a", "2"}, {"b", ""}} {
		h.src.set(change[0], change[1])
		ev := h.planner.next(t)
		if ev.GetDelta() == nil || ev.GetSequence() != seq+1 {
			t.Fatalf("event %d: sequence %d delta %v, want sequence %d and a delta", i, ev.GetSequence(), ev.GetDelta() != nil, seq+1)
		}
		seq = ev.GetSequence()
		got = append(got, podNames(ev))
	}
	want := [][]string{{"b=1"}, {"a=2"}, {"b=deleted"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("deltas %v, want %v", got, want)
	}
	if h.client.Sequence() != seq {
		t.Errorf("Sequence() = %d, want %d", h.client.Sequence(), seq)
	}
}

func TestBurstBecomesOneBatch(t *testing.T) {
	t.Parallel()
	h := start(t, Options{IdleWindow: 100 * time.Millisecond, MaxBatchWait: 5 * time.Second})
	h.planner.next(t) // snapshot
	h.waitStreaming(t, true)
	for i := range 1000 {
		h.src.set(fmt.Sprintf("pod-%04d", i), "1")
		if i%100 == 0 {
			time.Sleep(5 * time.Millisecond) // a burst, not one instant
		}
	}
	ev := h.planner.next(t)
	if n := len(ev.GetDelta().GetChanges()); n != 1000 {
		t.Fatalf("first batch has %d changes, want all 1000", n)
	}
	h.planner.quiet(t, 300*time.Millisecond)
}

func TestBatchWaitIsBounded(t *testing.T) {
	t.Parallel()
	h := start(t, Options{IdleWindow: 50 * time.Millisecond, MaxBatchWait: 300 * time.Millisecond})
	h.planner.next(t)
	h.waitStreaming(t, true)
	stop := make(chan struct{})
	go func() {
		// Changes every 10ms never leave the idle window quiet.
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				h.src.set(fmt.Sprintf("p%d", i), "1")
			}
		}
	}()
	defer close(stop)
	start := time.Now()
	ev := h.planner.next(t)
	if elapsed := time.Since(start); ev.GetDelta() == nil || elapsed > 2*time.Second {
		t.Fatalf("first delta after %s (delta %v), want one within the 300ms maximum", elapsed, ev.GetDelta() != nil)
	}
}

func TestUpdatesInTheBatchDoNotHoldItBack(t *testing.T) {
	t.Parallel()
	h := start(t, Options{IdleWindow: 100 * time.Millisecond, MaxBatchWait: 10 * time.Second})
	h.planner.next(t)
	h.waitStreaming(t, true)
	for i := range 10 {
		h.src.set(fmt.Sprintf("p%d", i), "1")
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// The same pods keep changing, as the scheduler updates them.
		for v := 2; ; v++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				h.src.set(fmt.Sprintf("p%d", v%10), fmt.Sprint(v))
			}
		}
	}()
	start := time.Now()
	ev := h.planner.next(t)
	if elapsed := time.Since(start); len(ev.GetDelta().GetChanges()) != 10 || elapsed > 2*time.Second {
		t.Errorf("batch of %d changes after %s, want the 10 pods soon after the idle window", len(ev.GetDelta().GetChanges()), elapsed)
	}
}

func TestGapResyncSendsSnapshot(t *testing.T) {
	t.Parallel()
	h := start(t, Options{IdleWindow: 10 * time.Millisecond})
	h.src.set("a", "1")
	h.planner.next(t)
	h.waitStreaming(t, true)
	h.planner.mu.Lock()
	h.planner.resyncNext = true
	h.planner.mu.Unlock()
	h.src.set("b", "1")
	lost := h.planner.next(t)
	if lost.GetDelta() == nil {
		t.Fatalf("want the delta the planner drops")
	}
	ev := h.planner.next(t)
	if ev.GetSnapshot() == nil || ev.GetSequence() != lost.GetSequence()+1 {
		t.Fatalf("after resync got sequence %d snapshot %v, want a snapshot with sequence %d", ev.GetSequence(), ev.GetSnapshot() != nil, lost.GetSequence()+1)
	}
	if diff := podNames(ev); !slices.Equal(diff, []string{"a=1", "b=1"}) {
		t.Errorf("resync snapshot holds %v, want a=1 b=1", diff)
	}
	// Deltas resume after the snapshot.
	h.src.set("c", "1")
	if ev := h.planner.next(t); ev.GetDelta() == nil || !slices.Equal(podNames(ev), []string{"c=1"}) {
		t.Errorf("after resync got %v, want a delta with c=1", podNames(ev))
	}
}

func TestPlannerRestartGetsSnapshot(t *testing.T) {
	t.Parallel()
	h := start(t, Options{IdleWindow: 10 * time.Millisecond})
	h.src.set("a", "1")
	h.planner.next(t)
	h.waitStreaming(t, true)

	h.server.stop()
	h.waitStreaming(t, false)
	restarted := newPlanner()
	h.server.start(restarted)
	h.src.set("b", "1") // a change made while the planner was away
	ev := restarted.next(t)
	if ev.GetSnapshot() == nil {
		t.Fatalf("first event after the restart is not a snapshot")
	}
	if got := podNames(ev); !slices.Equal(got, []string{"a=1", "b=1"}) {
		t.Errorf("snapshot after restart holds %v, want a=1 b=1", got)
	}
	h.waitStreaming(t, true)
}

func TestBackPressureCoalesces(t *testing.T) {
	t.Parallel()
	h := start(t, Options{IdleWindow: 10 * time.Millisecond})
	h.planner.next(t)
	h.waitStreaming(t, true)
	gate := make(chan struct{})
	h.planner.mu.Lock()
	h.planner.gate = gate
	h.planner.mu.Unlock()

	h.src.set("a", "1")
	h.planner.next(t) // held: the planner is busy with it
	for v := 2; v <= 200; v++ {
		h.src.set("a", fmt.Sprint(v))
		h.src.set(fmt.Sprintf("other-%d", v%3), fmt.Sprint(v))
	}
	h.planner.quiet(t, 200*time.Millisecond) // nothing more is sent while the ack is outstanding
	h.planner.mu.Lock()
	h.planner.gate = nil
	h.planner.mu.Unlock()
	close(gate)
	ev := h.planner.next(t)
	want := []string{"a=200", "other-0=198", "other-1=199", "other-2=200"}
	if got := podNames(ev); !slices.Equal(got, want) {
		t.Errorf("batch after the planner caught up holds %v, want the latest state %v", got, want)
	}
}

func TestSilentPlannerIsDropped(t *testing.T) {
	t.Parallel()
	h := start(t, Options{IdleWindow: 10 * time.Millisecond, AckTimeout: 200 * time.Millisecond})
	gate := make(chan struct{}) // never opened: nothing is acknowledged
	h.planner.mu.Lock()
	h.planner.gate = gate
	h.planner.mu.Unlock()
	h.planner.next(t)
	ev := h.planner.next(t)
	if ev.GetSnapshot() == nil {
		t.Fatalf("after the ack timeout got a delta, want a fresh stream's snapshot")
	}
	h.planner.mu.Lock()
	streams := h.planner.streams
	h.planner.mu.Unlock()
	if streams < 2 {
		t.Errorf("planner saw %d streams, want a reconnect", streams)
	}
}

func TestPlansAreHandedOn(t *testing.T) {
	t.Parallel()
	h := start(t, Options{IdleWindow: 10 * time.Millisecond})
	h.planner.mu.Lock()
	h.planner.plan = &clusterv1.Plan{Id: "p1"}
	h.planner.mu.Unlock()
	h.planner.next(t)
	h.src.set("a", "1")
	ev := h.planner.next(t)
	deadline := time.Now().Add(5 * time.Second)
	want := fmt.Sprintf("p1@%d", ev.GetSequence())
	for !slices.Contains(h.plans.got(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("plans handed on: %v, want %s", h.plans.got(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRecheckAtSendsATimeOnlyDelta: a planner that says its answer changes
// at a time (an empty node reaching consolidateAfter) is asked again then,
// with a delta that carries only the new time, though nothing changed.
func TestRecheckAtSendsATimeOnlyDelta(t *testing.T) {
	h := start(t, Options{Heartbeat: time.Hour})
	h.planner.mu.Lock()
	h.planner.recheckIn = 300 * time.Millisecond
	h.planner.mu.Unlock()
	h.src.set("a", "1")
	first := h.planner.next(t)
	if first.GetSnapshot() == nil {
		t.Fatalf("first event is not a snapshot")
	}
	// The snapshot may or may not include "a"; drain its delta if it came.
	began := time.Now()
	for {
		ev := h.planner.next(t)
		if ev.GetDelta() != nil && len(ev.GetDelta().GetChanges()) == 0 {
			if waited := time.Since(began); waited < 200*time.Millisecond {
				t.Errorf("time-only delta after %s, before the recheck time", waited)
			}
			if ev.GetDelta().GetNow() == nil {
				t.Error("time-only delta carries no time")
			}
			return
		}
	}
}

// TestHeartbeatKeepsTimeMoving: a quiet cluster still gets a time-only
// delta every heartbeat, and nothing in between.
func TestHeartbeatKeepsTimeMoving(t *testing.T) {
	h := start(t, Options{Heartbeat: 200 * time.Millisecond})
	if ev := h.planner.next(t); ev.GetSnapshot() == nil {
		t.Fatal("first event is not a snapshot")
	}
	for range 2 {
		ev := h.planner.next(t)
		if ev.GetDelta() == nil || len(ev.GetDelta().GetChanges()) != 0 {
			t.Fatalf("event %d is not a time-only delta", ev.GetSequence())
		}
	}
}

// TestRecheckAtRequest: a caller (the plan forwarder validating a
// disruption) asks for a re-evaluation at a time; a time-only delta goes out
// then, and a later request is not lost behind an earlier one.
func TestRecheckAtRequest(t *testing.T) {
	h := start(t, Options{Heartbeat: time.Hour})
	if ev := h.planner.next(t); ev.GetSnapshot() == nil {
		t.Fatal("first event is not a snapshot")
	}
	h.waitStreaming(t, true)
	began := time.Now()
	h.client.RecheckAt(began.Add(600 * time.Millisecond))
	h.client.RecheckAt(began.Add(300 * time.Millisecond))
	for i, want := range []time.Duration{300 * time.Millisecond, 600 * time.Millisecond} {
		ev := h.planner.next(t)
		if ev.GetDelta() == nil || len(ev.GetDelta().GetChanges()) != 0 {
			t.Fatalf("event %d is not a time-only delta", i)
		}
		if waited := time.Since(began); waited < want-20*time.Millisecond {
			t.Errorf("time-only delta %d after %s, before the %s asked for", i, waited, want)
		}
	}
	h.planner.quiet(t, 300*time.Millisecond)
}

// TestLargeSnapshotComesInParts: a snapshot of more than parts.Objects
// objects reaches the planner in parts (more on all but the last, in
// sequence) that merge into the whole; the stream is up once the last is
// acknowledged, and a plan answering a part before the last is not acted
// on.
func TestLargeSnapshotComesInParts(t *testing.T) {
	t.Parallel()
	h := start(t, Options{IdleWindow: 10 * time.Millisecond})
	h.planner.next(t) // the first, empty snapshot
	h.waitStreaming(t, true)
	h.planner.mu.Lock()
	h.planner.resyncNext = true
	h.planner.mu.Unlock()
	for i := range 2*parts.Objects + 500 {
		h.src.set(fmt.Sprintf("pod-%05d", i), "1")
	}
	var events []*clusterv1.ClusterEvent
	for len(events) == 0 || events[len(events)-1].GetMore() {
		ev := h.planner.next(t)
		if ev.GetSnapshot() != nil {
			events = append(events, ev)
		}
	}
	if len(events) != 3 {
		t.Fatalf("snapshot in %d parts, want 3", len(events))
	}
	for i, ev := range events {
		if i > 0 && ev.GetSequence() != events[i-1].GetSequence()+1 {
			t.Errorf("part %d has sequence %d after %d", i, ev.GetSequence(), events[i-1].GetSequence())
		}
		if n := len(ev.GetSnapshot().GetPods()); n > parts.Objects {
			t.Errorf("part %d holds %d pods, want at most %d", i, n, parts.Objects)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.planner.mu.Lock()
		n := len(h.planner.snapshots)
		var whole *clusterv1.Snapshot
		if n > 0 {
			whole = h.planner.snapshots[n-1]
		}
		h.planner.mu.Unlock()
		if len(whole.GetPods()) == 2*parts.Objects+500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the planner applied no whole snapshot of %d pods (last: %d pods)", 2*parts.Objects+500, len(whole.GetPods()))
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A planner that takes each part for the whole and plans on it: only
	// its plan for the last part is acted on.
	h.planner.mu.Lock()
	h.planner.partsAsWholes = true
	h.planner.plan = &clusterv1.Plan{Id: "p"}
	h.planner.resyncNext = true
	h.planner.mu.Unlock()
	h.src.set("pod-00000", "2")
	events = events[:0]
	for len(events) == 0 || events[len(events)-1].GetMore() {
		if ev := h.planner.next(t); ev.GetSnapshot() != nil {
			events = append(events, ev)
		}
	}
	last := fmt.Sprintf("p@%d", events[len(events)-1].GetSequence())
	for !slices.Contains(h.plans.got(), last) {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("plans handed on: %v, want %s", h.plans.got(), last)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, ev := range events[:len(events)-1] {
		if early := fmt.Sprintf("p@%d", ev.GetSequence()); slices.Contains(h.plans.got(), early) {
			t.Errorf("plan %s for a part before the last was acted on", early)
		}
	}
}
