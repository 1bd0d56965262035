package v1_test

import (
	"testing"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

// restrictedLabelCases are label keys with whether a NodePool or pod may
// use them.
var restrictedLabelCases = []struct {
	key     string
	allowed bool
}{
	{key: "team", allowed: true},
	{key: "example.com/team", allowed: true},
	{key: "node.kubernetes.io/instance-type", allowed: true},
	{key: "node.kubernetes.io/custom", allowed: true},
	{key: "topology.kubernetes.io/zone", allowed: true},
	{key: "kubernetes.io/arch", allowed: true},
	{key: "kubernetes.io/os", allowed: true},
	{key: "karpenter.sh/capacity-type", allowed: true},
	{key: "karpenter.k8s.aws/instance-family", allowed: true},
	{key: "karpenter.k8s.aws/instance-gpu-count", allowed: true},
	{key: "kops.k8s.io/instancegroup", allowed: true},
	{key: "topology.k8s.aws/zone-id", allowed: true},
	{key: "mykubernetes.io/foo", allowed: true},
	{key: "kubernetes.io/hostname", allowed: false},
	{key: "kubernetes.io/custom", allowed: false},
	{key: "foo.kubernetes.io/bar", allowed: false},
	{key: "k8s.io/foo", allowed: false},
	{key: "sub.k8s.io/foo", allowed: false},
	{key: "karpenter.sh/custom", allowed: false},
	{key: "karpenter.sh/initialized", allowed: false},
	{key: "karpenter.k8s.aws/instance-familly", allowed: false},
	{key: "karpenter.k8s.aws/ec2nodeclass", allowed: true},
}

func TestIsRestrictedLabel(t *testing.T) {
	t.Parallel()
	for _, tc := range restrictedLabelCases {
		t.Run(tc.key, func(t *testing.T) {
			t.Parallel()
			err := karpv1.IsRestrictedLabel(tc.key)
			if got := err == nil; got != tc.allowed {
				t.Errorf("IsRestrictedLabel(%q) = %v, want allowed=%v", tc.key, err, tc.allowed)
			}
		})
	}
	for _, key := range karpv1.WellKnownLabels() {
		if err := karpv1.IsRestrictedLabel(key); err != nil {
			t.Errorf("well-known label %q is restricted: %v", key, err)
		}
	}
}

func TestLabelDomain(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"team":                       "",
		"karpenter.sh/capacity-type": "karpenter.sh",
		"example.com/a/b":            "example.com",
	} {
		if got := karpv1.LabelDomain(key); got != want {
			t.Errorf("LabelDomain(%q) = %q, want %q", key, got, want)
		}
	}
}
