package provisioning_test

import (
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

func antiAffinity(key string, s *model.LabelSelector) podOpt {
	return func(p *model.Pod) {
		p.PodAntiAffinity = append(p.PodAntiAffinity, model.PodAffinityTerm{Selector: s, TopologyKey: key})
	}
}

func affinity(key string, s *model.LabelSelector) podOpt {
	return func(p *model.Pod) {
		p.PodAffinity = append(p.PodAffinity, model.PodAffinityTerm{Selector: s, TopologyKey: key})
	}
}

func spread(key string, skew int32, hard bool, s *model.LabelSelector) podOpt {
	return func(p *model.Pod) {
		p.TopologySpread = append(p.TopologySpread, model.TopologySpreadConstraint{MaxSkew: skew, TopologyKey: key, DoNotSchedule: hard, Selector: s})
	}
}

// hosts returns, per pod, the NodeClaim or node it went to, and per
// NodeClaim its zone.
func hosts(p *model.Plan) (podHost map[string]string, zone map[string]string) {
	podHost, zone = map[string]string{}, map[string]string{}
	for _, nc := range p.NodeClaims {
		zone[nc.Name] = nc.Zone
		for _, k := range nc.Pods {
			podHost[k] = nc.Name
		}
	}
	for _, pl := range p.Placements {
		for _, k := range pl.Pods {
			podHost[k] = pl.Node
		}
	}
	return podHost, zone
}

func TestSolveAntiAffinity(t *testing.T) {
	t.Parallel()
	web := []podOpt{labels("app", "web"), antiAffinity(model.LabelHostname, sel("app", "web"))}
	ps := append(pods("web", 6, 500, 512, web...), pods("filler", 30, 250, 256)...)
	p := solve(t, snapshot(ps))
	podHost, _ := hosts(p)
	seen := map[string]bool{}
	for k, h := range podHost {
		if strings.HasPrefix(k, "default/web") {
			if seen[h] {
				t.Errorf("two web pods on %s", h)
			}
			seen[h] = true
		}
	}
	if len(seen) != 6 {
		t.Errorf("web pods on %d nodes, want 6", len(seen))
	}
	t.Run("zone anti-affinity allows one per zone", func(t *testing.T) {
		t.Parallel()
		p := solve(t, snapshot(pods("db", 4, 500, 512, labels("app", "db"), antiAffinity(model.LabelZone, sel("app", "db")))))
		if len(p.Unschedulable) != 1 {
			t.Errorf("got %d unschedulable, want 1 (three zones)", len(p.Unschedulable))
		}
	})
	t.Run("bound pod's anti-affinity keeps others away", func(t *testing.T) {
		t.Parallel()
		s := snapshot([]*model.Pod{
			pod("guard", 100, 100, labels("app", "guard"), antiAffinity(model.LabelHostname, sel("app", "web")), func(p *model.Pod) { p.NodeName = "n1" }),
			pod("web", 100, 100, labels("app", "web")),
		})
		s.Nodes = []*model.Node{{Name: "n1", Labels: map[string]string{model.LabelHostname: "n1"}, Allocatable: model.Resources{CPU: 4000, Memory: 8 * gib, Pods: 10}}}
		p := solve(t, s)
		if len(p.Placements) != 0 || len(p.NodeClaims) != 1 {
			t.Errorf("web went next to the guard: %+v", p.Placements)
		}
	})
}

func TestSolveAffinity(t *testing.T) {
	t.Parallel()
	db := pods("db", 1, 1000, 1024, labels("app", "db"))
	cache := pods("cache", 4, 500, 512, labels("app", "cache"), affinity(model.LabelZone, sel("app", "db")))
	// Cache pods come first in the input; they still find the db's zone.
	p := solve(t, snapshot(append(cache, db...)))
	podHost, zone := hosts(p)
	dbZone := zone[podHost["default/db-000"]]
	for _, c := range cache {
		if z := zone[podHost["default/"+c.Name]]; z != dbZone {
			t.Errorf("%s in %s, db in %s", c.Name, z, dbZone)
		}
	}
	t.Run("hostname affinity shares the node", func(t *testing.T) {
		t.Parallel()
		p := solve(t, snapshot(append(pods("side", 2, 200, 200, affinity(model.LabelHostname, sel("app", "db"))), db...)))
		podHost, _ := hosts(p)
		if podHost["default/side-000"] != podHost["default/db-000"] || podHost["default/side-001"] != podHost["default/db-000"] {
			t.Errorf("sidecars not with the db: %v", podHost)
		}
	})
	t.Run("nothing to follow", func(t *testing.T) {
		t.Parallel()
		p := solve(t, snapshot(pods("lonely", 1, 100, 100, affinity(model.LabelZone, sel("app", "nowhere")))))
		if r := reasons(p)["default/lonely-000"]; !strings.Contains(r, "pod affinity to app=nowhere") {
			t.Errorf("reason %q", r)
		}
	})
	t.Run("self affinity starts a group", func(t *testing.T) {
		t.Parallel()
		p := solve(t, snapshot(pods("grp", 5, 500, 512, labels("app", "grp"), affinity(model.LabelZone, sel("app", "grp")))))
		_, zone := hosts(p)
		zs := map[string]bool{}
		for _, z := range zone {
			zs[z] = true
		}
		if len(p.Unschedulable) != 0 || len(zs) != 1 {
			t.Errorf("unschedulable %v, zones %v", reasons(p), zs)
		}
	})
}

func TestSolveSpread(t *testing.T) {
	t.Parallel()
	t.Run("zones", func(t *testing.T) {
		t.Parallel()
		p := solve(t, snapshot(pods("web", 10, 500, 512, labels("app", "web"), spread(model.LabelZone, 1, true, sel("app", "web")))))
		podHost, zone := hosts(p)
		count := map[string]int{}
		for _, h := range podHost {
			count[zone[h]]++
		}
		if len(count) != 3 || count["us-east-1a"] < 3 || count["us-east-1b"] < 3 || count["us-east-1c"] < 3 {
			t.Errorf("per zone %v, want 3/3/4 in some order", count)
		}
	})
	t.Run("hostname", func(t *testing.T) {
		t.Parallel()
		p := solve(t, snapshot(pods("web", 5, 100, 128, labels("app", "web"), spread(model.LabelHostname, 1, true, sel("app", "web")))))
		if len(p.NodeClaims) != 5 {
			t.Errorf("got %d nodes, want 5 (maxSkew 1 over new nodes)", len(p.NodeClaims))
		}
	})
	t.Run("counts existing pods", func(t *testing.T) {
		t.Parallel()
		s := snapshot(pods("web", 3, 500, 512, labels("app", "web"), spread(model.LabelZone, 1, true, sel("app", "web"))))
		s.Nodes = []*model.Node{{Name: "n1", Labels: map[string]string{model.LabelZone: "us-east-1a"}, Allocatable: model.Resources{CPU: 1000, Memory: gib, Pods: 10}}}
		for i := range 2 {
			s.Pods = append(s.Pods, pod("old-"+string(rune('a'+i)), 100, 100, labels("app", "web"), func(p *model.Pod) { p.NodeName = "n1" }))
		}
		p := solve(t, s)
		_, zone := hosts(p)
		for _, z := range zone {
			if z == "us-east-1a" {
				t.Errorf("new pod in us-east-1a, which already has 2")
			}
		}
	})
	t.Run("capacity type", func(t *testing.T) {
		t.Parallel()
		p := solve(t, snapshot(pods("web", 4, 500, 512, labels("app", "web"), spread(model.LabelCapacityType, 1, true, sel("app", "web"))), pool("default")))
		cts := map[string]int{}
		for _, nc := range p.NodeClaims {
			cts[nc.CapacityType] += len(nc.Pods)
		}
		if cts[model.CapacitySpot] != 2 || cts[model.CapacityOnDemand] != 2 {
			t.Errorf("per capacity type %v, want 2/2", cts)
		}
	})
	t.Run("plain pods matching the selector keep the skew", func(t *testing.T) {
		t.Parallel()
		ps := append(pods("owner", 3, 200, 200, labels("app", "web"), spread(model.LabelHostname, 1, true, sel("app", "web"))),
			pods("plain", 6, 200, 200, labels("app", "web"))...)
		solve(t, snapshot(ps)) // the validator checks the final skew
	})
}

func TestSolvePreferences(t *testing.T) {
	t.Parallel()
	t.Run("preferred node affinity honoured", func(t *testing.T) {
		t.Parallel()
		p := solve(t, snapshot([]*model.Pod{pod("a", 500, 512, func(p *model.Pod) {
			p.NodeAffinity.Preferred = []model.WeightedNodeSelectorTerm{{Weight: 10, Term: model.NodeSelectorTerm{Requirements: []model.Requirement{req(model.LabelInstanceFamily, model.OpIn, "r5")}}}}
		})}))
		if got := p.NodeClaims[0].InstanceType; got != "r5.large" {
			t.Errorf("got %s, want r5.large", got)
		}
	})
	t.Run("impossible preference relaxed", func(t *testing.T) {
		t.Parallel()
		p := solve(t, snapshot([]*model.Pod{pod("a", 500, 512, func(p *model.Pod) {
			p.NodeAffinity.Preferred = []model.WeightedNodeSelectorTerm{{Weight: 10, Term: model.NodeSelectorTerm{Requirements: []model.Requirement{req(model.LabelInstanceFamily, model.OpIn, "z1")}}}}
		})}))
		if len(p.NodeClaims) != 1 {
			t.Errorf("pod not placed: %v", reasons(p))
		}
	})
	t.Run("lowest weight given up first", func(t *testing.T) {
		t.Parallel()
		p := solve(t, snapshot([]*model.Pod{pod("a", 500, 512, func(p *model.Pod) {
			p.NodeAffinity.Preferred = []model.WeightedNodeSelectorTerm{
				{Weight: 90, Term: model.NodeSelectorTerm{Requirements: []model.Requirement{req(model.LabelInstanceFamily, model.OpIn, "c5")}}},
				{Weight: 10, Term: model.NodeSelectorTerm{Requirements: []model.Requirement{req(model.LabelInstanceFamily, model.OpIn, "r5")}}},
			}
		})}))
		if got := p.NodeClaims[0].InstanceType; got != "c5.large" {
			t.Errorf("got %s, want c5.large (weight 90 kept)", got)
		}
	})
	t.Run("preferred anti-affinity spreads while possible", func(t *testing.T) {
		t.Parallel()
		p := solve(t, snapshot(pods("w", 3, 500, 512, labels("app", "w"), func(p *model.Pod) {
			p.PreferredPodAntiAffinity = []model.WeightedPodAffinityTerm{{Weight: 50, Term: model.PodAffinityTerm{Selector: sel("app", "w"), TopologyKey: model.LabelHostname}}}
		})))
		if len(p.NodeClaims) != 3 {
			t.Errorf("got %d nodes, want 3", len(p.NodeClaims))
		}
	})
	t.Run("schedule anyway relaxed when impossible", func(t *testing.T) {
		t.Parallel()
		ps := pods("w", 3, 500, 512, labels("app", "w"), selector(model.LabelZone, "us-east-1a"), spread(model.LabelZone, 1, false, sel("app", "w")))
		p := solve(t, snapshot(ps))
		if len(p.Unschedulable) != 0 {
			t.Errorf("unschedulable: %v", reasons(p))
		}
	})
}

func TestSolveHostPortsAndVolumes(t *testing.T) {
	t.Parallel()
	withPort := func(port int32) podOpt {
		return func(p *model.Pod) { p.Containers[0].HostPorts = []model.HostPort{{Port: port}} }
	}
	p := solve(t, snapshot(append(pods("proxy", 3, 100, 100, withPort(8080)), pods("other", 2, 100, 100, withPort(9090))...)))
	if len(p.NodeClaims) != 3 {
		t.Errorf("got %d nodes, want 3: one 8080 per node, 9090 shares", len(p.NodeClaims))
	}
	t.Run("volume zone", func(t *testing.T) {
		t.Parallel()
		p := solve(t, snapshot([]*model.Pod{pod("db", 500, 512, func(p *model.Pod) {
			p.Volumes = []model.VolumeTopology{{Claim: "data", Terms: []model.NodeSelectorTerm{{Requirements: []model.Requirement{req(model.LabelZone, model.OpIn, "us-east-1c")}}}}}
		})}))
		if z := p.NodeClaims[0].Zone; z != "us-east-1c" {
			t.Errorf("zone %s, want us-east-1c (the volume's)", z)
		}
	})
}
