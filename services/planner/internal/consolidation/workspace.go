package consolidation

import (
	"slices"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// workspace is the cluster as the answer being built leaves it: the
// snapshot with the provisioning plan applied (placed pods bound to their
// nodes or nominated to in-flight NodeClaims, new NodeClaims in flight,
// pods nothing can host left out) and every disruption planned so far
// applied (nodes cordoned, pods moved, replacements in flight). Each
// decision derives its trial snapshots from it, so decisions never count
// the same room twice. Objects are shared with the snapshot and copied
// before they change.
type workspace struct {
	s      model.Snapshot
	podIdx map[string]int
	// byNode lists the keys of the pods bound to each node.
	byNode  map[string][]string
	nodeIdx map[string]int
}

func newWorkspace(s *model.Snapshot, plan *model.Plan) *workspace {
	w := &workspace{s: *s}
	drop := map[string]bool{}
	for _, u := range plan.Unschedulable {
		drop[u.Pod] = true
	}
	// Sorted as the provisioning solver sorts them, so that its sort of
	// every trial's pods finds them in order.
	w.s.Pods = make([]*model.Pod, 0, len(s.Pods))
	w.podIdx = make(map[string]int, len(s.Pods))
	for _, kp := range sortedPods(s.Pods) {
		if !drop[kp.key] {
			w.podIdx[kp.key] = len(w.s.Pods)
			w.s.Pods = append(w.s.Pods, kp.pod)
		}
	}
	w.s.Nodes = slices.Clone(s.Nodes)
	w.s.NodeClaims = slices.Clone(s.NodeClaims)
	w.index()
	for _, pl := range plan.Placements {
		w.place(pl.Node, pl.InFlight, pl.Pods)
	}
	for _, nc := range plan.NodeClaims {
		w.s.NodeClaims = append(w.s.NodeClaims, claimFromPlan(nc, s.Now))
		w.place(nc.Name, true, nc.Pods)
	}
	return w
}

// index lists each node's pods (in key order, as the pods are sorted) and
// the nodes' positions.
func (w *workspace) index() {
	keys := make([]string, len(w.s.Pods))
	for k, i := range w.podIdx {
		keys[i] = k
	}
	w.byNode = map[string][]string{}
	for i, p := range w.s.Pods {
		if p.IsBound() {
			w.byNode[p.NodeName] = append(w.byNode[p.NodeName], keys[i])
		}
	}
	w.nodeIdx = make(map[string]int, len(w.s.Nodes))
	for i, n := range w.s.Nodes {
		w.nodeIdx[n.Name] = i
	}
}

// podsOn returns the pods bound to a node, sorted by key.
func (w *workspace) podsOn(node string) []*model.Pod {
	keys := w.byNode[node]
	out := make([]*model.Pod, 0, len(keys))
	for _, k := range keys {
		out = append(out, w.s.Pods[w.podIdx[k]])
	}
	return out
}

// pod returns the pod with the given key, or nil.
func (w *workspace) pod(key string) *model.Pod {
	i, ok := w.podIdx[key]
	if !ok {
		return nil
	}
	return w.s.Pods[i]
}

// place binds pods to a node, or nominates them to an in-flight NodeClaim.
func (w *workspace) place(target string, inFlight bool, keys []string) {
	for _, k := range keys {
		i, ok := w.podIdx[k]
		if !ok {
			continue
		}
		old := w.s.Pods[i]
		p := *old
		if old.IsBound() {
			w.unbind(old.NodeName, k)
		}
		if inFlight {
			p.NodeName, p.NominatedNodeClaim = "", target
			if p.Phase != model.PodPending {
				p.Phase = model.PodPending
			}
		} else {
			p.NodeName, p.NominatedNodeClaim = target, ""
			w.bind(target, k)
		}
		w.s.Pods[i] = &p
	}
}

func (w *workspace) bind(node, key string) {
	keys := w.byNode[node]
	i, found := slices.BinarySearch(keys, key)
	if !found {
		w.byNode[node] = slices.Insert(keys, i, key)
	}
}

func (w *workspace) unbind(node, key string) {
	keys := w.byNode[node]
	if i, found := slices.BinarySearch(keys, key); found {
		w.byNode[node] = slices.Delete(slices.Clone(keys), i, i+1)
	}
}

// derive returns a snapshot in which the nodes are cordoned (they still
// count against their NodePool's limits, as they do until the replacements
// are up) and the pods that would have to leave them are pending, and the
// keys of those pods with the node each comes from. The avoided nodes are
// cordoned too, but keep their pods: they stay for now but should receive
// nothing (drifted nodes replaced later).
func (w *workspace) derive(nodes, avoid []*model.Node, movable func(string) []*model.Pod) (*model.Snapshot, map[string]string) {
	d := w.s
	d.Nodes = slices.Clone(w.s.Nodes)
	d.Pods = slices.Clone(w.s.Pods)
	for _, n := range avoid {
		if i, ok := w.nodeIdx[n.Name]; ok && !d.Nodes[i].Unschedulable {
			c := *d.Nodes[i]
			c.Unschedulable = true
			d.Nodes[i] = &c
		}
	}
	displaced := map[string]string{}
	for _, n := range nodes {
		i, ok := w.nodeIdx[n.Name]
		if !ok {
			continue
		}
		c := *d.Nodes[i]
		c.Unschedulable = true
		d.Nodes[i] = &c
		for _, p := range movable(n.Name) {
			k := p.Key()
			q := *p
			q.NodeName, q.NominatedNodeClaim, q.Phase = "", "", model.PodPending
			d.Pods[w.podIdx[k]] = &q
			displaced[k] = n.Name
		}
	}
	return &d, displaced
}

// commit applies a planned disruption: its nodes are cordoned, the moved
// pods bound to their new nodes or nominated to the replacements, the
// replacements in flight, and the displaced pods without a new place (an
// interrupted node's) are left out.
func (w *workspace) commit(nodes []string, displaced map[string]string, moves []*model.Placement, replacements []*model.NodeClaimPlan, now time.Time) {
	for _, name := range nodes {
		if i, ok := w.nodeIdx[name]; ok {
			c := *w.s.Nodes[i]
			c.Unschedulable = true
			w.s.Nodes[i] = &c
		}
	}
	existing := map[string]bool{}
	for _, c := range w.s.NodeClaims {
		existing[c.Name] = true
	}
	placed := map[string]bool{}
	for _, r := range replacements {
		if !existing[r.Name] {
			w.s.NodeClaims = append(w.s.NodeClaims, claimFromPlan(r, now))
			existing[r.Name] = true
		}
	}
	for _, mv := range moves {
		w.place(mv.Node, mv.InFlight, mv.Pods)
		for _, k := range mv.Pods {
			placed[k] = true
		}
	}
	var gone []string
	for k := range displaced {
		if !placed[k] {
			gone = append(gone, k)
		}
	}
	if len(gone) == 0 {
		return
	}
	slices.Sort(gone)
	drop := map[string]bool{}
	for _, k := range gone {
		drop[k] = true
		if p := w.pod(k); p != nil && p.IsBound() {
			w.unbind(p.NodeName, k)
		}
	}
	w.s.Pods = slices.DeleteFunc(slices.Clone(w.s.Pods), func(p *model.Pod) bool { return drop[p.Key()] })
	w.podIdx = make(map[string]int, len(w.s.Pods))
	for i, p := range w.s.Pods {
		w.podIdx[p.Key()] = i
	}
}

// claimFromPlan is the in-flight NodeClaim a NodeClaimPlan becomes.
func claimFromPlan(nc *model.NodeClaimPlan, now time.Time) *model.NodeClaim {
	return &model.NodeClaim{
		Name: nc.Name, NodePool: nc.NodePool, NodeClass: nc.NodeClass,
		Requirements: nc.Requirements, Labels: nc.Labels, Taints: nc.Taints, StartupTaints: nc.StartupTaints,
		Requests: nc.Requests, Created: now, PricePerHour: nc.PricePerHour,
		NodePoolHash: nc.NodePoolHash, NodeClassHash: nc.NodeClassHash,
	}
}

// planFromClaim is the NodeClaimPlan that names an existing NodeClaim, for a
// disruption that waits for it: creating it again finds it exists.
func planFromClaim(c *model.NodeClaim) *model.NodeClaimPlan {
	nc := &model.NodeClaimPlan{
		Name: c.Name, NodePool: c.NodePool, NodeClass: c.NodeClass,
		InstanceType: c.InstanceType, Zone: c.Zone, CapacityType: c.CapacityType, PricePerHour: c.PricePerHour,
		Requirements: c.Requirements, Requests: c.Requests, Labels: c.Labels, Taints: c.Taints, StartupTaints: c.StartupTaints,
		NodePoolHash: c.NodePoolHash, NodeClassHash: c.NodeClassHash,
	}
	if c.InstanceType != "" {
		nc.InstanceTypeOptions = []string{c.InstanceType}
	}
	return nc
}

// hold keeps capacity out of the trials: the nodes are cordoned and the
// NodeClaims marked deleting, but both still count against their NodePool's
// limits. A disruption in progress holds its old nodes and its
// replacements, whose room the evicted pods will take.
func (w *workspace) hold(nodes, claims []string) {
	for _, name := range nodes {
		if i, ok := w.nodeIdx[name]; ok && !w.s.Nodes[i].Unschedulable {
			c := *w.s.Nodes[i]
			c.Unschedulable = true
			w.s.Nodes[i] = &c
		}
	}
	held := map[string]bool{}
	for _, name := range claims {
		held[name] = true
	}
	for i, c := range w.s.NodeClaims {
		if held[c.Name] && !c.Deleting {
			cc := *c
			cc.Deleting = true
			w.s.NodeClaims[i] = &cc
		}
	}
}
