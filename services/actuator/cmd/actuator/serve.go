package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/credentials"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/services/actuator/internal/leader"
	"github.com/flotilla-dev/flotilla/services/internal/rpc"
	"github.com/flotilla-dev/flotilla/services/internal/telemetry"
)

// serving are the actuator's endpoints besides gRPC, its mutual TLS and its
// leader election.
type serving struct {
	tls                       rpc.TLSFiles
	healthAddr, metricsAddr   string
	leaderElect               bool
	leaseNamespace, leaseName string
	leaseDuration             time.Duration

	leading atomic.Bool
}

func (s *serving) register(fs *flag.FlagSet) {
	s.tls.RegisterFlags(fs)
	fs.StringVar(&s.healthAddr, "health-addr", "", "plaintext address serving only grpc.health.v1 (for Kubernetes probes when --tls-* is set); empty: none")
	fs.StringVar(&s.metricsAddr, "metrics-addr", "127.0.0.1:9102", "address serving Prometheus metrics at /metrics; empty: none")
	fs.BoolVar(&s.leaderElect, "leader-elect", true, "run the controllers and serve Execute only while holding a Lease (one active replica; the others stand by)")
	fs.StringVar(&s.leaseNamespace, "leader-election-namespace", "", "namespace of the Lease; empty means $POD_NAMESPACE or kube-system")
	fs.StringVar(&s.leaseName, "leader-election-name", "", "name of the Lease; empty means flotilla-actuator[-<cluster-name>]")
	fs.DurationVar(&s.leaseDuration, "leader-election-lease-duration", 10*time.Second, "Lease duration: a standby takes over at most about this long after the leader vanished")
}

// creds are the server's mutual-TLS credentials, nil without --tls-*.
func (s *serving) creds() (credentials.TransportCredentials, error) {
	if err := s.tls.Validate(); err != nil {
		return nil, err
	}
	if !s.tls.Enabled() {
		return nil, nil
	}
	c, err := s.tls.ServerCredentials()
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return c, nil
}

// isLeading reports whether this replica may write (always without
// election).
func (s *serving) isLeading() bool { return !s.leaderElect || s.leading.Load() }

// serve starts the plaintext health endpoint and the metrics endpoint in g.
func (s *serving) serve(ctx context.Context, g *errgroup.Group, srv *rpc.Server, reg *prometheus.Registry, logger *slog.Logger) error {
	if s.healthAddr != "" {
		lis, err := net.Listen("tcp", s.healthAddr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", s.healthAddr, err)
		}
		g.Go(func() error { return srv.ServeHealth(ctx, lis) })
	}
	if s.metricsAddr != "" {
		lis, err := net.Listen("tcp", s.metricsAddr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", s.metricsAddr, err)
		}
		g.Go(func() error { return telemetry.ServeMetrics(ctx, lis, reg, logger) })
	}
	return nil
}

// elect blocks until this replica leads (at once without --leader-elect).
// Meanwhile the replica is a ready standby. Once it leads, losing the lease
// ends g with leader.ErrLost: the process exits rather than risk writing
// next to a new leader.
func (s *serving) elect(ctx context.Context, g *errgroup.Group, kube kubernetes.Interface, clusterName string, srv *rpc.Server, logger *slog.Logger) error {
	srv.SetStatus(true, rpc.LivenessService, rpc.ReadinessService)
	if !s.leaderElect {
		return nil
	}
	ns := s.leaseNamespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		ns = "kube-system"
	}
	name := s.leaseName
	if name == "" {
		name = "flotilla-actuator"
		if clusterName != "" {
			name += "-" + clusterName
		}
	}
	logger.Info("leader_election_waiting", "lease", ns+"/"+name)
	term, err := leader.Elect(ctx, leader.Options{Client: kube, Namespace: ns, Name: name, LeaseDuration: s.leaseDuration, Logger: logger})
	if err != nil {
		return err
	}
	s.leading.Store(true)
	g.Go(func() error {
		err := term.Wait()
		s.leading.Store(false)
		return err
	})
	return nil
}
