package v1_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

func TestLimitsExceededBy(t *testing.T) {
	t.Parallel()
	limits := karpv1.Limits{
		corev1.ResourceCPU:    resource.MustParse("100"),
		corev1.ResourceMemory: resource.MustParse("200Gi"),
	}
	tests := []struct {
		name  string
		usage corev1.ResourceList
		want  *karpv1.LimitExceededError
	}{
		{name: "under", usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("99500m")}},
		{name: "at the limit", usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100")}},
		{name: "unlimited resource", usage: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("64")}},
		{
			name:  "cpu over",
			usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("101"), corev1.ResourceMemory: resource.MustParse("1Gi")},
			want:  &karpv1.LimitExceededError{Resource: corev1.ResourceCPU, Usage: "101", Limit: "100"},
		},
		{
			name:  "both over reports cpu first",
			usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("101"), corev1.ResourceMemory: resource.MustParse("201Gi")},
			want:  &karpv1.LimitExceededError{Resource: corev1.ResourceCPU, Usage: "101", Limit: "100"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := limits.ExceededBy(tc.usage)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("ExceededBy = %v, want nil", err)
				}
				return
			}
			var got *karpv1.LimitExceededError
			if !errors.As(err, &got) {
				t.Fatalf("ExceededBy = %v, want a *LimitExceededError", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ExceededBy mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if err := karpv1.Limits(nil).ExceededBy(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1000")}); err != nil {
		t.Errorf("nil limits: ExceededBy = %v, want nil", err)
	}
}
