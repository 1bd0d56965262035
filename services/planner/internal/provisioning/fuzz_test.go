package provisioning_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/flotilla-dev/flotilla/services/planner/internal/provisioning"
)

// randomSnapshot builds a small snapshot with every kind of constraint,
// drawn from seed.
func randomSnapshot(seed1, seed2 uint64) *model.Snapshot {
	r := rand.New(rand.NewPCG(seed1, seed2))
	pick := func(v ...string) string { return v[r.IntN(len(v))] }
	var specs []typeSpec
	for _, s := range smallCatalog {
		if r.IntN(4) > 0 {
			specs = append(specs, s)
		}
	}
	s := &model.Snapshot{InstanceTypes: catalog(specs), Region: "us-east-1"}
	for _, it := range s.InstanceTypes {
		for i := range it.Offerings {
			it.Offerings[i].Available = r.IntN(8) > 0
		}
	}
	for i := range 1 + r.IntN(3) {
		np := pool(fmt.Sprintf("pool-%d", i))
		np.Weight = int32(r.IntN(3) * 10)
		if r.IntN(3) == 0 {
			np.Requirements = append(np.Requirements, req(model.LabelCapacityType, model.OpIn, pick(model.CapacitySpot, model.CapacityOnDemand)))
		}
		if r.IntN(3) == 0 {
			np.Requirements = append(np.Requirements, req(model.LabelArch, model.OpIn, pick("amd64", "arm64")))
		}
		if r.IntN(4) == 0 {
			np.Taints = []model.Taint{{Key: "dedicated", Value: pick("a", "b"), Effect: model.TaintNoSchedule}}
		}
		if r.IntN(3) == 0 {
			np.Limits = map[string]int64{"cpu": int64(4000 + r.IntN(40)*1000)}
		}
		if r.IntN(4) == 0 {
			np.Labels = map[string]string{"team": pick("x", "y")}
		}
		if r.IntN(5) == 0 {
			np.Requirements = append(np.Requirements, model.Requirement{Key: model.LabelInstanceFamily, Operator: model.OpExists, MinValues: 1 + r.IntN(3)})
		}
		s.NodePools = append(s.NodePools, np)
	}
	if r.IntN(3) == 0 {
		s.DaemonSets = []*model.DaemonSet{{Namespace: "kube-system", Name: "ds", Template: pod("ds", int64(50+r.IntN(300)), int64(64+r.IntN(256)), tolerates(""))}}
	}
	for i := range r.IntN(4) {
		name := fmt.Sprintf("node-%d", i)
		s.Nodes = append(s.Nodes, &model.Node{Name: name, Ready: true,
			Labels:      map[string]string{model.LabelHostname: name, model.LabelZone: zones[r.IntN(3)], model.LabelArch: "amd64", model.LabelNodePool: "pool-0"},
			Capacity:    model.Resources{CPU: 4000, Memory: 16 * gib, Pods: 58},
			Allocatable: model.Resources{CPU: 3920, Memory: 14 * gib, Pods: 58}})
		if r.IntN(2) == 0 {
			s.Pods = append(s.Pods, pod(fmt.Sprintf("bound-%d", i), 1000, 2048, labels("app", pick("a", "b")), func(p *model.Pod) { p.NodeName = name }))
		}
	}
	for g := range 1 + r.IntN(6) {
		app := pick("a", "b", "c")
		var opts []podOpt
		opts = append(opts, labels("app", app))
		switch r.IntN(9) {
		case 1:
			opts = append(opts, spread(pick(model.LabelZone, model.LabelHostname, model.LabelCapacityType), int32(1+r.IntN(2)), r.IntN(3) > 0, sel("app", pick("a", "b", "c"))))
		case 2:
			opts = append(opts, antiAffinity(pick(model.LabelHostname, model.LabelZone), sel("app", pick(app, "a"))))
		case 3:
			opts = append(opts, affinity(pick(model.LabelHostname, model.LabelZone), sel("app", pick("a", "b", "c"))))
		case 4:
			opts = append(opts, selector(model.LabelArch, pick("amd64", "arm64")))
		case 5:
			opts = append(opts, requires(req(model.LabelInstanceCPU, []model.Operator{model.OpGt, model.OpLt}[r.IntN(2)], pick("2", "4", "8"))))
		case 6:
			opts = append(opts, tolerates("dedicated"), selector("team", pick("x", "y")))
		case 7:
			opts = append(opts, func(p *model.Pod) { p.Containers[0].HostPorts = []model.HostPort{{Port: 8080}} })
		case 8:
			opts = append(opts, func(p *model.Pod) {
				p.Volumes = []model.VolumeTopology{{Claim: "v", Terms: []model.NodeSelectorTerm{{Requirements: []model.Requirement{req(model.LabelZone, model.OpIn, zones[r.IntN(3)])}}}}}
			})
		}
		if r.IntN(5) == 0 {
			opts = append(opts, func(p *model.Pod) {
				p.PreferredPodAntiAffinity = []model.WeightedPodAffinityTerm{{Weight: 10, Term: model.PodAffinityTerm{Selector: sel("app", app), TopologyKey: model.LabelHostname}}}
			})
		}
		s.Pods = append(s.Pods, pods(fmt.Sprintf("g%d", g), 1+r.IntN(8), int64(50+r.IntN(4000)), int64(64+r.IntN(16000)), opts...)...)
	}
	return s
}

// FuzzPlan: any snapshot gives a plan without panicking, every placement
// passes the independent validator, and the same input gives the same
// plan.
func FuzzPlan(f *testing.F) {
	for i := range uint64(20) {
		f.Add(i, i*7919)
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		s := randomSnapshot(a, b)
		p, err := provisioning.Solve(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		validatePlan(t, s, p)
		q, err := provisioning.Solve(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if p.ID != q.ID {
			t.Errorf("same snapshot, plans %s and %s", p.ID, q.ID)
		}
	})
}
