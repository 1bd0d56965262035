package consolidation

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/google/go-cmp/cmp"
)

// halfEmpty is two on-demand t3.large nodes of pool "default", each
// running two pods of a Deployment that one t3.large holds together: the
// cheapest arrangement deletes one node.
func halfEmpty() *world {
	w := newWorld(consolidating("default", onDemandOnly))
	w.node("node-a", "default", "t3.large", "us-east-1a", model.CapacityOnDemand)
	w.node("node-b", "default", "t3.large", "us-east-1a", model.CapacityOnDemand)
	w.pods("node-a", "web", 2, 400, 1024)
	w.pods("node-b", "api", 2, 400, 1024)
	return w
}

func withPod(node string, edit func(p *model.Pod)) func(*world) {
	return func(w *world) {
		for _, p := range w.s.Pods {
			if p.NodeName == node {
				edit(p)
				return
			}
		}
	}
}

func TestUnderutilized(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		world  func() *world
		opts   Options
		want   []string          // nodes consolidated
		reject map[string]string // node → a substring of its rejection
		// replaced says the plan launches replacements.
		replaced bool
	}{
		{
			name:   "pods of one node move to the room on the other",
			world:  halfEmpty,
			want:   []string{"node-a"},
			reject: map[string]string{"node-b": "no cheaper place"},
		},
		{
			name: "two nodes are replaced by one cheaper node when that saves more than deleting one",
			world: func() *world {
				w := newWorld(consolidating("default", onDemandOnly))
				w.node("node-a", "default", "m5.xlarge", "us-east-1a", model.CapacityOnDemand)
				w.node("node-b", "default", "m5.xlarge", "us-east-1a", model.CapacityOnDemand)
				w.pods("node-a", "web", 2, 500, 1024)
				w.pods("node-b", "api", 2, 500, 1024)
				return w
			},
			want:     []string{"node-a", "node-b"},
			replaced: true,
		},
		{
			name: "do-not-disrupt blocks",
			world: func() *world {
				w := halfEmpty()
				for _, p := range w.s.Pods {
					p.DoNotDisrupt = true
				}
				return w
			},
			reject: map[string]string{"node-a": "pod shop/web-node-a-0 has karpenter.sh/do-not-disrupt", "node-b": "pod shop/api-node-b-0 has karpenter.sh/do-not-disrupt"},
		},
		{
			name: "do-not-disrupt on one node leaves the other",
			world: func() *world {
				w := halfEmpty()
				withPod("node-a", func(p *model.Pod) { p.DoNotDisrupt = true })(w)
				return w
			},
			want:   []string{"node-b"},
			reject: map[string]string{"node-a": "has karpenter.sh/do-not-disrupt"},
		},
		{
			name: "a PDB with zero disruptions allowed blocks",
			world: func() *world {
				w := halfEmpty()
				w.s.PodDisruptionBudgets = []*model.PodDisruptionBudget{
					{Namespace: "shop", Name: "web", Selector: &model.LabelSelector{Requirements: []model.Requirement{{Key: "app", Operator: model.OpIn, Values: []string{"web"}}}}},
					{Namespace: "shop", Name: "api", Selector: &model.LabelSelector{Requirements: []model.Requirement{{Key: "app", Operator: model.OpIn, Values: []string{"api"}}}}},
				}
				return w
			},
			reject: map[string]string{"node-a": "PDB shop/web allows 0 disruptions", "node-b": "PDB shop/api allows 0 disruptions"},
		},
		{
			name: "a PDB allowing fewer disruptions than the node's pods blocks",
			world: func() *world {
				w := halfEmpty()
				w.s.PodDisruptionBudgets = []*model.PodDisruptionBudget{
					{Namespace: "shop", Name: "web", DisruptionsAllowed: 1, Selector: &model.LabelSelector{Requirements: []model.Requirement{{Key: "app", Operator: model.OpIn, Values: []string{"web"}}}}},
				}
				return w
			},
			want:   []string{"node-b"},
			reject: map[string]string{"node-a": "PDB shop/web allows 1 disruption, and 2 of its pods run here"},
		},
		{
			name: "a pod without a controller blocks",
			world: func() *world {
				w := halfEmpty()
				withPod("node-a", func(p *model.Pod) { p.OwnerKind, p.OwnerName = "", "" })(w)
				return w
			},
			want:   []string{"node-b"},
			reject: map[string]string{"node-a": "has no controller"},
		},
		{
			name: "local storage blocks unless allowed",
			world: func() *world {
				w := halfEmpty()
				for _, p := range w.s.Pods {
					p.LocalStorage = true
				}
				return w
			},
			reject: map[string]string{"node-a": "uses local storage", "node-b": "uses local storage"},
		},
		{
			name: "local storage allowed",
			world: func() *world {
				w := halfEmpty()
				for _, p := range w.s.Pods {
					p.LocalStorage = true
				}
				return w
			},
			opts: Options{AllowLocalStorage: true},
			want: []string{"node-a"},
		},
		{
			name: "nodes whose pods changed within consolidateAfter are not candidates",
			world: func() *world {
				w := halfEmpty()
				for _, n := range w.s.Nodes {
					n.LastPodEvent = now.Add(-10 * time.Second)
				}
				return w
			},
		},
		{
			name: "WhenEmpty pools keep under-utilised nodes",
			world: func() *world {
				w := halfEmpty()
				w.s.NodePools[0].Disruption.ConsolidationPolicy = model.ConsolidateWhenEmpty
				return w
			},
		},
		{
			name: "a pod pinned to its node cannot move",
			world: func() *world {
				w := halfEmpty()
				withPod("node-a", func(p *model.Pod) { p.NodeSelector = map[string]string{model.LabelHostname: "node-a"} })(w)
				return w
			},
			want:   []string{"node-b"},
			reject: map[string]string{"node-a": "could not be placed elsewhere"},
		},
		{
			name: "an expensive node with little on it is replaced by a cheaper one",
			world: func() *world {
				w := newWorld(consolidating("default", onDemandOnly))
				w.node("big", "default", "m5.4xlarge", "us-east-1a", model.CapacityOnDemand)
				w.pods("big", "web", 2, 500, 1024)
				return w
			},
			want:     []string{"big"},
			replaced: true,
		},
		{
			name: "two well-used nodes stay when no other arrangement is cheaper",
			world: func() *world {
				w := newWorld(consolidating("default", onDemandOnly, model.Requirement{Key: model.LabelInstanceFamily, Operator: model.OpIn, Values: []string{"m5"}}))
				w.node("node-a", "default", "m5.xlarge", "us-east-1a", model.CapacityOnDemand)
				w.node("node-b", "default", "m5.xlarge", "us-east-1a", model.CapacityOnDemand)
				w.pods("node-a", "web", 3, 1000, 4096)
				w.pods("node-b", "api", 3, 1000, 4096)
				return w
			},
			reject: map[string]string{"node-a": "no cheaper place for its pods was found"},
		},
		{
			name: "savings below the threshold are not worth a disruption",
			world: func() *world {
				// Room on m6a.large "b" seems to take a's pod, but
				// anti-affinity keeps it off; a new m5a.large would save
				// $0.0004/h.
				w := newWorld(consolidating("default", onDemandOnly, model.Requirement{Key: model.LabelInstanceType, Operator: model.OpIn, Values: []string{"m5a.large", "m6a.large"}}))
				w.node("a", "default", "m6a.large", "us-east-1a", model.CapacityOnDemand)
				w.node("b", "default", "m6a.large", "us-east-1a", model.CapacityOnDemand)
				anti := func(p *model.Pod) {
					p.PodAntiAffinity = []model.PodAffinityTerm{{TopologyKey: model.LabelHostname,
						Selector: &model.LabelSelector{Requirements: []model.Requirement{{Key: "app", Operator: model.OpIn, Values: []string{"web"}}}}}}
				}
				w.pods("a", "web", 1, 1000, 3072, anti)
				w.pods("b", "web", 1, 1000, 3072, anti)
				return w
			},
			reject: map[string]string{"a": "would save $0.0004/h, below the $0.0100/h minimum"},
		},
		{
			name: "a node that receives pending pods in the same answer is not a candidate",
			world: func() *world {
				w := halfEmpty()
				w.s.Pods = append(w.s.Pods, &model.Pod{Namespace: "shop", Name: "new", Phase: model.PodPending, OwnerKind: "ReplicaSet", OwnerName: "new",
					NodeSelector: map[string]string{model.LabelHostname: "node-a"},
					Containers:   []model.Container{{Requests: model.Resources{CPU: 100, Memory: 100 << 20}}}})
				return w
			},
			want: []string{"node-b"},
		},
		{
			name: "the budget caps the nodes consolidated at once",
			world: func() *world {
				w := newWorld(consolidating("default", onDemandOnly))
				w.s.NodePools[0].Disruption.Budgets = []model.DisruptionBudget{{Nodes: "2"}}
				for i := range 6 {
					name := fmt.Sprintf("n%d", i)
					w.node(name, "default", "m5.xlarge", "us-east-1a", model.CapacityOnDemand)
					w.pods(name, "web", 1, 500, 1024)
				}
				return w
			},
			want: []string{"n0", "n1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := tt.world()
			plan := w.solve(t, tt.opts)
			got := disruptedBy(plan)[model.DisruptionUnderutilized]
			slices.Sort(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("consolidated nodes (-want +got):\n%s\nrejections: %v", diff, rejections(plan))
			}
			rej := rejections(plan)
			for node, want := range tt.reject {
				if !strings.Contains(rej[node], want) {
					t.Errorf("rejection of %s = %q, want it to mention %q", node, rej[node], want)
				}
			}
			replaced := false
			for _, d := range plan.Disruptions {
				replaced = replaced || len(d.Replacements) > 0
				if d.Reason == model.DisruptionUnderutilized && d.SavingsPerHour <= 0 {
					t.Errorf("consolidation %s saves %v", d.ID, d.SavingsPerHour)
				}
			}
			if replaced != tt.replaced {
				t.Errorf("replacements launched = %t, want %t", replaced, tt.replaced)
			}
		})
	}
}
