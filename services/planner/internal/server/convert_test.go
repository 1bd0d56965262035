package server

import (
	"errors"
	"testing"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
)

func validSnapshot() *clusterv1.Snapshot {
	return &clusterv1.Snapshot{
		Region: "us-east-1",
		Pods: []*clusterv1.Pod{{
			Namespace: "default", Name: "web-1", Labels: map[string]string{"app": "web"},
			Containers: []*clusterv1.Container{
				{Name: "app", Requests: &clusterv1.Resources{CpuMillis: 500, MemoryBytes: 1 << 30}},
				{Name: "log", Requests: &clusterv1.Resources{CpuMillis: 100, MemoryBytes: 64 << 20}},
			},
			InitContainers: []*clusterv1.Container{
				{Name: "proxy", Sidecar: true, Requests: &clusterv1.Resources{CpuMillis: 200, MemoryBytes: 128 << 20}},
				{Name: "migrate", Requests: &clusterv1.Resources{CpuMillis: 2000, MemoryBytes: 256 << 20}},
			},
			Overhead: &clusterv1.Resources{CpuMillis: 10},
			NodeAffinity: &clusterv1.NodeAffinity{Required: []*clusterv1.NodeSelectorTerm{{Requirements: []*clusterv1.Requirement{
				{Key: model.LabelArch, Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"arm64"}},
				{Key: model.LabelInstanceCPU, Operator: clusterv1.Operator_OPERATOR_GT, Values: []string{"3"}},
			}}}},
		}},
		NodeClasses: []*clusterv1.NodeClass{{Name: "default", Ready: true,
			Kubelet: &clusterv1.Kubelet{KubeReserved: map[string]string{"cpu": "250m", "memory": "1Gi"}, EvictionHard: map[string]string{"memory.available": "5%"}}}},
		NodePools: []*clusterv1.NodePool{{Name: "default", Ready: true, NodeClass: "default", Limits: map[string]int64{"cpu": 100000}}},
		InstanceTypes: []*clusterv1.InstanceType{{Name: "m7g.xlarge", Arch: "arm64",
			Capacity:  &clusterv1.Resources{CpuMillis: 4000, MemoryBytes: 16 << 30, Pods: 58},
			Offerings: []*clusterv1.Offering{{Zone: "us-east-1a", CapacityType: "on-demand", PricePerHour: 0.1632, Available: true}}}},
	}
}

func TestDecodeSnapshot(t *testing.T) {
	t.Parallel()
	s, err := decodeSnapshot(validSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	// Containers 600m/1088Mi plus the sidecar 200m/128Mi; the regular init
	// container peaks at 2000m+200m (sidecar running) and wins on CPU.
	want := model.Resources{CPU: 2200 + 10, Memory: (1024 + 64 + 128) << 20, Pods: 1}
	if diff := cmp.Diff(want, s.Pods[0].Requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	k := s.NodeClasses[0].Kubelet
	if k.KubeReserved["cpu"] != 250 || k.KubeReserved["memory"] != 1<<30 {
		t.Errorf("kube reserved = %v", k.KubeReserved)
	}
	if th := k.EvictionHard["memory.available"]; !th.IsPercent || th.Percent != 5 {
		t.Errorf("eviction = %+v", th)
	}
	if got := s.Pods[0].NodeAffinity.Required[0].Requirements[1]; got.Operator != model.OpGt || got.Values[0] != "3" {
		t.Errorf("requirement = %+v", got)
	}
}

func TestDecodeSnapshotErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(s *clusterv1.Snapshot)
		field  string
	}{
		{"unknown operator", func(s *clusterv1.Snapshot) {
			s.Pods[0].NodeAffinity.Required[0].Requirements[0].Operator = 42
		}, "snapshot.pods[0].node_affinity.required[0].requirements[0].operator"},
		{"gt with a word", func(s *clusterv1.Snapshot) {
			s.Pods[0].NodeAffinity.Required[0].Requirements[1].Values = []string{"four"}
		}, "snapshot.pods[0].node_affinity.required[0].requirements[1].values"},
		{"in without values", func(s *clusterv1.Snapshot) {
			s.Pods[0].NodeAffinity.Required[0].Requirements[0].Values = nil
		}, "snapshot.pods[0].node_affinity.required[0].requirements[0].values"},
		{"duplicate pod", func(s *clusterv1.Snapshot) {
			s.Pods = append(s.Pods, proto.CloneOf(s.Pods[0]))
		}, "snapshot.pods[1].name"},
		{"negative request", func(s *clusterv1.Snapshot) {
			s.Pods[0].Containers[1].Requests.CpuMillis = -1
		}, "snapshot.pods[0].containers[1].requests.cpu_millis"},
		{"negative extended", func(s *clusterv1.Snapshot) {
			s.Pods[0].Containers[0].Requests.Extended = map[string]int64{"nvidia.com/gpu": -2}
		}, `snapshot.pods[0].containers[0].requests.extended["nvidia.com/gpu"]`},
		{"unknown node class", func(s *clusterv1.Snapshot) {
			s.NodePools[0].NodeClass = "missing"
		}, "snapshot.node_pools[0].node_class"},
		{"malformed kube reserved", func(s *clusterv1.Snapshot) {
			s.NodeClasses[0].Kubelet.KubeReserved["cpu"] = "lots"
		}, `snapshot.node_classes[0].kubelet.kube_reserved["cpu"]`},
		{"unknown eviction signal", func(s *clusterv1.Snapshot) {
			s.NodeClasses[0].Kubelet.EvictionHard["cpu.available"] = "1"
		}, `snapshot.node_classes[0].kubelet.eviction_hard["cpu.available"]`},
		{"toleration operator", func(s *clusterv1.Snapshot) {
			s.Pods[0].Tolerations = []*clusterv1.Toleration{{Key: "a", Operator: "Matches"}}
		}, "snapshot.pods[0].tolerations[0].operator"},
		{"taint effect", func(s *clusterv1.Snapshot) {
			s.NodePools[0].Taints = []*clusterv1.Taint{{Key: "a", Effect: "NoWay"}}
		}, "snapshot.node_pools[0].taints[0].effect"},
		{"spread skew", func(s *clusterv1.Snapshot) {
			s.Pods[0].TopologySpread = []*clusterv1.TopologySpreadConstraint{{TopologyKey: model.LabelZone}}
		}, "snapshot.pods[0].topology_spread[0].max_skew"},
		{"affinity without key", func(s *clusterv1.Snapshot) {
			s.Pods[0].PodAntiAffinity = []*clusterv1.PodAffinityTerm{{Selector: &clusterv1.LabelSelector{}}}
		}, "snapshot.pods[0].pod_anti_affinity[0].topology_key"},
		{"negative limit", func(s *clusterv1.Snapshot) {
			s.NodePools[0].Limits["memory"] = -5
		}, `snapshot.node_pools[0].limits["memory"]`},
		{"duplicate instance type", func(s *clusterv1.Snapshot) {
			s.InstanceTypes = append(s.InstanceTypes, proto.CloneOf(s.InstanceTypes[0]))
		}, "snapshot.instance_types[1].name"},
		{"capacity type", func(s *clusterv1.Snapshot) {
			s.InstanceTypes[0].Offerings[0].CapacityType = "cheap"
		}, "snapshot.instance_types[0].offerings[0].capacity_type"},
		{"host port", func(s *clusterv1.Snapshot) {
			s.Pods[0].Containers[0].HostPorts = []*clusterv1.HostPort{{Port: 80, Protocol: "HTTP"}}
		}, "snapshot.pods[0].containers[0].host_ports[0].protocol"},
		{"min values above values", func(s *clusterv1.Snapshot) {
			s.NodePools[0].Requirements = []*clusterv1.Requirement{{Key: model.LabelInstanceFamily, Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"m5"}, MinValues: 2}}
		}, "snapshot.node_pools[0].requirements[0].min_values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := validSnapshot()
			tt.mutate(s)
			_, err := decodeSnapshot(s)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("field = %q, want %q (%s)", fe.Field, tt.field, fe.Description)
			}
		})
	}
}

func TestDecodeSnapshotEmptyCatalogue(t *testing.T) {
	t.Parallel()
	s := validSnapshot()
	s.InstanceTypes = nil
	m, err := decodeSnapshot(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.InstanceTypes) != 0 {
		t.Errorf("catalogue = %d types, want none", len(m.InstanceTypes))
	}
}

func TestEncodePlan(t *testing.T) {
	t.Parallel()
	p := &model.Plan{
		ID: "abc", TotalPricePerHour: 0.2,
		NodeClaims: []*model.NodeClaimPlan{{
			Name: "default-0123456789", NodePool: "default", InstanceType: "m7g.xlarge", Zone: "us-east-1a",
			CapacityType: "on-demand", PricePerHour: 0.2, InstanceTypeOptions: []string{"m7g.xlarge"},
			Pods: []string{"default/web-1"}, Requests: model.Resources{CPU: 1000, Pods: 1},
			Requirements: []model.Requirement{{Key: model.LabelArch, Operator: model.OpIn, Values: []string{"arm64"}}},
			Options:      []model.InstanceOption{{InstanceType: "m7g.xlarge", Zone: "us-east-1a", CapacityType: "on-demand", PricePerHour: 0.2}},
		}},
		Placements:    []*model.Placement{{Node: "claim-a", Pods: []string{"default/web-2"}, InFlight: true}},
		Unschedulable: []*model.UnschedulablePod{{Pod: "default/big", Reason: "no instance type in NodePool default has 96 GiB memory"}},
	}
	got := encodePlan(p)
	want := &clusterv1.Plan{
		Id: "abc", TotalPricePerHour: 0.2,
		NodeClaims: []*clusterv1.NodeClaimPlan{{
			Name: "default-0123456789", NodePool: "default", InstanceType: "m7g.xlarge", Zone: "us-east-1a",
			CapacityType: "on-demand", PricePerHour: 0.2, InstanceTypeOptions: []string{"m7g.xlarge"},
			Pods: []string{"default/web-1"}, Requests: &clusterv1.Resources{CpuMillis: 1000, Pods: 1},
			Requirements: []*clusterv1.Requirement{{Key: model.LabelArch, Operator: clusterv1.Operator_OPERATOR_IN, Values: []string{"arm64"}}},
			Options:      []*clusterv1.InstanceOption{{InstanceType: "m7g.xlarge", Zone: "us-east-1a", CapacityType: "on-demand", PricePerHour: 0.2}},
		}},
		ExistingNodes: []*clusterv1.NodePlacement{{Node: "claim-a", Pods: []string{"default/web-2"}, InFlight: true}},
		Unschedulable: []*clusterv1.Unschedulable{{Pod: "default/big", Reason: "no instance type in NodePool default has 96 GiB memory"}},
	}
	if !proto.Equal(got, want) {
		t.Errorf("encodePlan =\n%v\nwant\n%v", got, want)
	}
}
