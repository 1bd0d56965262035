package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

var (
	seed      = flag.Uint64("chaos.seed", 1, "seed of the fault schedule")
	runs      = flag.Int("chaos.runs", 0, "TestChaos: number of kill -9 runs (0 skips it; make chaos runs 100)")
	infraOnly = flag.Bool("chaos.infra-only", false, "TestChaos: only the infrastructure faults")
	victims   = flag.String("chaos.victims", "", "TestChaos: comma-separated services to kill (planner, actuator, watcher); empty: all")
)

// TestChaosShort is the version of `make test`: each service killed once at
// a step of a scale-up or a consolidation, and kube-apiserver killed at a
// consolidation step; every invariant holds and each run settles within a
// minute.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local environment")
	}
	runSchedule(t, ShortSchedule(*seed))
}

// TestChaos is `make chaos`: -chaos.runs kill -9 runs over every (service,
// step) pair, then the infrastructure faults (kube-apiserver restarts, the
// planner away for 30 s, moto restarted).
func TestChaos(t *testing.T) {
	switch {
	case *infraOnly:
		runSchedule(t, Schedule(*seed, 0, true))
	case *runs > 0:
		var only []string
		for v := range strings.SplitSeq(*victims, ",") {
			if v = strings.TrimSpace(v); v == "" {
				continue
			}
			if !slices.Contains(Services, v) {
				t.Fatalf("-chaos.victims: unknown service %q (want one of %v)", v, Services)
			}
			only = append(only, v)
		}
		runSchedule(t, Schedule(*seed, *runs, len(only) == 0, only...))
	default:
		t.Skip("run with -chaos.runs=N (make chaos) or -chaos.infra-only")
	}
}

func runSchedule(t *testing.T, plan []CyclePlan) {
	ctx := context.Background()
	bin, err := localenv.FlotillaBinaries(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env := localenv.StartT(t, localenv.Options{Progress: os.Stderr})
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
	began := time.Now()
	h, err := Start(ctx, env, Options{BinDir: bin, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	logf("workload up in %s; %d cycles (seed %d)", time.Since(began).Round(time.Millisecond), len(plan), *seed)
	var results []Result
	for i, c := range plan {
		logf("cycle %d/%d: up %v, down %v", i+1, len(plan), runName(c.Up), runName(c.Down))
		rs := h.Cycle(ctx, c.Up, c.Down)
		for _, r := range rs {
			logf("  result: %s: hit=%v settled=%v in %s leaked=%d double=%d pdb=%d limit=%d pending=%d crashed=%v err=%v",
				r.Run, r.Hit, r.Settled, r.Settle.Round(100*time.Millisecond), r.Leaked, r.DoubleLaunches, r.PDBViolations,
				r.LimitBreaches, r.PendingLeft, r.Crashed, r.Err)
		}
		results = append(results, rs...)
	}
	table := Table(results)
	fmt.Fprintf(os.Stderr, "\nchaos: seed %d, %d runs in %s\n%s\n", *seed, len(results), time.Since(began).Round(time.Second), table)
	t.Logf("seed %d, %d runs\n%s", *seed, len(results), table)
	for claim, ids := range h.mon.doubles() {
		t.Errorf("NodeClaim %s launched %d instances: %v", claim, len(ids), ids)
	}
	var failed []string
	for _, r := range results {
		if r.Failed() {
			failed = append(failed, fmt.Sprintf("%s (hit=%v settled=%v in %s, err=%v)", r.Run, r.Hit, r.Settled, r.Settle.Round(100*time.Millisecond), r.Err))
		}
		if r.Fault == Kill && !r.Hit {
			t.Logf("%s: the step never came (counted as a run without a fault)", r.Run)
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d runs broke an invariant or took longer than %s to settle:\n  %s", len(failed), len(results), SettleTarget, strings.Join(failed, "\n  "))
	}
}

func runName(r *Run) string {
	if r == nil {
		return "no fault"
	}
	return r.String()
}
