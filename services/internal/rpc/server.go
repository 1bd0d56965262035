// Package rpc builds the gRPC servers and clients of Flotilla's services with
// the same defaults everywhere: slog request logging, panic recovery,
// protovalidate request validation (InvalidArgument naming the field),
// InvalidArgument for request bytes that do not decode,
// OpenTelemetry stats handlers, grpc.health.v1, server reflection, message
// size limits and graceful stop.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"buf.build/go/protovalidate"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	grpcvalidate "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/protovalidate"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// DefaultMaxMessageBytes bounds a single request or response. A snapshot of
// 100,000 pods is well under it; anything larger is refused with
// ResourceExhausted before it is decoded.
const DefaultMaxMessageBytes = 256 << 20

// ServerOptions configure NewServer.
type ServerOptions struct {
	// Logger receives one record per call (and per panic).
	Logger *slog.Logger
	// Creds secures the server; nil serves plaintext.
	Creds credentials.TransportCredentials
	// MaxMessageBytes bounds requests and responses; 0 means
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
}

// Server is a gRPC server with its health service.
type Server struct {
	*grpc.Server
	// Health answers grpc.health.v1; services flip their status on it.
	Health *health.Server
	logger *slog.Logger
}

// NewServer returns a server with Flotilla's interceptors, health service
// and reflection registered. Register the service implementations on it and
// call Serve.
func NewServer(opts ServerOptions) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	validator, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("request validator: %w", err)
	}
	maxBytes := opts.MaxMessageBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	recoverOpts := []recovery.Option{recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "panic_recovered", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})}
	serverOpts := []grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler()),
		grpc.ChainUnaryInterceptor(
			logging.UnaryServerInterceptor(slogAdapter(logger), logOpts...),
			recovery.UnaryServerInterceptor(recoverOpts...),
			undecodableUnary,
			grpcvalidate.UnaryServerInterceptor(validator),
		),
		grpc.ChainStreamInterceptor(
			logging.StreamServerInterceptor(slogAdapter(logger), logOpts...),
			recovery.StreamServerInterceptor(recoverOpts...),
			undecodableStream,
			grpcvalidate.StreamServerInterceptor(validator),
		),
		grpc.ForceServerCodecV2(requestCodec{newMessageCodec()}),
		grpc.MaxRecvMsgSize(maxBytes),
		grpc.MaxSendMsgSize(maxBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if opts.Creds != nil {
		serverOpts = append(serverOpts, grpc.Creds(opts.Creds))
	}
	s := &Server{Server: grpc.NewServer(serverOpts...), Health: health.NewServer(), logger: logger}
	healthpb.RegisterHealthServer(s.Server, s.Health)
	reflection.Register(s.Server)
	return s, nil
}

// Serve serves on lis until ctx is done, then stops gracefully: in-flight
// calls get up to grace to finish before the server closes them. The health
// service reports NOT_SERVING from the moment shutdown starts.
func (s *Server) Serve(ctx context.Context, lis net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Server.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	s.Health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.Server.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		s.logger.Warn("graceful_stop_timeout", "grace", grace.String())
		s.Server.Stop()
		<-done
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve %s: %w", lis.Addr(), err)
	}
	return nil
}

// slogAdapter lets the logging interceptor write through slog.
func slogAdapter(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}
