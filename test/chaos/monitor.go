package chaos

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// monitor watches the invariants continuously: every disruption of the
// Deployment's pods against the PodDisruptionBudget, and every second the
// NodePool's usage against its limit and the instances of each NodeClaim.
type monitor struct {
	h *Harness

	mu sync.Mutex
	// pdbViolations counts pods disrupted while fewer than MinAvailable
	// other pods were healthy; pdbPaused stops counting (a fault that
	// takes nodes away on its own).
	pdbViolations int
	pdbPaused     bool
	disruptions   int
	disrupted     map[types.UID]bool
	// limitBreaches counts samples that found the pool over its limit
	// (NodeClaims or live instances).
	limitBreaches int
	inBreach      bool
	// launched is every instance ever seen for each NodeClaim
	// ("name/uid"); seen holds every instance id seen.
	launched map[string]map[string]bool
	seen     map[string]bool
	pods     cache.Store
}

// counters are the monitor's cumulative counts.
type counters struct {
	pdb, limit, double int
}

func startMonitor(ctx context.Context, h *Harness) (*monitor, error) {
	m := &monitor{h: h, disrupted: map[types.UID]bool{}, launched: map[string]map[string]bool{}, seen: map[string]bool{}}
	f := informers.NewSharedInformerFactoryWithOptions(h.kube, 0, informers.WithNamespace(Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = "app=" + App }))
	inf := f.Core().V1().Pods().Informer()
	m.pods = inf.GetStore()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) {
			if p, ok := obj.(*corev1.Pod); ok && p.DeletionTimestamp != nil {
				m.onDisruption(p)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				m.onDisruption(p)
			}
		},
	}); err != nil {
		return nil, err
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			m.sample(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return m, nil
}

// onDisruption checks a pod on its way out: one with a DisruptionTarget
// condition (evicted, or deleted with its node) was disrupted, and the
// budget must have allowed it.
func (m *monitor) onDisruption(p *corev1.Pod) {
	if !disruptionTarget(p) {
		return // a scale-down of the Deployment
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.disrupted[p.UID] {
		return
	}
	m.disrupted[p.UID] = true
	m.disruptions++
	healthy := 0
	for _, obj := range m.pods.List() {
		o, ok := obj.(*corev1.Pod)
		if ok && o.UID != p.UID && o.DeletionTimestamp == nil && o.Status.Phase == corev1.PodRunning && podReady(o) {
			healthy++
		}
	}
	if healthy < MinAvailable && !m.pdbPaused {
		m.pdbViolations++
		m.h.logf("  PDB VIOLATION: pod %s disrupted with %d other healthy pods (minAvailable %d)", p.Name, healthy, MinAvailable)
	}
}

func disruptionTarget(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// sample checks the pool's limit and records the instances of each
// NodeClaim.
func (m *monitor) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	claims, err := m.h.dyn.Resource(nodeClaims).List(ctx, metav1.ListOptions{LabelSelector: tagNodePool + "=" + Pool})
	if err != nil {
		return
	}
	var claimCPUs int64
	uids := map[string]string{}
	for _, c := range claims.Items {
		claimCPUs += claimCPU(c)
		uids[c.GetName()] = string(c.GetUID())
	}
	insts, err := m.h.instances(ctx)
	if err != nil {
		return
	}
	var instCPUs int64
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, i := range insts {
		if i.pool == Pool && i.live() {
			instCPUs += instanceCPU
		}
		if i.claim == "" {
			continue
		}
		if m.seen[i.id] {
			continue
		}
		// An instance belongs to the NodeClaim object (name and UID) that
		// existed when it was first seen: a claim made again under the
		// same name for the same pods may have an instance of its own.
		m.seen[i.id] = true
		key := i.claim + "/" + uids[i.claim]
		if m.launched[key] == nil {
			m.launched[key] = map[string]bool{}
		}
		m.launched[key][i.id] = true
		if len(m.launched[key]) > 1 {
			m.h.logf("  DOUBLE LAUNCH: NodeClaim %s has instances %v", key, m.launched[key])
		}
	}
	over := claimCPUs > LimitCPU || instCPUs > LimitCPU
	if over && !m.inBreach {
		m.limitBreaches++
		m.h.logf("  LIMIT BREACH: NodeClaims %d cpu, live instances %d cpu, limit %d", claimCPUs, instCPUs, LimitCPU)
	}
	m.inBreach = over
}

func (m *monitor) counters() counters {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := counters{pdb: m.pdbViolations, limit: m.limitBreaches}
	for _, ids := range m.launched {
		if len(ids) > 1 {
			c.double++
		}
	}
	return c
}

// doubles names the NodeClaims with more than one instance.
func (m *monitor) doubles() map[string][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]string{}
	for claim, ids := range m.launched {
		if len(ids) > 1 {
			for id := range ids {
				out[claim] = append(out[claim], id)
			}
		}
	}
	return out
}

func (m *monitor) pausePDB(paused bool) {
	m.mu.Lock()
	m.pdbPaused = paused
	m.mu.Unlock()
}

// forgetInstances drops the instance history (moto was restarted and
// forgot them too).
func (m *monitor) forgetInstances() {
	m.mu.Lock()
	m.launched = map[string]map[string]bool{}
	m.seen = map[string]bool{}
	m.mu.Unlock()
}
