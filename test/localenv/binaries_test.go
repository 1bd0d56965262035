package localenv

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The cache directory computed in Go must be the one build.sh builds into,
// or a warm cache would look cold (and FLOTILLA_BUILD=0 would skip).
func TestCacheDirMatchesBuildScript(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "tools", "controlplane", "build.sh")
	t.Setenv("FLOTILLA_CACHE", "/cache-base")
	got, err := cacheDir(script)
	if err != nil {
		t.Fatal(err)
	}
	want, err := runShell(`cd ` + filepath.Dir(script) + ` && v=$(sed -n 's/^K8S_VERSION=//p' build.sh) && ` +
		`echo "/cache-base/k8s-$v-$(cat go.mod go.sum | sha256sum | cut -c1-12)"`)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("cacheDir() = %q, want %q", got, want)
	}
}

func TestFindControlPlaneFromEnvironment(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range controlPlaneNames {
		if err := os.WriteFile(filepath.Join(bin, n), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("FLOTILLA_KUBE_BIN", bin)
	t.Setenv("FLOTILLA_KWOK_STAGES", "")
	if _, err := FindControlPlane(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "kwok stages") {
		t.Fatalf("FindControlPlane() error = %v, want missing kwok stages", err)
	}
	stages := filepath.Join(filepath.Dir(bin), "kwok", "stages.yaml")
	if err := os.MkdirAll(filepath.Dir(stages), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stages, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := FindControlPlane(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Dir != bin || got.KwokStages != stages {
		t.Errorf("FindControlPlane() = %+v, want dir %s stages %s", got, bin, stages)
	}
}

func TestFindControlPlaneDoesNotBuildWhenForbidden(t *testing.T) {
	t.Setenv("FLOTILLA_KUBE_BIN", "")
	t.Setenv("FLOTILLA_CACHE", t.TempDir())
	t.Setenv("FLOTILLA_BUILD", "0")
	if _, err := FindControlPlane(t.Context(), nil); !errors.Is(err, ErrNotBuilt) {
		t.Fatalf("FindControlPlane() error = %v, want ErrNotBuilt", err)
	}
}
