// Command localenv brings the local Flotilla environment up and down:
//
//	localenv up       start etcd, the Kubernetes control plane, kwok, moto,
//	                  the simulated kubelet and Flotilla's three services on
//	                  127.0.0.1, detached
//	localenv demo     on a running environment: apply an example NodePool,
//	                  scale a Deployment up and down, show nodes come and go
//	localenv down     stop everything up started
//	localenv status   list the processes and their health
//	localenv env      print the shell exports (eval "$(localenv env)")
//	localenv kubelet-sim [flags]
//	                  run the simulated kubelet (up starts it this way)
//
// The state directory is --dir, else $FLOTILLA_ENV_DIR, else <repo>/.cache/env.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/flotilla-dev/flotilla/test/kubelet"
	"github.com/flotilla-dev/flotilla/test/localenv"
)

const usage = `usage: localenv up|down|status|env|demo [flags]
       localenv kubelet-sim [flags]
Run "localenv <command> -h" for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "up":
		err = up(ctx, args, os.Stdout, os.Stderr)
	case "down":
		err = down(ctx, args, os.Stdout)
	case "status":
		err = status(ctx, args, os.Stdout)
	case "env":
		err = printEnv(args, os.Stdout)
	case "demo":
		err = demo(ctx, args, os.Stdout)
	case "kubelet-sim":
		err = kubeletSim(ctx, args)
	case "-h", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "localenv "+cmd+":", err)
		os.Exit(1)
	}
}

func dirFlag(fs *flag.FlagSet) *string {
	return fs.String("dir", localenv.DefaultDir(), "state directory (env FLOTILLA_ENV_DIR)")
}

func up(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dir := dirFlag(fs)
	free := fs.Bool("free-ports", false, "pick free ports instead of the fixed defaults (apiserver 6443, etcd 2379, moto 5000)")
	cluster := fs.String("cluster-name", "my-cluster", "cluster name the simulated kubelet serves")
	timeout := fs.Duration("timeout", 40*time.Minute, "give up after this long (includes a cold control-plane build)")
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	flotillaBin := fs.String("flotilla-bin", filepath.Dir(self), "directory holding the planner, actuator and watcher binaries (make build)")
	noFlotilla := fs.Bool("no-flotilla", false, "start only the environment, not Flotilla's services")
	noJaeger := fs.Bool("no-jaeger", false, "do not start Jaeger (the services then export no traces)")
	_ = fs.Parse(args)

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	began := time.Now()
	env, err := localenv.Up(ctx, localenv.Options{
		Dir:            *dir,
		FreePorts:      *free,
		ClusterName:    *cluster,
		KubeletCommand: []string{self, "kubelet-sim"},
		Progress:       stderr,
	})
	if err != nil {
		return err
	}
	if !*noJaeger {
		if err := startJaeger(ctx, env, *free, stderr); err != nil {
			return err
		}
	}
	if !*noFlotilla {
		if err := startFlotilla(ctx, env, *flotillaBin, *free); err != nil {
			return err
		}
	}
	services := ""
	if !*noFlotilla {
		services = fmt.Sprintf("  planner:     %s   actuator %s   watcher %s   (mutual TLS; see README \"grpcurl\")\n",
			env.Vars[localenv.VarPlannerAddr], env.Vars[localenv.VarActuatorAddr], env.Vars[localenv.VarWatcherAddr])
	}
	traces := "(no Jaeger)"
	if u := env.Vars[localenv.VarJaegerURL]; u != "" {
		traces = u + "/api/traces?service=watcher   (Jaeger query API; this build has no UI)"
	}
	fmt.Fprintf(stdout, `Local environment up (%s) in %s

  kubeconfig:  %s
  apiserver:   %s
  moto (EC2):  %s   region %s, credentials test/test
  logs:        %s/logs

%s  traces:      %s

Use it from a shell:
  . %s            # exports KUBECONFIG, AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, ...
  kubectl get nodes
Stop it with: localenv down --dir %s
`, time.Since(began).Round(time.Millisecond), env.Dir, env.Kubeconfig, env.APIServerURL, env.MotoEndpoint,
		env.Region, env.Dir, services, traces, env.EnvFile(), env.Dir)
	return nil
}

// startJaeger starts Jaeger (building it on first use) unless it runs.
// Without freePorts it listens on Jaeger's usual ports: 16686 (query API)
// and 4317 (OTLP gRPC).
func startJaeger(ctx context.Context, env *localenv.Env, freePorts bool, progress io.Writer) error {
	procs, err := env.Status(ctx)
	if err != nil {
		return err
	}
	for _, p := range procs {
		if p.Name == localenv.ProcJaeger && p.Alive {
			return nil
		}
	}
	bin, err := localenv.FindJaeger(ctx, progress)
	if err != nil {
		return err
	}
	var o localenv.JaegerOptions
	if !freePorts {
		o = localenv.JaegerOptions{QueryPort: 16686, OTLPPort: 4317}
	}
	return env.StartJaeger(ctx, bin, o)
}

// startFlotilla starts the three services unless they already run.
// Without freePorts they listen on 7101 (planner), 7102 (actuator) and 7103
// (watcher), the services' own defaults.
func startFlotilla(ctx context.Context, env *localenv.Env, bin string, freePorts bool) error {
	procs, err := env.Status(ctx)
	if err != nil {
		return err
	}
	for _, p := range procs {
		if p.Name == localenv.ProcWatcher && p.Alive {
			return nil
		}
	}
	for _, name := range []string{"planner", "actuator", "watcher"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return fmt.Errorf("%s not built in %s (run make build, or pass --flotilla-bin): %w", name, bin, err)
		}
	}
	opts := localenv.FlotillaOptions{BinDir: bin}
	if !freePorts {
		opts.PlannerPort, opts.ActuatorPort, opts.WatcherPort = 7101, 7102, 7103
	}
	return env.StartFlotilla(ctx, opts)
}

func down(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	dir := dirFlag(fs)
	timeout := fs.Duration("timeout", 10*time.Second, "wait this long after SIGTERM before SIGKILL")
	_ = fs.Parse(args)
	if err := localenv.Down(ctx, *dir, *timeout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Local environment in %s is down.\n", *dir)
	return nil
}

func status(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ExitOnError)
	dir := dirFlag(fs)
	_ = fs.Parse(args)
	env, err := localenv.Load(*dir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stdout, "No environment in %s (run localenv up).\n", *dir)
		return nil
	}
	if err != nil {
		return err
	}
	procs, err := env.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Environment in %s\n  kubeconfig %s\n  apiserver  %s\n  moto       %s\n\n",
		env.Dir, env.Kubeconfig, env.APIServerURL, env.MotoEndpoint)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tRUNNING\tUPTIME\tHEALTH")
	healthy := true
	for _, p := range procs {
		up := "-"
		if p.Alive {
			up = time.Since(p.StartedAt).Round(time.Second).String()
		}
		health := p.Health
		if i := strings.IndexByte(health, '\n'); i >= 0 {
			health = health[:i]
		}
		healthy = healthy && p.Alive && (p.Health == "ok" || p.Health == "-")
		fmt.Fprintf(tw, "%s\t%d\t%t\t%s\t%s\n", p.Name, p.PID, p.Alive, up, health)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !healthy {
		return errors.New("some processes are not running or not healthy")
	}
	return nil
}

func printEnv(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("env", flag.ExitOnError)
	dir := dirFlag(fs)
	_ = fs.Parse(args)
	env, err := localenv.Load(*dir)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(env.EnvFile())
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

func kubeletSim(ctx context.Context, args []string) error {
	var opts kubelet.Options
	fs := flag.NewFlagSet("kubelet-sim", flag.ExitOnError)
	opts.RegisterFlags(fs)
	_ = fs.Parse(args)
	return kubelet.Serve(ctx, opts, slog.New(slog.NewJSONHandler(os.Stderr, nil)))
}
