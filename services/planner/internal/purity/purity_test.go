// Package purity holds only a test: the planner's solver packages import
// nothing but the standard library and each other — no gRPC, generated
// code, Kubernetes, AWS or logging — so the solver runs anywhere, from a
// file, deterministically.
package purity

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/flotilla-dev/flotilla/services/planner/"

// core are the solver packages (relative to internal/).
var core = []string{"model", "scheduling", "provisioning", "consolidation"}

func TestSolverImportsOnlyTheStandardLibrary(t *testing.T) {
	allowed := map[string]bool{}
	for _, c := range core {
		allowed[module+"internal/"+c] = true
	}
	banned := []string{"log", "log/slog", "math/rand", "math/rand/v2"}
	for _, c := range core {
		dir := filepath.Join("..", c)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := e.Name()
			if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, name), nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				first, _, _ := strings.Cut(path, "/")
				switch {
				case allowed[path]:
				case strings.Contains(first, "."):
					t.Errorf("%s/%s imports %s: the solver may import only the standard library", c, name, path)
				default:
					for _, b := range banned {
						if path == b {
							t.Errorf("%s/%s imports %s: the solver returns reasons as data and uses no global randomness", c, name, path)
						}
					}
				}
			}
		}
	}
}
