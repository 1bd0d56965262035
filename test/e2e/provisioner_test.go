package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestProvisionerScaleUpLimitAndDown is the walking skeleton end to end: the
// brief's Provisioner applied verbatim; pending pods become EC2 instances in
// the tagged subnets and security group, Nodes, and Running pods; the
// Provisioner's cpu limit holds with the rest Pending and told why; scaling
// to zero leaves no Node, NodeClaim or instance behind.
func TestProvisionerScaleUpLimitAndDown(t *testing.T) {
	applyFile(t, "testdata/seed-provisioner.yaml")
	ns := namespace(t, "skeleton")

	// 1. Five pods of 1 cpu / 1 GiB run within 60 s.
	began := time.Now()
	deployment(t, ns, "inflate", 5, "1", "1Gi")
	took := eventually(t, 60*time.Second, "5 pods Running", func() (bool, string) {
		running, pending := pods(t, ns)
		return len(running) == 5, fmt.Sprintf("%d running, %d pending", len(running), len(pending))
	})
	t.Logf("5 pending pods → 5 Running in %s", took.Round(time.Millisecond))

	insts := liveInstances(t)
	if len(insts) == 0 {
		t.Fatal("no instance launched in EC2")
	}
	subnets := w.net.SubnetIDs()
	nodes := flotillaNodes(t)
	providerIDs := map[string]bool{}
	for _, n := range nodes {
		providerIDs[n.Spec.ProviderID] = true
	}
	for _, in := range insts {
		id := aws.ToString(in.InstanceId)
		if typ := string(in.InstanceType); typ != "t3.medium" && typ != "t3.large" {
			t.Errorf("instance %s is %s, want t3.medium or t3.large (the Provisioner's requirement)", id, typ)
		}
		if !slices.Contains(subnets, aws.ToString(in.SubnetId)) {
			t.Errorf("instance %s in subnet %s, want one of the tagged subnets %v", id, aws.ToString(in.SubnetId), subnets)
		}
		var groups []string
		for _, g := range in.SecurityGroups {
			groups = append(groups, aws.ToString(g.GroupId))
		}
		if !slices.Contains(groups, w.net.SecurityGroup) {
			t.Errorf("instance %s has security groups %v, want the tagged %s", id, groups, w.net.SecurityGroup)
		}
		pid := fmt.Sprintf("aws:///%s/%s", aws.ToString(in.Placement.AvailabilityZone), id)
		if !providerIDs[pid] {
			t.Errorf("no Node registered for instance %s (providerID %s)", id, pid)
		}
	}
	t.Logf("%d instance(s), %d node(s) registered", len(insts), len(nodes))

	// 2. 70 pods ask for 70 cpu; a t3 node holds one 1-cpu pod, so the
	// Provisioner's limit of 100 cpu (and 200Gi) caps the nodes, and the
	// rest stay Pending with an event that says why.
	scale(t, ns, "inflate", 70)
	began = time.Now()
	stable, lastRunning := time.Time{}, -1
	took = eventually(t, 180*time.Second, "the cpu limit reached and the rest Pending with a reason", func() (bool, string) {
		running, pending := pods(t, ns)
		claims := countNodeClaims(t)
		nodes := flotillaNodes(t)
		if len(running) != lastRunning || claims != len(nodes) {
			lastRunning, stable = len(running), time.Now()
			return false, fmt.Sprintf("%d running, %d pending, %d claims, %d nodes: still changing", len(running), len(pending), claims, len(nodes))
		}
		if len(running)+len(pending) != 70 || time.Since(stable) < 5*time.Second {
			return false, fmt.Sprintf("%d running, %d pending", len(running), len(pending))
		}
		for _, p := range pending {
			if !mentionsLimit(eventsFor(t, ns, p.Name)) {
				return false, fmt.Sprintf("pod %s pending without an event about the limit: %v", p.Name, eventsFor(t, ns, p.Name))
			}
		}
		return true, ""
	})
	running, pending := pods(t, ns)
	cpu, mem := resource.Quantity{}, resource.Quantity{}
	for _, n := range flotillaNodes(t) {
		cpu.Add(n.Status.Capacity[corev1.ResourceCPU])
		mem.Add(n.Status.Capacity[corev1.ResourceMemory])
	}
	if cpu.Cmp(resource.MustParse("100")) > 0 || mem.Cmp(resource.MustParse("200Gi")) > 0 {
		t.Errorf("nodes hold %s cpu and %s memory, over the Provisioner's limits (100, 200Gi)", cpu.String(), mem.String())
	}
	if len(pending) == 0 {
		t.Error("no pod is Pending though 70 cpu cannot fit under a 100-cpu limit of 2-cpu nodes")
	}
	if len(liveInstances(t)) != len(flotillaNodes(t)) {
		t.Errorf("%d live instances for %d nodes", len(liveInstances(t)), len(flotillaNodes(t)))
	}
	t.Logf("scale to 70: settled in %s with %d Running, %d Pending; nodes hold %s cpu, %s memory; example event: %v",
		took.Round(time.Millisecond), len(running), len(pending), cpu.String(), mem.String(), firstLimitEvent(t, ns, pending))

	// 3. Scale to zero: within 60 s nothing is left.
	scale(t, ns, "inflate", 0)
	began = time.Now()
	took = eventually(t, 60*time.Second, "no Node, NodeClaim or running instance left", func() (bool, string) {
		nodes, claims, insts := len(flotillaNodes(t)), countNodeClaims(t), len(liveInstances(t))
		return nodes == 0 && claims == 0 && insts == 0, fmt.Sprintf("%d nodes, %d nodeclaims, %d live instances", nodes, claims, insts)
	})
	_ = began
	t.Logf("scale to 0: every node, NodeClaim and instance gone in %s", took.Round(time.Millisecond))
}

func mentionsLimit(events []string) bool {
	for _, e := range events {
		if strings.Contains(e, "limit") {
			return true
		}
	}
	return false
}

func firstLimitEvent(t *testing.T, ns string, pending []corev1.Pod) string {
	for _, p := range pending {
		for _, e := range eventsFor(t, ns, p.Name) {
			if strings.Contains(e, "limit") {
				return e
			}
		}
	}
	return "(none)"
}
