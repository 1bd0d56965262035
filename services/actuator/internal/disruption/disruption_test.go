package disruption

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclaim"
)

// world is an in-memory API server for NodeClaims and a record of what was
// done to Nodes. Delete marks a NodeClaim deleting (its finalizer would
// then drain it); gone removes it.
type world struct {
	mu       sync.Mutex
	claims   map[string]*karpv1.NodeClaim
	created  []string
	refuse   map[string]string   // replacement name → why Create fails
	tainted  map[string]bool     // node → tainted now
	blockers map[string][]string // node → blockers
	log      []string
}

func newWorld(names ...string) *world {
	w := &world{claims: map[string]*karpv1.NodeClaim{}, refuse: map[string]string{}, tainted: map[string]bool{}, blockers: map[string][]string{}}
	for _, n := range names {
		w.claims[n] = &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: n}, Status: karpv1.NodeClaimStatus{NodeName: "node-" + n}}
		initialize(w.claims[n])
	}
	return w
}

func initialize(nc *karpv1.NodeClaim) {
	meta.SetStatusCondition(&nc.Status.Conditions, metav1.Condition{Type: karpv1.ConditionTypeInitialized, Status: metav1.ConditionTrue, Reason: "Initialized"})
}

func notFound(name string) error {
	return apierrors.NewNotFound(schema.GroupResource{Group: "karpenter.sh", Resource: "nodeclaims"}, name)
}

func (w *world) Get(_ context.Context, name string) (*karpv1.NodeClaim, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	nc, ok := w.claims[name]
	if !ok {
		return nil, notFound(name)
	}
	return nc.DeepCopy(), nil
}

func (w *world) Cached() []*karpv1.NodeClaim {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*karpv1.NodeClaim
	for _, nc := range w.claims {
		out = append(out, nc.DeepCopy())
	}
	return out
}

func (w *world) CreateAnnotated(_ context.Context, p *clusterv1.NodeClaimPlan, annotations map[string]string) (nodeclaim.Outcome, string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if why, ok := w.refuse[p.GetName()]; ok {
		return nodeclaim.Failed, why, nil
	}
	if _, ok := w.claims[p.GetName()]; ok {
		return nodeclaim.Exists, "exists", nil
	}
	w.created = append(w.created, p.GetName())
	w.claims[p.GetName()] = &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: p.GetName(), Annotations: annotations},
		Status: karpv1.NodeClaimStatus{NodeName: "node-" + p.GetName()}}
	w.log = append(w.log, "create "+p.GetName())
	return nodeclaim.Created, "created", nil
}

func (w *world) Annotate(_ context.Context, name string, annotations map[string]*string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	nc, ok := w.claims[name]
	if !ok {
		return notFound(name)
	}
	if nc.Annotations == nil {
		nc.Annotations = map[string]string{}
	}
	for k, v := range annotations {
		if v == nil {
			delete(nc.Annotations, k)
		} else {
			nc.Annotations[k] = *v
		}
	}
	return nil
}

func (w *world) SetCondition(_ context.Context, name string, cond metav1.Condition) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	nc, ok := w.claims[name]
	if !ok {
		return notFound(name)
	}
	meta.SetStatusCondition(&nc.Status.Conditions, cond)
	return nil
}

func (w *world) Delete(_ context.Context, name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	nc, ok := w.claims[name]
	if !ok {
		return notFound(name)
	}
	if nc.DeletionTimestamp == nil {
		now := metav1.Now()
		nc.DeletionTimestamp = &now
		w.log = append(w.log, "delete "+name)
	}
	return nil
}

// gone removes a NodeClaim (its finalizer finished, or it failed).
func (w *world) gone(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.claims, name)
}

func (w *world) ready(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	initialize(w.claims[name])
}

func (w *world) Taint(_ context.Context, node string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.tainted[node] {
		w.log = append(w.log, "taint "+node)
	}
	w.tainted[node] = true
	return nil
}

func (w *world) Untaint(_ context.Context, node string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.tainted[node] {
		w.log = append(w.log, "untaint "+node)
	}
	w.tainted[node] = false
	return nil
}

func (w *world) Blockers(_ context.Context, node string) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.blockers[node], nil
}

func (w *world) annotation(name, key string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if nc, ok := w.claims[name]; ok {
		return nc.Annotations[key]
	}
	return ""
}

func (w *world) deleting(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	nc, ok := w.claims[name]
	return ok && nc.DeletionTimestamp != nil
}

func (w *world) takeLog() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.log
	w.log = nil
	return out
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func executor(w *world, c *clock, objs ...*corev1.Node) *Executor {
	kube := fake.NewClientset()
	for _, n := range objs {
		_, _ = kube.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{})
	}
	return New(w, w, kube, Options{Now: c.now})
}

func replacePlan(id string, old []string, replacements ...string) *clusterv1.DisruptionPlan {
	d := &clusterv1.DisruptionPlan{Id: id, Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_UNDERUTILIZED, NodeClaims: old, Budget: "NodePool default: nodes 10%"}
	for _, r := range replacements {
		d.Replacements = append(d.Replacements, &clusterv1.NodeClaimPlan{Name: r, NodePool: "default"})
	}
	return d
}

func execute(t *testing.T, e *Executor, d *clusterv1.DisruptionPlan) Result {
	t.Helper()
	r, err := e.Execute(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReplaceThenDrain(t *testing.T) {
	t.Parallel()
	w, c := newWorld("old"), &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := executor(w, c)
	plan := replacePlan("p1", []string{"old"}, "new")

	r := execute(t, e, plan)
	if !r.Disrupting || !strings.Contains(r.Message, "waiting for replacements") {
		t.Fatalf("first Execute = %+v, want waiting for the replacement", r)
	}
	if diff := cmp.Diff([]string{"create new"}, w.takeLog()); diff != "" {
		t.Errorf("before the replacement is ready (-want +got):\n%s", diff)
	}
	if got := w.annotation("old", AnnotationID); got != "p1" {
		t.Errorf("old nodeclaim's disruption = %q, want p1", got)
	}
	if got := w.annotation("new", AnnotationReplaces); got != "old" {
		t.Errorf("replacement's replaces = %q, want old", got)
	}

	// The same plan again, replacement still launching: nothing new.
	execute(t, e, plan)
	if log := w.takeLog(); len(log) != 0 {
		t.Errorf("repeated plan did %v, want nothing", log)
	}

	// Ready: taint, then delete (the finalizer drains).
	w.ready("new")
	r = execute(t, e, plan)
	if !r.Disrupting || !strings.Contains(r.Message, "draining") {
		t.Fatalf("Execute once ready = %+v, want draining", r)
	}
	if diff := cmp.Diff([]string{"taint node-old", "delete old"}, w.takeLog()); diff != "" {
		t.Errorf("once the replacement is ready (-want +got):\n%s", diff)
	}
	// Again: nothing twice.
	execute(t, e, plan)
	if err := e.Pass(t.Context()); err != nil {
		t.Fatal(err)
	}
	if log := w.takeLog(); len(log) != 0 {
		t.Errorf("after draining started, a repeated plan did %v", log)
	}
	if diff := cmp.Diff([]string{"new"}, w.created); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	// The old NodeClaim goes: the replacement is an ordinary node again.
	w.gone("old")
	if err := e.Pass(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := w.annotation("new", AnnotationReplaces); got != "" {
		t.Errorf("replacement still marked replacing %q after the old node went", got)
	}
}

func TestReplacementFailureCallsOff(t *testing.T) {
	t.Parallel()
	w, c := newWorld("old"), &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := executor(w, c)
	plan := replacePlan("p1", []string{"old"}, "new")
	execute(t, e, plan)
	w.takeLog()

	// The replacement's launch failed: it was deleted.
	w.gone("new")
	if err := e.Pass(t.Context()); err != nil {
		t.Fatal(err)
	}
	if w.deleting("old") || w.tainted["node-old"] {
		t.Fatal("old node disrupted though its replacement failed")
	}
	if got := w.annotation("old", AnnotationID); got != "" {
		t.Errorf("old nodeclaim still in disruption %q", got)
	}
	old, _ := w.Get(t.Context(), "old")
	cond := old.Condition(karpv1.ConditionTypeDisruptionReason)
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != ReasonCalledOff || !strings.Contains(cond.Message, "new is gone") {
		t.Errorf("DisruptionReason condition = %+v, want False/CalledOff naming the replacement", cond)
	}

	// The planner repeats the plan: refused during the cool-down, then
	// tried again.
	r := execute(t, e, plan)
	if r.Disrupting || !strings.Contains(r.Message, "called off") {
		t.Errorf("repeat within the cool-down = %+v, want refused", r)
	}
	if log := w.takeLog(); len(log) != 0 {
		t.Errorf("refused plan did %v", log)
	}
	c.t = c.t.Add(DefaultCoolDown + time.Second)
	if r := execute(t, e, plan); !r.Disrupting {
		t.Errorf("repeat after the cool-down = %+v, want started again", r)
	}
	if diff := cmp.Diff([]string{"create new"}, w.takeLog()); diff != "" {
		t.Errorf("after the cool-down (-want +got):\n%s", diff)
	}
}

func TestCreateFailureCallsOffAndDeletesOtherReplacements(t *testing.T) {
	t.Parallel()
	w, c := newWorld("old-1", "old-2"), &clock{time.Now()}
	w.refuse["new-b"] = "nodepool default: nodepool limit exceeded"
	e := executor(w, c)
	r := execute(t, e, replacePlan("p1", []string{"old-1", "old-2"}, "new-a", "new-b"))
	if r.Disrupting || !strings.Contains(r.Message, "limit exceeded") {
		t.Fatalf("Execute = %+v, want called off naming the limit", r)
	}
	if diff := cmp.Diff([]string{"create new-a", "delete new-a"}, w.takeLog()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, n := range []string{"old-1", "old-2"} {
		if w.deleting(n) || w.annotation(n, AnnotationID) != "" || w.annotation(n, AnnotationCalledOff) != "p1" {
			t.Errorf("%s: deleting %v, disruption %q, called off %q", n, w.deleting(n), w.annotation(n, AnnotationID), w.annotation(n, AnnotationCalledOff))
		}
	}
}

func TestBlockedAtTheLastMomentUntaints(t *testing.T) {
	t.Parallel()
	w, c := newWorld("old"), &clock{time.Now()}
	e := executor(w, c)
	plan := replacePlan("p1", []string{"old"}, "new")
	execute(t, e, plan)
	// A do-not-disrupt pod lands on the old node while the replacement
	// starts.
	w.blockers["node-old"] = []string{"pod ns/db is annotated karpenter.sh/do-not-disrupt"}
	w.ready("new")
	w.takeLog()
	if err := e.Pass(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"taint node-old", "untaint node-old"}, w.takeLog()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if w.deleting("old") || w.tainted["node-old"] {
		t.Error("old node disrupted or left tainted")
	}
	// The ready replacement stays, as an ordinary node.
	if _, err := w.Get(t.Context(), "new"); err != nil || w.annotation("new", AnnotationReplaces) != "" {
		t.Errorf("ready replacement: %v, replaces %q", err, w.annotation("new", AnnotationReplaces))
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	owned := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-b", OwnerReferences: []metav1.OwnerReference{{Kind: "NodeClaim", Name: "b"}}}}
	foreign := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-x"}}
	for _, tc := range []struct {
		name    string
		prepare func(*world, *Executor)
		plan    *clusterv1.DisruptionPlan
		want    string // in the message; "" means started
		created []string
	}{
		{
			name: "another disruption holds the node",
			prepare: func(w *world, e *Executor) {
				_, _ = e.Execute(context.Background(), replacePlan("first", []string{"a"}, "r1"))
			},
			plan: replacePlan("second", []string{"a"}, "r2"), want: "already being disrupted", created: []string{"r1"},
		},
		{
			name: "a replacement of an unfinished disruption",
			prepare: func(w *world, e *Executor) {
				_, _ = e.Execute(context.Background(), replacePlan("first", []string{"a"}, "r1"))
				w.ready("r1")
			},
			plan: &clusterv1.DisruptionPlan{Id: "empty", Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_EMPTY, NodeClaims: []string{"r1"}},
			want: "replaces a", created: []string{"r1"},
		},
		{
			name: "do-not-disrupt",
			prepare: func(w *world, e *Executor) {
				w.blockers["node-a"] = []string{"pod ns/db is annotated karpenter.sh/do-not-disrupt"}
			},
			plan: replacePlan("p", []string{"a"}, "r1"), want: "may not be disrupted now: pod ns/db",
		},
		{
			name: "pdb",
			prepare: func(w *world, e *Executor) {
				w.blockers["node-a"] = []string{"pod ns/web-1: PodDisruptionBudget ns/web allows no disruption now"}
			},
			plan: &clusterv1.DisruptionPlan{Id: "empty", Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_EMPTY, NodeClaims: []string{"a"}},
			want: "PodDisruptionBudget ns/web allows no disruption",
		},
		{
			name: "expiry is not vetoed by pods",
			prepare: func(w *world, e *Executor) {
				w.blockers["node-a"] = []string{"pod ns/db is annotated karpenter.sh/do-not-disrupt"}
			},
			plan: &clusterv1.DisruptionPlan{Id: "exp", Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_EXPIRED, NodeClaims: []string{"a"}},
		},
		{
			name: "a node without a NodeClaim",
			plan: &clusterv1.DisruptionPlan{Id: "n", Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_EMPTY, Nodes: []string{"node-x"}},
			want: "node node-x has no NodeClaim",
		},
		{
			name: "a node's NodeClaim joins the plan",
			plan: &clusterv1.DisruptionPlan{Id: "n", Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_EMPTY, Nodes: []string{"node-b"}},
		},
		{
			name: "no reason",
			plan: &clusterv1.DisruptionPlan{Id: "n", NodeClaims: []string{"a"}},
			want: "no reason",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld("a", "b")
			e := executor(w, &clock{time.Now()}, owned, foreign)
			if tc.prepare != nil {
				tc.prepare(w, e)
			}
			r := execute(t, e, tc.plan)
			if tc.want == "" {
				if !r.Disrupting {
					t.Errorf("Execute = %+v, want started", r)
				}
			} else if r.Disrupting || !strings.Contains(r.Message, tc.want) {
				t.Errorf("Execute = %+v, want refused with %q", r, tc.want)
			}
			if diff := cmp.Diff(tc.created, w.created); diff != "" {
				t.Errorf("created (-want +got):\n%s", diff)
			}
			if tc.name == "a node's NodeClaim joins the plan" && !w.deleting("b") {
				t.Error("the node's NodeClaim b was not disrupted")
			}
		})
	}
}

func TestResumesAfterRestart(t *testing.T) {
	t.Parallel()
	w, c := newWorld("old"), &clock{time.Now()}
	execute(t, executor(w, c), replacePlan("p1", []string{"old"}, "new"))
	w.takeLog()
	// A new actuator, nothing in memory; the replacement comes up. It
	// carries on without the planner repeating the plan.
	w.ready("new")
	e := executor(w, c)
	if err := e.Pass(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"taint node-old", "delete old"}, w.takeLog()); diff != "" {
		t.Errorf("after a restart (-want +got):\n%s", diff)
	}
}

func TestInterrupted(t *testing.T) {
	t.Parallel()
	c := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	interrupt := func(w *world, name string, deadline time.Time) {
		dl := deadline.Format(time.RFC3339)
		_ = w.Annotate(context.Background(), name, map[string]*string{nodeclaim.AnnotationInterruptionDeadline: &dl})
		_ = w.SetCondition(context.Background(), name, metav1.Condition{Type: nodeclaim.ConditionInterrupted, Status: metav1.ConditionTrue, Reason: nodeclaim.ReasonSpotInterruption})
	}
	plan := &clusterv1.DisruptionPlan{Id: "int", Reason: clusterv1.DisruptionReason_DISRUPTION_REASON_INTERRUPTED, NodeClaims: []string{"old"},
		Replacements: []*clusterv1.NodeClaimPlan{{Name: "new", NodePool: "default"}}}

	t.Run("drained once the replacement is ready", func(t *testing.T) {
		w := newWorld("old")
		interrupt(w, "old", c.t.Add(2*time.Minute))
		e := executor(w, c)
		execute(t, e, plan)
		if diff := cmp.Diff([]string{"create new"}, w.takeLog()); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		w.ready("new")
		if err := e.Pass(t.Context()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"taint node-old", "delete old"}, w.takeLog()); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("drained 30s before the deadline without the replacement", func(t *testing.T) {
		w := newWorld("old")
		interrupt(w, "old", c.t.Add(2*time.Minute))
		cl := &clock{c.t}
		e := executor(w, cl)
		execute(t, e, plan)
		w.takeLog()
		cl.t = cl.t.Add(89 * time.Second)
		_ = e.Pass(t.Context())
		if log := w.takeLog(); len(log) != 0 {
			t.Errorf("at 89s: %v, want nothing yet", log)
		}
		cl.t = cl.t.Add(time.Second)
		_ = e.Pass(t.Context())
		if diff := cmp.Diff([]string{"taint node-old", "delete old"}, w.takeLog()); diff != "" {
			t.Errorf("at 90s (-want +got):\n%s", diff)
		}
	})
	t.Run("drained before the deadline without any plan", func(t *testing.T) {
		w := newWorld("old")
		interrupt(w, "old", c.t.Add(2*time.Minute))
		cl := &clock{c.t.Add(95 * time.Second)}
		if err := executor(w, cl).Pass(t.Context()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"taint node-old", "delete old"}, w.takeLog()); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("takes over a node another disruption holds, ignoring its blockers", func(t *testing.T) {
		w := newWorld("old")
		e := executor(w, c)
		execute(t, e, replacePlan("consolidate", []string{"old"}, "cheaper"))
		interrupt(w, "old", c.t.Add(2*time.Minute))
		w.blockers["node-old"] = []string{"pod ns/db is annotated karpenter.sh/do-not-disrupt"}
		if r := execute(t, e, plan); !r.Disrupting {
			t.Fatalf("Execute = %+v, want started", r)
		}
		if got := w.annotation("old", AnnotationID); got != "int" {
			t.Errorf("old nodeclaim's disruption = %q, want int", got)
		}
		if !slices.Contains(w.created, "new") {
			t.Errorf("created %v, want the interruption's replacement", w.created)
		}
	})
}
