package snapshot

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnnotationNominatedPods on a NodeClaim names the pending pods it is
// launched for, as a comma-separated list of "namespace/name". The
// actuator writes it when it creates the NodeClaim from a plan (the plan's
// NodeClaimPlan.pods); the watcher reads it back and reports those pods
// as nominated to the NodeClaim (Pod.nominated_node_claim) while the
// NodeClaim is in flight (see InFlight), so the planner counts them against
// the capacity on its way instead of launching for them again. Kept on the
// NodeClaim, the nomination survives restarts of every service and needs no
// write to the pods.
const AnnotationNominatedPods = "flotilla.dev/nominated-pods"

// NominatedPods returns the pods a NodeClaim's AnnotationNominatedPods
// names, sorted and without duplicates.
func NominatedPods(nc *karpv1.NodeClaim) []string {
	v := nc.Annotations[AnnotationNominatedPods]
	if v == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// FormatNominatedPods is the AnnotationNominatedPods value for pods
// ("namespace/name").
func FormatNominatedPods(pods []string) string {
	s := slices.Clone(pods)
	slices.Sort(s)
	return strings.Join(slices.Compact(s), ",")
}

// InFlight reports whether a NodeClaim is capacity on its way, which pods
// may be nominated to: it is not being deleted, its launch has not failed
// (Launched is not False) and its node is not initialized yet. Once the
// node is initialized the pods are scheduled onto it by the scheduler (or
// placed on it as an existing node by the planner).
func InFlight(nc *karpv1.NodeClaim) bool {
	if nc.DeletionTimestamp != nil {
		return false
	}
	if c := nc.Condition(karpv1.ConditionTypeLaunched); c != nil && c.Status == metav1.ConditionFalse {
		return false
	}
	return !nc.IsTrue(karpv1.ConditionTypeInitialized) && !nc.IsTrue(karpv1.ConditionTypeReady)
}

// NodeClaim converts a NodeClaim into the model. The instance type, zone and
// capacity type come from the labels set at launch, or, before that, from a
// requirement that allows a single value.
func NodeClaim(nc *karpv1.NodeClaim) (*clusterv1.NodeClaim, error) {
	out, err := nodeClaim(nc)
	if err != nil {
		return nil, objectError("NodeClaim", "", nc.Name, err)
	}
	return out, nil
}

func nodeClaim(nc *karpv1.NodeClaim) (*clusterv1.NodeClaim, error) {
	out := &clusterv1.NodeClaim{
		Name:          nc.Name,
		NodePool:      nc.Labels[karpv1.NodePoolLabelKey],
		NodeClass:     nc.Spec.NodeClassRef.Name,
		Labels:        maps.Clone(nc.Labels),
		ProviderId:    nc.Status.ProviderID,
		NodeName:      nc.Status.NodeName,
		ImageId:       nc.Status.ImageID,
		Created:       timestamp(nc.CreationTimestamp),
		Deleting:      nc.DeletionTimestamp != nil,
		NodePoolHash:  nc.Annotations[karpv1.NodePoolHashAnnotationKey],
		NodeClassHash: nc.Annotations[karpv1.NodeClassHashAnnotationKey],
		Annotations:   plannerAnnotations(nc.Annotations),
	}
	// The nominated pods are reported on the pods themselves.
	delete(out.Annotations, AnnotationNominatedPods)
	if len(out.Annotations) == 0 {
		out.Annotations = nil
	}
	var err error
	if out.Requirements, err = requirementsWithMinValues("spec.requirements", nc.Spec.Requirements); err != nil {
		return nil, err
	}
	out.InstanceType = resolved(nc.Labels, out.Requirements, karpv1.LabelInstanceType)
	out.Zone = resolved(nc.Labels, out.Requirements, karpv1.LabelTopologyZone)
	out.CapacityType = resolved(nc.Labels, out.Requirements, karpv1.CapacityTypeLabelKey)
	if out.Requests, err = Resources("spec.resources.requests", nc.Spec.Resources.Requests); err != nil {
		return nil, err
	}
	if out.Taints, err = Taints("spec.taints", nc.Spec.Taints); err != nil {
		return nil, err
	}
	if out.StartupTaints, err = Taints("spec.startupTaints", nc.Spec.StartupTaints); err != nil {
		return nil, err
	}
	if out.Capacity, err = Resources("status.capacity", nc.Status.Capacity); err != nil {
		return nil, err
	}
	if out.Allocatable, err = Resources("status.allocatable", nc.Status.Allocatable); err != nil {
		return nil, err
	}
	out.Conditions = Conditions(nc.Status.Conditions)
	return out, nil
}

// resolved returns the value of a well-known label: the label itself, else
// the single value an In requirement allows.
func resolved(labels map[string]string, reqs []*clusterv1.Requirement, key string) string {
	if v := labels[key]; v != "" {
		return v
	}
	for _, r := range reqs {
		if r.GetKey() == key && r.GetOperator() == clusterv1.Operator_OPERATOR_IN && len(r.GetValues()) == 1 {
			return r.GetValues()[0]
		}
	}
	return ""
}

// requirementsWithMinValues converts NodePool or NodeClaim requirements.
func requirementsWithMinValues(field string, reqs []karpv1.NodeSelectorRequirementWithMinValues) ([]*clusterv1.Requirement, error) {
	var out []*clusterv1.Requirement
	for i, r := range reqs {
		f := fmt.Sprintf("%s[%d]", field, i)
		req, err := Requirement(f, r.NodeSelectorRequirement())
		if err != nil {
			return nil, err
		}
		if r.MinValues != nil {
			if *r.MinValues < 0 || *r.MinValues > 50 {
				return nil, fieldErrorf(f+".minValues", "must be between 1 and 50, got %d", *r.MinValues)
			}
			req.MinValues = int32(*r.MinValues)
		}
		out = append(out, req)
	}
	return out, nil
}

// Conditions converts status conditions.
func Conditions(cs []metav1.Condition) []*clusterv1.Condition {
	var out []*clusterv1.Condition
	for _, c := range cs {
		cond := &clusterv1.Condition{Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message}
		if !c.LastTransitionTime.IsZero() {
			cond.LastTransition = timestamppb.New(c.LastTransitionTime.Time)
		}
		out = append(out, cond)
	}
	return out
}

// conditionFalse returns the condition of the given type when it is False.
func conditionFalse(cs []metav1.Condition, conditionType string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == conditionType && cs[i].Status == metav1.ConditionFalse {
			return &cs[i]
		}
	}
	return nil
}

// notReadyReason turns a False condition into a reason a user can act on.
func notReadyReason(kind, name string, c *metav1.Condition) string {
	msg := c.Message
	if msg == "" {
		msg = c.Reason
	}
	if msg == "" {
		return fmt.Sprintf("%s %s is not ready", kind, name)
	}
	return fmt.Sprintf("%s %s is not ready: %s", kind, name, msg)
}
