package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"
)

// Source kinds of a model NodePool.
const (
	SourceNodePool    = "NodePool"
	SourceProvisioner = "Provisioner"
)

// NodePool converts a NodePool into the model. Its readiness comes from its
// Ready condition (a NodePool without conditions is taken as ready); see
// LinkNodeClasses for the node class's part.
func NodePool(np *karpv1.NodePool) (*clusterv1.NodePool, error) {
	out, err := nodePool(np)
	if err != nil {
		return nil, objectError("NodePool", "", np.Name, err)
	}
	return out, nil
}

func nodePool(np *karpv1.NodePool) (*clusterv1.NodePool, error) {
	spec := np.Spec.Template.Spec
	out := &clusterv1.NodePool{
		Name:       np.Name,
		Labels:     maps.Clone(np.Spec.Template.Labels),
		NodeClass:  spec.NodeClassRef.Name,
		SourceKind: SourceNodePool,
		Hash:       NodePoolHash(np),
		Ready:      true,
	}
	if np.Spec.Weight != nil {
		if *np.Spec.Weight < 0 || *np.Spec.Weight > 100 {
			return nil, fieldErrorf("spec.weight", "must be between 0 and 100, got %d", *np.Spec.Weight)
		}
		out.Weight = *np.Spec.Weight
	}
	var err error
	if out.Requirements, err = requirementsWithMinValues("spec.template.spec.requirements", spec.Requirements); err != nil {
		return nil, err
	}
	if out.Taints, err = Taints("spec.template.spec.taints", spec.Taints); err != nil {
		return nil, err
	}
	if out.StartupTaints, err = Taints("spec.template.spec.startupTaints", spec.StartupTaints); err != nil {
		return nil, err
	}
	if out.Limits, err = Limits("spec.limits", corev1.ResourceList(np.Spec.Limits)); err != nil {
		return nil, err
	}
	if d, ok := nillable(spec.ExpireAfter); ok {
		out.ExpireAfter = d
	}
	if spec.TerminationGracePeriod != nil {
		out.TerminationGracePeriod = durationpb.New(spec.TerminationGracePeriod.Duration)
	}
	out.Disruption = disruption(np.Spec.Disruption)
	if c := conditionFalse(np.Status.Conditions, karpv1.ConditionTypeReady); c != nil {
		out.Ready = false
		out.NotReadyReason = notReadyReason("NodePool", np.Name, c)
	}
	return out, nil
}

// nillable returns the duration, or false when it is unset or Never.
func nillable(d *karpv1.NillableDuration) (*durationpb.Duration, bool) {
	if d == nil {
		return nil, false
	}
	v, ok := d.Get()
	if !ok {
		return nil, false
	}
	return durationpb.New(v), true
}

func disruption(d karpv1.Disruption) *clusterv1.Disruption {
	out := &clusterv1.Disruption{ConsolidationPolicy: string(d.ConsolidationPolicy)}
	if v, ok := d.ConsolidateAfter.Get(); ok {
		out.ConsolidateAfter = durationpb.New(v)
	} else {
		out.ConsolidateNever = true
	}
	for _, b := range d.Budgets {
		budget := &clusterv1.DisruptionBudget{Nodes: b.Nodes}
		for _, r := range b.Reasons {
			budget.Reasons = append(budget.Reasons, string(r))
		}
		if b.Schedule != nil {
			budget.Schedule = *b.Schedule
		}
		if b.Duration != nil {
			budget.Duration = durationpb.New(b.Duration.Duration)
		}
		out.Budgets = append(out.Budgets, budget)
	}
	return out
}

// NodePoolHash is the hash of the parts of a NodePool's template that a
// node cannot change after launch: template labels and annotations, taints,
// startup taints and the node class. A NodeClaim records it
// (karpenter.sh/nodepool-hash); when the NodePool's hash moves on, the
// NodeClaim has drifted. Requirements are left out (drift on them is
// checked against the node's labels), and so are expireAfter and
// terminationGracePeriod (they apply to running nodes as they are).
func NodePoolHash(np *karpv1.NodePool) string {
	return hashOf(struct {
		Labels        map[string]string         `json:"labels,omitempty"`
		Annotations   map[string]string         `json:"annotations,omitempty"`
		Taints        []corev1.Taint            `json:"taints,omitempty"`
		StartupTaints []corev1.Taint            `json:"startupTaints,omitempty"`
		NodeClassRef  karpv1.NodeClassReference `json:"nodeClassRef"`
	}{
		Labels:        np.Spec.Template.Labels,
		Annotations:   np.Spec.Template.Annotations,
		Taints:        np.Spec.Template.Spec.Taints,
		StartupTaints: np.Spec.Template.Spec.StartupTaints,
		NodeClassRef:  np.Spec.Template.Spec.NodeClassRef,
	})
}

// hashOf returns a short hex SHA-256 of v's JSON (map keys are sorted by
// encoding/json, so equal values hash equally).
func hashOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only plain data is hashed; a marshal error is a programming error
		// that shows as an empty hash, not a crash.
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// LinkNodeClasses marks NodePools whose node class is missing or not ready
// as not ready, with a reason that names the node class.
func LinkNodeClasses(pools []*clusterv1.NodePool, classes []*clusterv1.NodeClass) {
	byName := make(map[string]*clusterv1.NodeClass, len(classes))
	for _, c := range classes {
		byName[c.GetName()] = c
	}
	for _, p := range pools {
		LinkNodeClass(p, byName[p.GetNodeClass()])
	}
}

// LinkNodeClass marks one NodePool not ready when its node class (nil when
// missing) is missing or not ready.
func LinkNodeClass(p *clusterv1.NodePool, class *clusterv1.NodeClass) {
	if !p.GetReady() || p.GetNodeClass() == "" {
		return
	}
	switch {
	case class == nil:
		p.Ready = false
		p.NotReadyReason = fmt.Sprintf("NodePool %s: EC2NodeClass %s not found", p.GetName(), p.GetNodeClass())
	case !class.GetReady():
		p.Ready = false
		reason := class.GetNotReadyReason()
		if reason == "" {
			reason = "EC2NodeClass " + class.GetName() + " is not ready"
		}
		p.NotReadyReason = fmt.Sprintf("NodePool %s: %s", p.GetName(), reason)
	}
}
