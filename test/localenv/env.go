// Package localenv brings a local Flotilla environment up and down on
// 127.0.0.1: etcd, kube-apiserver, kube-scheduler, kube-controller-manager,
// kwok, moto_server and the simulated kubelet (package kubelet), plus any
// extra processes a caller adds (the Flotilla services, Jaeger).
//
// Everything lives in one state directory: the PKI, the admin kubeconfig,
// an `env` file of shell exports, a record and a log per process. Processes
// run detached in their own process groups, so `localenv up` returns while
// they keep running and a later `localenv down` (Down) stops them.
//
// Tests use Start or StartT, which bring up an isolated environment on free
// ports in a temporary directory and stop it afterwards.
//
// More processes join an environment with Env.StartProcess (or
// Options.Extra): they get a log, a record, a readiness check, and are
// stopped by Stop/Down with the rest. Env.Environ gives them KUBECONFIG,
// AWS_ENDPOINT_URL and the rest; Env.SetVar publishes their addresses in the
// env file; FreePort picks ports; PKI.Issue makes certificates from the CA.
package localenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options configure Up and Start.
type Options struct {
	// Dir is the state directory. Up: DefaultDir(); Start: a new temporary
	// directory, removed by Stop.
	Dir string
	// FreePorts picks free ports instead of Ports (Start always does).
	FreePorts bool
	// Ports are used when FreePorts is false; zero fields take DefaultPorts.
	Ports Ports
	// ClusterName is the cluster the simulated kubelet serves; "my-cluster".
	ClusterName string
	// Region of the simulated EC2; "us-east-1".
	Region string
	// KubeletCommand is the program (and leading arguments) that runs the
	// simulated kubelet as a process; the kubelet flags are appended. When
	// empty, Start runs the kubelet inside the calling process, and Up looks
	// for kubelet-sim next to the executable and on PATH.
	KubeletCommand []string
	// NoKubelet leaves the simulated kubelet out.
	NoKubelet bool
	// Extra processes are started, in order, after the core ones.
	Extra []Process
	// Progress receives build output and startup timings; nil discards.
	Progress io.Writer
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL; 10s.
	StopTimeout time.Duration
}

// Env is a running (or recorded) local environment.
type Env struct {
	// Dir is the state directory.
	Dir string
	// BinDir holds the control-plane binaries; KwokStages their kwok config.
	BinDir, KwokStages string
	// ClusterName and Region are those the simulated kubelet uses.
	ClusterName, Region string
	// Ports the environment listens on (127.0.0.1).
	Ports Ports
	// Kubeconfig is the path of the admin kubeconfig.
	Kubeconfig string
	// APIServerURL is https://127.0.0.1:<port>.
	APIServerURL string
	// MotoEndpoint is the AWS endpoint URL of moto_server.
	MotoEndpoint string
	// EtcdDataDir holds etcd's data (on /dev/shm when present).
	EtcdDataDir string
	// Vars are extra exports written into the env file (see SetVar).
	Vars map[string]string
	// PKI is the environment's CA and certificates.
	PKI *PKI `json:"-"`

	stopTimeout   time.Duration
	dieWithParent bool
	ownsDir       bool
	keepDir       bool

	mu        sync.Mutex
	specs     map[string]Process
	inproc    []*inProcess
	progressW io.Writer
}

// inProcess is a component running as a goroutine of the calling process.
type inProcess struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{} // closed when it has returned
}

// DefaultDir is $FLOTILLA_ENV_DIR, else <repo>/.cache/env, else a directory
// under the user cache.
func DefaultDir() string {
	if d := os.Getenv("FLOTILLA_ENV_DIR"); d != "" {
		return d
	}
	if root, err := RepoRoot(); err == nil {
		return filepath.Join(root, ".cache", "env")
	}
	if c, err := os.UserCacheDir(); err == nil {
		return filepath.Join(c, "flotilla", "env")
	}
	return filepath.Join(os.TempDir(), "flotilla-env")
}

// Up brings the environment up in opts.Dir with its processes detached, and
// returns once every process is ready. When the directory already holds a
// running environment it is returned as it is. On failure everything
// started is stopped again.
func Up(ctx context.Context, opts Options) (*Env, error) {
	if opts.Dir == "" {
		opts.Dir = DefaultDir()
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if e, err := Load(dir); err == nil && e.running() {
		progressf(opts.Progress, "environment already running in %s", dir)
		return e, nil
	}
	// Leftovers of an earlier, partly dead environment.
	if err := Down(ctx, dir, opts.StopTimeout); err != nil {
		return nil, err
	}
	return up(ctx, dir, opts, false)
}

// Start brings up an isolated environment for tests: free ports, a new
// temporary state directory (unless opts.Dir is set), processes that die
// with the calling process, and the simulated kubelet running inside the
// calling process unless opts.KubeletCommand is set. Call Stop when done.
func Start(ctx context.Context, opts Options) (*Env, error) {
	opts.FreePorts = true
	owns := false
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "flotilla-env-")
		if err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
		opts.Dir, owns = d, true
	}
	e, err := up(ctx, opts.Dir, opts, true)
	if err != nil {
		if owns {
			_ = os.RemoveAll(opts.Dir)
		}
		return nil, err
	}
	e.ownsDir = owns
	return e, nil
}

// StartT is Start for a single test: it fails tb on error and stops the
// environment at cleanup, keeping the state directory (logs) when tb failed.
func StartT(tb testing.TB, opts Options) *Env {
	tb.Helper()
	e, err := Start(context.Background(), opts)
	if err != nil {
		tb.Fatalf("start local environment: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			e.KeepDir()
			tb.Logf("local environment state and logs kept in %s", e.Dir)
		}
		if err := e.Stop(context.Background()); err != nil {
			tb.Errorf("stop local environment: %v", err)
		}
	})
	return e
}

func up(ctx context.Context, dir string, opts Options, forTest bool) (e *Env, err error) {
	began := time.Now()
	bins, err := FindControlPlane(ctx, opts.Progress)
	if err != nil {
		return nil, err
	}
	e = &Env{
		Dir:           dir,
		BinDir:        bins.Dir,
		KwokStages:    bins.KwokStages,
		ClusterName:   valueOr(opts.ClusterName, "my-cluster"),
		Region:        valueOr(opts.Region, "us-east-1"),
		Kubeconfig:    filepath.Join(dir, "kubeconfig"),
		Vars:          map[string]string{},
		stopTimeout:   opts.StopTimeout,
		dieWithParent: forTest,
		specs:         map[string]Process{},
		progressW:     opts.Progress,
	}
	if opts.FreePorts {
		if e.Ports, err = freePortSet(); err != nil {
			return nil, err
		}
	} else {
		e.Ports = opts.Ports.withDefaults()
		if err := e.Ports.checkFree(); err != nil {
			return nil, err
		}
	}
	e.APIServerURL = "https://127.0.0.1:" + strconv.Itoa(e.Ports.APIServer)
	e.MotoEndpoint = "http://127.0.0.1:" + strconv.Itoa(e.Ports.Moto)
	e.EtcdDataDir = etcdDataDir(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if e.PKI, err = LoadOrCreatePKI(filepath.Join(dir, "pki")); err != nil {
		return nil, err
	}
	if err := writeKubeconfig(e.Kubeconfig, e.APIServerURL, e.PKI); err != nil {
		return nil, err
	}
	if err := e.save(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if stopErr := e.Stop(context.WithoutCancel(ctx)); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
			e = nil
		}
	}()
	if err := e.startCore(ctx, opts, forTest); err != nil {
		return e, err
	}
	for _, p := range opts.Extra {
		if err := e.StartProcess(ctx, p); err != nil {
			return e, err
		}
	}
	progressf(opts.Progress, "environment up in %s (%s)", time.Since(began).Round(time.Millisecond), dir)
	return e, nil
}

// Load reads the environment recorded in dir (by Up, possibly in another
// process). Its processes may or may not be running; see Status.
func Load(dir string) (*Env, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, fmt.Errorf("load environment: %w", err)
	}
	e := &Env{specs: map[string]Process{}}
	if err := json.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("load environment %s: %w", dir, err)
	}
	e.Dir = dir
	e.PKI = pkiPaths(filepath.Join(dir, "pki"))
	if e.Vars == nil {
		e.Vars = map[string]string{}
	}
	return e, nil
}

// Down stops every process recorded in dir (SIGTERM, then SIGKILL after
// timeout; 10s when zero) and removes etcd's data. The PKI, kubeconfig and
// logs stay. A directory without an environment is not an error.
func Down(ctx context.Context, dir string, timeout time.Duration) error {
	recs, err := readRecords(dir)
	if err != nil {
		return err
	}
	if err := stopRecords(recs, timeout); err != nil {
		return err
	}
	for _, r := range recs {
		_ = os.Remove(recordPath(dir, r.Name))
	}
	if e, err := Load(dir); err == nil && e.EtcdDataDir != "" {
		if err := os.RemoveAll(e.EtcdDataDir); err != nil {
			return fmt.Errorf("remove etcd data: %w", err)
		}
	}
	_ = os.Remove(filepath.Join(dir, "state.json"))
	return ctx.Err()
}

// Stop stops the environment's processes (including an in-process kubelet)
// and, for an environment from Start, removes its state directory unless
// KeepDir was called.
func (e *Env) Stop(ctx context.Context) error {
	e.mu.Lock()
	inproc := e.inproc
	e.inproc = nil
	e.mu.Unlock()
	for _, p := range inproc {
		p.cancel()
		<-p.done
	}
	if err := Down(ctx, e.Dir, e.stopTimeout); err != nil {
		return err
	}
	if e.ownsDir && !e.keepDir {
		if err := os.RemoveAll(e.Dir); err != nil {
			return fmt.Errorf("remove state dir: %w", err)
		}
	}
	return nil
}

// KeepDir makes Stop leave the state directory (logs) in place.
func (e *Env) KeepDir() { e.keepDir = true }

// RESTConfig returns a client configuration with the admin credentials.
func (e *Env) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, nil
}

// Environ returns the variables a program needs to use the environment
// (KUBECONFIG, AWS_ENDPOINT_URL, AWS_REGION, dummy AWS credentials, ports,
// and Vars) as KEY=VALUE, sorted by key.
func (e *Env) Environ() []string {
	m := map[string]string{
		"FLOTILLA_ENV_DIR":                e.Dir,
		"KUBECONFIG":                      e.Kubeconfig,
		"AWS_ENDPOINT_URL":                e.MotoEndpoint,
		"AWS_REGION":                      e.Region,
		"AWS_DEFAULT_REGION":              e.Region,
		"AWS_ACCESS_KEY_ID":               "test",
		"AWS_SECRET_ACCESS_KEY":           "test",
		"AWS_EC2_METADATA_DISABLED":       "true",
		"NO_PROXY":                        "127.0.0.1,localhost",
		"FLOTILLA_CLUSTER_NAME":           e.ClusterName,
		"FLOTILLA_KUBE_BIN":               e.BinDir,
		"FLOTILLA_APISERVER_URL":          e.APIServerURL,
		"FLOTILLA_APISERVER_PORT":         strconv.Itoa(e.Ports.APIServer),
		"FLOTILLA_ETCD_PORT":              strconv.Itoa(e.Ports.EtcdClient),
		"FLOTILLA_MOTO_PORT":              strconv.Itoa(e.Ports.Moto),
		"FLOTILLA_KUBELET_SIM_HEALTH_URL": fmt.Sprintf("http://127.0.0.1:%d/healthz", e.Ports.Kubelet),
	}
	for k, v := range e.Vars {
		m[k] = v
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+m[k])
	}
	return out
}

// SetVar records an extra export (for instance a service's address) in the
// environment's state and env file.
func (e *Env) SetVar(key, value string) error {
	e.mu.Lock()
	e.Vars[key] = value
	e.mu.Unlock()
	return e.save()
}

// EnvFile is the path of the shell file of exports (`. <EnvFile>`).
func (e *Env) EnvFile() string { return filepath.Join(e.Dir, "env") }

// LogFile is the path of a process's log.
func (e *Env) LogFile(name string) string { return filepath.Join(e.Dir, "logs", name+".log") }

func (e *Env) save() error {
	e.mu.Lock()
	b, err := json.MarshalIndent(e, "", "  ")
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("save environment: %w", err)
	}
	if err := writeFile(filepath.Join(e.Dir, "state.json"), b, 0o644); err != nil {
		return fmt.Errorf("save environment: %w", err)
	}
	var sb strings.Builder
	sb.WriteString("# Flotilla local environment; load it with: . " + e.EnvFile() + "\n")
	for _, kv := range e.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		sb.WriteString("export " + k + "=" + shellQuote(v) + "\n")
	}
	if err := writeFile(e.EnvFile(), []byte(sb.String()), 0o644); err != nil {
		return fmt.Errorf("save environment: %w", err)
	}
	return nil
}

// running reports whether every recorded process is alive.
func (e *Env) running() bool {
	recs, err := readRecords(e.Dir)
	if err != nil || len(recs) == 0 {
		return false
	}
	for _, r := range recs {
		if !r.Alive() {
			return false
		}
	}
	return true
}

// etcdDataDir is on /dev/shm when it exists, named after the state dir.
func etcdDataDir(dir string) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() && syscall.Access("/dev/shm", 2) == nil {
		h := sha256.Sum256([]byte(dir))
		return filepath.Join("/dev/shm", "flotilla-etcd-"+hex.EncodeToString(h[:])[:12])
	}
	return filepath.Join(dir, "etcd-data")
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func progressf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}
