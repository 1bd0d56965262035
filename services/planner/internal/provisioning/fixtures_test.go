package provisioning_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/flotilla-dev/flotilla/services/planner/internal/provisioning"
)

const gib = 1 << 30

var zones = []string{"us-east-1a", "us-east-1b", "us-east-1c"}

// spotDiscount is the spot price as a share of on-demand, per zone.
var spotDiscount = []float64{0.40, 0.38, 0.42}

type typeSpec struct {
	name   string
	cpu    int64
	memGiB int64
	arch   string
	pods   int64
	price  float64
	gpus   int64
}

var smallCatalog = []typeSpec{
	{"t3.medium", 2, 4, "amd64", 17, 0.0416, 0},
	{"t3.large", 2, 8, "amd64", 35, 0.0832, 0},
	{"m5.large", 2, 8, "amd64", 29, 0.096, 0},
	{"m5.xlarge", 4, 16, "amd64", 58, 0.192, 0},
	{"m5.2xlarge", 8, 32, "amd64", 58, 0.384, 0},
	{"m5.4xlarge", 16, 64, "amd64", 234, 0.768, 0},
	{"c5.large", 2, 4, "amd64", 29, 0.085, 0},
	{"c5.xlarge", 4, 8, "amd64", 58, 0.17, 0},
	{"c5.2xlarge", 8, 16, "amd64", 58, 0.34, 0},
	{"r5.large", 2, 16, "amd64", 29, 0.126, 0},
	{"r5.xlarge", 4, 32, "amd64", 58, 0.252, 0},
	{"r5.2xlarge", 8, 64, "amd64", 58, 0.504, 0},
	{"m6g.large", 2, 8, "arm64", 29, 0.077, 0},
	{"m6g.xlarge", 4, 16, "arm64", 58, 0.154, 0},
	{"m6g.4xlarge", 16, 64, "arm64", 234, 0.616, 0},
	{"g4dn.xlarge", 4, 16, "amd64", 29, 0.526, 1},
}

// catalog builds instance types with on-demand and spot offerings in three
// zones.
func catalog(specs []typeSpec) []*model.InstanceType {
	var out []*model.InstanceType
	for _, s := range specs {
		it := &model.InstanceType{Name: s.name, Arch: s.arch, Capacity: model.Resources{CPU: s.cpu * 1000, Memory: s.memGiB * gib, Pods: s.pods}}
		if s.gpus > 0 {
			it.Capacity = it.Capacity.With(model.ResourceNvidiaGPU, s.gpus)
		}
		for i, z := range zones {
			it.Offerings = append(it.Offerings,
				model.Offering{Zone: z, ZoneID: fmt.Sprintf("use1-az%d", i+1), CapacityType: model.CapacityOnDemand, PricePerHour: s.price, Available: true},
				model.Offering{Zone: z, ZoneID: fmt.Sprintf("use1-az%d", i+1), CapacityType: model.CapacitySpot, PricePerHour: s.price * spotDiscount[i], Available: true})
		}
		out = append(out, it)
	}
	return out
}

// onDemand is a NodePool requirement for on-demand capacity only.
var onDemand = model.Requirement{Key: model.LabelCapacityType, Operator: model.OpIn, Values: []string{model.CapacityOnDemand}}

func pool(name string, reqs ...model.Requirement) *model.NodePool {
	return &model.NodePool{Name: name, Ready: true, Requirements: reqs}
}

type podOpt func(*model.Pod)

func pod(name string, cpuMillis int64, memMiB int64, opts ...podOpt) *model.Pod {
	p := &model.Pod{Namespace: "default", Name: name, Phase: model.PodPending,
		Containers: []model.Container{{Name: "app", Requests: model.Resources{CPU: cpuMillis, Memory: memMiB << 20}}}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func pods(prefix string, n int, cpuMillis, memMiB int64, opts ...podOpt) []*model.Pod {
	var out []*model.Pod
	for i := range n {
		out = append(out, pod(fmt.Sprintf("%s-%03d", prefix, i), cpuMillis, memMiB, opts...))
	}
	return out
}

func labels(kv ...string) podOpt {
	return func(p *model.Pod) {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func selector(k, v string) podOpt {
	return func(p *model.Pod) {
		if p.NodeSelector == nil {
			p.NodeSelector = map[string]string{}
		}
		p.NodeSelector[k] = v
	}
}

func requires(reqs ...model.Requirement) podOpt {
	return func(p *model.Pod) {
		p.NodeAffinity.Required = append(p.NodeAffinity.Required, model.NodeSelectorTerm{Requirements: reqs})
	}
}

func tolerates(key string) podOpt {
	return func(p *model.Pod) {
		p.Tolerations = append(p.Tolerations, model.Toleration{Key: key, Operator: "Exists"})
	}
}

func req(key string, op model.Operator, values ...string) model.Requirement {
	return model.Requirement{Key: key, Operator: op, Values: values}
}

func sel(kv ...string) *model.LabelSelector {
	s := &model.LabelSelector{}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Requirements = append(s.Requirements, req(kv[i], model.OpIn, kv[i+1]))
	}
	return s
}

// solve runs the solver, validates the plan and checks that a second run
// gives the same plan.
func solve(t testing.TB, s *model.Snapshot) *model.Plan {
	t.Helper()
	p, err := provisioning.Solve(context.Background(), s)
	if err != nil {
		t.Fatalf("Solve: %v", err)
	}
	validatePlan(t, s, p)
	again, err := provisioning.Solve(context.Background(), s)
	if err != nil {
		t.Fatalf("Solve again: %v", err)
	}
	if again.ID != p.ID {
		t.Errorf("same snapshot, different plans: %s then %s", p.ID, again.ID)
	}
	return p
}

// placedOn maps pod keys to the instance type (new nodes) or node name
// (placements) they went to.
func placedOn(p *model.Plan) map[string]string {
	out := map[string]string{}
	for _, nc := range p.NodeClaims {
		for _, k := range nc.Pods {
			out[k] = nc.InstanceType
		}
	}
	for _, pl := range p.Placements {
		for _, k := range pl.Pods {
			out[k] = pl.Node
		}
	}
	return out
}

func reasons(p *model.Plan) map[string]string {
	out := map[string]string{}
	for _, u := range p.Unschedulable {
		out[u.Pod] = u.Reason
	}
	return out
}
