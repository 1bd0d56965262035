package model

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Operator is a node selector operator.
type Operator int

// Operators as Kubernetes and Karpenter spell them.
const (
	OpIn Operator = iota + 1
	OpNotIn
	OpExists
	OpDoesNotExist
	OpGt
	OpLt
)

// String returns the Kubernetes spelling, e.g. "NotIn".
func (o Operator) String() string {
	switch o {
	case OpIn:
		return "In"
	case OpNotIn:
		return "NotIn"
	case OpExists:
		return "Exists"
	case OpDoesNotExist:
		return "DoesNotExist"
	case OpGt:
		return "Gt"
	case OpLt:
		return "Lt"
	}
	return "Operator(" + strconv.Itoa(int(o)) + ")"
}

// Requirement is one node selector requirement: a NodePool requirement, a
// node affinity match expression or a label selector expression.
type Requirement struct {
	Key      string
	Operator Operator
	Values   []string
	// MinValues asks for at least this many distinct values of Key among the
	// instance types a NodeClaim may use (Karpenter's minValues); 0 for none.
	MinValues int
}

// Matches reports whether a label set satisfies r with Kubernetes' label
// semantics: NotIn and DoesNotExist hold for an absent label, Gt and Lt
// compare integers.
func (r Requirement) Matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	return r.MatchesValue(v, ok)
}

// MatchesValue is Matches for a single label value; present is false when the
// label is absent.
func (r Requirement) MatchesValue(v string, present bool) bool {
	switch r.Operator {
	case OpIn:
		return present && slices.Contains(r.Values, v)
	case OpNotIn:
		return !present || !slices.Contains(r.Values, v)
	case OpExists:
		return present
	case OpDoesNotExist:
		return !present
	case OpGt, OpLt:
		if !present || len(r.Values) != 1 {
			return false
		}
		have, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.Operator == OpGt {
			return have > want
		}
		return have < want
	}
	return false
}

// String formats r like "kubernetes.io/arch In [arm64]".
func (r Requirement) String() string {
	switch r.Operator {
	case OpExists, OpDoesNotExist:
		return r.Key + " " + r.Operator.String()
	}
	return r.Key + " " + r.Operator.String() + " [" + strings.Join(r.Values, ",") + "]"
}

// NodeSelectorTerm is a conjunction of requirements.
type NodeSelectorTerm struct {
	Requirements []Requirement
}

// Matches reports whether labels satisfy every requirement of t.
func (t NodeSelectorTerm) Matches(labels map[string]string) bool {
	for _, r := range t.Requirements {
		if !r.Matches(labels) {
			return false
		}
	}
	return true
}

// WeightedNodeSelectorTerm is a preferred node affinity term.
type WeightedNodeSelectorTerm struct {
	Weight int32
	Term   NodeSelectorTerm
}

// NodeAffinity is a pod's node affinity.
type NodeAffinity struct {
	// Required terms are ORed; none means no requirement.
	Required  []NodeSelectorTerm
	Preferred []WeightedNodeSelectorTerm
}

// LabelSelector selects objects by label; matchLabels are folded into In
// requirements. An empty selector matches everything.
type LabelSelector struct {
	Requirements []Requirement
}

// Matches reports whether labels satisfy the selector. A nil selector
// matches nothing, as in Kubernetes' affinity terms.
func (s *LabelSelector) Matches(labels map[string]string) bool {
	if s == nil {
		return false
	}
	for _, r := range s.Requirements {
		if !r.Matches(labels) {
			return false
		}
	}
	return true
}

// Taint effects.
const (
	TaintNoSchedule       = "NoSchedule"
	TaintPreferNoSchedule = "PreferNoSchedule"
	TaintNoExecute        = "NoExecute"
)

// Taint is a node taint.
type Taint struct {
	Key    string
	Value  string
	Effect string
}

// String formats t like "dedicated=gpu:NoSchedule".
func (t Taint) String() string {
	if t.Value == "" {
		return t.Key + ":" + t.Effect
	}
	return t.Key + "=" + t.Value + ":" + t.Effect
}

// Toleration is a pod toleration.
type Toleration struct {
	Key string
	// "Equal" or "Exists"; empty means Equal.
	Operator string
	Value    string
	// Empty matches every effect.
	Effect string
}

// Tolerates reports whether the toleration tolerates the taint, with
// Kubernetes' rules: an empty key with Exists matches every taint, an empty
// effect every effect.
func (t Toleration) Tolerates(taint Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key == "" {
		return t.Operator == "Exists"
	}
	if t.Key != taint.Key {
		return false
	}
	if t.Operator == "Exists" {
		return true
	}
	return t.Value == taint.Value
}

// ToleratesAll reports whether tolerations tolerate every taint that keeps
// pods off a node (NoSchedule and NoExecute), and returns the first one they
// do not.
func ToleratesAll(tolerations []Toleration, taints []Taint) (Taint, bool) {
	for _, taint := range taints {
		if taint.Effect == TaintPreferNoSchedule {
			continue
		}
		ok := false
		for _, t := range tolerations {
			if t.Tolerates(taint) {
				ok = true
				break
			}
		}
		if !ok {
			return taint, false
		}
	}
	return Taint{}, true
}

// MarshalText spells the operator as Kubernetes does.
func (o Operator) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads an operator spelled as Kubernetes does.
func (o *Operator) UnmarshalText(b []byte) error {
	for op := OpIn; op <= OpLt; op++ {
		if op.String() == string(b) {
			*o = op
			return nil
		}
	}
	return fmt.Errorf("unknown operator %q", b)
}
