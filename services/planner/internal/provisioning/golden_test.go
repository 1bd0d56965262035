package provisioning_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden plans in testdata/golden")

// goldenScenarios are whole snapshots whose plans are kept in
// testdata/golden: a change in any of them shows up in review.
func goldenScenarios() map[string]*model.Snapshot {
	out := map[string]*model.Snapshot{}

	// The brief's Provisioner: t3.medium or t3.large, cpu limit 100, five
	// pods of one CPU and 1 GiB.
	brief := pool("default", onDemand, req(model.LabelInstanceType, model.OpIn, "t3.medium", "t3.large"))
	brief.Limits = map[string]int64{"cpu": 100_000, "memory": 200 * gib}
	brief.SourceKind = "Provisioner"
	out["brief-provisioner"] = snapshot(pods("web", 5, 1000, 1024), brief)

	// Past the limit: 60 pods need 60 nodes, the limit allows 50.
	out["brief-provisioner-limit"] = snapshot(pods("web", 60, 1000, 1024), brief)

	// Constraints together: existing capacity, a tainted GPU pool, spread,
	// anti-affinity, affinity, a DaemonSet, a volume zone.
	gpu := pool("gpu", onDemand, req(model.LabelInstanceGPUCount, model.OpExists))
	gpu.Taints = []model.Taint{{Key: "nvidia.com/gpu", Effect: model.TaintNoSchedule}}
	gpu.Weight = 10
	s := snapshot(nil, pool("default", onDemand), gpu)
	s.Pods = append(s.Pods, pods("web", 6, 500, 512, labels("app", "web"), spread(model.LabelZone, 1, true, sel("app", "web")))...)
	s.Pods = append(s.Pods, pods("db", 3, 2000, 8192, labels("app", "db"), antiAffinity(model.LabelHostname, sel("app", "db")))...)
	s.Pods = append(s.Pods, pods("cache", 2, 250, 2048, affinity(model.LabelZone, sel("app", "db")))...)
	s.Pods = append(s.Pods, pods("train", 1, 2000, 4096, tolerates("nvidia.com/gpu"), func(p *model.Pod) {
		p.Containers[0].Requests = p.Containers[0].Requests.With(model.ResourceNvidiaGPU, 1)
	})...)
	s.Pods = append(s.Pods, pods("vol", 1, 500, 512, func(p *model.Pod) {
		p.Volumes = []model.VolumeTopology{{Claim: "data", Terms: []model.NodeSelectorTerm{{Requirements: []model.Requirement{req(model.LabelZone, model.OpIn, "us-east-1b")}}}}}
	})...)
	s.Nodes = []*model.Node{{Name: "old-1", Ready: true, Labels: map[string]string{model.LabelHostname: "old-1", model.LabelZone: "us-east-1a", model.LabelArch: "amd64", model.LabelNodePool: "default"},
		Capacity: model.Resources{CPU: 4000, Memory: 16 * gib, Pods: 58}, Allocatable: model.Resources{CPU: 3920, Memory: 14 * gib, Pods: 58}}}
	s.DaemonSets = []*model.DaemonSet{{Namespace: "kube-system", Name: "agent", Template: pod("agent", 100, 128, func(p *model.Pod) {
		p.Tolerations = []model.Toleration{{Operator: "Exists"}}
	})}}
	out["mixed-constraints"] = s

	// Reasons: every pod here is left out, each for its own reason.
	r := snapshot(nil, pool("default", onDemand))
	r.Pods = append(r.Pods, pods("huge", 1, 1000, 96*1024, selector(model.LabelArch, "arm64"))...)
	r.Pods = append(r.Pods, pods("team", 1, 100, 100, selector("team", "blue"))...)
	r.Pods = append(r.Pods, pods("follower", 1, 100, 100, affinity(model.LabelZone, sel("app", "leader")))...)
	out["unschedulable-reasons"] = r
	return out
}

func TestGoldenPlans(t *testing.T) {
	t.Parallel()
	for name, s := range goldenScenarios() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := solve(t, s)
			got, err := json.MarshalIndent(goldenView(p), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			file := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				var g, w any
				_ = json.Unmarshal(got, &g)
				_ = json.Unmarshal(want, &w)
				t.Errorf("plan differs from %s (-want +got):\n%s", file, cmp.Diff(w, g))
			}
		})
	}
}

// goldenView is the part of a plan the golden files pin down: what a user
// of the plan acts on.
func goldenView(p *model.Plan) any {
	type claim struct {
		Name, NodePool, InstanceType, Zone, CapacityType string
		PricePerHour                                     float64
		InstanceTypeOptions, Pods                        []string
		Requirements                                     []string
		Requests                                         string
		Labels                                           map[string]string
	}
	type view struct {
		NodeClaims        []claim
		Placements        []*model.Placement
		Unschedulable     []*model.UnschedulablePod
		TotalPricePerHour float64
	}
	v := view{Placements: p.Placements, Unschedulable: p.Unschedulable, TotalPricePerHour: p.TotalPricePerHour}
	for _, nc := range p.NodeClaims {
		c := claim{Name: nc.Name, NodePool: nc.NodePool, InstanceType: nc.InstanceType, Zone: nc.Zone, CapacityType: nc.CapacityType,
			PricePerHour: nc.PricePerHour, InstanceTypeOptions: nc.InstanceTypeOptions, Pods: nc.Pods, Requests: nc.Requests.String(), Labels: nc.Labels}
		for _, r := range nc.Requirements {
			c.Requirements = append(c.Requirements, r.String())
		}
		v.NodeClaims = append(v.NodeClaims, c)
	}
	return v
}
