package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// Health service names every Flotilla service answers besides its own
// service name and the overall "" status.
const (
	// LivenessService is SERVING for as long as the process serves at all:
	// the liveness probe.
	LivenessService = "liveness"
	// ReadinessService is SERVING once this replica can do its part — lead,
	// or stand by to take over — and NOT_SERVING while it starts or stops:
	// the readiness probe. It does not follow leadership, so a standby
	// replica counts as available for rollouts and disruption budgets.
	ReadinessService = "readiness"
)

// SetStatus sets the health status of the named services.
func (s *Server) SetStatus(serving bool, services ...string) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, name := range services {
		s.Health.SetServingStatus(name, st)
	}
}

// ServeHealth serves only grpc.health.v1, in plaintext, on lis until ctx is
// done. It shares the statuses of the main server. Kubernetes' gRPC probes
// speak no TLS, so a server that requires mutual TLS answers its probes
// here; nothing but health (and reflection of it) is reachable on this
// listener.
func (s *Server) ServeHealth(ctx context.Context, lis net.Listener) error {
	hs := grpc.NewServer(grpc.MaxRecvMsgSize(4 << 10))
	healthpb.RegisterHealthServer(hs, s.Health)
	reflection.Register(hs) // so grpcurl can call Check without the proto files
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve health %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	hs.Stop()
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve health %s: %w", lis.Addr(), err)
	}
	return nil
}
