package consolidation

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/google/go-cmp/cmp"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func pool(name, after string, budgets ...model.DisruptionBudget) *model.NodePool {
	d, _ := time.ParseDuration(after)
	return &model.NodePool{Name: name, Ready: true, Disruption: model.Disruption{
		ConsolidationPolicy: model.ConsolidateWhenEmpty, ConsolidateAfter: d, Budgets: budgets}}
}

// cluster builds n initialized nodes of pool "default", empty since emptyAgo.
func cluster(n int, emptyAgo time.Duration) *model.Snapshot {
	s := &model.Snapshot{Now: now, NodePools: []*model.NodePool{pool("default", "30s")}}
	for i := range n {
		name := fmt.Sprintf("node-%02d", i)
		claim := fmt.Sprintf("default-%02d", i)
		s.Nodes = append(s.Nodes, &model.Node{
			Name: name, NodeClaim: claim, Ready: true, PricePerHour: 0.0416,
			Labels:  map[string]string{model.LabelNodePool: "default"},
			Created: now.Add(-time.Hour), LastPodEvent: now.Add(-emptyAgo),
		})
		s.NodeClaims = append(s.NodeClaims, &model.NodeClaim{Name: claim, NodePool: "default", NodeName: name,
			Conditions: []model.Condition{{Type: "Initialized", Status: "True"}}})
	}
	return s
}

func disrupted(p *model.Plan) []string {
	var out []string
	for _, d := range p.Disruptions {
		out = append(out, d.Nodes...)
	}
	return out
}

func TestEmpty(t *testing.T) {
	tests := []struct {
		name        string
		snap        func() *model.Snapshot
		plan        *model.Plan
		want        []string
		wantRejects int
	}{
		{
			name: "empty long enough goes",
			snap: func() *model.Snapshot { return cluster(1, time.Minute) },
			want: []string{"node-00"},
		},
		{
			name: "not yet past consolidateAfter stays",
			snap: func() *model.Snapshot { return cluster(1, 10*time.Second) },
		},
		{
			name: "a running pod keeps the node",
			snap: func() *model.Snapshot {
				s := cluster(2, time.Minute)
				s.Pods = []*model.Pod{{Namespace: "default", Name: "web", NodeName: "node-00", Phase: model.PodRunning}}
				return s
			},
			want: []string{"node-01"},
		},
		{
			name: "DaemonSet and mirror pods do not count",
			snap: func() *model.Snapshot {
				s := cluster(1, time.Minute)
				s.Pods = []*model.Pod{
					{Namespace: "kube-system", Name: "ds", NodeName: "node-00", OwnerKind: "DaemonSet", Phase: model.PodRunning},
					{Namespace: "kube-system", Name: "static", NodeName: "node-00", OwnerKind: "Node", Phase: model.PodRunning},
				}
				return s
			},
			want: []string{"node-00"},
		},
		{
			name: "a node the plan places pods on stays",
			snap: func() *model.Snapshot { return cluster(1, time.Minute) },
			plan: &model.Plan{Placements: []*model.Placement{{Node: "node-00", Pods: []string{"default/web"}}}},
		},
		{
			name: "uninitialized nodes stay",
			snap: func() *model.Snapshot {
				s := cluster(1, time.Minute)
				s.NodeClaims[0].Conditions = nil
				return s
			},
		},
		{
			name: "consolidateAfter Never keeps empty nodes",
			snap: func() *model.Snapshot {
				s := cluster(1, time.Hour)
				s.NodePools[0].Disruption.ConsolidateNever = true
				return s
			},
		},
		{
			name: "default budget 10% of 25 nodes rounds up to 3",
			snap: func() *model.Snapshot { return cluster(25, time.Minute) },
			want: []string{"node-00", "node-01", "node-02"}, wantRejects: 22,
		},
		{
			name: "nodes already being deleted use up the budget",
			snap: func() *model.Snapshot {
				s := cluster(10, time.Minute)
				s.Nodes[0].Deleting = true
				return s
			},
			wantRejects: 9,
		},
		{
			name: "a zero budget for Empty blocks, other reasons' budgets do not apply",
			snap: func() *model.Snapshot {
				s := cluster(3, time.Minute)
				s.NodePools[0].Disruption.Budgets = []model.DisruptionBudget{
					{Nodes: "0", Reasons: []string{"Empty"}}, {Nodes: "100%", Reasons: []string{"Drifted"}}}
				return s
			},
			wantRejects: 3,
		},
		{
			name: "the strictest of several budgets wins",
			snap: func() *model.Snapshot {
				s := cluster(10, time.Minute)
				s.NodePools[0].Disruption.Budgets = []model.DisruptionBudget{{Nodes: "50%"}, {Nodes: "2"}}
				return s
			},
			want: []string{"node-00", "node-01"}, wantRejects: 8,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := tt.plan
			if plan == nil {
				plan = &model.Plan{}
			}
			if err := Plan(context.Background(), tt.snap(), plan, Options{}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, disrupted(plan)); diff != "" {
				t.Errorf("disrupted nodes (-want +got):\n%s", diff)
			}
			if len(plan.Rejections) != tt.wantRejects {
				t.Errorf("rejections = %d, want %d", len(plan.Rejections), tt.wantRejects)
			}
			for _, d := range plan.Disruptions {
				if d.Reason != model.DisruptionEmpty || d.Budget == "" || len(d.NodeClaims) != len(d.Nodes) {
					t.Errorf("disruption %+v lacks reason, budget or claims", d)
				}
			}
		})
	}
}

func TestEmptyIsDeterministic(t *testing.T) {
	a, b := &model.Plan{}, &model.Plan{}
	if err := Plan(context.Background(), cluster(30, time.Minute), a, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := Plan(context.Background(), cluster(30, time.Minute), b, Options{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("two runs differ:\n%s", diff)
	}
}

func TestBudgetNodes(t *testing.T) {
	tests := []struct {
		spec    string
		total   int
		want    int
		wantErr bool
	}{
		{"10%", 0, 0, false}, {"10%", 1, 1, false}, {"10%", 50, 5, false}, {"0%", 50, 0, false},
		{"100%", 7, 7, false}, {"3", 50, 3, false}, {"0", 5, 0, false},
		{"-1", 5, 0, true}, {"150%", 5, 0, true}, {"lots", 5, 0, true},
	}
	for _, tt := range tests {
		got, err := budgetNodes(tt.spec, tt.total)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("budgetNodes(%q, %d) = %d, %v; want %d, err %v", tt.spec, tt.total, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestEmptyAsksToBeAskedAgainWhenANodeBecomesDue(t *testing.T) {
	s := cluster(2, 10*time.Second) // consolidateAfter 30s: due in 20s
	s.Nodes[1].LastPodEvent = now.Add(-25 * time.Second)
	plan := &model.Plan{}
	if err := Plan(context.Background(), s, plan, Options{}); err != nil {
		t.Fatal(err)
	}
	if len(plan.Disruptions) != 0 {
		t.Fatalf("disrupted %v before consolidateAfter", disrupted(plan))
	}
	if want := now.Add(5 * time.Second); !plan.RecheckAt.Equal(want) {
		t.Errorf("RecheckAt = %v, want %v (the earlier of the two nodes)", plan.RecheckAt, want)
	}
}
