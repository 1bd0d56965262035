// Package cluster watches the Kubernetes objects the planner needs with
// client-go informers (Pods, Nodes, NodeClaims, NodePools, Provisioners,
// EC2NodeClasses, DaemonSets, PodDisruptionBudgets, PersistentVolumeClaims,
// PersistentVolumes, StorageClasses and CSINodes), keeps them slim with
// transforms, and turns them into the cluster model: a full snapshot on
// demand and, between snapshots, the changes since the last one, coalesced
// so the latest state wins.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Options configure a Cluster.
type Options struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Pods, when set, lists and watches the pods instead of Client (the
	// watcher's trims pods before decoding them: podwire.ListWatch). It
	// must apply PodFieldSelector.
	Pods   cache.ListerWatcher
	Logger *slog.Logger
	// Region is reported in snapshots until the catalogue names one.
	Region string
	// NominationTTL is how long a nomination made from a plan waits for its
	// NodeClaim to appear before the pods are released; default 2 minutes.
	NominationTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Cluster is the watcher's picture of the cluster.
type Cluster struct {
	opts    Options
	logger  *slog.Logger
	now     func() time.Time
	tracker *tracker
	inf     *informers
	noms    *nominations
	events  *podEvents

	mu       sync.RWMutex
	region   string
	catalog  map[string]*clusterv1.InstanceType
	synced   bool
	startErr error
}

// New returns a Cluster; Start starts watching.
func New(opts Options) *Cluster {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.NominationTTL <= 0 {
		opts.NominationTTL = 2 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Cluster{
		opts:    opts,
		logger:  opts.Logger,
		now:     opts.Now,
		tracker: newTracker(),
		noms:    newNominations(),
		events:  newPodEvents(opts.Now()),
		region:  opts.Region,
		catalog: map[string]*clusterv1.InstanceType{},
	}
	return c
}

// Start starts the informers and returns once their caches are synced (or
// ctx ends). The informers run until ctx is done. Custom resources whose
// CRD is not installed are skipped with a warning.
func (c *Cluster) Start(ctx context.Context) error {
	inf, err := newInformers(c.opts.Client, c.opts.Dynamic, c.opts.Pods, c.logger)
	if err != nil {
		return err
	}
	c.inf = inf
	c.addHandlers()
	inf.start(ctx)
	if !inf.waitForSync(ctx) {
		if ctx.Err() != nil {
			return fmt.Errorf("wait for informer caches: %w", ctx.Err())
		}
		return errors.New("informer caches did not sync")
	}
	c.mu.Lock()
	c.synced = true
	c.mu.Unlock()
	go c.expireNominations(ctx)
	// The initial lists leave garbage several times the size of the caches
	// (every object as the API server sent it, before the transforms). It
	// is collected and handed back to the OS now, once, rather than under
	// the memory limit while the first snapshot is being built and sent.
	debug.FreeOSMemory()
	c.logger.Info("informers_synced", "pods", len(inf.pods.GetStore().ListKeys()), "nodes", len(inf.nodes.GetStore().ListKeys()))
	return nil
}

// Changed is signalled (coalesced) whenever an object changes.
func (c *Cluster) Changed() <-chan struct{} { return c.tracker.changed }

// Pending returns how many objects changed since the last snapshot or
// delta.
func (c *Cluster) Pending() int { return c.tracker.pending() }

// Changes counts the changes seen so far (objects, nominations, the
// catalogue): what Current and Provisioning return can differ from an
// earlier answer only once it moved, so pollers skip the rebuild while it
// stands still.
func (c *Cluster) Changes() uint64 { return c.tracker.marks.Load() }

// HasInstanceTypes reports whether a catalogue has been set.
func (c *Cluster) HasInstanceTypes() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.catalog) > 0
}

// SetInstanceTypes replaces the instance catalogue (and the region it is
// for, when not empty). Types that changed are sent as deltas.
func (c *Cluster) SetInstanceTypes(region string, types []*clusterv1.InstanceType) {
	next := make(map[string]*clusterv1.InstanceType, len(types))
	for _, it := range types {
		next[it.GetName()] = it
	}
	c.mu.Lock()
	var keys []key
	for name := range c.catalog {
		if _, ok := next[name]; !ok {
			keys = append(keys, key{kindInstanceType, name})
		}
	}
	for name := range next {
		keys = append(keys, key{kindInstanceType, name})
	}
	c.catalog = next
	if region != "" {
		c.region = region
	}
	c.mu.Unlock()
	// Prices of nodes and NodeClaims come from the catalogue.
	if c.inf != nil {
		keys = append(keys, c.inf.allKeys(kindNode)...)
		keys = append(keys, c.inf.allKeys(kindNodeClaim)...)
	}
	c.tracker.mark(keys...)
}

// Snapshot returns everything the watcher sees and makes it the base for
// the following deltas: call it when the planner needs a full picture (a new
// stream, a resync).
func (c *Cluster) Snapshot() *clusterv1.Snapshot {
	c.tracker.sentMu.Lock()
	defer c.tracker.sentMu.Unlock()
	// Take the dirty set before reading the caches: a change that lands
	// while the snapshot is built is sent again in the next delta.
	c.tracker.take()
	// The map keeps its room: the next snapshot fills it as full again.
	sent := c.tracker.sent
	clear(sent)
	return c.build(allKinds, false, func(k key, fp uint64) { sent[k] = fp })
}

// allKinds are the kinds of a snapshot, in its order.
var allKinds = []kind{kindPod, kindNode, kindNodeClaim, kindNodePool, kindNodeClass, kindDaemonSet, kindPDB, kindInstanceType}

// Current returns what the watcher sees, without changing what the next
// delta holds (for the Snapshot RPC). pendingOnly leaves out bound pods.
func (c *Cluster) Current(pendingOnly bool) *clusterv1.Snapshot {
	return c.build(allKinds, pendingOnly, nil)
}

// Provisioning returns the part of Current(true) that tells what is being
// provisioned: the pending pods, the NodeClaims and the NodePools. It
// leaves out bound pods and nodes, most of a large cluster, so it is cheap
// enough to poll.
func (c *Cluster) Provisioning() *clusterv1.Snapshot {
	return c.build([]kind{kindPod, kindNodeClaim, kindNodePool}, true, nil)
}

// Delta returns the changes since the last snapshot or delta: objects added
// or updated (their latest state) and removed. Objects whose model did not
// change (a pod's status heartbeat, say) are left out. It returns nil when
// nothing changed.
func (c *Cluster) Delta() []*clusterv1.Change {
	c.tracker.sentMu.Lock()
	defer c.tracker.sentMu.Unlock()
	dirty := c.tracker.take()
	keys := make([]key, 0, len(dirty))
	for k := range dirty {
		keys = append(keys, k)
	}
	sortKeys(keys)
	var out []*clusterv1.Change
	for _, k := range keys {
		obj, fp := c.object(k)
		prev, had := c.tracker.sent[k]
		if obj == nil {
			if had {
				delete(c.tracker.sent, k)
				out = append(out, deletedChange(k))
			}
			continue
		}
		if fp == 0 {
			fp = fingerprint(obj)
		}
		if had && prev == fp {
			continue
		}
		c.tracker.sent[k] = fp
		out = append(out, changeOf(obj))
	}
	return out
}

// Region is the region snapshots report.
func (c *Cluster) Region() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.region
}

// Synced reports whether the informer caches have synced.
func (c *Cluster) Synced() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.synced
}

// build converts every object of the kinds in the caches (pendingOnly:
// but bound pods); with visit, each object's key and fingerprint is passed
// to it.
func (c *Cluster) build(kinds []kind, pendingOnly bool, visit func(key, uint64)) *clusterv1.Snapshot {
	snap := &clusterv1.Snapshot{Region: c.Region(), Now: timestamppb.New(c.now())}
	if c.inf == nil {
		return snap
	}
	for _, kd := range kinds {
		var keys []key
		if kd == kindPod && pendingOnly {
			// Bound pods are most of the cache: not even looked at.
			keys = c.unboundPods()
		} else {
			keys = c.allKeys(kd)
		}
		sortKeys(keys)
		objs, fps := c.convertAll(keys, visit != nil)
		if kd == kindPod {
			snap.Pods = make([]*clusterv1.Pod, 0, len(keys))
		}
		for i, obj := range objs {
			if obj == nil {
				continue
			}
			if p, ok := obj.(*clusterv1.Pod); ok && pendingOnly && p.GetNodeName() != "" {
				continue
			}
			addTo(snap, obj)
			if visit != nil {
				visit(keys[i], fps[i])
			}
		}
	}
	return snap
}

// convertAll converts keys (and fingerprints them, when asked) on every
// core: at 100,000 pods this is most of a snapshot's cost.
func (c *Cluster) convertAll(keys []key, withFingerprints bool) ([]proto.Message, []uint64) {
	out := make([]proto.Message, len(keys))
	var fps []uint64
	if withFingerprints {
		fps = make([]uint64, len(keys))
	}
	workers := min(runtime.GOMAXPROCS(0), len(keys)/1000+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(keys); i += workers {
				var fp uint64
				out[i], fp = c.object(keys[i])
				if withFingerprints && out[i] != nil {
					if fp == 0 {
						fp = fingerprint(out[i])
					}
					fps[i] = fp
				}
			}
		})
	}
	wg.Wait()
	return out, fps
}

// unboundPods lists the keys of the pods not bound to a node.
func (c *Cluster) unboundPods() []key {
	names := byIndex(c.inf.pods, indexUnbound, unboundValue)
	keys := make([]key, len(names))
	for i, n := range names {
		keys[i] = key{kindPod, n}
	}
	return keys
}

func (c *Cluster) allKeys(kd kind) []key {
	if kd == kindInstanceType {
		c.mu.RLock()
		defer c.mu.RUnlock()
		keys := make([]key, 0, len(c.catalog))
		for name := range c.catalog {
			keys = append(keys, key{kindInstanceType, name})
		}
		return keys
	}
	return c.inf.allKeys(kd)
}

// expireNominations releases nominations whose NodeClaim never appeared or
// is no longer in flight, and tells the planner about those pods.
func (c *Cluster) expireNominations(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			released := c.noms.expire(c.now(), c.claimState)
			for _, p := range released {
				c.tracker.mark(key{kindPod, p})
			}
			if len(released) > 0 {
				c.logger.Info("nominations_released", "pods", len(released))
			}
		}
	}
}
