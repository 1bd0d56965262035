package localenv

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/flotilla-dev/flotilla/api/crds"
	"github.com/flotilla-dev/flotilla/test/moto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"
)

// Names of Flotilla's own processes in an environment.
const (
	ProcPlanner  = "planner"
	ProcActuator = "actuator"
	ProcWatcher  = "watcher"
)

// Vars the environment publishes for Flotilla's services.
const (
	VarPlannerAddr  = "FLOTILLA_PLANNER_ADDR"
	VarActuatorAddr = "FLOTILLA_ACTUATOR_ADDR"
	VarWatcherAddr  = "FLOTILLA_WATCHER_ADDR"
	// VarGRPCCert, VarGRPCKey and VarGRPCCA name a client certificate, its
	// key and the CA for calling the services (grpcurl -cert -key -cacert).
	VarGRPCCert = "FLOTILLA_GRPC_CERT"
	VarGRPCKey  = "FLOTILLA_GRPC_KEY"
	VarGRPCCA   = "FLOTILLA_GRPC_CA"
)

// KubernetesMinor is the minor version of the local control plane, which
// names the EKS AMI parameters the actuator resolves al2023@latest with.
const KubernetesMinor = "1.37"

// FlotillaOptions configure StartFlotilla.
type FlotillaOptions struct {
	// BinDir holds planner, actuator and watcher (make build puts them in
	// bin/).
	BinDir string
	// Ports of planner, actuator and watcher; zero picks free ones.
	PlannerPort, ActuatorPort, WatcherPort int
	// ExtraEnv is added to every service's environment (OTEL_* for traces).
	ExtraEnv []string
	// Replicas of the actuator and the watcher (leader-elected); 1 when 0.
	Replicas int
	// Plaintext turns mutual TLS between the services off.
	Plaintext bool
}

// Prepare makes the environment ready for Flotilla: it installs the CRDs,
// and seeds moto with what a real account has — a VPC with subnets and a
// security group tagged karpenter.sh/discovery=<cluster>, and the EKS AMI
// parameters. Calling it again changes nothing.
func (e *Env) Prepare(ctx context.Context) (*moto.Network, error) {
	if err := e.InstallCRDs(ctx); err != nil {
		return nil, err
	}
	cfg := e.AWSConfig()
	ec2c := ec2.NewFromConfig(cfg)
	net, err := moto.FindNetwork(ctx, ec2c, e.ClusterName)
	if err != nil {
		return nil, err
	}
	if net == nil {
		if net, err = moto.CreateNetwork(ctx, ec2c, e.ClusterName); err != nil {
			return nil, err
		}
	}
	if _, err := moto.SeedAMIParameters(ctx, ssm.NewFromConfig(cfg), moto.AMIParameterPrefix, KubernetesMinor); err != nil {
		return nil, err
	}
	return net, nil
}

// InstallCRDs creates or updates Flotilla's CRDs and waits until they are
// Established.
func (e *Env) InstallCRDs(ctx context.Context) error {
	rc, err := e.RESTConfig()
	if err != nil {
		return err
	}
	client, err := apiextclient.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("apiextensions client: %w", err)
	}
	api := client.ApiextensionsV1().CustomResourceDefinitions()
	var names []string
	for _, m := range crds.All() {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(m.Data, &crd); err != nil {
			return fmt.Errorf("crd %s: %w", m.Name, err)
		}
		names = append(names, crd.Name)
		existing, err := api.Get(ctx, crd.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = api.Create(ctx, &crd, metav1.CreateOptions{})
		case err == nil:
			crd.ResourceVersion = existing.ResourceVersion
			_, err = api.Update(ctx, &crd, metav1.UpdateOptions{})
		}
		if err != nil {
			return fmt.Errorf("install crd %s: %w", crd.Name, err)
		}
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			crd, err := api.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("crd %s not established: %w", name, err)
		}
	}
	return nil
}

// FlotillaProcesses returns the planner, actuator and watcher wired to the
// environment, in start order, and publishes their addresses. Unless
// o.Plaintext, the services speak mutual TLS with certificates from the
// environment's CA (see ClientTLSFiles) and answer health checks in
// plaintext on a separate port, as in a cluster. With o.Replicas > 1 the
// actuator and the watcher run that many replicas, one of each leading.
func (e *Env) FlotillaProcesses(o FlotillaOptions) ([]Process, error) {
	replicas := max(o.Replicas, 1)
	ports := []*int{&o.PlannerPort, &o.ActuatorPort, &o.WatcherPort}
	for _, p := range ports {
		if *p == 0 {
			free, err := FreePort()
			if err != nil {
				return nil, err
			}
			*p = free
		}
	}
	// Health and metrics ports of every process, and the gRPC ports of the
	// extra replicas.
	extra, err := FreePorts(2*(1+2*replicas) + 2*(replicas-1))
	if err != nil {
		return nil, err
	}
	next := func() int { p := extra[0]; extra = extra[1:]; return p }
	addr := func(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
	planner := addr(o.PlannerPort)
	actuators := []string{addr(o.ActuatorPort)}
	watchers := []string{addr(o.WatcherPort)}
	for range replicas - 1 {
		actuators = append(actuators, addr(next()))
		watchers = append(watchers, addr(next()))
	}
	vars := map[string]string{VarPlannerAddr: planner, VarActuatorAddr: actuators[0], VarWatcherAddr: watchers[0]}
	tlsArgs := map[string][]string{}
	if !o.Plaintext {
		for _, svc := range []string{ProcPlanner, ProcActuator, ProcWatcher} {
			files, err := e.IssueServiceCert(svc)
			if err != nil {
				return nil, err
			}
			tlsArgs[svc] = []string{"--tls-cert=" + files.Cert, "--tls-key=" + files.Key, "--tls-ca=" + files.CA}
		}
		client, err := e.ClientTLSFiles()
		if err != nil {
			return nil, err
		}
		vars[VarGRPCCert], vars[VarGRPCKey], vars[VarGRPCCA] = client.Cert, client.Key, client.CA
	}
	env := append(e.Environ(), o.ExtraEnv...)
	bin := func(name string) string { return filepath.Join(o.BinDir, name) }
	var procs []Process
	// add appends one service process with its health and metrics ports;
	// leading replicas are ready when serving, standbys when ready to take
	// over.
	add := func(name, service string, standby bool, argv []string) {
		health, metrics := addr(next()), addr(next())
		vars[metricsVar(name)] = "http://" + metrics + "/metrics"
		vars[healthVar(name)] = health
		check := ""
		if standby {
			check = "readiness"
		}
		argv = append(argv, "--log-format=json", "--log-level=info", "--health-addr="+health, "--metrics-addr="+metrics)
		procs = append(procs, Process{
			Name: name, Env: append(env, "OTEL_SERVICE_NAME="+service),
			Argv:  append(argv, tlsArgs[service]...),
			Ready: grpcReady(health, check),
		})
	}
	// With replicas, any of them may lead after a restart: all are ready
	// once ready to lead or stand by. A single replica is ready once it
	// serves (the watcher: streams to the planner).
	elected := replicas > 1
	add(ProcPlanner, "planner", false, []string{bin("planner"), "serve", "--listen=" + planner})
	for i, a := range actuators {
		add(replicaName(ProcActuator, i), "actuator", elected, []string{bin("actuator"), "--listen=" + a, "--kubeconfig=" + e.Kubeconfig,
			"--cluster-name=" + e.ClusterName, "--region=" + e.Region, "--aws-endpoint=" + e.MotoEndpoint,
			"--ami-parameter-prefix=" + moto.AMIParameterPrefix, "--kubernetes-version=" + KubernetesMinor,
			"--pricing-api=false"})
	}
	for i, w := range watchers {
		add(replicaName(ProcWatcher, i), "watcher", elected, []string{bin("watcher"), "--listen=" + w, "--kubeconfig=" + e.Kubeconfig,
			"--planner-addr=" + planner, "--actuator-addr=" + strings.Join(actuators, ","), "--cluster-name=" + e.ClusterName,
			"--region=" + e.Region})
	}
	for k, v := range vars {
		if err := e.SetVar(k, v); err != nil {
			return nil, err
		}
	}
	return procs, nil
}

// replicaName names the i-th replica of a service: actuator, actuator-2, ...
func replicaName(service string, i int) string {
	if i == 0 {
		return service
	}
	return service + "-" + strconv.Itoa(i+1)
}

// metricsVar is the variable that holds a process's metrics URL:
// FLOTILLA_ACTUATOR_2_METRICS_URL for actuator-2.
func metricsVar(name string) string {
	return "FLOTILLA_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_METRICS_URL"
}

// healthVar is the variable that holds a process's plaintext health
// address: FLOTILLA_ACTUATOR_2_HEALTH_ADDR for actuator-2.
func healthVar(name string) string {
	return "FLOTILLA_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_HEALTH_ADDR"
}

// HealthAddr returns the plaintext grpc.health.v1 address of a Flotilla
// process of the environment, "" when unknown.
func (e *Env) HealthAddr(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.Vars[healthVar(name)]
}

// MetricsURL returns the /metrics URL of a Flotilla process of the
// environment ("planner", "actuator-2", ...), "" when unknown.
func (e *Env) MetricsURL(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.Vars[metricsVar(name)]
}

// StartFlotilla prepares the environment and starts the three services.
func (e *Env) StartFlotilla(ctx context.Context, o FlotillaOptions) error {
	if _, err := e.Prepare(ctx); err != nil {
		return err
	}
	procs, err := e.FlotillaProcesses(o)
	if err != nil {
		return err
	}
	for _, p := range procs {
		if err := e.StartProcess(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// grpcReady is ready once the server answers grpc.health.v1 with SERVING
// for service ("" is the overall status: serving, and for an elected
// service, leading).
func grpcReady(addr, service string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("%s is %s", addr, resp.GetStatus())
		}
		return nil
	}
}
