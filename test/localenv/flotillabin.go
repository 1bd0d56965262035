package localenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// FlotillaBinaries returns the directory holding the planner, actuator and
// watcher binaries: $FLOTILLA_BIN when set (make build puts them in bin/),
// else a fresh build of the three into dir (a new temporary directory when
// dir is empty).
func FlotillaBinaries(ctx context.Context, dir string) (string, error) {
	if bin := os.Getenv("FLOTILLA_BIN"); bin != "" {
		return bin, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "flotilla-bin-"); err != nil {
			return "", err
		}
	}
	for _, svc := range []string{ProcPlanner, ProcActuator, ProcWatcher} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, svc), "./cmd/"+svc)
		cmd.Dir = filepath.Join(root, "services", svc)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s: %w\n%s", svc, err, out)
		}
	}
	return dir, nil
}
