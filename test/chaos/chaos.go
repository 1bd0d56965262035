// Package chaos injects faults into a running Flotilla and checks its
// invariants afterwards (issue 8, DESIGN.md invariants 1-5): it kills a
// service with SIGKILL at a chosen step of a scale-up or a consolidation,
// restarts it, waits for the system to settle, and counts leaked instances,
// double launches, PodDisruptionBudget violations, NodePool limit breaches,
// pods left pending and the time it took to settle. Infrastructure faults
// (kube-apiserver restart, the planner away for 30 s, moto_server restarted
// with every instance lost) are runs of their own.
//
// A Harness drives one local environment (package localenv) with the three
// services, one replica each. The actuator reaches moto through a proxy of
// the harness, so a fault can fire just before an EC2 call reaches moto or
// just after moto answered it; the other steps are recognised in the
// actuator's JSON log. Every run reuses the environment: a cycle scales one
// Deployment from 2 to 4 pods (one new node) and back to 2 (a consolidation
// that evicts one pod and terminates one instance).
package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

// Step is a moment of a scale-up or a consolidation at which a fault fires.
type Step string

// Steps of a scale-up (the first three) and of a consolidation.
const (
	AfterNodeClaimCreate Step = "after NodeClaim create"
	BeforeCreateFleet    Step = "before CreateFleet"
	AfterCreateFleet     Step = "after CreateFleet"
	MidDrain             Step = "mid-drain"
	BeforeTerminate      Step = "before TerminateInstances"
	AfterTerminate       Step = "after TerminateInstances"
)

// ScaleUpSteps and ConsolidationSteps list the steps of each half of a
// cycle.
var (
	ScaleUpSteps       = []Step{AfterNodeClaimCreate, BeforeCreateFleet, AfterCreateFleet}
	ConsolidationSteps = []Step{MidDrain, BeforeTerminate, AfterTerminate}
)

// scaleUp reports whether s is a step of a scale-up.
func (s Step) scaleUp() bool {
	for _, u := range ScaleUpSteps {
		if s == u {
			return true
		}
	}
	return false
}

// Fault is what a run does.
type Fault string

// Faults.
const (
	// Kill sends SIGKILL to Run.Victim at Run.Step and restarts it.
	Kill Fault = "kill -9"
	// PlannerDown stops the planner for PlannerDownFor while pods wait
	// for capacity.
	PlannerDown Fault = "planner unavailable 30s"
	// MotoRestart restarts moto_server: every instance, and the account's
	// network, is lost (the network is seeded again at once, as a real
	// account keeps it).
	MotoRestart Fault = "moto restart"
)

// PlannerDownFor is how long PlannerDown keeps the planner away.
const PlannerDownFor = 30 * time.Second

// Services a Kill may hit.
var Services = []string{localenv.ProcPlanner, localenv.ProcActuator, localenv.ProcWatcher}

// Run is one fault of a schedule.
type Run struct {
	Fault Fault
	// Victim is the process a Kill hits: a service or kube-apiserver.
	Victim string
	// Step is when a Kill fires. PlannerDown and MotoRestart have none:
	// they happen during (PlannerDown) or right after (MotoRestart) a
	// scale-up.
	Step Step
}

func (r Run) String() string {
	switch r.Fault {
	case Kill:
		return fmt.Sprintf("kill -9 %s at %s", r.Victim, r.Step)
	default:
		return string(r.Fault)
	}
}

// Result is what one run found.
type Result struct {
	Run
	// Hit reports whether the fault fired (a Kill: its step was seen).
	Hit bool
	// Seen says what set the fault off: a log line or an EC2 call.
	Seen string
	// Settled reports whether the invariants' end state was reached within
	// the settle cap; Settle is how long it took, counted from the fault
	// (a Kill: the SIGKILL, so it includes the restart) or, for
	// PlannerDown and MotoRestart, from the moment the component was back.
	Settled bool
	Settle  time.Duration
	// Invariant counts.
	Leaked, DoubleLaunches, PDBViolations, LimitBreaches, PendingLeft int
	// PDBChecked is false where pods were lost to the fault itself
	// (MotoRestart takes the nodes away), which no budget governs.
	PDBChecked bool
	// Crashed names Flotilla processes found dead after the fault (and
	// restarted, as a Deployment would).
	Crashed []string
	// Err is a failure of the harness or of a restart.
	Err error
}

// Failed reports whether the run broke an invariant or took too long.
func (r Result) Failed() bool {
	return r.Err != nil || !r.Settled || r.Settle > SettleTarget || r.Leaked+r.DoubleLaunches+r.PDBViolations+r.LimitBreaches+r.PendingLeft > 0
}

// SettleTarget is the longest a run may take to settle.
const SettleTarget = 60 * time.Second

// settleCap is how long a run waits for the end state before it counts
// what is left.
const settleCap = 150 * time.Second

// Options configure a Harness.
type Options struct {
	// BinDir holds planner, actuator and watcher.
	BinDir string
	// Logf receives progress; nil discards it.
	Logf func(format string, args ...any)
}

// Harness runs faults against one environment.
type Harness struct {
	env   *localenv.Env
	kube  kubernetes.Interface
	dyn   dynamic.Interface
	ec2   *ec2.Client
	proxy *ec2Proxy
	mon   *monitor
	logf  func(format string, args ...any)

	cancel  context.CancelFunc
	done    sync.WaitGroup
	closers []func() error

	mu    sync.Mutex
	armed *trigger
	// expectDown names processes the harness itself stopped; the rest are
	// restarted when found dead.
	expectDown map[string]bool
}

// trigger is an armed fault waiting for its step.
type trigger struct {
	run   Run
	once  sync.Once
	fired chan struct{}
	at    time.Time
	seen  string
	err   error
}

// fire kills the victim (once) and reports whether the trigger fired now.
func (h *Harness) fire(t *trigger, seen string) bool {
	fired := false
	t.once.Do(func() {
		t.at, t.seen = time.Now(), seen
		t.err = h.kill(t.run.Victim)
		h.mu.Lock()
		if h.armed == t {
			h.armed = nil
		}
		h.mu.Unlock()
		fired = true
		close(t.fired)
	})
	return fired
}

// observe is called at every step the harness can see; it fires the armed
// trigger when the step is its own. It reports whether the actuator was
// just killed (the proxy then drops the actuator's request).
func (h *Harness) observe(step Step, seen string) (actuatorKilled bool) {
	h.mu.Lock()
	t := h.armed
	h.mu.Unlock()
	if t == nil || t.run.Step != step {
		return false
	}
	return h.fire(t, seen) && t.run.Victim == localenv.ProcActuator
}

func (h *Harness) arm(r Run) *trigger {
	t := &trigger{run: r, fired: make(chan struct{})}
	h.mu.Lock()
	h.armed = t
	h.expectDown[r.Victim] = true
	h.mu.Unlock()
	return t
}

func (h *Harness) disarm() {
	h.mu.Lock()
	h.armed = nil
	h.mu.Unlock()
}

// kill sends SIGKILL to a process of the environment and waits until it
// is gone.
func (h *Harness) kill(name string) error { return h.signal(name, syscall.SIGKILL) }

// signal sends sig to a process of the environment and waits until it is
// gone.
func (h *Harness) signal(name string, sig syscall.Signal) error {
	if err := h.env.Signal(name, sig); err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if !h.alive(name) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s still alive 15s after %s", name, sig)
}

func (h *Harness) alive(name string) bool {
	st, err := h.env.Status(context.Background())
	if err != nil {
		return false
	}
	for _, s := range st {
		if s.Name == name {
			return s.Alive
		}
	}
	return false
}

// restart starts a stopped (or killed) process again and waits until it is
// ready.
func (h *Harness) restart(ctx context.Context, name string) error {
	defer func() {
		h.mu.Lock()
		delete(h.expectDown, name)
		h.mu.Unlock()
	}()
	if err := h.env.Restart(ctx, name); err != nil {
		return fmt.Errorf("restart %s: %w", name, err)
	}
	return nil
}

// supervise restarts Flotilla processes that died without the harness
// killing them (a replica that lost its Lease exits, and a Deployment
// would start it again). It returns their names.
func (h *Harness) supervise(ctx context.Context) ([]string, error) {
	st, err := h.env.Status(ctx)
	if err != nil {
		return nil, err
	}
	var restarted []string
	var errs []error
	for _, s := range st {
		if s.Alive || !isService(s.Name) {
			continue
		}
		h.mu.Lock()
		expected := h.expectDown[s.Name]
		h.mu.Unlock()
		if expected {
			continue
		}
		h.logf("  %s died on its own; restarting it", s.Name)
		restarted = append(restarted, s.Name)
		if err := h.env.Restart(ctx, s.Name); err != nil {
			errs = append(errs, fmt.Errorf("restart %s: %w", s.Name, err))
		}
	}
	return restarted, errors.Join(errs...)
}

func isService(name string) bool {
	for _, s := range Services {
		if name == s {
			return true
		}
	}
	return false
}

// ec2Step maps a proxied EC2 call to a step.
func ec2Step(action string, after bool) (Step, bool) {
	switch {
	case action == "CreateFleet" && !after:
		return BeforeCreateFleet, true
	case action == "CreateFleet":
		return AfterCreateFleet, true
	case action == "TerminateInstances" && !after:
		return BeforeTerminate, true
	case action == "TerminateInstances":
		return AfterTerminate, true
	}
	return "", false
}

// onActuatorLog maps the actuator's log lines to steps.
func (h *Harness) onActuatorLog(l logLine) {
	switch l.Msg {
	case "nodeclaim_created":
		h.observe(AfterNodeClaimCreate, "actuator log nodeclaim_created "+l.NodeClaim)
	case "pod_evicted":
		if strings.HasPrefix(l.Pod, Namespace+"/") {
			h.observe(MidDrain, "actuator log pod_evicted "+l.Pod+" from "+l.Node)
		}
	}
}
