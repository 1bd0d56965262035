package consolidation

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// Annotations and conditions of the actuator contract (see the package
// documentation).
const (
	AnnotationDoNotDisrupt     = "karpenter.sh/do-not-disrupt"
	AnnotationReplaces         = "flotilla.dev/replaces"
	AnnotationReplacementFor   = "flotilla.dev/replacement-for"
	AnnotationDisruption       = "flotilla.dev/disruption"
	AnnotationDisruptionReason = "flotilla.dev/disruption-reason"
	AnnotationCalledOffAt      = "flotilla.dev/disruption-called-off-at"
	AnnotationInterrupted      = "flotilla.dev/interrupted"
	ConditionInterrupted       = "Interrupted"
	conditionInitialized       = "Initialized"
	conditionLaunched          = "Launched"
	ownerKindNode              = "Node"
)

// CoolDown is how long a NodeClaim whose disruption the actuator called off
// is left alone (the actuator's default cool-down).
const CoolDown = 5 * time.Minute

// state is one run of the disruption solver over one snapshot: indexes of
// the snapshot, the budgets in use, the nodes already decided, and the
// working snapshot the next decision builds on.
type state struct {
	s    *model.Snapshot
	plan *model.Plan
	opts Options

	pools     map[string]*model.NodePool
	poolNames []string
	classes   map[string]*model.NodeClass
	claims    map[string]*model.NodeClaim
	// nodes are sorted by name.
	nodes       []*model.Node
	nodeByName  map[string]*model.Node
	nodeOfClaim map[string]*model.Node
	types       map[string]*model.InstanceType

	budgets *budgets
	// busy nodes receive pods in this answer: the provisioning plan's
	// placements, or moves of a disruption already planned.
	busy map[string]bool
	// taken nodes are disrupted by this answer or by a disruption in
	// progress; protected nodes are replacements still waiting for the
	// nodes they replace to go.
	taken     map[string]bool
	protected map[string]bool
	rejected  map[string]bool
	// pdbLeft is what each PDB still allows after this answer's plans.
	pdbLeft  []int
	pdbsByNS map[string][]int
	// claimPlans are the NodeClaimPlans of this answer by name: the
	// provisioning plan's new nodes and the replacements planned so far.
	claimPlans map[string]*model.NodeClaimPlan
	work       *workspace
	rates      map[string]*rates
	typeLabels map[*model.InstanceType]map[string]string
}

func newState(s *model.Snapshot, plan *model.Plan, opts Options) *state {
	st := &state{
		s: s, plan: plan, opts: opts,
		pools:       map[string]*model.NodePool{},
		classes:     map[string]*model.NodeClass{},
		claims:      map[string]*model.NodeClaim{},
		nodeByName:  map[string]*model.Node{},
		nodeOfClaim: map[string]*model.Node{},
		types:       map[string]*model.InstanceType{},
		budgets:     newBudgets(s.Now),
		busy:        map[string]bool{},
		taken:       map[string]bool{},
		protected:   map[string]bool{},
		rejected:    map[string]bool{},
		claimPlans:  map[string]*model.NodeClaimPlan{},
		rates:       map[string]*rates{},
		typeLabels:  map[*model.InstanceType]map[string]string{},
	}
	for _, p := range s.NodePools {
		st.pools[p.Name] = p
		st.poolNames = append(st.poolNames, p.Name)
	}
	slices.Sort(st.poolNames)
	for _, c := range s.NodeClasses {
		st.classes[c.Name] = c
	}
	for _, c := range s.NodeClaims {
		st.claims[c.Name] = c
	}
	for _, it := range s.InstanceTypes {
		st.types[it.Name] = it
	}
	st.nodes = slices.Clone(s.Nodes)
	slices.SortFunc(st.nodes, func(a, b *model.Node) int { return cmp.Compare(a.Name, b.Name) })
	for _, n := range st.nodes {
		st.nodeByName[n.Name] = n
		if n.NodeClaim != "" {
			st.nodeOfClaim[n.NodeClaim] = n
		}
	}
	for _, b := range s.PodDisruptionBudgets {
		st.pdbLeft = append(st.pdbLeft, int(b.DisruptionsAllowed))
	}
	for _, pl := range plan.Placements {
		if len(pl.Pods) > 0 && !pl.InFlight {
			st.busy[pl.Node] = true
		}
	}
	for _, nc := range plan.NodeClaims {
		st.claimPlans[nc.Name] = nc
	}
	st.countPools()
	st.work = newWorkspace(s, plan)
	return st
}

// countPools counts each pool's nodes and the ones being disrupted.
func (st *state) countPools() {
	for _, n := range st.nodes {
		pool := st.poolOf(n)
		if pool == "" || n.NodeClaim == "" {
			continue
		}
		st.budgets.total[pool]++
		if n.Deleting || claimDeleting(st.claims[n.NodeClaim]) {
			st.budgets.disrupting[pool]++
		}
	}
	// NodeClaims being deleted before their node registered also count.
	for _, c := range st.s.NodeClaims {
		if c.Deleting && c.NodePool != "" && st.nodeOfClaim[c.Name] == nil {
			st.budgets.total[c.NodePool]++
			st.budgets.disrupting[c.NodePool]++
		}
	}
}

// poolOf returns the NodePool a node belongs to: its label, else its
// NodeClaim's.
func (st *state) poolOf(n *model.Node) string {
	if p := n.NodePool(); p != "" {
		return p
	}
	if c := st.claims[n.NodeClaim]; c != nil {
		return c.NodePool
	}
	return ""
}

// managed returns the node's NodeClaim and NodePool when Flotilla manages
// the node, the pool exists and neither node nor claim is being deleted.
func (st *state) managed(n *model.Node) (*model.NodeClaim, *model.NodePool, bool) {
	c := st.claims[n.NodeClaim]
	if c == nil || n.Deleting || c.Deleting {
		return nil, nil, false
	}
	pool := st.pools[st.poolOf(n)]
	if pool == nil {
		return nil, nil, false
	}
	return c, pool, true
}

// available reports whether a managed node may be considered for a
// voluntary disruption at all: ready, initialized, not decided already and
// not receiving pods in this answer.
func (st *state) available(n *model.Node, c *model.NodeClaim) bool {
	return n.Ready && initialized(c) && !st.taken[n.Name] && !st.protected[n.Name] && !st.busy[n.Name]
}

// movable returns the pods that would have to move off a node: bound, not
// finishing, not DaemonSet or mirror pods.
func (st *state) movable(node string) []*model.Pod {
	var out []*model.Pod
	for _, p := range st.work.podsOn(node) {
		if !p.IsDaemonSetPod() && p.OwnerKind != ownerKindNode && !p.Terminating {
			out = append(out, p)
		}
	}
	return out
}

// occupied reports whether any pod but DaemonSet and mirror pods is on the
// node (terminating pods count: they still run).
func (st *state) occupied(node string) bool {
	for _, p := range st.work.podsOn(node) {
		if !p.IsDaemonSetPod() && p.OwnerKind != ownerKindNode {
			return true
		}
	}
	return false
}

// reject records why a candidate stays; the first reason for a node wins.
func (st *state) reject(n *model.Node, reason string) {
	if st.rejected[n.Name] {
		return
	}
	st.rejected[n.Name] = true
	st.plan.Rejections = append(st.plan.Rejections, &model.Rejection{Node: n.Name, NodeClaim: n.NodeClaim, Reason: reason})
}

// recheck asks to be asked again at t when t is after now.
func (st *state) recheck(t time.Time) {
	if t.IsZero() || !t.After(st.s.Now) {
		return
	}
	st.plan.RecheckAt = earliest(st.plan.RecheckAt, t)
}

// since is when the node's pods last changed (or it was created).
func since(n *model.Node) time.Time {
	if n.LastPodEvent.Before(n.Created) {
		return n.Created
	}
	return n.LastPodEvent
}

// earliest returns the earlier of two times, a zero time meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

func claimDeleting(c *model.NodeClaim) bool { return c != nil && c.Deleting }

// initialized reports whether the NodeClaim finished starting; a node still
// starting up is never a candidate.
func initialized(c *model.NodeClaim) bool {
	if c == nil {
		return false
	}
	cond, ok := c.Condition(conditionInitialized)
	return ok && cond.Status == "True"
}

// launchFailed reports whether the NodeClaim's launch failed.
func launchFailed(c *model.NodeClaim) bool {
	cond, ok := c.Condition(conditionLaunched)
	return ok && cond.Status == "False"
}

// planID is "<reason>-<10 hex digits of a hash of the NodeClaims>": the same
// nodes disrupted for the same reason always get the same id, also when a
// disruption in progress is repeated.
func planID(reason model.DisruptionReason, claims []string) string {
	sorted := slices.Clone(claims)
	slices.Sort(sorted)
	h := sha256.New()
	for _, c := range sorted {
		h.Write([]byte(c))
		h.Write([]byte{0})
	}
	return strings.ToLower(reasonName(reason)) + "-" + hex.EncodeToString(h.Sum(nil))[:10]
}

// reasonName spells a disruption reason as budgets do.
func reasonName(r model.DisruptionReason) string {
	switch r {
	case model.DisruptionEmpty:
		return ReasonEmpty
	case model.DisruptionUnderutilized:
		return ReasonUnderutilized
	case model.DisruptionDrifted:
		return ReasonDrifted
	case model.DisruptionExpired:
		return ReasonExpired
	case model.DisruptionInterrupted:
		return ReasonInterrupted
	}
	return "Unknown"
}

// reasonOf parses a reason as budgets and the replacement annotation spell
// it.
func reasonOf(s string) model.DisruptionReason {
	for r := model.DisruptionEmpty; r <= model.DisruptionInterrupted; r++ {
		if strings.EqualFold(reasonName(r), s) {
			return r
		}
	}
	return 0
}

// keyedPod is a pod with its key, built once.
type keyedPod struct {
	key string
	pod *model.Pod
}

// sortedPods returns the pods with their keys, sorted by key.
func sortedPods(pods []*model.Pod) []keyedPod {
	ks := make([]keyedPod, len(pods))
	for i, p := range pods {
		ks[i] = keyedPod{p.Key(), p}
	}
	slices.SortFunc(ks, func(a, b keyedPod) int { return cmp.Compare(a.key, b.key) })
	return ks
}
