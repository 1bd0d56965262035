// Package soak runs Flotilla for a long while on the real local stack
// (etcd, kube-apiserver, scheduler, controller-manager, kwok, moto_server,
// the simulated kubelet and the three services) under random scale-ups and
// scale-downs of many Deployments, and checks its invariants every few
// seconds: no leaked instance, no NodeClaim with two instances, NodePool
// limits held, no PDB-guarded pod lost without an eviction, and pending
// pods that fit get capacity within a bound. It reports the peak memory of
// each service.
//
// It runs only with FLOTILLA_SOAK=1 (make soak); the duration is
// -soak.duration or FLOTILLA_SOAK_DURATION (default 30m).
package soak

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

// Settings of a run; flags win over the FLOTILLA_SOAK_* variables.
var (
	duration    = flag.Duration("soak.duration", envDuration("FLOTILLA_SOAK_DURATION", 30*time.Minute), "how long to scale up and down")
	deployments = flag.Int("soak.deployments", envInt("FLOTILLA_SOAK_DEPLOYMENTS", 20), "Deployments scaled at random")
	maxPods     = flag.Int("soak.max-pods", envInt("FLOTILLA_SOAK_MAX_PODS", 2000), "most pods at once, over all Deployments")
	seed        = flag.Int64("soak.seed", int64(envInt("FLOTILLA_SOAK_SEED", 1)), "seed of the random scaling schedule")
	interval    = flag.Duration("soak.check-interval", 10*time.Second, "how often the invariants are checked")
	pendingMax  = flag.Duration("soak.pending-bound", 3*time.Minute, "how long a pending pod that fits may wait for capacity")
	replicas    = flag.Int("soak.replicas", 1, "replicas of the actuator and the watcher")
)

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// env is the local stack the soak runs on.
var env *localenv.Env

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if os.Getenv("FLOTILLA_SOAK") != "1" {
		fmt.Println("soak: skipped (set FLOTILLA_SOAK=1, or run make soak)")
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err := localenv.FlotillaBinaries(ctx, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	env, err = localenv.Start(ctx, localenv.Options{Progress: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak: start local environment:", err)
		return 1
	}
	code := 1
	defer func() {
		if code != 0 {
			env.KeepDir()
			fmt.Fprintf(os.Stderr, "soak: environment state and logs kept in %s\n", env.Dir)
		}
		_ = env.Stop(context.Background())
	}()
	if err := env.StartFlotilla(ctx, localenv.FlotillaOptions{BinDir: bin, Replicas: *replicas}); err != nil {
		fmt.Fprintln(os.Stderr, "soak: start flotilla:", err)
		return 1
	}
	code = m.Run()
	return code
}
