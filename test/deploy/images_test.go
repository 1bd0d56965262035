package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfiles checks what `make images` builds without a Docker engine:
// each service's Dockerfile compiles that service's main package, copies
// every module go.work uses before downloading, and ends in a distroless
// image running as the non-root user the Deployment's securityContext names
// (65532), with the service binary as its entrypoint.
func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	work, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	modules := regexp.MustCompile(`(?m)^\s+\./(\S+)$`).FindAllStringSubmatch(string(work), -1)
	if len(modules) == 0 {
		t.Fatal("go.work lists no modules")
	}
	for _, svc := range []string{"planner", "actuator", "watcher"} {
		t.Run(svc, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(root, "services", svc, "Dockerfile"))
			if err != nil {
				t.Fatalf("no Dockerfile: %v", err)
			}
			df := string(b)
			for _, m := range modules {
				if !strings.Contains(df, "COPY "+m[1]+"/go.mod ") {
					t.Errorf("does not copy %s/go.mod before go mod download (go.work needs every module)", m[1])
				}
			}
			build := regexp.MustCompile(`go build .* -o /out/(\S+) (\./cmd/\S+)`).FindStringSubmatch(df)
			if build == nil {
				t.Fatal("no go build of a ./cmd/ package")
			}
			if build[1] != svc {
				t.Errorf("builds /out/%s, want /out/%s", build[1], svc)
			}
			if _, err := os.Stat(filepath.Join(root, "services", svc, build[2], "main.go")); err != nil {
				t.Errorf("builds %s, which has no main.go: %v", build[2], err)
			}
			froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1)
			if len(froms) < 2 {
				t.Fatalf("%d stages, want a build stage and a runtime stage", len(froms))
			}
			if final := froms[len(froms)-1][1]; !strings.HasPrefix(final, "gcr.io/distroless/static") || !strings.HasSuffix(final, ":nonroot") {
				t.Errorf("runtime image %s, want distroless static nonroot", final)
			}
			if !regexp.MustCompile(`(?m)^USER 65532(:65532)?$`).MatchString(df) {
				t.Error("does not run as USER 65532")
			}
			if !strings.Contains(df, `ENTRYPOINT ["/`+svc+`"]`) {
				t.Errorf("entrypoint is not /%s", svc)
			}
		})
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatalf("no .dockerignore: %v", err)
	}
	for _, dir := range []string{".git", ".cache", "bin"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(dir) + `$`).Match(ignore) {
			t.Errorf(".dockerignore does not leave out %s", dir)
		}
	}
}
