// Command watcher is Flotilla's eyes: it watches the cluster with
// informers, streams it to the planner (a snapshot, then batched deltas),
// forwards the plans that come back to the actuator and records the outcome
// as Kubernetes events. One replica streams at a time (a Lease elects it);
// every replica serves flotilla.watcher.v1.Watcher.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	plannerv1 "github.com/flotilla-dev/flotilla/gen/flotilla/planner/v1"
	watcherv1 "github.com/flotilla-dev/flotilla/gen/flotilla/watcher/v1"
	"github.com/flotilla-dev/flotilla/services/internal/config"
	"github.com/flotilla-dev/flotilla/services/internal/rpc"
	"github.com/flotilla-dev/flotilla/services/internal/telemetry"
	"github.com/flotilla-dev/flotilla/services/watcher/internal/actuation"
	"github.com/flotilla-dev/flotilla/services/watcher/internal/cluster"
	"github.com/flotilla-dev/flotilla/services/watcher/internal/leader"
	"github.com/flotilla-dev/flotilla/services/watcher/internal/metrics"
	"github.com/flotilla-dev/flotilla/services/watcher/internal/podwire"
	"github.com/flotilla-dev/flotilla/services/watcher/internal/server"
	"github.com/flotilla-dev/flotilla/services/watcher/internal/stream"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// livenessService is a health service name that is SERVING for as long as
// the process serves at all; the overall ("") and Watcher statuses are
// SERVING only while this replica has a planner stream, so they make a
// readiness probe and this one a liveness probe.
const livenessService = "liveness"

type flags struct {
	kubeconfig      string
	kubeQPS         float64
	kubeGzip        bool
	kubeBurst       int
	plannerAddr     string
	actuatorAddr    string
	listen          string
	idleWindow      time.Duration
	maxBatchWait    time.Duration
	ackTimeout      time.Duration
	clusterName     string
	region          string
	catalogRefresh  time.Duration
	nominationTTL   time.Duration
	leaderElect     bool
	leaseNamespace  string
	leaseName       string
	leaseDuration   time.Duration
	logFormat       string
	logLevel        string
	shutdownGrace   time.Duration
	executeTimeout  time.Duration
	disruptionValid time.Duration
	initialCatalogW time.Duration
	memoryLimit     string
	procs           int
	endpoints       endpoints
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the exit code: 0 ok, 1 runtime failure, 2 bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	var f flags
	fs := flag.NewFlagSet("watcher", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; empty means $KUBECONFIG, ~/.kube/config, or in-cluster")
	fs.Float64Var(&f.kubeQPS, "kube-api-qps", 50, "Kubernetes API requests per second (events, leases)")
	fs.IntVar(&f.kubeBurst, "kube-api-burst", 100, "Kubernetes API request burst")
	fs.BoolVar(&f.kubeGzip, "kube-api-gzip", false, "ask the API server for gzip-compressed responses (worth it only over a slow link: at 100 pod changes a second, decompressing the watch streams is a sixth of the watcher's CPU)")
	fs.StringVar(&f.plannerAddr, "planner-addr", "127.0.0.1:7101", "planner gRPC address")
	fs.StringVar(&f.actuatorAddr, "actuator-addr", "127.0.0.1:7102", "actuator gRPC address")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:7103", "gRPC listen address")
	fs.DurationVar(&f.idleWindow, "idle-window", 100*time.Millisecond, "send a batch once no change arrived for this long")
	fs.DurationVar(&f.maxBatchWait, "max-batch-wait", time.Second, "send a batch at the latest this long after its first change")
	fs.DurationVar(&f.ackTimeout, "ack-timeout", time.Minute, "reconnect with a snapshot when the planner acknowledges nothing for this long")
	fs.StringVar(&f.clusterName, "cluster-name", "", "cluster name (names the leader election Lease)")
	fs.StringVar(&f.region, "region", "us-east-1", "region reported until the actuator's catalogue names one")
	fs.DurationVar(&f.catalogRefresh, "catalog-refresh", 5*time.Minute, "how often the instance catalogue is fetched from the actuator")
	fs.DurationVar(&f.nominationTTL, "nomination-ttl", 2*time.Minute, "how long pods stay nominated to a planned NodeClaim that has not appeared")
	fs.DurationVar(&f.executeTimeout, "execute-timeout", 2*time.Minute, "deadline of one Execute call")
	fs.DurationVar(&f.disruptionValid, "disruption-validation", 5*time.Second,
		"forward a consolidation (empty or under-utilised nodes) only once plans this far apart both contain it; 0 forwards at once")
	fs.BoolVar(&f.leaderElect, "leader-elect", true, "elect one streaming replica with a Lease (disable only for tests and single replicas)")
	fs.StringVar(&f.leaseNamespace, "leader-election-namespace", "", "namespace of the Lease; empty means $POD_NAMESPACE or kube-system")
	fs.StringVar(&f.leaseName, "leader-election-name", "", "name of the Lease; empty means flotilla-watcher[-<cluster-name>]")
	fs.DurationVar(&f.leaseDuration, "leader-election-lease-duration", 10*time.Second, "Lease duration; a new leader takes over at most this long after the old one vanished")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&f.shutdownGrace, "shutdown-grace", 10*time.Second, "time in-flight calls get to finish on SIGTERM")
	fs.IntVar(&f.procs, "procs", defaultProcs,
		"threads running Go code at once (GOMAXPROCS; 0: the runtime's choice, the container's CPU limit); one costs the least CPU per pod change; GOMAXPROCS, when set, wins")
	fs.StringVar(&f.memoryLimit, "memory-limit", defaultMemoryLimit,
		"soft memory limit of the Go runtime (a quantity such as 250Mi; 0: none); the collector works harder as the heap nears it; GOMEMLIMIT, when set, wins")
	f.endpoints.register(fs)
	f.initialCatalogW = 5 * time.Second
	if err := config.Parse(fs, "watcher", args, stdout); err != nil {
		if errors.Is(err, config.ErrVersion) {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	if f.idleWindow <= 0 || f.maxBatchWait < f.idleWindow {
		fmt.Fprintln(stderr, "--idle-window must be positive and --max-batch-wait at least as long")
		return 2
	}
	logger, err := telemetry.NewLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	memLimit, err := setMemoryLimit(f.memoryLimit)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	procs, err := setProcs(f.procs)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	logger.Debug("runtime_limits", "memory_bytes", memLimit, "procs", procs)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, f, logger); err != nil {
		logger.Error("watcher_failed", "error", err.Error())
		return 1
	}
	logger.Info("watcher_stopped")
	return 0
}

func serve(ctx context.Context, f flags, logger *slog.Logger) error {
	shutdownTracing, err := telemetry.SetupTracing(ctx, "watcher", config.Version)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(sctx); err != nil {
			logger.Warn("tracing_shutdown_failed", "error", err.Error())
		}
	}()

	restCfg, err := kubeConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	restCfg.QPS, restCfg.Burst = float32(f.kubeQPS), f.kubeBurst
	restCfg.UserAgent = "flotilla-watcher/" + config.Version
	restCfg.DisableCompression = !f.kubeGzip
	// Built-in types travel as protobuf: at 100,000 pods decoding is most
	// of the watcher's CPU, and protobuf decodes several times faster than
	// JSON. Custom resources only speak JSON.
	coreCfg := rest.CopyConfig(restCfg)
	coreCfg.ContentType = runtime.ContentTypeProtobuf
	coreCfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	client, err := kubernetes.NewForConfig(coreCfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	serverCreds, clientCreds, err := f.endpoints.creds()
	if err != nil {
		return err
	}
	plannerConn, err := rpc.Dial(f.plannerAddr, clientCreds)
	if err != nil {
		return err
	}
	defer plannerConn.Close()
	// Only the actuator leader reports its service SERVING: calls go there,
	// and wait (within their deadline) through a failover.
	actuatorConn, err := rpc.DialReplicas(f.actuatorAddr, clientCreds, actuatorv1.Actuator_ServiceDesc.ServiceName)
	if err != nil {
		return err
	}
	defer actuatorConn.Close()
	// Every ready actuator replica, standby or leader, serves the catalogue
	// (read-only): a standby watcher keeps it fresh through a failover.
	catalogConn, err := rpc.DialReplicas(f.actuatorAddr, clientCreds, rpc.ReadinessService)
	if err != nil {
		return err
	}
	defer catalogConn.Close()

	pods, err := podwire.ListWatch(coreCfg, cluster.PodFieldSelector)
	if err != nil {
		return err
	}
	c := cluster.New(cluster.Options{Client: client, Dynamic: dyn, Pods: pods, Logger: logger, Region: f.region, NominationTTL: f.nominationTTL})
	events, err := cluster.NewEvents(client, c)
	if err != nil {
		return err
	}
	defer events.Stop()

	srv, err := rpc.NewServer(rpc.ServerOptions{Logger: logger, Creds: serverCreds})
	if err != nil {
		return fmt.Errorf("grpc server: %w", err)
	}
	setReady := func(ready bool) {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ready {
			st = healthpb.HealthCheckResponse_SERVING
		}
		srv.Health.SetServingStatus("", st)
		srv.Health.SetServingStatus(watcherv1.Watcher_ServiceDesc.ServiceName, st)
	}
	setReady(false)
	srv.Health.SetServingStatus(livenessService, healthpb.HealthCheckResponse_SERVING)
	active := &activeStream{}
	watcherv1.RegisterWatcherServer(srv, server.New(c, active.get))
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", f.listen, err)
	}
	logger.Info("watcher_serving", "addr", lis.Addr().String(), "version", config.FullVersion(), "cluster", f.clusterName,
		"planner", f.plannerAddr, "actuator", f.actuatorAddr)

	reg := telemetry.NewRegistry("watcher", config.Version)
	metrics.Register(reg, c)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ctx, lis, f.shutdownGrace) })
	if err := f.endpoints.serve(ctx, g, srv, reg, logger); err != nil {
		return err
	}
	g.Go(func() error {
		if err := c.Start(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		// Synced: ready to lead or to stand by.
		srv.SetStatus(true, rpc.ReadinessService)
		go metrics.WatchLaunches(ctx, c, time.Second)
		// Leader or standby, keep the catalogue fresh: a standby that takes
		// over then streams at once, even while the actuator fails over too.
		go actuation.RefreshCatalog(ctx, actuatorv1.NewActuatorClient(catalogConn), c, f.catalogRefresh, logger)
		lead := func(ctx context.Context) {
			streamWhileLeading(ctx, f, logger, c, events, plannerConn, actuatorConn, active, setReady)
		}
		if !f.leaderElect {
			lead(ctx)
			return nil
		}
		return leader.Run(ctx, leader.Options{
			Client:        client,
			Namespace:     leaseNamespace(f.leaseNamespace),
			Name:          leaseName(f.leaseName, f.clusterName),
			LeaseDuration: f.leaseDuration,
			Logger:        logger,
		}, lead)
	})
	return g.Wait()
}

// streamWhileLeading runs the planner stream, the plan forwarder and the
// catalogue refresh until ctx ends (shutdown or lost leadership).
func streamWhileLeading(ctx context.Context, f flags, logger *slog.Logger, c *cluster.Cluster, events *cluster.Events,
	plannerConn, actuatorConn *grpc.ClientConn, active *activeStream, setReady func(bool),
) {
	actuator := actuatorv1.NewActuatorClient(actuatorConn)
	if !c.HasInstanceTypes() {
		// The first plans should use the actuator's prices; wait a little
		// for them. The planner falls back to its embedded catalogue.
		if err := actuation.FetchCatalog(ctx, actuator, c, f.initialCatalogW); err != nil {
			logger.Warn("catalog_fetch_failed", "error", err.Error())
		}
	}
	var client *stream.Client // set below; the forwarder asks it for rechecks
	fwd := actuation.New(actuator, c, events, actuation.Options{
		ExecuteTimeout:       f.executeTimeout,
		DisruptionValidation: f.disruptionValid,
		Recheck:              func(at time.Time) { client.RecheckAt(at) },
		Logger:               logger,
	})
	client = stream.New(plannerv1.NewPlannerClient(plannerConn), c, fwd, stream.Options{
		IdleWindow:   f.idleWindow,
		MaxBatchWait: f.maxBatchWait,
		AckTimeout:   f.ackTimeout,
		OnStreaming: func(up bool) {
			setReady(up)
			logger.Info("planner_stream", "up", up)
		},
		Logger: logger,
	})
	active.set(client)
	defer active.set(nil)
	defer setReady(false)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return fwd.Run(ctx) })
	g.Go(func() error { return client.Run(ctx) })
	_ = g.Wait()
}

// activeStream is the planner stream of this replica, nil while it does
// not lead.
type activeStream struct {
	mu     sync.Mutex
	client *stream.Client
}

func (a *activeStream) set(c *stream.Client) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.client = c
}

func (a *activeStream) get() server.Stream {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.client == nil {
		return nil
	}
	return a.client
}

func kubeConfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

func leaseNamespace(ns string) string {
	if ns != "" {
		return ns
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "kube-system"
}

func leaseName(name, clusterName string) string {
	if name != "" {
		return name
	}
	if clusterName != "" {
		return "flotilla-watcher-" + clusterName
	}
	return "flotilla-watcher"
}
