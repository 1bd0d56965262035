// Command actuator is Flotilla's cloud boundary and only writer: it serves
// flotilla.actuator.v1.Actuator over gRPC (Execute, ListInstanceTypes) and
// runs the NodeClaim lifecycle, EC2NodeClass status and garbage collection
// against EC2 and the Kubernetes API.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/sync/errgroup"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	awsv1 "github.com/flotilla-dev/flotilla/api/aws/v1"
	karpv1 "github.com/flotilla-dev/flotilla/api/karpenter/v1"
	actuatorv1 "github.com/flotilla-dev/flotilla/gen/flotilla/actuator/v1"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/bootstrap"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/disruption"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/drain"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/gc"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/instance"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/interruption"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/karpenter"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/metrics"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclaim"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodeclass"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/nodepool"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/offering"
	"github.com/flotilla-dev/flotilla/services/actuator/internal/server"
	"github.com/flotilla-dev/flotilla/services/internal/config"
	"github.com/flotilla-dev/flotilla/services/internal/rpc"
	"github.com/flotilla-dev/flotilla/services/internal/telemetry"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type flags struct {
	listen, clusterName, region, awsEndpoint, kubeconfig                         string
	clusterEndpoint, clusterCAFile, serviceCIDR, kubernetesVersion, amiPrefix    string
	instanceProfile, logFormat, logLevel, interruptionQueue                      string
	pricingAPI, keepStartupTaints                                                bool
	kubeQPS                                                                      float64
	kubeBurst                                                                    int
	unavailableTTL, catalogRefresh, gcInterval, gcGrace, grace                   time.Duration
	launchTimeout, registrationTimeout, initializationTimeout, nodeClassInterval time.Duration
	disruptionCoolDown                                                           time.Duration
}

// run returns the process exit code: 0 ok, 1 runtime failure, 2 bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("actuator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f flags
	fs.StringVar(&f.listen, "listen", "127.0.0.1:7102", "gRPC listen address")
	fs.StringVar(&f.clusterName, "cluster-name", "", "cluster name: tags every instance kubernetes.io/cluster/<name> (required)")
	fs.StringVar(&f.region, "region", "us-east-1", "AWS region")
	fs.StringVar(&f.awsEndpoint, "aws-endpoint", "", "AWS endpoint URL (moto_server, say); empty uses AWS_ENDPOINT_URL or AWS's")
	fs.StringVar(&f.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file; empty means in-cluster")
	fs.Float64Var(&f.kubeQPS, "kube-api-qps", 100, "Kubernetes API requests per second (a burst of NodeClaims is several calls each)")
	fs.IntVar(&f.kubeBurst, "kube-api-burst", 200, "Kubernetes API request burst")
	fs.StringVar(&f.clusterEndpoint, "cluster-endpoint", "", "API server URL nodes join; empty takes the kubeconfig's")
	fs.StringVar(&f.clusterCAFile, "cluster-ca-file", "", "PEM CA bundle nodes trust; empty takes the kubeconfig's")
	fs.StringVar(&f.serviceCIDR, "service-cidr", "10.96.0.0/16", "cluster service CIDR written into the node bootstrap")
	fs.StringVar(&f.kubernetesVersion, "kubernetes-version", "", "cluster minor version for AMI aliases (1.33); empty asks the API server")
	fs.StringVar(&f.amiPrefix, "ami-parameter-prefix", nodeclass.DefaultAMIParameterPrefix, "SSM path prefix of the EKS-optimized AMI parameters")
	fs.StringVar(&f.instanceProfile, "instance-profile", "", "instance profile for node classes that name none")
	fs.BoolVar(&f.pricingAPI, "pricing-api", true, "read on-demand prices from the AWS Price List API (else the embedded table)")
	fs.BoolVar(&f.keepStartupTaints, "keep-startup-taints", false, "leave startup taints for something on the node to remove")
	fs.DurationVar(&f.unavailableTTL, "unavailable-offering-ttl", offering.DefaultUnavailableTTL, "how long a capacity error keeps an offering out")
	fs.DurationVar(&f.catalogRefresh, "catalog-refresh", offering.DefaultRefresh, "how often the instance catalogue is rebuilt")
	fs.DurationVar(&f.gcInterval, "gc-interval", gc.DefaultInterval, "how often leaked instances, NodeClaims and Nodes are collected")
	fs.DurationVar(&f.gcGrace, "gc-grace-period", gc.DefaultGracePeriod, "how old an unowned instance or Node must be to be collected")
	fs.DurationVar(&f.launchTimeout, "launch-timeout", nodeclaim.DefaultLaunchTimeout, "a NodeClaim not launched within this is deleted")
	fs.DurationVar(&f.registrationTimeout, "registration-timeout", nodeclaim.DefaultRegistrationTimeout, "a launched NodeClaim whose Node has not joined within this is deleted")
	fs.DurationVar(&f.initializationTimeout, "initialization-timeout", nodeclaim.DefaultInitializationTimeout, "a registered NodeClaim whose Node is not Ready within this is deleted")
	fs.DurationVar(&f.nodeClassInterval, "nodeclass-interval", time.Minute, "how often EC2NodeClass selectors are resolved again")
	fs.StringVar(&f.interruptionQueue, "interruption-queue", "", "SQS queue (name or URL) of EC2 interruption events for node classes that name none in spec.interruptionQueue; empty: only theirs")
	fs.DurationVar(&f.disruptionCoolDown, "disruption-cool-down", disruption.DefaultCoolDown, "a disruption called off (a replacement failed, a pod or budget forbade it) is not retried on the same nodes for this long")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&f.grace, "shutdown-grace", 10*time.Second, "time in-flight calls get to finish on SIGTERM")
	var sv serving
	sv.register(fs)
	if err := config.Parse(fs, "actuator", args, stdout); err != nil {
		if errors.Is(err, config.ErrVersion) {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	if f.clusterName == "" {
		fmt.Fprintln(stderr, "--cluster-name is required (env "+config.EnvName("cluster-name")+")")
		return 2
	}
	logger, err := telemetry.NewLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	shutdownTracing, err := telemetry.SetupTracing(ctx, "actuator", config.Version)
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

	// Kubernetes.
	restCfg, err := kubeConfig(f.kubeconfig)
	if err != nil {
		logger.Error("kubeconfig_failed", "error", err.Error())
		return 2
	}
	restCfg.QPS, restCfg.Burst = float32(f.kubeQPS), f.kubeBurst
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		logger.Error("kube_client_failed", "error", err.Error())
		return 1
	}
	crd, err := karpenter.NewClient(restCfg)
	if err != nil {
		logger.Error("kube_client_failed", "error", err.Error())
		return 1
	}
	cluster, err := clusterDetails(f, restCfg)
	if err != nil {
		logger.Error("cluster_details_failed", "error", err.Error())
		return 2
	}
	if f.kubernetesVersion == "" {
		v, err := kube.Discovery().ServerVersion()
		if err != nil {
			logger.Error("kubernetes_version_failed", "error", err.Error())
			return 1
		}
		f.kubernetesVersion = v.Major + "." + strings.TrimSuffix(v.Minor, "+")
	}

	// AWS.
	awsOpts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(f.region),
		awsconfig.WithAPIOptions([]func(*middleware.Stack) error{metrics.AWSMiddleware})}
	if f.awsEndpoint != "" {
		awsOpts = append(awsOpts, awsconfig.WithBaseEndpoint(f.awsEndpoint))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsOpts...)
	if err != nil {
		logger.Error("aws_config_failed", "error", err.Error())
		return 1
	}
	ec2Client := ec2.NewFromConfig(awsCfg)
	unavailable := offering.NewUnavailable(f.unavailableTTL, nil)
	catalogOpts := offering.CatalogOptions{Region: f.region, Unavailable: unavailable, Refresh: f.catalogRefresh, Logger: logger}
	if f.pricingAPI {
		// The Price List API lives in us-east-1 whatever the cluster's region.
		pcfg := awsCfg.Copy()
		pcfg.Region = "us-east-1"
		catalogOpts.Prices = offering.NewPriceList(pricing.NewFromConfig(pcfg))
	}
	catalog := offering.NewCatalog(ec2Client, catalogOpts)
	resolver := nodeclass.NewResolver(ec2Client, ssm.NewFromConfig(awsCfg), nodeclass.Options{
		AMIParameterPrefix: f.amiPrefix, KubernetesVersion: f.kubernetesVersion,
	})
	instances := instance.New(ec2Client, instance.Options{ClusterName: f.clusterName, Unavailable: unavailable, Logger: logger})
	drainer := drain.New(kube, logger, nil)
	claims := nodeclaim.New(kube, crd, instances, resolver, catalog, drainer, nodeclaim.Options{
		Cluster:               cluster,
		InstanceProfile:       f.instanceProfile,
		LaunchTimeout:         f.launchTimeout,
		RegistrationTimeout:   f.registrationTimeout,
		InitializationTimeout: f.initializationTimeout,
		KeepStartupTaints:     f.keepStartupTaints,
		Logger:                logger,
	})
	classes := crd.Informer(karpenter.EC2NodeClasses, &awsv1.EC2NodeClass{}, 5*time.Minute)
	collector := gc.New(instances, crd, kube, gc.Options{GracePeriod: f.gcGrace, Interval: f.gcInterval, Logger: logger,
		Templates: instances, NodeClasses: func(ctx context.Context) ([]string, error) { return nodeClassNames(ctx, classes, crd) }})
	disruptions := disruption.New(claims, drainer, kube, disruption.Options{CoolDown: f.disruptionCoolDown, Logger: logger})
	interruptions := interruption.NewPoller(sqs.NewFromConfig(awsCfg), interruption.NewHandler(claims, unavailable, logger),
		interruption.PollerOptions{Queues: func() []string { return interruptionQueues(classes, f.interruptionQueue) }, Logger: logger})
	pools := nodepool.New(crd.Informer(karpenter.NodePools, &karpv1.NodePool{}, 5*time.Minute), classes, claims, crd, nodepool.Options{Logger: logger})

	creds, err := sv.creds()
	if err != nil {
		logger.Error("tls_setup_failed", "error", err.Error())
		return 2
	}
	srv, err := rpc.NewServer(rpc.ServerOptions{Logger: logger, Creds: creds})
	if err != nil {
		logger.Error("server_setup_failed", "error", err.Error())
		return 1
	}
	reg := telemetry.NewRegistry("actuator", config.Version)
	metrics.Register(reg, unavailable)
	actuatorv1.RegisterActuatorServer(srv, server.LeaderOnly(server.New(claims, disruptions, claims, f.region, logger), sv.isLeading))
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		logger.Error("listen_failed", "addr", f.listen, "error", err.Error())
		return 1
	}
	logger.Info("actuator_serving", "addr", lis.Addr().String(), "version", config.FullVersion(),
		"cluster", f.clusterName, "region", f.region, "kubernetes_version", f.kubernetesVersion)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, lis, f.grace) })
	if err := sv.serve(gctx, g, srv, reg, logger); err != nil {
		logger.Error("listen_failed", "error", err.Error())
		stop()
		_ = g.Wait()
		return 1
	}
	// The catalogue (read-only EC2 calls) is built at once, standby or not:
	// a replica that takes over, or a leader restarted after a crash, has it
	// ready by the time it holds the lease, so its first launch does not
	// wait for a build.
	g.Go(func() error { return catalog.Run(gctx) })
	// A standby waits here, ready and serving health and metrics, until it
	// leads; only the leader runs what follows.
	if err := sv.elect(gctx, g, kube, f.clusterName, srv, logger); err != nil {
		stop()
		_ = g.Wait()
		if ctx.Err() != nil {
			logger.Info("actuator_stopped")
			return 0
		}
		logger.Error("leader_election_failed", "error", err.Error())
		return 1
	}
	g.Go(func() error { return claims.Run(gctx) })
	g.Go(func() error { return collector.Run(gctx) })
	g.Go(func() error { return resolver.RunStatus(gctx, classes, crd, f.nodeClassInterval, logger) })
	g.Go(func() error {
		if err := claims.WaitStarted(gctx); err != nil {
			return nil
		}
		return disruptions.Run(gctx)
	})
	g.Go(func() error {
		if err := claims.WaitStarted(gctx); err != nil {
			return nil
		}
		return interruptions.Run(gctx)
	})
	g.Go(func() error {
		if err := claims.WaitStarted(gctx); err != nil {
			return nil
		}
		return pools.Run(gctx)
	})
	g.Go(func() error {
		// Serving once the NodeClaim informers have synced.
		if err := claims.WaitStarted(gctx); err != nil {
			return nil
		}
		srv.Health.SetServingStatus(actuatorv1.Actuator_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
		srv.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		return nil
	})
	if err := g.Wait(); err != nil {
		logger.Error("actuator_failed", "error", err.Error())
		return 1
	}
	logger.Info("actuator_stopped")
	return 0
}

// interruptionQueues are the queues to read: each node class's
// spec.interruptionQueue, and the flag's queue (the default of node classes
// that name none, and of Provisioners).
func interruptionQueues(classes cache.SharedIndexInformer, flagQueue string) []string {
	qs := []string{flagQueue}
	for _, obj := range classes.GetStore().List() {
		if nc, ok := obj.(*awsv1.EC2NodeClass); ok && nc.DeletionTimestamp == nil {
			qs = append(qs, nc.Spec.InterruptionQueue)
		}
	}
	return qs
}

// nodeClassNames are the node classes that exist: the EC2NodeClasses and
// the Provisioners (whose inline node class has the Provisioner's name).
func nodeClassNames(ctx context.Context, classes cache.SharedIndexInformer, crd *karpenter.Client) ([]string, error) {
	if !classes.HasSynced() {
		return nil, errors.New("ec2nodeclass informer not synced yet")
	}
	var names []string
	for _, obj := range classes.GetStore().List() {
		if nc, ok := obj.(*awsv1.EC2NodeClass); ok {
			names = append(names, nc.Name)
		}
	}
	provisioners, err := crd.ListProvisioners(ctx)
	if err != nil && !meta.IsNoMatchError(err) && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("list provisioners: %w", err)
	}
	for _, p := range provisioners {
		names = append(names, p.Name)
	}
	return names, nil
}

func kubeConfig(path string) (*rest.Config, error) {
	if path == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no --kubeconfig and not in a cluster: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// clusterDetails is what new nodes are told about the cluster: the flags,
// or else the kubeconfig's server and CA.
func clusterDetails(f flags, cfg *rest.Config) (bootstrap.Cluster, error) {
	c := bootstrap.Cluster{Name: f.clusterName, APIServerEndpoint: f.clusterEndpoint, CIDR: f.serviceCIDR}
	if c.APIServerEndpoint == "" {
		c.APIServerEndpoint = cfg.Host
	}
	ca := cfg.CAData
	caFile := f.clusterCAFile
	if caFile == "" {
		caFile = cfg.CAFile
	}
	if len(ca) == 0 && caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return c, fmt.Errorf("cluster CA: %w", err)
		}
		ca = b
	} else if f.clusterCAFile != "" {
		b, err := os.ReadFile(f.clusterCAFile)
		if err != nil {
			return c, fmt.Errorf("cluster CA: %w", err)
		}
		ca = b
	}
	c.CertificateAuthority = base64.StdEncoding.EncodeToString(ca)
	return c, nil
}
