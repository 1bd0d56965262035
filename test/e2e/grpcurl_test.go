package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/test/localenv"
)

// grpcurlBinary finds grpcurl: on PATH, in the repository's .bin (make
// tools), or built from the pinned tools module.
func grpcurlBinary(t *testing.T, root string) string {
	t.Helper()
	if p, err := exec.LookPath("grpcurl"); err == nil {
		return p
	}
	if p := filepath.Join(root, ".bin", "grpcurl"); fileExists(p) {
		return p
	}
	out := filepath.Join(t.TempDir(), "grpcurl")
	cmd := exec.Command("go", "build", "-o", out, "github.com/fullstorydev/grpcurl/cmd/grpcurl")
	cmd.Dir = filepath.Join(root, "tools", "dev")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build grpcurl: %v\n%s", err, b)
	}
	return out
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// readmeSection returns the shell blocks of the README section with the
// given heading.
func readmeSection(t *testing.T, root, heading string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n## "+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", heading)
	}
	section := text[i+1:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	var script strings.Builder
	for _, block := range strings.Split(section, "```sh\n")[1:] {
		end := strings.Index(block, "```")
		if end < 0 {
			t.Fatalf("README section %q: unterminated code block", heading)
		}
		script.WriteString(block[:end])
	}
	if script.Len() == 0 {
		t.Fatalf("README section %q has no sh block", heading)
	}
	return script.String()
}

// TestGRPCurlREADME runs the README's grpcurl commands, as written,
// against the environment: list, describe, a what-if Plan from
// examples/whatif.json, the watcher's Snapshot and StreamSnapshot and a
// health check.
func TestGRPCurlREADME(t *testing.T) {
	root, err := localenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	grpcurl := grpcurlBinary(t, root)
	script := readmeSection(t, root, "grpcurl")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), w.env.Environ()...)
	cmd.Env = append(cmd.Env, "PATH="+filepath.Dir(grpcurl)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README grpcurl commands failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"flotilla.planner.v1.Planner",                   // list
		"rpc Plan ( .flotilla.planner.v1.PlanRequest )", // describe
		`"nodeClaims"`,          // the what-if plan
		`"instanceType"`,        //   names an instance type
		`"region": "us-east-1"`, // the watcher's snapshot
		`"status": "SERVING"`,   // health
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The snapshot twice: Snapshot, then StreamSnapshot's first part.
	if n := strings.Count(string(out), `"region": "us-east-1"`); n < 2 {
		t.Errorf("the watcher's region appears %d times, want 2 (Snapshot and StreamSnapshot)", n)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}
