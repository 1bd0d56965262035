// Package nodeclaim creates NodeClaims from plans and carries each through
// its life: launch (Launched), a Node with its providerID joins
// (Registered), the Node is Ready without startup taints (Initialized), and,
// once deleted, drain, instance termination and Node removal before the
// finalizer goes. Every step has a timeout that ends in cleanup with a
// reason; every step can be repeated after a restart without doing anything
// twice.
package nodeclaim

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/bootstrap"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/drain"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/instance"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/karpenter"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclass"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/offering"
)

// Defaults of Options.
const (
	DefaultLaunchTimeout         = 5 * time.Minute
	DefaultRegistrationTimeout   = 15 * time.Minute
	DefaultInitializationTimeout = 15 * time.Minute
	DefaultWorkers               = 8
	// MaxOfferings bounds the offerings one launch considers (cheapest
	// first).
	MaxOfferings = 60
)

// providerIDIndex indexes Nodes by spec.providerID.
const providerIDIndex = "providerID"

// Options configure a Controller.
type Options struct {
	// Cluster is what new nodes are told to join.
	Cluster bootstrap.Cluster
	// InstanceProfile is used when a node class names none.
	InstanceProfile string
	// LaunchTimeout, RegistrationTimeout and InitializationTimeout bound
	// each step; a NodeClaim stuck longer is deleted (and cleaned up).
	LaunchTimeout         time.Duration
	RegistrationTimeout   time.Duration
	InitializationTimeout time.Duration
	// KeepStartupTaints leaves startup taints for something on the node to
	// remove; by default the actuator removes them once the Node is Ready.
	KeepStartupTaints bool
	// Workers reconcile NodeClaims in parallel; DefaultWorkers when 0.
	Workers int
	Logger  *slog.Logger
	Now     func() time.Time
}

// Controller creates and reconciles NodeClaims.
type Controller struct {
	kube      kubernetes.Interface
	crd       *karpenter.Client
	instances *instance.Provider
	resolver  *nodeclass.Resolver
	catalog   *offering.Catalog
	drainer   *drain.Drainer
	opts      Options
	log       *slog.Logger

	// createMu serialises creation so concurrent plans never pass a
	// NodePool limit together.
	createMu sync.Mutex

	// held holds back, until the time given, the next launch attempt of
	// a claim whose last one failed (by uid).
	heldMu sync.Mutex
	held   map[types.UID]time.Time

	queue      workqueue.TypedRateLimitingInterface[string]
	claims     cache.SharedIndexInformer
	nodes      cache.SharedIndexInformer
	nodeLister corelisters.NodeLister
	started    chan struct{}
}

// New returns a Controller. Call Run to start reconciling; Create works
// before that (it reads and writes the apiserver directly).
func New(kube kubernetes.Interface, crd *karpenter.Client, instances *instance.Provider, resolver *nodeclass.Resolver,
	catalog *offering.Catalog, drainer *drain.Drainer, opts Options) *Controller {
	if opts.LaunchTimeout <= 0 {
		opts.LaunchTimeout = DefaultLaunchTimeout
	}
	if opts.RegistrationTimeout <= 0 {
		opts.RegistrationTimeout = DefaultRegistrationTimeout
	}
	if opts.InitializationTimeout <= 0 {
		opts.InitializationTimeout = DefaultInitializationTimeout
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Controller{kube: kube, crd: crd, instances: instances, resolver: resolver, catalog: catalog, drainer: drainer,
		opts: opts, log: opts.Logger, started: make(chan struct{})}
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](500*time.Millisecond, time.Minute),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodeclaims"})
	c.claims = crd.Informer(karpenter.NodeClaims, &karpv1.NodeClaim{}, 5*time.Minute)
	factory := informers.NewSharedInformerFactory(kube, 5*time.Minute)
	c.nodes = factory.Core().V1().Nodes().Informer()
	c.nodeLister = factory.Core().V1().Nodes().Lister()
	_ = c.nodes.AddIndexers(cache.Indexers{providerIDIndex: func(obj any) ([]string, error) {
		n, ok := obj.(*corev1.Node)
		if !ok || n.Spec.ProviderID == "" {
			return nil, nil
		}
		return []string{n.Spec.ProviderID}, nil
	}})
	return c
}

// Run starts the informers and workers and blocks until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	enqueueClaim := func(obj any) {
		if nc, ok := obj.(*karpv1.NodeClaim); ok {
			c.queue.Add(nc.Name)
		} else if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			if nc, ok := t.Obj.(*karpv1.NodeClaim); ok {
				c.queue.Add(nc.Name)
			}
		}
	}
	if _, err := c.claims.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueClaim,
		UpdateFunc: func(_, obj any) { enqueueClaim(obj) },
	}); err != nil {
		return fmt.Errorf("nodeclaim handler: %w", err)
	}
	if _, err := c.nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.nodeChanged(ctx, obj) },
		UpdateFunc: func(_, obj any) { c.nodeChanged(ctx, obj) },
	}); err != nil {
		return fmt.Errorf("node handler: %w", err)
	}
	go c.claims.RunWithContext(ctx)
	go c.nodes.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), c.claims.HasSynced, c.nodes.HasSynced) {
		return fmt.Errorf("nodeclaim informers: %w", ctx.Err())
	}
	close(c.started)
	c.log.InfoContext(ctx, "nodeclaim_controller_started", "workers", c.opts.Workers)
	var wg sync.WaitGroup
	for range c.opts.Workers {
		wg.Go(func() {
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				for c.processNext(ctx) {
				}
			}, time.Second)
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// Enqueue asks for a NodeClaim to be reconciled now.
func (c *Controller) Enqueue(name string) { c.queue.Add(name) }

// nodeChanged maps a Node event to its NodeClaim; a Node deleted by someone
// else deletes its NodeClaim, which drains and terminates it.
func (c *Controller) nodeChanged(ctx context.Context, obj any) {
	n, ok := obj.(*corev1.Node)
	if !ok || n.Spec.ProviderID == "" {
		return
	}
	claim := c.claimForProviderID(n.Spec.ProviderID)
	if claim == nil {
		return
	}
	if n.DeletionTimestamp != nil && claim.DeletionTimestamp == nil {
		c.log.InfoContext(ctx, "node_deleted_deleting_nodeclaim", "node", n.Name, "nodeclaim", claim.Name)
		if err := c.crd.DeleteNodeClaim(ctx, claim.Name); err != nil && !isNotFound(err) {
			c.log.WarnContext(ctx, "nodeclaim_delete_failed", "nodeclaim", claim.Name, "error", err.Error())
		}
	}
	c.queue.Add(claim.Name)
}

func (c *Controller) claimForProviderID(providerID string) *karpv1.NodeClaim {
	for _, obj := range c.claims.GetStore().List() {
		if nc, ok := obj.(*karpv1.NodeClaim); ok && nc.Status.ProviderID == providerID {
			return nc
		}
	}
	return nil
}

func (c *Controller) processNext(ctx context.Context) bool {
	name, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(name)
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	after, err := c.reconcile(rctx, name)
	cancel()
	switch {
	case apierrors.IsConflict(err):
		// Acted on a stale copy: the newer one is on its way.
		c.log.DebugContext(ctx, "nodeclaim_conflict", "nodeclaim", name)
		c.queue.AddRateLimited(name)
	case err != nil:
		c.log.WarnContext(ctx, "nodeclaim_reconcile_failed", "nodeclaim", name, "error", err.Error())
		c.queue.AddRateLimited(name)
	case after > 0:
		c.queue.Forget(name)
		c.queue.AddAfter(name, after)
	default:
		c.queue.Forget(name)
	}
	return true
}

// reconcile moves one NodeClaim a step along its life. It returns when to
// look again (0: when something changes).
func (c *Controller) reconcile(ctx context.Context, name string) (time.Duration, error) {
	obj, exists, err := c.claims.GetStore().GetByKey(name)
	if err != nil || !exists {
		return 0, err
	}
	claim := obj.(*karpv1.NodeClaim).DeepCopy()
	if claim.DeletionTimestamp != nil {
		return c.finalize(ctx, claim)
	}
	if !hasString(claim.Finalizers, karpv1.TerminationFinalizer) {
		claim.Finalizers = append(claim.Finalizers, karpv1.TerminationFinalizer)
		if _, err := c.crd.UpdateNodeClaim(ctx, claim); err != nil {
			return 0, err
		}
		return 0, nil // the update brings it back
	}
	switch {
	case !claim.IsTrue(karpv1.ConditionTypeLaunched):
		return c.launch(ctx, claim)
	case !claim.IsTrue(karpv1.ConditionTypeRegistered):
		return c.register(ctx, claim)
	case !claim.IsTrue(karpv1.ConditionTypeInitialized):
		return c.initialize(ctx, claim)
	}
	return 0, nil
}

// expire deletes a NodeClaim that overran a step, after recording why.
func (c *Controller) expire(ctx context.Context, claim *karpv1.NodeClaim, condition, reason, message string) (time.Duration, error) {
	c.log.WarnContext(ctx, "nodeclaim_timed_out", "nodeclaim", claim.Name, "reason", reason, "message", message)
	c.setCondition(claim, condition, false, reason, message)
	if _, err := c.crd.UpdateNodeClaimStatus(ctx, claim); err != nil && !isNotFound(err) {
		return 0, err
	}
	if err := c.crd.DeleteNodeClaim(ctx, claim.Name); err != nil && !isNotFound(err) {
		return 0, err
	}
	return 0, nil
}

// WaitStarted blocks until the informers have synced (or ctx ends).
func (c *Controller) WaitStarted(ctx context.Context) error {
	select {
	case <-c.started:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("nodeclaim controller not started: %w", ctx.Err())
	}
}
