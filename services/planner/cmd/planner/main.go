// Command planner is Flotilla's stateless solver. `planner serve` (the
// default) serves flotilla.planner.v1.Planner over gRPC; `planner plan`
// answers a what-if question from files and prints the plan.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	"github.com/flotilla-dev/flotilla/services/internal/catalog"
	"github.com/flotilla-dev/flotilla/services/internal/config"
	"github.com/flotilla-dev/flotilla/services/internal/rpc"
	"github.com/flotilla-dev/flotilla/services/internal/telemetry"
	"github.com/flotilla-dev/flotilla/services/planner/internal/consolidation"
	"github.com/flotilla-dev/flotilla/services/planner/internal/server"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/credentials"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the process exit code: 0 ok, 1 runtime failure, 2 bad usage or
// bad input.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "plan" {
		return runPlan(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	return runServe(args, stdout, stderr)
}

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("planner serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("listen", "127.0.0.1:7101", "gRPC listen address")
	region := fs.String("region", "us-east-1", "region of the embedded catalogue used when a snapshot carries none")
	logFormat := fs.String("log-format", "json", "log format: json or text")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	grace := fs.Duration("shutdown-grace", 10*time.Second, "time in-flight calls get to finish on SIGTERM")
	spotToSpot := fs.Bool("spot-to-spot-consolidation", false, "let consolidation replace spot nodes with cheaper spot nodes (needs enough cheaper spot instance types)")
	minSavingsPct := fs.Float64("consolidation-min-savings-percent", 100*consolidation.DefaultMinSavingsFraction, "least share of the disrupted nodes' price a consolidation must save, in percent")
	minSavings := fs.Float64("consolidation-min-savings", consolidation.DefaultMinSavingsPerHour, "least a consolidation must save, in $/h")
	localStorage := fs.Bool("consolidate-local-storage", false, "let disruptions evict pods with emptyDir or hostPath volumes (their data is lost)")
	healthAddr := fs.String("health-addr", "", "plaintext address serving only grpc.health.v1 (for Kubernetes probes when --tls-* is set); empty: none")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9101", "address serving Prometheus metrics at /metrics; empty: none")
	var tlsFiles rpc.TLSFiles
	tlsFiles.RegisterFlags(fs)
	if err := config.Parse(fs, "planner", args, stdout); err != nil {
		if errors.Is(err, config.ErrVersion) {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	logger, err := telemetry.NewLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if err := tlsFiles.Validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	shutdownTracing, err := telemetry.SetupTracing(ctx, "planner", config.Version)
	if err != nil {
		logger.Error("tracing_setup_failed", "error", err.Error())
		return 1
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(sctx); err != nil {
			logger.Warn("tracing_shutdown_failed", "error", err.Error())
		}
	}()

	var creds credentials.TransportCredentials
	if tlsFiles.Enabled() {
		if creds, err = tlsFiles.ServerCredentials(); err != nil {
			logger.Error("tls_setup_failed", "error", err.Error())
			return 1
		}
	}
	srv, err := rpc.NewServer(rpc.ServerOptions{Logger: logger, Creds: creds})
	if err != nil {
		logger.Error("server_setup_failed", "error", err.Error())
		return 1
	}
	disruption := consolidation.Options{
		SpotToSpot:         *spotToSpot,
		MinSavingsFraction: orNegative(*minSavingsPct / 100),
		MinSavingsPerHour:  orNegative(*minSavings),
		AllowLocalStorage:  *localStorage,
	}
	plannerv1.RegisterPlannerServer(srv, server.New(logger, catalog.Region, *region, server.WithDisruption(disruption)))
	// Stateless: every replica serves from the start.
	srv.SetStatus(true, plannerv1.Planner_ServiceDesc.ServiceName, rpc.LivenessService, rpc.ReadinessService)
	reg := telemetry.NewRegistry("planner", config.Version)
	server.RegisterMetrics(reg)
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		logger.Error("listen_failed", "addr", *addr, "error", err.Error())
		return 1
	}
	logger.Info("planner_serving", "addr", lis.Addr().String(), "version", config.FullVersion(), "mtls", tlsFiles.Enabled())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, lis, *grace) })
	if *healthAddr != "" {
		hl, err := net.Listen("tcp", *healthAddr)
		if err != nil {
			logger.Error("listen_failed", "addr", *healthAddr, "error", err.Error())
			return 1
		}
		g.Go(func() error { return srv.ServeHealth(gctx, hl) })
	}
	if *metricsAddr != "" {
		ml, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			logger.Error("listen_failed", "addr", *metricsAddr, "error", err.Error())
			return 1
		}
		g.Go(func() error { return telemetry.ServeMetrics(gctx, ml, reg, logger) })
	}
	if err := g.Wait(); err != nil {
		logger.Error("serve_failed", "error", err.Error())
		return 1
	}
	logger.Info("planner_stopped")
	return 0
}

// orNegative maps an explicit zero to the consolidation options' "none"
// (a negative value), since their zero value means the default.
func orNegative(v float64) float64 {
	if v == 0 {
		return -1
	}
	return v
}
