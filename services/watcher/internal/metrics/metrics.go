// Package metrics reports what the watcher sees in Prometheus form: pods
// waiting for capacity and those nominated to capacity in flight, NodePool
// usage against its limits (Karpenter's karpenter_nodepools_usage and
// karpenter_nodepools_limit), and how long pods waited from creation until
// the NodeClaim meant for them was launched.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/internal/telemetry"
)

// Source is the watcher's picture of the cluster.
type Source interface {
	// Provisioning returns the pending pods, the NodeClaims and the
	// NodePools.
	Provisioning() *clusterv1.Snapshot
	// Synced reports whether the informers have synced.
	Synced() bool
}

var (
	podsPendingDesc = prometheus.NewDesc("flotilla_pods_pending",
		"Pods not bound to a node (and not terminating), as the watcher sees them.", nil, nil)
	podsNominatedDesc = prometheus.NewDesc("flotilla_pods_nominated",
		"Pending pods nominated to a NodeClaim in flight (capacity launched or launching for them).", nil, nil)
	usageDesc = prometheus.NewDesc("karpenter_nodepools_usage",
		"The amount of resources that have been provisioned for a nodepool (the capacity of its NodeClaims). Labeled by nodepool name and resource type.",
		[]string{"nodepool", "resource_type"}, nil)
	limitDesc = prometheus.NewDesc("karpenter_nodepools_limit",
		"Limits specified on the nodepool that restrict the quantity of resources provisioned. Labeled by nodepool name and resource type.",
		[]string{"nodepool", "resource_type"}, nil)
)

// Collector reports a Source at scrape time.
type Collector struct {
	src Source
}

// NewCollector returns a collector of src.
func NewCollector(src Source) *Collector { return &Collector{src: src} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{podsPendingDesc, podsNominatedDesc, usageDesc, limitDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if !c.src.Synced() {
		return
	}
	snap := c.src.Provisioning()
	pending, nominated := 0, 0
	for _, p := range snap.GetPods() {
		if p.GetNodeName() != "" || p.GetTerminating() {
			continue
		}
		pending++
		if p.GetNominatedNodeClaim() != "" {
			nominated++
		}
	}
	ch <- prometheus.MustNewConstMetric(podsPendingDesc, prometheus.GaugeValue, float64(pending))
	ch <- prometheus.MustNewConstMetric(podsNominatedDesc, prometheus.GaugeValue, float64(nominated))

	usage := map[string]map[string]float64{}
	for _, np := range snap.GetNodePools() {
		usage[np.GetName()] = map[string]float64{"cpu": 0, "memory": 0, "pods": 0}
		for res, v := range np.GetLimits() {
			ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.GaugeValue, baseUnits(res, v), np.GetName(), res)
		}
	}
	for _, nc := range snap.GetNodeClaims() {
		u, ok := usage[nc.GetNodePool()]
		if !ok {
			continue
		}
		r := nc.GetCapacity()
		if r == nil {
			r = nc.GetRequests()
		}
		u["cpu"] += float64(r.GetCpuMillis()) / 1000
		u["memory"] += float64(r.GetMemoryBytes())
		u["pods"] += float64(r.GetPods())
		if r.GetEphemeralStorageBytes() > 0 {
			u["ephemeral-storage"] += float64(r.GetEphemeralStorageBytes())
		}
		for k, v := range r.GetExtended() {
			u[k] += float64(v)
		}
	}
	for pool, res := range usage {
		for name, v := range res {
			ch <- prometheus.MustNewConstMetric(usageDesc, prometheus.GaugeValue, v, pool, name)
		}
	}
}

// baseUnits turns a limit as the model keeps it (millicores for cpu) into
// the unit Kubernetes reports (cores; bytes and counts as they are).
func baseUnits(resource string, v int64) float64 {
	if resource == "cpu" {
		return float64(v) / 1000
	}
	return float64(v)
}

// LaunchLatency observes, for every pod, the time from its creation until
// the NodeClaim it was nominated to reported Launched (the instance exists).
var LaunchLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "flotilla_pods_pending_to_launch_duration_seconds",
	Help:    "Time from a pending pod's creation until the NodeClaim launched for it reported Launched. Labeled by nodepool.",
	Buckets: telemetry.DurationBuckets,
}, []string{"nodepool"})

// Register registers the collector of src and LaunchLatency with reg.
func Register(reg prometheus.Registerer, src Source) {
	reg.MustRegister(NewCollector(src), LaunchLatency)
}

// LaunchSource is what WatchLaunches reads.
type LaunchSource interface {
	Source
	// Changes counts the changes seen so far; Provisioning can only
	// answer differently once it moved.
	Changes() uint64
}

// WatchLaunches polls src every interval and observes LaunchLatency for the
// pods of each NodeClaim that became Launched since the last look. Pods are
// remembered while they wait, nominated to a NodeClaim not yet launched, so
// that they are measured even when they are bound before the next look; the
// condition's transition time is the launch time, so the interval only
// delays the observation. A look is skipped while nothing changed, so an
// idle cluster costs nothing. It returns when ctx is done.
func WatchLaunches(ctx context.Context, src LaunchSource, interval time.Duration) {
	l := newLaunches()
	first := true
	var seen uint64
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n := src.Changes(); src.Synced() && (first || n != seen) {
			// Read the count first: a change that lands while
			// Provisioning runs moves it again, so the next look catches
			// it.
			seen = n
			l.observe(src.Provisioning(), first)
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// launches is what WatchLaunches remembers between looks.
type launches struct {
	// seen are the launched NodeClaims already handled.
	seen map[string]bool
	// waiting are the creation times of the pods nominated to each
	// NodeClaim not launched yet, by pod.
	waiting map[string]map[string]time.Time
}

func newLaunches() *launches {
	return &launches{seen: map[string]bool{}, waiting: map[string]map[string]time.Time{}}
}

// observe records the launches of snap not seen before. On the first look
// NodeClaims already launched are only remembered: their pods' wait was
// measured (or not) by an earlier process.
func (l *launches) observe(snap *clusterv1.Snapshot, first bool) {
	for _, p := range snap.GetPods() {
		c := p.GetNominatedNodeClaim()
		if c == "" || p.GetNodeName() != "" || p.GetCreated() == nil || l.seen[c] {
			continue
		}
		if l.waiting[c] == nil {
			l.waiting[c] = map[string]time.Time{}
		}
		l.waiting[c][p.GetNamespace()+"/"+p.GetName()] = p.GetCreated().AsTime()
	}
	current := map[string]bool{}
	for _, nc := range snap.GetNodeClaims() {
		current[nc.GetName()] = true
		launched := launchTime(nc)
		if launched.IsZero() || l.seen[nc.GetName()] {
			continue
		}
		l.seen[nc.GetName()] = true
		pods := l.waiting[nc.GetName()]
		delete(l.waiting, nc.GetName())
		if first {
			continue
		}
		for _, created := range pods {
			if !created.After(launched) {
				LaunchLatency.WithLabelValues(nc.GetNodePool()).Observe(launched.Sub(created).Seconds())
			}
		}
	}
	for name := range l.seen {
		if !current[name] {
			delete(l.seen, name)
		}
	}
	for name := range l.waiting {
		// Pods wait for a NodeClaim that is planned but not created yet;
		// one the snapshot never showed is forgotten after it vanishes
		// from the pods' nominations too.
		if !current[name] && !nominated(snap, name) {
			delete(l.waiting, name)
		}
	}
}

func nominated(snap *clusterv1.Snapshot, claim string) bool {
	for _, p := range snap.GetPods() {
		if p.GetNominatedNodeClaim() == claim {
			return true
		}
	}
	return false
}

// launchTime is when a NodeClaim's Launched condition turned True, zero if
// it has not.
func launchTime(nc *clusterv1.NodeClaim) time.Time {
	for _, c := range nc.GetConditions() {
		if c.GetType() == "Launched" && c.GetStatus() == "True" && c.GetLastTransition() != nil {
			return c.GetLastTransition().AsTime()
		}
	}
	return time.Time{}
}
