package consolidation

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/google/go-cmp/cmp"
)

// busyNodes is n well-used on-demand m5.large nodes of a WhenEmpty pool
// (so consolidation stays out of drift and expiry tests) with a budget of
// budget nodes, launched at the given ages (oldest first by index).
func busyNodes(n int, budget string) *world {
	p := consolidating("default", onDemandOnly)
	p.Disruption.ConsolidationPolicy = model.ConsolidateWhenEmpty
	p.Disruption.Budgets = []model.DisruptionBudget{{Nodes: budget}}
	w := newWorld(p)
	for i := range n {
		name := fmt.Sprintf("n%d", i)
		nd := w.node(name, "default", "m5.large", testZones[i%3], model.CapacityOnDemand)
		w.claim(name).Created = now.Add(-time.Duration(48-i) * time.Hour)
		nd.Created = w.claim(name).Created
		w.pods(name, "web", 2, 700, 2048)
	}
	return w
}

func TestDrift(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		world      func() *world
		want       []string
		wantReject map[string]string
	}{
		{
			name: "a node class change replaces the oldest nodes within the budget",
			world: func() *world {
				w := busyNodes(4, "1")
				w.s.NodeClasses[0].Hash = "class-v2"
				return w
			},
			want: []string{"n0"},
			wantReject: map[string]string{
				"n1": "drifted (EC2NodeClass default changed since the node was launched), but the disruption budget NodePool default (nodes 1) allows no more now",
			},
		},
		{
			name: "a NodePool template change",
			world: func() *world {
				w := busyNodes(2, "100%")
				w.s.NodePools[0].Hash = "pool-v2"
				return w
			},
			want: []string{"n0", "n1"},
		},
		{
			name: "unchanged hashes are no drift",
			world: func() *world {
				return busyNodes(2, "100%")
			},
		},
		{
			name: "a requirement the node no longer satisfies",
			world: func() *world {
				w := busyNodes(2, "100%")
				w.s.NodePools[0].Requirements = append(w.s.NodePools[0].Requirements,
					model.Requirement{Key: model.LabelZone, Operator: model.OpIn, Values: []string{"us-east-1a"}})
				return w
			},
			want:       []string{"n1"},
			wantReject: map[string]string{},
		},
		{
			name: "an image the node class no longer selects",
			world: func() *world {
				w := busyNodes(2, "100%")
				w.s.NodeClasses[0].Images = []model.Image{{ID: "ami-new"}}
				w.claim("n0").ImageID = "ami-old"
				w.claim("n1").ImageID = "ami-new"
				return w
			},
			want: []string{"n0"},
		},
		{
			name: "do-not-disrupt keeps a drifted node",
			world: func() *world {
				w := busyNodes(2, "100%")
				w.s.NodeClasses[0].Hash = "class-v2"
				withPod("n0", func(p *model.Pod) { p.DoNotDisrupt = true })(w)
				return w
			},
			want:       []string{"n1"},
			wantReject: map[string]string{"n0": "drifted (EC2NodeClass default changed since the node was launched), but pod shop/web-n0-0 has karpenter.sh/do-not-disrupt"},
		},
		{
			name: "a budget of 0 for Drifted blocks, a budget for other reasons does not",
			world: func() *world {
				w := busyNodes(2, "100%")
				w.s.NodeClasses[0].Hash = "class-v2"
				w.s.NodePools[0].Disruption.Budgets = append(w.s.NodePools[0].Disruption.Budgets, model.DisruptionBudget{Nodes: "0", Reasons: []string{"Drifted"}})
				return w
			},
			wantReject: map[string]string{"n0": "(nodes 0, reasons Drifted) allows no more now"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := tt.world()
			plan := w.solve(t, Options{})
			got := disruptedBy(plan)[model.DisruptionDrifted]
			slices.Sort(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("replaced (-want +got):\n%s\nrejections %v", diff, rejections(plan))
			}
			for node, want := range tt.wantReject {
				if r := rejections(plan)[node]; !strings.Contains(r, want) {
					t.Errorf("rejection of %s = %q, want %q", node, r, want)
				}
			}
			for _, d := range plan.Disruptions {
				if d.Reason == model.DisruptionDrifted && len(d.Replacements) == 0 {
					t.Errorf("drift plan %s launches no replacement", d.ID)
				}
				for _, r := range d.Replacements {
					if r.NodeClassHash != w.s.NodeClasses[0].Hash || r.NodePoolHash != w.s.NodePools[0].Hash {
						t.Errorf("replacement %s carries hashes %s/%s, want the current ones", r.Name, r.NodePoolHash, r.NodeClassHash)
					}
				}
			}
		})
	}
}

func TestDriftedPodsMoveToNodesThatStay(t *testing.T) {
	t.Parallel()
	// n0 and n1 drifted (an older pool hash), n2 did not and has room:
	// n0's pods may go to n2 or a new node, never to n1.
	w := busyNodes(3, "1")
	w.claim("n0").NodePoolHash = "pool-v0"
	w.claim("n1").NodePoolHash = "pool-v0"
	w.s.Pods = slices.DeleteFunc(w.s.Pods, func(p *model.Pod) bool { return strings.HasSuffix(p.Name, "-1") && p.NodeName != "n0" })
	plan := w.solve(t, Options{})
	got := disruptedBy(plan)[model.DisruptionDrifted]
	if diff := cmp.Diff([]string{"n0"}, got); diff != "" {
		t.Fatalf("replaced (-want +got):\n%s", diff)
	}
	for _, mv := range plan.Disruptions[0].Moves {
		if mv.Node == "n1" {
			t.Errorf("pods %v move to drifted node n1", mv.Pods)
		}
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	w := busyNodes(2, "100%")
	w.s.NodePools[0].ExpireAfter = 47*time.Hour + 30*time.Minute
	plan := w.solve(t, Options{})
	// n0 is 48h old, n1 47h: n1 expires in 30 minutes.
	if diff := cmp.Diff([]string{"n0"}, disruptedBy(plan)[model.DisruptionExpired]); diff != "" {
		t.Errorf("expired (-want +got):\n%s", diff)
	}
	if want := now.Add(30 * time.Minute); !plan.RecheckAt.Equal(want) {
		t.Errorf("RecheckAt = %v, want %v (when n1 expires)", plan.RecheckAt, want)
	}
	if len(plan.Disruptions) != 1 || len(plan.Disruptions[0].Replacements) == 0 && len(plan.Disruptions[0].Moves) == 0 {
		t.Errorf("expiry plan %+v neither replaces nor moves", plan.Disruptions)
	}
}

// spotWorld is one under-used spot m5.2xlarge in a spot-only pool whose
// pods need a new, smaller node.
func spotWorld(reqs ...model.Requirement) *world {
	spot := model.Requirement{Key: model.LabelCapacityType, Operator: model.OpIn, Values: []string{model.CapacitySpot}}
	w := newWorld(consolidating("default", append([]model.Requirement{spot}, reqs...)...))
	w.node("s", "default", "m5.2xlarge", "us-east-1a", model.CapacitySpot)
	w.pods("s", "web", 2, 250, 512)
	return w
}

func TestSpotToSpot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		world      func() *world
		opts       Options
		replaced   bool
		wantReject string
	}{
		{
			name:       "without the flag a spot node is not replaced by spot",
			world:      func() *world { return spotWorld() },
			wantReject: "spot-to-spot consolidation is off",
		},
		{
			name:     "with the flag and enough cheaper spot types it is",
			world:    func() *world { return spotWorld() },
			opts:     Options{SpotToSpot: true},
			replaced: true,
		},
		{
			name: "with the flag but too few cheaper spot types it is not",
			world: func() *world {
				return spotWorld(model.Requirement{Key: model.LabelInstanceFamily, Operator: model.OpIn, Values: []string{"t3", "m5"}})
			},
			opts:       Options{SpotToSpot: true},
			wantReject: "spot instance types cheaper than",
		},
		{
			name: "without the flag a spot node whose pods fit elsewhere is deleted",
			world: func() *world {
				w := spotWorld()
				w.node("t", "default", "m5.2xlarge", "us-east-1a", model.CapacitySpot)
				w.pods("t", "api", 1, 4000, 8192)
				return w
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := tt.world()
			plan := w.solve(t, tt.opts)
			got := disruptedBy(plan)[model.DisruptionUnderutilized]
			replaced := false
			for _, d := range plan.Disruptions {
				replaced = replaced || len(d.Replacements) > 0
			}
			if replaced != tt.replaced {
				t.Errorf("replaced = %t, want %t (disrupted %v, rejections %v)", replaced, tt.replaced, got, rejections(plan))
			}
			if tt.wantReject != "" && !strings.Contains(rejections(plan)["s"], tt.wantReject) {
				t.Errorf("rejection of s = %q, want %q", rejections(plan)["s"], tt.wantReject)
			}
			if tt.wantReject == "" && !slices.Contains(got, "s") {
				t.Errorf("s not consolidated; rejections %v", rejections(plan))
			}
		})
	}
}

func TestInterruptedNodesAreReplacedWhateverTheBudget(t *testing.T) {
	t.Parallel()
	for _, mark := range []string{"condition", "annotation"} {
		t.Run(mark, func(t *testing.T) {
			t.Parallel()
			w := busyNodes(3, "0")
			withPod("n1", func(p *model.Pod) { p.DoNotDisrupt = true })(w)
			if mark == "condition" {
				w.claim("n1").Conditions = append(w.claim("n1").Conditions, model.Condition{Type: ConditionInterrupted, Status: "True", Reason: "SpotInterruption"})
			} else {
				w.claim("n1").Annotations = map[string]string{AnnotationInterrupted: "SpotInterruption"}
			}
			plan := w.solve(t, Options{})
			if diff := cmp.Diff([]string{"n1"}, disruptedBy(plan)[model.DisruptionInterrupted]); diff != "" {
				t.Fatalf("interrupted (-want +got):\n%s", diff)
			}
			d := plan.Disruptions[0]
			if d.Budget != interruptedBudget {
				t.Errorf("budget = %q", d.Budget)
			}
			moved := 0
			for _, mv := range d.Moves {
				moved += len(mv.Pods)
			}
			if moved != 2 {
				t.Errorf("moves %d pods, want both of n1's", moved)
			}
		})
	}
}

func TestDisruptionInProgressIsRepeated(t *testing.T) {
	t.Parallel()
	w := busyNodes(2, "1")
	w.s.NodeClasses[0].Hash = "class-v2"
	first := w.solve(t, Options{})
	if len(first.Disruptions) != 1 || len(first.Disruptions[0].Replacements) == 0 {
		t.Fatalf("first round: %+v", first.Disruptions)
	}
	d := first.Disruptions[0]
	// The actuator launched the replacements, marked as the contract says;
	// they registered, initialized and are empty.
	for i, r := range d.Replacements {
		n := w.node(r.Name, "default", r.InstanceType, r.Zone, r.CapacityType)
		n.Created, n.LastPodEvent = now.Add(-time.Hour), now.Add(-time.Hour)
		c := w.claim(r.Name)
		c.Annotations = map[string]string{AnnotationReplaces: strings.Join(d.NodeClaims, ","), AnnotationDisruptionReason: "Drifted"}
		c.NodeClassHash = "class-v2"
		if i == 0 {
			c.Conditions = c.Conditions[:1] // still starting
		}
	}
	w.s.Now = now.Add(5 * time.Minute)
	second := w.solve(t, Options{})
	if len(second.Disruptions) != 1 {
		t.Fatalf("second round: %d disruptions, want the first repeated", len(second.Disruptions))
	}
	again := second.Disruptions[0]
	if again.ID != d.ID || !slices.Equal(again.NodeClaims, d.NodeClaims) {
		t.Errorf("repeated plan %s for %v, want %s for %v", again.ID, again.NodeClaims, d.ID, d.NodeClaims)
	}
	var names, want []string
	for _, r := range again.Replacements {
		names = append(names, r.Name)
	}
	for _, r := range d.Replacements {
		want = append(want, r.Name)
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("replacements (-want +got):\n%s", diff)
	}
	// The other drifted node waits: the budget is in use.
	if r := rejections(second)["n1"]; !strings.Contains(r, "allows no more now") {
		t.Errorf("n1 rejection = %q", r)
	}
	// Once the old node is being deleted, nothing is repeated and the
	// replacements, still empty, stay.
	for _, n := range w.s.Nodes {
		if n.Name == d.Nodes[0] {
			n.Deleting = true
		}
	}
	third := w.solve(t, Options{})
	for _, x := range third.Disruptions {
		for _, r := range d.Replacements {
			if slices.Contains(x.Nodes, r.Name) {
				t.Errorf("replacement %s disrupted (%v) while the node it replaces drains", r.Name, x.Reason)
			}
		}
	}
}

func TestPlanIsDeterministic(t *testing.T) {
	t.Parallel()
	build := func() *world {
		w := busyNodes(6, "2")
		w.s.NodeClasses[0].Hash = "class-v2"
		w.s.NodePools[0].Disruption.ConsolidationPolicy = model.ConsolidateWhenEmptyOrUnderutilized
		for i := range 4 {
			name := fmt.Sprintf("u%d", i)
			w.node(name, "default", "m5.xlarge", "us-east-1b", model.CapacityOnDemand)
			w.pods(name, "api", 1, 300, 512)
		}
		return w
	}
	a, b := build().solve(t, Options{}), build().solve(t, Options{})
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("two runs differ:\n%s", diff)
	}
	if len(a.Disruptions) == 0 {
		t.Errorf("no disruptions planned")
	}
}

func TestPlanHonoursCancellation(t *testing.T) {
	t.Parallel()
	w := halfEmpty()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Plan(ctx, w.s, &model.Plan{}, Options{}); err == nil {
		t.Errorf("Plan with a cancelled context returned nil")
	}
}

func TestActuatorMarksOnOldNodeClaims(t *testing.T) {
	t.Parallel()
	t.Run("a disruption the actuator began holds its node and the budget", func(t *testing.T) {
		t.Parallel()
		w := busyNodes(3, "1")
		w.s.NodeClasses[0].Hash = "class-v2"
		w.claim("n2").Annotations = map[string]string{AnnotationDisruption: "drifted-0123456789", AnnotationDisruptionReason: "Drifted"}
		plan := w.solve(t, Options{})
		if len(plan.Disruptions) != 0 {
			t.Errorf("planned %v while n2's disruption uses the budget", disruptedBy(plan))
		}
		if r := rejections(plan)["n0"]; !strings.Contains(r, "allows no more now") {
			t.Errorf("n0 rejection = %q", r)
		}
		if _, ok := rejections(plan)["n2"]; ok {
			t.Errorf("n2, being disrupted, got a rejection")
		}
	})
	t.Run("a disruption called off is not planned again within the cool-down", func(t *testing.T) {
		t.Parallel()
		w := busyNodes(2, "100%")
		w.s.NodeClasses[0].Hash = "class-v2"
		calledOff := now.Add(-2 * time.Minute)
		w.claim("n0").Annotations = map[string]string{AnnotationCalledOffAt: calledOff.Format(time.RFC3339)}
		plan := w.solve(t, Options{})
		if diff := cmp.Diff([]string{"n1"}, disruptedBy(plan)[model.DisruptionDrifted]); diff != "" {
			t.Errorf("drifted (-want +got):\n%s", diff)
		}
		if r := rejections(plan)["n0"]; !strings.Contains(r, "was called off at") {
			t.Errorf("n0 rejection = %q", r)
		}
		if want := calledOff.Add(CoolDown); !plan.RecheckAt.Equal(want) {
			t.Errorf("RecheckAt = %v, want the end of the cool-down %v", plan.RecheckAt, want)
		}
		w.s.Now = now.Add(4 * time.Minute)
		if got := disruptedBy(w.solve(t, Options{}))[model.DisruptionDrifted]; !slices.Contains(got, "n0") {
			t.Errorf("after the cool-down n0 is not replaced: %v", got)
		}
	})
}

func TestReplacementsCountAgainstLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cpuLimit int64
		want     []string
		reject   string
	}{
		// Two m5.large (4 cpu) drifted; n0's pods take two t3.medium (4
		// cpu), launched while both old nodes still count.
		{"room under the limit for the replacements", 8000, []string{"n0"}, ""},
		{"no room under the limit", 5000, nil, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := busyNodes(2, "1")
			w.s.NodeClasses[0].Hash = "class-v2"
			w.s.NodePools[0].Limits = map[string]int64{model.ResourceCPU: tt.cpuLimit}
			plan := w.solve(t, Options{})
			if diff := cmp.Diff(tt.want, disruptedBy(plan)[model.DisruptionDrifted]); diff != "" {
				t.Errorf("replaced (-want +got):\n%s\nrejections %v", diff, rejections(plan))
			}
			if tt.reject != "" && !strings.Contains(rejections(plan)["n0"], tt.reject) {
				t.Errorf("n0 rejection = %q, want it to mention %q", rejections(plan)["n0"], tt.reject)
			}
		})
	}
}

func TestPodsMovingToCapacityInFlightWaitForIt(t *testing.T) {
	t.Parallel()
	w := newWorld(consolidating("default", onDemandOnly, model.Requirement{Key: model.LabelInstanceType, Operator: model.OpIn, Values: []string{"t3.large"}}))
	w.node("a", "default", "t3.large", "us-east-1a", model.CapacityOnDemand)
	w.pods("a", "web", 2, 400, 1024)
	// A t3.large on its way, launched for pods that have since gone.
	w.s.NodeClaims = append(w.s.NodeClaims, &model.NodeClaim{Name: "default-inflight", NodePool: "default", NodeClass: "default",
		InstanceType: "t3.large", Zone: "us-east-1a", CapacityType: model.CapacityOnDemand, Created: now.Add(-20 * time.Second), PricePerHour: 0.0832,
		Requirements: []model.Requirement{{Key: model.LabelInstanceType, Operator: model.OpIn, Values: []string{"t3.large"}}},
		Conditions:   []model.Condition{{Type: "Launched", Status: "True"}}})
	plan := w.solve(t, Options{})
	if diff := cmp.Diff([]string{"a"}, disruptedBy(plan)[model.DisruptionUnderutilized]); diff != "" {
		t.Fatalf("consolidated (-want +got):\n%s\nrejections %v", diff, rejections(plan))
	}
	d := plan.Disruptions[0]
	if len(d.Replacements) != 1 || d.Replacements[0].Name != "default-inflight" {
		t.Errorf("replacements %v, want the in-flight NodeClaim to wait for", d.Replacements)
	}
	if len(d.Moves) != 1 || !d.Moves[0].InFlight || d.Moves[0].Node != "default-inflight" {
		t.Errorf("moves %+v, want the pods on the in-flight NodeClaim", d.Moves)
	}
}
