package catalog

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
)

// FileColumns is the header of a --catalog file, in the order Flotilla writes
// it. ReadCSV accepts the columns in any order.
var FileColumns = []string{
	"instance_type", "vcpu", "memory_mib", "arch", "gpus", "max_pods",
	"zone", "capacity_type", "price_per_hour",
}

// ReadCSV reads a catalogue in the --catalog format: a header naming exactly
// the FileColumns, then one offering per row,
//
//	m5.large,2,8192,amd64,0,29,us-east-1a,on-demand,0.096
//
// Rows of one instance type are grouped into one InstanceType (they must
// agree on vcpu, memory_mib, arch, gpus and max_pods); the result is sorted
// by name, offerings by zone then capacity type. Labels are those the name
// and the columns tell (instance type, family, category, generation, size,
// capability-flex, arch, cpu, memory, gpu count). GPUs are nvidia.com/gpu unless the embedded
// facts know the type's GPUs are another maker's (g4ad: amd.com/gpu).
// Offerings are available, with price_source "catalog-file". Lines starting
// with '#' are comments.
//
// name is used in error messages, which are *ParseError values naming the
// line and column: `catalog.csv:17: price_per_hour: invalid number "abc"`.
func ReadCSV(r io.Reader, name string) ([]*clusterv1.InstanceType, error) {
	t, err := openTable(name, r)
	if err != nil {
		return nil, err
	}
	if err := checkFileHeader(t); err != nil {
		return nil, err
	}
	types := map[string]*fileType{}
	for {
		rw, err := t.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := addFileRow(types, rw); err != nil {
			return nil, err
		}
	}
	if len(types) == 0 {
		return nil, &ParseError{File: name, Err: errors.New("no offerings: the file has a header but no rows")}
	}
	out := make([]*clusterv1.InstanceType, 0, len(types))
	for _, n := range slices.Sorted(maps.Keys(types)) {
		it, err := types[n].build()
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

func checkFileHeader(t *table) error {
	want := strings.Join(FileColumns, ",")
	for _, c := range t.header {
		if !slices.Contains(FileColumns, c) {
			return &ParseError{File: t.file, Line: 1, Err: fmt.Errorf("header: unknown column %q (want %s)", c, want)}
		}
	}
	if err := t.require(FileColumns...); err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.Err = fmt.Errorf("%w (want %s)", pe.Err, want)
		}
		return err
	}
	return nil
}

// fileType collects the rows of one instance type.
type fileType struct {
	name      string
	line      int // first row
	vcpu      int64
	memoryMiB int64
	arch      string
	gpus      int64
	maxPods   int64
	offerings []*clusterv1.Offering
	seen      map[[2]string]int // zone, capacity type → line
}

func addFileRow(types map[string]*fileType, r row) error {
	name := r.str("instance_type")
	if err := checkLabelValue(r, "instance_type", name); err != nil {
		return err
	}
	vcpu, err := r.requiredInt("vcpu")
	if err != nil {
		return err
	}
	if vcpu == 0 || vcpu > math.MaxInt64/1000 {
		return r.errorf("vcpu", "must be between 1 and %d, got %d", int64(math.MaxInt64/1000), vcpu)
	}
	memory, err := r.requiredInt("memory_mib")
	if err != nil {
		return err
	}
	if memory == 0 || memory > math.MaxInt64/mib {
		return r.errorf("memory_mib", "must be between 1 and %d, got %d", int64(math.MaxInt64/mib), memory)
	}
	arch := r.str("arch")
	if arch != ArchAMD64 && arch != ArchARM64 {
		return r.errorf("arch", "unknown architecture %q (want %s or %s)", arch, ArchAMD64, ArchARM64)
	}
	gpus, err := r.requiredInt("gpus")
	if err != nil {
		return err
	}
	maxPods, err := r.requiredInt("max_pods")
	if err != nil {
		return err
	}
	if maxPods == 0 {
		return r.errorf("max_pods", "must be at least 1, got 0")
	}
	zone := r.str("zone")
	if err := checkLabelValue(r, "zone", zone); err != nil {
		return err
	}
	capacityType := r.str("capacity_type")
	if capacityType != CapacityTypeOnDemand && capacityType != CapacityTypeSpot {
		return r.errorf("capacity_type", "unknown capacity type %q (want %s or %s)", capacityType, CapacityTypeOnDemand, CapacityTypeSpot)
	}
	price, err := r.float("price_per_hour")
	if err != nil {
		return err
	}

	ft, ok := types[name]
	if !ok {
		ft = &fileType{name: name, line: r.line, vcpu: vcpu, memoryMiB: memory, arch: arch,
			gpus: gpus, maxPods: maxPods, seen: map[[2]string]int{}}
		types[name] = ft
	}
	for _, c := range []struct {
		col       string
		got, want any
	}{
		{"vcpu", vcpu, ft.vcpu}, {"memory_mib", memory, ft.memoryMiB}, {"arch", arch, ft.arch},
		{"gpus", gpus, ft.gpus}, {"max_pods", maxPods, ft.maxPods},
	} {
		if c.got != c.want {
			return r.errorf(c.col, "%v disagrees with %v on line %d for %s", c.got, c.want, ft.line, name)
		}
	}
	key := [2]string{zone, capacityType}
	if first, dup := ft.seen[key]; dup {
		return r.errorf("", "duplicate offering %s %s %s (first on line %d)", name, zone, capacityType, first)
	}
	ft.seen[key] = r.line
	ft.offerings = append(ft.offerings, &clusterv1.Offering{
		Zone:         zone,
		CapacityType: capacityType,
		PricePerHour: price,
		Available:    true,
		PriceSource:  PriceSourceCatalogFile,
	})
	return nil
}

func (ft *fileType) build() (*clusterv1.InstanceType, error) {
	capacity := &clusterv1.Resources{
		CpuMillis:   ft.vcpu * 1000,
		MemoryBytes: ft.memoryMiB * mib,
		Pods:        ft.maxPods,
	}
	labels := make(map[string]string, 12)
	nameLabels(labels, ft.name)
	labels[LabelArch] = ft.arch
	labels[LabelInstanceCPU] = itoa(ft.vcpu)
	labels[LabelInstanceMemory] = itoa(ft.memoryMiB)
	if ft.gpus > 0 {
		res, manufacturer, err := fileGPU(ft.name)
		if err != nil {
			return nil, err
		}
		capacity.Extended = map[string]int64{res: ft.gpus}
		labels[LabelInstanceGPUCount] = itoa(ft.gpus)
		if manufacturer != "" {
			labels[LabelInstanceGPUManufacturer] = kebab(manufacturer)
		}
	}
	slices.SortFunc(ft.offerings, func(a, b *clusterv1.Offering) int {
		return strings.Compare(a.Zone+"\x00"+a.CapacityType, b.Zone+"\x00"+b.CapacityType)
	})
	return &clusterv1.InstanceType{
		Name:             ft.name,
		Arch:             ft.arch,
		Capacity:         capacity,
		Labels:           labels,
		Offerings:        ft.offerings,
		OperatingSystems: []string{"linux"},
	}, nil
}

// fileGPU names the GPU resource of a catalogue file's instance type: the
// embedded facts' manufacturer when they know the type, else NVIDIA's.
func fileGPU(name string) (resource, manufacturer string, err error) {
	f, err := loadFacts()
	if err != nil {
		return "", "", err
	}
	if s, ok := f.specs[name]; ok && s.gpuCount > 0 {
		if res := gpuResource(s.gpuManufacturer); res != "" {
			return res, s.gpuManufacturer, nil
		}
	}
	return ResourceNVIDIAGPU, "", nil
}

// checkLabelValue rejects a value that cannot be a Kubernetes label value
// (instance type and zone become node labels).
func checkLabelValue(r row, col, v string) error {
	if v == "" {
		return r.errorf(col, "missing value")
	}
	if len(v) > 63 {
		return r.errorf(col, "%q is longer than 63 characters", v)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || (c == '-' || c == '_' || c == '.') && i > 0 && i < len(v)-1 {
			continue
		}
		return r.errorf(col, "%q is not a valid label value (letters, digits, '-', '_' and '.', starting and ending with a letter or digit)", v)
	}
	return nil
}
