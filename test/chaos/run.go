package chaos

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

// stepTimeout is how long a phase waits for its step before the run counts
// as missed.
const stepTimeout = 90 * time.Second

// Cycle scales the Deployment up (one new node) with up, then down (a
// consolidation) with down, and returns a result for each run given (nil
// runs happen without a fault). The Deployment must be at BaseReplicas on
// one node, as Start leaves it and every Cycle does unless it failed.
func (h *Harness) Cycle(ctx context.Context, up, down *Run) []Result {
	var out []Result
	r := h.phase(ctx, up, PeakReplicas, 0)
	if up != nil {
		out = append(out, r)
	}
	r = h.phase(ctx, down, BaseReplicas, 1)
	if down != nil {
		out = append(out, r)
	}
	return out
}

// phase scales the Deployment to replicas, applies the run's fault and
// waits until replicas pods run (on nodes nodes when not 0).
func (h *Harness) phase(ctx context.Context, run *Run, replicas, nodes int) Result {
	if run == nil {
		run = &Run{}
	}
	res := Result{Run: *run, PDBChecked: true}
	before := h.mon.counters()
	var trig *trigger
	switch run.Fault {
	case Kill:
		trig = h.arm(*run)
		defer h.disarm()
	case PlannerDown:
		h.mu.Lock()
		h.expectDown[localenv.ProcPlanner] = true
		h.mu.Unlock()
		// SIGTERM, not StopProcess: the process stays recorded, so it can
		// be restarted with its specification.
		if err := h.signal(localenv.ProcPlanner, syscall.SIGTERM); err != nil {
			res.Err = err
		}
	}
	began := time.Now()
	if err := h.scale(ctx, replicas); err != nil {
		res.Err = fmt.Errorf("scale to %d: %w", replicas, err)
		return res
	}
	t0 := began
	switch run.Fault {
	case Kill:
		res.Hit, t0, res.Seen = h.awaitStep(ctx, trig, replicas, nodes)
		if res.Hit {
			if trig.err != nil {
				res.Err = trig.err
			}
			h.logf("  fired: %s (%s)", run, res.Seen)
			if err := h.restart(ctx, run.Victim); err != nil {
				res.Err = err
			}
		} else {
			h.disarm()
			h.mu.Lock()
			delete(h.expectDown, run.Victim)
			h.mu.Unlock()
			h.logf("  MISSED: %s never came", run.Step)
		}
	case PlannerDown:
		res.Hit = true
		res.Seen = fmt.Sprintf("planner stopped, pods scaled to %d", replicas)
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(began.Add(PlannerDownFor))):
		}
		if err := h.restart(ctx, localenv.ProcPlanner); err != nil {
			res.Err = err
		}
		t0 = time.Now()
	case MotoRestart:
		// The scale-up first settles; then moto forgets everything.
		if s, ok := h.waitSettled(ctx, replicas, nodes, settleCap); !ok {
			res.Err = fmt.Errorf("no rest before the moto restart: %s", s)
			return res
		}
		res.Hit, res.PDBChecked = true, false
		h.mon.pausePDB(true)
		defer h.mon.pausePDB(false)
		if err := h.restartMoto(ctx); err != nil {
			res.Err = err
		}
		res.Seen = "moto restarted with the workload at rest; network seeded again"
		before = h.mon.counters()
		t0 = time.Now()
	}
	res.Settled, res.Settle, res.Crashed = h.settle(ctx, t0, replicas, nodes, &res)
	after := h.mon.counters()
	res.PDBViolations = after.pdb - before.pdb
	res.LimitBreaches = after.limit - before.limit
	res.DoubleLaunches = max(0, after.double-before.double)
	if !res.PDBChecked {
		res.PDBViolations = 0
	}
	return res
}

// awaitStep waits until the trigger fires, or until the phase is over
// without it (the step did not come). It returns whether it fired, when,
// and what set it off.
func (h *Harness) awaitStep(ctx context.Context, t *trigger, replicas, nodes int) (bool, time.Time, string) {
	deadline := time.After(stepTimeout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-t.fired:
			return true, t.at, t.seen
		case <-ctx.Done():
			return false, time.Now(), ""
		case <-deadline:
			return false, time.Now(), ""
		case <-tick.C:
			if s, err := h.snapshot(ctx); err == nil && s.settled(replicas, nodes) {
				// Settled without the step: a last look, then give up.
				select {
				case <-t.fired:
					return true, t.at, t.seen
				case <-time.After(500 * time.Millisecond):
					return false, time.Now(), ""
				}
			}
		}
	}
}

// settle waits until the end state holds, restarting services that died on
// their own, and counts what is left when it does not come within
// settleCap.
func (h *Harness) settle(ctx context.Context, t0 time.Time, replicas, nodes int, res *Result) (bool, time.Duration, []string) {
	var crashed []string
	var last state
	for time.Since(t0) < settleCap && ctx.Err() == nil {
		died, err := h.supervise(ctx)
		crashed = append(crashed, died...)
		if err != nil && res.Err == nil {
			res.Err = err
		}
		s, err := h.snapshot(ctx)
		if err == nil {
			last = s
			if s.settled(replicas, nodes) {
				return true, time.Since(t0), crashed
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.Leaked = len(last.leaked)
	res.PendingLeft = last.pending
	h.logf("  NOT SETTLED after %s: %s", settleCap, last)
	return false, time.Since(t0), crashed
}

// restartMoto kills moto_server, starts it again (empty) and seeds the
// account's network and AMI parameters again.
func (h *Harness) restartMoto(ctx context.Context) error {
	if err := h.kill(localenv.ProcMoto); err != nil {
		return err
	}
	if err := h.env.Restart(ctx, localenv.ProcMoto); err != nil {
		return fmt.Errorf("restart moto: %w", err)
	}
	h.mon.forgetInstances()
	if _, err := h.env.Prepare(ctx); err != nil {
		return fmt.Errorf("seed moto again: %w", err)
	}
	return nil
}
