// Package bootstrap writes the user data a Flotilla node boots with: a MIME
// multi-part document whose application/node.eks.aws part is an Amazon Linux
// 2023 nodeadm NodeConfig telling the kubelet which cluster to join, with
// which labels, taints, pod limit and reserved resources.
package bootstrap

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// NodeConfigMediaType is the Content-Type of the NodeConfig part.
const NodeConfigMediaType = "application/node.eks.aws"

// boundary separates the parts of the document.
const boundary = "//flotilla//"

// Cluster tells a node which cluster to join.
type Cluster struct {
	Name              string
	APIServerEndpoint string
	// CertificateAuthority is the base64 encoding of the cluster CA's PEM.
	CertificateAuthority string
	// CIDR is the service CIDR.
	CIDR string
}

// Kubelet holds the settings a node class may give the kubelet; nil and
// empty fields take the EKS defaults.
type Kubelet struct {
	MaxPods        *int32
	PodsPerCore    *int32
	KubeReserved   map[string]string
	SystemReserved map[string]string
	EvictionHard   map[string]string
}

// Node is what one node's bootstrap is made of.
type Node struct {
	// Labels go to --node-labels (labels the kubelet may not set itself are
	// left out; the actuator syncs them when the Node registers).
	Labels map[string]string
	// Taints go to --register-with-taints; the karpenter.sh/unregistered
	// taint is always added.
	Taints []corev1.Taint
	// VCPU and ENIMaxPods (the catalogue's pod capacity) size the reserved
	// resources and the pod limit.
	VCPU       int64
	ENIMaxPods int64
	Kubelet    Kubelet
	// UserData is the node class's own user data: a MIME document whose
	// parts are kept, a NodeConfig, or a shell script. It goes before the
	// generated NodeConfig, which nodeadm merges over it.
	UserData string
}

// UnregisteredTaint is on a node from registration until the actuator has
// synced the NodeClaim's labels and taints onto it.
var UnregisteredTaint = corev1.Taint{Key: "karpenter.sh/unregistered", Effect: corev1.TaintEffectNoExecute}

// nodeConfig mirrors the nodeadm NodeConfig fields Flotilla writes.
type nodeConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Cluster struct {
			Name                 string `json:"name"`
			APIServerEndpoint    string `json:"apiServerEndpoint"`
			CertificateAuthority string `json:"certificateAuthority"`
			CIDR                 string `json:"cidr"`
		} `json:"cluster"`
		Kubelet struct {
			Config kubeletConfig `json:"config"`
			Flags  []string      `json:"flags,omitempty"`
		} `json:"kubelet"`
	} `json:"spec"`
}

type kubeletConfig struct {
	MaxPods        int32             `json:"maxPods"`
	KubeReserved   map[string]string `json:"kubeReserved,omitempty"`
	SystemReserved map[string]string `json:"systemReserved,omitempty"`
	EvictionHard   map[string]string `json:"evictionHard,omitempty"`
}

// UserData returns the base64-encoded user data for a node.
func UserData(c Cluster, n Node) (string, error) {
	doc, err := Document(c, n)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(doc), nil
}

// Document returns the MIME document UserData encodes.
func Document(c Cluster, n Node) ([]byte, error) {
	var cfg nodeConfig
	cfg.APIVersion = "node.eks.aws/v1alpha1"
	cfg.Kind = "NodeConfig"
	cfg.Spec.Cluster.Name = c.Name
	cfg.Spec.Cluster.APIServerEndpoint = c.APIServerEndpoint
	cfg.Spec.Cluster.CertificateAuthority = c.CertificateAuthority
	cfg.Spec.Cluster.CIDR = c.CIDR
	cfg.Spec.Kubelet.Config = kubeletConfigFor(n)
	if labels := labelsFlag(n.Labels); labels != "" {
		cfg.Spec.Kubelet.Flags = append(cfg.Spec.Kubelet.Flags, "--node-labels="+labels)
	}
	cfg.Spec.Kubelet.Flags = append(cfg.Spec.Kubelet.Flags, "--register-with-taints="+taintsFlag(n.Taints))
	body, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode NodeConfig: %w", err)
	}
	parts, err := userParts(n.UserData)
	if err != nil {
		return nil, err
	}
	parts = append(parts, part{contentType: NodeConfigMediaType, body: body})

	var buf bytes.Buffer
	fmt.Fprintf(&buf, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
	w := multipart.NewWriter(&buf)
	if err := w.SetBoundary(boundary); err != nil {
		return nil, fmt.Errorf("user data boundary: %w", err)
	}
	for _, p := range parts {
		h := textproto.MIMEHeader{"Content-Type": {p.contentType}}
		if p.encoding != "" {
			h.Set("Content-Transfer-Encoding", p.encoding)
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			return nil, fmt.Errorf("write user data part: %w", err)
		}
		if _, err := pw.Write(p.body); err != nil {
			return nil, fmt.Errorf("write user data part: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("close user data: %w", err)
	}
	return buf.Bytes(), nil
}

// kubeletConfigFor is the kubelet configuration of a node: EKS's defaults
// for its size, overridden by the node class's settings.
func kubeletConfigFor(n Node) kubeletConfig {
	maxPods := MaxPods(n.VCPU, n.ENIMaxPods, n.Kubelet)
	kc := kubeletConfig{
		MaxPods: int32(maxPods),
		KubeReserved: map[string]string{
			"cpu":               fmt.Sprintf("%dm", KubeReservedCPUMillis(n.VCPU)),
			"memory":            fmt.Sprintf("%dMi", KubeReservedMemoryMiB(maxPods)),
			"ephemeral-storage": "1Gi",
		},
		EvictionHard: map[string]string{"memory.available": "100Mi"},
	}
	maps.Copy(kc.KubeReserved, n.Kubelet.KubeReserved)
	maps.Copy(kc.EvictionHard, n.Kubelet.EvictionHard)
	if len(n.Kubelet.SystemReserved) > 0 {
		kc.SystemReserved = maps.Clone(n.Kubelet.SystemReserved)
	}
	return kc
}

// MaxPods is a node's pod limit: the node class's maxPods when set, else the
// catalogue's (ENI-based) figure, 110 when that is unknown; podsPerCore
// lowers it further.
func MaxPods(vcpu, eniMaxPods int64, k Kubelet) int64 {
	pods := eniMaxPods
	if pods <= 0 {
		pods = 110
	}
	if k.MaxPods != nil && *k.MaxPods > 0 {
		pods = int64(*k.MaxPods)
	}
	if k.PodsPerCore != nil && *k.PodsPerCore > 0 && vcpu > 0 {
		pods = min(pods, int64(*k.PodsPerCore)*vcpu)
	}
	return pods
}

// KubeReservedCPUMillis is EKS's kube-reserved CPU: 6% of the first core,
// 1% of the second, 0.5% of the third and fourth, 0.25% of every core above.
func KubeReservedCPUMillis(vcpu int64) int64 {
	var tenths int64 // tenths of a millicore, to keep the quarter percents
	for core := int64(1); core <= vcpu; core++ {
		switch {
		case core == 1:
			tenths += 600
		case core == 2:
			tenths += 100
		case core <= 4:
			tenths += 50
		default:
			tenths += 25
		}
	}
	return (tenths + 5) / 10
}

// KubeReservedMemoryMiB is EKS's kube-reserved memory: 11 MiB per pod plus
// 255 MiB.
func KubeReservedMemoryMiB(maxPods int64) int64 {
	return 11*maxPods + 255
}

// labelsFlag renders the labels the kubelet may set on its own Node.
func labelsFlag(labels map[string]string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if !KubeletMaySet(k) {
			continue
		}
		out = append(out, k+"="+labels[k])
	}
	return strings.Join(out, ",")
}

// KubeletMaySet reports whether the NodeRestriction admission plugin lets a
// kubelet set a label on its own Node: anything outside the kubernetes.io
// and k8s.io namespaces, and a few well-known keys inside them.
func KubeletMaySet(key string) bool {
	prefix, _, ok := strings.Cut(key, "/")
	if !ok {
		return true
	}
	if !isKubernetesNamespace(prefix) {
		return true
	}
	switch key {
	case "kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os",
		"beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
		"failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
		"topology.kubernetes.io/region", "topology.kubernetes.io/zone",
		"beta.kubernetes.io/arch", "beta.kubernetes.io/os":
		return true
	}
	return strings.HasSuffix(prefix, ".kubelet.kubernetes.io") || strings.HasSuffix(prefix, ".node.kubernetes.io") ||
		prefix == "kubelet.kubernetes.io" || prefix == "node.kubernetes.io"
}

func isKubernetesNamespace(prefix string) bool {
	return prefix == "kubernetes.io" || strings.HasSuffix(prefix, ".kubernetes.io") ||
		prefix == "k8s.io" || strings.HasSuffix(prefix, ".k8s.io")
}

// taintsFlag renders taints as key[=value]:Effect, the unregistered taint
// last.
func taintsFlag(taints []corev1.Taint) string {
	var out []string
	seen := map[string]bool{}
	for _, t := range append(slices.Clone(taints), UnregisteredTaint) {
		s := t.Key
		if t.Value != "" {
			s += "=" + t.Value
		}
		s += ":" + string(t.Effect)
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return strings.Join(out, ",")
}

type part struct {
	contentType string
	encoding    string
	body        []byte
}

// userParts splits a node class's user data into MIME parts: the parts of a
// MIME multi-part document, or the whole text as one part typed by its
// content.
func userParts(userData string) ([]part, error) {
	if strings.TrimSpace(userData) == "" {
		return nil, nil
	}
	msg, err := mail.ReadMessage(strings.NewReader(userData))
	if err == nil {
		mt, params, perr := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if perr == nil && strings.HasPrefix(mt, "multipart/") {
			var out []part
			r := multipart.NewReader(msg.Body, params["boundary"])
			for {
				p, err := r.NextPart()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return nil, fmt.Errorf("read node class user data: %w", err)
				}
				var b bytes.Buffer
				if _, err := b.ReadFrom(p); err != nil {
					return nil, fmt.Errorf("read node class user data: %w", err)
				}
				out = append(out, part{
					contentType: p.Header.Get("Content-Type"),
					encoding:    p.Header.Get("Content-Transfer-Encoding"),
					body:        b.Bytes(),
				})
			}
			return out, nil
		}
	}
	ct := "text/x-shellscript; charset=\"us-ascii\""
	if strings.Contains(userData, "kind: NodeConfig") {
		ct = NodeConfigMediaType
	}
	return []part{{contentType: ct, body: []byte(userData)}}, nil
}
