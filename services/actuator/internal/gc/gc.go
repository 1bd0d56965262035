// Package gc finds what the rest of the actuator lost track of and removes
// it: instances tagged for the cluster that no NodeClaim owns (after a grace
// period, so a launch still being recorded is not taken for a leak),
// NodeClaims whose instance vanished, and Nodes with an aws:/// providerID
// that Flotilla launched but no NodeClaim owns any more.
package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/instance"
)

// DefaultGracePeriod is how old an unowned instance or Node must be before
// it is removed.
const DefaultGracePeriod = 2 * time.Minute

// DefaultInterval is how often Run collects.
const DefaultInterval = time.Minute

// Instances is what the collector needs of the EC2 side.
type Instances interface {
	List(ctx context.Context) ([]*instance.Instance, error)
	Get(ctx context.Context, id string) (*instance.Instance, error)
	Terminate(ctx context.Context, ids ...string) error
}

// NodeClaims is what the collector needs of the NodeClaim API.
type NodeClaims interface {
	ListNodeClaims(ctx context.Context) ([]karpv1.NodeClaim, error)
	DeleteNodeClaim(ctx context.Context, name string) error
}

// Templates lists and deletes the cluster's launch templates.
type Templates interface {
	Templates(ctx context.Context) ([]instance.Template, error)
	DeleteTemplate(ctx context.Context, t instance.Template) error
}

// Options configure a Collector.
type Options struct {
	// Templates and NodeClasses, when both set, let the collector delete
	// the launch templates of node classes that no longer exist.
	Templates Templates
	// NodeClasses returns the names of the node classes that exist
	// (EC2NodeClasses and the inline node classes of Provisioners).
	NodeClasses func(ctx context.Context) ([]string, error)
	// GracePeriod: DefaultGracePeriod when 0.
	GracePeriod time.Duration
	// Interval: DefaultInterval when 0.
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// Collector garbage-collects instances, NodeClaims and Nodes.
type Collector struct {
	instances Instances
	claims    NodeClaims
	kube      kubernetes.Interface
	opts      Options
}

// New returns a Collector.
func New(instances Instances, claims NodeClaims, kube kubernetes.Interface, opts Options) *Collector {
	if opts.GracePeriod <= 0 {
		opts.GracePeriod = DefaultGracePeriod
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Collector{instances: instances, claims: claims, kube: kube, opts: opts}
}

// Result says what one collection removed.
type Result struct {
	// TerminatedInstances are leaked instance ids.
	TerminatedInstances []string
	// DeletedNodeClaims are claims whose instance was gone.
	DeletedNodeClaims []string
	// DeletedNodes are Nodes no NodeClaim owned.
	DeletedNodes []string
	// DeletedTemplates are launch templates of deleted node classes.
	DeletedTemplates []string
}

// Run collects every Interval until ctx ends; failures are logged and
// retried on the next round.
func (c *Collector) Run(ctx context.Context) error {
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		res, err := c.Collect(ctx)
		if err != nil && ctx.Err() == nil {
			c.opts.Logger.WarnContext(ctx, "gc_failed", "error", err.Error())
		}
		if n := len(res.TerminatedInstances) + len(res.DeletedNodeClaims) + len(res.DeletedNodes) + len(res.DeletedTemplates); n > 0 {
			c.opts.Logger.InfoContext(ctx, "gc_collected", "instances", res.TerminatedInstances,
				"nodeclaims", res.DeletedNodeClaims, "nodes", res.DeletedNodes, "launch_templates", res.DeletedTemplates)
		}
	}
}

// Collect makes one pass.
func (c *Collector) Collect(ctx context.Context) (Result, error) {
	var res Result
	claims, err := c.claims.ListNodeClaims(ctx)
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	instances, err := c.instances.List(ctx)
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	now := c.opts.Now()
	byName := map[string]*karpv1.NodeClaim{}
	byProviderID := map[string]*karpv1.NodeClaim{}
	for i := range claims {
		byName[claims[i].Name] = &claims[i]
		if claims[i].Status.ProviderID != "" {
			byProviderID[claims[i].Status.ProviderID] = &claims[i]
		}
	}

	// Instances no NodeClaim owns.
	live := map[string]bool{}
	var leaked []string
	for _, inst := range instances {
		live[inst.ID] = true
		if now.Sub(inst.LaunchTime) < c.opts.GracePeriod {
			continue
		}
		if owned(inst, byName) {
			continue
		}
		leaked = append(leaked, inst.ID)
	}
	var errs []error
	if len(leaked) > 0 {
		if err := c.instances.Terminate(ctx, leaked...); err != nil {
			errs = append(errs, err)
		} else {
			res.TerminatedInstances = leaked
		}
	}

	// NodeClaims whose instance is gone.
	for _, nc := range claims {
		if nc.DeletionTimestamp != nil || nc.Status.ProviderID == "" {
			continue
		}
		launched := nc.Condition(karpv1.ConditionTypeLaunched)
		if launched == nil || now.Sub(launched.LastTransitionTime.Time) < c.opts.GracePeriod/4 {
			continue
		}
		id, err := instance.ParseProviderID(nc.Status.ProviderID)
		if err != nil || live[id] {
			continue
		}
		// Not in the listing: make sure (it may have lost its tags).
		if _, err := c.instances.Get(ctx, id); err == nil {
			continue
		} else if !errors.Is(err, instance.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		if err := c.claims.DeleteNodeClaim(ctx, nc.Name); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
			continue
		}
		res.DeletedNodeClaims = append(res.DeletedNodeClaims, nc.Name)
	}

	// Launch templates of node classes that are gone.
	if deleted, err := c.collectTemplates(ctx, claims, now); err != nil {
		errs = append(errs, err)
	} else {
		res.DeletedTemplates = deleted
	}

	// Nodes Flotilla launched that no NodeClaim owns.
	nodes, err := c.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		errs = append(errs, fmt.Errorf("list nodes: %w", err))
		return res, errors.Join(errs...)
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if !strings.HasPrefix(n.Spec.ProviderID, "aws:///") || n.Labels[karpv1.NodePoolLabelKey] == "" {
			continue
		}
		if byProviderID[n.Spec.ProviderID] != nil || now.Sub(n.CreationTimestamp.Time) < c.opts.GracePeriod {
			continue
		}
		if err := c.deleteNode(ctx, n); err != nil {
			errs = append(errs, err)
			continue
		}
		res.DeletedNodes = append(res.DeletedNodes, n.Name)
	}
	return res, errors.Join(errs...)
}

// owned reports whether an instance belongs to a NodeClaim: the claim its
// tag names exists and has not recorded a different instance.
func owned(inst *instance.Instance, claims map[string]*karpv1.NodeClaim) bool {
	nc, ok := claims[inst.Tags[awsv1.TagNodeClaim]]
	if !ok {
		return false
	}
	if nc.Status.ProviderID == "" {
		return true // launched, not recorded yet
	}
	id, err := instance.ParseProviderID(nc.Status.ProviderID)
	return err == nil && id == inst.ID
}

func (c *Collector) deleteNode(ctx context.Context, n *corev1.Node) error {
	nodes := c.kube.CoreV1().Nodes()
	if slices.Contains(n.Finalizers, karpv1.TerminationFinalizer) {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"finalizers":      slices.DeleteFunc(slices.Clone(n.Finalizers), func(f string) bool { return f == karpv1.TerminationFinalizer }),
			"resourceVersion": n.ResourceVersion,
		}})
		if _, err := nodes.Patch(ctx, n.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("remove finalizer of node %s: %w", n.Name, err)
		}
	}
	if err := nodes.Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete node %s: %w", n.Name, err)
	}
	return nil
}

// collectTemplates deletes the launch templates made for node classes that
// no longer exist and no NodeClaim names, once older than the grace period
// (a node class created a moment ago may not be listed yet).
func (c *Collector) collectTemplates(ctx context.Context, claims []karpv1.NodeClaim, now time.Time) ([]string, error) {
	if c.opts.Templates == nil || c.opts.NodeClasses == nil {
		return nil, nil
	}
	names, err := c.opts.NodeClasses(ctx)
	if err != nil {
		return nil, fmt.Errorf("gc: node classes: %w", err)
	}
	inUse := map[string]bool{}
	for _, n := range names {
		inUse[n] = true
	}
	for _, nc := range claims {
		inUse[nc.Spec.NodeClassRef.Name] = true
	}
	templates, err := c.opts.Templates.Templates(ctx)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	var deleted []string
	var errs []error
	for _, t := range templates {
		if t.NodeClass == "" || inUse[t.NodeClass] || now.Sub(t.Created) < c.opts.GracePeriod {
			continue
		}
		if err := c.opts.Templates.DeleteTemplate(ctx, t); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, t.Name)
	}
	return deleted, errors.Join(errs...)
}
