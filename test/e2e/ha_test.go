package e2e

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

// takeoverLimit is how soon a standby must lead after the leader died
// without releasing its Lease (the default lease lasts 10 s).
const takeoverLimit = 15 * time.Second

// TestLeaderFailover kills the leading actuator and the leading watcher
// (SIGKILL: no lease released) while pods wait for capacity. The standby of
// each takes over within 15 s, the pods run, and every NodeClaim has
// exactly one instance: nothing was launched twice.
func TestLeaderFailover(t *testing.T) {
	const pool = "failover"
	testPool(t, pool, poolOptions{InstanceTypes: []string{"t3.medium"}})
	ns := namespace(t, "failover")
	actuator := leaderOf(t, localenv.ProcActuator, actuatorService)
	watcher := leaderOf(t, localenv.ProcWatcher, watcherService)
	standby := func(leader string) string {
		if leader == localenv.ProcActuator || leader == localenv.ProcWatcher {
			return leader + "-2"
		}
		return leader[:len(leader)-2]
	}
	// The killed leaders come back as standbys, so the tests after this one
	// find two replicas again.
	t.Cleanup(func() {
		for _, name := range []string{actuator, watcher} {
			if err := w.env.Restart(context.Background(), name); err != nil {
				t.Errorf("restart %s: %v", name, err)
			}
		}
	})

	// Six pods of 1 cpu: three t3.medium nodes, launched while (or just
	// before) the leaders die.
	workload(t, ns, "failover", pool, 6, "1")
	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	for _, name := range []string{actuator, watcher} {
		if err := w.env.Signal(name, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("killed the leaders %s and %s", actuator, watcher)

	for _, c := range []struct{ proc, service string }{{standby(actuator), actuatorService}, {standby(watcher), watcherService}} {
		eventually(t, 30*time.Second, c.proc+" leads", func() (bool, string) {
			return healthy(context.Background(), t, c.proc, c.service), "not serving " + c.service
		})
		took := time.Since(killed)
		t.Logf("%s took over %s after the kill", c.proc, took.Round(10*time.Millisecond))
		if took > takeoverLimit {
			t.Errorf("%s took over after %s, want within %s", c.proc, took.Round(10*time.Millisecond), takeoverLimit)
		}
	}

	eventually(t, 180*time.Second, "6 pods Running after the failover", func() (bool, string) {
		running, pending := pods(t, ns)
		return len(running) == 6, fmt.Sprintf("%d running, %d pending", len(running), len(pending))
	})

	// No double launch: each NodeClaim of the pool has one instance, and no
	// instance of the pool lacks a NodeClaim.
	claims := map[string]bool{}
	for _, nc := range poolClaims(t, pool) {
		claims[nc.GetName()] = true
	}
	out, err := w.ec2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:karpenter.sh/nodepool"), Values: []string{pool}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	perClaim := map[string]int{}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			var claim string
			for _, tag := range in.Tags {
				if aws.ToString(tag.Key) == "karpenter.sh/nodeclaim" {
					claim = aws.ToString(tag.Value)
				}
			}
			perClaim[claim]++
		}
	}
	for claim, n := range perClaim {
		if n > 1 {
			t.Errorf("NodeClaim %s has %d instances: launched twice", claim, n)
		}
		if !claims[claim] {
			t.Errorf("instance(s) tagged for %q, which is not a NodeClaim of the pool", claim)
		}
	}
	if len(perClaim) != len(claims) {
		t.Errorf("%d NodeClaims, %d with instances (%v)", len(claims), len(perClaim), perClaim)
	}
	t.Logf("%d NodeClaims, one instance each", len(claims))
}
