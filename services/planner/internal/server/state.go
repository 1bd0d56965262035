package server

import (
	"cmp"
	"slices"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// streamState is the soft state of one Reconcile stream: the latest version
// of every object the watcher sent, keyed by namespace/name. It is rebuilt
// from a snapshot whenever the stream has a gap, so losing it loses nothing.
type streamState struct {
	synced        bool
	sequence      uint64
	region        string
	now           *timestamppb.Timestamp
	pods          map[string]*clusterv1.Pod
	nodes         map[string]*clusterv1.Node
	nodeClaims    map[string]*clusterv1.NodeClaim
	nodePools     map[string]*clusterv1.NodePool
	nodeClasses   map[string]*clusterv1.NodeClass
	daemonSets    map[string]*clusterv1.DaemonSet
	budgets       map[string]*clusterv1.PodDisruptionBudget
	instanceTypes map[string]*clusterv1.InstanceType
}

func key(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// reset replaces the state with a full snapshot.
func (s *streamState) reset(seq uint64, snap *clusterv1.Snapshot) {
	*s = streamState{
		synced:        true,
		sequence:      seq,
		region:        snap.GetRegion(),
		now:           snap.GetNow(),
		pods:          map[string]*clusterv1.Pod{},
		nodes:         map[string]*clusterv1.Node{},
		nodeClaims:    map[string]*clusterv1.NodeClaim{},
		nodePools:     map[string]*clusterv1.NodePool{},
		nodeClasses:   map[string]*clusterv1.NodeClass{},
		daemonSets:    map[string]*clusterv1.DaemonSet{},
		budgets:       map[string]*clusterv1.PodDisruptionBudget{},
		instanceTypes: map[string]*clusterv1.InstanceType{},
	}
	for _, o := range snap.GetPods() {
		s.pods[key(o.GetNamespace(), o.GetName())] = o
	}
	for _, o := range snap.GetNodes() {
		s.nodes[o.GetName()] = o
	}
	for _, o := range snap.GetNodeClaims() {
		s.nodeClaims[o.GetName()] = o
	}
	for _, o := range snap.GetNodePools() {
		s.nodePools[o.GetName()] = o
	}
	for _, o := range snap.GetNodeClasses() {
		s.nodeClasses[o.GetName()] = o
	}
	for _, o := range snap.GetDaemonSets() {
		s.daemonSets[key(o.GetNamespace(), o.GetName())] = o
	}
	for _, o := range snap.GetPodDisruptionBudgets() {
		s.budgets[key(o.GetNamespace(), o.GetName())] = o
	}
	for _, o := range snap.GetInstanceTypes() {
		s.instanceTypes[o.GetName()] = o
	}
}

// apply applies a delta in order.
func (s *streamState) apply(seq uint64, d *clusterv1.Delta) {
	s.sequence = seq
	if d.GetNow() != nil {
		s.now = d.GetNow()
	}
	for _, c := range d.GetChanges() {
		del := c.GetDeleted()
		switch o := c.GetObject().(type) {
		case *clusterv1.Change_Pod:
			upsert(s.pods, key(o.Pod.GetNamespace(), o.Pod.GetName()), o.Pod, del)
		case *clusterv1.Change_Node:
			upsert(s.nodes, o.Node.GetName(), o.Node, del)
		case *clusterv1.Change_NodeClaim:
			upsert(s.nodeClaims, o.NodeClaim.GetName(), o.NodeClaim, del)
		case *clusterv1.Change_NodePool:
			upsert(s.nodePools, o.NodePool.GetName(), o.NodePool, del)
		case *clusterv1.Change_NodeClass:
			upsert(s.nodeClasses, o.NodeClass.GetName(), o.NodeClass, del)
		case *clusterv1.Change_DaemonSet:
			upsert(s.daemonSets, key(o.DaemonSet.GetNamespace(), o.DaemonSet.GetName()), o.DaemonSet, del)
		case *clusterv1.Change_PodDisruptionBudget:
			upsert(s.budgets, key(o.PodDisruptionBudget.GetNamespace(), o.PodDisruptionBudget.GetName()), o.PodDisruptionBudget, del)
		case *clusterv1.Change_InstanceType:
			upsert(s.instanceTypes, o.InstanceType.GetName(), o.InstanceType, del)
		}
	}
}

func upsert[T any](m map[string]T, k string, v T, deleted bool) {
	if deleted {
		delete(m, k)
		return
	}
	m[k] = v
}

// snapshot assembles the state into a snapshot, every list sorted by key so
// the same state always gives the same snapshot.
func (s *streamState) snapshot() *clusterv1.Snapshot {
	return &clusterv1.Snapshot{
		Region:               s.region,
		Now:                  s.now,
		Pods:                 sorted(s.pods),
		Nodes:                sorted(s.nodes),
		NodeClaims:           sorted(s.nodeClaims),
		NodePools:            sorted(s.nodePools),
		NodeClasses:          sorted(s.nodeClasses),
		DaemonSets:           sorted(s.daemonSets),
		PodDisruptionBudgets: sorted(s.budgets),
		InstanceTypes:        sorted(s.instanceTypes),
	}
}

func sorted[T any](m map[string]T) []T {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare[string])
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}
