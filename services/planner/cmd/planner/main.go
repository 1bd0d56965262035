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
	"github.com/flotilla-dev/flotilla/services/planner/internal/server"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
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

	srv, err := rpc.NewServer(rpc.ServerOptions{Logger: logger})
	if err != nil {
		logger.Error("server_setup_failed", "error", err.Error())
		return 1
	}
	plannerv1.RegisterPlannerServer(srv, server.New(logger, catalog.Region, *region))
	srv.Health.SetServingStatus(plannerv1.Planner_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		logger.Error("listen_failed", "addr", *addr, "error", err.Error())
		return 1
	}
	logger.Info("planner_serving", "addr", lis.Addr().String(), "version", config.FullVersion())
	if err := srv.Serve(ctx, lis, *grace); err != nil {
		logger.Error("serve_failed", "error", err.Error())
		return 1
	}
	logger.Info("planner_stopped")
	return 0
}
