// Package server serves flotilla.actuator.v1.Actuator: Execute carries a
// plan out through the NodeClaim controller, ListInstanceTypes serves the
// catalogue. It is the only actuator package that speaks gRPC; errors become
// status codes here.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/disruption"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclaim"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclass"
)

// NodeClaims creates NodeClaims.
type NodeClaims interface {
	Create(ctx context.Context, plan *clusterv1.NodeClaimPlan) (nodeclaim.Outcome, string, error)
}

// Disruptions carries out disruption plans.
type Disruptions interface {
	Execute(ctx context.Context, d *clusterv1.DisruptionPlan) (disruption.Result, error)
}

// Catalog serves instance types for a node class.
type Catalog interface {
	InstanceTypes(ctx context.Context, nodeClass string) ([]*clusterv1.InstanceType, error)
}

// Server implements actuatorv1.ActuatorServer.
type Server struct {
	actuatorv1.UnimplementedActuatorServer
	claims      NodeClaims
	disruptions Disruptions
	catalog     Catalog
	region      string
	log         *slog.Logger
}

// New returns a Server.
func New(claims NodeClaims, disruptions Disruptions, catalog Catalog, region string, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{claims: claims, disruptions: disruptions, catalog: catalog, region: region, log: logger}
}

// Execute carries out a plan. It is idempotent: NodeClaims that exist are
// reported OUTCOME_EXISTS; a disruption already under way is moved along,
// never started twice (see package disruption: replacements first, the old
// nodes drained only once every replacement is initialized). A disruption
// refused or called off is OUTCOME_FAILED with the reason.
func (s *Server) Execute(ctx context.Context, req *actuatorv1.ExecuteRequest) (*actuatorv1.ExecuteResponse, error) {
	plan := req.GetPlan()
	resp := &actuatorv1.ExecuteResponse{}
	for _, p := range plan.GetNodeClaims() {
		r, err := s.create(ctx, p)
		if err != nil {
			return nil, err
		}
		resp.Results = append(resp.Results, r)
	}
	for _, d := range plan.GetDisruptions() {
		r, err := s.disrupt(ctx, d)
		if err != nil {
			return nil, err
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

func (s *Server) create(ctx context.Context, p *clusterv1.NodeClaimPlan) (*actuatorv1.NodeClaimResult, error) {
	outcome, msg, err := s.claims.Create(ctx, p)
	if err != nil {
		return nil, toStatus(fmt.Errorf("create nodeclaim %s: %w", p.GetName(), err))
	}
	return &actuatorv1.NodeClaimResult{Name: p.GetName(), Outcome: toOutcome(outcome), Message: msg, Pods: p.GetPods()}, nil
}

func (s *Server) disrupt(ctx context.Context, d *clusterv1.DisruptionPlan) (*actuatorv1.NodeClaimResult, error) {
	r, err := s.disruptions.Execute(ctx, d)
	if err != nil {
		return nil, toStatus(fmt.Errorf("disruption %s: %w", d.GetId(), err))
	}
	res := &actuatorv1.NodeClaimResult{Name: d.GetId(), Outcome: actuatorv1.Outcome_OUTCOME_DISRUPTING, Message: r.Message}
	if !r.Disrupting {
		res.Outcome = actuatorv1.Outcome_OUTCOME_FAILED
		s.log.InfoContext(ctx, "disruption_refused", "id", d.GetId(), "reason", d.GetReason().String(), "why", r.Message)
	}
	return res, nil
}

// ListInstanceTypes returns the catalogue for a node class.
func (s *Server) ListInstanceTypes(ctx context.Context, req *actuatorv1.ListInstanceTypesRequest) (*actuatorv1.ListInstanceTypesResponse, error) {
	types, err := s.catalog.InstanceTypes(ctx, req.GetNodeClass())
	if err != nil {
		return nil, toStatus(err)
	}
	return &actuatorv1.ListInstanceTypesResponse{InstanceTypes: types, Region: s.region}, nil
}

func toOutcome(o nodeclaim.Outcome) actuatorv1.Outcome {
	switch o {
	case nodeclaim.Created:
		return actuatorv1.Outcome_OUTCOME_CREATED
	case nodeclaim.Exists:
		return actuatorv1.Outcome_OUTCOME_EXISTS
	case nodeclaim.Failed:
		return actuatorv1.Outcome_OUTCOME_FAILED
	}
	return actuatorv1.Outcome_OUTCOME_UNSPECIFIED
}

// toStatus maps an error to a gRPC status.
func toStatus(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, nodeclass.ErrNotResolved):
		return status.Error(codes.FailedPrecondition, err.Error())
	case apierrors.IsNotFound(err):
		return status.Error(codes.NotFound, err.Error())
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return status.Error(codes.PermissionDenied, err.Error())
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}
