package nodeclaim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/bootstrap"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/instance"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclass"
)

// Condition reasons.
const (
	ReasonLaunched              = "Launched"
	ReasonNodeClassNotFound     = "NodeClassNotFound"
	ReasonNodeClassNotReady     = "NodeClassNotReady"
	ReasonInsufficientCapacity  = "InsufficientCapacity"
	ReasonNoCompatibleOffering  = "NoCompatibleOffering"
	ReasonLaunchFailed          = "LaunchFailed"
	ReasonLaunchTimeout         = "LaunchTimeout"
	ReasonRegistered            = "Registered"
	ReasonRegistrationTimeout   = "RegistrationTimeout"
	ReasonInitialized           = "Initialized"
	ReasonInitializationTimeout = "InitializationTimeout"
	ReasonNodeNotReady          = "NodeNotReady"
	ReasonInstanceTerminating   = "InstanceTerminating"
)

// launch launches the claim's instance (or finds the one already launched)
// and records it.
func (c *Controller) launch(ctx context.Context, claim *karpv1.NodeClaim) (time.Duration, error) {
	ctx, span, traced := startSpan(ctx, claim, "nodeclaim.launch")
	if traced {
		defer span.End()
	}
	if age := c.opts.Now().Sub(claim.CreationTimestamp.Time); age > c.opts.LaunchTimeout {
		msg := fmt.Sprintf("not launched within %s", c.opts.LaunchTimeout)
		if cond := claim.Condition(karpv1.ConditionTypeLaunched); cond != nil && cond.Message != "" && cond.Reason != ReasonLaunchTimeout {
			msg += ": " + cond.Message
		}
		return c.expire(ctx, claim, karpv1.ConditionTypeLaunched, ReasonLaunchTimeout, msg)
	}
	if wait := c.launchHeld(claim.UID); wait > 0 {
		// The last attempt failed a moment ago; the update that recorded
		// it is what woke the claim.
		return wait, nil
	}
	class, err := c.nodeClass(ctx, claim.Spec.NodeClassRef.Name)
	if isNotFound(err) {
		return c.launchFailed(ctx, claim, ReasonNodeClassNotFound, fmt.Sprintf("EC2NodeClass %s not found", claim.Spec.NodeClassRef.Name))
	}
	if err != nil {
		return 0, err
	}
	for fresh := false; ; fresh = true {
		resolved, err := c.resolver.Resolve(ctx, class)
		if errors.Is(err, nodeclass.ErrNotResolved) {
			return c.launchFailed(ctx, claim, ReasonNodeClassNotReady, fmt.Sprintf("EC2NodeClass %s: %s", class.Name, err))
		}
		if err != nil {
			return 0, err
		}
		wait, err := c.launchOn(ctx, claim, class, resolved)
		if !errors.Is(err, instance.ErrStaleResolution) {
			return wait, err
		}
		// A subnet, security group or image the class resolved to is gone
		// (deleted, or the account rebuilt): resolve the class again now,
		// not at the end of the cache's minute, and try once more.
		c.resolver.Refresh(class.Name)
		if fresh {
			return c.launchFailed(ctx, claim, ReasonLaunchFailed, err.Error())
		}
		c.log.InfoContext(ctx, "nodeclass_resolved_again", "nodeclaim", claim.Name, "nodeclass", class.Name, "error", err.Error())
	}
}

// launchOn launches the claim's instance with the node class resolved as
// given. An error wrapping instance.ErrStaleResolution says the resolution
// is out of date; the caller records it.
func (c *Controller) launchOn(ctx context.Context, claim *karpv1.NodeClaim, class *awsv1.EC2NodeClass, resolved *nodeclass.Resolved) (time.Duration, error) {
	offers, types, err := c.offerings(ctx, claim, resolved)
	if err != nil {
		return 0, err
	}
	if len(offers) == 0 {
		return c.launchFailed(ctx, claim, ReasonNoCompatibleOffering,
			fmt.Sprintf("no offering in the catalogue meets the requirements in the zones of EC2NodeClass %s (%v)", class.Name, resolved.Zones()))
	}
	req := &instance.LaunchRequest{
		NodeClaim:       claim.Name,
		NodeClaimUID:    string(claim.UID),
		NodePool:        claim.Labels[karpv1.NodePoolLabelKey],
		NodeClass:       class,
		Resolved:        resolved,
		Offerings:       offers,
		InstanceProfile: c.opts.InstanceProfile,
		UserData: func(o instance.Offering) (string, error) {
			return bootstrap.UserData(c.opts.Cluster, c.bootstrapNode(claim, class, o))
		},
	}
	inst, err := c.instances.Launch(ctx, req)
	var capErr *instance.CapacityError
	if errors.As(err, &capErr) {
		// Nothing left to try: give the planner the claim back, so it plans
		// again with those offerings marked unavailable.
		c.log.WarnContext(ctx, "nodeclaim_insufficient_capacity", "nodeclaim", claim.Name, "error", err.Error())
		c.setCondition(claim, karpv1.ConditionTypeLaunched, false, ReasonInsufficientCapacity, err.Error())
		if _, uerr := c.crd.UpdateNodeClaimStatus(ctx, claim); uerr != nil && !isNotFound(uerr) {
			return 0, uerr
		}
		if derr := c.crd.DeleteNodeClaim(ctx, claim.Name); derr != nil && !isNotFound(derr) {
			return 0, derr
		}
		return 0, nil
	}
	if errors.Is(err, instance.ErrStaleResolution) {
		return 0, err
	}
	if err != nil {
		return c.launchFailed(ctx, claim, ReasonLaunchFailed, err.Error())
	}
	return 0, c.recordLaunch(ctx, claim, class, inst, types[inst.Type])
}

// launchRetry is the pause after a failed launch attempt.
const launchRetry = 15 * time.Second

// launchHeld returns how long the claim's next launch attempt waits (0:
// none).
func (c *Controller) launchHeld(uid types.UID) time.Duration {
	c.heldMu.Lock()
	defer c.heldMu.Unlock()
	until, ok := c.held[uid]
	if !ok {
		return 0
	}
	wait := until.Sub(c.opts.Now())
	if wait <= 0 {
		delete(c.held, uid)
		return 0
	}
	return wait
}

// holdLaunch holds the claim's next launch attempt back for launchRetry;
// release lets it go (the claim launched or is gone).
func (c *Controller) holdLaunch(uid types.UID) {
	c.heldMu.Lock()
	defer c.heldMu.Unlock()
	if c.held == nil {
		c.held = map[types.UID]time.Time{}
	}
	c.held[uid] = c.opts.Now().Add(launchRetry)
}

func (c *Controller) releaseLaunch(uid types.UID) {
	c.heldMu.Lock()
	defer c.heldMu.Unlock()
	delete(c.held, uid)
}

// launchFailed records why the claim is not launched yet and tries again
// after launchRetry (the launch timeout ends it). Events on the claim in
// the meantime (the status update just made, first of all) do not bring
// the attempt forward: EC2 failing is not asked again at once.
func (c *Controller) launchFailed(ctx context.Context, claim *karpv1.NodeClaim, reason, message string) (time.Duration, error) {
	c.holdLaunch(claim.UID)
	// An AWS error names a new request each time; written into the
	// condition it would change the status on every attempt, and the
	// update would requeue the claim at once instead of after the pause.
	message = requestIDs.ReplaceAllString(message, "")
	cond := claim.Condition(karpv1.ConditionTypeLaunched)
	if cond == nil || cond.Reason != reason || cond.Message != message {
		c.log.WarnContext(ctx, "nodeclaim_not_launched", "nodeclaim", claim.Name, "reason", reason, "message", message)
		c.setCondition(claim, karpv1.ConditionTypeLaunched, false, reason, message)
		if _, err := c.crd.UpdateNodeClaimStatus(ctx, claim); err != nil && !isNotFound(err) {
			return 0, err
		}
	}
	return launchRetry, nil
}

// requestIDs matches the request id in an AWS SDK error message
// ("RequestID: 5f1d…, ").
var requestIDs = regexp.MustCompile(`RequestID: [^,\s]*,?\s*`)

// recordLaunch writes the instance into the claim: labels first (metadata),
// then providerID, capacity and the Launched condition (status).
func (c *Controller) recordLaunch(ctx context.Context, claim *karpv1.NodeClaim, class *awsv1.EC2NodeClass,
	inst *instance.Instance, it *clusterv1.InstanceType) error {
	labels := maps.Clone(claim.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if it != nil {
		for k, v := range it.Labels {
			labels[k] = v
		}
		labels[corev1.LabelArchStable] = it.Arch
	}
	labels[corev1.LabelInstanceTypeStable] = inst.Type
	labels[corev1.LabelTopologyZone] = inst.Zone
	labels[karpv1.CapacityTypeLabelKey] = inst.CapacityType
	labels[corev1.LabelOSStable] = "linux"
	if !maps.Equal(labels, claim.Labels) {
		claim.Labels = labels
		updated, err := c.crd.UpdateNodeClaim(ctx, claim)
		if err != nil {
			return err
		}
		claim = updated
	}
	claim.Status.ProviderID = inst.ProviderID()
	claim.Status.ImageID = inst.ImageID
	if it != nil {
		o := instance.Offering{InstanceType: inst.Type, Arch: it.Arch, VCPU: it.GetCapacity().GetCpuMillis() / 1000, MaxPods: it.GetCapacity().GetPods()}
		node := c.bootstrapNode(claim, class, o)
		claim.Status.Capacity, claim.Status.Allocatable = capacityAndAllocatable(it, node)
	}
	c.setCondition(claim, karpv1.ConditionTypeLaunched, true, ReasonLaunched,
		fmt.Sprintf("instance %s (%s, %s, %s)", inst.ID, inst.Type, inst.Zone, inst.CapacityType))
	if _, err := c.crd.UpdateNodeClaimStatus(ctx, claim); err != nil {
		return err
	}
	c.log.InfoContext(ctx, "nodeclaim_launched", "nodeclaim", claim.Name, "instance", inst.ID, "instance_type", inst.Type,
		"zone", inst.Zone, "capacity_type", inst.CapacityType)
	return nil
}

// bootstrapNode is the bootstrap of the claim's node on one offering.
func (c *Controller) bootstrapNode(claim *karpv1.NodeClaim, class *awsv1.EC2NodeClass, o instance.Offering) bootstrap.Node {
	labels := map[string]string{}
	for k, v := range claim.Labels {
		labels[k] = v
	}
	labels[karpv1.CapacityTypeLabelKey] = o.CapacityType
	if o.CapacityType == "" {
		delete(labels, karpv1.CapacityTypeLabelKey)
	}
	n := bootstrap.Node{
		Labels:     labels,
		Taints:     append(slices.Clone(claim.Spec.Taints), claim.Spec.StartupTaints...),
		VCPU:       o.VCPU,
		ENIMaxPods: o.MaxPods,
		UserData:   class.Spec.UserData,
	}
	if k := class.Spec.Kubelet; k != nil {
		n.Kubelet = bootstrap.Kubelet{MaxPods: k.MaxPods, PodsPerCore: k.PodsPerCore, KubeReserved: k.KubeReserved,
			SystemReserved: k.SystemReserved, EvictionHard: k.EvictionHard}
	}
	return n
}

// capacityAndAllocatable is what the node will report: capacity from the
// catalogue, allocatable less the kubelet's reservations.
func capacityAndAllocatable(it *clusterv1.InstanceType, n bootstrap.Node) (corev1.ResourceList, corev1.ResourceList) {
	capacity := capacityOf(it)
	pods := bootstrap.MaxPods(n.VCPU, n.ENIMaxPods, n.Kubelet)
	capacity[corev1.ResourcePods] = *resource.NewQuantity(pods, resource.DecimalSI)
	alloc := capacity.DeepCopy()
	sub := func(name corev1.ResourceName, values ...string) {
		q, ok := alloc[name]
		if !ok {
			return
		}
		for _, v := range values {
			if v == "" {
				continue
			}
			if r, err := resource.ParseQuantity(v); err == nil {
				q.Sub(r)
			}
		}
		if q.Sign() < 0 {
			q = resource.Quantity{}
		}
		alloc[name] = q
	}
	kubeCPU := strconv.FormatInt(bootstrap.KubeReservedCPUMillis(n.VCPU), 10) + "m"
	kubeMem := strconv.FormatInt(bootstrap.KubeReservedMemoryMiB(pods), 10) + "Mi"
	evictMem := "100Mi"
	if v, ok := n.Kubelet.KubeReserved["cpu"]; ok {
		kubeCPU = v
	}
	if v, ok := n.Kubelet.KubeReserved["memory"]; ok {
		kubeMem = v
	}
	if v, ok := n.Kubelet.EvictionHard["memory.available"]; ok {
		evictMem = v
	}
	sub(corev1.ResourceCPU, kubeCPU, n.Kubelet.SystemReserved["cpu"])
	sub(corev1.ResourceMemory, kubeMem, n.Kubelet.SystemReserved["memory"], evictMem)
	return capacity, alloc
}

// offerings lists the catalogue's available offerings that meet the claim's
// requirements in the node class's zones, cheapest first (at most
// MaxOfferings), and the instance types they belong to.
func (c *Controller) offerings(ctx context.Context, claim *karpv1.NodeClaim, resolved *nodeclass.Resolved) ([]instance.Offering, map[string]*clusterv1.InstanceType, error) {
	types, err := c.catalog.InstanceTypes(ctx, resolved.Zones())
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]*clusterv1.InstanceType{}
	var out []instance.Offering
	for _, it := range types {
		if _, ok := resolved.Image(it.Arch); !ok {
			continue
		}
		for _, o := range it.Offerings {
			if !o.Available {
				continue
			}
			labels := map[string]string{
				corev1.LabelTopologyZone:    o.Zone,
				karpv1.CapacityTypeLabelKey: o.CapacityType,
				karpv1.LabelTopologyZoneID:  o.ZoneId,
				corev1.LabelArchStable:      it.Arch,
				corev1.LabelOSStable:        "linux",
			}
			// The claim's own labels (NodePool, node class, region) are
			// the node's too: requirements on them hold for every offering.
			if !Compatible(claim.Spec.Requirements, it.Labels, labels, claim.Labels) {
				continue
			}
			byName[it.Name] = it
			out = append(out, instance.Offering{
				InstanceType: it.Name, Zone: o.Zone, CapacityType: o.CapacityType, Price: o.PricePerHour,
				Arch: it.Arch, VCPU: it.GetCapacity().GetCpuMillis() / 1000, MaxPods: it.GetCapacity().GetPods(),
			})
		}
	}
	slices.SortStableFunc(out, func(a, b instance.Offering) int {
		return cmp.Or(cmp.Compare(a.Price, b.Price), cmp.Compare(a.InstanceType, b.InstanceType), cmp.Compare(a.Zone, b.Zone))
	})
	if len(out) > MaxOfferings {
		out = out[:MaxOfferings]
	}
	return out, byName, nil
}

// Compatible reports whether an offering (its instance type's labels and
// its own) meets requirements. Keys neither carries are labels the node will
// get from the claim, not properties of the offering, unless they are
// well-known (then a missing label fails In and Exists).
func Compatible(reqs []karpv1.NodeSelectorRequirementWithMinValues, labelSets ...map[string]string) bool {
	lookup := func(key string) (string, bool) {
		for _, l := range labelSets {
			if v, ok := l[key]; ok {
				return v, true
			}
		}
		return "", false
	}
	for _, r := range reqs {
		v, ok := lookup(r.Key)
		if !ok && !karpv1.IsWellKnownLabel(r.Key) {
			continue
		}
		switch r.Operator {
		case corev1.NodeSelectorOpIn:
			if !ok || !slices.Contains(r.Values, v) {
				return false
			}
		case corev1.NodeSelectorOpNotIn:
			if ok && slices.Contains(r.Values, v) {
				return false
			}
		case corev1.NodeSelectorOpExists:
			if !ok {
				return false
			}
		case corev1.NodeSelectorOpDoesNotExist:
			if ok {
				return false
			}
		case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
			if !ok || len(r.Values) != 1 {
				return false
			}
			have, err1 := strconv.ParseInt(v, 10, 64)
			want, err2 := strconv.ParseInt(r.Values[0], 10, 64)
			if err1 != nil || err2 != nil {
				return false
			}
			if (r.Operator == corev1.NodeSelectorOpGt && have <= want) || (r.Operator == corev1.NodeSelectorOpLt && have >= want) {
				return false
			}
		}
	}
	return true
}
