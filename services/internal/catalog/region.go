package catalog

import (
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
)

// ErrRegionNotEmbedded is returned (wrapped) by Region for a region the
// embedded data cannot build a catalogue for.
var ErrRegionNotEmbedded = errors.New("region not in the embedded catalogue")

const mib = 1 << 20

// Region returns the embedded catalogue of a region: every instance type
// offered there that has a known on-demand price and an architecture
// Kubernetes runs on (amd64, arm64; the Mac types are left out), sorted by
// name. Each has on-demand offerings in every zone it is offered in, priced
// from the embedded table (PriceSourceEmbedded), and, when EC2 sells it as
// spot, spot offerings with a synthetic price (PriceSourceSynthetic, see
// SyntheticSpotPrice). Every call returns new messages the caller may modify,
// with the same content.
//
// Only us-east-1 has both offerings and prices embedded (see Regions); other
// regions give an error wrapping ErrRegionNotEmbedded.
func Region(region string) ([]*clusterv1.InstanceType, error) {
	f, err := loadFacts()
	if err != nil {
		return nil, err
	}
	offered := f.offerings[region]
	if len(offered) == 0 {
		return nil, fmt.Errorf("region %q: no embedded zone offerings (embedded: %s): %w",
			region, strings.Join(Regions(), ", "), ErrRegionNotEmbedded)
	}
	prices := f.prices[region]
	if len(prices) == 0 {
		return nil, fmt.Errorf("region %q: no embedded on-demand prices (embedded: %s): %w",
			region, strings.Join(Regions(), ", "), ErrRegionNotEmbedded)
	}
	zoneIDs := f.zoneIDs[region]
	out := make([]*clusterv1.InstanceType, 0, len(offered))
	for _, name := range slices.Sorted(maps.Keys(offered)) {
		s, ok := f.specs[name]
		price, priced := prices[name]
		if !ok || !priced || s.arch == "" {
			continue
		}
		zones := slices.Sorted(slices.Values(offered[name]))
		out = append(out, f.instanceType(s, region, zones, zoneIDs, price))
	}
	return out, nil
}

// Regions lists, sorted, the regions Region can build a catalogue for (none
// if the embedded data does not parse; Region returns that error).
func Regions() []string {
	f, err := loadFacts()
	if err != nil {
		return nil
	}
	var regions []string
	for r := range f.offerings {
		if len(f.prices[r]) > 0 {
			regions = append(regions, r)
		}
	}
	slices.Sort(regions)
	return regions
}

// ENIPods returns the pod limit of the AWS VPC CNI for an instance type,
// max ENIs × (IPv4 addresses per ENI − 1) + 2, uncapped, from the embedded
// ENI limits; false when the type is not in them (or the embedded data does
// not parse). Region caps it (see MaxPods).
func ENIPods(instanceType string) (int64, bool) {
	f, err := loadFacts()
	if err != nil {
		return 0, false
	}
	l, ok := f.limits[instanceType]
	if !ok {
		return 0, false
	}
	return eniPods(l), true
}

func eniPods(l eniLimits) int64 {
	if l.maxENI == 0 {
		return 0
	}
	return l.maxENI*(l.ipv4PerENI-1) + 2
}

// MaxPods is the pod capacity Flotilla gives a node by default, as EKS does:
// the ENI limit, capped at 110, or at 250 for types with 30 vCPUs or more.
func MaxPods(vcpu, eniPods int64) int64 {
	limit := int64(110)
	if vcpu >= 30 {
		limit = 250
	}
	return min(eniPods, limit)
}

// SyntheticSpotPrice is the made-up spot price of an offering: a fraction of
// the on-demand price between 0.3 and 0.7, fixed by a hash of the instance
// type and zone, rounded to a millionth of a dollar. It exists so spot
// offerings can be compared and exercised without a real price; offerings
// carrying it are marked PriceSourceSynthetic.
func SyntheticSpotPrice(instanceType, zone string, onDemand float64) float64 {
	h := fnv.New64a()
	h.Write([]byte(instanceType))
	h.Write([]byte{0})
	h.Write([]byte(zone))
	frac := 0.3 + 0.4*float64(mix(h.Sum64())>>11)/(1<<53)
	p := math.Round(onDemand*frac*1e6) / 1e6
	if p <= 0 || p >= onDemand {
		// Prices below a few millionths: rounding would erase the discount.
		p = onDemand * frac
	}
	return p
}

// mix is a 64-bit finalizer (MurmurHash3's fmix64): FNV-1a leaves names that
// differ only in their last byte ("us-east-1a", "us-east-1b") with the same
// high bits, and the fraction is read from the high bits.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// instanceType builds the catalogue entry of one embedded instance type.
func (f *facts) instanceType(s *spec, region string, zones []string, zoneIDs map[string]string, price float64) *clusterv1.InstanceType {
	capacity := &clusterv1.Resources{
		CpuMillis:   s.vcpu * 1000,
		MemoryBytes: s.memoryMiB * mib,
		Extended:    map[string]int64{},
	}
	if l, ok := f.limits[s.name]; ok {
		capacity.Pods = MaxPods(s.vcpu, eniPods(l))
		if l.trunking && l.branchENI > 0 {
			capacity.Extended[ResourceAWSPodENI] = l.branchENI
		}
	} else {
		// Not ENI-limited as far as we know: the kubelet's default.
		capacity.Pods = 110
	}
	if s.gpuCount > 0 {
		if res := gpuResource(s.gpuManufacturer); res != "" {
			capacity.Extended[res] = s.gpuCount
		}
	}
	if s.neuronDevices > 0 {
		capacity.Extended[ResourceAWSNeuron] = s.neuronDevices
		if s.neuronCores > 0 {
			capacity.Extended[ResourceAWSNeuronCore] = s.neuronCores
		}
	}
	if len(capacity.Extended) == 0 {
		capacity.Extended = nil
	}

	labels := make(map[string]string, 24)
	nameLabels(labels, s.name)
	labels[LabelArch] = s.arch
	labels[LabelRegion] = region
	labels[LabelInstanceCPU] = itoa(s.vcpu)
	labels[LabelInstanceMemory] = itoa(s.memoryMiB)
	if s.cpuManufacturer != "" {
		labels[LabelInstanceCPUManufacturer] = kebab(s.cpuManufacturer)
	}
	if s.clockMhz > 0 {
		labels[LabelInstanceCPUSustainedClockMhz] = itoa(s.clockMhz)
	}
	if s.hypervisor != "" {
		labels[LabelInstanceHypervisor] = s.hypervisor
	}
	if bw, ok := f.bandwidth[s.name]; ok {
		labels[LabelInstanceNetworkBandwidth] = itoa(bw)
	}
	if s.ebsMbps > 0 {
		labels[LabelInstanceEBSBandwidth] = itoa(s.ebsMbps)
	}
	if s.localStorageGB > 0 && s.localNVMe != "unsupported" {
		labels[LabelInstanceLocalNVMe] = itoa(s.localStorageGB)
	}
	if s.gpuCount > 0 {
		labels[LabelInstanceGPUCount] = itoa(s.gpuCount)
		labels[LabelInstanceGPUName] = kebab(s.gpuName)
		labels[LabelInstanceGPUManufacturer] = kebab(s.gpuManufacturer)
		// Karpenter labels the memory of one GPU; the data has the total.
		labels[LabelInstanceGPUMemory] = itoa(s.gpuMemoryMiB / s.gpuCount)
	}
	if s.neuronDevices > 0 {
		labels[LabelInstanceAcceleratorName] = kebab(s.neuronName)
		labels[LabelInstanceAcceleratorManufacturer] = "aws"
		labels[LabelInstanceAcceleratorCount] = itoa(s.neuronDevices)
	}

	perZone := 1
	if s.spot {
		perZone = 2
	}
	offerings := make([]*clusterv1.Offering, 0, perZone*len(zones))
	for _, z := range zones {
		offerings = append(offerings, &clusterv1.Offering{
			Zone:         z,
			ZoneId:       zoneIDs[z],
			CapacityType: CapacityTypeOnDemand,
			PricePerHour: price,
			Available:    true,
			PriceSource:  PriceSourceEmbedded,
		})
		if s.spot {
			offerings = append(offerings, &clusterv1.Offering{
				Zone:         z,
				ZoneId:       zoneIDs[z],
				CapacityType: CapacityTypeSpot,
				PricePerHour: SyntheticSpotPrice(s.name, z, price),
				Available:    true,
				PriceSource:  PriceSourceSynthetic,
			})
		}
	}
	return &clusterv1.InstanceType{
		Name:             s.name,
		Arch:             s.arch,
		Capacity:         capacity,
		Labels:           labels,
		Offerings:        offerings,
		OperatingSystems: []string{"linux"},
	}
}

// gpuResource names the extended resource a GPU manufacturer's device plugin
// advertises; empty for one Flotilla does not know.
func gpuResource(manufacturer string) string {
	switch manufacturer {
	case "NVIDIA":
		return ResourceNVIDIAGPU
	case "AMD":
		return ResourceAMDGPU
	case "Habana":
		return ResourceHabanaGaudi
	}
	return ""
}

// kebab lowercases and replaces spaces with dashes, as Karpenter does for
// label values ("RTX PRO Server 6000" → "rtx-pro-server-6000").
func kebab(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, " ", "-"))
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func boolString(b bool) string { return strconv.FormatBool(b) }
