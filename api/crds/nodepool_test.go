package crds_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
)

const baseNodePool = `
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: default
spec:
  template:
    spec:
      nodeClassRef:
        group: karpenter.k8s.aws
        kind: EC2NodeClass
        name: default
      requirements:
        - key: node.kubernetes.io/instance-type
          operator: In
          values: ["t3.medium"]
`

func TestNodePoolAdmission(t *testing.T) {
	t.Parallel()
	const reqs = "spec.template.spec.requirements"
	runAdmission(t, baseNodePool, []admissionCase{
		{name: "base", path: "metadata.name", value: "default"},
		{name: "In without values", path: reqs, value: `[{key: team, operator: In}]`, wantErr: "must have at least one value"},
		{name: "NotIn with empty values", path: reqs, value: `[{key: team, operator: NotIn, values: []}]`, wantErr: "must have at least one value"},
		{name: "Exists with values", path: reqs, value: `[{key: team, operator: Exists, values: [a]}]`, wantErr: "must not have values"},
		{name: "DoesNotExist", path: reqs, value: `[{key: team, operator: DoesNotExist}]`},
		{name: "Gt with one integer", path: reqs, value: `[{key: karpenter.k8s.aws/instance-cpu, operator: Gt, values: ["4"]}]`},
		{name: "Gt with a word", path: reqs, value: `[{key: karpenter.k8s.aws/instance-cpu, operator: Gt, values: ["four"]}]`, wantErr: "single non-negative integer"},
		{name: "Lt with two values", path: reqs, value: `[{key: karpenter.k8s.aws/instance-cpu, operator: Lt, values: ["4", "8"]}]`, wantErr: "single non-negative integer"},
		{name: "Lt without values", path: reqs, value: `[{key: karpenter.k8s.aws/instance-cpu, operator: Lt}]`, wantErr: "single non-negative integer"},
		{name: "unknown operator", path: reqs, value: `[{key: team, operator: Equals, values: [a]}]`, wantErr: "Unsupported value"},
		{name: "minValues above values", path: reqs, value: `[{key: node.kubernetes.io/instance-type, operator: In, values: [a, b], minValues: 3}]`, wantErr: "at least that many values"},
		{name: "minValues with Exists", path: reqs, value: `[{key: karpenter.k8s.aws/instance-family, operator: Exists, minValues: 5}]`},
		{name: "minValues over 50", path: reqs, value: `[{key: karpenter.k8s.aws/instance-family, operator: Exists, minValues: 51}]`, wantErr: "minValues"},
		{name: "hostname", path: reqs, value: `[{key: kubernetes.io/hostname, operator: Exists}]`, wantErr: `label domain "kubernetes.io" is restricted`},
		{name: "nodepool label", path: reqs, value: `[{key: karpenter.sh/nodepool, operator: In, values: [x]}]`, wantErr: "karpenter.sh/nodepool"},
		{name: "misspelt aws label", path: reqs, value: `[{key: karpenter.k8s.aws/instance-familly, operator: Exists}]`, wantErr: `label domain "karpenter.k8s.aws" is restricted`},
		{name: "k8s.io label", path: reqs, value: `[{key: example.k8s.io/x, operator: Exists}]`, wantErr: `label domain "k8s.io" is restricted`},
		{name: "bad label value", path: reqs, value: `[{key: team, operator: In, values: ["has space"]}]`, wantErr: "values[0]"},
		{name: "requirements may be left out", path: reqs, value: "<delete>"},
		{name: "template label in reserved domain", path: "spec.template.metadata.labels", value: `{karpenter.sh/nodepool: x}`, wantErr: "karpenter.sh/nodepool is set by Flotilla"},
		{name: "template label kubernetes.io", path: "spec.template.metadata.labels", value: `{kubernetes.io/hostname: x}`, wantErr: `label domain "kubernetes.io" is restricted`},
		{name: "template label aws", path: "spec.template.metadata.labels", value: `{karpenter.k8s.aws/instance-family: m5}`, wantErr: `label domain "karpenter.k8s.aws" is restricted`},
		{name: "template labels allowed", path: "spec.template.metadata.labels", value: `{team: a, topology.kubernetes.io/zone: us-east-1a, node.kubernetes.io/x: z, karpenter.sh/capacity-type: spot}`},
		{name: "taint effect", path: "spec.template.spec.taints", value: `[{key: a, effect: NoWhere}]`, wantErr: "taint effect must be"},
		{name: "startup taint", path: "spec.template.spec.startupTaints", value: `[{key: a, effect: NoExecute}]`},
		{name: "nodeClassRef kind", path: "spec.template.spec.nodeClassRef", value: `{group: karpenter.k8s.aws, kind: AWSNodeTemplate, name: x}`, wantErr: "must name an EC2NodeClass"},
		{name: "nodeClassRef without name", path: "spec.template.spec.nodeClassRef", value: `{group: karpenter.k8s.aws, kind: EC2NodeClass}`, wantErr: "name: Required value"},
		{name: "expireAfter Never", path: "spec.template.spec.expireAfter", value: "Never"},
		{name: "expireAfter fractional", path: "spec.template.spec.expireAfter", value: "1.5h", wantErr: "expireAfter"},
		{name: "expireAfter word", path: "spec.template.spec.expireAfter", value: "forever", wantErr: "expireAfter"},
		{name: "terminationGracePeriod", path: "spec.template.spec.terminationGracePeriod", value: "24h"},
		{name: "terminationGracePeriod Never", path: "spec.template.spec.terminationGracePeriod", value: "Never", wantErr: "terminationGracePeriod"},
		{name: "consolidateAfter Never", path: "spec.disruption", value: `{consolidateAfter: Never, consolidationPolicy: WhenEmpty}`},
		{name: "consolidateAfter missing", path: "spec.disruption", value: `{consolidationPolicy: WhenEmpty}`, wantErr: "consolidateAfter: Required value"},
		{name: "v1beta1 policy name", path: "spec.disruption", value: `{consolidateAfter: 1m, consolidationPolicy: WhenUnderutilized}`, wantErr: "consolidationPolicy"},
		{name: "budget percent", path: "spec.disruption", value: `{consolidateAfter: 1m, budgets: [{nodes: "100%"}]}`},
		{name: "budget over 100%", path: "spec.disruption", value: `{consolidateAfter: 1m, budgets: [{nodes: "110%"}]}`, wantErr: "nodes"},
		{name: "budget negative", path: "spec.disruption", value: `{consolidateAfter: 1m, budgets: [{nodes: "-1"}]}`, wantErr: "nodes"},
		{name: "budget schedule without duration", path: "spec.disruption", value: `{consolidateAfter: 1m, budgets: [{nodes: "0", schedule: "@daily"}]}`, wantErr: "'schedule' must be set with 'duration'"},
		{name: "budget duration without schedule", path: "spec.disruption", value: `{consolidateAfter: 1m, budgets: [{nodes: "0", duration: 1h}]}`, wantErr: "'schedule' must be set with 'duration'"},
		{name: "budget cron", path: "spec.disruption", value: `{consolidateAfter: 1m, budgets: [{nodes: "0", schedule: "0 9 * * 1-5", duration: 8h}]}`},
		{name: "budget cron with 4 fields", path: "spec.disruption", value: `{consolidateAfter: 1m, budgets: [{nodes: "0", schedule: "0 9 * *", duration: 8h}]}`, wantErr: "schedule"},
		{name: "budget duration in seconds", path: "spec.disruption", value: `{consolidateAfter: 1m, budgets: [{nodes: "0", schedule: "@daily", duration: 30s}]}`, wantErr: "duration"},
		{name: "budget reason", path: "spec.disruption", value: `{consolidateAfter: 1m, budgets: [{nodes: "1", reasons: [Expired, Drifted]}]}`},
		{name: "budget unknown reason", path: "spec.disruption", value: `{consolidateAfter: 1m, budgets: [{nodes: "1", reasons: [Interrupted]}]}`, wantErr: "reasons[0]"},
		{name: "budget duplicate reason", path: "spec.disruption", value: `{consolidateAfter: 1m, budgets: [{nodes: "1", reasons: [Empty, Empty]}]}`, wantErr: "Duplicate value"},
		{name: "weight 0", path: "spec.weight", value: "0", wantErr: "weight"},
		{name: "weight 101", path: "spec.weight", value: "101", wantErr: "weight"},
		{name: "weight 100", path: "spec.weight", value: "100"},
		{name: "limits", path: "spec.limits", value: `{cpu: 100, memory: 200Gi, nvidia.com/gpu: "4"}`},
		{name: "limits not a quantity", path: "spec.limits", value: `{cpu: lots}`, wantErr: "limits"},
		{name: "limits negative", path: "spec.limits", value: `{cpu: "-1"}`, wantErr: "limits must not be negative"},
		{name: "limits negative integer", path: "spec.limits", value: `{cpu: 10, memory: -5}`, wantErr: "limits must not be negative"},
		{name: "limits zero", path: "spec.limits", value: `{cpu: 0}`},
		{name: "requirement operator lower case", path: reqs, value: `[{key: team, operator: in, values: [a]}]`, wantErr: "Unsupported value"},
		{name: "requirement operator empty", path: reqs, value: `[{key: team, operator: "", values: [a]}]`, wantErr: "operator"},
		{name: "requirement key empty", path: reqs, value: `[{key: "", operator: Exists}]`, wantErr: "key"},
		{name: "unknown field", path: "spec.template.spec.consolidationPolicy", value: "WhenEmpty", wantErr: "unknown field"},
	})
}

func TestNodePoolUpdate(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	old := []byte(baseNodePool)
	tests := []struct {
		name, path, value, wantErr string
	}{
		{name: "rename node class", path: "spec.template.spec.nodeClassRef.name", value: "other"},
		{name: "change requirements", path: "spec.template.spec.requirements", value: `[{key: team, operator: Exists}]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Update(old, patch(t, baseNodePool, tc.path, tc.value))
			checkAdmission(t, err, tc.wantErr)
		})
	}
}

// TestNodePoolSetDefaultsMatchesSchema checks that SetDefaults gives a
// NodePool read from a file the defaults the API server would give it.
func TestNodePoolSetDefaultsMatchesSchema(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	for _, in := range []string{
		baseNodePool,
		string(patch(t, baseNodePool, "spec.disruption", `{consolidateAfter: 5m, budgets: [{schedule: "@daily", duration: 1h}]}`)),
		string(patch(t, baseNodePool, "spec.template.spec.expireAfter", "Never")),
	} {
		obj, err := v.Create([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		var fromServer karpv1.NodePool
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &fromServer); err != nil {
			t.Fatal(err)
		}
		var fromFile karpv1.NodePool
		if err := yaml.UnmarshalStrict([]byte(in), &fromFile); err != nil {
			t.Fatal(err)
		}
		fromFile.SetDefaults()
		if diff := cmp.Diff(fromServer, fromFile); diff != "" {
			t.Errorf("SetDefaults differs from the schema defaults (-server +SetDefaults):\n%s", diff)
		}
	}
}
