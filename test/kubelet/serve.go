package kubelet

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Options configure Serve: where the cluster and EC2 are and how often to
// sync.
type Options struct {
	// Kubeconfig is the path of the kubeconfig to register Nodes with.
	Kubeconfig string
	// ClusterName selects instances tagged kubernetes.io/cluster/<name>=owned.
	ClusterName string
	// Region of the EC2 client; the SDK's default chain when empty.
	Region string
	// EC2Endpoint overrides the EC2 endpoint (else AWS_ENDPOINT_URL applies).
	EC2Endpoint string
	// Interval between syncs.
	Interval time.Duration
	// HealthAddr, when set, serves GET /healthz (200 once synced).
	HealthAddr string
	// AccessKeyID and SecretAccessKey, when set, are static credentials
	// (else the SDK's default chain, e.g. AWS_ACCESS_KEY_ID).
	AccessKeyID, SecretAccessKey string
}

// RegisterFlags binds the options to flags, with environment defaults.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster (env KUBECONFIG)")
	fs.StringVar(&o.ClusterName, "cluster-name", envOr("FLOTILLA_CLUSTER_NAME", "my-cluster"),
		"register instances tagged kubernetes.io/cluster/<name>=owned (env FLOTILLA_CLUSTER_NAME)")
	fs.StringVar(&o.Region, "region", envOr("AWS_REGION", "us-east-1"), "AWS region (env AWS_REGION)")
	fs.StringVar(&o.EC2Endpoint, "ec2-endpoint", os.Getenv("AWS_ENDPOINT_URL"), "EC2 endpoint, e.g. moto (env AWS_ENDPOINT_URL)")
	fs.DurationVar(&o.Interval, "interval", time.Second, "time between syncs")
	fs.StringVar(&o.HealthAddr, "health-addr", "", "serve /healthz on this address (off when empty)")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Serve runs a Simulator built from opts until ctx is done.
func Serve(ctx context.Context, opts Options, log *slog.Logger) error {
	restCfg, err := clientcmd.BuildConfigFromFlags("", opts.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	restCfg.QPS, restCfg.Burst = 50, 100
	restCfg.UserAgent = "flotilla-kubelet-sim"
	restCfg.Timeout = 10 * time.Second
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	loaders := []func(*config.LoadOptions) error{config.WithRegion(opts.Region)}
	if opts.AccessKeyID != "" {
		loaders = append(loaders, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKeyID, opts.SecretAccessKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loaders...)
	if err != nil {
		return fmt.Errorf("aws config: %w", err)
	}
	ec2Client := ec2.NewFromConfig(awsCfg, func(o *ec2.Options) {
		if opts.EC2Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.EC2Endpoint)
		}
	})
	sim := New(timeoutEC2{ec2Client, 10 * time.Second}, kube, Config{
		ClusterName: opts.ClusterName,
		Region:      awsCfg.Region,
		Interval:    opts.Interval,
	}, log)

	if opts.HealthAddr != "" {
		l, err := net.Listen("tcp", opts.HealthAddr)
		if err != nil {
			return fmt.Errorf("health endpoint: %w", err)
		}
		srv := &http.Server{Handler: healthHandler(sim), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
	}
	log.Info("kubelet_sim_started", "cluster_name", opts.ClusterName, "region", awsCfg.Region,
		"ec2_endpoint", opts.EC2Endpoint, "interval", opts.Interval.String())
	return sim.Run(ctx)
}

func healthHandler(sim *Simulator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := sim.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// timeoutEC2 bounds every EC2 call.
type timeoutEC2 struct {
	c       *ec2.Client
	timeout time.Duration
}

func (t timeoutEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.c.DescribeInstances(ctx, in, opts...)
}

func (t timeoutEC2) DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.c.DescribeInstanceTypes(ctx, in, opts...)
}

func (t timeoutEC2) DescribeInstanceAttribute(ctx context.Context, in *ec2.DescribeInstanceAttributeInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstanceAttributeOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.c.DescribeInstanceAttribute(ctx, in, opts...)
}
