package nodeclaim

import (
	"context"
	"errors"
	"fmt"
	"github.com/flotilla-dev/flotilla/api/snapshot"
	"maps"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/metrics"
)

// Outcome is what Create did.
type Outcome int

// Outcomes of Create.
const (
	// Created: the NodeClaim was created and will be launched.
	Created Outcome = iota + 1
	// Exists: a NodeClaim of that name exists; nothing was done.
	Exists
	// Failed: it could not be created; the message says why.
	Failed
)

// ErrLimitExceeded is wrapped by the message of a creation refused because
// of a NodePool limit.
var ErrLimitExceeded = errors.New("nodepool limit exceeded")

// Create creates the NodeClaim a plan asks for, unless one of that name
// exists (Exists: nothing happens twice). NodePool limits are checked again
// here, one creation at a time, so concurrent plans cannot pass a limit
// together; instance types that would pass it are dropped from the claim.
// The error is for failures to reach the apiserver; a refusal is Failed with
// a message.
func (c *Controller) Create(ctx context.Context, plan *clusterv1.NodeClaimPlan) (Outcome, string, error) {
	return c.CreateAnnotated(ctx, plan, nil)
}

// CreateAnnotated is Create with extra annotations on the new NodeClaim (a
// replacement names the disruption it is for).
func (c *Controller) CreateAnnotated(ctx context.Context, plan *clusterv1.NodeClaimPlan, annotations map[string]string) (Outcome, string, error) {
	ctx, span := tracer.Start(ctx, "nodeclaim.create", trace.WithAttributes(
		attribute.String("flotilla.nodeclaim", plan.Name), attribute.String("flotilla.nodepool", plan.NodePool),
		attribute.Int("flotilla.pods", len(plan.Pods))))
	defer span.End()
	c.createMu.Lock()
	defer c.createMu.Unlock()

	if existing, err := c.crd.GetNodeClaim(ctx, plan.Name); err == nil {
		return Exists, fmt.Sprintf("nodeclaim %s exists (%s)", plan.Name, phase(existing)), nil
	} else if !isNotFound(err) {
		return 0, "", err
	}
	pool, err := c.nodePool(ctx, plan.NodePool)
	if isNotFound(err) {
		return Failed, fmt.Sprintf("nodepool %s not found", plan.NodePool), nil
	}
	if err != nil {
		return 0, "", err
	}
	if pool.DeletionTimestamp != nil {
		return Failed, fmt.Sprintf("nodepool %s is being deleted", plan.NodePool), nil
	}
	types := candidateTypes(plan)
	if len(types) == 0 {
		return Failed, "the plan names no instance type", nil
	}
	capacities := map[string]corev1.ResourceList{}
	for _, t := range types {
		it, ok, err := c.catalog.Get(ctx, t)
		if err != nil {
			return 0, "", err
		}
		if ok {
			capacities[t] = capacityOf(it)
		}
	}
	if len(capacities) == 0 {
		return Failed, fmt.Sprintf("unknown instance types %v: not in the catalogue", types), nil
	}

	if len(pool.Spec.Limits) > 0 {
		usage, err := c.usage(ctx, pool.Name)
		if err != nil {
			return 0, "", err
		}
		var refused []string
		for _, t := range types {
			cp, ok := capacities[t]
			if !ok {
				continue
			}
			if err := pool.Spec.Limits.ExceededBy(add(usage, cp)); err != nil {
				delete(capacities, t)
				refused = append(refused, t+": "+err.Error())
			}
		}
		if len(capacities) == 0 {
			return Failed, fmt.Sprintf("nodepool %s: %s (%s)", pool.Name, ErrLimitExceeded, refused[0]), nil
		}
	}

	claim := c.build(plan, pool, capacities)
	maps.Copy(claim.Annotations, annotations)
	if tp := traceparent(ctx); tp != "" {
		claim.Annotations[AnnotationTraceparent] = tp
	}
	if _, err := c.crd.CreateNodeClaim(ctx, claim); err != nil {
		if isAlreadyExists(err) {
			return Exists, fmt.Sprintf("nodeclaim %s exists", plan.Name), nil
		}
		if isInvalid(err) {
			return Failed, err.Error(), nil
		}
		return 0, "", err
	}
	c.log.InfoContext(ctx, "nodeclaim_created", "nodeclaim", claim.Name, "nodepool", pool.Name, "pods", len(plan.Pods))
	reason := metrics.ReasonProvisioning
	if _, ok := annotations[annotationReplacementFor]; ok {
		reason = metrics.ReasonReplacement
	}
	metrics.NodeClaimsCreated.WithLabelValues(reason, pool.Name).Inc()
	span.SetAttributes(attribute.Bool("flotilla.created", true))
	c.queue.Add(claim.Name)
	return Created, fmt.Sprintf("nodeclaim %s created", claim.Name), nil
}

// usage sums the capacity of a NodePool's NodeClaims, read from the
// apiserver (not a cache: a claim created a moment ago must count). A claim
// not launched yet counts as its largest instance type.
func (c *Controller) usage(ctx context.Context, pool string) (corev1.ResourceList, error) {
	claims, err := c.crd.ListNodeClaims(ctx)
	if err != nil {
		return nil, err
	}
	total := corev1.ResourceList{}
	for i := range claims {
		nc := &claims[i]
		if nc.Labels[karpv1.NodePoolLabelKey] != pool {
			continue
		}
		if len(nc.Status.Capacity) > 0 {
			total = add(total, nc.Status.Capacity)
			continue
		}
		largest := corev1.ResourceList{}
		for _, r := range nc.Spec.Requirements {
			if r.Key != corev1.LabelInstanceTypeStable || r.Operator != corev1.NodeSelectorOpIn {
				continue
			}
			for _, t := range r.Values {
				it, ok, err := c.catalog.Get(ctx, t)
				if err != nil {
					return nil, err
				}
				if ok {
					largest = maxOf(largest, capacityOf(it))
				}
			}
		}
		total = add(total, largest)
	}
	return total, nil
}

// candidateTypes are the plan's instance types, cheapest first.
func candidateTypes(plan *clusterv1.NodeClaimPlan) []string {
	var out []string
	for _, o := range plan.Options {
		out = append(out, o.InstanceType)
	}
	out = append(out, plan.InstanceTypeOptions...)
	if plan.InstanceType != "" {
		out = append([]string{plan.InstanceType}, out...)
	}
	seen := map[string]bool{}
	return slices.DeleteFunc(out, func(s string) bool {
		if s == "" || seen[s] {
			return true
		}
		seen[s] = true
		return false
	})
}

// build makes the NodeClaim object of a plan.
func (c *Controller) build(plan *clusterv1.NodeClaimPlan, pool *karpv1.NodePool, capacities map[string]corev1.ResourceList) *karpv1.NodeClaim {
	labels := map[string]string{}
	maps.Copy(labels, pool.Spec.Template.Labels)
	maps.Copy(labels, plan.Labels)
	labels[karpv1.NodePoolLabelKey] = pool.Name
	annotations := map[string]string{}
	maps.Copy(annotations, pool.Spec.Template.Annotations)
	if plan.NodePoolHash != "" {
		annotations[karpv1.NodePoolHashAnnotationKey] = plan.NodePoolHash
	}
	if plan.NodeClassHash != "" {
		annotations[karpv1.NodeClassHashAnnotationKey] = plan.NodeClassHash
	}
	// The pods the claim is for, so that a restarted watcher still sees them
	// nominated and no pod causes a second launch.
	if len(plan.Pods) > 0 {
		annotations[snapshot.AnnotationNominatedPods] = snapshot.FormatNominatedPods(plan.Pods)
	}
	nodeClass := pool.Spec.Template.Spec.NodeClassRef
	if plan.NodeClass != "" {
		nodeClass.Name = plan.NodeClass
	}
	if nodeClass.Group == "" {
		nodeClass.Group, nodeClass.Kind = awsv1.Group, "EC2NodeClass"
	}
	claim := &karpv1.NodeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name:            plan.Name,
			Labels:          labels,
			Annotations:     annotations,
			Finalizers:      []string{karpv1.TerminationFinalizer},
			OwnerReferences: poolOwner(pool),
		},
		Spec: karpv1.NodeClaimSpec{
			Taints:                 taintsOf(plan.Taints, pool.Spec.Template.Spec.Taints),
			StartupTaints:          taintsOf(plan.StartupTaints, pool.Spec.Template.Spec.StartupTaints),
			Requirements:           requirements(plan, capacities),
			Resources:              karpv1.ResourceRequirements{Requests: requests(plan.Requests)},
			NodeClassRef:           nodeClass,
			ExpireAfter:            pool.Spec.Template.Spec.ExpireAfter,
			TerminationGracePeriod: pool.Spec.Template.Spec.TerminationGracePeriod,
		},
	}
	return claim
}

// poolOwner is the owner reference a NodeClaim gets: its NodePool, or the
// Provisioner a mapped NodePool came from.
func poolOwner(pool *karpv1.NodePool) []metav1.OwnerReference {
	block := true
	if pool.UID != "" {
		return []metav1.OwnerReference{{
			APIVersion: karpv1.SchemeGroupVersion.String(), Kind: "NodePool", Name: pool.Name, UID: pool.UID,
			BlockOwnerDeletion: &block,
		}}
	}
	var out []metav1.OwnerReference
	for _, o := range pool.OwnerReferences {
		if o.UID != "" {
			out = append(out, metav1.OwnerReference{APIVersion: o.APIVersion, Kind: o.Kind, Name: o.Name, UID: o.UID, BlockOwnerDeletion: &block})
		}
	}
	return out
}

// requirements are the plan's, with instance type, zone and capacity type
// narrowed to its options (capacity type widened to on-demand when the
// plan's requirements allow it, so a spot shortage can fall back).
func requirements(plan *clusterv1.NodeClaimPlan, capacities map[string]corev1.ResourceList) []karpv1.NodeSelectorRequirementWithMinValues {
	var types, zones, capacityTypes []string
	for _, t := range candidateTypes(plan) {
		if _, ok := capacities[t]; ok {
			types = append(types, t)
		}
	}
	for _, o := range plan.Options {
		if _, ok := capacities[o.InstanceType]; !ok {
			continue
		}
		if o.Zone != "" && !slices.Contains(zones, o.Zone) {
			zones = append(zones, o.Zone)
		}
		if o.CapacityType != "" && !slices.Contains(capacityTypes, o.CapacityType) {
			capacityTypes = append(capacityTypes, o.CapacityType)
		}
	}
	if len(plan.Options) == 0 {
		if plan.Zone != "" {
			zones = []string{plan.Zone}
		}
		if plan.CapacityType != "" {
			capacityTypes = []string{plan.CapacityType}
		}
	}
	var out []karpv1.NodeSelectorRequirementWithMinValues
	narrowed := map[string][]string{
		corev1.LabelInstanceTypeStable: types,
		corev1.LabelTopologyZone:       zones,
		karpv1.CapacityTypeLabelKey:    capacityTypes,
	}
	for _, r := range plan.Requirements {
		req := karpv1.NodeSelectorRequirementWithMinValues{
			Key: r.Key, Operator: operator(r.Operator), Values: slices.Clone(r.Values),
		}
		if r.MinValues > 0 {
			mv := int(r.MinValues)
			req.MinValues = &mv
		}
		if len(narrowed[r.Key]) > 0 && req.Operator == corev1.NodeSelectorOpIn {
			if r.Key == karpv1.CapacityTypeLabelKey && slices.Contains(r.Values, karpv1.CapacityTypeOnDemand) &&
				!slices.Contains(capacityTypes, karpv1.CapacityTypeOnDemand) {
				capacityTypes = append(capacityTypes, karpv1.CapacityTypeOnDemand)
				narrowed[r.Key] = capacityTypes
			}
			continue // replaced by the narrowed requirement below
		}
		out = append(out, req)
	}
	for _, key := range []string{corev1.LabelInstanceTypeStable, karpv1.CapacityTypeLabelKey, corev1.LabelTopologyZone} {
		if vals := narrowed[key]; len(vals) > 0 {
			out = append(out, karpv1.NodeSelectorRequirementWithMinValues{Key: key, Operator: corev1.NodeSelectorOpIn, Values: vals})
		}
	}
	return out
}

func operator(op clusterv1.Operator) corev1.NodeSelectorOperator {
	switch op {
	case clusterv1.Operator_OPERATOR_NOT_IN:
		return corev1.NodeSelectorOpNotIn
	case clusterv1.Operator_OPERATOR_EXISTS:
		return corev1.NodeSelectorOpExists
	case clusterv1.Operator_OPERATOR_DOES_NOT_EXIST:
		return corev1.NodeSelectorOpDoesNotExist
	case clusterv1.Operator_OPERATOR_GT:
		return corev1.NodeSelectorOpGt
	case clusterv1.Operator_OPERATOR_LT:
		return corev1.NodeSelectorOpLt
	}
	return corev1.NodeSelectorOpIn
}

func taintsOf(plan []*clusterv1.Taint, pool []corev1.Taint) []corev1.Taint {
	if len(plan) == 0 {
		return slices.Clone(pool)
	}
	out := make([]corev1.Taint, 0, len(plan))
	for _, t := range plan {
		out = append(out, corev1.Taint{Key: t.Key, Value: t.Value, Effect: corev1.TaintEffect(t.Effect)})
	}
	return out
}

func requests(r *clusterv1.Resources) corev1.ResourceList {
	if r == nil {
		return nil
	}
	out := corev1.ResourceList{}
	if r.CpuMillis > 0 {
		out[corev1.ResourceCPU] = *resource.NewMilliQuantity(r.CpuMillis, resource.DecimalSI)
	}
	if r.MemoryBytes > 0 {
		out[corev1.ResourceMemory] = *resource.NewQuantity(r.MemoryBytes, resource.BinarySI)
	}
	if r.Pods > 0 {
		out[corev1.ResourcePods] = *resource.NewQuantity(r.Pods, resource.DecimalSI)
	}
	if r.EphemeralStorageBytes > 0 {
		out[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(r.EphemeralStorageBytes, resource.BinarySI)
	}
	for k, v := range r.Extended {
		out[corev1.ResourceName(k)] = *resource.NewQuantity(v, resource.DecimalSI)
	}
	return out
}

// capacityOf is an instance type's capacity as a resource list.
func capacityOf(it *clusterv1.InstanceType) corev1.ResourceList {
	return requests(it.Capacity)
}

func add(a, b corev1.ResourceList) corev1.ResourceList {
	out := a.DeepCopy()
	if out == nil {
		out = corev1.ResourceList{}
	}
	for k, v := range b {
		q := out[k]
		q.Add(v)
		out[k] = q
	}
	return out
}

func maxOf(a, b corev1.ResourceList) corev1.ResourceList {
	out := a.DeepCopy()
	for k, v := range b {
		if q, ok := out[k]; !ok || v.Cmp(q) > 0 {
			out[k] = v.DeepCopy()
		}
	}
	return out
}

// phase names how far a NodeClaim got, for messages.
func phase(nc *karpv1.NodeClaim) string {
	switch {
	case nc.DeletionTimestamp != nil:
		return "terminating"
	case nc.IsTrue(karpv1.ConditionTypeInitialized):
		return "initialized"
	case nc.IsTrue(karpv1.ConditionTypeRegistered):
		return "registered"
	case nc.IsTrue(karpv1.ConditionTypeLaunched):
		return "launched"
	}
	return "launching"
}
