package provisioning_test

import (
	"testing"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// TestSolveSpreadCrossing: a pod counted in another group's spread, whose
// own spread allows a single zone, must still be placed when some plan
// holds both spreads. Here the owners of the app=b spread (placed first,
// being larger) fill us-east-1a to the group's skew limit, the only zone
// the lone pod's own spread (over role=c pods, two each in 1b and 1c)
// allows; the owners could as well have left 1a at the least count.
func TestSolveSpreadCrossing(t *testing.T) {
	t.Parallel()
	owners := pods("owner", 4, 1000, 1024, labels("app", "b"), spread(model.LabelZone, 1, true, sel("app", "b")))
	lone := pod("lone", 100, 128, labels("app", "b"), spread(model.LabelZone, 1, true, sel("role", "c")))
	s := snapshot(append(owners, lone))
	for i, z := range []string{"us-east-1b", "us-east-1c"} {
		name := "old-" + z
		s.Nodes = append(s.Nodes, &model.Node{Name: name, Ready: true,
			Labels:      map[string]string{model.LabelHostname: name, model.LabelZone: z},
			Allocatable: model.Resources{CPU: 500, Memory: gib, Pods: 10}})
		for j := range 2 {
			s.Pods = append(s.Pods, pod(name+"-"+string(rune('a'+i*2+j)), 100, 100, labels("role", "c"), func(p *model.Pod) {
				p.NodeName, p.Phase = name, model.PodRunning
			}))
		}
	}
	p := solve(t, s) // the validator checks both spreads
	if len(p.Unschedulable) > 0 {
		t.Errorf("unschedulable: %v; every pod fits (owners 1/2/1 or 1/1/2 over the zones, the lone pod in us-east-1a)", reasons(p))
	}
	_, zone := hosts(p)
	podHost, _ := hosts(p)
	if h, ok := podHost["default/lone"]; ok && zone[h] != "us-east-1a" {
		t.Errorf("lone pod in %s, want us-east-1a (its spread's only zone)", zone[h])
	}
}
