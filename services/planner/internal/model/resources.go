// Package model is the planner's view of a cluster: pods, nodes, NodeClaims,
// NodePools, node classes, the instance catalogue and the plans the solvers
// return. It imports only the standard library, so the solvers run without
// gRPC, Kubernetes or cloud code, and tests build snapshots by hand.
package model

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Resource names as Kubernetes spells them.
const (
	ResourceCPU              = "cpu"
	ResourceMemory           = "memory"
	ResourcePods             = "pods"
	ResourceEphemeralStorage = "ephemeral-storage"
)

// Resources is a set of resource quantities in base units: CPU in
// millicores, memory and storage in bytes, pods and extended resources as
// counts. The zero value is an empty set.
type Resources struct {
	CPU              int64
	Memory           int64
	Pods             int64
	EphemeralStorage int64
	// Extended resources by name (e.g. "nvidia.com/gpu"); nil when none.
	// Treat as immutable: the arithmetic methods return fresh maps.
	Extended map[string]int64
}

// Get returns the quantity of the named resource.
func (r Resources) Get(name string) int64 {
	switch name {
	case ResourceCPU:
		return r.CPU
	case ResourceMemory:
		return r.Memory
	case ResourcePods:
		return r.Pods
	case ResourceEphemeralStorage:
		return r.EphemeralStorage
	}
	return r.Extended[name]
}

// With returns a copy of r with the named resource set to v.
func (r Resources) With(name string, v int64) Resources {
	switch name {
	case ResourceCPU:
		r.CPU = v
	case ResourceMemory:
		r.Memory = v
	case ResourcePods:
		r.Pods = v
	case ResourceEphemeralStorage:
		r.EphemeralStorage = v
	default:
		ext := maps.Clone(r.Extended)
		if ext == nil {
			ext = map[string]int64{}
		}
		ext[name] = v
		r.Extended = ext
	}
	return r
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	out := Resources{
		CPU:              r.CPU + o.CPU,
		Memory:           r.Memory + o.Memory,
		Pods:             r.Pods + o.Pods,
		EphemeralStorage: r.EphemeralStorage + o.EphemeralStorage,
	}
	out.Extended = combine(r.Extended, o.Extended, func(a, b int64) int64 { return a + b })
	return out
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	out := Resources{
		CPU:              r.CPU - o.CPU,
		Memory:           r.Memory - o.Memory,
		Pods:             r.Pods - o.Pods,
		EphemeralStorage: r.EphemeralStorage - o.EphemeralStorage,
	}
	out.Extended = combine(r.Extended, o.Extended, func(a, b int64) int64 { return a - b })
	return out
}

// Max returns the per-resource maximum of r and o.
func (r Resources) Max(o Resources) Resources {
	out := Resources{
		CPU:              max(r.CPU, o.CPU),
		Memory:           max(r.Memory, o.Memory),
		Pods:             max(r.Pods, o.Pods),
		EphemeralStorage: max(r.EphemeralStorage, o.EphemeralStorage),
	}
	out.Extended = combine(r.Extended, o.Extended, func(a, b int64) int64 { return max(a, b) })
	return out
}

// Scale returns r multiplied by n.
func (r Resources) Scale(n int64) Resources {
	out := Resources{CPU: r.CPU * n, Memory: r.Memory * n, Pods: r.Pods * n, EphemeralStorage: r.EphemeralStorage * n}
	if len(r.Extended) > 0 {
		out.Extended = make(map[string]int64, len(r.Extended))
		for k, v := range r.Extended {
			out.Extended[k] = v * n
		}
	}
	return out
}

func combine(a, b map[string]int64, f func(a, b int64) int64) map[string]int64 {
	if len(a) == 0 && len(b) == 0 {
		return nil
	}
	out := make(map[string]int64, len(a)+len(b))
	for k, v := range a {
		out[k] = f(v, b[k])
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			out[k] = f(0, v)
		}
	}
	return out
}

// Fits reports whether r fits into avail: every quantity of r is at most the
// same quantity of avail.
func (r Resources) Fits(avail Resources) bool {
	if r.CPU > avail.CPU || r.Memory > avail.Memory || r.Pods > avail.Pods || r.EphemeralStorage > avail.EphemeralStorage {
		return false
	}
	for k, v := range r.Extended {
		if v > 0 && v > avail.Extended[k] {
			return false
		}
	}
	return true
}

// IsZero reports whether every quantity is zero.
func (r Resources) IsZero() bool {
	if r.CPU != 0 || r.Memory != 0 || r.Pods != 0 || r.EphemeralStorage != 0 {
		return false
	}
	for _, v := range r.Extended {
		if v != 0 {
			return false
		}
	}
	return true
}

// Negative returns the name of a negative quantity, or "" when none is.
func (r Resources) Negative() string {
	for _, n := range r.Names() {
		if r.Get(n) < 0 {
			return n
		}
	}
	return ""
}

// Names returns the names of the non-zero resources, the four standard ones
// first, extended ones sorted.
func (r Resources) Names() []string {
	var out []string
	for _, n := range []string{ResourceCPU, ResourceMemory, ResourcePods, ResourceEphemeralStorage} {
		if r.Get(n) != 0 {
			out = append(out, n)
		}
	}
	ext := slices.Sorted(maps.Keys(r.Extended))
	for _, n := range ext {
		if r.Extended[n] != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String formats r for people, e.g. "cpu 1500m, memory 2 GiB, pods 1".
func (r Resources) String() string {
	var parts []string
	for _, n := range r.Names() {
		parts = append(parts, n+" "+FormatQuantity(n, r.Get(n)))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// FormatQuantity formats a quantity of the named resource for people: CPU as
// cores or millicores ("4", "500m"), memory and storage in binary units
// ("96 GiB"), counts as numbers.
func FormatQuantity(name string, v int64) string {
	switch name {
	case ResourceCPU:
		if v%1000 == 0 {
			return fmt.Sprintf("%d", v/1000)
		}
		return fmt.Sprintf("%dm", v)
	case ResourceMemory, ResourceEphemeralStorage:
		return FormatBytes(v)
	}
	return fmt.Sprintf("%d", v)
}

// FormatBytes formats a byte count in the largest binary unit that divides
// it, e.g. "96 GiB", "1536 MiB"; other values are printed with one decimal
// in the largest unit below them.
func FormatBytes(v int64) string {
	units := []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if v != 0 && v%u.size == 0 {
			return fmt.Sprintf("%d %s", v/u.size, u.name)
		}
	}
	for _, u := range units {
		if v >= u.size {
			return fmt.Sprintf("%.1f %s", float64(v)/float64(u.size), u.name)
		}
	}
	return fmt.Sprintf("%d B", v)
}
