package provisioning_test

import (
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

var (
	fullCatalogOnce sync.Once
	fullCatalogData []*model.InstanceType
	fullCatalogErr  error
)

// fullCatalog reads testdata/catalog-us-east-1.csv, the embedded us-east-1
// catalogue in the --catalog format (see internal/server's
// TestCatalogFixture).
func fullCatalog(tb testing.TB) []*model.InstanceType {
	tb.Helper()
	fullCatalogOnce.Do(func() {
		f, err := os.Open("testdata/catalog-us-east-1.csv")
		if err != nil {
			fullCatalogErr = err
			return
		}
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil {
			fullCatalogErr = err
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
				fullCatalogData = append(fullCatalogData, it)
			}
			price, _ := strconv.ParseFloat(r[8], 64)
			it.Offerings = append(it.Offerings, model.Offering{Zone: r[6], CapacityType: r[7], PricePerHour: price, Available: true})
		}
	})
	if fullCatalogErr != nil {
		tb.Fatalf("catalogue fixture: %v", fullCatalogErr)
	}
	return fullCatalogData
}

// mix says which fifths of a generated workload carry which constraint.
type mix int

const (
	mixPlain   mix = iota // no constraints at all
	mixDiverse            // a fifth each: plain, zone spread, hostname spread, zone affinity, hostname anti-affinity
)

var (
	cpuChoices = []int64{100, 250, 500, 1000, 1500}
	memChoices = []int64{100, 256, 512, 1024, 2048, 4096}
	labelVals  = []string{"a", "b", "c", "d", "e", "f", "g"}
)

// workload builds a snapshot of n pending pods of random sizes (as
// Karpenter's scheduling benchmark draws them) and existing nodes, half
// full, against the given catalogue.
func workload(n, existing int, m mix, its []*model.InstanceType, seed uint64) *model.Snapshot {
	r := rand.New(rand.NewPCG(seed, 42))
	pick := func(v []string) string { return v[r.IntN(len(v))] }
	s := &model.Snapshot{InstanceTypes: its, Region: "us-east-1", NodePools: []*model.NodePool{{Name: "default", Ready: true}}}
	for i := range n {
		p := &model.Pod{Namespace: "default", Name: fmt.Sprintf("p-%06d", i), Phase: model.PodPending,
			Labels:     map[string]string{"my-label": pick(labelVals)},
			Containers: []model.Container{{Requests: model.Resources{CPU: cpuChoices[r.IntN(len(cpuChoices))], Memory: memChoices[r.IntN(len(memChoices))] << 20}}}}
		kind := 0
		if m == mixDiverse {
			kind = i * 5 / n
		}
		switch kind {
		case 1:
			p.TopologySpread = []model.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: model.LabelZone, DoNotSchedule: true, Selector: sel("my-label", pick(labelVals))}}
		case 2:
			p.TopologySpread = []model.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: model.LabelHostname, DoNotSchedule: true, Selector: sel("my-label", pick(labelVals))}}
		case 3:
			p.Labels = map[string]string{"my-affinity": pick(labelVals)}
			p.PodAffinity = []model.PodAffinityTerm{{Selector: sel("my-affinity", pick(labelVals)), TopologyKey: model.LabelZone}}
		case 4:
			p.Labels = map[string]string{"app": "nginx"}
			p.PodAntiAffinity = []model.PodAffinityTerm{{Selector: sel("app", "nginx"), TopologyKey: model.LabelHostname}}
		}
		s.Pods = append(s.Pods, p)
	}
	zs := []string{"us-east-1a", "us-east-1b", "us-east-1c"}
	for i := range existing {
		name := fmt.Sprintf("node-%05d", i)
		s.Nodes = append(s.Nodes, &model.Node{Name: name, Ready: true,
			Labels:      map[string]string{model.LabelHostname: name, model.LabelZone: zs[i%3], model.LabelArch: "amd64", model.LabelOS: "linux", model.LabelInstanceType: "m5.xlarge", model.LabelNodePool: "default", model.LabelCapacityType: model.CapacityOnDemand},
			Capacity:    model.Resources{CPU: 4000, Memory: 16 << 30, Pods: 58},
			Allocatable: model.Resources{CPU: 3920, Memory: 14 << 30, Pods: 58}})
		for j := range 4 {
			s.Pods = append(s.Pods, &model.Pod{Namespace: "default", Name: fmt.Sprintf("run-%05d-%d", i, j), NodeName: name, Phase: model.PodRunning,
				Labels:     map[string]string{"my-label": pick(labelVals)},
				Containers: []model.Container{{Requests: model.Resources{CPU: 500, Memory: 1792 << 20}}}})
		}
	}
	return s
}
