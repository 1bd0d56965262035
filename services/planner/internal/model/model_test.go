package model

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseQuantity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		res, in string
		want    int64
	}{
		{ResourceCPU, "100m", 100},
		{ResourceCPU, "1.5", 1500},
		{ResourceCPU, "2", 2000},
		{ResourceCPU, "0.0005", 1}, // rounded up
		{ResourceMemory, "1Gi", 1 << 30},
		{ResourceMemory, "100Mi", 100 << 20},
		{ResourceMemory, "1.5Gi", 3 << 29},
		{ResourceMemory, "1G", 1_000_000_000},
		{ResourceMemory, "2e3", 2000},
		{ResourceMemory, "128974848", 128974848},
		{ResourceEphemeralStorage, "3Gi", 3 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseQuantity(tt.res, tt.in)
			if err != nil || got != tt.want {
				t.Errorf("ParseQuantity(%q, %q) = %d, %v; want %d", tt.res, tt.in, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "lots", "1Qi", "--1", "1e99"} {
		if _, err := ParseQuantity(ResourceMemory, bad); !errors.Is(err, ErrQuantity) {
			t.Errorf("ParseQuantity(%q) err = %v, want ErrQuantity", bad, err)
		}
	}
}

func TestPodRequests(t *testing.T) {
	t.Parallel()
	c := func(cpu, mem int64, sidecar bool) Container {
		return Container{Requests: Resources{CPU: cpu, Memory: mem}, Sidecar: sidecar}
	}
	tests := []struct {
		name       string
		containers []Container
		init       []Container
		overhead   Resources
		want       Resources
	}{
		{"containers add up", []Container{c(100, 10, false), c(200, 20, false)}, nil, Resources{}, Resources{CPU: 300, Memory: 30, Pods: 1}},
		{"init container peak wins", []Container{c(100, 10, false)}, []Container{c(500, 5, false)}, Resources{}, Resources{CPU: 500, Memory: 10, Pods: 1}},
		{"sidecar adds to the running sum", []Container{c(100, 10, false)}, []Container{c(50, 50, true)}, Resources{}, Resources{CPU: 150, Memory: 60, Pods: 1}},
		// The init container after a sidecar peaks together with it.
		{"init after a sidecar", []Container{c(100, 10, false)}, []Container{c(50, 50, true), c(400, 10, false)}, Resources{}, Resources{CPU: 450, Memory: 60, Pods: 1}},
		{"overhead on top", []Container{c(100, 10, false)}, nil, Resources{CPU: 10, Memory: 1}, Resources{CPU: 110, Memory: 11, Pods: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, PodRequests(tt.containers, tt.init, tt.overhead)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAllocatable(t *testing.T) {
	t.Parallel()
	const mi = 1 << 20
	m5large := &InstanceType{Name: "m5.large", Arch: "amd64", Capacity: Resources{CPU: 2000, Memory: 8192 * mi, Pods: 29}}
	m6gxl := &InstanceType{Name: "m6g.xlarge", Arch: "arm64", Capacity: Resources{CPU: 4000, Memory: 16384 * mi, Pods: 58}}
	tests := []struct {
		name string
		it   *InstanceType
		k    *Kubelet
		want Resources
	}{
		// CPU 2000 - (60 + 10); memory 8192 - ceil(8192*0.075)=615 VM
		// overhead - (11*29+255)=574 kube-reserved - 100 eviction; storage
		// 20Gi - 1Gi kube-reserved - 10% eviction.
		{"m5.large defaults", m5large, nil, Resources{CPU: 1930, Memory: 6903 * mi, Pods: 29, EphemeralStorage: 20<<30 - 1<<30 - 2147483648}},
		// arm64 keeps 64 MiB more; 4 cores reserve 60+10+5+5 = 80m.
		{"m6g.xlarge defaults", m6gxl, nil, Resources{CPU: 3920, Memory: (16320 - 1224 - 893 - 100) * mi, Pods: 58, EphemeralStorage: 20<<30 - 1<<30 - 2147483648}},
		{"kubelet overrides", m5large, &Kubelet{MaxPods: 20, KubeReserved: map[string]int64{ResourceCPU: 500}, SystemReserved: map[string]int64{ResourceMemory: 100 * mi},
			EvictionHard: map[string]Threshold{SignalMemoryAvailable: {Percent: 5, IsPercent: true}}},
			// memory: 7577 - (11*20+255)=475 - 100 system - ceil(5% of 7577 MiB)
			Resources{CPU: 1500, Memory: 7577*mi - 475*mi - 100*mi - 397253018, Pods: 20, EphemeralStorage: 20<<30 - 1<<30 - 2147483648}},
		{"pods per core", m6gxl, &Kubelet{PodsPerCore: 2}, Resources{CPU: 3920, Memory: (16320 - 1224 - (11*8 + 255) - 100) * mi, Pods: 8, EphemeralStorage: 20<<30 - 1<<30 - 2147483648}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, tt.it.Allocatable(tt.k)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodeLabels(t *testing.T) {
	t.Parallel()
	it := &InstanceType{Name: "c6gn.2xlarge", Arch: "arm64", Capacity: Resources{CPU: 8000, Memory: 16 << 30}}
	got := it.NodeLabels()
	want := map[string]string{LabelInstanceType: "c6gn.2xlarge", LabelArch: "arm64", LabelOS: "linux", LabelInstanceFamily: "c6gn",
		LabelInstanceSize: "2xlarge", LabelInstanceCategory: "c", LabelInstanceGeneration: "6", LabelInstanceCPU: "8", LabelInstanceMemory: "16384"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestTolerations(t *testing.T) {
	t.Parallel()
	taint := Taint{Key: "dedicated", Value: "gpu", Effect: TaintNoSchedule}
	tests := []struct {
		tol  Toleration
		want bool
	}{
		{Toleration{Key: "dedicated", Value: "gpu"}, true},
		{Toleration{Key: "dedicated", Operator: "Equal", Value: "cpu"}, false},
		{Toleration{Key: "dedicated", Operator: "Exists"}, true},
		{Toleration{Operator: "Exists"}, true},
		{Toleration{Key: "dedicated", Operator: "Exists", Effect: TaintNoExecute}, false},
		{Toleration{Key: "other", Operator: "Exists"}, false},
	}
	for _, tt := range tests {
		if got := tt.tol.Tolerates(taint); got != tt.want {
			t.Errorf("%+v tolerates %v = %t, want %t", tt.tol, taint, got, tt.want)
		}
	}
	if _, ok := ToleratesAll(nil, []Taint{{Key: "soft", Effect: TaintPreferNoSchedule}}); !ok {
		t.Errorf("PreferNoSchedule taints must not keep pods off")
	}
}

func TestRequirementMatches(t *testing.T) {
	t.Parallel()
	labels := map[string]string{"cpu": "8", "arch": "arm64"}
	tests := []struct {
		r    Requirement
		want bool
	}{
		{Requirement{Key: "arch", Operator: OpIn, Values: []string{"arm64"}}, true},
		{Requirement{Key: "arch", Operator: OpNotIn, Values: []string{"arm64"}}, false},
		{Requirement{Key: "missing", Operator: OpNotIn, Values: []string{"x"}}, true},
		{Requirement{Key: "missing", Operator: OpDoesNotExist}, true},
		{Requirement{Key: "arch", Operator: OpExists}, true},
		{Requirement{Key: "cpu", Operator: OpGt, Values: []string{"4"}}, true},
		{Requirement{Key: "cpu", Operator: OpLt, Values: []string{"8"}}, false},
		{Requirement{Key: "arch", Operator: OpGt, Values: []string{"4"}}, false},
	}
	for _, tt := range tests {
		if got := tt.r.Matches(labels); got != tt.want {
			t.Errorf("%v matches %v = %t, want %t", tt.r, labels, got, tt.want)
		}
	}
}
