package crds_test

import (
	"os"
	"testing"
)

func TestProvisionerAdmission(t *testing.T) {
	t.Parallel()
	seed, err := os.ReadFile("../aws/v1alpha5/testdata/seed-provisioner.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := string(seed)
	runAdmission(t, base, []admissionCase{
		{name: "seed verbatim", path: "metadata.name", value: "default"},
		{name: "provider and providerRef", path: "spec.providerRef", value: `{name: x}`, wantErr: "exactly one of 'provider' or 'providerRef'"},
		{name: "neither", path: "spec.provider", value: "<delete>", wantErr: "exactly one of 'provider' or 'providerRef'"},
		{name: "empty and consolidation", path: "spec", value: `{ttlSecondsAfterEmpty: 30, consolidation: {enabled: true}, providerRef: {name: x}}`, wantErr: "mutually exclusive"},
		{name: "empty ttl", path: "spec.ttlSecondsAfterEmpty", value: "30"},
		{name: "negative ttl", path: "spec.ttlSecondsUntilExpired", value: "-1", wantErr: "ttlSecondsUntilExpired"},
		{name: "no subnet selector", path: "spec.provider.subnetSelector", value: "<delete>", wantErr: "subnetSelector: Required value"},
		{name: "unknown provider field", path: "spec.provider.launchTemplate", value: "my-template", wantErr: "unknown field"},
		{name: "ami family", path: "spec.provider.amiFamily", value: "Bottlerocket"},
		{name: "unknown ami family", path: "spec.provider.amiFamily", value: "CentOS", wantErr: "amiFamily"},
		{name: "custom without selector", path: "spec.provider.amiFamily", value: "Custom", wantErr: "amiFamily 'Custom' needs an amiSelector"},
		{name: "requirement operator", path: "spec.requirements", value: `[{key: node.kubernetes.io/instance-type, operator: In}]`, wantErr: "at least one value"},
		{name: "provisioner-name requirement", path: "spec.requirements", value: `[{key: karpenter.sh/provisioner-name, operator: Exists}]`, wantErr: "Flotilla sets them"},
		{name: "label restricted", path: "spec.labels", value: `{karpenter.sh/provisioner-name: x}`, wantErr: `label domain "karpenter.sh" is restricted`},
		{name: "kubelet", path: "spec.kubeletConfiguration", value: `{containerRuntime: containerd, maxPods: 20, evictionHard: {memory.available: 5%}}`},
		{name: "kubelet rule inherited", path: "spec.kubeletConfiguration", value: `{evictionSoft: {memory.available: 1Gi}}`, wantErr: "needs an evictionSoftGracePeriod"},
		{name: "weight", path: "spec.weight", value: "0", wantErr: "weight"},
		{name: "unknown requirement operator", path: "spec.requirements", value: `[{key: team, operator: Equals, values: [a]}]`, wantErr: "Unsupported value"},
		{name: "limits", path: "spec.limits", value: `{resources: {cpu: 100, memory: 400Gi}}`},
		{name: "limits negative", path: "spec.limits", value: `{resources: {cpu: "-100"}}`, wantErr: "limits must not be negative"},
		{name: "restricted tag", path: "spec.provider.tags", value: `{karpenter.sh/nodeclaim: x}`, wantErr: "tags may not"},
		{name: "two root volumes", path: "spec.provider.blockDeviceMappings", value: `[{rootVolume: true, ebs: {volumeSize: 20Gi}}, {rootVolume: true, ebs: {volumeSize: 20Gi}}]`, wantErr: "at most one blockDeviceMapping"},
	})
}
