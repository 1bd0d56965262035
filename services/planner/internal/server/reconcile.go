package server

import (
	"context"
	"errors"
	"io"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	"github.com/flotilla-dev/flotilla/services/internal/parts"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Reconcile keeps a soft snapshot for the stream, applies the watcher's
// events in sequence order and answers each batch with an acknowledgement
// and, when there is something to do, a plan. Events that arrive while a
// plan is being computed are applied together before the next solve, so a
// slow solve never builds a backlog of stale plans. A sequence gap (or a
// delta before any snapshot) is answered with resync, and deltas are ignored
// until the next snapshot.
func (p *Planner) Reconcile(stream plannerv1.Planner_ReconcileServer) error {
	ctx := stream.Context()
	events := make(chan *clusterv1.ClusterEvent, 1024)
	recvErr := make(chan error, 1)
	go func() {
		defer close(events)
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case events <- req.GetEvent():
			case <-ctx.Done():
				recvErr <- ctx.Err()
				return
			}
		}
	}()

	var st streamState
	// partial holds the parts of a snapshot received so far, and
	// partialSeq the sequence of the last.
	var partial *clusterv1.Snapshot
	var partialSeq uint64
	for {
		ev, ok := <-events
		if !ok {
			return streamEnd(<-recvErr)
		}
		batch := []*clusterv1.ClusterEvent{ev}
	drain:
		for {
			select {
			case more, ok := <-events:
				if !ok {
					break drain
				}
				batch = append(batch, more)
			default:
				break drain
			}
		}
		resync := false
		var traceparent string
		for _, ev := range batch {
			switch {
			case ev.GetSnapshot() != nil:
				if partial == nil || ev.GetSequence() != partialSeq+1 {
					partial = &clusterv1.Snapshot{}
				}
				parts.Append(partial, ev.GetSnapshot())
				partialSeq = ev.GetSequence()
				if ev.GetMore() {
					continue
				}
				st.reset(ev.GetSequence(), partial)
				partial = nil
				resync = false
			case partial != nil:
				// A snapshot cut short: wait for a whole one.
				p.logger.Warn("stream_gap", "have", partialSeq, "got", ev.GetSequence(), "in", "snapshot")
				partial = nil
				st.synced = false
				resync = true
			case st.synced && ev.GetSequence() == st.sequence+1:
				st.apply(ev.GetSequence(), ev.GetDelta())
			default:
				if st.synced {
					p.logger.Warn("stream_gap", "have", st.sequence, "got", ev.GetSequence())
				}
				st.synced = false
				resync = true
			}
			if ev.GetTraceparent() != "" {
				traceparent = ev.GetTraceparent()
			}
		}
		if partial != nil {
			// The rest of the snapshot answers everything so far.
			continue
		}
		if resync || !st.synced {
			if err := stream.Send(&plannerv1.ReconcileResponse{AckedSequence: st.sequence, Resync: true}); err != nil {
				return err
			}
			continue
		}
		resp := &plannerv1.ReconcileResponse{AckedSequence: st.sequence}
		snap, start := st.snapshot(), time.Now()
		plan, recheck, err := p.Solve(withTraceparent(ctx, traceparent), snap, true)
		observe("reconcile", snap, plan, err, time.Since(start))
		if !recheck.IsZero() {
			resp.RecheckAt = timestamppb.New(recheck)
		}
		if err != nil {
			// A batch the solver rejects is logged and acknowledged; the next
			// event gets a fresh attempt on the corrected state.
			p.logger.Error("solve_failed", "sequence", st.sequence, "error", err.Error())
		} else if hasWork(plan) {
			plan.Sequence = st.sequence
			resp.Plan = plan
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func streamEnd(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, "stream closed")
	}
	return err
}

func hasWork(p *clusterv1.Plan) bool {
	return len(p.GetNodeClaims()) > 0 || len(p.GetExistingNodes()) > 0 ||
		len(p.GetUnschedulable()) > 0 || len(p.GetDisruptions()) > 0 || len(p.GetRejections()) > 0
}

// withTraceparent continues the watcher's batch trace, carried in the event
// because one stream carries many batches.
func withTraceparent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}
