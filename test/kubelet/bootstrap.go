package kubelet

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// ErrNoNodeConfig reports user data that carries no NodeConfig document.
var ErrNoNodeConfig = errors.New("no NodeConfig in user data")

// Bootstrap is what an instance's user data asks of the node's kubelet.
type Bootstrap struct {
	// Labels from --node-labels.
	Labels map[string]string
	// Taints from --register-with-taints and config.registerWithTaints.
	Taints []corev1.Taint
	// MaxPods is config.maxPods; 0 when absent.
	MaxPods int32
	// KubeReserved and SystemReserved are subtracted from capacity.
	KubeReserved   corev1.ResourceList
	SystemReserved corev1.ResourceList
	// EvictionHard maps an eviction signal (memory.available,
	// nodefs.available) to its hard threshold.
	EvictionHard map[string]Threshold
}

// Threshold is an eviction threshold: an absolute quantity or a percentage of
// capacity (exactly one is set).
type Threshold struct {
	Quantity *resource.Quantity
	Percent  float64
}

// Of returns the threshold as an absolute amount of the given capacity.
func (t Threshold) Of(capacity resource.Quantity) resource.Quantity {
	if t.Quantity != nil {
		return t.Quantity.DeepCopy()
	}
	v := int64(float64(capacity.Value()) * t.Percent / 100)
	return *resource.NewQuantity(v, capacity.Format)
}

// ParseUserData reads the Bootstrap from instance user data as EC2 returns it
// (base64 of a MIME multi-part document; see NodeConfig for the shape). It
// also accepts undecoded user data and a bare NodeConfig YAML document.
func ParseUserData(userData string) (Bootstrap, error) {
	doc := decodeBase64(userData)
	yamls, err := nodeConfigParts(doc)
	if err != nil {
		return Bootstrap{}, err
	}
	var cfg NodeConfig
	for _, y := range yamls {
		if err := mergeNodeConfigs(&cfg, y); err != nil {
			return Bootstrap{}, err
		}
	}
	return bootstrapFrom(cfg)
}

// decodeBase64 strips up to two layers of base64; text that is not base64
// (a MIME document or YAML) is returned as it is.
func decodeBase64(s string) []byte {
	b := []byte(strings.TrimSpace(s))
	for range 2 {
		clean := bytes.Join(bytes.Fields(b), nil)
		dec := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
		n, err := base64.StdEncoding.Decode(dec, clean)
		if err != nil || n == 0 {
			break
		}
		b = dec[:n]
	}
	return b
}

// nodeConfigParts returns the bodies of the NodeConfig parts of a user data
// document.
func nodeConfigParts(doc []byte) ([][]byte, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(doc))
	if err != nil || msg.Header.Get("Content-Type") == "" {
		if bytes.Contains(doc, []byte("kind: NodeConfig")) {
			return [][]byte{doc}, nil
		}
		return nil, ErrNoNodeConfig
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("parse user data content type: %w", err)
	}
	if mediaType == NodeConfigMediaType {
		body, err := partBody(msg.Body, msg.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return nil, err
		}
		return [][]byte{body}, nil
	}
	if !strings.HasPrefix(mediaType, "multipart/") {
		return nil, ErrNoNodeConfig
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	var out [][]byte
	for {
		p, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read user data part: %w", err)
		}
		pt, _, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil || pt != NodeConfigMediaType {
			continue
		}
		body, err := partBody(p, p.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return nil, err
		}
		out = append(out, body)
	}
	if len(out) == 0 {
		return nil, ErrNoNodeConfig
	}
	return out, nil
}

func partBody(r io.Reader, encoding string) ([]byte, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read NodeConfig part: %w", err)
	}
	if strings.EqualFold(strings.TrimSpace(encoding), "base64") {
		clean := bytes.Join(bytes.Fields(body), nil)
		dec, err := base64.StdEncoding.DecodeString(string(clean))
		if err != nil {
			return nil, fmt.Errorf("decode NodeConfig part: %w", err)
		}
		return dec, nil
	}
	return body, nil
}

var yamlSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// mergeNodeConfigs decodes every YAML document of a part into dst. Later
// documents add flags and override config fields, as nodeadm merges them.
func mergeNodeConfigs(dst *NodeConfig, part []byte) error {
	for _, d := range yamlSeparator.Split(string(part), -1) {
		if strings.TrimSpace(d) == "" {
			continue
		}
		var c NodeConfig
		if err := yaml.Unmarshal([]byte(d), &c); err != nil {
			return fmt.Errorf("decode NodeConfig: %w", err)
		}
		if c.Kind != "NodeConfig" || !strings.HasPrefix(c.APIVersion, "node.eks.aws/") {
			return fmt.Errorf("decode NodeConfig: unexpected %s %s", c.APIVersion, c.Kind)
		}
		dst.APIVersion, dst.Kind = c.APIVersion, c.Kind
		if c.Spec.Cluster != (ClusterDetails{}) {
			dst.Spec.Cluster = c.Spec.Cluster
		}
		k, ck := &dst.Spec.Kubelet, c.Spec.Kubelet
		k.Flags = append(k.Flags, ck.Flags...)
		if ck.Config.MaxPods != nil {
			k.Config.MaxPods = ck.Config.MaxPods
		}
		k.Config.KubeReserved = mergeMap(k.Config.KubeReserved, ck.Config.KubeReserved)
		k.Config.SystemReserved = mergeMap(k.Config.SystemReserved, ck.Config.SystemReserved)
		k.Config.EvictionHard = mergeMap(k.Config.EvictionHard, ck.Config.EvictionHard)
		k.Config.RegisterWithTaints = append(k.Config.RegisterWithTaints, ck.Config.RegisterWithTaints...)
	}
	return nil
}

func mergeMap(dst, src map[string]string) map[string]string {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = map[string]string{}
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

func bootstrapFrom(cfg NodeConfig) (Bootstrap, error) {
	var b Bootstrap
	labels, taints, err := parseFlags(cfg.Spec.Kubelet.Flags)
	if err != nil {
		return Bootstrap{}, err
	}
	b.Labels = labels
	kc := cfg.Spec.Kubelet.Config
	for _, t := range kc.RegisterWithTaints {
		taint := corev1.Taint{Key: t.Key, Value: t.Value, Effect: corev1.TaintEffect(t.Effect)}
		if err := validateTaint(taint); err != nil {
			return Bootstrap{}, fmt.Errorf("registerWithTaints: %w", err)
		}
		taints = append(taints, taint)
	}
	b.Taints = dedupTaints(taints)
	if kc.MaxPods != nil {
		if *kc.MaxPods <= 0 {
			return Bootstrap{}, fmt.Errorf("maxPods %d: must be positive", *kc.MaxPods)
		}
		b.MaxPods = *kc.MaxPods
	}
	if b.KubeReserved, err = resourceList(kc.KubeReserved); err != nil {
		return Bootstrap{}, fmt.Errorf("kubeReserved: %w", err)
	}
	if b.SystemReserved, err = resourceList(kc.SystemReserved); err != nil {
		return Bootstrap{}, fmt.Errorf("systemReserved: %w", err)
	}
	for signal, v := range kc.EvictionHard {
		th, err := parseThreshold(v)
		if err != nil {
			return Bootstrap{}, fmt.Errorf("evictionHard %s: %w", signal, err)
		}
		if b.EvictionHard == nil {
			b.EvictionHard = map[string]Threshold{}
		}
		b.EvictionHard[signal] = th
	}
	return b, nil
}

// parseFlags reads --node-labels and --register-with-taints from kubelet
// flags, written either as "--flag=value" or as "--flag value".
func parseFlags(flags []string) (map[string]string, []corev1.Taint, error) {
	var tokens []string
	for _, f := range flags {
		tokens = append(tokens, strings.Fields(f)...)
	}
	var labels map[string]string
	var taints []corev1.Taint
	for i := 0; i < len(tokens); i++ {
		name, value, hasValue := strings.Cut(tokens[i], "=")
		if name != "--node-labels" && name != "--register-with-taints" {
			continue
		}
		if !hasValue {
			if i+1 >= len(tokens) {
				return nil, nil, fmt.Errorf("flag %s: missing value", name)
			}
			i++
			value = tokens[i]
		}
		if name == "--node-labels" {
			l, err := parseLabels(value)
			if err != nil {
				return nil, nil, fmt.Errorf("flag %s: %w", name, err)
			}
			labels = mergeMap(labels, l)
			continue
		}
		t, err := parseTaints(value)
		if err != nil {
			return nil, nil, fmt.Errorf("flag %s: %w", name, err)
		}
		taints = append(taints, t...)
	}
	return labels, taints, nil
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("label key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, fmt.Errorf("label %s value %q: %s", k, v, strings.Join(errs, "; "))
		}
		out[k] = v
	}
	return out, nil
}

func parseTaints(s string) ([]corev1.Taint, error) {
	var out []corev1.Taint
	for _, spec := range strings.Split(s, ",") {
		if spec == "" {
			continue
		}
		kv, effect, ok := strings.Cut(spec, ":")
		if !ok {
			return nil, fmt.Errorf("taint %q: want key[=value]:Effect", spec)
		}
		k, v, _ := strings.Cut(kv, "=")
		t := corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(effect)}
		if err := validateTaint(t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func validateTaint(t corev1.Taint) error {
	if errs := validation.IsQualifiedName(t.Key); len(errs) > 0 {
		return fmt.Errorf("taint key %q: %s", t.Key, strings.Join(errs, "; "))
	}
	if t.Value != "" {
		if errs := validation.IsValidLabelValue(t.Value); len(errs) > 0 {
			return fmt.Errorf("taint %s value %q: %s", t.Key, t.Value, strings.Join(errs, "; "))
		}
	}
	switch t.Effect {
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		return nil
	default:
		return fmt.Errorf("taint %s effect %q: want NoSchedule, PreferNoSchedule or NoExecute", t.Key, t.Effect)
	}
}

// dedupTaints keeps the first taint of each key and effect, as the API
// server rejects duplicates.
func dedupTaints(in []corev1.Taint) []corev1.Taint {
	seen := map[string]bool{}
	var out []corev1.Taint
	for _, t := range in {
		id := t.Key + ":" + string(t.Effect)
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, t)
	}
	return out
}

func resourceList(m map[string]string) (corev1.ResourceList, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := corev1.ResourceList{}
	for k, v := range m {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", k, v, err)
		}
		if q.Sign() < 0 {
			return nil, fmt.Errorf("%s %q: must not be negative", k, v)
		}
		out[corev1.ResourceName(k)] = q
	}
	return out, nil
}

func parseThreshold(v string) (Threshold, error) {
	if p, ok := strings.CutSuffix(strings.TrimSpace(v), "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f < 0 || f > 100 {
			return Threshold{}, fmt.Errorf("percentage %q: want 0-100%%", v)
		}
		return Threshold{Percent: f}, nil
	}
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return Threshold{}, fmt.Errorf("quantity %q: %w", v, err)
	}
	if q.Sign() < 0 {
		return Threshold{}, fmt.Errorf("quantity %q: must not be negative", v)
	}
	return Threshold{Quantity: &q}, nil
}
