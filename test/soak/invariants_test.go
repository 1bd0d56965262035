package soak

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

var nodeClaimsGVR = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodeclaims"}

// orphanBound is how long an instance may live without a NodeClaim before
// it counts as leaked: the actuator's GC grace period (2m) and interval
// (1m), and slack for a loaded machine.
const orphanBound = 5 * time.Minute

// checker checks the invariants and keeps their counts.
type checker struct {
	kube     kubernetes.Interface
	dyn      dynamic.Interface
	ec2      *ec2.Client
	cluster  string
	pool     string
	ns       string
	limitCPU int64 // millicores

	pods cache.SharedIndexInformer

	mu sync.Mutex
	// Counts and the objects behind them.
	checks        int
	orphanSince   map[string]time.Time // instance → first seen without a NodeClaim
	leaked        map[string]bool      // instances orphaned past orphanBound
	doubled       map[string]string    // NodeClaim → its instances, when more than one
	limitBreaches []string
	pdbViolations []string // ready pods removed without an eviction
	unstarted     []string // pods removed without an eviction before they were ready
	pendingSince  map[string]time.Time
	late          map[string]bool // pods that fit and waited past the bound
	waits         []time.Duration // creation → scheduled, pods created during the soak
	seenScheduled map[string]bool
	started       time.Time
	peakKB        map[string]int64 // service → peak VmHWM
	maxClaims     int
	maxPods       int
	maxCPU        int64
}

func newChecker(kube kubernetes.Interface, dyn dynamic.Interface, ec2c *ec2.Client, cluster, pool, ns string, limitCPU int64) *checker {
	return &checker{kube: kube, dyn: dyn, ec2: ec2c, cluster: cluster, pool: pool, ns: ns, limitCPU: limitCPU,
		orphanSince: map[string]time.Time{}, leaked: map[string]bool{}, doubled: map[string]string{},
		pendingSince: map[string]time.Time{}, late: map[string]bool{}, seenScheduled: map[string]bool{},
		peakKB: map[string]int64{}, started: time.Now()}
}

// watchPods records, from a pod informer, the pods removed without an
// eviction (a PDB can only be broken that way: the Eviction API enforces
// it) and how long new pods waited to be scheduled.
func (c *checker) watchPods(ctx context.Context) error {
	c.pods = cache.NewSharedIndexInformer(cache.NewFilteredListWatchFromClient(c.kube.CoreV1().RESTClient(), "pods", c.ns, func(*metav1.ListOptions) {}),
		&corev1.Pod{}, 0, cache.Indexers{})
	_, err := c.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) { c.observePod(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			c.observePod(obj)
		},
	})
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	go c.pods.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.pods.HasSynced) {
		return fmt.Errorf("watch pods: cache did not sync")
	}
	return nil
}

func (c *checker) observePod(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cond := range p.Status.Conditions {
		if cond.Type != corev1.DisruptionTarget || cond.Status != corev1.ConditionTrue {
			continue
		}
		// Removed with its node (pod GC) or by a NoExecute taint: not
		// through the Eviction API, so no PDB was asked.
		if cond.Reason != "DeletionByPodGC" && cond.Reason != "DeletionByTaintManager" {
			continue
		}
		v := fmt.Sprintf("%s on %s (%s)", p.Name, p.Spec.NodeName, cond.Reason)
		// A PDB guards healthy pods: one removed before it ever ran
		// takes nothing away from what the budget counts.
		if !podReady(p) {
			if !slices.Contains(c.unstarted, v) {
				c.unstarted = append(c.unstarted, v)
			}
			continue
		}
		if !slices.Contains(c.pdbViolations, v) {
			c.pdbViolations = append(c.pdbViolations, v)
		}
	}
	if p.Spec.NodeName != "" && !c.seenScheduled[string(p.UID)] && p.CreationTimestamp.After(c.started) {
		c.seenScheduled[string(p.UID)] = true
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionTrue {
				c.waits = append(c.waits, cond.LastTransitionTime.Sub(p.CreationTimestamp.Time))
			}
		}
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// check runs every invariant once.
func (c *checker) check(ctx context.Context, now time.Time) error {
	claims, err := c.dyn.Resource(nodeClaimsGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodeclaims: %w", err)
	}
	instances, err := c.liveInstances(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks++

	// Instances: each owned by a NodeClaim that records it (or has not
	// recorded one yet); never two for one NodeClaim.
	recorded := map[string]string{} // claim → instance id in its providerID
	var poolCPU int64
	poolClaims := 0
	for _, u := range claims.Items {
		pid, _, _ := unstructured.NestedString(u.Object, "status", "providerID")
		recorded[u.GetName()] = pid[strings.LastIndex(pid, "/")+1:]
		if u.GetLabels()["karpenter.sh/nodepool"] != c.pool {
			continue
		}
		poolClaims++
		if cpu, ok, _ := unstructured.NestedString(u.Object, "status", "capacity", "cpu"); ok {
			if q, err := resource.ParseQuantity(cpu); err == nil {
				poolCPU += q.MilliValue()
			}
		}
	}
	byClaim := map[string][]string{}
	live := map[string]bool{}
	for _, i := range instances {
		id := aws.ToString(i.InstanceId)
		live[id] = true
		claim := tag(i.Tags, "karpenter.sh/nodeclaim")
		byClaim[claim] = append(byClaim[claim], id)
		rec, ok := recorded[claim]
		if ok && (rec == "" || rec == id) {
			delete(c.orphanSince, id)
			continue
		}
		if _, seen := c.orphanSince[id]; !seen {
			c.orphanSince[id] = now
		}
		if now.Sub(c.orphanSince[id]) > orphanBound {
			c.leaked[id] = true
		}
	}
	for id := range c.orphanSince {
		if !live[id] {
			delete(c.orphanSince, id)
		}
	}
	for claim, ids := range byClaim {
		if len(ids) > 1 {
			slices.Sort(ids)
			c.doubled[claim] = strings.Join(ids, ",")
		}
	}

	// Limits.
	if poolCPU > c.limitCPU {
		c.limitBreaches = append(c.limitBreaches, fmt.Sprintf("%s: cpu %dm over the limit %dm", now.Format(time.TimeOnly), poolCPU, c.limitCPU))
	}
	c.maxClaims = max(c.maxClaims, poolClaims)
	c.maxCPU = max(c.maxCPU, poolCPU)

	// Pending pods that fit under the limit get capacity within the bound.
	headroom := c.limitCPU - poolCPU
	pending := map[string]bool{}
	pods := 0
	for _, o := range c.pods.GetStore().List() {
		p := o.(*corev1.Pod)
		if p.DeletionTimestamp != nil {
			continue
		}
		pods++
		if p.Spec.NodeName != "" || p.Status.Phase != corev1.PodPending {
			continue
		}
		var cpu int64
		for _, ct := range p.Spec.Containers {
			cpu += ct.Resources.Requests.Cpu().MilliValue()
		}
		if cpu > headroom {
			delete(c.pendingSince, string(p.UID))
			continue
		}
		uid := string(p.UID)
		pending[uid] = true
		if _, ok := c.pendingSince[uid]; !ok {
			c.pendingSince[uid] = now
		}
		if now.Sub(c.pendingSince[uid]) > *pendingMax {
			c.late[p.Name] = true
		}
	}
	for uid := range c.pendingSince {
		if !pending[uid] {
			delete(c.pendingSince, uid)
		}
	}
	c.maxPods = max(c.maxPods, pods)

	c.sampleMemory(ctx)
	return nil
}

func (c *checker) liveInstances(ctx context.Context) ([]ec2types.Instance, error) {
	var out []ec2types.Instance
	pg := ec2.NewDescribeInstancesPaginator(c.ec2, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:kubernetes.io/cluster/" + c.cluster), Values: []string{"owned"}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}},
	}})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe instances: %w", err)
		}
		for _, r := range page.Reservations {
			out = append(out, r.Instances...)
		}
	}
	return out, nil
}

func tag(tags []ec2types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// sampleMemory records the peak resident set (VmHWM) of each service
// process the environment started.
func (c *checker) sampleMemory(ctx context.Context) {
	procs, err := env.Status(ctx)
	if err != nil {
		return
	}
	for _, p := range procs {
		if p.InProcess || !p.Alive || !isService(p.Name) {
			continue
		}
		if kb, err := vmHWM(p.PID); err == nil {
			c.peakKB[p.Name] = max(c.peakKB[p.Name], kb)
		}
	}
}

func isService(name string) bool {
	for _, s := range []string{localenv.ProcPlanner, localenv.ProcActuator, localenv.ProcWatcher} {
		if name == s || strings.HasPrefix(name, s+"-") {
			return true
		}
	}
	return false
}

// vmHWM reads a process's peak resident set size in KiB.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("pid %d: no VmHWM", pid)
}

// counts are the invariant figures of a run; all but the waits must be 0.
type counts struct {
	Leaked, DoubleLaunches, LimitBreaches, PDBViolations, LatePending int
}

func (c *checker) counts() counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return counts{Leaked: len(c.leaked), DoubleLaunches: len(c.doubled), LimitBreaches: len(c.limitBreaches),
		PDBViolations: len(c.pdbViolations), LatePending: len(c.late)}
}

// report is the run's summary, with the objects behind any non-zero
// count.
func (c *checker) report() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "checks run                      %d\n", c.checks)
	fmt.Fprintf(&b, "leaked instances                %d %v\n", len(c.leaked), keys(c.leaked))
	fmt.Fprintf(&b, "double launches                 %d %v\n", len(c.doubled), c.doubled)
	fmt.Fprintf(&b, "limit breaches                  %d %v\n", len(c.limitBreaches), c.limitBreaches)
	fmt.Fprintf(&b, "PDB-guarded pods lost           %d %v\n", len(c.pdbViolations), c.pdbViolations)
	fmt.Fprintf(&b, "pods removed before they ran    %d %v\n", len(c.unstarted), c.unstarted)
	fmt.Fprintf(&b, "fitting pods pending > %-8s %d %v\n", pendingMax.String(), len(c.late), keys(c.late))
	fmt.Fprintf(&b, "peak pods / nodeclaims / cpu    %d / %d / %dm (limit %dm)\n", c.maxPods, c.maxClaims, c.maxCPU, c.limitCPU)
	waits := slices.Clone(c.waits)
	slices.Sort(waits)
	if n := len(waits); n > 0 {
		fmt.Fprintf(&b, "pod wait to schedule            n=%d p50=%s p95=%s max=%s\n", n,
			waits[n/2].Round(time.Second), waits[n*95/100].Round(time.Second), waits[n-1].Round(time.Second))
	}
	for _, name := range slices.Sorted(maps.Keys(c.peakKB)) {
		fmt.Fprintf(&b, "peak RSS (VmHWM) %-14s %.1f MiB\n", name, float64(c.peakKB[name])/1024)
	}
	return b.String()
}

func keys(m map[string]bool) []string {
	out := slices.Sorted(maps.Keys(m))
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("and %d more", len(out)-10))
	}
	return out
}
