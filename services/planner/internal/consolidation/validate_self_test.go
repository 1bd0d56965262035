package consolidation

import (
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// TestValidatorCatchesBrokenPlans feeds the checker plans that are wrong in
// one way each: it must say so, or the tests that rely on it prove nothing.
func TestValidatorCatchesBrokenPlans(t *testing.T) {
	t.Parallel()
	base := func() *world {
		w := halfEmpty()
		w.node("node-c", "default", "t3.medium", "us-east-1a", model.CapacityOnDemand)
		w.pods("node-c", "db", 1, 1500, 2048)
		return w
	}
	good := func() *model.DisruptionPlan {
		return &model.DisruptionPlan{ID: "underutilized-x", Reason: model.DisruptionUnderutilized, Budget: "NodePool default (nodes 100%)",
			Nodes: []string{"node-a"}, NodeClaims: []string{"node-a"}, SavingsPerHour: 0.0832,
			Moves: []*model.Placement{{Node: "node-b", Pods: []string{"shop/web-node-a-0", "shop/web-node-a-1"}}}}
	}
	tests := []struct {
		name  string
		edit  func(w *world, d *model.DisruptionPlan)
		wantE string // "" means the plan is fine
	}{
		{"the good plan passes", func(*world, *model.DisruptionPlan) {}, ""},
		{"a pod left behind", func(_ *world, d *model.DisruptionPlan) { d.Moves[0].Pods = d.Moves[0].Pods[:1] }, "without a place"},
		{"a pod moved to a full node", func(_ *world, d *model.DisruptionPlan) { d.Moves[0].Node = "node-c" }, "overcommitted"},
		{"do-not-disrupt evicted", func(w *world, _ *model.DisruptionPlan) { w.s.Pods[0].DoNotDisrupt = true }, "do-not-disrupt"},
		{"a pod without a controller evicted", func(w *world, _ *model.DisruptionPlan) { w.s.Pods[0].OwnerKind = "" }, "no controller"},
		{"a PDB overdrawn", func(w *world, _ *model.DisruptionPlan) {
			w.s.PodDisruptionBudgets = []*model.PodDisruptionBudget{{Namespace: "shop", Name: "web", DisruptionsAllowed: 1,
				Selector: &model.LabelSelector{Requirements: []model.Requirement{{Key: "app", Operator: model.OpIn, Values: []string{"web"}}}}}}
		}, "PDB shop/web allows 1"},
		{"savings that do not add up", func(_ *world, d *model.DisruptionPlan) { d.SavingsPerHour = 1 }, "claims savings"},
		{"a node selector ignored", func(w *world, _ *model.DisruptionPlan) {
			w.s.Pods[0].NodeSelector = map[string]string{model.LabelZone: "us-east-1b"}
		}, "node selector or affinity"},
		{"a budget exceeded", func(w *world, _ *model.DisruptionPlan) {
			w.s.NodePools[0].Disruption.Budgets = []model.DisruptionBudget{{Nodes: "0"}}
		}, "allows 0 nodes"},
		{"a target that is itself disrupted", func(_ *world, d *model.DisruptionPlan) {
			d.Nodes, d.NodeClaims = append(d.Nodes, "node-b"), append(d.NodeClaims, "node-b")
		}, "which underutilized-x disrupts"},
		{"savings below the threshold", func(w *world, d *model.DisruptionPlan) {
			for _, n := range w.s.Nodes {
				if n.Name == "node-a" {
					n.PricePerHour = 0.005
				}
			}
			d.SavingsPerHour = 0.005
		}, "below the threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := base()
			d := good()
			tt.edit(w, d)
			errs := validate(w.s, &model.Plan{Disruptions: []*model.DisruptionPlan{d}}, Options{})
			joined := strings.Join(errs, "\n")
			if tt.wantE == "" && len(errs) > 0 {
				t.Errorf("good plan rejected:\n%s", joined)
			}
			if tt.wantE != "" && !strings.Contains(joined, tt.wantE) {
				t.Errorf("errors %q do not mention %q", joined, tt.wantE)
			}
		})
	}
}
