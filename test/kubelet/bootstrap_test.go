package kubelet

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const nodeConfigYAML = `apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: my-cluster
    apiServerEndpoint: https://127.0.0.1:6443
    certificateAuthority: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    cidr: 10.96.0.0/16
  kubelet:
    config:
      maxPods: 17
      kubeReserved: {cpu: 70m, memory: 442Mi, ephemeral-storage: 1Gi}
      systemReserved: {cpu: 100m, memory: 100Mi}
      evictionHard: {memory.available: 100Mi, nodefs.available: 10%}
    flags:
    - --node-labels=karpenter.sh/nodepool=default,karpenter.sh/capacity-type=on-demand
    - --register-with-taints=karpenter.sh/unregistered:NoExecute,example.com/startup=true:NoSchedule
`

// mimeDoc wraps parts (content type → body) in a multipart/mixed document
// the way Karpenter writes AL2023 user data.
func mimeDoc(parts ...[2]string) string {
	var b strings.Builder
	b.WriteString("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"//\"\n\n")
	for _, p := range parts {
		b.WriteString("--//\nContent-Type: " + p[0] + "\n\n" + p[1] + "\n")
	}
	b.WriteString("--//--\n")
	return b.String()
}

// quantityEqual compares quantities by value.
var quantityEqual = cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func q(s string) resource.Quantity { return resource.MustParse(s) }

func qp(s string) *resource.Quantity { v := resource.MustParse(s); return &v }

func fullBootstrap() Bootstrap {
	return Bootstrap{
		Labels: map[string]string{"karpenter.sh/nodepool": "default", "karpenter.sh/capacity-type": "on-demand"},
		Taints: []corev1.Taint{
			{Key: "karpenter.sh/unregistered", Effect: corev1.TaintEffectNoExecute},
			{Key: "example.com/startup", Value: "true", Effect: corev1.TaintEffectNoSchedule},
		},
		MaxPods:        17,
		KubeReserved:   corev1.ResourceList{"cpu": q("70m"), "memory": q("442Mi"), "ephemeral-storage": q("1Gi")},
		SystemReserved: corev1.ResourceList{"cpu": q("100m"), "memory": q("100Mi")},
		EvictionHard: map[string]Threshold{
			"memory.available": {Quantity: qp("100Mi")},
			"nodefs.available": {Percent: 10},
		},
	}
}

func TestParseUserData(t *testing.T) {
	t.Parallel()
	script := [2]string{`text/x-shellscript; charset="us-ascii"`, "#!/bin/bash\necho hi"}
	nodeConfig := [2]string{NodeConfigMediaType, nodeConfigYAML}
	tests := []struct {
		name     string
		userData string
		want     Bootstrap
		wantErr  string
	}{
		{
			name:     "karpenter MIME document in base64",
			userData: b64(mimeDoc(nodeConfig)),
			want:     fullBootstrap(),
		},
		{
			name:     "NodeConfig after a shell script part",
			userData: b64(mimeDoc(script, nodeConfig)),
			want:     fullBootstrap(),
		},
		{
			name:     "not base64 encoded",
			userData: mimeDoc(nodeConfig),
			want:     fullBootstrap(),
		},
		{
			name:     "base64 twice",
			userData: b64(b64(mimeDoc(nodeConfig))),
			want:     fullBootstrap(),
		},
		{
			name:     "bare NodeConfig YAML",
			userData: b64(nodeConfigYAML),
			want:     fullBootstrap(),
		},
		{
			name: "part in base64 transfer encoding",
			userData: b64("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=BOUNDARY\n\n" +
				"--BOUNDARY\nContent-Type: application/node.eks.aws\nContent-Transfer-Encoding: base64\n\n" +
				b64(nodeConfigYAML) + "\n--BOUNDARY--\n"),
			want: fullBootstrap(),
		},
		{
			name: "flag values as separate elements and taints from the config",
			userData: b64(mimeDoc([2]string{NodeConfigMediaType, `apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  kubelet:
    config:
      registerWithTaints:
      - {key: gpu, value: "true", effect: NoSchedule}
      - {key: dup, effect: NoExecute}
    flags: ["--node-labels", "team=a,empty=", "--register-with-taints dup=x:NoExecute", "--v=2"]
`})),
			want: Bootstrap{
				Labels: map[string]string{"team": "a", "empty": ""},
				Taints: []corev1.Taint{
					{Key: "dup", Value: "x", Effect: corev1.TaintEffectNoExecute},
					{Key: "gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule},
				},
			},
		},
		{
			name: "two NodeConfig documents are merged",
			userData: b64(mimeDoc([2]string{NodeConfigMediaType, `apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  kubelet:
    config: {maxPods: 10}
    flags: ["--node-labels=a=1"]
---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  kubelet:
    config: {maxPods: 29}
    flags: ["--node-labels=b=2"]
`})),
			want: Bootstrap{Labels: map[string]string{"a": "1", "b": "2"}, MaxPods: 29},
		},
		{name: "empty", userData: "", wantErr: ErrNoNodeConfig.Error()},
		{name: "only a shell script", userData: b64(mimeDoc(script)), wantErr: ErrNoNodeConfig.Error()},
		{name: "plain shell script", userData: b64("#!/bin/bash\n/etc/eks/bootstrap.sh my-cluster\n"), wantErr: ErrNoNodeConfig.Error()},
		{
			name:     "wrong kind",
			userData: b64(mimeDoc([2]string{NodeConfigMediaType, "apiVersion: node.eks.aws/v1alpha1\nkind: Other\n"})),
			wantErr:  "unexpected node.eks.aws/v1alpha1 Other",
		},
		{
			name:     "invalid yaml",
			userData: b64(mimeDoc([2]string{NodeConfigMediaType, "apiVersion: [\n"})),
			wantErr:  "decode NodeConfig",
		},
		{
			name:     "label without value separator",
			userData: b64(mimeDoc([2]string{NodeConfigMediaType, nodeConfigWithFlags("--node-labels=a=1,broken")})),
			wantErr:  `label "broken": want key=value`,
		},
		{
			name:     "invalid label key",
			userData: b64(mimeDoc([2]string{NodeConfigMediaType, nodeConfigWithFlags("--node-labels=-bad-=1")})),
			wantErr:  `label key "-bad-"`,
		},
		{
			name:     "taint with an unknown effect",
			userData: b64(mimeDoc([2]string{NodeConfigMediaType, nodeConfigWithFlags("--register-with-taints=a=b:Sometimes")})),
			wantErr:  `effect "Sometimes"`,
		},
		{
			name:     "taint without effect",
			userData: b64(mimeDoc([2]string{NodeConfigMediaType, nodeConfigWithFlags("--register-with-taints=a=b")})),
			wantErr:  "want key[=value]:Effect",
		},
		{
			name: "bad quantity",
			userData: b64(mimeDoc([2]string{NodeConfigMediaType,
				"apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    config:\n      kubeReserved: {memory: lots}\n"})),
			wantErr: `kubeReserved: memory "lots"`,
		},
		{
			name: "bad eviction percentage",
			userData: b64(mimeDoc([2]string{NodeConfigMediaType,
				"apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    config:\n      evictionHard: {memory.available: 120%}\n"})),
			wantErr: "evictionHard memory.available",
		},
		{
			name: "zero maxPods",
			userData: b64(mimeDoc([2]string{NodeConfigMediaType,
				"apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    config: {maxPods: 0}\n"})),
			wantErr: "maxPods 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseUserData(tt.userData)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseUserData() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseUserData() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, quantityEqual); diff != "" {
				t.Errorf("ParseUserData() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseUserDataNoNodeConfigIsSentinel(t *testing.T) {
	t.Parallel()
	_, err := ParseUserData(b64("#cloud-config\n"))
	if !errors.Is(err, ErrNoNodeConfig) {
		t.Fatalf("error = %v, want ErrNoNodeConfig", err)
	}
}

func nodeConfigWithFlags(flags ...string) string {
	s := "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    flags:\n"
	for _, f := range flags {
		s += "    - " + f + "\n"
	}
	return s
}

func TestThresholdOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		th       Threshold
		capacity resource.Quantity
		want     resource.Quantity
	}{
		{"quantity", Threshold{Quantity: qp("100Mi")}, q("4Gi"), q("100Mi")},
		{"percent", Threshold{Percent: 10}, q("20Gi"), q("2Gi")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.th.Of(tt.capacity); got.Cmp(tt.want) != 0 {
				t.Errorf("Of(%s) = %s, want %s", tt.capacity.String(), got.String(), tt.want.String())
			}
		})
	}
}
