package localenv

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
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
// environment, in start order, and publishes their addresses.
func (e *Env) FlotillaProcesses(o FlotillaOptions) ([]Process, error) {
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
	addr := func(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
	planner, actuator, watcher := addr(o.PlannerPort), addr(o.ActuatorPort), addr(o.WatcherPort)
	for k, v := range map[string]string{VarPlannerAddr: planner, VarActuatorAddr: actuator, VarWatcherAddr: watcher} {
		if err := e.SetVar(k, v); err != nil {
			return nil, err
		}
	}
	env := append(e.Environ(), o.ExtraEnv...)
	common := []string{"--log-format=json", "--log-level=info"}
	bin := func(name string) string { return filepath.Join(o.BinDir, name) }
	return []Process{
		{
			Name: ProcPlanner, Env: append(env, "OTEL_SERVICE_NAME=planner"),
			Argv:  append([]string{bin("planner"), "serve", "--listen=" + planner}, common...),
			Ready: grpcReady(planner),
		},
		{
			Name: ProcActuator, Env: append(env, "OTEL_SERVICE_NAME=actuator"),
			Argv: append([]string{bin("actuator"), "--listen=" + actuator, "--kubeconfig=" + e.Kubeconfig,
				"--cluster-name=" + e.ClusterName, "--region=" + e.Region, "--aws-endpoint=" + e.MotoEndpoint,
				"--ami-parameter-prefix=" + moto.AMIParameterPrefix, "--kubernetes-version=" + KubernetesMinor,
				"--pricing-api=false"}, common...),
			Ready: grpcReady(actuator),
		},
		{
			Name: ProcWatcher, Env: append(env, "OTEL_SERVICE_NAME=watcher"),
			Argv: append([]string{bin("watcher"), "--listen=" + watcher, "--kubeconfig=" + e.Kubeconfig,
				"--planner-addr=" + planner, "--actuator-addr=" + actuator, "--cluster-name=" + e.ClusterName,
				"--region=" + e.Region}, common...),
			Ready: grpcReady(watcher),
		},
	}, nil
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
// (overall status, the empty service name).
func grpcReady(addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("%s is %s", addr, resp.GetStatus())
		}
		return nil
	}
}
