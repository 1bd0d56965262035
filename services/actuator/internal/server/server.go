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
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	clusterv1 "github.com/flotilla-dev/flotilla/gen/flotilla/cluster/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclaim"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclass"
)

// NodeClaims creates, checks and deletes NodeClaims.
type NodeClaims interface {
	Create(ctx context.Context, plan *clusterv1.NodeClaimPlan) (nodeclaim.Outcome, string, error)
	Ready(ctx context.Context, name string) (bool, string, error)
	Delete(ctx context.Context, name string) error
}

// Catalog serves instance types for a node class.
type Catalog interface {
	InstanceTypes(ctx context.Context, nodeClass string) ([]*clusterv1.InstanceType, error)
}

// Server implements actuatorv1.ActuatorServer.
type Server struct {
	actuatorv1.UnimplementedActuatorServer
	claims  NodeClaims
	catalog Catalog
	region  string
	log     *slog.Logger
}

// New returns a Server.
func New(claims NodeClaims, catalog Catalog, region string, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{claims: claims, catalog: catalog, region: region, log: logger}
}

// Execute carries out a plan. It is idempotent: NodeClaims that exist are
// reported OUTCOME_EXISTS, deletions already under way are not repeated.
// Disruptions that replace nodes launch the replacements first and delete
// the old NodeClaims only once every replacement is initialized (a repeated
// plan moves them along).
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
	res := &actuatorv1.NodeClaimResult{Name: d.GetId(), Outcome: actuatorv1.Outcome_OUTCOME_DISRUPTING}
	var waiting []string
	for _, r := range d.GetReplacements() {
		outcome, msg, err := s.claims.Create(ctx, r)
		if err != nil {
			return nil, toStatus(fmt.Errorf("create replacement %s: %w", r.GetName(), err))
		}
		if outcome == nodeclaim.Failed {
			res.Outcome = actuatorv1.Outcome_OUTCOME_FAILED
			res.Message = fmt.Sprintf("replacement %s: %s; nothing disrupted", r.GetName(), msg)
			return res, nil
		}
		ready, why, err := s.claims.Ready(ctx, r.GetName())
		if err != nil {
			return nil, toStatus(err)
		}
		if !ready {
			waiting = append(waiting, why)
		}
	}
	if len(waiting) > 0 {
		res.Message = "waiting for replacements before draining: " + strings.Join(waiting, "; ")
		return res, nil
	}
	for _, name := range d.GetNodeClaims() {
		if err := s.claims.Delete(ctx, name); err != nil {
			return nil, toStatus(fmt.Errorf("delete nodeclaim %s: %w", name, err))
		}
	}
	res.Message = fmt.Sprintf("draining and terminating %d nodes (%s)", len(d.GetNodeClaims()), strings.Join(d.GetNodeClaims(), ", "))
	s.log.InfoContext(ctx, "disruption_started", "id", d.GetId(), "reason", d.GetReason().String(), "nodeclaims", d.GetNodeClaims())
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
