package catalog

import (
	"errors"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
)

func usEast1(t testing.TB) map[string]*clusterv1.InstanceType {
	t.Helper()
	types, err := Region("us-east-1")
	if err != nil {
		t.Fatalf("Region(us-east-1): %v", err)
	}
	byName := make(map[string]*clusterv1.InstanceType, len(types))
	for _, it := range types {
		byName[it.GetName()] = it
	}
	return byName
}

func TestRegionKnownTypes(t *testing.T) {
	t.Parallel()
	types := usEast1(t)
	const gib = 1 << 30
	tests := []struct {
		name     string
		arch     string
		cpu      int64 // millis
		memory   int64 // bytes
		pods     int64
		extended map[string]int64
		labels   map[string]string // a subset that must match
		absent   []string          // labels that must not be set
		zones    []string
	}{
		{
			name: "m5.large", arch: "amd64", cpu: 2000, memory: 8 * gib, pods: 29,
			extended: map[string]int64{ResourceAWSPodENI: 9},
			labels: map[string]string{
				LabelInstanceFamily: "m5", LabelInstanceCategory: "m", LabelInstanceGeneration: "5",
				LabelInstanceSize: "large", LabelInstanceCPU: "2", LabelInstanceMemory: "8192",
				LabelInstanceCPUManufacturer: "intel", LabelInstanceHypervisor: "nitro",
			},
			absent: []string{LabelInstanceGPUCount, LabelInstanceLocalNVMe},
			zones:  []string{"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f"},
		},
		{
			name: "t3.medium", arch: "amd64", cpu: 2000, memory: 4 * gib, pods: 17,
			labels: map[string]string{LabelInstanceCategory: "t", LabelInstanceGeneration: "3", LabelInstanceNetworkBandwidth: "256"},
		},
		{
			name: "c7g.xlarge", arch: "arm64", cpu: 4000, memory: 8 * gib, pods: 58,
			extended: map[string]int64{ResourceAWSPodENI: 18},
			labels: map[string]string{
				LabelArch: "arm64", LabelInstanceCategory: "c", LabelInstanceGeneration: "7",
				LabelInstanceFamily: "c7g", LabelInstanceCPUManufacturer: "aws",
			},
		},
		{
			// p3.2xlarge, the usual one-GPU example, is not in this data
			// snapshot (no spec, no us-east-1 offering); these are.
			name: "g4dn.xlarge", arch: "amd64", cpu: 4000, memory: 16 * gib, pods: 29,
			extended: map[string]int64{ResourceNVIDIAGPU: 1, ResourceAWSPodENI: 39},
			labels: map[string]string{
				LabelInstanceGPUCount: "1", LabelInstanceGPUName: "t4", LabelInstanceGPUManufacturer: "nvidia",
				LabelInstanceGPUMemory: "16384", LabelInstanceLocalNVMe: "125", LabelInstanceCategory: "g",
			},
		},
		{
			name: "p5.4xlarge", arch: "amd64", cpu: 16000, memory: 256 * gib, pods: 110,
			extended: map[string]int64{ResourceNVIDIAGPU: 1, ResourceAWSPodENI: 58},
			labels:   map[string]string{LabelInstanceGPUName: "h100", LabelInstanceGPUMemory: "81920", LabelInstanceCategory: "p"},
		},
		{
			name: "g4ad.xlarge", arch: "amd64", cpu: 4000, memory: 16 * gib, pods: 8,
			extended: map[string]int64{ResourceAMDGPU: 1, ResourceAWSPodENI: 12},
			labels:   map[string]string{LabelInstanceGPUManufacturer: "amd", LabelInstanceGPUName: "radeon-pro-v520"},
		},
		{
			name: "inf2.xlarge", arch: "amd64", cpu: 4000, memory: 16 * gib, pods: 58,
			extended: map[string]int64{ResourceAWSNeuron: 1, ResourceAWSNeuronCore: 2, ResourceAWSPodENI: 18},
			labels: map[string]string{
				LabelInstanceCategory: "inf", LabelInstanceAcceleratorName: "inferentia2",
				LabelInstanceAcceleratorManufacturer: "aws", LabelInstanceAcceleratorCount: "1",
			},
			absent: []string{LabelInstanceGPUCount},
		},
		// 32 vCPUs: the 250 cap applies, but the ENI limit (8×29+2) is lower.
		{name: "m5.8xlarge", arch: "amd64", cpu: 32000, memory: 128 * gib, pods: 234, extended: map[string]int64{ResourceAWSPodENI: 54}},
		// 64 vCPUs, ENI limit 737: capped at 250.
		{name: "m5.16xlarge", arch: "amd64", cpu: 64000, memory: 256 * gib, pods: 250, extended: map[string]int64{ResourceAWSPodENI: 107}},
		// 16 vCPUs, ENI limit 234: capped at 110.
		{name: "m5.4xlarge", arch: "amd64", cpu: 16000, memory: 64 * gib, pods: 110, extended: map[string]int64{ResourceAWSPodENI: 54}},
		{
			// i386;x86_64 is amd64; xen; no numeric bandwidth; no pod ENIs.
			name: "t2.micro", arch: "amd64", cpu: 1000, memory: 1 * gib, pods: 4,
			labels: map[string]string{LabelInstanceHypervisor: "xen"},
			absent: []string{LabelInstanceNetworkBandwidth},
		},
		{
			name: "m5.metal", arch: "amd64", cpu: 96000, memory: 384 * gib, pods: 250,
			extended: map[string]int64{ResourceAWSPodENI: 120},
			labels:   map[string]string{LabelInstanceSize: "metal"},
			absent:   []string{LabelInstanceHypervisor},
		},
		{
			name: "d2.xlarge", arch: "amd64", cpu: 4000, memory: 31232 << 20, pods: 58,
			absent: []string{LabelInstanceLocalNVMe}, // HDD, NVMe unsupported
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			it := types[tt.name]
			if it == nil {
				t.Fatalf("%s missing from the us-east-1 catalogue", tt.name)
			}
			if it.GetArch() != tt.arch {
				t.Errorf("arch = %q, want %q", it.GetArch(), tt.arch)
			}
			want := &clusterv1.Resources{CpuMillis: tt.cpu, MemoryBytes: tt.memory, Pods: tt.pods, Extended: tt.extended}
			if diff := cmp.Diff(want, it.GetCapacity(), protocmp.Transform()); diff != "" {
				t.Errorf("capacity mismatch (-want +got):\n%s", diff)
			}
			for k, v := range tt.labels {
				if got, ok := it.GetLabels()[k]; !ok || got != v {
					t.Errorf("label %s = %q (set %v), want %q", k, got, ok, v)
				}
			}
			for _, k := range tt.absent {
				if v, ok := it.GetLabels()[k]; ok {
					t.Errorf("label %s = %q, want it unset", k, v)
				}
			}
			if tt.zones != nil {
				var got []string
				for _, o := range it.GetOfferings() {
					if o.GetCapacityType() == CapacityTypeOnDemand {
						got = append(got, o.GetZone())
					}
				}
				if diff := cmp.Diff(tt.zones, got); diff != "" {
					t.Errorf("on-demand zones mismatch (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff([]string{"linux"}, it.GetOperatingSystems()); diff != "" {
				t.Errorf("operating systems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// The full label set of one type, so a change in names or value formats is
// seen.
func TestRegionLabelsM5Large(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"node.kubernetes.io/instance-type":                         "m5.large",
		"kubernetes.io/arch":                                       "amd64",
		"topology.kubernetes.io/region":                            "us-east-1",
		"karpenter.k8s.aws/instance-family":                        "m5",
		"karpenter.k8s.aws/instance-category":                      "m",
		"karpenter.k8s.aws/instance-generation":                    "5",
		"karpenter.k8s.aws/instance-size":                          "large",
		"karpenter.k8s.aws/instance-capability-flex":               "false",
		"karpenter.k8s.aws/instance-cpu":                           "2",
		"karpenter.k8s.aws/instance-cpu-manufacturer":              "intel",
		"karpenter.k8s.aws/instance-cpu-sustained-clock-speed-mhz": "3100",
		"karpenter.k8s.aws/instance-memory":                        "8192",
		"karpenter.k8s.aws/instance-hypervisor":                    "nitro",
		"karpenter.k8s.aws/instance-network-bandwidth":             "750",
		"karpenter.k8s.aws/instance-ebs-bandwidth":                 "4750",
	}
	if diff := cmp.Diff(want, usEast1(t)["m5.large"].GetLabels()); diff != "" {
		t.Errorf("m5.large labels mismatch (-want +got):\n%s", diff)
	}
}

func TestRegionOfferingsM5Large(t *testing.T) {
	t.Parallel()
	var want []*clusterv1.Offering
	// Zone IDs as moto's DescribeAvailabilityZones reports them.
	for _, z := range []struct{ name, id string }{
		{"us-east-1a", "use1-az6"}, {"us-east-1b", "use1-az1"}, {"us-east-1c", "use1-az2"},
		{"us-east-1d", "use1-az4"}, {"us-east-1f", "use1-az5"},
	} {
		want = append(want,
			&clusterv1.Offering{Zone: z.name, ZoneId: z.id, CapacityType: "on-demand", PricePerHour: 0.096, Available: true, PriceSource: "embedded"},
			&clusterv1.Offering{Zone: z.name, ZoneId: z.id, CapacityType: "spot", PricePerHour: SyntheticSpotPrice("m5.large", z.name, 0.096), Available: true, PriceSource: "synthetic"},
		)
	}
	if diff := cmp.Diff(want, usEast1(t)["m5.large"].GetOfferings(), protocmp.Transform()); diff != "" {
		t.Errorf("m5.large offerings mismatch (-want +got):\n%s", diff)
	}
}

// Region must agree, row for row, with the example --catalog file built from
// the same data: vcpu, memory, arch, GPUs, max pods, the on-demand price, and
// which of us-east-1a/b/c offer the type on demand and as spot.
func TestRegionAgreesWithExampleCatalog(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/catalog-us-east-1-example.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	example, err := ReadCSV(f, "catalog-us-east-1-example.csv")
	if err != nil {
		t.Fatal(err)
	}
	types := usEast1(t)
	if len(example) < 1000 {
		t.Fatalf("example catalogue has %d types, expected over 1000", len(example))
	}
	exampleZones := []string{"us-east-1a", "us-east-1b", "us-east-1c"}
	for _, ex := range example {
		got := types[ex.GetName()]
		if got == nil {
			t.Errorf("%s: in the example catalogue, not in Region(us-east-1)", ex.GetName())
			continue
		}
		gc, ec := got.GetCapacity(), ex.GetCapacity()
		gpus := gc.GetExtended()[ResourceNVIDIAGPU] + gc.GetExtended()[ResourceAMDGPU]
		exGPUs := ec.GetExtended()[ResourceNVIDIAGPU] + ec.GetExtended()[ResourceAMDGPU]
		type facts struct {
			CPU, Memory, Pods, GPUs int64
			Arch                    string
		}
		w := facts{ec.GetCpuMillis(), ec.GetMemoryBytes(), ec.GetPods(), exGPUs, ex.GetArch()}
		g := facts{gc.GetCpuMillis(), gc.GetMemoryBytes(), gc.GetPods(), gpus, got.GetArch()}
		if w != g {
			t.Errorf("%s: example %+v, Region %+v", ex.GetName(), w, g)
		}
		// The GPU resource name too: the file reader knows g4ad is AMD.
		if diff := cmp.Diff(ec.GetExtended(), gpuOnly(gc.GetExtended())); diff != "" {
			t.Errorf("%s: GPU resources mismatch (-example +Region):\n%s", ex.GetName(), diff)
		}
		want := offeringKeys(ex.GetOfferings(), exampleZones)
		have := offeringKeys(got.GetOfferings(), exampleZones)
		if diff := cmp.Diff(want, have); diff != "" {
			t.Errorf("%s: offerings in us-east-1a/b/c mismatch (-example +Region):\n%s", ex.GetName(), diff)
		}
		for _, o := range ex.GetOfferings() {
			if o.GetCapacityType() != CapacityTypeOnDemand {
				continue
			}
			for _, g := range got.GetOfferings() {
				if g.GetZone() == o.GetZone() && g.GetCapacityType() == CapacityTypeOnDemand && g.GetPricePerHour() != o.GetPricePerHour() {
					t.Errorf("%s %s: on-demand price %v, example %v", ex.GetName(), o.GetZone(), g.GetPricePerHour(), o.GetPricePerHour())
				}
			}
		}
	}
}

// diffTypes reports the first difference between two catalogues (cmp.Diff
// over the whole of one is slow).
func diffTypes(t *testing.T, a, b []*clusterv1.InstanceType) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d types, then %d", len(a), len(b))
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			t.Fatalf("%s differs (-first +second):\n%s", a[i].GetName(), cmp.Diff(a[i], b[i], protocmp.Transform()))
		}
	}
}

func gpuOnly(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for _, k := range []string{ResourceNVIDIAGPU, ResourceAMDGPU} {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// offeringKeys lists "zone/capacity-type" of the offerings in zones.
func offeringKeys(offerings []*clusterv1.Offering, zones []string) []string {
	var keys []string
	for _, o := range offerings {
		if slices.Contains(zones, o.GetZone()) {
			keys = append(keys, o.GetZone()+"/"+o.GetCapacityType())
		}
	}
	return keys
}

func TestRegionDeterministic(t *testing.T) {
	t.Parallel()
	a, err := Region("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	// Scribbling on one result must not leak into the next.
	a[0].Labels["scribble"] = "x"
	a[0].Offerings[0].PricePerHour = -1
	a[0].Labels = nil
	b, err := Region("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Region("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	diffTypes(t, b, c)
	if b[0].GetLabels()["scribble"] != "" || b[0].GetOfferings()[0].GetPricePerHour() < 0 {
		t.Error("a caller's change to one result shows in the next")
	}
}

// Invariants over the whole catalogue.
func TestRegionInvariants(t *testing.T) {
	t.Parallel()
	types, err := Region("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(types) < 1200 {
		t.Errorf("Region(us-east-1) has %d types, want over 1200", len(types))
	}
	f, err := loadFacts()
	if err != nil {
		t.Fatal(err)
	}
	motoZoneIDs := f.zoneIDs["us-east-1"]
	for i, it := range types {
		name := it.GetName()
		if i > 0 && types[i-1].GetName() >= name {
			t.Errorf("not sorted by name: %s before %s", types[i-1].GetName(), name)
		}
		if a := it.GetArch(); a != ArchAMD64 && a != ArchARM64 {
			t.Errorf("%s: arch %q", name, a)
		}
		if it.GetLabels()[LabelArch] != it.GetArch() || it.GetLabels()[LabelInstanceType] != name {
			t.Errorf("%s: arch/instance-type labels disagree with the type: %v", name, it.GetLabels())
		}
		if it.GetLabels()[LabelInstanceCategory] == "" || it.GetLabels()[LabelInstanceGeneration] == "" {
			t.Errorf("%s: no category/generation label", name)
		}
		for k, v := range it.GetLabels() {
			if !validLabelValue(v) {
				t.Errorf("%s: label %s=%q is not a valid label value", name, k, v)
			}
		}
		c := it.GetCapacity()
		if c.GetCpuMillis() <= 0 || c.GetMemoryBytes() <= 0 || c.GetPods() <= 0 || c.GetPods() > 250 {
			t.Errorf("%s: capacity %v", name, c)
		}
		if c.GetCpuMillis() < 30000 && c.GetPods() > 110 {
			t.Errorf("%s: %d pods on fewer than 30 vCPUs", name, c.GetPods())
		}
		onDemand := map[string]float64{}
		for _, o := range it.GetOfferings() {
			if !o.GetAvailable() {
				t.Errorf("%s %s %s: unavailable", name, o.GetZone(), o.GetCapacityType())
			}
			if id, ok := motoZoneIDs[o.GetZone()]; !ok || o.GetZoneId() != id {
				t.Errorf("%s: zone %s id %q, moto says %q", name, o.GetZone(), o.GetZoneId(), id)
			}
			switch o.GetCapacityType() {
			case CapacityTypeOnDemand:
				if o.GetPriceSource() != PriceSourceEmbedded || o.GetPricePerHour() <= 0 {
					t.Errorf("%s %s: on-demand %v from %q", name, o.GetZone(), o.GetPricePerHour(), o.GetPriceSource())
				}
				onDemand[o.GetZone()] = o.GetPricePerHour()
			case CapacityTypeSpot:
				od, ok := onDemand[o.GetZone()]
				if !ok {
					t.Errorf("%s %s: spot offering without on-demand before it", name, o.GetZone())
					continue
				}
				if o.GetPriceSource() != PriceSourceSynthetic {
					t.Errorf("%s %s: spot price source %q, want %q", name, o.GetZone(), o.GetPriceSource(), PriceSourceSynthetic)
				}
				if r := o.GetPricePerHour() / od; r < 0.29 || r > 0.71 {
					t.Errorf("%s %s: spot %v is %.3f of on-demand %v", name, o.GetZone(), o.GetPricePerHour(), r, od)
				}
				if !(o.GetPricePerHour() > 0 && o.GetPricePerHour() < od) {
					t.Errorf("%s %s: spot %v not cheaper than on-demand %v", name, o.GetZone(), o.GetPricePerHour(), od)
				}
			default:
				t.Errorf("%s: capacity type %q", name, o.GetCapacityType())
			}
		}
		if len(onDemand) == 0 {
			t.Errorf("%s: no on-demand offering", name)
		}
	}
}

func TestRegionLeavesOut(t *testing.T) {
	t.Parallel()
	types := usEast1(t)
	for _, name := range []string{
		"mac2.metal",     // arm64_mac: not a Kubernetes architecture
		"mac1.metal",     // x86_64_mac
		"p3.2xlarge",     // priced, but no spec or us-east-1 offering in the data
		"dl1.24xlarge",   // priced, not offered
		"does-not.exist", // nothing
	} {
		if _, ok := types[name]; ok {
			t.Errorf("%s is in the catalogue", name)
		}
	}
}

func TestRegionNotEmbedded(t *testing.T) {
	t.Parallel()
	// us-west-2 has offerings but no prices; the others have neither.
	for _, region := range []string{"us-west-2", "eu-west-1", "us-gov-west-1", ""} {
		t.Run(region, func(t *testing.T) {
			t.Parallel()
			types, err := Region(region)
			if !errors.Is(err, ErrRegionNotEmbedded) {
				t.Errorf("Region(%q) error = %v, want ErrRegionNotEmbedded", region, err)
			}
			if types != nil {
				t.Errorf("Region(%q) returned %d types with an error", region, len(types))
			}
		})
	}
	if diff := cmp.Diff([]string{"us-east-1"}, Regions()); diff != "" {
		t.Errorf("Regions() mismatch (-want +got):\n%s", diff)
	}
}

func TestMaxPods(t *testing.T) {
	t.Parallel()
	tests := []struct {
		vcpu, eni, want int64
	}{
		{2, 29, 29},
		{16, 234, 110},
		{29, 737, 110},
		{30, 737, 250},
		{32, 234, 234},
		{96, 0, 0},
	}
	for _, tt := range tests {
		if got := MaxPods(tt.vcpu, tt.eni); got != tt.want {
			t.Errorf("MaxPods(%d, %d) = %d, want %d", tt.vcpu, tt.eni, got, tt.want)
		}
	}
	if got, ok := ENIPods("m5.16xlarge"); !ok || got != 737 {
		t.Errorf("ENIPods(m5.16xlarge) = %d, %v; want 737, true", got, ok)
	}
	if _, ok := ENIPods("nope.large"); ok {
		t.Error("ENIPods(nope.large) found a limit")
	}
}

func TestSyntheticSpotPrice(t *testing.T) {
	t.Parallel()
	if a, b := SyntheticSpotPrice("m5.large", "us-east-1a", 0.096), SyntheticSpotPrice("m5.large", "us-east-1a", 0.096); a != b {
		t.Errorf("not deterministic: %v, %v", a, b)
	}
	// Different zones of one type get different prices (so spot pools differ).
	seen := map[float64]bool{}
	for _, z := range []string{"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f"} {
		seen[SyntheticSpotPrice("m5.large", z, 0.096)] = true
	}
	if len(seen) < 4 {
		t.Errorf("5 zones gave %d distinct spot prices", len(seen))
	}
	for _, od := range []float64{0.0000001, 0.0042, 0.096, 98.32} {
		p := SyntheticSpotPrice("x.large", "z", od)
		if !(p > 0 && p < od) || math.IsNaN(p) {
			t.Errorf("SyntheticSpotPrice(od=%v) = %v, want in (0, od)", od, p)
		}
	}
	if p := SyntheticSpotPrice("x.large", "z", 0); p != 0 {
		t.Errorf("SyntheticSpotPrice(od=0) = %v, want 0", p)
	}
}

func validLabelValue(v string) bool {
	if len(v) > 63 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && !((c == '-' || c == '_' || c == '.') && i > 0 && i < len(v)-1) {
			return false
		}
	}
	return true
}

func BenchmarkRegion(b *testing.B) {
	if _, err := loadFacts(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		types, err := Region("us-east-1")
		if err != nil {
			b.Fatal(err)
		}
		n = len(types)
	}
	b.ReportMetric(float64(n), "types")
}

// BenchmarkLoadFacts measures the one-time parse of the embedded CSVs.
func BenchmarkLoadFacts(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseAll(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestKubeArch(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"x86_64": "amd64", "i386;x86_64": "amd64", "arm64": "arm64",
		"i386": "", "arm64_mac": "", "x86_64_mac": "", "": "",
	} {
		if got := kubeArch(in); got != want {
			t.Errorf("kubeArch(%q) = %q, want %q", in, got, want)
		}
	}
}
