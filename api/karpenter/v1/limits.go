package v1

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Limits caps the total resources of a NodePool's nodes, by resource name.
type Limits corev1.ResourceList

// LimitExceededError says which limit a usage passes.
type LimitExceededError struct {
	// Resource is the resource over its limit.
	Resource corev1.ResourceName
	// Usage and Limit are the quantities compared, as strings.
	Usage, Limit string
}

// Error implements error.
func (e *LimitExceededError) Error() string {
	return fmt.Sprintf("%s usage %s exceeds limit %s", e.Resource, e.Usage, e.Limit)
}

// ExceededBy returns a *LimitExceededError for the first resource (in name
// order) whose usage is over its limit, or nil. Resources without a limit
// are unbounded.
func (l Limits) ExceededBy(usage corev1.ResourceList) error {
	var first *LimitExceededError
	for name, limit := range l {
		used, ok := usage[name]
		if !ok || used.Cmp(limit) <= 0 {
			continue
		}
		if first == nil || name < first.Resource {
			first = &LimitExceededError{Resource: name, Usage: used.String(), Limit: limit.String()}
		}
	}
	if first == nil {
		return nil
	}
	return first
}
