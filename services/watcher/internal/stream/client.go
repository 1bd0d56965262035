// Package stream is the watcher's end of the planner's Reconcile stream: a
// full snapshot first on every stream, then deltas in sequence, batched
// adaptively (a batch goes out as soon as the burst of changes stops
// growing: no object joined it for the idle window; objects already in it
// changing again do not hold it back), with at most one event waiting for the planner's
// acknowledgement, so that while the planner is busy or away changes
// coalesce in the source (latest state wins) instead of queueing. A resync
// request, a broken stream or a silent planner leads to a new snapshot;
// reconnects back off exponentially. Plans that come back are handed on.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	"github.com/flotilla-dev/flotilla/services/internal/parts"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Source is the cluster picture the stream sends.
type Source interface {
	// Snapshot returns the full picture and makes it the base of the
	// following deltas.
	Snapshot() *clusterv1.Snapshot
	// Delta returns the changes since the last snapshot or delta, nil when
	// there are none.
	Delta() []*clusterv1.Change
	// Changed is signalled when something changed.
	Changed() <-chan struct{}
	// Pending returns how many objects changed since the last snapshot or
	// delta: the size of the batch being gathered.
	Pending() int
}

// PlanHandler receives the plans the planner sends. Handle must return
// quickly; ctx carries the trace of the batch the plan answers.
type PlanHandler interface {
	Handle(ctx context.Context, plan *clusterv1.Plan)
}

// Options tune a Client; zero values take the defaults.
type Options struct {
	// IdleWindow: a batch is sent once no change arrived for this long
	// (default 100ms).
	IdleWindow time.Duration
	// MaxBatchWait: a batch is sent at the latest this long after its first
	// change, even if changes keep coming (default 1s).
	MaxBatchWait time.Duration
	// AckTimeout: a stream whose planner acknowledges nothing for this long
	// is dropped and reopened with a snapshot (default 60s).
	AckTimeout time.Duration
	// Heartbeat: when nothing was sent for this long, a delta carrying only
	// the current time is sent, so time-driven decisions (empty nodes past
	// consolidateAfter, expiry) are re-evaluated even in a quiet cluster
	// (default 30s). The planner also names the exact time it wants to be
	// asked again (ReconcileResponse.recheck_at), which is honoured sooner.
	Heartbeat time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnects (defaults
	// 100ms and 10s).
	MinBackoff, MaxBackoff time.Duration
	// OnStreaming is called with true once a stream's snapshot is
	// acknowledged and with false when the stream ends.
	OnStreaming func(bool)
	Logger      *slog.Logger
}

func (o *Options) defaults() {
	if o.IdleWindow <= 0 {
		o.IdleWindow = 100 * time.Millisecond
	}
	if o.MaxBatchWait <= 0 {
		o.MaxBatchWait = time.Second
	}
	if o.MaxBatchWait < o.IdleWindow {
		o.MaxBatchWait = o.IdleWindow
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 60 * time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 30 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = 10 * time.Second
	}
	if o.OnStreaming == nil {
		o.OnStreaming = func(bool) {}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Client streams a Source to the planner.
type Client struct {
	planner plannerv1.PlannerClient
	src     Source
	plans   PlanHandler
	opts    Options
	tracer  trace.Tracer

	seq       atomic.Uint64
	streaming atomic.Bool

	traceMu sync.Mutex
	traces  map[uint64]trace.SpanContext

	// asked are the times someone asked for a re-evaluation (RecheckAt),
	// not answered yet; askedWake tells the session.
	askedMu   sync.Mutex
	asked     []time.Time
	askedWake chan struct{}
}

// New returns a Client; Run streams.
func New(planner plannerv1.PlannerClient, src Source, plans PlanHandler, opts Options) *Client {
	opts.defaults()
	return &Client{
		planner: planner,
		src:     src,
		plans:   plans,
		opts:    opts,
		tracer:  otel.Tracer("github.com/flotilla-dev/flotilla/services/watcher/internal/stream"),
		traces:  map[uint64]trace.SpanContext{},

		askedWake: make(chan struct{}, 1),
	}
}

// RecheckAt asks for the planner to re-evaluate at t: a delta goes out then
// even if nothing changed (as for the planner's own recheck_at). Safe for
// concurrent use.
func (c *Client) RecheckAt(t time.Time) {
	c.askedMu.Lock()
	c.asked = append(c.asked, t)
	c.askedMu.Unlock()
	select {
	case c.askedWake <- struct{}{}:
	default:
	}
}

// firstAsked returns the earliest RecheckAt request not answered yet (zero:
// none).
func (c *Client) firstAsked() time.Time {
	c.askedMu.Lock()
	defer c.askedMu.Unlock()
	var first time.Time
	for _, t := range c.asked {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first
}

// answerAsked drops the requests a delta sent at now answers.
func (c *Client) answerAsked(now time.Time) {
	c.askedMu.Lock()
	defer c.askedMu.Unlock()
	c.asked = slices.DeleteFunc(c.asked, func(t time.Time) bool { return !t.After(now) })
}

// Sequence returns the sequence number of the last event sent.
func (c *Client) Sequence() uint64 { return c.seq.Load() }

// Streaming reports whether a stream is up and its snapshot acknowledged.
func (c *Client) Streaming() bool { return c.streaming.Load() }

// Run streams until ctx is done, reconnecting with backoff whenever a
// stream ends. It returns nil when ctx is done.
func (c *Client) Run(ctx context.Context) error {
	backoff := c.opts.MinBackoff
	for {
		healthy, err := c.session(ctx)
		if c.streaming.Swap(false) {
			c.opts.OnStreaming(false)
		}
		if ctx.Err() != nil {
			return nil
		}
		if healthy {
			backoff = c.opts.MinBackoff
		}
		// Full jitter keeps replicas and restarts from reconnecting in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		c.opts.Logger.Warn("planner_stream_ended", "error", errString(err), "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, c.opts.MaxBackoff)
	}
}

// session runs one stream. healthy reports whether the planner acknowledged
// its snapshot.
func (c *Client) session(ctx context.Context) (healthy bool, err error) {
	// Plans outlive the stream that brought them.
	planCtx := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.planner.Reconcile(ctx)
	if err != nil {
		return false, fmt.Errorf("open stream: %w", err)
	}
	resps := make(chan *plannerv1.ReconcileResponse, 16)
	recvErr := make(chan error, 1)
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case resps <- r:
			case <-ctx.Done():
				return
			}
		}
	}()

	var (
		outstanding uint64 // sequence waiting for its ack, 0 when none
		snapshotSeq uint64 // sequence of the snapshot waiting for its ack
		batching    bool   // changes are waiting to be sent
		ready       bool   // the batch is complete
		size        int    // objects in the batch when it last grew
		tick        bool   // send a delta even without changes (time moved on)
		recheckAt   time.Time
	)
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	maxWait := time.NewTimer(time.Hour)
	maxWait.Stop()
	ackDeadline := time.NewTimer(time.Hour)
	ackDeadline.Stop()
	recheck := time.NewTimer(time.Hour)
	recheck.Stop()
	heartbeat := time.NewTimer(c.opts.Heartbeat)
	defer recheck.Stop()
	defer heartbeat.Stop()
	defer idle.Stop()
	defer maxWait.Stop()
	defer ackDeadline.Stop()

	// rearm sets the recheck timer for the earliest of the planner's
	// recheck_at and the RecheckAt requests.
	rearm := func() {
		next := recheckAt
		if at := c.firstAsked(); !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
		if !next.IsZero() {
			recheck.Reset(max(time.Until(next), 0))
		}
	}
	rearm()
	sendSnapshot := func() error {
		seq, err := c.sendSnapshot(ctx, st)
		if err != nil {
			return err
		}
		outstanding, snapshotSeq = seq, seq
		// The snapshot holds every change so far.
		batching, ready = false, false
		idle.Stop()
		maxWait.Stop()
		ackDeadline.Reset(c.opts.AckTimeout)
		return nil
	}
	if err := sendSnapshot(); err != nil {
		return false, err
	}
	for {
		select {
		case <-ctx.Done():
			_ = st.CloseSend()
			return healthy, ctx.Err()
		case err := <-recvErr:
			return healthy, fmt.Errorf("receive: %w", err)
		case <-ackDeadline.C:
			return healthy, fmt.Errorf("planner acknowledged nothing for %s", c.opts.AckTimeout)
		case r := <-resps:
			switch {
			case r.GetResync() && snapshotSeq == 0:
				c.opts.Logger.Info("planner_resync", "acked", r.GetAckedSequence())
				if err := sendSnapshot(); err != nil {
					return healthy, err
				}
				continue
			case r.GetResync():
				// Asked before our snapshot arrived: the snapshot answers it.
			case outstanding != 0 && r.GetAckedSequence() >= outstanding:
				outstanding = 0
				ackDeadline.Stop()
				if snapshotSeq != 0 && r.GetAckedSequence() >= snapshotSeq {
					snapshotSeq = 0
					if !healthy {
						healthy = true
						c.streaming.Store(true)
						c.opts.OnStreaming(true)
					}
				}
			}
			// A plan for a state before the whole snapshot arrived (from
			// a planner that applied a part as the whole) is not acted on.
			if p := r.GetPlan(); p != nil && (snapshotSeq == 0 || p.GetSequence() >= snapshotSeq) {
				c.plans.Handle(c.traceContext(planCtx, p.GetSequence()), p)
			}
			if at := r.GetRecheckAt(); at != nil && (recheckAt.IsZero() || at.AsTime().Before(recheckAt)) {
				recheckAt = at.AsTime()
				rearm()
			}
		case <-c.askedWake:
			rearm()
		case <-recheck.C:
			if !recheckAt.After(time.Now()) {
				recheckAt = time.Time{}
			}
			c.answerAsked(time.Now())
			tick = true
			rearm()
		case <-heartbeat.C:
			tick = true
		case <-c.src.Changed():
			if !batching {
				batching, size = true, 0
				maxWait.Reset(c.opts.MaxBatchWait)
			}
			// Only new objects grow the burst; an object of the batch
			// changing again (a pod the scheduler marks unschedulable)
			// does not hold it back.
			if n := c.src.Pending(); !ready && n > size {
				size = n
				idle.Reset(c.opts.IdleWindow)
			}
		case <-idle.C:
			ready = batching
		case <-maxWait.C:
			ready = batching
			idle.Stop()
		}
		if (ready || tick) && outstanding == 0 {
			if ready {
				batching, ready = false, false
				idle.Stop()
				maxWait.Stop()
			}
			changes := c.src.Delta()
			if len(changes) == 0 && !tick {
				continue
			}
			tick = false
			heartbeat.Reset(c.opts.Heartbeat)
			seq, err := c.send(ctx, st, func(ev *clusterv1.ClusterEvent) int {
				ev.Body = &clusterv1.ClusterEvent_Delta{Delta: &clusterv1.Delta{Changes: changes, Now: timestamppb.Now()}}
				return len(changes)
			})
			if err != nil {
				return healthy, err
			}
			outstanding = seq
			ackDeadline.Reset(c.opts.AckTimeout)
		}
	}
}

// send numbers an event, fills it with body (which returns the object count
// for the trace) and sends it inside a batch span whose context travels in
// the event.
func (c *Client) send(ctx context.Context, st plannerv1.Planner_ReconcileClient, body func(*clusterv1.ClusterEvent) int) (uint64, error) {
	seq := c.seq.Add(1)
	ev := &clusterv1.ClusterEvent{Sequence: seq}
	ctx, span := c.tracer.Start(ctx, "batch")
	defer span.End()
	began := time.Now()
	n := body(ev)
	built := time.Since(began)
	kindName := "delta"
	if ev.GetSnapshot() != nil {
		kindName = "snapshot"
	}
	span.SetAttributes(attribute.String("flotilla.event", kindName), attribute.Int64("flotilla.sequence", int64(seq)), attribute.Int("flotilla.objects", n))
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	ev.Traceparent = carrier["traceparent"]
	c.remember(seq, span.SpanContext())
	if err := st.Send(&plannerv1.ReconcileRequest{Event: ev}); err != nil {
		return 0, fmt.Errorf("send %s %d: %w", kindName, seq, err)
	}
	c.opts.Logger.Debug("event_sent", "kind", kindName, "sequence", seq, "objects", n, "build", built.String())
	return seq, nil
}

// sendSnapshot sends a snapshot in parts of at most parts.Objects objects
// (one event each, more set on all but the last): one part at a time is
// marshalled, and flow control holds the next back while the planner
// reads. It returns the sequence of the last part, which the planner's
// acknowledgement of the whole names.
func (c *Client) sendSnapshot(ctx context.Context, st plannerv1.Planner_ReconcileClient) (uint64, error) {
	began := time.Now()
	snap := c.src.Snapshot()
	built := time.Since(began)
	split := parts.Split(snap, parts.Objects)
	var seq uint64
	objects := 0
	for i, part := range split {
		more := i < len(split)-1
		s, err := c.send(ctx, st, func(ev *clusterv1.ClusterEvent) int {
			ev.Body = &clusterv1.ClusterEvent_Snapshot{Snapshot: part}
			ev.More = more
			n := parts.Count(part)
			objects += n
			return n
		})
		if err != nil {
			return 0, err
		}
		seq = s
	}
	// Rare and, at 100,000 pods, the costliest thing the watcher does:
	// worth a line with its timings.
	c.opts.Logger.Info("snapshot_sent", "sequence", seq, "objects", objects, "parts", len(split),
		"build", built.String(), "send", (time.Since(began) - built).String())
	return seq, nil
}

// remember keeps the span of a recent batch so the plan answering it joins
// its trace.
func (c *Client) remember(seq uint64, sc trace.SpanContext) {
	c.traceMu.Lock()
	defer c.traceMu.Unlock()
	c.traces[seq] = sc
	for s := range c.traces {
		if s+64 < seq {
			delete(c.traces, s)
		}
	}
}

func (c *Client) traceContext(ctx context.Context, seq uint64) context.Context {
	c.traceMu.Lock()
	sc, ok := c.traces[seq]
	c.traceMu.Unlock()
	if !ok || !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithSpanContext(ctx, sc)
}

func errString(err error) string {
	if err == nil || errors.Is(err, context.Canceled) {
		return ""
	}
	return err.Error()
}
