package nodeclaim

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"

	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/ec2fault"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/karpenter"
)

// launchedConditions records every Launched condition each NodeClaim
// carried, also of claims deleted right after.
type launchedConditions struct {
	mu   sync.Mutex
	seen map[string][]string // name → "reason: message"
}

func (l *launchedConditions) record(obj any) {
	nc, ok := obj.(*karpv1.NodeClaim)
	if !ok {
		return
	}
	c := nc.Condition(karpv1.ConditionTypeLaunched)
	if c == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := c.Reason + ": " + c.Message
	if h := l.seen[nc.Name]; len(h) == 0 || h[len(h)-1] != s {
		l.seen[nc.Name] = append(l.seen[nc.Name], s)
	}
}

func (l *launchedConditions) find(name, reason string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.seen[name] {
		if strings.HasPrefix(s, reason+": ") {
			return s, true
		}
	}
	return "", false
}

func (l *lifecycle) watchLaunched(t *testing.T) *launchedConditions {
	t.Helper()
	lc := &launchedConditions{seen: map[string][]string{}}
	inf := l.crd.Informer(karpenter.NodeClaims, &karpv1.NodeClaim{}, 0)
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    lc.record,
		UpdateFunc: func(_, obj any) { lc.record(obj) },
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go inf.Run(ctx.Done())
	if !cache.WaitForCacheSync(t.Context().Done(), inf.HasSynced) {
		t.Fatal("nodeclaim informer did not sync")
	}
	return lc
}

// planOf is a NodeClaim plan that accepts the instance types in order of
// preference.
func (l *lifecycle) planOf(name string, instanceTypes ...string) *clusterv1.NodeClaimPlan {
	p := &clusterv1.NodeClaimPlan{Name: name, NodePool: l.name, InstanceType: instanceTypes[0]}
	for _, it := range instanceTypes {
		p.Options = append(p.Options, &clusterv1.InstanceOption{InstanceType: it, Zone: "us-east-1a", CapacityType: "on-demand"})
	}
	return p
}

// TestLifecycleUnderEC2Faults runs NodeClaims through launch and
// termination while the real EC2 client meets the faults moto cannot
// produce. Each claim ends with exactly one instance while it lives and none
// after; one EC2 cannot serve says why in its Launched condition.
func TestLifecycleUnderEC2Faults(t *testing.T) {
	faults := &ec2fault.Injector{}
	l := newLifecycle(t, "100", faults.Option)
	seen := l.watchLaunched(t)
	ctx := t.Context()

	tests := []struct {
		name   string
		types  []string
		inject func()
		// wantType is the type launched; "" when the claim cannot launch.
		wantType string
		// wantReason is the Launched condition's reason on the way (or at
		// the end when wantType is "") and wantMessage a part of its message.
		wantReason, wantMessage string
		// heal removes the fault after the failure is recorded; the claim
		// then launches wantHealedType.
		heal           bool
		wantHealedType string
		// wantInjected are faults that must have been met on the way.
		wantInjected []ec2fault.Fault
	}{{
		name:     "throttled, 5xx and lost answers",
		types:    []string{"t3.medium"},
		wantType: "t3.medium",
		inject: func() {
			faults.Next("DescribeInstances", ec2fault.ServerError, 1)
			faults.Next("DescribeInstances", ec2fault.Timeout, 1)
			faults.Next("CreateFleet", ec2fault.Throttle, 1)
			faults.Next("CreateFleet", ec2fault.LostResponse, 1)
		},
		wantInjected: []ec2fault.Fault{ec2fault.ServerError, ec2fault.Throttle, ec2fault.LostResponse, ec2fault.Timeout},
	}, {
		name:     "capacity error on the first type",
		types:    []string{"t3.medium", "t3.large"},
		wantType: "t3.large",
		inject:   func() { faults.Exhaust("InsufficientInstanceCapacity", "", "t3.medium") },
	}, {
		name:        "no capacity anywhere",
		types:       []string{"t3.medium", "t3.large"},
		inject:      func() { faults.Exhaust("InsufficientInstanceCapacity", "", "t3.medium", "t3.large") },
		wantReason:  ReasonInsufficientCapacity,
		wantMessage: "t3.large us-east-1a on-demand: InsufficientInstanceCapacity",
	}, {
		name:        "fleet launches nothing",
		types:       []string{"t3.small"},
		inject:      func() { faults.Always("CreateFleet", ec2fault.EmptyFleet) },
		wantReason:  ReasonInsufficientCapacity,
		wantMessage: "UnfulfillableCapacity",
	}, {
		name:           "EC2 down, then back",
		types:          []string{"t3.micro"},
		inject:         func() { faults.Always("CreateFleet", ec2fault.ServerError) },
		wantReason:     ReasonLaunchFailed,
		wantMessage:    "InternalError",
		heal:           true,
		wantHealedType: "t3.micro",
	}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := l.name + "-" + string(rune('a'+i))
			faults.Clear()
			tt.inject()
			t.Cleanup(faults.Clear)
			if outcome, msg, err := l.ctrl.Create(ctx, l.planOf(name, tt.types...)); err != nil || outcome != Created {
				t.Fatalf("Create = %v %q %v, want Created", outcome, msg, err)
			}
			if tt.wantReason != "" {
				waitFor(t, tt.wantReason+" condition", func() (bool, error) {
					_, ok := seen.find(name, tt.wantReason)
					return ok, nil
				})
				got, _ := seen.find(name, tt.wantReason)
				if !strings.Contains(got, tt.wantMessage) {
					t.Errorf("Launched condition %q does not say %q", got, tt.wantMessage)
				}
				if n := len(l.instances(t, name)); n != 0 {
					t.Errorf("instances of a claim EC2 could not serve = %d, want 0", n)
				}
				if tt.heal {
					// While EC2 fails, the claim waits between attempts (15 s)
					// rather than hammering CreateFleet: the condition must not
					// change (and requeue) with every new AWS request id.
					before := faults.Injected(ec2fault.ServerError)
					time.Sleep(4 * time.Second)
					if n := faults.Injected(ec2fault.ServerError) - before; n > 3 {
						t.Errorf("%d failed CreateFleet calls within 4 s of the failure; want one attempt at most before the pause", n)
					}
				}
			}
			wantType := tt.wantType
			if tt.heal {
				faults.Clear()
				l.ctrl.Enqueue(name)
				wantType = tt.wantHealedType
			}
			if wantType == "" {
				// Nothing left to try: the claim goes back to the planner.
				waitFor(t, "claim deleted", func() (bool, error) {
					_, err := l.crd.GetNodeClaim(ctx, name)
					return apierrors.IsNotFound(err), nil
				})
				if n := len(l.instances(t, name)); n != 0 {
					t.Errorf("instances after the claim is gone = %d, want 0", n)
				}
				return
			}
			var claim *karpv1.NodeClaim
			waitFor(t, "Launched", func() (bool, error) {
				var err error
				claim, err = l.crd.GetNodeClaim(ctx, name)
				return err == nil && claim.IsTrue(karpv1.ConditionTypeLaunched), err
			})
			if got := claim.Labels["node.kubernetes.io/instance-type"]; got != wantType {
				t.Errorf("launched %s, want %s", got, wantType)
			}
			for _, f := range tt.wantInjected {
				if faults.Injected(f) == 0 {
					t.Errorf("fault %v never injected", f)
				}
			}
			// Give a duplicate launch a chance to show.
			time.Sleep(time.Second)
			is := l.instances(t, name)
			if len(is) != 1 || !strings.HasSuffix(claim.Status.ProviderID, "/"+*is[0].InstanceId) {
				t.Errorf("instances of the claim = %d, want exactly the one recorded (%s)", len(is), claim.Status.ProviderID)
			}

			// Termination through a throttle and a lost answer.
			faults.Next("TerminateInstances", ec2fault.Throttle, 1)
			faults.Next("TerminateInstances", ec2fault.LostResponse, 1)
			if err := l.ctrl.Delete(ctx, name); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "claim gone", func() (bool, error) {
				_, err := l.crd.GetNodeClaim(ctx, name)
				return apierrors.IsNotFound(err), nil
			})
			if n := len(l.instances(t, name)); n != 0 {
				t.Errorf("running instances after termination = %d, want 0", n)
			}
		})
	}
}
