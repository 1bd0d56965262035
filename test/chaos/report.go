package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

// CyclePlan is the pair of runs of one scale-up and the consolidation after it
// (either may be nil).
type CyclePlan struct {
	Up, Down *Run
}

// Schedule returns the cycles of kills runs Kill runs (half at scale-up
// steps, half at consolidation steps), every (service, step) pair drawn in
// turn in an order shuffled by seed, followed by the infrastructure faults:
// kube-apiserver killed at a random step of each half, the planner away,
// moto restarted. victims, when not empty, limits the kills to those
// services (to look again at one of them after a fix, say).
func Schedule(seed uint64, kills int, infra bool, victims ...string) []CyclePlan {
	if len(victims) == 0 {
		victims = Services
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	draw := func(steps []Step, n int) []*Run {
		var pairs []Run
		for _, s := range steps {
			for _, v := range victims {
				pairs = append(pairs, Run{Fault: Kill, Victim: v, Step: s})
			}
		}
		var out []*Run
		for len(out) < n {
			rng.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
			for i := 0; i < len(pairs) && len(out) < n; i++ {
				r := pairs[i]
				out = append(out, &r)
			}
		}
		return out
	}
	ups := draw(ScaleUpSteps, (kills+1)/2)
	downs := draw(ConsolidationSteps, kills/2)
	var plan []CyclePlan
	for i := range ups {
		c := CyclePlan{Up: ups[i]}
		if i < len(downs) {
			c.Down = downs[i]
		}
		plan = append(plan, c)
	}
	if infra {
		plan = append(plan,
			CyclePlan{Up: &Run{Fault: Kill, Victim: localenv.ProcAPIServer, Step: ScaleUpSteps[rng.IntN(len(ScaleUpSteps))]},
				Down: &Run{Fault: Kill, Victim: localenv.ProcAPIServer, Step: ConsolidationSteps[rng.IntN(len(ConsolidationSteps))]}},
			CyclePlan{Up: &Run{Fault: PlannerDown}},
			CyclePlan{Up: &Run{Fault: MotoRestart}},
		)
	}
	return plan
}

// ShortSchedule is the version of `make test`: one kill of each service at
// a step drawn by seed (two at scale-up, one at consolidation, or the other
// way round), and kube-apiserver killed at a consolidation step.
func ShortSchedule(seed uint64) []CyclePlan {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	svcs := slices.Clone(Services)
	rng.Shuffle(len(svcs), func(i, j int) { svcs[i], svcs[j] = svcs[j], svcs[i] })
	up := func(v string) *Run {
		return &Run{Fault: Kill, Victim: v, Step: ScaleUpSteps[rng.IntN(len(ScaleUpSteps))]}
	}
	down := func(v string) *Run {
		return &Run{Fault: Kill, Victim: v, Step: ConsolidationSteps[rng.IntN(len(ConsolidationSteps))]}
	}
	return []CyclePlan{
		{Up: up(svcs[0]), Down: down(svcs[1])},
		{Up: up(svcs[2]), Down: down(localenv.ProcAPIServer)},
	}
}

// row is one line of the table.
type row struct {
	name                                           string
	runs, hit, leaked, double, pdb, limit, pending int
	unsettled                                      int
	maxSettle                                      time.Duration
	victims                                        map[string]int
	pdbNA                                          bool
}

// rowName is the table line a result belongs to.
func rowName(r Result) string {
	switch {
	case r.Fault == Kill && r.Victim == localenv.ProcAPIServer:
		return "apiserver restart @ " + string(r.Step)
	case r.Fault == Kill:
		return string(r.Step)
	}
	return string(r.Fault)
}

// Table prints the results by step: runs, how many hit their step, the
// invariant counts and the longest time to settle.
func Table(results []Result) string {
	var order []string
	rows := map[string]*row{}
	total := &row{name: "total", victims: map[string]int{}}
	for _, r := range results {
		name := rowName(r)
		w := rows[name]
		if w == nil {
			w = &row{name: name, victims: map[string]int{}}
			rows[name] = w
			order = append(order, name)
		}
		for _, x := range []*row{w, total} {
			x.runs++
			if r.Hit {
				x.hit++
			}
			x.leaked += r.Leaked
			x.double += r.DoubleLaunches
			x.pdb += r.PDBViolations
			x.limit += r.LimitBreaches
			x.pending += r.PendingLeft
			if !r.Settled || r.Err != nil {
				x.unsettled++
			}
			x.maxSettle = max(x.maxSettle, r.Settle)
			if r.Fault == Kill {
				x.victims[r.Victim]++
			}
		}
		if !r.PDBChecked {
			w.pdbNA = true
		}
	}
	known := map[string]int{}
	for i, s := range append(append([]Step{}, ScaleUpSteps...), ConsolidationSteps...) {
		known[string(s)] = i + 1
	}
	slices.SortStableFunc(order, func(a, b string) int {
		ka, kb := known[a], known[b]
		if ka == 0 {
			ka = 100
		}
		if kb == 0 {
			kb = 100
		}
		return ka - kb
	})
	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\truns\thit\tkilled (p/a/w)\tleaked\tdouble launches\tPDB violations\tlimit breaches\tpods left pending\tnot settled\tmax time to settle\t")
	for _, name := range append(order, "total") {
		w := rows[name]
		if name == "total" {
			w = total
		}
		pdb := fmt.Sprint(w.pdb)
		if w.pdbNA {
			pdb = "n/a"
		}
		killed := fmt.Sprintf("%d/%d/%d", w.victims[localenv.ProcPlanner], w.victims[localenv.ProcActuator], w.victims[localenv.ProcWatcher])
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%d\t%s\t%d\t%d\t%d\t%s\t\n", w.name, w.runs, w.hit, killed, w.leaked, w.double, pdb,
			w.limit, w.pending, w.unsettled, w.maxSettle.Round(100*time.Millisecond))
	}
	_ = tw.Flush()
	return sb.String()
}
