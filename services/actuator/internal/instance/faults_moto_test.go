package instance

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/flotilla-dev/flotilla/services/actuator/internal/ec2fault"
)

// TestLaunchUnderEC2Faults injects, through the real client's middleware,
// the EC2 faults moto cannot produce, and checks that each NodeClaim ends
// with exactly the instances it should have: one when EC2 lets it, none and
// a clear error when it does not.
func TestLaunchUnderEC2Faults(t *testing.T) {
	tests := []struct {
		name   string
		inject func(f *ec2fault.Injector)
		offers []Offering
		// wantErr: the launch fails (with nothing launched) and the error
		// matches.
		wantErr func(error) bool
		// wantType is the instance type launched when it succeeds.
		wantType string
		// wantFleetReached is how many CreateFleet requests reached EC2.
		wantFleetReached int
		// wantMarked are offerings left marked unavailable.
		wantMarked []Offering
		// wantKept is how many instances a failed launch leaves (launched
		// by a request whose answer was lost); the next Launch adopts it.
		wantKept int
	}{{
		name:             "throttled twice, then through",
		inject:           func(f *ec2fault.Injector) { f.Next("CreateFleet", ec2fault.Throttle, 2) },
		offers:           []Offering{t3mediumA},
		wantType:         "t3.medium",
		wantFleetReached: 1,
	}, {
		name:             "5xx twice, then through",
		inject:           func(f *ec2fault.Injector) { f.Next("CreateFleet", ec2fault.ServerError, 2) },
		offers:           []Offering{t3mediumA},
		wantType:         "t3.medium",
		wantFleetReached: 1,
	}, {
		name:             "timeout before the request reached EC2",
		inject:           func(f *ec2fault.Injector) { f.Next("CreateFleet", ec2fault.Timeout, 1) },
		offers:           []Offering{t3mediumA},
		wantType:         "t3.medium",
		wantFleetReached: 1,
	}, {
		// EC2 launched the instance but the answer was lost: Launch must
		// find it rather than ask again.
		name:             "answer lost after the launch",
		inject:           func(f *ec2fault.Injector) { f.Next("CreateFleet", ec2fault.LostResponse, 1) },
		offers:           []Offering{t3mediumA},
		wantType:         "t3.medium",
		wantFleetReached: 1,
	}, {
		name: "describe calls fail with 5xx and timeouts on the way",
		inject: func(f *ec2fault.Injector) {
			f.Next("DescribeInstances", ec2fault.ServerError, 1)
			f.Next("DescribeInstances", ec2fault.Timeout, 1)
		},
		offers:           []Offering{t3mediumA},
		wantType:         "t3.medium",
		wantFleetReached: 1,
	}, {
		name:             "capacity error on the cheapest type: the next one in the same request",
		inject:           func(f *ec2fault.Injector) { f.Exhaust("InsufficientInstanceCapacity", "on-demand", "t3.medium") },
		offers:           []Offering{t3mediumA, t3largeB},
		wantType:         "t3.large",
		wantFleetReached: 1,
	}, {
		name:             "fleet launches fewer than asked: next capacity type",
		inject:           func(f *ec2fault.Injector) { f.Next("CreateFleet", ec2fault.EmptyFleet, 1) },
		offers:           []Offering{spotA, t3mediumA},
		wantType:         "t3.medium",
		wantFleetReached: 1,
		wantMarked:       []Offering{spotA},
	}, {
		name:             "fleet launches nothing at all",
		inject:           func(f *ec2fault.Injector) { f.Always("CreateFleet", ec2fault.EmptyFleet) },
		offers:           []Offering{t3mediumA},
		wantErr:          func(err error) bool { return errors.Is(err, ErrInsufficientCapacity) },
		wantFleetReached: 0,
		wantMarked:       []Offering{t3mediumA},
	}, {
		name:             "throttled past the retry budget",
		inject:           func(f *ec2fault.Injector) { f.Always("CreateFleet", ec2fault.Throttle) },
		offers:           []Offering{t3mediumA},
		wantErr:          func(err error) bool { return !errors.Is(err, ErrInsufficientCapacity) },
		wantFleetReached: 0,
	}, {
		name:             "5xx on every attempt",
		inject:           func(f *ec2fault.Injector) { f.Always("CreateFleet", ec2fault.ServerError) },
		offers:           []Offering{t3mediumA},
		wantErr:          func(err error) bool { return !errors.Is(err, ErrInsufficientCapacity) },
		wantFleetReached: 0,
	}, {
		// Every answer is lost: each request launches; only the first may
		// be kept and Launch must return it rather than fail.
		name:             "every answer lost",
		inject:           func(f *ec2fault.Injector) { f.Always("CreateFleet", ec2fault.LostResponse) },
		offers:           []Offering{t3mediumA},
		wantType:         "t3.medium",
		wantFleetReached: 1,
	}, {
		// The answer is lost and the instance cannot be looked for: Launch
		// must not ask again (that could launch twice) but fail, and the
		// next Launch finds the instance.
		name: "answer lost and EC2 not answering describes",
		inject: func(f *ec2fault.Injector) {
			f.Next("DescribeInstances", 0, 1)
			f.Next("CreateFleet", ec2fault.LostResponse, 1)
			f.Next("DescribeInstances", ec2fault.ServerError, 3)
		},
		offers:           []Offering{t3mediumA},
		wantErr:          func(err error) bool { return strings.Contains(err.Error(), "looking for its instance") },
		wantFleetReached: 1,
		wantKept:         1,
	}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			faults := &ec2fault.Injector{}
			e := newEnv(t, "faults"+string(rune('a'+i)), faults.Option)
			tt.inject(faults)
			claim := e.cluster + "-1"
			inst, err := e.provider.Launch(t.Context(), e.request(claim, tt.offers...))
			running := e.instancesOf(t, claim)
			if tt.wantErr != nil {
				if err == nil || !tt.wantErr(err) {
					t.Fatalf("Launch = %v, %v; want an error of the expected kind", inst, err)
				}
				if len(running) != tt.wantKept {
					t.Errorf("instances after a failed launch = %d, want %d", len(running), tt.wantKept)
				}
			} else {
				if err != nil {
					t.Fatalf("Launch: %v", err)
				}
				if inst.Type != tt.wantType {
					t.Errorf("launched %s, want %s", inst.Type, tt.wantType)
				}
				if len(running) != 1 || aws.ToString(running[0].InstanceId) != inst.ID {
					t.Errorf("instances tagged for the NodeClaim = %d, want exactly the one returned (%s)", len(running), inst.ID)
				}
			}
			if got := faults.Reached("CreateFleet"); got != tt.wantFleetReached {
				t.Errorf("CreateFleet requests that reached EC2 = %d, want %d", got, tt.wantFleetReached)
			}
			for _, o := range tt.wantMarked {
				if !e.provider.Unavailable().Contains(o.key()) {
					t.Errorf("offering %v not marked unavailable", o.key())
				}
			}
			if tt.wantMarked == nil && tt.wantErr != nil {
				for _, o := range tt.offers {
					if e.provider.Unavailable().Contains(o.key()) {
						t.Errorf("offering %v marked unavailable by a fault that is not a capacity error", o.key())
					}
				}
			}

			// Launching again (a retried reconcile) adds nothing.
			faults.Clear()
			again, err := e.provider.Launch(t.Context(), e.request(claim, tt.offers...))
			if tt.wantKept > 0 {
				if err != nil || len(running) == 0 || again.ID != aws.ToString(running[0].InstanceId) {
					t.Errorf("Launch after the failure = %v, %v; want the instance the lost request launched", again, err)
				}
			}
			if tt.wantErr == nil {
				if err != nil || again.ID != inst.ID {
					t.Errorf("repeated Launch = %v, %v; want the same instance %s", again, err, inst.ID)
				}
				if n := len(e.instancesOf(t, claim)); n != 1 {
					t.Errorf("instances after a repeated launch = %d, want 1", n)
				}
			}
		})
	}
}
