package crds_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
)

const baseNodeClass = `
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata:
  name: default
spec:
  amiSelectorTerms:
    - alias: al2023@latest
  subnetSelectorTerms:
    - tags: {karpenter.sh/discovery: my-cluster}
  securityGroupSelectorTerms:
    - tags: {karpenter.sh/discovery: my-cluster}
`

func TestEC2NodeClassAdmission(t *testing.T) {
	t.Parallel()
	runAdmission(t, baseNodeClass, []admissionCase{
		{name: "base without role or profile", path: "metadata.name", value: "default"},
		{name: "role", path: "spec.role", value: "NodeRole"},
		{name: "role and profile", path: "spec", value: `{role: R, instanceProfile: P, amiSelectorTerms: [{alias: al2023@latest}], subnetSelectorTerms: [{id: subnet-1}], securityGroupSelectorTerms: [{id: sg-1}]}`, wantErr: "mutually exclusive"},
		{name: "no subnet terms", path: "spec.subnetSelectorTerms", value: `[]`, wantErr: "subnetSelectorTerms"},
		{name: "subnet id", path: "spec.subnetSelectorTerms", value: `[{id: subnet-0abc}, {tags: {a: b}}]`},
		{name: "subnet id and tags", path: "spec.subnetSelectorTerms", value: `[{id: subnet-0abc, tags: {a: b}}]`, wantErr: "'id' cannot be combined with 'tags'"},
		{name: "subnet bad id", path: "spec.subnetSelectorTerms", value: `[{id: sg-0abc}]`, wantErr: "id"},
		{name: "empty subnet term", path: "spec.subnetSelectorTerms", value: `[{}]`, wantErr: "needs 'tags' or 'id'"},
		{name: "empty tag value", path: "spec.subnetSelectorTerms", value: `[{tags: {a: ""}}]`, wantErr: "empty tag keys or values"},
		{name: "security group name", path: "spec.securityGroupSelectorTerms", value: `[{name: nodes}]`},
		{name: "security group name and tags", path: "spec.securityGroupSelectorTerms", value: `[{name: nodes, tags: {a: b}}]`, wantErr: "'name' cannot be combined"},
		{name: "alias with other terms", path: "spec.amiSelectorTerms", value: `[{alias: al2023@latest}, {id: ami-1}]`, wantErr: "must be the only amiSelectorTerm"},
		{name: "alias with tags", path: "spec.amiSelectorTerms", value: `[{alias: al2023@latest, tags: {a: b}}]`, wantErr: "'alias' cannot be combined"},
		{name: "alias pinned", path: "spec.amiSelectorTerms", value: `[{alias: bottlerocket@v1.20.0}]`},
		{name: "alias unknown family", path: "spec.amiSelectorTerms", value: `[{alias: ubuntu@latest}]`, wantErr: "alias family must be one of"},
		{name: "alias malformed", path: "spec.amiSelectorTerms", value: `[{alias: al2023}]`, wantErr: "family@version"},
		{name: "windows pinned", path: "spec.amiSelectorTerms", value: `[{alias: windows2022@v1}]`, wantErr: "windows aliases only support version 'latest'"},
		{name: "ids need a family", path: "spec.amiSelectorTerms", value: `[{id: ami-0abc}]`, wantErr: "amiFamily is required"},
		{name: "family contradicts alias", path: "spec.amiFamily", value: "Bottlerocket", wantErr: "amiFamily must match the alias family"},
		{name: "family matches alias", path: "spec.amiFamily", value: "AL2023"},
		{name: "custom family with alias", path: "spec.amiFamily", value: "Custom"},
		{name: "no ami terms", path: "spec.amiSelectorTerms", value: `<delete>`, wantErr: "amiSelectorTerms: Required value"},
		{name: "restricted tag", path: "spec.tags", value: `{karpenter.sh/nodepool: x}`, wantErr: "tags may not"},
		{name: "cluster tag", path: "spec.tags", value: `{kubernetes.io/cluster/x: owned}`, wantErr: "tags may not"},
		{name: "kubelet reserved key", path: "spec.kubelet", value: `{systemReserved: {gpu: "1"}}`, wantErr: "valid keys for systemReserved"},
		{name: "kubelet negative", path: "spec.kubelet", value: `{kubeReserved: {cpu: "-100m"}}`, wantErr: "non-negative quantities"},
		{name: "kubelet not a quantity", path: "spec.kubelet", value: `{kubeReserved: {memory: lots}}`, wantErr: "non-negative quantities"},
		{name: "kubelet eviction signal", path: "spec.kubelet", value: `{evictionHard: {cpu.available: 5%}}`, wantErr: "valid keys for evictionHard"},
		{name: "kubelet soft without grace", path: "spec.kubelet", value: `{evictionSoft: {memory.available: 1Gi}}`, wantErr: "needs an evictionSoftGracePeriod"},
		{name: "kubelet gc thresholds", path: "spec.kubelet", value: `{imageGCHighThresholdPercent: 50, imageGCLowThresholdPercent: 60}`, wantErr: "imageGCHighThresholdPercent must be greater"},
		{name: "kubelet maxPods", path: "spec.kubelet", value: `{maxPods: 110}`},
		{name: "two root volumes", path: "spec.blockDeviceMappings", value: `[{rootVolume: true, ebs: {volumeSize: 20Gi}}, {rootVolume: true, ebs: {volumeSize: 20Gi}}]`, wantErr: "at most one blockDeviceMapping"},
		{name: "volume without size", path: "spec.blockDeviceMappings", value: `[{deviceName: /dev/xvda, ebs: {volumeType: gp3}}]`, wantErr: "snapshotID or volumeSize"},
		{name: "volume size unit", path: "spec.blockDeviceMappings", value: `[{ebs: {volumeSize: 20Mi}}]`, wantErr: "volumeSize"},
		{name: "interruption queue", path: "spec.interruptionQueue", value: "my-cluster_interruptions"},
		{name: "interruption queue url", path: "spec.interruptionQueue", value: "https://sqs.us-east-1.amazonaws.com/1/q", wantErr: "interruptionQueue"},
		{name: "metadata hop limit", path: "spec.metadataOptions", value: `{httpPutResponseHopLimit: 65}`, wantErr: "httpPutResponseHopLimit"},
	})
}

func TestEC2NodeClassDefaults(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	obj, err := v.Create([]byte(baseNodeClass))
	if err != nil {
		t.Fatal(err)
	}
	var nc awsv1.EC2NodeClass
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &nc); err != nil {
		t.Fatal(err)
	}
	enabled, disabled, required, hops := "enabled", "disabled", "required", int64(1)
	want := &awsv1.MetadataOptions{HTTPEndpoint: &enabled, HTTPProtocolIPv6: &disabled, HTTPTokens: &required, HTTPPutResponseHopLimit: &hops}
	if diff := cmp.Diff(want, nc.Spec.MetadataOptions); diff != "" {
		t.Errorf("default metadataOptions mismatch (-want +got):\n%s", diff)
	}
}
