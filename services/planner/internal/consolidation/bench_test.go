package consolidation

import (
	"context"
	"encoding/csv"
	"fmt"
	"maps"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/flotilla-dev/flotilla/services/planner/internal/provisioning"
)

var (
	usEast1Once sync.Once
	usEast1     []*model.InstanceType
	usEast1Err  error
)

// fullCatalogue reads the us-east-1 catalogue the provisioning tests use
// (the embedded catalogue in the --catalog CSV format).
func fullCatalogue(tb testing.TB) []*model.InstanceType {
	tb.Helper()
	usEast1Once.Do(func() {
		f, err := os.Open("../provisioning/testdata/catalog-us-east-1.csv")
		if err != nil {
			usEast1Err = err
			return
		}
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil {
			usEast1Err = err
			return
		}
		byName := map[string]*model.InstanceType{}
		for _, r := range rows[1:] {
			it := byName[r[0]]
			if it == nil {
				vcpu, _ := strconv.ParseInt(r[1], 10, 64)
				mem, _ := strconv.ParseInt(r[2], 10, 64)
				gpus, _ := strconv.ParseInt(r[4], 10, 64)
				pods, _ := strconv.ParseInt(r[5], 10, 64)
				it = &model.InstanceType{Name: r[0], Arch: r[3], Capacity: model.Resources{CPU: vcpu * 1000, Memory: mem << 20, Pods: pods}}
				if gpus > 0 {
					it.Capacity = it.Capacity.With(model.ResourceNvidiaGPU, gpus)
				}
				byName[r[0]] = it
				usEast1 = append(usEast1, it)
			}
			price, _ := strconv.ParseFloat(r[8], 64)
			it.Offerings = append(it.Offerings, model.Offering{Zone: r[6], CapacityType: r[7], PricePerHour: price, Available: true})
		}
	})
	if usEast1Err != nil {
		tb.Fatalf("catalogue: %v", usEast1Err)
	}
	return usEast1
}

// bigCluster is 1,000 on-demand nodes in three zones running 20,000 pods
// of 200 Deployments, a tenth of them zone-spread. Packed, the nodes are
// m5.2xlarge and m6i.2xlarge, the only types the pool may launch, each
// full to within one pod: there is nothing to gain. Mixed, the nodes are
// m5.2xlarge, m6i.2xlarge, r5.2xlarge and c5.4xlarge under pods of mixed
// sizes, the pool may launch anything, and the last under nodes run half
// as many pods as the others.
func bigCluster(tb testing.TB, packed bool, under int) *model.Snapshot {
	its := fullCatalogue(tb)
	types := map[string]*model.InstanceType{}
	for _, it := range its {
		types[it.Name] = it
	}
	shapes := []string{"m5.2xlarge", "m6i.2xlarge", "r5.2xlarge", "c5.4xlarge"}
	reqs := []model.Requirement{onDemandOnly}
	if packed {
		shapes = shapes[:2]
		reqs = append(reqs, model.Requirement{Key: model.LabelInstanceType, Operator: model.OpIn, Values: shapes})
	}
	pool := consolidating("default", reqs...)
	pool.Disruption.Budgets = nil
	s := &model.Snapshot{Now: now, Region: "us-east-1", InstanceTypes: its, NodePools: []*model.NodePool{pool},
		NodeClasses: []*model.NodeClass{{Name: "default", Ready: true, Hash: "class-v1"}}}
	zones := []string{"us-east-1a", "us-east-1b", "us-east-1c"}
	const nodes, pods, deployments = 1000, 20000, 200
	half := pods / nodes / 2
	// The other nodes run more pods so that the total stays 20,000.
	fullTotal := pods - under*half
	next := 0
	for i := range nodes {
		name := fmt.Sprintf("node-%04d", i)
		it := types[shapes[i%len(shapes)]]
		zone := zones[i%len(zones)]
		price := 0.0
		for _, o := range it.Offerings {
			if o.Zone == zone && o.CapacityType == model.CapacityOnDemand {
				price = o.PricePerHour
			}
		}
		labels := it.NodeLabels()
		maps.Copy(labels, map[string]string{model.LabelZone: zone, model.LabelCapacityType: model.CapacityOnDemand, model.LabelNodePool: "default", model.LabelHostname: name})
		s.Nodes = append(s.Nodes, &model.Node{Name: name, NodeClaim: name, Labels: labels, Capacity: it.NodeCapacity(nil), Allocatable: it.Allocatable(nil),
			Ready: true, Created: now.Add(-24 * time.Hour), LastPodEvent: now.Add(-time.Hour), PricePerHour: price})
		s.NodeClaims = append(s.NodeClaims, &model.NodeClaim{Name: name, NodePool: "default", NodeClass: "default", NodeName: name, InstanceType: it.Name,
			Zone: zone, CapacityType: model.CapacityOnDemand, Created: now.Add(-24 * time.Hour), PricePerHour: price, NodePoolHash: pool.Hash, NodeClassHash: "class-v1",
			Conditions: []model.Condition{{Type: "Initialized", Status: "True"}}})
		k := half
		if i < nodes-under {
			k = fullTotal / (nodes - under)
			if i < fullTotal%(nodes-under) {
				k++
			}
		}
		for range k {
			d := next % deployments
			app := fmt.Sprintf("app%03d", d)
			req := model.Resources{CPU: 100 + int64(d%8)*50, Memory: int64(256+(d%6)*256) << 20}
			if packed {
				req = model.Resources{CPU: 380, Memory: 1400 << 20}
			}
			p := &model.Pod{Namespace: "shop", Name: fmt.Sprintf("%s-%05d", app, next), NodeName: name, Phase: model.PodRunning,
				Labels: map[string]string{"app": app}, OwnerKind: "ReplicaSet", OwnerName: app,
				Containers: []model.Container{{Name: "app", Requests: req}}}
			if d%10 == 0 {
				p.TopologySpread = []model.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: model.LabelZone,
					Selector: &model.LabelSelector{Requirements: []model.Requirement{{Key: "app", Operator: model.OpIn, Values: []string{app}}}}}}
			}
			s.Pods = append(s.Pods, p)
			next++
		}
	}
	return s
}

// cpuTime is the process's user and system CPU time so far; on a shared,
// loaded machine it says more than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkConsolidate times a whole decision for a 1,000-node cluster with
// 20,000 pods, as the planner's server makes it: the provisioning answer,
// then the disruption solver on top (see bigCluster). "packed" has nothing
// to gain; "mixed" and "mixed-underutilized=300" have much, which the
// search takes within the default 10 % budget.
func BenchmarkConsolidate(b *testing.B) {
	for _, sc := range []struct {
		name   string
		packed bool
		under  int
	}{{"packed", true, 0}, {"mixed", false, 0}, {"mixed-underutilized=300", false, 300}} {
		b.Run(sc.name, func(b *testing.B) {
			s := bigCluster(b, sc.packed, sc.under)
			b.ReportAllocs()
			var disrupted int
			var saved float64
			start := cpuTime()
			for b.Loop() {
				plan, err := provisioning.Solve(context.Background(), s)
				if err != nil {
					b.Fatal(err)
				}
				if err := Plan(context.Background(), s, plan, Options{}); err != nil {
					b.Fatal(err)
				}
				disrupted, saved = 0, 0
				for _, d := range plan.Disruptions {
					disrupted += len(d.Nodes)
					saved += d.SavingsPerHour
				}
			}
			cpu := cpuTime() - start
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(disrupted), "nodes-disrupted")
			b.ReportMetric(saved, "$/h-saved")
		})
	}
}

func TestBigClusterFixture(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 20,000-pod snapshot")
	}
	t.Parallel()
	for _, packed := range []bool{true, false} {
		s := bigCluster(t, packed, 300)
		if len(s.Nodes) != 1000 || len(s.Pods) != 20000 {
			t.Errorf("packed=%t: %d nodes, %d pods; want 1000 and 20000", packed, len(s.Nodes), len(s.Pods))
		}
		for _, e := range validate(s, &model.Plan{}, Options{}) {
			t.Error(e)
		}
	}
	// Packed, there is nothing to gain; mixed, much, within the budget.
	for _, packed := range []bool{true, false} {
		s := bigCluster(t, packed, 0)
		plan, err := provisioning.Solve(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if err := Plan(context.Background(), s, plan, Options{}); err != nil {
			t.Fatal(err)
		}
		for _, e := range validate(s, plan, Options{}) {
			t.Error(e)
		}
		disrupted := 0
		for _, d := range plan.Disruptions {
			disrupted += len(d.Nodes)
		}
		if want := map[bool]int{true: 0, false: 100}[packed]; disrupted != want {
			t.Errorf("packed=%t: %d nodes disrupted, want %d", packed, disrupted, want)
		}
	}
}
