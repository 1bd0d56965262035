// Package server is the planner's gRPC edge: it turns requests into the
// solver's model, runs the solver, and turns plans and errors back into
// protos and gRPC status codes. It is the only planner package that imports
// gRPC or generated code.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	"github.com/flotilla-dev/flotilla/services/planner/internal/consolidation"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// CatalogFunc returns the instance catalogue for a region; the planner uses
// it when a snapshot carries none.
type CatalogFunc func(region string) ([]*clusterv1.InstanceType, error)

// Planner implements flotilla.planner.v1.Planner.
type Planner struct {
	plannerv1.UnimplementedPlannerServer
	catalog       CatalogFunc
	defaultRegion string
	logger        *slog.Logger
	tracer        trace.Tracer
	disruption    consolidation.Options
}

// Option configures a Planner.
type Option func(*Planner)

// WithDisruption sets the disruption solver's options (spot-to-spot
// consolidation, savings threshold, local storage); the default is
// consolidation's defaults.
func WithDisruption(o consolidation.Options) Option {
	return func(p *Planner) { p.disruption = o }
}

// New returns a planner that falls back to catalog for snapshots without
// instance types, in defaultRegion when the snapshot names none.
func New(logger *slog.Logger, catalog CatalogFunc, defaultRegion string, opts ...Option) *Planner {
	p := &Planner{
		catalog:       catalog,
		defaultRegion: defaultRegion,
		logger:        logger,
		tracer:        otel.Tracer("github.com/flotilla-dev/flotilla/services/planner"),
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Plan answers a what-if question for the snapshot in the request.
func (p *Planner) Plan(ctx context.Context, req *plannerv1.PlanRequest) (*plannerv1.PlanResponse, error) {
	start := time.Now()
	plan, _, err := p.Solve(ctx, req.GetSnapshot(), req.GetDisruption())
	observe("plan", req.GetSnapshot(), plan, err, time.Since(start))
	if err != nil {
		return nil, err
	}
	return &plannerv1.PlanResponse{
		Id:                plan.GetId(),
		NodeClaims:        plan.GetNodeClaims(),
		ExistingNodes:     plan.GetExistingNodes(),
		Unschedulable:     plan.GetUnschedulable(),
		TotalPricePerHour: plan.GetTotalPricePerHour(),
		Disruptions:       plan.GetDisruptions(),
		Rejections:        plan.GetRejections(),
	}, nil
}

// Solve plans for one snapshot; recheck is when the answer would change
// without any change to the cluster (zero: never). Errors are gRPC status
// errors: InvalidArgument naming the field for bad input.
func (p *Planner) Solve(ctx context.Context, snap *clusterv1.Snapshot, disruption bool) (_ *clusterv1.Plan, recheck time.Time, _ error) {
	ctx, span := p.tracer.Start(ctx, "solve")
	defer span.End()
	snap, err := p.withCatalog(snap)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, time.Time{}, err
	}
	span.SetAttributes(
		attribute.Int("flotilla.pods", len(snap.GetPods())),
		attribute.Int("flotilla.nodes", len(snap.GetNodes())),
		attribute.Int("flotilla.node_claims", len(snap.GetNodeClaims())),
		attribute.Int("flotilla.instance_types", len(snap.GetInstanceTypes())),
	)
	plan, recheck, err := solve(ctx, snap, disruption, p.disruption)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, time.Time{}, toStatus(err)
	}
	offerings := make([]string, 0, len(plan.GetNodeClaims()))
	for _, nc := range plan.GetNodeClaims() {
		offerings = append(offerings, fmt.Sprintf("%s/%s/%s", nc.GetInstanceType(), nc.GetZone(), nc.GetCapacityType()))
	}
	span.SetAttributes(
		attribute.Int("flotilla.plan.new_node_claims", len(plan.GetNodeClaims())),
		attribute.Int("flotilla.plan.unschedulable", len(plan.GetUnschedulable())),
		attribute.Int("flotilla.plan.disruptions", len(plan.GetDisruptions())),
		attribute.Float64("flotilla.plan.price_per_hour", plan.GetTotalPricePerHour()),
		attribute.StringSlice("flotilla.plan.offerings", offerings),
	)
	return plan, recheck, nil
}

// withCatalog returns snap with the embedded catalogue filled in when it has
// no instance types. snap itself is not modified.
func (p *Planner) withCatalog(snap *clusterv1.Snapshot) (*clusterv1.Snapshot, error) {
	if len(snap.GetInstanceTypes()) > 0 || p.catalog == nil {
		return snap, nil
	}
	region := snap.GetRegion()
	if region == "" {
		region = p.defaultRegion
	}
	types, err := p.catalog(region)
	if err != nil {
		return nil, status.Error(grpccodes.InvalidArgument, fmt.Sprintf("snapshot.region: %v", err))
	}
	out := proto.CloneOf(snap)
	out.Region = region
	out.InstanceTypes = types
	return out, nil
}

// toStatus maps solver and decoding errors to gRPC status errors.
func toStatus(err error) error {
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		st := status.New(grpccodes.InvalidArgument, fe.Error())
		if withDetails, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: fe.Field, Description: fe.Description},
		}}); derr == nil {
			st = withDetails
		}
		return st.Err()
	case errors.Is(err, context.Canceled):
		return status.Error(grpccodes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(grpccodes.DeadlineExceeded, err.Error())
	default:
		return status.Error(grpccodes.Internal, err.Error())
	}
}
