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
	names := make([]string, 0, len(list))
	for name := range list {
		names = append(names, string(name))
	}
	sort.Strings(names)
	for _, name := range names {
		q := list[corev1.ResourceName(name)]
		f := fmt.Sprintf("%s[%s]", field, name)
		switch corev1.ResourceName(name) {
		case corev1.ResourceCPU:
			v, err := milliValue(f, q)
			if err != nil {
				return nil, err
			}
			out.CpuMillis = v
		case corev1.ResourceMemory:
			v, err := baseValue(f, q)
			if err != nil {
				return nil, err
			}
			out.MemoryBytes = v
		case corev1.ResourcePods:
			v, err := baseValue(f, q)
			if err != nil {
				return nil, err
			}
			out.Pods = v
		case corev1.ResourceEphemeralStorage:
			v, err := baseValue(f, q)
			if err != nil {
				return nil, err
			}
			out.EphemeralStorageBytes = v
		default:
			v, err := baseValue(f, q)
			if err != nil {
				return nil, err
			}
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
		f := fmt.Sprintf("%s[%s]", field, name)
		var (
			v   int64
			err error
		)
		if name == corev1.ResourceCPU {
			v, err = milliValue(f, q)
		} else {
			v, err = baseValue(f, q)
		}
		if err != nil {
			return nil, err
		}
		out[string(name)] = v
	}
	return out, nil
}

func milliValue(field string, q resource.Quantity) (int64, error) {
	if q.Sign() < 0 {
		return 0, fieldErrorf(field, "quantity %s is negative", q.String())
	}
	if tooLarge(q, maxMilli) {
		return 0, fieldErrorf(field, "quantity %s is too large", q.String())
	}
	return q.MilliValue(), nil
}

func baseValue(field string, q resource.Quantity) (int64, error) {
	if q.Sign() < 0 {
		return 0, fieldErrorf(field, "quantity %s is negative", q.String())
	}
	if tooLarge(q, maxBase) {
		return 0, fieldErrorf(field, "quantity %s is too large", q.String())
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
