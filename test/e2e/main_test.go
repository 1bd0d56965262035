// Package e2e runs Flotilla end to end on real parts: etcd, kube-apiserver,
// kube-scheduler and kube-controller-manager built from Go modules, kwok
// running the pods the scheduler binds, moto_server as EC2/SSM, the
// simulated kubelet, and the planner, actuator and watcher binaries.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/flotilla-dev/flotilla/test/localenv"
	"github.com/flotilla-dev/flotilla/test/moto"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// world is the environment every test of the package shares.
type world struct {
	env  *localenv.Env
	net  *moto.Network
	kube kubernetes.Interface
	dyn  dynamic.Interface
	ec2  *ec2.Client
}

var w *world

// Replicas of the actuator and the watcher the tests run.
const Replicas = 2

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bin, err := localenv.FlotillaBinaries(ctx, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	env, err := localenv.Start(ctx, localenv.Options{Progress: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start local environment:", err)
		return 1
	}
	code := 1
	defer func() {
		if code != 0 {
			env.KeepDir()
			fmt.Fprintf(os.Stderr, "e2e: environment state and logs kept in %s\n", env.Dir)
		}
		_ = env.Stop(context.Background())
	}()
	jaeger, err := localenv.FindJaeger(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if err := env.StartJaeger(ctx, jaeger, localenv.JaegerOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start jaeger:", err)
		return 1
	}
	// As in production: mutual TLS, and two replicas of the actuator and
	// the watcher, one of each leading.
	if err := env.StartFlotilla(ctx, localenv.FlotillaOptions{BinDir: bin, Replicas: Replicas}); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start flotilla:", err)
		return 1
	}
	if w, err = newWorld(ctx, env); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	code = m.Run()
	return code
}

func newWorld(ctx context.Context, env *localenv.Env) (*world, error) {
	rc, err := env.RESTConfig()
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = 200, 400
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	ec2c := ec2.NewFromConfig(env.AWSConfig())
	net, err := env.Prepare(ctx)
	if err != nil {
		return nil, err
	}
	return &world{env: env, net: net, kube: kube, dyn: dyn, ec2: ec2c}, nil
}
