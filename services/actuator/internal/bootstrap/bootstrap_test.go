package bootstrap

import (
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func TestKubeReserved(t *testing.T) {
	t.Parallel()
	tests := []struct {
		vcpu, maxPods   int64
		wantCPU, wantMi int64
	}{
		{vcpu: 1, maxPods: 4, wantCPU: 60, wantMi: 299},
		{vcpu: 2, maxPods: 17, wantCPU: 70, wantMi: 442},
		{vcpu: 4, maxPods: 58, wantCPU: 80, wantMi: 893},
		{vcpu: 8, maxPods: 58, wantCPU: 90, wantMi: 893},
		{vcpu: 96, maxPods: 250, wantCPU: 310, wantMi: 3005},
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			if got := KubeReservedCPUMillis(tt.vcpu); got != tt.wantCPU {
				t.Errorf("KubeReservedCPUMillis(%d) = %d, want %d", tt.vcpu, got, tt.wantCPU)
			}
			if got := KubeReservedMemoryMiB(tt.maxPods); got != tt.wantMi {
				t.Errorf("KubeReservedMemoryMiB(%d) = %d, want %d", tt.maxPods, got, tt.wantMi)
			}
		})
	}
}

func TestMaxPods(t *testing.T) {
	t.Parallel()
	i32 := func(v int32) *int32 { return &v }
	tests := []struct {
		name      string
		vcpu, eni int64
		k         Kubelet
		want      int64
	}{
		{name: "eni limit", vcpu: 2, eni: 17, want: 17},
		{name: "unknown", vcpu: 2, want: 110},
		{name: "node class maxPods", vcpu: 2, eni: 17, k: Kubelet{MaxPods: i32(30)}, want: 30},
		{name: "pods per core", vcpu: 2, eni: 58, k: Kubelet{PodsPerCore: i32(10)}, want: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MaxPods(tt.vcpu, tt.eni, tt.k); got != tt.want {
				t.Errorf("MaxPods = %d, want %d", got, tt.want)
			}
		})
	}
}

// parts decodes user data into its MIME parts, content type → bodies.
func parts(t *testing.T, userData string) map[string][]string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(userData)
	if err != nil {
		t.Fatalf("user data is not base64: %v", err)
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("read MIME: %v", err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("content type: %v", err)
	}
	out := map[string][]string{}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		b, _ := io.ReadAll(p)
		out[p.Header.Get("Content-Type")] = append(out[p.Header.Get("Content-Type")], string(b))
	}
}

func TestUserData(t *testing.T) {
	t.Parallel()
	c := Cluster{Name: "my-cluster", APIServerEndpoint: "https://127.0.0.1:6443", CertificateAuthority: "Q0E=", CIDR: "10.96.0.0/16"}
	n := Node{
		Labels: map[string]string{
			"karpenter.sh/nodepool":      "default",
			"karpenter.sh/capacity-type": "on-demand",
			"team":                       "a",
			"kubernetes.io/restricted":   "x", // the kubelet may not set it
		},
		Taints:     []corev1.Taint{{Key: "example.com/gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}},
		VCPU:       2,
		ENIMaxPods: 17,
		Kubelet:    Kubelet{SystemReserved: map[string]string{"cpu": "100m"}, EvictionHard: map[string]string{"nodefs.available": "10%"}},
		UserData:   "#!/bin/bash\necho hello\n",
	}
	ud, err := UserData(c, n)
	if err != nil {
		t.Fatal(err)
	}
	got := parts(t, ud)
	if len(got[NodeConfigMediaType]) != 1 {
		t.Fatalf("NodeConfig parts = %d, want 1 (parts %v)", len(got[NodeConfigMediaType]), got)
	}
	if s := got[`text/x-shellscript; charset="us-ascii"`]; len(s) != 1 || s[0] != n.UserData {
		t.Errorf("user's script part = %q, want %q", s, n.UserData)
	}
	var cfg nodeConfig
	if err := yaml.Unmarshal([]byte(got[NodeConfigMediaType][0]), &cfg); err != nil {
		t.Fatal(err)
	}
	var want nodeConfig
	want.APIVersion, want.Kind = "node.eks.aws/v1alpha1", "NodeConfig"
	want.Spec.Cluster.Name = "my-cluster"
	want.Spec.Cluster.APIServerEndpoint = "https://127.0.0.1:6443"
	want.Spec.Cluster.CertificateAuthority = "Q0E="
	want.Spec.Cluster.CIDR = "10.96.0.0/16"
	want.Spec.Kubelet.Config = kubeletConfig{
		MaxPods:        17,
		KubeReserved:   map[string]string{"cpu": "70m", "memory": "442Mi", "ephemeral-storage": "1Gi"},
		SystemReserved: map[string]string{"cpu": "100m"},
		EvictionHard:   map[string]string{"memory.available": "100Mi", "nodefs.available": "10%"},
	}
	want.Spec.Kubelet.Flags = []string{
		"--node-labels=karpenter.sh/capacity-type=on-demand,karpenter.sh/nodepool=default,team=a",
		"--register-with-taints=example.com/gpu=true:NoSchedule,karpenter.sh/unregistered:NoExecute",
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("NodeConfig (-want +got):\n%s", diff)
	}
}

func TestUserDataKeepsMIMEParts(t *testing.T) {
	t.Parallel()
	user := "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BOUND\"\r\n\r\n" +
		"--BOUND\r\nContent-Type: text/x-shellscript\r\n\r\necho one\r\n" +
		"--BOUND\r\nContent-Type: application/node.eks.aws\r\n\r\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec: {}\r\n" +
		"--BOUND--\r\n"
	ud, err := UserData(Cluster{Name: "c"}, Node{VCPU: 2, UserData: user})
	if err != nil {
		t.Fatal(err)
	}
	got := parts(t, ud)
	if len(got["text/x-shellscript"]) != 1 || got["text/x-shellscript"][0] != "echo one" {
		t.Errorf("script part = %q", got["text/x-shellscript"])
	}
	if len(got[NodeConfigMediaType]) != 2 {
		t.Errorf("NodeConfig parts = %d, want the user's and ours", len(got[NodeConfigMediaType]))
	}
}
