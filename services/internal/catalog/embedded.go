package catalog

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// data holds the CSVs from shared/data/aws; data/README.md says where they
// come from.
//
//go:embed data/*.csv
var data embed.FS

// spec is what the embedded instance_types.csv says about one instance type.
type spec struct {
	name            string
	vcpu            int64
	memoryMiB       int64
	arch            string // Kubernetes name; empty when Kubernetes has none
	cpuManufacturer string
	clockMhz        int64
	gpuCount        int64
	gpuManufacturer string
	gpuName         string
	gpuMemoryMiB    int64 // all GPUs together
	neuronDevices   int64
	neuronCores     int64 // all devices together
	neuronName      string
	localStorageGB  int64
	localNVMe       string // "required", "supported", "unsupported" or ""
	ebsMbps         int64
	hypervisor      string
	spot            bool
}

// eniLimits is a row of vpc_limits.csv.
type eniLimits struct {
	maxENI     int64
	ipv4PerENI int64
	trunking   bool
	branchENI  int64
}

// facts is the parsed embedded data.
type facts struct {
	specs     map[string]*spec
	limits    map[string]eniLimits
	bandwidth map[string]int64               // type → Mbit/s
	prices    map[string]map[string]float64  // region → type → USD/h
	offerings map[string]map[string][]string // region → type → zone names
	zoneIDs   map[string]map[string]string   // region → zone name → zone ID
}

// loadFacts parses the embedded CSVs the first time it is called.
var loadFacts = sync.OnceValues(parseAll)

// parseAll parses the embedded CSVs.
func parseAll() (*facts, error) {
	f := &facts{}
	var err error
	if f.specs, err = parseSpecs(); err != nil {
		return nil, err
	}
	if f.limits, err = parseLimits(); err != nil {
		return nil, err
	}
	if f.bandwidth, err = parseBandwidth(); err != nil {
		return nil, err
	}
	if f.prices, err = parsePrices(); err != nil {
		return nil, err
	}
	if f.offerings, err = parseOfferings(); err != nil {
		return nil, err
	}
	if f.zoneIDs, err = parseZoneIDs(); err != nil {
		return nil, err
	}
	return f, nil
}

// eachRow opens an embedded CSV, checks its header has cols, and calls fn
// for every data row.
func eachRow(file string, cols []string, fn func(row) error) error {
	b, err := data.ReadFile("data/" + file)
	if err != nil {
		return fmt.Errorf("embedded data: %w", err)
	}
	t, err := openTable(file, bytes.NewReader(b))
	if err == nil {
		err = t.require(cols...)
	}
	for err == nil {
		var r row
		if r, err = t.next(); err == nil {
			err = fn(r)
		}
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	return fmt.Errorf("embedded data: %w", err)
}

// kubeArch maps an EC2 architecture list ("i386;x86_64") to the Kubernetes
// name; Mac architectures (arm64_mac, x86_64_mac) and i386 alone have none.
func kubeArch(ec2 string) string {
	for a := range strings.SplitSeq(ec2, ";") {
		switch a {
		case "x86_64":
			return ArchAMD64
		case "arm64":
			return ArchARM64
		}
	}
	return ""
}

func parseSpecs() (map[string]*spec, error) {
	cols := []string{"instance_type", "vcpu", "memory_mib", "arch", "cpu_manufacturer", "clock_ghz",
		"gpu_count", "gpu_manufacturer", "gpu_name", "gpu_memory_mib", "neuron_device_count",
		"neuron_core_count", "neuron_name", "local_storage_gb", "local_storage_nvme",
		"ebs_max_bandwidth_mbps", "hypervisor", "supported_usage_classes"}
	specs := make(map[string]*spec, 1400)
	err := eachRow("instance_types.csv", cols, func(r row) error {
		s := &spec{
			name:            r.str("instance_type"),
			arch:            kubeArch(r.str("arch")),
			cpuManufacturer: r.str("cpu_manufacturer"),
			gpuManufacturer: r.str("gpu_manufacturer"),
			gpuName:         r.str("gpu_name"),
			neuronName:      r.str("neuron_name"),
			localNVMe:       r.str("local_storage_nvme"),
			hypervisor:      r.str("hypervisor"),
		}
		if s.name == "" {
			return r.errorf("instance_type", "missing value")
		}
		if _, dup := specs[s.name]; dup {
			return r.errorf("instance_type", "%s listed twice", s.name)
		}
		ints := []struct {
			col string
			dst *int64
		}{
			{"vcpu", &s.vcpu}, {"memory_mib", &s.memoryMiB}, {"gpu_count", &s.gpuCount},
			{"gpu_memory_mib", &s.gpuMemoryMiB}, {"neuron_device_count", &s.neuronDevices},
			{"neuron_core_count", &s.neuronCores}, {"local_storage_gb", &s.localStorageGB},
			{"ebs_max_bandwidth_mbps", &s.ebsMbps},
		}
		for _, c := range ints {
			v, err := r.int(c.col)
			if err != nil {
				return err
			}
			*c.dst = v
		}
		if s.vcpu <= 0 || s.memoryMiB <= 0 {
			return r.errorf("vcpu", "%s has %d vCPUs and %d MiB", s.name, s.vcpu, s.memoryMiB)
		}
		if r.str("clock_ghz") != "" {
			ghz, err := r.float("clock_ghz")
			if err != nil {
				return err
			}
			s.clockMhz = int64(ghz*1000 + 0.5)
		}
		for c := range strings.SplitSeq(r.str("supported_usage_classes"), ";") {
			if c == CapacityTypeSpot {
				s.spot = true
			}
		}
		specs[s.name] = s
		return nil
	})
	return specs, err
}

func parseLimits() (map[string]eniLimits, error) {
	limits := make(map[string]eniLimits, 1400)
	err := eachRow("vpc_limits.csv", []string{"instance_type", "max_eni", "ipv4_per_eni", "is_trunking_compatible", "branch_eni"}, func(r row) error {
		var l eniLimits
		var err error
		if l.maxENI, err = r.requiredInt("max_eni"); err != nil {
			return err
		}
		if l.ipv4PerENI, err = r.requiredInt("ipv4_per_eni"); err != nil {
			return err
		}
		if l.ipv4PerENI < 1 {
			return r.errorf("ipv4_per_eni", "must be at least 1, got %d", l.ipv4PerENI)
		}
		if l.trunking, err = r.bool("is_trunking_compatible"); err != nil {
			return err
		}
		if l.branchENI, err = r.int("branch_eni"); err != nil {
			return err
		}
		limits[r.str("instance_type")] = l
		return nil
	})
	return limits, err
}

func parseBandwidth() (map[string]int64, error) {
	bw := make(map[string]int64, 1400)
	err := eachRow("network_bandwidth.csv", []string{"instance_type", "bandwidth_mbps"}, func(r row) error {
		// Rows with only a vague label ("Moderate") have no number: no label.
		v, err := r.int("bandwidth_mbps")
		if err == nil && v > 0 {
			bw[r.str("instance_type")] = v
		}
		return err
	})
	return bw, err
}

func parsePrices() (map[string]map[string]float64, error) {
	prices := map[string]map[string]float64{}
	err := eachRow("ondemand_prices.csv", []string{"region", "instance_type", "on_demand_hourly", "currency"}, func(r row) error {
		// Offerings carry $/h; the CNY table (cn-north-1) cannot be mixed in.
		if r.str("currency") != "USD" {
			return nil
		}
		p, err := r.float("on_demand_hourly")
		if err != nil {
			return err
		}
		region := r.str("region")
		if prices[region] == nil {
			prices[region] = map[string]float64{}
		}
		prices[region][r.str("instance_type")] = p
		return nil
	})
	return prices, err
}

// parseOfferings reads offerings_by_az.csv, not offerings_by_zone_id.csv.
//
// The actuator asks moto_server (and EC2) for DescribeInstanceTypeOfferings
// with LocationType=availability-zone, which answers with zone NAMES. This
// file's names come from the same moto resource files
// (instance_type_offerings/availability-zone/<region>.json), so they are the
// names moto answers with. Checked against moto 5.2.1 for us-east-1: 1129 of
// the 1242 types both know have exactly the same zones, and for the other 113
// this (newer) snapshot lists a superset (zones added since moto 5.2.1's copy
// was taken); moto 5.2.1 knows one type this file lacks (dl1.24xlarge, which
// has no us-east-1 offering here). Translating offerings_by_zone_id.csv
// through moto's zone-name→ID table would agree for only 1031 types: moto's
// name-keyed offerings were collected in an account whose name→ID mapping
// differs from the mapping moto hard-codes (see SOURCES.md), so names and IDs
// cannot both be "right"; names are what the actuator matches on. Zone IDs
// are then attached from moto_availability_zones.csv (parseZoneIDs), which is
// what moto's DescribeAvailabilityZones and its subnets report for a name.
func parseOfferings() (map[string]map[string][]string, error) {
	offerings := map[string]map[string][]string{}
	err := eachRow("offerings_by_az.csv", []string{"region", "instance_type", "availability_zones"}, func(r row) error {
		region := r.str("region")
		if offerings[region] == nil {
			offerings[region] = map[string][]string{}
		}
		var zones []string
		for z := range strings.SplitSeq(r.str("availability_zones"), ";") {
			if z = strings.TrimSpace(z); z != "" {
				zones = append(zones, z)
			}
		}
		offerings[region][r.str("instance_type")] = zones
		return nil
	})
	return offerings, err
}

func parseZoneIDs() (map[string]map[string]string, error) {
	ids := map[string]map[string]string{}
	err := eachRow("moto_availability_zones.csv", []string{"region", "zone_name", "zone_id"}, func(r row) error {
		region := r.str("region")
		if ids[region] == nil {
			ids[region] = map[string]string{}
		}
		ids[region][r.str("zone_name")] = r.str("zone_id")
		return nil
	})
	return ids, err
}
