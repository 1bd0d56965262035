package consolidation

import (
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/google/go-cmp/cmp"
)

// emptyNodes is a world of n empty nodes of a WhenEmpty pool whose
// consolidateAfter has long passed, at the given time.
func emptyNodes(n int, when time.Time, budgets ...model.DisruptionBudget) *world {
	p := consolidating("default", onDemandOnly)
	p.Disruption.Budgets = budgets
	w := newWorld(p)
	w.s.Now = when
	for i := range n {
		nd := w.node(string(rune('a'+i)), "default", "m5.large", "us-east-1a", model.CapacityOnDemand)
		nd.Created, nd.LastPodEvent = when.Add(-time.Hour), when.Add(-time.Hour)
	}
	return w
}

func TestBudgets(t *testing.T) {
	t.Parallel()
	quiet := model.DisruptionBudget{Nodes: "0", Schedule: "@daily", Duration: 8 * time.Hour}
	tests := []struct {
		name        string
		world       func() *world
		wantNodes   int
		wantBudget  string
		wantReject  string
		wantRecheck string
	}{
		{
			name: "budget 0 in its cron window blocks",
			world: func() *world {
				return emptyNodes(3, at("2026-11-27 05:00"), quiet, model.DisruptionBudget{Nodes: "100%"})
			},
			wantReject:  "disruption budget NodePool default (nodes 0 on schedule @daily for 8h) allows no more now",
			wantRecheck: "2026-11-27 08:00",
		},
		{
			name: "budget 0 outside its cron window does not",
			world: func() *world {
				return emptyNodes(3, at("2026-11-27 12:00"), quiet, model.DisruptionBudget{Nodes: "100%"})
			},
			wantNodes:   3,
			wantBudget:  "NodePool default (nodes 100%)",
			wantRecheck: "2026-11-28 00:00",
		},
		{
			name: "the strictest active budget wins",
			world: func() *world {
				return emptyNodes(10, now, model.DisruptionBudget{Nodes: "50%"}, model.DisruptionBudget{Nodes: "2"})
			},
			wantNodes:  2,
			wantBudget: "NodePool default (nodes 2)",
			wantReject: "allows no more now",
		},
		{
			name: "budgets for other reasons do not apply",
			world: func() *world {
				return emptyNodes(3, now, model.DisruptionBudget{Nodes: "0", Reasons: []string{"Drifted", "Underutilized"}})
			},
			wantNodes:  3,
			wantBudget: "NodePool default (no active budget for Empty)",
		},
		{
			name: "a budget for the reason applies",
			world: func() *world {
				return emptyNodes(3, now, model.DisruptionBudget{Nodes: "1", Reasons: []string{"Empty"}})
			},
			wantNodes:  1,
			wantBudget: "NodePool default (nodes 1, reasons Empty)",
			wantReject: "allows no more now",
		},
		{
			name:       "no budgets means 10 %, rounded up",
			world:      func() *world { return emptyNodes(11, now) },
			wantNodes:  2,
			wantBudget: "NodePool default (nodes 10%, the default)",
			wantReject: "allows no more now",
		},
		{
			name: "a budget whose schedule does not parse blocks, and says why",
			world: func() *world {
				return emptyNodes(2, now, model.DisruptionBudget{Nodes: "0", Schedule: "every day", Duration: time.Hour})
			},
			wantReject: "budget 0 is invalid",
		},
		{
			name: "nodes already being deleted use the budget up",
			world: func() *world {
				w := emptyNodes(4, now, model.DisruptionBudget{Nodes: "2"})
				w.s.Nodes[0].Deleting, w.s.Nodes[1].Deleting = true, true
				return w
			},
			wantReject: "allows no more now",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := tt.world()
			plan := w.solve(t, Options{})
			got := disruptedBy(plan)[model.DisruptionEmpty]
			if len(got) != tt.wantNodes {
				t.Errorf("deleted %v, want %d nodes; rejections %v", got, tt.wantNodes, rejections(plan))
			}
			if tt.wantBudget != "" {
				if len(plan.Disruptions) == 0 || plan.Disruptions[0].Budget != tt.wantBudget {
					t.Errorf("disruptions %v, want budget %q", plan.Disruptions, tt.wantBudget)
				}
			}
			if tt.wantReject != "" {
				found := false
				for _, r := range plan.Rejections {
					found = found || strings.Contains(r.Reason, tt.wantReject)
				}
				if !found {
					t.Errorf("no rejection mentions %q: %v", tt.wantReject, rejections(plan))
				}
			}
			var want time.Time
			if tt.wantRecheck != "" {
				want = at(tt.wantRecheck)
			}
			if !plan.RecheckAt.Equal(want) {
				t.Errorf("RecheckAt = %v, want %v", plan.RecheckAt, want)
			}
		})
	}
}

func TestDescribeBudget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		b    model.DisruptionBudget
		want string
	}{
		{model.DisruptionBudget{Nodes: "10%"}, "NodePool p (nodes 10%)"},
		{model.DisruptionBudget{Nodes: "0", Schedule: "@daily", Duration: 8 * time.Hour}, "NodePool p (nodes 0 on schedule @daily for 8h)"},
		{model.DisruptionBudget{Nodes: "3", Schedule: "0 9 * * 1-5", Duration: 90 * time.Minute, Reasons: []string{"Drifted"}},
			"NodePool p (nodes 3 on schedule 0 9 * * 1-5 for 1h30m, reasons Drifted)"},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, describe("p", tt.b, false)); diff != "" {
			t.Errorf("describe(%+v) (-want +got):\n%s", tt.b, diff)
		}
	}
}
