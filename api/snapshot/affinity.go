package snapshot

import (
	"fmt"
	"slices"
	"sort"
	"strconv"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// LabelHostname is the node label the kubelet sets to the node's name; a
// node affinity matchFields term on metadata.name is expressed on it.
const LabelHostname = "kubernetes.io/hostname"

// Operator converts a Kubernetes selector operator (node selector or label
// selector spelling) to the model's.
func Operator(op string) (clusterv1.Operator, error) {
	switch op {
	case string(corev1.NodeSelectorOpIn):
		return clusterv1.Operator_OPERATOR_IN, nil
	case string(corev1.NodeSelectorOpNotIn):
		return clusterv1.Operator_OPERATOR_NOT_IN, nil
	case string(corev1.NodeSelectorOpExists):
		return clusterv1.Operator_OPERATOR_EXISTS, nil
	case string(corev1.NodeSelectorOpDoesNotExist):
		return clusterv1.Operator_OPERATOR_DOES_NOT_EXIST, nil
	case string(corev1.NodeSelectorOpGt):
		return clusterv1.Operator_OPERATOR_GT, nil
	case string(corev1.NodeSelectorOpLt):
		return clusterv1.Operator_OPERATOR_LT, nil
	default:
		return clusterv1.Operator_OPERATOR_UNSPECIFIED, fmt.Errorf("unknown operator %q", op)
	}
}

// Requirement converts one node selector requirement. field names it in
// errors.
func Requirement(field string, r corev1.NodeSelectorRequirement) (*clusterv1.Requirement, error) {
	return requirement(field, r.Key, string(r.Operator), r.Values)
}

func requirement(field, key, op string, values []string) (*clusterv1.Requirement, error) {
	if key == "" {
		return nil, fieldErrorf(field+".key", "must not be empty")
	}
	o, err := Operator(op)
	if err != nil {
		return nil, &FieldError{Field: field + ".operator", Err: err}
	}
	switch o {
	case clusterv1.Operator_OPERATOR_IN, clusterv1.Operator_OPERATOR_NOT_IN:
		if o == clusterv1.Operator_OPERATOR_IN && len(values) == 0 {
			return nil, fieldErrorf(field+".values", "operator In needs at least one value")
		}
	case clusterv1.Operator_OPERATOR_EXISTS, clusterv1.Operator_OPERATOR_DOES_NOT_EXIST:
		if len(values) > 0 {
			return nil, fieldErrorf(field+".values", "operator %s takes no values", op)
		}
	case clusterv1.Operator_OPERATOR_GT, clusterv1.Operator_OPERATOR_LT:
		if len(values) != 1 {
			return nil, fieldErrorf(field+".values", "operator %s needs exactly one value", op)
		}
		if _, err := strconv.ParseInt(values[0], 10, 64); err != nil {
			return nil, fieldErrorf(field+".values[0]", "operator %s needs an integer, got %q", op, values[0])
		}
	}
	return &clusterv1.Requirement{Key: key, Operator: o, Values: slices.Clone(values)}, nil
}

// NodeSelectorTerms converts required node affinity terms. matchFields on
// metadata.name become requirements on kubernetes.io/hostname.
func NodeSelectorTerms(field string, terms []corev1.NodeSelectorTerm) ([]*clusterv1.NodeSelectorTerm, error) {
	if len(terms) == 0 {
		return nil, nil
	}
	out := make([]*clusterv1.NodeSelectorTerm, 0, len(terms))
	for i, t := range terms {
		term, err := nodeSelectorTerm(fmt.Sprintf("%s[%d]", field, i), t)
		if err != nil {
			return nil, err
		}
		out = append(out, term)
	}
	return out, nil
}

func nodeSelectorTerm(field string, t corev1.NodeSelectorTerm) (*clusterv1.NodeSelectorTerm, error) {
	term := &clusterv1.NodeSelectorTerm{}
	for j, r := range t.MatchExpressions {
		req, err := Requirement(fmt.Sprintf("%s.matchExpressions[%d]", field, j), r)
		if err != nil {
			return nil, err
		}
		term.Requirements = append(term.Requirements, req)
	}
	for j, r := range t.MatchFields {
		f := fmt.Sprintf("%s.matchFields[%d]", field, j)
		if r.Key != "metadata.name" {
			return nil, fieldErrorf(f+".key", "unsupported field %q: only metadata.name", r.Key)
		}
		req, err := requirement(f, LabelHostname, string(r.Operator), r.Values)
		if err != nil {
			return nil, err
		}
		term.Requirements = append(term.Requirements, req)
	}
	return term, nil
}

func nodeAffinity(field string, a *corev1.NodeAffinity) (*clusterv1.NodeAffinity, error) {
	if a == nil {
		return nil, nil
	}
	out := &clusterv1.NodeAffinity{}
	if req := a.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
		terms, err := NodeSelectorTerms(field+".requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms", req.NodeSelectorTerms)
		if err != nil {
			return nil, err
		}
		out.Required = terms
	}
	for i, p := range a.PreferredDuringSchedulingIgnoredDuringExecution {
		f := fmt.Sprintf("%s.preferredDuringSchedulingIgnoredDuringExecution[%d]", field, i)
		if p.Weight < 1 || p.Weight > 100 {
			return nil, fieldErrorf(f+".weight", "must be between 1 and 100, got %d", p.Weight)
		}
		term, err := nodeSelectorTerm(f+".preference", p.Preference)
		if err != nil {
			return nil, err
		}
		out.Preferred = append(out.Preferred, &clusterv1.WeightedNodeSelectorTerm{Weight: p.Weight, Term: term})
	}
	if len(out.Required) == 0 && len(out.Preferred) == 0 {
		return nil, nil
	}
	return out, nil
}

// LabelSelector converts a label selector; matchLabels become In
// requirements (sorted by key). A nil selector gives nil (it selects
// nothing); an empty one gives an empty selector (it selects everything).
// extra requirements (from matchLabelKeys and the like) are appended.
func LabelSelector(field string, s *metav1.LabelSelector, extra ...*clusterv1.Requirement) (*clusterv1.LabelSelector, error) {
	if s == nil {
		return nil, nil
	}
	out := &clusterv1.LabelSelector{}
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		req, err := requirement(fmt.Sprintf("%s.matchLabels[%s]", field, k), k, string(corev1.NodeSelectorOpIn), []string{s.MatchLabels[k]})
		if err != nil {
			return nil, err
		}
		out.Requirements = append(out.Requirements, req)
	}
	for i, e := range s.MatchExpressions {
		f := fmt.Sprintf("%s.matchExpressions[%d]", field, i)
		switch e.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn, metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
		default:
			return nil, fieldErrorf(f+".operator", "unknown operator %q", e.Operator)
		}
		req, err := requirement(f, e.Key, string(e.Operator), e.Values)
		if err != nil {
			return nil, err
		}
		out.Requirements = append(out.Requirements, req)
	}
	for _, r := range extra {
		if !slices.ContainsFunc(out.Requirements, func(x *clusterv1.Requirement) bool { return sameRequirement(x, r) }) {
			out.Requirements = append(out.Requirements, r)
		}
	}
	return out, nil
}

func sameRequirement(a, b *clusterv1.Requirement) bool {
	return a.GetKey() == b.GetKey() && a.GetOperator() == b.GetOperator() && slices.Equal(a.GetValues(), b.GetValues())
}

// labelKeyRequirements turns matchLabelKeys (op In) or mismatchLabelKeys (op
// NotIn) into requirements on the pod's own label values; keys the pod does
// not carry are skipped, as Kubernetes does.
func labelKeyRequirements(podLabels map[string]string, keys []string, op clusterv1.Operator) []*clusterv1.Requirement {
	var out []*clusterv1.Requirement
	for _, k := range keys {
		v, ok := podLabels[k]
		if !ok {
			continue
		}
		out = append(out, &clusterv1.Requirement{Key: k, Operator: op, Values: []string{v}})
	}
	return out
}

// podAffinityTerm converts one pod (anti-)affinity term. A nil
// namespaceSelector keeps the listed namespaces (none: the pod's own); an
// empty one means every namespace; any other is resolved by ns (every
// namespace when ns is nil).
func podAffinityTerm(field string, pod *corev1.Pod, t corev1.PodAffinityTerm, ns NamespaceSource) (*clusterv1.PodAffinityTerm, error) {
	if t.TopologyKey == "" {
		return nil, fieldErrorf(field+".topologyKey", "must not be empty")
	}
	extra := append(labelKeyRequirements(pod.Labels, t.MatchLabelKeys, clusterv1.Operator_OPERATOR_IN),
		labelKeyRequirements(pod.Labels, t.MismatchLabelKeys, clusterv1.Operator_OPERATOR_NOT_IN)...)
	sel, err := LabelSelector(field+".labelSelector", t.LabelSelector, extra...)
	if err != nil {
		return nil, err
	}
	out := &clusterv1.PodAffinityTerm{Selector: sel, TopologyKey: t.TopologyKey, Namespaces: slices.Clone(t.Namespaces)}
	switch nsSel := t.NamespaceSelector; {
	case nsSel == nil:
	case len(nsSel.MatchLabels) == 0 && len(nsSel.MatchExpressions) == 0:
		out.AllNamespaces = true
		out.Namespaces = nil
	case ns == nil:
		out.AllNamespaces = true
		out.Namespaces = nil
	default:
		s, err := metav1.LabelSelectorAsSelector(nsSel)
		if err != nil {
			return nil, fieldErrorf(field+".namespaceSelector", "%s", err.Error())
		}
		out.Namespaces = mergeNamespaces(out.Namespaces, ns.Namespaces(s))
		if len(out.Namespaces) == 0 {
			// The selector matched no namespace: the term matches no pod.
			// An empty list would mean "the pod's own namespace", so name
			// one that cannot exist.
			out.Namespaces = []string{""}
		}
	}
	return out, nil
}

func mergeNamespaces(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// NamespaceSource resolves a pod affinity term's namespaceSelector.
type NamespaceSource interface {
	// Namespaces returns the names of the namespaces whose labels match.
	Namespaces(selector labels.Selector) []string
}

func podAffinity(field string, pod *corev1.Pod, a *corev1.PodAffinity, ns NamespaceSource) (req []*clusterv1.PodAffinityTerm, pref []*clusterv1.WeightedPodAffinityTerm, err error) {
	if a == nil {
		return nil, nil, nil
	}
	return affinityTerms(field, pod, a.RequiredDuringSchedulingIgnoredDuringExecution, a.PreferredDuringSchedulingIgnoredDuringExecution, ns)
}

func podAntiAffinity(field string, pod *corev1.Pod, a *corev1.PodAntiAffinity, ns NamespaceSource) (req []*clusterv1.PodAffinityTerm, pref []*clusterv1.WeightedPodAffinityTerm, err error) {
	if a == nil {
		return nil, nil, nil
	}
	return affinityTerms(field, pod, a.RequiredDuringSchedulingIgnoredDuringExecution, a.PreferredDuringSchedulingIgnoredDuringExecution, ns)
}

func affinityTerms(field string, pod *corev1.Pod, required []corev1.PodAffinityTerm, preferred []corev1.WeightedPodAffinityTerm, ns NamespaceSource) ([]*clusterv1.PodAffinityTerm, []*clusterv1.WeightedPodAffinityTerm, error) {
	var req []*clusterv1.PodAffinityTerm
	for i, t := range required {
		term, err := podAffinityTerm(fmt.Sprintf("%s.requiredDuringSchedulingIgnoredDuringExecution[%d]", field, i), pod, t, ns)
		if err != nil {
			return nil, nil, err
		}
		req = append(req, term)
	}
	var pref []*clusterv1.WeightedPodAffinityTerm
	for i, w := range preferred {
		f := fmt.Sprintf("%s.preferredDuringSchedulingIgnoredDuringExecution[%d]", field, i)
		if w.Weight < 1 || w.Weight > 100 {
			return nil, nil, fieldErrorf(f+".weight", "must be between 1 and 100, got %d", w.Weight)
		}
		term, err := podAffinityTerm(f+".podAffinityTerm", pod, w.PodAffinityTerm, ns)
		if err != nil {
			return nil, nil, err
		}
		pref = append(pref, &clusterv1.WeightedPodAffinityTerm{Weight: w.Weight, Term: term})
	}
	return req, pref, nil
}

// topologySpread converts topology spread constraints with Kubernetes'
// defaults: nodeAffinityPolicy Honor, nodeTaintsPolicy Ignore.
func topologySpread(field string, pod *corev1.Pod, cs []corev1.TopologySpreadConstraint) ([]*clusterv1.TopologySpreadConstraint, error) {
	var out []*clusterv1.TopologySpreadConstraint
	for i, c := range cs {
		f := fmt.Sprintf("%s[%d]", field, i)
		if c.MaxSkew < 1 {
			return nil, fieldErrorf(f+".maxSkew", "must be at least 1, got %d", c.MaxSkew)
		}
		if c.TopologyKey == "" {
			return nil, fieldErrorf(f+".topologyKey", "must not be empty")
		}
		tsc := &clusterv1.TopologySpreadConstraint{
			MaxSkew:        c.MaxSkew,
			TopologyKey:    c.TopologyKey,
			MatchLabelKeys: slices.Clone(c.MatchLabelKeys),
		}
		switch c.WhenUnsatisfiable {
		case corev1.DoNotSchedule, "":
			tsc.DoNotSchedule = true
		case corev1.ScheduleAnyway:
		default:
			return nil, fieldErrorf(f+".whenUnsatisfiable", "unknown value %q", c.WhenUnsatisfiable)
		}
		if c.MinDomains != nil {
			if *c.MinDomains < 0 {
				return nil, fieldErrorf(f+".minDomains", "must not be negative")
			}
			tsc.MinDomains = *c.MinDomains
		}
		if p := c.NodeAffinityPolicy; p != nil {
			switch *p {
			case corev1.NodeInclusionPolicyIgnore:
				tsc.NodeAffinityPolicyIgnore = true
			case corev1.NodeInclusionPolicyHonor:
			default:
				return nil, fieldErrorf(f+".nodeAffinityPolicy", "unknown value %q", *p)
			}
		}
		if p := c.NodeTaintsPolicy; p != nil {
			switch *p {
			case corev1.NodeInclusionPolicyHonor:
				tsc.NodeTaintsPolicyHonor = true
			case corev1.NodeInclusionPolicyIgnore:
			default:
				return nil, fieldErrorf(f+".nodeTaintsPolicy", "unknown value %q", *p)
			}
		}
		sel, err := LabelSelector(f+".labelSelector", c.LabelSelector, labelKeyRequirements(pod.Labels, c.MatchLabelKeys, clusterv1.Operator_OPERATOR_IN)...)
		if err != nil {
			return nil, err
		}
		tsc.Selector = sel
		out = append(out, tsc)
	}
	return out, nil
}

// Tolerations converts tolerations.
func Tolerations(field string, ts []corev1.Toleration) ([]*clusterv1.Toleration, error) {
	var out []*clusterv1.Toleration
	for i, t := range ts {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch t.Operator {
		case "", corev1.TolerationOpEqual, corev1.TolerationOpExists:
		default:
			return nil, fieldErrorf(f+".operator", "unknown operator %q", t.Operator)
		}
		switch t.Effect {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return nil, fieldErrorf(f+".effect", "unknown effect %q", t.Effect)
		}
		out = append(out, &clusterv1.Toleration{Key: t.Key, Operator: string(t.Operator), Value: t.Value, Effect: string(t.Effect)})
	}
	return out, nil
}

// Taints converts node or NodePool taints.
func Taints(field string, ts []corev1.Taint) ([]*clusterv1.Taint, error) {
	var out []*clusterv1.Taint
	for i, t := range ts {
		f := fmt.Sprintf("%s[%d]", field, i)
		if t.Key == "" {
			return nil, fieldErrorf(f+".key", "must not be empty")
		}
		switch t.Effect {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return nil, fieldErrorf(f+".effect", "unknown effect %q", t.Effect)
		}
		out = append(out, &clusterv1.Taint{Key: t.Key, Value: t.Value, Effect: string(t.Effect)})
	}
	return out, nil
}
