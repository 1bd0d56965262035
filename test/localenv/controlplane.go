package localenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/test/kubelet"
)

// Names of the core processes.
const (
	ProcEtcd              = "etcd"
	ProcAPIServer         = "kube-apiserver"
	ProcScheduler         = "kube-scheduler"
	ProcControllerManager = "kube-controller-manager"
	ProcKwok              = "kwok"
	ProcMoto              = "moto"
	ProcKubelet           = "kubelet-sim"
)

// ServiceCIDR is the cluster's service IP range.
const ServiceCIDR = "10.96.0.0/16"

// startCore starts etcd and moto, then the API server, then the scheduler,
// controller-manager and kwok together, then the simulated kubelet.
func (e *Env) startCore(ctx context.Context, opts Options, forTest bool) error {
	moto, err := findExecutable("moto_server", "FLOTILLA_MOTO_SERVER")
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return e.StartProcess(gctx, Process{
			Name:      ProcMoto,
			Argv:      []string{moto, "-H", "127.0.0.1", "-p", strconv.Itoa(e.Ports.Moto)},
			HealthURL: e.MotoEndpoint + "/",
			Ready:     e.motoReady,
		})
	})
	g.Go(func() error {
		if err := e.StartProcess(gctx, e.etcdProcess()); err != nil {
			return err
		}
		if err := e.StartProcess(gctx, e.apiserverProcess()); err != nil {
			return err
		}
		g2, g2ctx := errgroup.WithContext(gctx)
		for _, p := range []Process{e.schedulerProcess(), e.controllerManagerProcess(), e.kwokProcess()} {
			g2.Go(func() error { return e.StartProcess(g2ctx, p) })
		}
		return g2.Wait()
	})
	if err := g.Wait(); err != nil {
		return err
	}
	if opts.NoKubelet {
		return nil
	}
	command := opts.KubeletCommand
	if len(command) == 0 && forTest {
		return e.startInProcessKubelet(ctx)
	}
	if len(command) == 0 {
		bin, err := findKubeletSim()
		if err != nil {
			return err
		}
		command = []string{bin}
	}
	return e.StartProcess(ctx, e.kubeletProcess(command))
}

// motoReady wants moto to answer, then makes the first EC2 calls, which load
// moto's EC2 backend (seconds), while the control plane starts rather than
// in the simulated kubelet's first sync.
func (e *Env) motoReady(ctx context.Context) error {
	if err := e.HealthCheck(e.MotoEndpoint + "/")(ctx); err != nil {
		return err
	}
	c := ec2.NewFromConfig(e.AWSConfig())
	if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)}); err != nil {
		return fmt.Errorf("moto ec2: %w", err)
	}
	if _, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{
		InstanceTypes: []ec2types.InstanceType{ec2types.InstanceTypeT3Medium},
	}); err != nil {
		return fmt.Errorf("moto ec2: %w", err)
	}
	return nil
}

// AWSConfig is an AWS SDK configuration for the environment's moto: its
// endpoint, region and dummy credentials (ec2.NewFromConfig(env.AWSConfig())).
func (e *Env) AWSConfig() aws.Config {
	return aws.Config{
		Region:       e.Region,
		BaseEndpoint: aws.String(e.MotoEndpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	}
}

func (e *Env) bin(name string) string { return filepath.Join(e.BinDir, name) }

func (e *Env) etcdProcess() Process {
	client := "http://127.0.0.1:" + strconv.Itoa(e.Ports.EtcdClient)
	peer := "http://127.0.0.1:" + strconv.Itoa(e.Ports.EtcdPeer)
	return Process{
		Name: ProcEtcd,
		Argv: []string{e.bin("etcd"),
			"--name=flotilla",
			"--data-dir=" + e.EtcdDataDir,
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=flotilla=" + peer,
			"--unsafe-no-fsync",
			"--log-level=warn",
		},
		HealthURL: client + "/health",
	}
}

func (e *Env) apiserverProcess() Process {
	p := e.PKI
	return Process{
		Name: ProcAPIServer,
		Argv: []string{e.bin("kube-apiserver"),
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(e.Ports.APIServer),
			"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(e.Ports.EtcdClient),
			"--client-ca-file=" + p.CACert,
			"--tls-cert-file=" + p.ServerCert,
			"--tls-private-key-file=" + p.ServerKey,
			"--authorization-mode=RBAC",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + p.ServiceAccountPub,
			"--service-account-signing-key-file=" + p.ServiceAccountKey,
			"--service-cluster-ip-range=" + ServiceCIDR,
			"--endpoint-reconciler-type=none",
			"--allow-privileged=true",
			"--profiling=false",
			"--cert-dir=" + filepath.Join(e.Dir, "pki", "apiserver-generated"),
		},
		Ready:        e.apiserverReady,
		HealthURL:    e.APIServerURL + "/readyz",
		ReadyTimeout: 120 * time.Second,
	}
}

// apiserverReady checks /readyz with the admin certificate, verifying the
// serving certificate against the CA.
func (e *Env) apiserverReady(ctx context.Context) error {
	cfg, err := e.PKI.AdminTLS()
	if err != nil {
		return err
	}
	return HTTPCheck(e.APIServerURL+"/readyz", cfg)(ctx)
}

func (e *Env) schedulerProcess() Process {
	port := strconv.Itoa(e.Ports.Scheduler)
	return Process{
		Name: ProcScheduler,
		Argv: []string{e.bin("kube-scheduler"),
			"--kubeconfig=" + e.Kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port=" + port,
			"--leader-elect=false",
		},
		HealthURL: "https://127.0.0.1:" + port + "/healthz",
	}
}

func (e *Env) controllerManagerProcess() Process {
	port := strconv.Itoa(e.Ports.ControllerManager)
	health := e.HealthCheck("https://127.0.0.1:" + port + "/healthz")
	return Process{
		Name: ProcControllerManager,
		Argv: []string{e.bin("kube-controller-manager"),
			"--kubeconfig=" + e.Kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port=" + port,
			"--leader-elect=false",
			"--service-account-private-key-file=" + e.PKI.ServiceAccountKey,
			"--root-ca-file=" + e.PKI.CACert,
			"--cluster-signing-cert-file=" + e.PKI.CACert,
			"--cluster-signing-key-file=" + e.PKI.CAKey,
			"--allocate-node-cidrs=false",
			"--service-cluster-ip-range=" + ServiceCIDR,
		},
		HealthURL: "https://127.0.0.1:" + port + "/healthz",
		// Pods are refused until the default ServiceAccount exists.
		Ready: func(ctx context.Context) error {
			if err := health(ctx); err != nil {
				return err
			}
			return e.defaultServiceAccount(ctx)
		},
	}
}

func (e *Env) defaultServiceAccount(ctx context.Context) error {
	cfg, err := e.RESTConfig()
	if err != nil {
		return err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	if _, err := c.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
		return fmt.Errorf("default service account: %w", err)
	}
	return nil
}

func (e *Env) kwokProcess() Process {
	addr := "127.0.0.1:" + strconv.Itoa(e.Ports.Kwok)
	return Process{
		Name: ProcKwok,
		Argv: []string{e.bin("kwok"),
			"--kubeconfig=" + e.Kubeconfig,
			"--config=" + e.KwokStages,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=" + kubelet.KwokAnnotation + "=" + kubelet.KwokAnnotationValue,
			"--node-lease-duration-seconds=40",
			"--server-address=" + addr,
			// The default /24 runs out of pod IPs at 254 pods.
			"--cidr=10.244.0.0/16",
		},
		HealthURL: "http://" + addr + "/healthz",
	}
}

func (e *Env) kubeletOptions() kubelet.Options {
	return kubelet.Options{
		Kubeconfig:      e.Kubeconfig,
		ClusterName:     e.ClusterName,
		Region:          e.Region,
		EC2Endpoint:     e.MotoEndpoint,
		Interval:        time.Second,
		HealthAddr:      "127.0.0.1:" + strconv.Itoa(e.Ports.Kubelet),
		AccessKeyID:     "test",
		SecretAccessKey: "test",
	}
}

func (e *Env) kubeletHealthURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(e.Ports.Kubelet) + "/healthz"
}

func (e *Env) kubeletProcess(command []string) Process {
	o := e.kubeletOptions()
	argv := append(append([]string(nil), command...),
		"--kubeconfig="+o.Kubeconfig,
		"--cluster-name="+o.ClusterName,
		"--region="+o.Region,
		"--ec2-endpoint="+o.EC2Endpoint,
		"--interval="+o.Interval.String(),
		"--health-addr="+o.HealthAddr,
	)
	return Process{Name: ProcKubelet, Argv: argv, Env: e.Environ(), HealthURL: e.kubeletHealthURL()}
}

// startInProcessKubelet runs the simulated kubelet as a goroutine of the
// calling process, logging to the usual log file.
func (e *Env) startInProcessKubelet(ctx context.Context) error {
	began := time.Now()
	if err := os.MkdirAll(filepath.Join(e.Dir, "logs"), 0o755); err != nil {
		return fmt.Errorf("start %s: %w", ProcKubelet, err)
	}
	logFile, err := os.OpenFile(e.LogFile(ProcKubelet), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", ProcKubelet, err)
	}
	kctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &inProcess{name: ProcKubelet, cancel: cancel, done: make(chan struct{})}
	var runErr error
	go func() {
		defer close(p.done)
		defer logFile.Close()
		runErr = kubelet.Serve(kctx, e.kubeletOptions(), slog.New(slog.NewJSONHandler(logFile, nil)))
		if runErr != nil {
			fmt.Fprintf(logFile, "kubelet-sim stopped: %v\n", runErr)
		}
	}()
	e.mu.Lock()
	e.inproc = append(e.inproc, p)
	e.mu.Unlock()

	health := e.HealthCheck(e.kubeletHealthURL())
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("start %s: %w", ProcKubelet, runErr)
		default:
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		err := health(cctx)
		ccancel()
		if err == nil {
			progressf(e.progress(), "  %-24s ready in %s (in process)", ProcKubelet, time.Since(began).Round(time.Millisecond))
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("start %s: not ready: %w\n%s", ProcKubelet, err, logTail(e.LogFile(ProcKubelet), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// findKubeletSim looks for the kubelet-sim executable next to the running
// executable, then on PATH.
func findKubeletSim() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "kubelet-sim")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("kubelet-sim")
	if err != nil {
		return "", fmt.Errorf("kubelet-sim not found next to the executable or on PATH "+
			"(go build -o .bin/ ./test/cmd/kubelet-sim, or set Options.KubeletCommand): %w", err)
	}
	return p, nil
}
