package provisioning_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/flotilla-dev/flotilla/services/planner/internal/provisioning"
	"github.com/google/go-cmp/cmp"
)

func snapshot(ps []*model.Pod, pools ...*model.NodePool) *model.Snapshot {
	if len(pools) == 0 {
		pools = []*model.NodePool{pool("default", onDemand)}
	}
	return &model.Snapshot{Pods: ps, NodePools: pools, InstanceTypes: catalog(smallCatalog), Region: "us-east-1"}
}

// amd64 keeps the cheaper arm64 types out of tests about sizes.
var amd64 = req(model.LabelArch, model.OpIn, "amd64")

func TestSolveResources(t *testing.T) {
	t.Parallel()
	snapshot := func(ps []*model.Pod) *model.Snapshot { return snapshot(ps, pool("default", onDemand, amd64)) }
	tests := []struct {
		name string
		snap *model.Snapshot
		want map[string]string // pod -> instance type
	}{
		{
			// t3.medium: 2000m less 60m+10m kube-reserved leaves 1930m.
			name: "allocatable cpu fits exactly",
			snap: snapshot([]*model.Pod{pod("a", 1930, 512)}),
			want: map[string]string{"default/a": "t3.medium"},
		},
		{
			name: "one millicore more needs four cores",
			snap: snapshot([]*model.Pod{pod("a", 1931, 512)}),
			want: map[string]string{"default/a": "c5.xlarge"},
		},
		{
			// t3.medium memory: 4096 MiB less 7.5% VM overhead (308),
			// kube-reserved 11*17+255 = 442 and eviction 100 leaves 3246 MiB.
			name: "allocatable memory fits exactly",
			snap: snapshot([]*model.Pod{pod("a", 100, 3246)}),
			want: map[string]string{"default/a": "t3.medium"},
		},
		{
			name: "one MiB more needs a larger node",
			snap: snapshot([]*model.Pod{pod("a", 100, 3247)}),
			want: map[string]string{"default/a": "t3.large"},
		},
		{
			name: "init container peak with a sidecar decides the size",
			snap: snapshot([]*model.Pod{pod("a", 500, 256, func(p *model.Pod) {
				p.InitContainers = []model.Container{
					{Name: "mesh", Sidecar: true, Requests: model.Resources{CPU: 500}},
					{Name: "migrate", Requests: model.Resources{CPU: 1500}},
				}
			})}),
			// peak 1500+500 = 2000m > 1930m on two cores.
			want: map[string]string{"default/a": "c5.xlarge"},
		},
		{
			name: "gpu request picks the gpu type",
			snap: snapshot([]*model.Pod{pod("a", 1000, 1024, func(p *model.Pod) {
				p.Containers[0].Requests = p.Containers[0].Requests.With(model.ResourceNvidiaGPU, 1)
			})}),
			want: map[string]string{"default/a": "g4dn.xlarge"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := solve(t, tt.snap)
			if diff := cmp.Diff(tt.want, placedOn(p)); diff != "" {
				t.Errorf("placement (-want +got):\n%s\nunschedulable: %v", diff, reasons(p))
			}
		})
	}
}

func TestSolveMaxPods(t *testing.T) {
	t.Parallel()
	t.Run("eni limit", func(t *testing.T) {
		t.Parallel()
		// 40 tiny pods: t3.medium holds 17; a cheap plan still respects it.
		p := solve(t, snapshot(pods("tiny", 40, 10, 16), pool("default", onDemand, req(model.LabelInstanceType, model.OpIn, "t3.medium"))))
		if len(p.NodeClaims) != 3 {
			t.Errorf("got %d NodeClaims, want 3 (17 pods each at most)", len(p.NodeClaims))
		}
	})
	t.Run("kubelet maxPods from the node class", func(t *testing.T) {
		t.Parallel()
		s := snapshot(pods("tiny", 12, 10, 16))
		s.NodePools[0].NodeClass = "small"
		s.NodeClasses = []*model.NodeClass{{Name: "small", Ready: true, Kubelet: &model.Kubelet{MaxPods: 5}}}
		p := solve(t, s)
		for _, nc := range p.NodeClaims {
			if len(nc.Pods) > 5 {
				t.Errorf("%s holds %d pods, maxPods is 5", nc.Name, len(nc.Pods))
			}
		}
		if len(p.NodeClaims) != 3 {
			t.Errorf("got %d NodeClaims, want 3", len(p.NodeClaims))
		}
	})
}

func TestSolveNodeSelection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		pod   *model.Pod
		pools []*model.NodePool
		match string // regexp the chosen instance type must match
	}{
		{"node selector arch", pod("a", 500, 512, selector(model.LabelArch, "arm64")), nil, `^m6g\.`},
		{"affinity In", pod("a", 500, 512, requires(req(model.LabelInstanceFamily, model.OpIn, "r5"))), nil, `^r5\.`},
		{"affinity NotIn", pod("a", 500, 512, requires(req(model.LabelInstanceFamily, model.OpNotIn, "t3", "c5", "m6g"))), nil, `^m5\.large$`},
		{"affinity Gt", pod("a", 500, 512, requires(req(model.LabelInstanceCPU, model.OpGt, "8"))), nil, `^(m5|m6g)\.4xlarge$`},
		{"affinity Lt", pod("a", 500, 512, requires(req(model.LabelInstanceMemory, model.OpLt, "5000"))), nil, `^t3\.medium$`},
		{"affinity Exists", pod("a", 500, 512, requires(req(model.LabelInstanceGPUCount, model.OpExists))), nil, `^g4dn\.`},
		{"affinity DoesNotExist", pod("a", 500, 512, requires(req(model.LabelInstanceGPUCount, model.OpDoesNotExist), req(model.LabelInstanceFamily, model.OpIn, "g4dn", "c5"))), nil, `^c5\.`},
		{"second term used when first impossible", pod("a", 500, 512, requires(req(model.LabelArch, model.OpIn, "s390x")), requires(req(model.LabelInstanceFamily, model.OpIn, "c5"))), nil, `^c5\.large$`},
		{"pool requirement", pod("a", 500, 512), []*model.NodePool{pool("default", onDemand, req(model.LabelInstanceCategory, model.OpIn, "r"))}, `^r5\.large$`},
		{"spot when allowed", pod("a", 500, 512), []*model.NodePool{pool("default")}, `^t3\.medium$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := solve(t, snapshot([]*model.Pod{tt.pod}, tt.pools...))
			if len(p.NodeClaims) != 1 {
				t.Fatalf("got %d NodeClaims, want 1; unschedulable %v", len(p.NodeClaims), reasons(p))
			}
			if got := p.NodeClaims[0].InstanceType; !regexp.MustCompile(tt.match).MatchString(got) {
				t.Errorf("instance type %s, want %s", got, tt.match)
			}
		})
	}
}

func TestSolveCheapestOffering(t *testing.T) {
	t.Parallel()
	p := solve(t, snapshot([]*model.Pod{pod("a", 500, 512)}, pool("default")))
	nc := p.NodeClaims[0]
	// Spot in us-east-1b is the cheapest offering of the cheapest type.
	if nc.Zone != "us-east-1b" || nc.CapacityType != model.CapacitySpot || nc.InstanceType != "t3.medium" {
		t.Errorf("got %s %s %s, want t3.medium spot us-east-1b", nc.InstanceType, nc.Zone, nc.CapacityType)
	}
	if want := 0.0416 * 0.38; nc.PricePerHour != want {
		t.Errorf("price %v, want %v", nc.PricePerHour, want)
	}
	t.Run("unavailable offering skipped", func(t *testing.T) {
		t.Parallel()
		s := snapshot([]*model.Pod{pod("a", 500, 512)}, pool("default"))
		for _, it := range s.InstanceTypes {
			for i := range it.Offerings {
				if it.Offerings[i].CapacityType == model.CapacitySpot && it.Offerings[i].Zone == "us-east-1b" {
					it.Offerings[i].Available = false
				}
			}
		}
		p := solve(t, s)
		if nc := p.NodeClaims[0]; nc.Zone != "us-east-1a" || nc.CapacityType != model.CapacitySpot {
			t.Errorf("got %s %s, want spot in us-east-1a", nc.Zone, nc.CapacityType)
		}
	})
	t.Run("subnets restrict zones", func(t *testing.T) {
		t.Parallel()
		s := snapshot([]*model.Pod{pod("a", 500, 512)}, pool("default"))
		s.NodePools[0].NodeClass = "c"
		s.NodeClasses = []*model.NodeClass{{Name: "c", Ready: true, Subnets: []model.Subnet{{ID: "s1", Zone: "us-east-1c"}}}}
		p := solve(t, s)
		if nc := p.NodeClaims[0]; nc.Zone != "us-east-1c" {
			t.Errorf("zone %s, want us-east-1c (the only subnet)", nc.Zone)
		}
	})
}

func TestSolveTaints(t *testing.T) {
	t.Parallel()
	tainted := pool("gpu", onDemand)
	tainted.Taints = []model.Taint{{Key: "dedicated", Value: "gpu", Effect: model.TaintNoSchedule}}
	tainted.StartupTaints = []model.Taint{{Key: "example.com/booting", Effect: model.TaintNoSchedule}}
	s := snapshot([]*model.Pod{pod("plain", 500, 512), pod("tolerant", 500, 512, tolerates("dedicated"))}, tainted)
	p := solve(t, s)
	got := placedOn(p)
	if got["default/tolerant"] == "" {
		t.Errorf("tolerant pod not placed (startup taints must not count): %v", reasons(p))
	}
	r := reasons(p)["default/plain"]
	if !strings.Contains(r, "dedicated=gpu:NoSchedule") || !strings.Contains(r, "gpu") {
		t.Errorf("reason %q should name the NodePool and the taint", r)
	}
}

func TestSolveUnschedulableReasons(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		snap *model.Snapshot
		want string
	}{
		{"too big for the arch", snapshot([]*model.Pod{pod("big", 1000, 96*1024, selector(model.LabelArch, "arm64"))}),
			"no instance type in NodePool default has 96 GiB memory and arch arm64"},
		{"no such family", snapshot([]*model.Pod{pod("a", 100, 100, requires(req(model.LabelInstanceFamily, model.OpIn, "x9")))}),
			"no instance type in NodePool default has karpenter.k8s.aws/instance-family=x9"},
		{"label the pool does not set", snapshot([]*model.Pod{pod("a", 100, 100, selector("team", "blue"))}),
			"NodePool default does not set label team"},
		{"not ready", func() *model.Snapshot {
			s := snapshot([]*model.Pod{pod("a", 100, 100)})
			s.NodePools[0].Ready, s.NodePools[0].NotReadyReason = false, "node class has no subnets"
			return s
		}(), "NodePool default is not ready: node class has no subnets"},
		{"cpu limit", func() *model.Snapshot {
			s := snapshot(pods("p", 5, 1000, 512))
			s.NodePools[0].Limits = map[string]int64{"cpu": 4000}
			return s
		}(), "NodePool default cpu limit 4 reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := solve(t, tt.snap)
			if len(p.Unschedulable) == 0 {
				t.Fatalf("no unschedulable pods")
			}
			for _, u := range p.Unschedulable {
				if !strings.Contains(u.Reason, tt.want) {
					t.Errorf("%s: reason %q, want it to contain %q", u.Pod, u.Reason, tt.want)
				}
			}
		})
	}
}

func TestSolveLimits(t *testing.T) {
	t.Parallel()
	s := snapshot(pods("p", 60, 1000, 1024), pool("default", onDemand, req(model.LabelInstanceType, model.OpIn, "t3.medium", "t3.large")))
	s.NodePools[0].Limits = map[string]int64{"cpu": 100_000, "memory": 200 * gib}
	s.Nodes = []*model.Node{{Name: "old", Labels: map[string]string{model.LabelNodePool: "default"}, Capacity: model.Resources{CPU: 20_000, Memory: 40 * gib, Pods: 50}, Unschedulable: true}}
	p := solve(t, s) // the validator re-adds the pool's capacity
	// 80 cores left: 40 two-core nodes, one 1-CPU pod each.
	if len(p.NodeClaims) != 40 || len(p.Unschedulable) != 20 {
		t.Errorf("got %d NodeClaims and %d unschedulable, want 40 and 20", len(p.NodeClaims), len(p.Unschedulable))
	}
}

func TestSolveWeights(t *testing.T) {
	t.Parallel()
	heavy := pool("reserved", onDemand, req(model.LabelInstanceCategory, model.OpIn, "r"))
	heavy.Weight = 50
	p := solve(t, snapshot([]*model.Pod{pod("a", 500, 512)}, pool("default", onDemand), heavy))
	if nc := p.NodeClaims[0]; nc.NodePool != "reserved" {
		t.Errorf("NodePool %s, want the heavier reserved", nc.NodePool)
	}
	t.Run("falls back when the heavy pool cannot", func(t *testing.T) {
		t.Parallel()
		p := solve(t, snapshot([]*model.Pod{pod("a", 500, 512, selector(model.LabelArch, "arm64"))}, pool("default", onDemand), heavy))
		if nc := p.NodeClaims[0]; nc.NodePool != "default" {
			t.Errorf("NodePool %s, want default", nc.NodePool)
		}
	})
}

func TestSolveExistingCapacity(t *testing.T) {
	t.Parallel()
	node := &model.Node{Name: "n1", Ready: true, Labels: map[string]string{model.LabelArch: "amd64", model.LabelZone: "us-east-1a"},
		Allocatable: model.Resources{CPU: 3900, Memory: 14 * gib, Pods: 58}}
	running := pod("running", 1000, 1024, func(p *model.Pod) { p.NodeName, p.Phase = "n1", model.PodRunning })
	claim := &model.NodeClaim{Name: "default-inflight", NodePool: "default", InstanceType: "m5.xlarge", Zone: "us-east-1b", CapacityType: model.CapacityOnDemand,
		Allocatable: model.Resources{CPU: 4000, Memory: 14 * gib, Pods: 58}}
	nominated := pod("nominated", 1000, 1024, func(p *model.Pod) { p.NominatedNodeClaim = "default-inflight" })
	ps := append([]*model.Pod{running, nominated}, pods("new", 5, 1000, 1024)...)
	s := snapshot(ps)
	s.Nodes = []*model.Node{node}
	s.NodeClaims = []*model.NodeClaim{claim}
	p := solve(t, s)
	if len(p.NodeClaims) != 0 {
		t.Errorf("launched %d NodeClaims, want none: n1 has room for 2, the in-flight claim for 3 more", len(p.NodeClaims))
		t.Logf("unschedulable: %v", reasons(p))
	}
	want := []*model.Placement{
		{Node: "default-inflight", Pods: []string{"default/new-002", "default/new-003", "default/new-004", "default/nominated"}, InFlight: true},
		{Node: "n1", Pods: []string{"default/new-000", "default/new-001"}},
	}
	if diff := cmp.Diff(want, p.Placements); diff != "" {
		t.Errorf("placements (-want +got):\n%s", diff)
	}
}

func TestSolveDaemonSets(t *testing.T) {
	t.Parallel()
	ds := func(name string, cpu int64, opts ...podOpt) *model.DaemonSet {
		tpl := pod(name, cpu, 100, opts...)
		tpl.Tolerations = []model.Toleration{{Operator: "Exists"}}
		return &model.DaemonSet{Namespace: "kube-system", Name: name, Template: tpl}
	}
	s := snapshot([]*model.Pod{pod("a", 1000, 512)})
	// 1930m on t3.medium less 1000m of DaemonSets leaves 930m: too little.
	s.DaemonSets = []*model.DaemonSet{ds("agent", 1000), ds("arm-only", 3000, selector(model.LabelArch, "arm64"))}
	p := solve(t, s)
	if got := p.NodeClaims[0].InstanceType; got != "c5.xlarge" {
		t.Errorf("instance type %s, want c5.xlarge (the DaemonSet takes a core; the arm64 one does not land on amd64)", got)
	}
	if got := p.NodeClaims[0].Requests.CPU; got != 2000 {
		t.Errorf("requests cpu %d, want 2000 (pod + DaemonSet)", got)
	}
}

func TestSolveNames(t *testing.T) {
	t.Parallel()
	p := solve(t, snapshot(pods("web", 3, 3000, 1024)))
	re := regexp.MustCompile(`^default-[0-9a-f]{10}$`)
	for _, nc := range p.NodeClaims {
		if !re.MatchString(nc.Name) {
			t.Errorf("name %q", nc.Name)
		}
	}
	// The same pods in a different order give the same names.
	s := snapshot(pods("web", 3, 3000, 1024))
	s.Pods[0], s.Pods[2] = s.Pods[2], s.Pods[0]
	q := solve(t, s)
	if p.ID != q.ID || p.NodeClaims[0].Name != q.NodeClaims[0].Name {
		t.Errorf("reordered input changed the plan")
	}
}

func TestSolveCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := provisioning.Solve(ctx, snapshot(pods("p", 10, 100, 100)))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestSolveMinValues(t *testing.T) {
	t.Parallel()
	np := pool("default", onDemand, amd64)
	np.Requirements = append(np.Requirements, model.Requirement{Key: model.LabelInstanceFamily, Operator: model.OpExists, MinValues: 3})
	p := solve(t, snapshot(pods("w", 4, 1000, 1024), np))
	if len(p.Unschedulable) > 0 {
		t.Fatalf("unschedulable: %v", reasons(p))
	}
	for _, nc := range p.NodeClaims {
		fams := map[string]bool{}
		for _, o := range nc.InstanceTypeOptions {
			fam, _, _ := strings.Cut(o, ".")
			fams[fam] = true
		}
		if len(fams) < 3 {
			t.Errorf("%s offers families %v, want at least 3", nc.Name, fams)
		}
		found := false
		for _, r := range nc.Requirements {
			if r.Key == model.LabelInstanceFamily && r.MinValues == 3 {
				found = true
			}
		}
		if !found {
			t.Errorf("%s requirements lack minValues: %v", nc.Name, nc.Requirements)
		}
	}
	t.Run("too narrow", func(t *testing.T) {
		t.Parallel()
		np := pool("default", onDemand, amd64)
		np.Requirements = append(np.Requirements, model.Requirement{Key: model.LabelInstanceFamily, Operator: model.OpExists, MinValues: 3})
		// 7 cores and 40 GiB fit only m5.4xlarge and r5.2xlarge: two
		// families, not three.
		p := solve(t, snapshot([]*model.Pod{pods("big", 1, 7000, 40*1024)[0]}, np))
		if r := reasons(p)["default/big-000"]; !strings.Contains(r, "minValues 3") {
			t.Errorf("reason %q, want it to name minValues 3", r)
		}
	})
}

// TestClaimNamesSkipConsumedClaims: a pod whose NodeClaim came up and was
// taken by another pod (the scheduler binds whichever pending pod it likes)
// gets a new claim under a new name; a claim still in flight keeps its name.
func TestClaimNamesSkipConsumedClaims(t *testing.T) {
	base := func() *model.Snapshot {
		return &model.Snapshot{
			NodePools:     []*model.NodePool{pool("default", onDemand)},
			InstanceTypes: catalog(smallCatalog),
			Pods:          []*model.Pod{pod("web", 1000, 1024)},
		}
	}
	first, err := provisioning.Solve(context.Background(), base())
	if err != nil || len(first.NodeClaims) != 1 {
		t.Fatalf("plan = %+v, %v", first, err)
	}
	name := first.NodeClaims[0].Name

	inFlight := base()
	inFlight.NodeClaims = []*model.NodeClaim{{Name: name, NodePool: "default", InstanceType: first.NodeClaims[0].InstanceType}}
	again, err := provisioning.Solve(context.Background(), inFlight)
	if err != nil {
		t.Fatal(err)
	}
	for _, nc := range again.NodeClaims {
		if nc.Name != name {
			t.Errorf("with %s in flight a second claim %s was planned for the same pod", name, nc.Name)
		}
	}

	consumed := base()
	consumed.NodeClaims = []*model.NodeClaim{{Name: name, NodePool: "default", NodeName: "ip-1", Deleting: true}}
	next, err := provisioning.Solve(context.Background(), consumed)
	if err != nil || len(next.NodeClaims) != 1 {
		t.Fatalf("plan = %+v, %v", next, err)
	}
	if next.NodeClaims[0].Name == name {
		t.Errorf("new claim reuses the name %s of a claim whose node took other pods", name)
	}
}
