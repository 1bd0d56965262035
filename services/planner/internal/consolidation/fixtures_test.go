package consolidation

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/flotilla-dev/flotilla/services/planner/internal/provisioning"
)

const gib = 1 << 30

var testZones = []string{"us-east-1a", "us-east-1b", "us-east-1c"}

type typeSpec struct {
	name   string
	cpu    int64
	memGiB int64
	pods   int64
	price  float64
}

// testTypes is a small catalogue of general-purpose, compute and memory
// types with their us-east-1 on-demand prices.
var testTypes = []typeSpec{
	{"t3.medium", 2, 4, 17, 0.0416}, {"t3.large", 2, 8, 35, 0.0832}, {"t3.xlarge", 4, 16, 58, 0.1664},
	{"m5.large", 2, 8, 29, 0.096}, {"m5.xlarge", 4, 16, 58, 0.192}, {"m5.2xlarge", 8, 32, 58, 0.384}, {"m5.4xlarge", 16, 64, 234, 0.768},
	{"m5a.large", 2, 8, 29, 0.086}, {"m5a.xlarge", 4, 16, 58, 0.172}, {"m5a.2xlarge", 8, 32, 58, 0.344},
	{"m6i.large", 2, 8, 29, 0.096}, {"m6i.xlarge", 4, 16, 58, 0.192}, {"m6i.2xlarge", 8, 32, 58, 0.384},
	{"m6a.large", 2, 8, 29, 0.0864}, {"m6a.xlarge", 4, 16, 58, 0.1728}, {"m6a.2xlarge", 8, 32, 58, 0.3456},
	{"c5.large", 2, 4, 29, 0.085}, {"c5.xlarge", 4, 8, 58, 0.17}, {"c5.2xlarge", 8, 16, 58, 0.34},
	{"c6i.large", 2, 4, 29, 0.085}, {"c6i.xlarge", 4, 8, 58, 0.17}, {"c6i.2xlarge", 8, 16, 58, 0.34},
	{"r5.large", 2, 16, 29, 0.126}, {"r5.xlarge", 4, 32, 58, 0.252}, {"r5.2xlarge", 8, 64, 58, 0.504},
}

// catalogue builds instance types with on-demand offerings in three zones
// and spot offerings at a discount that differs by type and zone.
func catalogue(specs []typeSpec) []*model.InstanceType {
	var out []*model.InstanceType
	for i, s := range specs {
		it := &model.InstanceType{Name: s.name, Arch: "amd64", Capacity: model.Resources{CPU: s.cpu * 1000, Memory: s.memGiB * gib, Pods: s.pods}}
		for z, zone := range testZones {
			discount := 0.30 + 0.01*float64((i*7+z*3)%15)
			it.Offerings = append(it.Offerings,
				model.Offering{Zone: zone, ZoneID: fmt.Sprintf("use1-az%d", z+1), CapacityType: model.CapacityOnDemand, PricePerHour: s.price, Available: true},
				model.Offering{Zone: zone, ZoneID: fmt.Sprintf("use1-az%d", z+1), CapacityType: model.CapacitySpot, PricePerHour: round6(s.price * discount), Available: true})
		}
		out = append(out, it)
	}
	return out
}

var onDemandOnly = model.Requirement{Key: model.LabelCapacityType, Operator: model.OpIn, Values: []string{model.CapacityOnDemand}}

// world is a snapshot under construction.
type world struct {
	s     *model.Snapshot
	types map[string]*model.InstanceType
}

func newWorld(pools ...*model.NodePool) *world {
	its := catalogue(testTypes)
	w := &world{s: &model.Snapshot{Now: now, Region: "us-east-1", InstanceTypes: its, NodePools: pools,
		NodeClasses: []*model.NodeClass{{Name: "default", Ready: true, Hash: "class-v1"}}},
		types: map[string]*model.InstanceType{}}
	for _, it := range its {
		w.types[it.Name] = it
	}
	return w
}

// consolidating is a WhenEmptyOrUnderutilized pool with consolidateAfter
// 30s, the given requirements and a 100 % budget.
func consolidating(name string, reqs ...model.Requirement) *model.NodePool {
	return &model.NodePool{Name: name, Ready: true, NodeClass: "default", Hash: "pool-v1", Requirements: reqs,
		Disruption: model.Disruption{ConsolidationPolicy: model.ConsolidateWhenEmptyOrUnderutilized, ConsolidateAfter: 30 * time.Second,
			Budgets: []model.DisruptionBudget{{Nodes: "100%"}}}}
}

func (w *world) pool(name string) *model.NodePool {
	for _, p := range w.s.NodePools {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// node adds an initialized, ready node of the pool, launched an hour ago
// with the pool's and class's current hashes.
func (w *world) node(name, pool, typ, zone, ct string) *model.Node {
	it := w.types[typ]
	if it == nil {
		panic("unknown type " + typ)
	}
	price := 0.0
	for _, o := range it.Offerings {
		if o.Zone == zone && o.CapacityType == ct {
			price = o.PricePerHour
		}
	}
	labels := it.NodeLabels()
	maps.Copy(labels, map[string]string{model.LabelZone: zone, model.LabelCapacityType: ct, model.LabelNodePool: pool, model.LabelHostname: name, model.LabelNodeClass: "default"})
	n := &model.Node{Name: name, NodeClaim: name, Labels: labels, Capacity: it.NodeCapacity(nil), Allocatable: it.Allocatable(nil),
		Ready: true, Created: now.Add(-time.Hour), LastPodEvent: now.Add(-time.Hour), PricePerHour: price}
	p := w.pool(pool)
	c := &model.NodeClaim{Name: name, NodePool: pool, NodeClass: "default", NodeName: name, InstanceType: typ, Zone: zone, CapacityType: ct,
		Capacity: n.Capacity, Allocatable: n.Allocatable, Created: n.Created, PricePerHour: price, NodeClassHash: w.s.NodeClasses[0].Hash,
		Conditions: []model.Condition{{Type: "Launched", Status: "True"}, {Type: "Registered", Status: "True"}, {Type: "Initialized", Status: "True"}}}
	if p != nil {
		c.NodePoolHash = p.Hash
	}
	w.s.Nodes = append(w.s.Nodes, n)
	w.s.NodeClaims = append(w.s.NodeClaims, c)
	return n
}

func (w *world) claim(name string) *model.NodeClaim {
	for _, c := range w.s.NodeClaims {
		if c.Name == name {
			return c
		}
	}
	return nil
}

type podOpt func(*model.Pod)

// pods binds n pods of a Deployment (app label, ReplicaSet owner) to node.
func (w *world) pods(node, app string, n int, cpu, memMiB int64, opts ...podOpt) []*model.Pod {
	var out []*model.Pod
	for i := range n {
		p := &model.Pod{Namespace: "shop", Name: fmt.Sprintf("%s-%s-%d", app, node, i), NodeName: node, Phase: model.PodRunning,
			Labels: map[string]string{"app": app}, OwnerKind: "ReplicaSet", OwnerName: app,
			Containers: []model.Container{{Name: "app", Requests: model.Resources{CPU: cpu, Memory: memMiB << 20}}}}
		for _, o := range opts {
			o(p)
		}
		w.s.Pods = append(w.s.Pods, p)
		out = append(out, p)
	}
	return out
}

// solve runs the provisioning solver and the disruption solver on the
// world, as the planner's server does, and checks the answer with the
// independent validator.
func (w *world) solve(t testing.TB, opts Options) *model.Plan {
	t.Helper()
	plan, err := provisioning.Solve(context.Background(), w.s)
	if err != nil {
		t.Fatalf("provisioning: %v", err)
	}
	if err := Plan(context.Background(), w.s, plan, opts); err != nil {
		t.Fatalf("Plan: %v", err)
	}
	for _, e := range validate(w.s, plan, opts) {
		t.Error(e)
	}
	return plan
}

// disruptedBy returns the disrupted nodes per reason.
func disruptedBy(p *model.Plan) map[model.DisruptionReason][]string {
	out := map[model.DisruptionReason][]string{}
	for _, d := range p.Disruptions {
		out[d.Reason] = append(out[d.Reason], d.Nodes...)
	}
	return out
}

// rejections maps rejected nodes to the reasons.
func rejections(p *model.Plan) map[string]string {
	out := map[string]string{}
	for _, r := range p.Rejections {
		out[r.Node] = r.Reason
	}
	return out
}
