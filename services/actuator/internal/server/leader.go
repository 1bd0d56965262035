package server

import (
	"context"

	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// leaderOnly refuses Execute on a replica that does not lead.
type leaderOnly struct {
	actuatorv1.ActuatorServer
	leading func() bool
}

// LeaderOnly wraps an Actuator so that Execute answers Unavailable unless
// leading() holds. A standby replica is never chosen by the watcher (its
// health status for the Actuator service is NOT_SERVING) but may be reached
// by hand or in the moment of a failover; Unavailable tells the caller to
// try the leader, and nothing is written by two replicas at once.
// ListInstanceTypes (read-only) is answered by every replica.
func LeaderOnly(inner actuatorv1.ActuatorServer, leading func() bool) actuatorv1.ActuatorServer {
	return &leaderOnly{ActuatorServer: inner, leading: leading}
}

// Execute implements actuatorv1.ActuatorServer.
func (l *leaderOnly) Execute(ctx context.Context, req *actuatorv1.ExecuteRequest) (*actuatorv1.ExecuteResponse, error) {
	if !l.leading() {
		return nil, status.Error(codes.Unavailable, "this actuator replica is a standby; the leader serves Execute")
	}
	return l.ActuatorServer.Execute(ctx, req)
}
