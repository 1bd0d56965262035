package snapshot

import (
	"fmt"
	"math"
	"sort"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

var (
	maxBase  = *resource.NewQuantity(math.MaxInt64, resource.DecimalSI)
	maxMilli = *resource.NewQuantity(math.MaxInt64/1000, resource.DecimalSI)
)

// Resources converts a Kubernetes resource list into base units: cpu in
// millicores, memory, ephemeral storage and hugepages in bytes, pods and
// extended resources as counts (fractions round up). field names the list
// in errors (e.g. "spec.containers[0].resources.requests"). A negative or
// out-of-range quantity is an error. A nil or empty list gives nil.
func Resources(field string, list corev1.ResourceList) (*clusterv1.Resources, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := &clusterv1.Resources{}
	// Sorted for deterministic errors.
	var buf [8]string
	names := buf[:0]
	for name := range list {
		names = append(names, string(name))
	}
	sort.Strings(names)
	for _, name := range names {
		q := list[corev1.ResourceName(name)]
		var (
			v   int64
			err error
		)
		if corev1.ResourceName(name) == corev1.ResourceCPU {
			v, err = milliValue(q)
		} else {
			v, err = baseValue(q)
		}
		if err != nil {
			// The field is named only on error: this runs for every
			// container of every pod the watcher sees.
			return nil, prefixField(fmt.Sprintf("%s[%s]", field, name), err)
		}
		switch corev1.ResourceName(name) {
		case corev1.ResourceCPU:
			out.CpuMillis = v
		case corev1.ResourceMemory:
			out.MemoryBytes = v
		case corev1.ResourcePods:
			out.Pods = v
		case corev1.ResourceEphemeralStorage:
			out.EphemeralStorageBytes = v
		default:
			if out.Extended == nil {
				out.Extended = map[string]int64{}
			}
			out.Extended[name] = v
		}
	}
	return out, nil
}

// Limits converts a NodePool's limits into base units keyed by resource
// name: millicores for cpu, bytes for memory and storage, counts otherwise.
func Limits(field string, list corev1.ResourceList) (map[string]int64, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := make(map[string]int64, len(list))
	for name, q := range list {
		var (
			v   int64
			err error
		)
		if name == corev1.ResourceCPU {
			v, err = milliValue(q)
		} else {
			v, err = baseValue(q)
		}
		if err != nil {
			return nil, prefixField(fmt.Sprintf("%s[%s]", field, name), err)
		}
		out[string(name)] = v
	}
	return out, nil
}

func milliValue(q resource.Quantity) (int64, error) {
	if q.Sign() < 0 {
		return 0, fieldErrorf("", "quantity %s is negative", q.String())
	}
	if tooLarge(q, maxMilli) {
		return 0, fieldErrorf("", "quantity %s is too large", q.String())
	}
	return q.MilliValue(), nil
}

func baseValue(q resource.Quantity) (int64, error) {
	if q.Sign() < 0 {
		return 0, fieldErrorf("", "quantity %s is negative", q.String())
	}
	if tooLarge(q, maxBase) {
		return 0, fieldErrorf("", "quantity %s is too large", q.String())
	}
	return q.Value(), nil
}

// tooLarge reports whether q exceeds limit. The float estimate answers
// cheaply for huge exponents ("1e99999999"), for which an exact comparison
// would take minutes; only values near the limit are compared exactly.
func tooLarge(q, limit resource.Quantity) bool {
	f := q.AsApproximateFloat64()
	if math.IsInf(f, 0) || f > 2*limit.AsApproximateFloat64() {
		return true
	}
	return q.Cmp(limit) > 0
}
