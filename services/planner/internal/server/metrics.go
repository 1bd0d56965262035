package server

import (
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/internal/telemetry"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"
)

// Solver metrics. Names follow Karpenter's where Karpenter has the same
// measurement (karpenter_scheduler_scheduling_duration_seconds is the v1
// name of what v1beta1 called karpenter_provisioner_scheduling_duration_seconds).
var (
	solveDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "karpenter_scheduler_scheduling_duration_seconds",
		Help:    "Duration of one solve (provisioning and disruption) in seconds. Labeled by method: reconcile (the watcher's stream) or plan (what-if).",
		Buckets: telemetry.DurationBuckets,
	}, []string{"method"})
	solvePods = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "karpenter_scheduler_queue_depth",
		Help: "Pending pods the last solve had to place. Labeled by method.",
	}, []string{"method"})
	solveErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flotilla_planner_solve_errors_total",
		Help: "Solves that failed, by method and gRPC code.",
	}, []string{"method", "code"})
	plannedNodeClaims = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flotilla_planner_planned_nodeclaims_total",
		Help: "NodeClaims proposed by plans, by method.",
	}, []string{"method"})
	unschedulablePods = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "flotilla_planner_unschedulable_pods",
		Help: "Pods the last solve could not place, by method.",
	}, []string{"method"})
)

// RegisterMetrics registers the planner's metrics with reg.
func RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(solveDuration, solvePods, solveErrors, plannedNodeClaims, unschedulablePods)
}

// observe records one solve.
func observe(method string, snap *clusterv1.Snapshot, plan *clusterv1.Plan, err error, took time.Duration) {
	solveDuration.WithLabelValues(method).Observe(took.Seconds())
	if err != nil {
		solveErrors.WithLabelValues(method, status.Code(err).String()).Inc()
		return
	}
	pending := 0
	for _, p := range snap.GetPods() {
		if p.GetNodeName() == "" && !p.GetTerminating() {
			pending++
		}
	}
	solvePods.WithLabelValues(method).Set(float64(pending))
	plannedNodeClaims.WithLabelValues(method).Add(float64(len(plan.GetNodeClaims())))
	unschedulablePods.WithLabelValues(method).Set(float64(len(plan.GetUnschedulable())))
}
