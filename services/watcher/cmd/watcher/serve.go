package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/credentials"

	"github.com/flotilla-dev/flotilla/services/internal/rpc"
	"github.com/flotilla-dev/flotilla/services/internal/telemetry"
)

// endpoints are the watcher's mutual TLS and its endpoints besides gRPC.
type endpoints struct {
	tls                                rpc.TLSFiles
	healthAddr, metricsAddr, pprofAddr string
}

func (e *endpoints) register(fs *flag.FlagSet) {
	e.tls.RegisterFlags(fs)
	fs.StringVar(&e.healthAddr, "health-addr", "", "plaintext address serving only grpc.health.v1 (for Kubernetes probes when --tls-* is set); empty: none")
	fs.StringVar(&e.metricsAddr, "metrics-addr", "127.0.0.1:9103", "address serving Prometheus metrics at /metrics; empty: none")
	fs.StringVar(&e.pprofAddr, "pprof-addr", "", "address serving Go profiles at /debug/pprof/ (for finding where CPU and memory go); empty: none")
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
	if e.pprofAddr != "" {
		lis, err := net.Listen("tcp", e.pprofAddr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", e.pprofAddr, err)
		}
		g.Go(func() error { return serveProfiles(ctx, lis) })
	}
	return nil
}

// serveProfiles serves net/http/pprof on lis until ctx ends.
func serveProfiles(ctx context.Context, lis net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve profiles: %w", err)
	}
	return nil
}
