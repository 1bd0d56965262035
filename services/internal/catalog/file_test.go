package catalog

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
)

const header = "instance_type,vcpu,memory_mib,arch,gpus,max_pods,zone,capacity_type,price_per_hour\n"

func TestReadCSV(t *testing.T) {
	t.Parallel()
	// Columns in another order, a comment, blank lines, padding, a BOM, an
	// AMD GPU type the embedded facts know and a made-up GPU type they don't.
	in := "\ufeffzone, instance_type,capacity_type,price_per_hour,vcpu,memory_mib,arch,gpus,max_pods\n" +
		"# spot prices are made up\n" +
		"us-east-1b,m5.large,spot,0.04,2,8192,amd64,0,29\n" +
		"\n" +
		"us-east-1a,m5.large,spot,0.035,2,8192,amd64,0,29\n" +
		"us-east-1a, m5.large ,on-demand,0.096,2,8192,amd64,0,29\n" +
		"us-east-1a,g4ad.xlarge,on-demand,0.37853,4,16384,amd64,1,8\n" +
		"zone-x,gpubox,on-demand,1.5,8,32768,arm64,2,110\n"
	got, err := ReadCSV(strings.NewReader(in), "catalog.csv")
	if err != nil {
		t.Fatal(err)
	}
	offering := func(zone, ct string, price float64) *clusterv1.Offering {
		return &clusterv1.Offering{Zone: zone, CapacityType: ct, PricePerHour: price, Available: true, PriceSource: "catalog-file"}
	}
	want := []*clusterv1.InstanceType{
		{
			Name: "g4ad.xlarge", Arch: "amd64",
			Capacity: &clusterv1.Resources{CpuMillis: 4000, MemoryBytes: 16 << 30, Pods: 8, Extended: map[string]int64{"amd.com/gpu": 1}},
			Labels: map[string]string{
				"node.kubernetes.io/instance-type":            "g4ad.xlarge",
				"kubernetes.io/arch":                          "amd64",
				"karpenter.k8s.aws/instance-family":           "g4ad",
				"karpenter.k8s.aws/instance-category":         "g",
				"karpenter.k8s.aws/instance-generation":       "4",
				"karpenter.k8s.aws/instance-size":             "xlarge",
				"karpenter.k8s.aws/instance-capability-flex":  "false",
				"karpenter.k8s.aws/instance-cpu":              "4",
				"karpenter.k8s.aws/instance-memory":           "16384",
				"karpenter.k8s.aws/instance-gpu-count":        "1",
				"karpenter.k8s.aws/instance-gpu-manufacturer": "amd",
			},
			Offerings:        []*clusterv1.Offering{offering("us-east-1a", "on-demand", 0.37853)},
			OperatingSystems: []string{"linux"},
		},
		{
			// Not "family.size": only the columns' labels.
			Name: "gpubox", Arch: "arm64",
			Capacity: &clusterv1.Resources{CpuMillis: 8000, MemoryBytes: 32 << 30, Pods: 110, Extended: map[string]int64{"nvidia.com/gpu": 2}},
			Labels: map[string]string{
				"node.kubernetes.io/instance-type":     "gpubox",
				"kubernetes.io/arch":                   "arm64",
				"karpenter.k8s.aws/instance-cpu":       "8",
				"karpenter.k8s.aws/instance-memory":    "32768",
				"karpenter.k8s.aws/instance-gpu-count": "2",
			},
			Offerings:        []*clusterv1.Offering{offering("zone-x", "on-demand", 1.5)},
			OperatingSystems: []string{"linux"},
		},
		{
			Name: "m5.large", Arch: "amd64",
			Capacity: &clusterv1.Resources{CpuMillis: 2000, MemoryBytes: 8 << 30, Pods: 29},
			Labels: map[string]string{
				"node.kubernetes.io/instance-type":           "m5.large",
				"kubernetes.io/arch":                         "amd64",
				"karpenter.k8s.aws/instance-family":          "m5",
				"karpenter.k8s.aws/instance-category":        "m",
				"karpenter.k8s.aws/instance-generation":      "5",
				"karpenter.k8s.aws/instance-size":            "large",
				"karpenter.k8s.aws/instance-capability-flex": "false",
				"karpenter.k8s.aws/instance-cpu":             "2",
				"karpenter.k8s.aws/instance-memory":          "8192",
			},
			Offerings: []*clusterv1.Offering{
				offering("us-east-1a", "on-demand", 0.096),
				offering("us-east-1a", "spot", 0.035),
				offering("us-east-1b", "spot", 0.04),
			},
			OperatingSystems: []string{"linux"},
		},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("ReadCSV mismatch (-want +got):\n%s", diff)
	}
}

func TestReadCSVExample(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/catalog-us-east-1-example.csv")
	if err != nil {
		t.Fatal(err)
	}
	types, err := ReadCSV(strings.NewReader(string(b)), "example.csv")
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Count(string(b), "\n") - 1
	var offerings int
	for _, it := range types {
		offerings += len(it.GetOfferings())
	}
	if offerings != rows {
		t.Errorf("%d offerings from %d rows", offerings, rows)
	}
	again, err := ReadCSV(strings.NewReader(string(b)), "example.csv")
	if err != nil {
		t.Fatal(err)
	}
	diffTypes(t, types, again)
}

func TestReadCSVErrors(t *testing.T) {
	t.Parallel()
	const row = "m5.large,2,8192,amd64,0,29,us-east-1a,on-demand,0.096\n"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"bad price", header + "m5.large,2,8192,amd64,0,29,us-east-1a,on-demand,abc\n",
			`catalog.csv:2: price_per_hour: invalid number "abc"`},
		{"line numbers count comments and blank lines", header + "# note\n\n" + row + "m5.large,2,8192,amd64,0,29,us-east-1b,spot,abc\n",
			`catalog.csv:5: price_per_hour: invalid number "abc"`},
		{"NaN price", header + "m5.large,2,8192,amd64,0,29,us-east-1a,on-demand,NaN\n",
			`catalog.csv:2: price_per_hour: invalid number "NaN"`},
		{"infinite price", header + "m5.large,2,8192,amd64,0,29,us-east-1a,on-demand,+Inf\n",
			`catalog.csv:2: price_per_hour: invalid number "+Inf"`},
		{"negative price", header + "m5.large,2,8192,amd64,0,29,us-east-1a,on-demand,-0.1\n",
			`catalog.csv:2: price_per_hour: must not be negative, got -0.1`},
		{"missing price", header + "m5.large,2,8192,amd64,0,29,us-east-1a,on-demand,\n",
			`catalog.csv:2: price_per_hour: missing value`},
		{"negative vcpu", header + "m5.large,-2,8192,amd64,0,29,us-east-1a,on-demand,0.096\n",
			`catalog.csv:2: vcpu: must not be negative, got -2`},
		{"zero vcpu", header + "m5.large,0,8192,amd64,0,29,us-east-1a,on-demand,0.096\n",
			`catalog.csv:2: vcpu: must be between 1 and 9223372036854775, got 0`},
		{"fractional vcpu", header + "m5.large,2.5,8192,amd64,0,29,us-east-1a,on-demand,0.096\n",
			`catalog.csv:2: vcpu: invalid integer "2.5"`},
		{"huge memory", header + "m5.large,2,99999999999999999999,amd64,0,29,us-east-1a,on-demand,0.096\n",
			`catalog.csv:2: memory_mib: integer out of range "99999999999999999999"`},
		{"memory overflowing bytes", header + "m5.large,2,9000000000000,amd64,0,29,us-east-1a,on-demand,0.096\n",
			`catalog.csv:2: memory_mib: must be between 1 and 8796093022207, got 9000000000000`},
		{"negative gpus", header + "m5.large,2,8192,amd64,-1,29,us-east-1a,on-demand,0.096\n",
			`catalog.csv:2: gpus: must not be negative, got -1`},
		{"zero max pods", header + "m5.large,2,8192,amd64,0,0,us-east-1a,on-demand,0.096\n",
			`catalog.csv:2: max_pods: must be at least 1, got 0`},
		{"unknown arch", header + "m5.large,2,8192,x86_64,0,29,us-east-1a,on-demand,0.096\n",
			`catalog.csv:2: arch: unknown architecture "x86_64" (want amd64 or arm64)`},
		{"unknown capacity type", header + "m5.large,2,8192,amd64,0,29,us-east-1a,reserved,0.096\n",
			`catalog.csv:2: capacity_type: unknown capacity type "reserved" (want on-demand or spot)`},
		{"duplicate offering", header + row + "m5.large,2,8192,amd64,0,29,us-east-1b,on-demand,0.096\n" + row,
			`catalog.csv:4: duplicate offering m5.large us-east-1a on-demand (first on line 2)`},
		{"rows of a type disagree", header + row + "m5.large,2,4096,amd64,0,29,us-east-1b,on-demand,0.096\n",
			`catalog.csv:3: memory_mib: 4096 disagrees with 8192 on line 2 for m5.large`},
		{"arch disagrees", header + row + "m5.large,2,8192,arm64,0,29,us-east-1b,on-demand,0.096\n",
			`catalog.csv:3: arch: arm64 disagrees with amd64 on line 2 for m5.large`},
		{"missing instance type", header + ",2,8192,amd64,0,29,us-east-1a,on-demand,0.096\n",
			`catalog.csv:2: instance_type: missing value`},
		{"instance type not a label value", header + "m5 large,2,8192,amd64,0,29,us-east-1a,on-demand,0.096\n",
			`catalog.csv:2: instance_type: "m5 large" is not a valid label value (letters, digits, '-', '_' and '.', starting and ending with a letter or digit)`},
		{"zone not a label value", header + "m5.large,2,8192,amd64,0,29,-us-east-1a,on-demand,0.096\n",
			`catalog.csv:2: zone: "-us-east-1a" is not a valid label value (letters, digits, '-', '_' and '.', starting and ending with a letter or digit)`},
		{"too few fields", header + "m5.large,2,8192,amd64,0,29,us-east-1a,on-demand\n",
			`catalog.csv:2: wrong number of fields`},
		{"bare quote", header + "m5.large,2,8192,am\"d64,0,29,us-east-1a,on-demand,0.096\n",
			`catalog.csv:2: bare " in non-quoted-field`},
		{"empty file", "",
			`catalog.csv: empty file: no header row`},
		{"header only", header,
			`catalog.csv: no offerings: the file has a header but no rows`},
		{"missing column", "instance_type,vcpu,memory_mib,arch,gpus,max_pods,zone,capacity_type\n",
			`catalog.csv:1: header: missing column(s) price_per_hour (want instance_type,vcpu,memory_mib,arch,gpus,max_pods,zone,capacity_type,price_per_hour)`},
		{"unknown column", "instance_type,vcpu,memory_mib,arch,gpus,max_pods,zone,capacity_type,cost\n",
			`catalog.csv:1: header: unknown column "cost" (want instance_type,vcpu,memory_mib,arch,gpus,max_pods,zone,capacity_type,price_per_hour)`},
		{"repeated column", "instance_type,vcpu,vcpu,memory_mib,arch,gpus,max_pods,zone,capacity_type,price_per_hour\n",
			`catalog.csv:1: header: column "vcpu" appears twice`},
		{"unnamed column", "instance_type,,vcpu\n",
			`catalog.csv:1: header: column 2 has no name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			types, err := ReadCSV(strings.NewReader(tt.in), "catalog.csv")
			if err == nil {
				t.Fatalf("ReadCSV succeeded with %d types, want error %q", len(types), tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", got, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "catalog.csv" {
				t.Errorf("error %v is not a *ParseError for catalog.csv", err)
			}
		})
	}
}

func FuzzReadCSV(f *testing.F) {
	f.Add(header + "m5.large,2,8192,amd64,0,29,us-east-1a,on-demand,0.096\n")
	f.Add(header + "m5.large,2,8192,amd64,0,29,us-east-1a,on-demand,0.096\nm5.large,2,8192,amd64,0,29,us-east-1a,spot,0.03\n")
	f.Add(header + "g4ad.xlarge,4,16384,amd64,1,8,us-east-1a,on-demand,0.37853\n# c\n\n")
	f.Add("zone,instance_type,capacity_type,price_per_hour,vcpu,memory_mib,arch,gpus,max_pods\nz,t,spot,1e-3,1,1,arm64,0,1\n")
	f.Add(header + "\"m5.large\",2,8192,amd64,0,29,\"us-east-1a\",on-demand,0x1p-2\n")
	f.Add(header + "m5.large,2,8192,amd64,0,29,us-east-1a,on-demand,NaN\n")
	f.Add("")
	if b, err := os.ReadFile("testdata/catalog-us-east-1-example.csv"); err == nil {
		lines := strings.SplitAfter(string(b), "\n")
		f.Add(strings.Join(lines[:min(40, len(lines))], ""))
	}
	f.Fuzz(func(t *testing.T, in string) {
		types, err := ReadCSV(strings.NewReader(in), "fuzz.csv")
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "fuzz.csv" {
				t.Fatalf("error %v is not a *ParseError for fuzz.csv", err)
			}
			if types != nil {
				t.Fatalf("%d types returned with an error", len(types))
			}
			return
		}
		if len(types) == 0 {
			t.Fatal("no types and no error")
		}
		for i, it := range types {
			if i > 0 && types[i-1].GetName() >= it.GetName() {
				t.Fatalf("not sorted or not unique: %q, %q", types[i-1].GetName(), it.GetName())
			}
			c := it.GetCapacity()
			if c.GetCpuMillis() < 1000 || c.GetMemoryBytes() < 1<<20 || c.GetPods() < 1 {
				t.Fatalf("%s: capacity %v", it.GetName(), c)
			}
			if len(it.GetOfferings()) == 0 {
				t.Fatalf("%s: no offerings", it.GetName())
			}
			seen := map[string]bool{}
			for _, o := range it.GetOfferings() {
				p := o.GetPricePerHour()
				if p < 0 || math.IsNaN(p) || math.IsInf(p, 0) {
					t.Fatalf("%s: price %v", it.GetName(), p)
				}
				key := o.GetZone() + "/" + o.GetCapacityType()
				if seen[key] {
					t.Fatalf("%s: duplicate offering %s", it.GetName(), key)
				}
				seen[key] = true
			}
		}
		again, err := ReadCSV(strings.NewReader(in), "fuzz.csv")
		if err != nil {
			t.Fatalf("second read failed: %v", err)
		}
		diffTypes(t, types, again)
	})
}
