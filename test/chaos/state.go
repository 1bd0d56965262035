package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Tags the actuator puts on the instances it launches.
const (
	tagNodeClaim = "karpenter.sh/nodeclaim"
	tagNodePool  = "karpenter.sh/nodepool"
)

// instance is what the harness reads of an EC2 instance.
type instance struct {
	id, claim, pool, state string
}

func (i instance) live() bool { return i.state == "pending" || i.state == "running" }

// instances lists every instance in moto, in any state. The environment
// is the cluster's alone, so an instance without the cluster's tags (a
// launch whose tags never came) is one nobody owns.
func (h *Harness) instances(ctx context.Context) ([]instance, error) {
	var out []instance
	p := ec2.NewDescribeInstancesPaginator(h.ec2, &ec2.DescribeInstancesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				i := instance{id: aws.ToString(in.InstanceId)}
				if in.State != nil {
					i.state = string(in.State.Name)
				}
				for _, t := range in.Tags {
					switch aws.ToString(t.Key) {
					case tagNodeClaim:
						i.claim = aws.ToString(t.Value)
					case tagNodePool:
						i.pool = aws.ToString(t.Value)
					}
				}
				out = append(out, i)
			}
		}
	}
	return out, nil
}

// state is a snapshot of everything the end state is judged on.
type state struct {
	running, pending, terminating int // the Deployment's pods
	claims, deleting, notReady    int // the pool's NodeClaims
	nodes                         int // the pool's Nodes
	leaked                        []string
	// without names NodeClaims without a live instance; multi those with
	// more than one.
	without, multi []string
}

func (s state) String() string {
	return fmt.Sprintf("pods %d running %d pending %d terminating; nodeclaims %d (%d deleting, %d not initialized); nodes %d; leaked %v; claims without instance %v; with several %v",
		s.running, s.pending, s.terminating, s.claims, s.deleting, s.notReady, s.nodes, s.leaked, s.without, s.multi)
}

// settled reports whether the system is at rest with want pods running on
// nodes nodes (any number when 0).
func (s state) settled(want, nodes int) bool {
	return s.running == want && s.pending == 0 && s.terminating == 0 &&
		s.deleting == 0 && s.notReady == 0 && len(s.leaked) == 0 && len(s.without) == 0 && len(s.multi) == 0 &&
		s.claims == s.nodes && (nodes == 0 || s.nodes == nodes)
}

// observe takes a snapshot.
func (h *Harness) snapshot(ctx context.Context) (state, error) {
	var s state
	pods, err := h.kube.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + App})
	if err != nil {
		return s, err
	}
	for _, p := range pods.Items {
		switch {
		case p.DeletionTimestamp != nil:
			s.terminating++
		case p.Status.Phase == corev1.PodRunning && podReady(&p):
			s.running++
		case p.Status.Phase == corev1.PodPending || p.Status.Phase == corev1.PodRunning:
			s.pending++
		}
	}
	claims, err := h.dyn.Resource(nodeClaims).List(ctx, metav1.ListOptions{})
	if err != nil {
		return s, err
	}
	names := map[string]bool{}
	for _, c := range claims.Items {
		names[c.GetName()] = true
		if c.GetLabels()[tagNodePool] != Pool {
			continue
		}
		s.claims++
		if c.GetDeletionTimestamp() != nil {
			s.deleting++
		} else if !conditionTrue(c, "Initialized") {
			s.notReady++
		}
	}
	nodes, err := h.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: tagNodePool + "=" + Pool})
	if err != nil {
		return s, err
	}
	s.nodes = len(nodes.Items)
	insts, err := h.instances(ctx)
	if err != nil {
		return s, err
	}
	perClaim := map[string]int{}
	for _, i := range insts {
		if !i.live() {
			continue
		}
		if !names[i.claim] {
			s.leaked = append(s.leaked, i.id+"("+i.claim+")")
			continue
		}
		perClaim[i.claim]++
	}
	for _, c := range claims.Items {
		switch n := perClaim[c.GetName()]; {
		case n == 0:
			s.without = append(s.without, c.GetName())
		case n > 1:
			s.multi = append(s.multi, c.GetName())
		}
	}
	return s, nil
}

// waitSettled polls until the end state holds (true) or timeout passes.
func (h *Harness) waitSettled(ctx context.Context, want, nodes int, timeout time.Duration) (state, bool) {
	var last state
	_ = poll(ctx, timeout, func() (bool, error) {
		s, err := h.snapshot(ctx)
		if err != nil {
			return false, nil
		}
		last = s
		return s.settled(want, nodes), nil
	})
	return last, last.settled(want, nodes)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func conditionTrue(u unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == typ {
			return m["status"] == "True"
		}
	}
	return false
}

// claimCPU is a NodeClaim's cpu: its capacity once launched, else the
// largest type it may launch (the pool allows one, of instanceCPU).
func claimCPU(u unstructured.Unstructured) int64 {
	if v, ok, _ := unstructured.NestedString(u.Object, "status", "capacity", "cpu"); ok && v != "" {
		if q, err := resource.ParseQuantity(v); err == nil {
			return q.Value()
		}
	}
	return instanceCPU
}
