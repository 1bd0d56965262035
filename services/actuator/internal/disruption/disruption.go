// Package disruption carries out the planner's DisruptionPlans one safe step
// at a time: the replacements are launched and must be initialized (their
// Node Ready) before anything happens to the old nodes; then the old nodes
// are tainted karpenter.sh/disrupted:NoSchedule, checked once more for pods
// that may not be disrupted (karpenter.sh/do-not-disrupt, a
// PodDisruptionBudget allowing nothing), and their NodeClaims deleted, whose
// finalizer drains them through the Eviction API and terminates the
// instances. A replacement that fails calls the disruption off: the old
// nodes are untainted and stay, the unused replacements go.
//
// Every step is recorded on the NodeClaims (annotations and the
// DisruptionReason condition), never only in memory: a repeated plan with
// the same id moves the same disruption along instead of starting a second
// one, a plan naming a node another disruption holds is refused, and a
// restarted actuator resumes each disruption from what the API server says.
// Run advances disruptions by itself, so progress never depends on the
// planner repeating a plan.
//
// Interrupted nodes (spot interruption warnings and the like, recorded by
// the interruption package as the Interrupted condition and a deadline) are
// not voluntary: their plans pass every lock and check, and the node is
// drained when its replacements are ready or 30 seconds before the
// deadline, whichever comes first, even without a plan.
package disruption

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclaim"
)

// Annotations recording a disruption on the NodeClaims.
const (
	// AnnotationID on a NodeClaim being disrupted is the DisruptionPlan id.
	AnnotationID = "flotilla.dev/disruption"
	// AnnotationReason is the disruption reason as budgets spell it
	// (Empty, Underutilized, Drifted, Expired, Interrupted), on the
	// NodeClaims being disrupted and on their replacements.
	AnnotationReason = "flotilla.dev/disruption-reason"
	// AnnotationReplacements lists the replacement NodeClaims, comma
	// separated; the old node is drained once all of them are initialized.
	AnnotationReplacements = "flotilla.dev/disruption-replacements"
	// AnnotationStarted is when the disruption began (RFC 3339).
	AnnotationStarted = "flotilla.dev/disruption-started"
	// AnnotationCalledOff is the id of the last disruption of this
	// NodeClaim that was called off; AnnotationCalledOffAt is when. The same
	// plan is not tried again on this NodeClaim within the cool-down.
	AnnotationCalledOff   = "flotilla.dev/disruption-called-off"
	AnnotationCalledOffAt = "flotilla.dev/disruption-called-off-at"
	// AnnotationReplaces on a replacement NodeClaim lists the NodeClaims it
	// replaces (sorted, comma separated), AnnotationReplacementFor the
	// disruption's id; both go once the old NodeClaims are gone. While they
	// are there the planner repeats the plan (same id) and never takes the
	// replacement for a candidate (the actuator refuses to disrupt it too):
	// the contract in services/planner/internal/consolidation/doc.go.
	AnnotationReplaces       = "flotilla.dev/replaces"
	AnnotationReplacementFor = "flotilla.dev/replacement-for"
)

// Reasons of the DisruptionReason condition when it is False.
const (
	ReasonCalledOff = "CalledOff"
)

// Defaults of Options.
const (
	DefaultInterval = 2 * time.Second
	DefaultCoolDown = 5 * time.Minute
	// DefaultDrainLead: an interrupted node is drained this long before its
	// deadline even when its replacements are not ready.
	DefaultDrainLead = 30 * time.Second
)

// Claims is what the executor needs of the NodeClaim API. Get and the
// writes go to the API server; Cached lists the informer's copies.
type Claims interface {
	Get(ctx context.Context, name string) (*karpv1.NodeClaim, error)
	Cached() []*karpv1.NodeClaim
	CreateAnnotated(ctx context.Context, plan *clusterv1.NodeClaimPlan, annotations map[string]string) (nodeclaim.Outcome, string, error)
	// Annotate merges annotations into the NodeClaim's; a nil value
	// removes the key.
	Annotate(ctx context.Context, name string, annotations map[string]*string) error
	SetCondition(ctx context.Context, name string, cond metav1.Condition) error
	Delete(ctx context.Context, name string) error
}

// Nodes taints, untaints and inspects the Nodes being disrupted.
type Nodes interface {
	Taint(ctx context.Context, node string) error
	Untaint(ctx context.Context, node string) error
	// Blockers says, in words, what keeps a node from being disrupted
	// voluntarily now (empty: nothing).
	Blockers(ctx context.Context, node string) ([]string, error)
}

// Options tune an Executor; zero values take the defaults.
type Options struct {
	// Interval between passes of Run over the disruptions under way.
	Interval time.Duration
	// CoolDown: a disruption called off is not started again on the same
	// NodeClaims with the same id for this long.
	CoolDown time.Duration
	// DrainLead: how long before its deadline an interrupted node is
	// drained whatever its replacements do.
	DrainLead time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// Executor carries out disruptions.
type Executor struct {
	claims Claims
	nodes  Nodes
	kube   kubernetes.Interface
	opts   Options
	log    *slog.Logger

	// mu serialises Execute and the passes of Run: one step at a time.
	mu sync.Mutex
}

// New returns an Executor; kube reads Nodes (to find the NodeClaim of a
// node a plan names).
func New(claims Claims, nodes Nodes, kube kubernetes.Interface, opts Options) *Executor {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.CoolDown <= 0 {
		opts.CoolDown = DefaultCoolDown
	}
	if opts.DrainLead <= 0 {
		opts.DrainLead = DefaultDrainLead
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Executor{claims: claims, nodes: nodes, kube: kube, opts: opts, log: opts.Logger}
}

// Result is what became of one DisruptionPlan.
type Result struct {
	// Disrupting: the disruption is under way (or done). False: it was
	// refused or called off and the old nodes stay; Message says why.
	Disrupting bool
	Message    string
}

// Reason names a DisruptionReason as NodePool budgets spell it; "" for
// unspecified.
func Reason(r clusterv1.DisruptionReason) string {
	switch r {
	case clusterv1.DisruptionReason_DISRUPTION_REASON_EMPTY:
		return "Empty"
	case clusterv1.DisruptionReason_DISRUPTION_REASON_UNDERUTILIZED:
		return "Underutilized"
	case clusterv1.DisruptionReason_DISRUPTION_REASON_DRIFTED:
		return "Drifted"
	case clusterv1.DisruptionReason_DISRUPTION_REASON_EXPIRED:
		return "Expired"
	case clusterv1.DisruptionReason_DISRUPTION_REASON_INTERRUPTED:
		return "Interrupted"
	}
	return ""
}

// voluntary reports whether a reason lets pods and budgets veto the
// disruption at the last moment (consolidation and drift); expiry and
// interruption go ahead, the drain respecting budgets until the
// termination grace period or the deadline.
func voluntary(reason string) bool {
	return reason == "Empty" || reason == "Underutilized" || reason == "Drifted"
}

// Execute starts a disruption, or moves the one with the same id along. It
// refuses (Disrupting false, with the reason) a plan naming a node without a
// NodeClaim, a NodeClaim another disruption holds or that replaces nodes of
// an unfinished disruption, a plan called off recently, and a voluntary
// disruption of a node that a pod or budget protects. The error is for
// failures to reach the API server.
func (e *Executor) Execute(ctx context.Context, d *clusterv1.DisruptionPlan) (Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	reason := Reason(d.GetReason())
	switch {
	case d.GetId() == "":
		return refused("the disruption has no id"), nil
	case reason == "":
		return refused("the disruption has no reason"), nil
	}
	names, refusal, err := e.candidates(ctx, d)
	if err != nil || refusal != "" {
		return refused(refusal), err
	}
	var claims []*karpv1.NodeClaim
	for _, name := range names {
		nc, err := e.claims.Get(ctx, name)
		if isNotFound(err) {
			continue // gone already
		}
		if err != nil {
			return Result{}, err
		}
		claims = append(claims, nc)
	}
	if len(claims) == 0 {
		return Result{Disrupting: true, Message: "nothing left to disrupt: " + strings.Join(names, ", ") + " gone"}, nil
	}
	var fresh []*karpv1.NodeClaim
	for _, nc := range claims {
		if nc.DeletionTimestamp == nil && nc.Annotations[AnnotationID] != d.GetId() {
			fresh = append(fresh, nc)
		}
	}
	if len(fresh) > 0 {
		if msg, err := e.refusal(ctx, d, reason, fresh); err != nil || msg != "" {
			return refused(msg), err
		}
		if err := e.begin(ctx, d, reason, fresh); err != nil {
			return Result{}, err
		}
	}
	for _, r := range d.GetReplacements() {
		outcome, msg, err := e.claims.CreateAnnotated(ctx, r, map[string]string{
			AnnotationReplaces:       strings.Join(names, ","),
			AnnotationReplacementFor: d.GetId(),
			AnnotationReason:         reason,
		})
		if err != nil {
			return Result{}, fmt.Errorf("create replacement %s: %w", r.GetName(), err)
		}
		if outcome == nodeclaim.Failed {
			return e.callOff(ctx, d.GetId(), fmt.Sprintf("replacement %s could not be created: %s", r.GetName(), msg))
		}
	}
	return e.advance(ctx, d.GetId())
}

// candidates returns the NodeClaims the plan disrupts: its node_claims and
// the NodeClaims of its nodes. A node with no NodeClaim refuses the whole
// plan: Flotilla only disrupts nodes it launched.
func (e *Executor) candidates(ctx context.Context, d *clusterv1.DisruptionPlan) ([]string, string, error) {
	names := slices.Clone(d.GetNodeClaims())
	for _, node := range d.GetNodes() {
		claim, exists, err := e.claimOfNode(ctx, node)
		if err != nil {
			return nil, "", err
		}
		switch {
		case !exists:
			// Gone already; nothing to do for it.
		case claim == "":
			return nil, fmt.Sprintf("node %s has no NodeClaim: Flotilla disrupts only nodes it launched; nothing was disrupted", node), nil
		case !slices.Contains(names, claim):
			names = append(names, claim)
		}
	}
	if len(names) == 0 && len(d.GetNodes()) == 0 {
		return nil, "the disruption names no node", nil
	}
	slices.Sort(names)
	return slices.Compact(names), "", nil
}

// claimOfNode returns the NodeClaim of a Node ("" when it has none) and
// whether the Node exists.
func (e *Executor) claimOfNode(ctx context.Context, name string) (string, bool, error) {
	n, err := e.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if isNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("get node %s: %w", name, err)
	}
	for _, o := range n.OwnerReferences {
		if o.Kind == "NodeClaim" {
			return o.Name, true, nil
		}
	}
	for _, nc := range e.claims.Cached() {
		if (nc.Status.NodeName == name) || (n.Spec.ProviderID != "" && nc.Status.ProviderID == n.Spec.ProviderID) {
			return nc.Name, true, nil
		}
	}
	return "", true, nil
}

// refusal says why the NodeClaims may not join the disruption, "" when
// they may.
func (e *Executor) refusal(ctx context.Context, d *clusterv1.DisruptionPlan, reason string, claims []*karpv1.NodeClaim) (string, error) {
	now := e.opts.Now()
	forced := reason == "Interrupted"
	cached := map[string]bool{}
	for _, nc := range e.claims.Cached() {
		cached[nc.Name] = true
	}
	for _, nc := range claims {
		if other := nc.Annotations[AnnotationID]; other != "" && !forced {
			return fmt.Sprintf("nodeclaim %s is already being disrupted (%s, plan %s); one disruption at a time",
				nc.Name, nc.Annotations[AnnotationReason], other), nil
		}
		if id := nc.Annotations[AnnotationCalledOff]; id == d.GetId() && !forced {
			at, err := time.Parse(time.RFC3339, nc.Annotations[AnnotationCalledOffAt])
			if err == nil && now.Sub(at) < e.opts.CoolDown {
				why := ""
				if c := nc.Condition(karpv1.ConditionTypeDisruptionReason); c != nil && c.Reason == ReasonCalledOff {
					why = " (" + c.Message + ")"
				}
				return fmt.Sprintf("plan %s was called off for nodeclaim %s at %s%s; not tried again before %s",
					d.GetId(), nc.Name, at.Format(time.RFC3339), why, at.Add(e.opts.CoolDown).Format(time.RFC3339)), nil
			}
		}
		if replaces := nc.Annotations[AnnotationReplaces]; replaces != "" && !forced {
			for _, old := range split(replaces) {
				if cached[old] {
					return fmt.Sprintf("nodeclaim %s replaces %s, whose disruption has not finished", nc.Name, old), nil
				}
			}
		}
		if !voluntary(reason) {
			continue
		}
		if nc.Annotations[karpv1.DoNotDisruptAnnotationKey] == "true" {
			return fmt.Sprintf("nodeclaim %s is annotated %s", nc.Name, karpv1.DoNotDisruptAnnotationKey), nil
		}
		if nc.Status.NodeName == "" {
			continue
		}
		blockers, err := e.nodes.Blockers(ctx, nc.Status.NodeName)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		if len(blockers) > 0 {
			return fmt.Sprintf("node %s may not be disrupted now: %s", nc.Status.NodeName, summary(blockers)), nil
		}
	}
	return "", nil
}

// begin records the disruption on the NodeClaims.
func (e *Executor) begin(ctx context.Context, d *clusterv1.DisruptionPlan, reason string, claims []*karpv1.NodeClaim) error {
	var replacements []string
	for _, r := range d.GetReplacements() {
		replacements = append(replacements, r.GetName())
	}
	now := e.opts.Now().UTC().Format(time.RFC3339)
	msg := fmt.Sprintf("plan %s", d.GetId())
	if d.GetBudget() != "" {
		msg += ", allowed by " + d.GetBudget()
	}
	if len(replacements) > 0 {
		msg += "; replacements " + strings.Join(replacements, ", ")
	}
	if d.GetSavingsPerHour() > 0 {
		msg += fmt.Sprintf("; saves $%.4f/h", d.GetSavingsPerHour())
	}
	for _, nc := range claims {
		if err := e.claims.Annotate(ctx, nc.Name, map[string]*string{
			AnnotationID:           ptr(d.GetId()),
			AnnotationReason:       ptr(reason),
			AnnotationReplacements: ptr(strings.Join(replacements, ",")),
			AnnotationStarted:      ptr(now),
			AnnotationCalledOff:    nil,
			AnnotationCalledOffAt:  nil,
		}); err != nil {
			return err
		}
		if err := e.claims.SetCondition(ctx, nc.Name, metav1.Condition{
			Type: karpv1.ConditionTypeDisruptionReason, Status: metav1.ConditionTrue, Reason: reason, Message: msg,
		}); err != nil && !isNotFound(err) {
			return err
		}
		e.log.InfoContext(ctx, "disruption_started", "id", d.GetId(), "reason", reason, "nodeclaim", nc.Name,
			"replacements", replacements, "budget", d.GetBudget())
	}
	return nil
}

func refused(msg string) Result { return Result{Message: msg} }

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func summary(items []string) string {
	const show = 3
	if len(items) <= show {
		return strings.Join(items, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(items[:show], "; "), len(items)-show)
}

func ptr(s string) *string { return &s }
