package consolidation

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/flotilla-dev/flotilla/services/planner/internal/provisioning"
)

// sim is a simulated cluster the solvers run against in rounds, as the
// watcher would ask them: each round solves, checks the answer with the
// validator, and applies it at once (new nodes come up ready, pods move,
// disrupted nodes go), then the clock moves on.
type sim struct {
	t    testing.TB
	w    *world
	opts Options
	tick time.Duration
	// disruptions counts disrupted nodes per reason.
	disruptions map[model.DisruptionReason]int
	// touched is when a node last got pods moved onto it or was launched.
	touched map[string]time.Time
	// rounds counts the rounds run.
	rounds int
}

func newSim(t testing.TB, w *world, opts Options) *sim {
	return &sim{t: t, w: w, opts: opts, tick: 10 * time.Second, disruptions: map[model.DisruptionReason]int{}, touched: map[string]time.Time{}}
}

// round runs the solvers once, applies the answer and advances the clock.
func (m *sim) round() *model.Plan {
	m.t.Helper()
	plan := m.w.solve(m.t, m.opts)
	if len(plan.Unschedulable) > 0 {
		m.t.Fatalf("round %d: %d pods unschedulable, e.g. %s: %s", m.rounds, len(plan.Unschedulable), plan.Unschedulable[0].Pod, plan.Unschedulable[0].Reason)
	}
	m.apply(plan)
	m.w.s.Now = m.w.s.Now.Add(m.tick)
	m.rounds++
	return plan
}

// apply carries out a plan: NodeClaims become ready nodes, placed and moved
// pods bind, disrupted nodes and their NodeClaims go.
func (m *sim) apply(plan *model.Plan) {
	s := m.w.s
	changed := map[string]bool{}
	for _, nc := range plan.NodeClaims {
		m.launch(nc)
		m.bind(nc.Name, nc.Pods, changed)
	}
	for _, pl := range plan.Placements {
		m.bind(pl.Node, pl.Pods, changed)
	}
	for _, d := range plan.Disruptions {
		for _, r := range d.Replacements {
			if m.w.claim(r.Name) == nil {
				m.launch(r)
			}
		}
		for _, mv := range d.Moves {
			m.bind(mv.Node, mv.Pods, changed)
			m.touched[mv.Node] = s.Now
		}
		for _, name := range d.Nodes {
			if last, ok := m.touched[name]; ok && s.Now.Sub(last) < m.w.pool(m.poolOf(name)).Disruption.ConsolidateAfter {
				m.t.Errorf("node %s disrupted (%v) %v after pods were moved onto it, within consolidateAfter", name, d.Reason, s.Now.Sub(last))
			}
			m.disruptions[d.Reason]++
		}
		gone := map[string]bool{}
		for _, name := range d.Nodes {
			gone[name] = true
		}
		s.Nodes = slices.DeleteFunc(s.Nodes, func(n *model.Node) bool { return gone[n.Name] })
		s.NodeClaims = slices.DeleteFunc(s.NodeClaims, func(c *model.NodeClaim) bool { return gone[c.Name] })
		for _, p := range s.Pods {
			if gone[p.NodeName] {
				m.t.Errorf("pod %s/%s left on disrupted node %s", p.Namespace, p.Name, p.NodeName)
				p.NodeName, p.Phase = "", model.PodPending
			}
		}
	}
	for _, n := range s.Nodes {
		if changed[n.Name] {
			n.LastPodEvent = s.Now
		}
	}
}

func (m *sim) poolOf(node string) string {
	for _, n := range m.w.s.Nodes {
		if n.Name == node {
			return n.NodePool()
		}
	}
	return ""
}

// launch brings a planned NodeClaim up as a ready node.
func (m *sim) launch(nc *model.NodeClaimPlan) {
	s := m.w.s
	n := m.w.node(nc.Name, nc.NodePool, nc.InstanceType, nc.Zone, nc.CapacityType)
	n.Created, n.LastPodEvent = s.Now, s.Now
	for k, v := range nc.Labels {
		n.Labels[k] = v
	}
	c := m.w.claim(nc.Name)
	c.Created, c.NodePoolHash, c.NodeClassHash = s.Now, nc.NodePoolHash, nc.NodeClassHash
	m.touched[nc.Name] = s.Now
}

func (m *sim) bind(node string, pods []string, changed map[string]bool) {
	keys := map[string]bool{}
	for _, k := range pods {
		keys[k] = true
	}
	for _, p := range m.w.s.Pods {
		if keys[p.Namespace+"/"+p.Name] {
			if p.NodeName != "" {
				changed[p.NodeName] = true
			}
			p.NodeName, p.Phase, p.NominatedNodeClaim = node, model.PodRunning, ""
			changed[node] = true
		}
	}
}

// cost sums the nodes' prices.
func (m *sim) cost() float64 {
	c := 0.0
	for _, n := range m.w.s.Nodes {
		c += n.PricePerHour
	}
	return c
}

// mixedWorkload adds pending Deployments of mixed shapes and constraints to
// the world: plain, zone-spread, and hostname anti-affine ones.
func mixedWorkload(w *world, deployments int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	cpus := []int64{250, 500, 750, 1000, 1500, 2000}
	mems := []int64{256, 512, 1024, 2048, 4096, 6144}
	for d := range deployments {
		app := fmt.Sprintf("app%02d", d)
		cpu, mem := cpus[r.IntN(len(cpus))], mems[r.IntN(len(mems))]
		replicas := 4 + r.IntN(16)
		sel := &model.LabelSelector{Requirements: []model.Requirement{{Key: "app", Operator: model.OpIn, Values: []string{app}}}}
		for i := range replicas {
			p := &model.Pod{Namespace: "shop", Name: fmt.Sprintf("%s-%d", app, i), Phase: model.PodPending,
				Labels: map[string]string{"app": app}, OwnerKind: "ReplicaSet", OwnerName: app,
				Containers: []model.Container{{Name: "app", Requests: model.Resources{CPU: cpu, Memory: mem << 20}}}}
			switch d % 4 {
			case 1:
				p.TopologySpread = []model.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: model.LabelZone, DoNotSchedule: true, Selector: sel}}
			case 2:
				if replicas <= 12 {
					p.PodAntiAffinity = []model.PodAffinityTerm{{TopologyKey: model.LabelHostname, Selector: sel}}
				}
			}
			w.s.Pods = append(w.s.Pods, p)
		}
	}
}

// scaleDown deletes about half of every Deployment's pods.
func scaleDown(w *world, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 11))
	w.s.Pods = slices.DeleteFunc(w.s.Pods, func(p *model.Pod) bool { return r.IntN(2) == 0 })
	for _, n := range w.s.Nodes {
		n.LastPodEvent = w.s.Now
	}
}

// settle runs rounds until the solvers plan nothing for quiet rounds in a
// row, at most max rounds; it returns the rounds run.
func (m *sim) settle(quiet, max int) int {
	calm := 0
	for i := range max {
		plan := m.round()
		if len(plan.Disruptions) == 0 && len(plan.NodeClaims) == 0 {
			calm++
			if calm == quiet {
				return i + 1
			}
		} else {
			calm = 0
		}
	}
	return max
}

// offline is the cost of the best repack the provisioning solver finds for
// the world's pods from scratch: every pod pending, no nodes.
func offline(t testing.TB, w *world) (float64, int) {
	t.Helper()
	s := *w.s
	s.Nodes, s.NodeClaims = nil, nil
	s.Pods = nil
	for _, p := range w.s.Pods {
		q := *p
		q.NodeName, q.Phase = "", model.PodPending
		s.Pods = append(s.Pods, &q)
	}
	plan, err := provisioning.Solve(context.Background(), &s)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Unschedulable) > 0 {
		t.Fatalf("offline repack leaves %d pods out", len(plan.Unschedulable))
	}
	return plan.TotalPricePerHour, len(plan.NodeClaims)
}

func TestSteadyWorkloadCausesNoChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("30 minutes of simulated rounds")
	}
	t.Parallel()
	w := newWorld(consolidating("default", onDemandOnly))
	w.pool("default").Disruption.Budgets = nil // Karpenter's default 10 %
	mixedWorkload(w, 24, 1)
	m := newSim(t, w, Options{})
	m.round() // provision
	nodes := len(w.s.Nodes)
	for range 30 * 60 / 10 {
		m.round()
	}
	total := 0
	for _, k := range m.disruptions {
		total += k
	}
	t.Logf("steady workload: %d pods on %d nodes ($%.3f/h), %d rounds over 30 simulated minutes, %d disruptions",
		len(w.s.Pods), nodes, m.cost(), m.rounds-1, total)
	if total != 0 {
		t.Errorf("a steady workload was disrupted %d times: %v", total, m.disruptions)
	}
}

func TestScaleDownConsolidatesCloseToTheBestRepack(t *testing.T) {
	if testing.Short() {
		t.Skip("hundreds of simulated rounds")
	}
	t.Parallel()
	w := newWorld(consolidating("default", onDemandOnly))
	w.pool("default").Disruption.Budgets = nil // Karpenter's default 10 %
	mixedWorkload(w, 18, 3)
	m := newSim(t, w, Options{})
	m.round()
	before, nodesBefore := m.cost(), len(w.s.Nodes)
	scaleDown(w, 5)
	rounds := m.settle(12, 400)
	after, nodesAfter := m.cost(), len(w.s.Nodes)
	best, bestNodes := offline(t, w)
	ratio := after / best
	t.Logf("scale-down: %d nodes $%.3f/h; half the pods removed (%d left); after %d rounds (%v simulated): %d nodes $%.3f/h; offline repack %d nodes $%.3f/h; ratio %.3f; disruptions %v",
		nodesBefore, before, len(w.s.Pods), rounds, time.Duration(rounds)*m.tick, nodesAfter, after, bestNodes, best, ratio, m.disruptions)
	if ratio > 1.10 {
		t.Errorf("consolidated cluster costs %.3f× the offline repack, want ≤ 1.10×", ratio)
	}
	if nodesBefore < 80 {
		t.Errorf("the workload ran on %d nodes; the scenario wants about 100", nodesBefore)
	}
}

func TestDriftReplacesEveryNodeOneBudgetAtATime(t *testing.T) {
	t.Parallel()
	w := busyNodes(12, "2")
	m := newSim(t, w, Options{})
	m.round()
	w.s.NodeClasses[0].Hash = "class-v2"
	for i := 0; ; i++ {
		if i > 30 {
			t.Fatalf("nodes still drifted after %d rounds", i)
		}
		plan := m.round()
		drifted := disruptedBy(plan)[model.DisruptionDrifted]
		if len(drifted) > 2 {
			t.Errorf("round %d replaces %d drifted nodes, the budget allows 2", i, len(drifted))
		}
		old := 0
		for _, c := range w.s.NodeClaims {
			if c.NodeClassHash != "class-v2" {
				old++
			}
		}
		if old == 0 {
			if i < 5 {
				t.Errorf("all 12 nodes replaced in %d rounds with a budget of 2", i+1)
			}
			t.Logf("drift: 12 nodes replaced in %d rounds, %d drift disruptions, %d nodes now", i+1, m.disruptions[model.DisruptionDrifted], len(w.s.Nodes))
			break
		}
	}
	for _, c := range w.s.NodeClaims {
		if !strings.HasPrefix(c.NodeClassHash, "class-v2") {
			t.Errorf("NodeClaim %s still has %s", c.Name, c.NodeClassHash)
		}
	}
}
