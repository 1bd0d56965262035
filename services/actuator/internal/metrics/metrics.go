// Package metrics holds the actuator's Prometheus metrics — NodeClaims
// created, terminated and disrupted, cloud API calls, unavailable offerings
// — and the AWS SDK middleware that times every AWS call (and, inside a
// traced request, gives it a span). Names follow Karpenter's where Karpenter
// measures the same thing.
package metrics

import (
	"context"
	"errors"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/flotilla-dev/flotilla/services/actuator/internal/offering"
	"github.com/flotilla-dev/flotilla/services/internal/telemetry"
)

// Reasons a NodeClaim is created.
const (
	ReasonProvisioning = "provisioning"
	ReasonReplacement  = "replacement"
)

var (
	// NodeClaimsCreated counts NodeClaims created, by reason and NodePool.
	NodeClaimsCreated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "karpenter_nodeclaims_created_total",
		Help: "Number of nodeclaims created in total. Labeled by reason the nodeclaim was created (provisioning, replacement) and the owning nodepool.",
	}, []string{"reason", "nodepool"})
	// NodeClaimsTerminated counts NodeClaims whose instance is gone and
	// whose finalizer was removed, by NodePool.
	NodeClaimsTerminated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "karpenter_nodeclaims_terminated_total",
		Help: "Number of nodeclaims terminated in total. Labeled by the owning nodepool.",
	}, []string{"nodepool"})
	// NodeClaimsDisrupted counts NodeClaims terminated by a disruption, by
	// its reason and NodePool.
	NodeClaimsDisrupted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "karpenter_nodeclaims_disrupted_total",
		Help: "Number of nodeclaims disrupted in total. Labeled by reason the nodeclaim was disrupted and the owning nodepool.",
	}, []string{"reason", "nodepool"})
	// CloudDuration times AWS API calls by service and operation.
	CloudDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "karpenter_cloudprovider_duration_seconds",
		Help:    "Duration of cloud provider API calls. Labeled by provider, service and method (the API operation).",
		Buckets: telemetry.DurationBuckets,
	}, []string{"provider", "service", "method"})
	// CloudErrors counts failed AWS API calls by service, operation and
	// error code.
	CloudErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "karpenter_cloudprovider_errors_total",
		Help: "Total number of errors returned from cloud provider API calls. Labeled by provider, service, method and error code.",
	}, []string{"provider", "service", "method", "error"})
)

// Register registers the actuator's metrics with reg; unavailable, when not
// nil, is reported as flotilla_offerings_unavailable{capacity_type}.
func Register(reg prometheus.Registerer, unavailable *offering.Unavailable) {
	reg.MustRegister(NodeClaimsCreated, NodeClaimsTerminated, NodeClaimsDisrupted, CloudDuration, CloudErrors)
	if unavailable != nil {
		reg.MustRegister(&unavailableCollector{u: unavailable})
	}
}

var unavailableDesc = prometheus.NewDesc("flotilla_offerings_unavailable",
	"Offerings (instance type, zone, capacity type) currently kept out of launches after a capacity error or interruption. Labeled by capacity type.",
	[]string{"capacity_type"}, nil)

// unavailableCollector counts the unavailable offerings at scrape time.
type unavailableCollector struct{ u *offering.Unavailable }

func (c *unavailableCollector) Describe(ch chan<- *prometheus.Desc) { ch <- unavailableDesc }

func (c *unavailableCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{"spot": 0, "on-demand": 0}
	for _, k := range c.u.Keys() {
		counts[k.CapacityType]++
	}
	for ct, n := range counts {
		ch <- prometheus.MustNewConstMetric(unavailableDesc, prometheus.GaugeValue, float64(n), ct)
	}
}

var tracer = otel.Tracer("github.com/flotilla-dev/flotilla/services/actuator/internal/metrics")

// AWSMiddleware is an AWS SDK APIOptions entry: every call is timed into
// CloudDuration and, when it fails, counted in CloudErrors; a call made
// inside a traced request (a launch continuing a batch's trace) gets a
// client span named <Service>.<Operation>.
func AWSMiddleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("FlotillaTelemetry",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			service, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
			var span trace.Span
			if trace.SpanContextFromContext(ctx).IsValid() {
				ctx, span = tracer.Start(ctx, service+"."+op, trace.WithSpanKind(trace.SpanKindClient),
					trace.WithAttributes(attribute.String("rpc.system", "aws-api"), attribute.String("rpc.service", service), attribute.String("rpc.method", op)))
				defer span.End()
			}
			start := time.Now()
			out, md, err := next.HandleInitialize(ctx, in)
			CloudDuration.WithLabelValues("aws", service, op).Observe(time.Since(start).Seconds())
			if err != nil {
				code := ErrorCode(err)
				CloudErrors.WithLabelValues("aws", service, op, code).Inc()
				if span != nil {
					span.SetStatus(codes.Error, code)
					span.RecordError(err)
				}
			}
			return out, md, err
		}), middleware.After)
}

// ErrorCode is the AWS error code of err, or a coarse class when it has
// none (canceled, deadline, other).
func ErrorCode(err error) string {
	var ae smithy.APIError
	switch {
	case errors.As(err, &ae):
		return ae.ErrorCode()
	case errors.Is(err, context.Canceled):
		return "Canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "DeadlineExceeded"
	}
	return "Other"
}
