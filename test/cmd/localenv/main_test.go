package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

// TestUpStatusEnvDown drives the command the way `make up` and `make down`
// do, with free ports so it can run beside a `make up` environment, and
// checks that down leaves no process behind.
func TestUpStatusEnvDown(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	if _, err := localenv.FindControlPlane(t.Context(), nil); err != nil {
		if os.Getenv("FLOTILLA_BUILD") == "0" {
			t.Skipf("skipping: %v", err)
		}
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "localenv")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "env")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "FLOTILLA_ENV_DIR="+dir)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { _, _ = run("down") })

	out, err := run("up", "--free-ports", "--no-flotilla")
	if err != nil {
		t.Fatalf("localenv up: %v\n%s", err, out)
	}
	t.Logf("localenv up:\n%s", out)
	for _, want := range []string{filepath.Join(dir, "kubeconfig"), filepath.Join(dir, "env")} {
		if !strings.Contains(out, want) {
			t.Errorf("up output does not mention %s", want)
		}
	}

	out, err = run("status")
	if err != nil {
		t.Fatalf("localenv status: %v\n%s", err, out)
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager", "kwok", "moto", "kubelet-sim", "jaeger"} {
		if !strings.Contains(out, name) {
			t.Errorf("status does not list %s:\n%s", name, out)
		}
	}

	out, err = run("env")
	if err != nil || !strings.Contains(out, "export KUBECONFIG=") || !strings.Contains(out, "export AWS_ENDPOINT_URL=") {
		t.Errorf("localenv env: %v\n%s", err, out)
	}

	// A second up finds the environment running and changes nothing.
	pids := recordedPIDs(t, dir)
	if out, err := run("up", "--free-ports", "--no-flotilla"); err != nil {
		t.Fatalf("second localenv up: %v\n%s", err, out)
	}
	if again := recordedPIDs(t, dir); len(again) != len(pids) || strings.Join(again, ",") != strings.Join(pids, ",") {
		t.Errorf("second up changed the processes: %v → %v", pids, again)
	}

	if out, err := run("down"); err != nil {
		t.Fatalf("localenv down: %v\n%s", err, out)
	}
	// pgrep for anything still referring to the state dir, and the pids.
	if out, err := exec.Command("pgrep", "-af", dir).Output(); err == nil {
		t.Errorf("processes left after down:\n%s", out)
	}
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			stat, _ := os.ReadFile("/proc/" + pid + "/stat")
			if !strings.Contains(string(stat), ") Z ") {
				t.Errorf("pid %s still running after down: %s", pid, stat)
			}
		}
	}
	if out, _ := run("status"); !strings.Contains(out, "No environment") {
		t.Errorf("status after down:\n%s", out)
	}
}

func recordedPIDs(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "run", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var rec localenv.ProcessRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, strconv.Itoa(rec.PID))
	}
	// The control plane, kwok, moto, the simulated kubelet and Jaeger.
	if len(out) != 8 {
		t.Errorf("recorded processes = %d, want 8", len(out))
	}
	return out
}
