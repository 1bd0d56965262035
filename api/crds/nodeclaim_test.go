package crds_test

import (
	"fmt"
	"testing"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

const baseNodeClaim = `
apiVersion: karpenter.sh/v1
kind: NodeClaim
metadata:
  name: default-abcde
spec:
  nodeClassRef:
    group: karpenter.k8s.aws
    kind: EC2NodeClass
    name: default
  requirements:
    - key: karpenter.sh/nodepool
      operator: In
      values: ["default"]
  resources:
    requests:
      cpu: "1"
`

func TestNodeClaimAdmission(t *testing.T) {
	t.Parallel()
	runAdmission(t, baseNodeClaim, []admissionCase{
		{name: "base", path: "metadata.name", value: "default-abcde"},
		{name: "nodepool requirement allowed", path: "spec.requirements", value: `[{key: karpenter.sh/nodepool, operator: In, values: [a]}]`},
		{name: "restricted key", path: "spec.requirements", value: `[{key: kubernetes.io/hostname, operator: In, values: [a]}]`, wantErr: "restricted"},
		{name: "In without values", path: "spec.requirements", value: `[{key: a, operator: In}]`, wantErr: "at least one value"},
		{name: "status", path: "status", value: `{nodeName: ip-10-0-0-1, providerID: "aws:///us-east-1a/i-1", capacity: {cpu: "2"}, conditions: [{type: Launched, status: "True", reason: Launched, message: "", lastTransitionTime: "2026-11-27T00:00:00Z"}]}`},
		{name: "condition without reason", path: "status", value: `{conditions: [{type: Launched, status: "True", message: "", lastTransitionTime: "2026-11-27T00:00:00Z"}]}`, wantErr: "reason"},
		{name: "expireAfter defaulted and valid", path: "spec.expireAfter", value: "24h"},
	})
}

func TestNodeClaimUpdate(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	tests := []struct {
		name, path, value, wantErr string
	}{
		{name: "rename node class", path: "spec.nodeClassRef.name", value: "other", wantErr: "nodeClassRef is immutable"},
		{name: "set status", path: "status.nodeName", value: "ip-10-0-0-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Update([]byte(baseNodeClaim), patch(t, baseNodeClaim, tc.path, tc.value))
			checkAdmission(t, err, tc.wantErr)
		})
	}
}

// TestRestrictedLabelsAgreeWithSchema checks IsRestrictedLabel against the
// CEL rules on requirement keys.
func TestRestrictedLabelsAgreeWithSchema(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	keys := append(karpv1.WellKnownLabels(),
		"team", "example.com/team", "node.kubernetes.io/custom", "node-restriction.kubernetes.io/x",
		"kops.k8s.io/instancegroup", "a.kops.k8s.io/x", "mykubernetes.io/foo", "kubernetes.io/hostname",
		"kubernetes.io/custom", "foo.kubernetes.io/bar", "k8s.io/foo", "sub.k8s.io/foo", "karpenter.sh/custom",
		"karpenter.sh/initialized", "sub.karpenter.sh/x", "karpenter.k8s.aws/instance-familly",
		"karpenter.k8s.aws/ec2nodeclass", "topology.k8s.aws/zone-id", "karpenter.k8s.awsx/y",
	)
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			goErr := karpv1.IsRestrictedLabel(key)
			_, celErr := v.Create(patch(t, baseNodeClaim, "spec.requirements", fmt.Sprintf(`[{key: %q, operator: Exists}]`, key)))
			if (goErr == nil) != (celErr == nil) {
				t.Errorf("IsRestrictedLabel(%q) = %v but the schema says %v", key, goErr, celErr)
			}
		})
	}
}
