package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/credentials"

	"github.com/flotilla-dev/flotilla/services/internal/rpc"
	"github.com/flotilla-dev/flotilla/services/internal/telemetry"
)

// endpoints are the watcher's mutual TLS and its endpoints besides gRPC.
type endpoints struct {
	tls                     rpc.TLSFiles
	healthAddr, metricsAddr string
}

func (e *endpoints) register(fs *flag.FlagSet) {
	e.tls.RegisterFlags(fs)
	fs.StringVar(&e.healthAddr, "health-addr", "", "plaintext address serving only grpc.health.v1 (for Kubernetes probes when --tls-* is set); empty: none")
	fs.StringVar(&e.metricsAddr, "metrics-addr", "127.0.0.1:9103", "address serving Prometheus metrics at /metrics; empty: none")
}

// creds returns the server's and the clients' mutual-TLS credentials, both
// nil without --tls-*.
func (e *endpoints) creds() (server, client credentials.TransportCredentials, err error) {
	if err := e.tls.Validate(); err != nil {
		return nil, nil, err
	}
	if !e.tls.Enabled() {
		return nil, nil, nil
	}
	if server, err = e.tls.ServerCredentials(); err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	if client, err = e.tls.ClientCredentials(); err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	return server, client, nil
}

// serve starts the plaintext health endpoint and the metrics endpoint in g.
func (e *endpoints) serve(ctx context.Context, g *errgroup.Group, srv *rpc.Server, reg *prometheus.Registry, logger *slog.Logger) error {
	if e.healthAddr != "" {
		lis, err := net.Listen("tcp", e.healthAddr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", e.healthAddr, err)
		}
		g.Go(func() error { return srv.ServeHealth(ctx, lis) })
	}
	if e.metricsAddr != "" {
		lis, err := net.Listen("tcp", e.metricsAddr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", e.metricsAddr, err)
		}
		g.Go(func() error { return telemetry.ServeMetrics(ctx, lis, reg, logger) })
	}
	return nil
}
