package cluster

import (
	"github.com/flotilla-dev/flotilla/api/aws/v1alpha5"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	"github.com/flotilla-dev/flotilla/api/snapshot"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
)

// addHandlers marks the model objects each informer event affects: the
// object itself and what is derived from it (a pod's volume topology from
// its claims, a pod's nomination from NodeClaims, a node's NodeClaim, a
// NodePool's readiness from its node class).
func (c *Cluster) addHandlers() {
	inf := c.inf
	// One handler does all of a pod event's work: each handler is a
	// listener with goroutines of its own to wake, per event, and pods
	// change 100 times a second in a large cluster.
	c.onPairs(inf.pods, func(obj any) []key {
		k, err := cache.MetaNamespaceKeyFunc(obj)
		if err != nil {
			return nil
		}
		if p, ok := obj.(*cachedPod); ok && p.nodeName() != "" {
			c.noms.forget(k)
		}
		return []key{{kindPod, k}}
	}, func(obj any) { // deleted
		if k, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			c.noms.forget(k)
		}
	}, c.notePodEvent)
	c.on(inf.nodes, c.selfKey(kindNode), func(obj any) {
		if k, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			c.events.forget(k)
		}
	})
	// A CSINode is named after its node and carries its attach limits.
	c.on(inf.csiNodes, c.selfKey(kindNode), nil)
	c.on(inf.daemonSets, c.selfKey(kindDaemonSet), nil)
	c.on(inf.pdbs, c.selfKey(kindPDB), nil)
	c.on(inf.nodePools, c.selfKey(kindNodePool), nil)
	c.on(inf.nodeClaims, func(obj any) []key {
		keys := c.nodeClaimKeys(obj)
		// Once a NodeClaim is cached, its state decides its nominations:
		// in flight keeps them, anything else ends them at once.
		if nc, ok := obj.(*karpv1.NodeClaim); ok {
			if snapshot.InFlight(nc) {
				c.noms.markSeen(nc.Name)
			} else {
				c.noms.release(nc.Name)
			}
		}
		return keys
	}, func(obj any) {
		if k, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			c.noms.release(k)
		}
	})
	c.on(inf.nodeClasses, func(obj any) []key {
		k, err := cache.MetaNamespaceKeyFunc(obj)
		if err != nil {
			return nil
		}
		keys := []key{{kindNodeClass, k}}
		for _, pool := range byIndex(inf.nodePools, indexNodeClass, k) {
			keys = append(keys, key{kindNodePool, pool})
		}
		if _, ok := get(inf.provisioners, k).(*v1alpha5.Provisioner); ok {
			keys = append(keys, key{kindNodePool, k})
		}
		return keys
	}, nil)
	c.on(inf.provisioners, func(obj any) []key {
		p, ok := obj.(*v1alpha5.Provisioner)
		if !ok {
			return nil
		}
		return []key{{kindNodePool, p.Name}, {kindNodeClass, snapshot.ProvisionerNodeClassName(p)}}
	}, nil)
	c.on(inf.pvcs, func(obj any) []key {
		k, err := cache.MetaNamespaceKeyFunc(obj)
		if err != nil {
			return nil
		}
		return c.podsWithClaim(k)
	}, nil)
	c.on(inf.pvs, func(obj any) []key {
		pv, ok := obj.(*corev1.PersistentVolume)
		if !ok || pv.Spec.ClaimRef == nil {
			return nil
		}
		return c.podsWithClaim(pv.Spec.ClaimRef.Namespace + "/" + pv.Spec.ClaimRef.Name)
	}, nil)
	c.on(inf.storageClasses, func(any) []key {
		// Rare: re-derive every pod that has a claim.
		var keys []key
		for _, claim := range inf.pods.GetIndexer().ListIndexFuncValues(indexClaim) {
			keys = append(keys, c.podsWithClaim(claim)...)
		}
		return keys
	}, nil)
}

// on registers handlers that mark keys(obj) for the old and new version of
// every added, updated or deleted object; deleted is also called on
// deletion.
func (c *Cluster) on(inf cache.SharedIndexInformer, keys func(obj any) []key, deleted func(obj any)) {
	c.onPairs(inf, keys, deleted, nil)
}

// onPairs is on, and pair (when not nil) is also called with the old and
// new version of each event (nil for none).
func (c *Cluster) onPairs(inf cache.SharedIndexInformer, keys func(obj any) []key, deleted func(obj any), pair func(old, cur any)) {
	if inf == nil {
		return
	}
	if pair == nil {
		pair = func(any, any) {}
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			c.tracker.mark(keys(obj)...)
			pair(nil, obj)
		},
		UpdateFunc: func(old, obj any) {
			c.tracker.mark(keys(old)...)
			c.tracker.mark(keys(obj)...)
			pair(old, obj)
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			ks := keys(obj)
			if deleted != nil {
				deleted(obj)
			}
			c.tracker.mark(ks...)
			pair(obj, nil)
		},
	})
	if err != nil {
		// Only fails on a stopped informer, which Start never hands us.
		c.logger.Error("add_event_handler_failed", "error", err.Error())
	}
}

func (c *Cluster) selfKey(kd kind) func(obj any) []key {
	return func(obj any) []key {
		k, err := cache.MetaNamespaceKeyFunc(obj)
		if err != nil {
			return nil
		}
		return []key{{kd, k}}
	}
}

// nodeClaimKeys: the NodeClaim, its node, and the pods nominated to it
// (their nomination may have started or ended).
func (c *Cluster) nodeClaimKeys(obj any) []key {
	k, err := cache.MetaNamespaceKeyFunc(obj)
	if err != nil {
		return nil
	}
	keys := []key{{kindNodeClaim, k}}
	for _, p := range c.noms.podsOf(k) {
		keys = append(keys, key{kindPod, p})
	}
	nc, ok := obj.(*karpv1.NodeClaim)
	if !ok {
		return keys
	}
	for _, p := range snapshot.NominatedPods(nc) {
		keys = append(keys, key{kindPod, p})
	}
	if nc.Status.NodeName != "" {
		keys = append(keys, key{kindNode, nc.Status.NodeName})
	}
	if nc.Status.ProviderID != "" {
		for _, n := range byIndex(c.inf.nodes, indexProviderID, nc.Status.ProviderID) {
			keys = append(keys, key{kindNode, n})
		}
	}
	return keys
}

func (c *Cluster) podsWithClaim(claim string) []key {
	var keys []key
	for _, p := range byIndex(c.inf.pods, indexClaim, claim) {
		keys = append(keys, key{kindPod, p})
	}
	return keys
}

// notePodEvent moves a node's pod clock when a pod is bound to it, leaves
// it or finishes on it, and marks the node changed so the planner sees the
// new time.
func (c *Cluster) notePodEvent(old, cur any) {
	o, _ := old.(*cachedPod)
	n, _ := cur.(*cachedPod)
	if node, ok := podNodeEvent(o, n); ok {
		c.events.record(node, c.now())
		c.tracker.mark(key{kindNode, node})
	}
}
