package localenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNotBuilt reports that the control-plane binaries are not in the cache
// and building them was not allowed (FLOTILLA_BUILD=0).
var ErrNotBuilt = errors.New("control-plane binaries are not built (run tools/controlplane/build.sh, or unset FLOTILLA_BUILD=0)")

// ControlPlaneBinaries is where the control-plane executables are.
type ControlPlaneBinaries struct {
	// Dir holds etcd, kube-apiserver, kube-scheduler, kube-controller-manager
	// and kwok.
	Dir string
	// KwokStages is the kwok Stage configuration.
	KwokStages string
}

var controlPlaneNames = []string{"etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager", "kwok"}

// FindControlPlane locates the control-plane binaries: $FLOTILLA_KUBE_BIN
// (with the stages at $FLOTILLA_KWOK_STAGES or ../kwok/stages.yaml) when set,
// else the cache of tools/controlplane/build.sh, which it runs when the cache
// is cold unless FLOTILLA_BUILD=0 (then it returns ErrNotBuilt). Build
// output goes to progress.
func FindControlPlane(ctx context.Context, progress io.Writer) (ControlPlaneBinaries, error) {
	if dir := os.Getenv("FLOTILLA_KUBE_BIN"); dir != "" {
		stages := os.Getenv("FLOTILLA_KWOK_STAGES")
		if stages == "" {
			stages = filepath.Join(dir, "..", "kwok", "stages.yaml")
		}
		b := ControlPlaneBinaries{Dir: dir, KwokStages: filepath.Clean(stages)}
		return b, b.check()
	}
	root, err := RepoRoot()
	if err != nil {
		return ControlPlaneBinaries{}, err
	}
	script := filepath.Join(root, "tools", "controlplane", "build.sh")
	dir, err := cacheDir(script)
	if err != nil {
		return ControlPlaneBinaries{}, err
	}
	if !built(dir) {
		if os.Getenv("FLOTILLA_BUILD") == "0" {
			return ControlPlaneBinaries{}, ErrNotBuilt
		}
		if err := build(ctx, script, dir, progress); err != nil {
			return ControlPlaneBinaries{}, err
		}
	}
	b := ControlPlaneBinaries{Dir: filepath.Join(dir, "bin"), KwokStages: filepath.Join(dir, "kwok", "stages.yaml")}
	return b, b.check()
}

func (b ControlPlaneBinaries) check() error {
	for _, n := range controlPlaneNames {
		if _, err := os.Stat(filepath.Join(b.Dir, n)); err != nil {
			return fmt.Errorf("control-plane binary %s: %w", n, err)
		}
	}
	if _, err := os.Stat(b.KwokStages); err != nil {
		return fmt.Errorf("kwok stages: %w", err)
	}
	return nil
}

// RepoRoot finds the Flotilla repository: from this package's source
// location, then upwards from the working directory and the executable.
func RepoRoot() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, s := range starts {
		for d := s; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "tools", "controlplane", "build.sh")); err == nil {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", errors.New("flotilla repository not found (set FLOTILLA_KUBE_BIN to the control-plane bin dir)")
}

var k8sVersionLine = regexp.MustCompile(`(?m)^K8S_VERSION=(\S+)\s*$`)

// cacheDir computes the directory build.sh builds into: the Kubernetes
// version and a stamp of the tools module's go.mod and go.sum.
func cacheDir(script string) (string, error) {
	src, err := os.ReadFile(script)
	if err != nil {
		return "", fmt.Errorf("read build script: %w", err)
	}
	m := k8sVersionLine.FindSubmatch(src)
	if m == nil {
		return "", fmt.Errorf("no K8S_VERSION in %s", script)
	}
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(script), f))
		if err != nil {
			return "", fmt.Errorf("stamp control-plane module: %w", err)
		}
		h.Write(b)
	}
	base := os.Getenv("FLOTILLA_CACHE")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cache dir: %w", err)
		}
		base = filepath.Join(home, ".cache", "flotilla")
	}
	stamp := hex.EncodeToString(h.Sum(nil))[:12]
	return filepath.Join(base, "k8s-"+string(m[1])+"-"+stamp), nil
}

func built(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ".done"))
	return err == nil
}

// build runs build.sh under a lock, or waits for a build.sh that is already
// running, so two callers never build at once.
func build(ctx context.Context, script, dir string, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("build control plane: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(filepath.Dir(dir), ".build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("build control plane: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("build control plane: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	for otherBuildRunning(filepath.Dir(script)) && !built(dir) {
		fmt.Fprintln(progress, "waiting for a running tools/controlplane/build.sh to finish")
		select {
		case <-ctx.Done():
			return fmt.Errorf("build control plane: %w", ctx.Err())
		case <-time.After(10 * time.Second):
		}
	}
	if built(dir) {
		return nil
	}
	fmt.Fprintln(progress, "building the control plane (cold: ~15-20 min on 2 cores)")
	cmd := exec.CommandContext(ctx, "bash", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, progress
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build control plane: %w", err)
	}
	if got := strings.TrimSpace(lastLine(out.String())); got != dir {
		return fmt.Errorf("build control plane: built into %q, expected %q", got, dir)
	}
	return nil
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// otherBuildRunning reports whether a build.sh runs in scriptDir.
func otherBuildRunning(scriptDir string) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte("build.sh")) {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && cwd == scriptDir {
			return true
		}
	}
	return false
}

// findExecutable looks for a program by name: an explicit path from the
// environment variable env, then PATH.
func findExecutable(name, env string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH (or set %s): %w", name, env, err)
	}
	return p, nil
}
