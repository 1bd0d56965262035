// Package nodepool keeps every NodePool's status current: the resources
// its NodeClaims hold and how many nodes it has, and the conditions that
// say, in words, whether it can launch: ValidationSucceeded (the spec makes
// sense), NodeClassReady (its EC2NodeClass exists and resolved) and Ready
// (both). The watcher reads Ready; a NodePool that is not Ready gets no new
// capacity, and the condition says why.
package nodepool

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/api/snapshot"
)

// Condition reasons.
const (
	ReasonValid             = "Valid"
	ReasonInvalid           = "Invalid"
	ReasonNodeClassReady    = "NodeClassReady"
	ReasonNodeClassNotFound = "NodeClassNotFound"
	ReasonNodeClassNotReady = "NodeClassNotReady"
	ReasonNodeClassPending  = "NodeClassNotResolvedYet"
	ReasonReady             = "Ready"
)

// DefaultInterval is how often every NodePool's status is checked.
const DefaultInterval = 5 * time.Second

// Writer writes a NodePool's status.
type Writer interface {
	UpdateNodePoolStatus(ctx context.Context, np *karpv1.NodePool) (*karpv1.NodePool, error)
}

// Claims lists the NodeClaims (cached).
type Claims interface {
	Cached() []*karpv1.NodeClaim
}

// Options configure a Controller.
type Options struct {
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// Controller writes NodePool statuses.
type Controller struct {
	pools   cache.SharedIndexInformer
	classes cache.SharedIndexInformer
	claims  Claims
	writer  Writer
	opts    Options
}

// New returns a Controller over the NodePool informer (which Run starts)
// and the EC2NodeClass informer (which someone else runs).
func New(pools cache.SharedIndexInformer, classes cache.SharedIndexInformer, claims Claims, writer Writer, opts Options) *Controller {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Controller{pools: pools, classes: classes, claims: claims, writer: writer, opts: opts}
}

// Run updates the statuses on every NodePool change and every Interval
// until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	trigger := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	if _, err := c.pools.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: poke, UpdateFunc: func(_, o any) { poke(o) }}); err != nil {
		return fmt.Errorf("nodepool handler: %w", err)
	}
	go c.pools.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), c.pools.HasSynced, c.classes.HasSynced) {
		return nil
	}
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-trigger:
		case <-t.C:
		}
		c.UpdateAll(ctx)
	}
}

// UpdateAll writes the status of every NodePool whose status changed;
// failures are logged and retried on the next round.
func (c *Controller) UpdateAll(ctx context.Context) {
	claims := c.claims.Cached()
	for _, obj := range c.pools.GetStore().List() {
		np, ok := obj.(*karpv1.NodePool)
		if !ok || np.DeletionTimestamp != nil {
			continue
		}
		st := c.Status(np, claims)
		if equalStatus(st, np.Status) {
			continue
		}
		cp := np.DeepCopy()
		cp.Status = st
		if _, err := c.writer.UpdateNodePoolStatus(ctx, cp); err != nil {
			c.opts.Logger.WarnContext(ctx, "nodepool_status_failed", "nodepool", np.Name, "error", err.Error())
			continue
		}
		ready := meta.FindStatusCondition(st.Conditions, karpv1.ConditionTypeReady)
		c.opts.Logger.InfoContext(ctx, "nodepool_status_updated", "nodepool", np.Name, "nodes", *st.Nodes,
			"ready", ready.Status, "reason", ready.Reason, "message", ready.Message)
	}
}

// Status is the status a NodePool should have, given the NodeClaims.
func (c *Controller) Status(np *karpv1.NodePool, claims []*karpv1.NodeClaim) karpv1.NodePoolStatus {
	st := *np.Status.DeepCopy()
	resources := corev1.ResourceList{}
	var nodes int64
	for _, nc := range claims {
		if nc.Labels[karpv1.NodePoolLabelKey] != np.Name {
			continue
		}
		for k, v := range nc.Status.Capacity {
			q := resources[k]
			q.Add(v)
			resources[k] = q
		}
		if nc.Status.NodeName != "" && nc.DeletionTimestamp == nil {
			nodes++
		}
	}
	st.Resources = resources
	if len(resources) == 0 {
		st.Resources = nil
	}
	st.Nodes = &nodes

	now := metav1.NewTime(c.opts.Now())
	set := func(t string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg,
			ObservedGeneration: np.Generation, LastTransitionTime: now})
	}
	valid := true
	if _, err := snapshot.NodePool(np); err != nil {
		valid = false
		set(karpv1.ConditionTypeValidationSucceeded, false, ReasonInvalid, err.Error())
	} else {
		set(karpv1.ConditionTypeValidationSucceeded, true, ReasonValid, "the NodePool is valid")
	}

	classOK, classReason, classMsg, generation := c.nodeClass(np)
	st.NodeClassObservedGeneration = generation
	set(karpv1.ConditionTypeNodeClassReady, classOK, classReason, classMsg)

	switch {
	case !valid:
		cond := meta.FindStatusCondition(st.Conditions, karpv1.ConditionTypeValidationSucceeded)
		set(karpv1.ConditionTypeReady, false, ReasonInvalid, cond.Message)
	case !classOK:
		set(karpv1.ConditionTypeReady, false, classReason, classMsg)
	default:
		set(karpv1.ConditionTypeReady, true, ReasonReady, "the NodePool can launch nodes")
	}
	return st
}

// nodeClass checks the NodePool's EC2NodeClass; it returns the class's
// generation too (0 when there is none).
func (c *Controller) nodeClass(np *karpv1.NodePool) (bool, string, string, int64) {
	name := np.Spec.Template.Spec.NodeClassRef.Name
	if name == "" {
		return false, ReasonNodeClassNotFound, "the NodePool names no EC2NodeClass (spec.template.spec.nodeClassRef)", 0
	}
	obj, exists, err := c.classes.GetStore().GetByKey(name)
	if err != nil || !exists {
		return false, ReasonNodeClassNotFound, fmt.Sprintf("EC2NodeClass %s not found", name), 0
	}
	class := obj.(*awsv1.EC2NodeClass)
	if class.DeletionTimestamp != nil {
		return false, ReasonNodeClassNotReady, fmt.Sprintf("EC2NodeClass %s is being deleted", name), class.Generation
	}
	ready := meta.FindStatusCondition(class.Status.Conditions, awsv1.ConditionTypeReady)
	switch {
	case ready == nil:
		return false, ReasonNodeClassPending, fmt.Sprintf("EC2NodeClass %s has not been resolved yet", name), class.Generation
	case ready.Status != metav1.ConditionTrue:
		msg := ready.Message
		if msg == "" {
			msg = ready.Reason
		}
		return false, ReasonNodeClassNotReady, fmt.Sprintf("EC2NodeClass %s is not ready: %s", name, msg), class.Generation
	}
	return true, ReasonNodeClassReady, fmt.Sprintf("EC2NodeClass %s is ready", name), class.Generation
}

// equalStatus compares statuses without the conditions' transition times.
func equalStatus(a, b karpv1.NodePoolStatus) bool {
	strip := func(s karpv1.NodePoolStatus) karpv1.NodePoolStatus {
		s = *s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastTransitionTime = metav1.Time{}
		}
		return s
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b))
}
