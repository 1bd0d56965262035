// Package crds embeds the CustomResourceDefinition manifests generated from
// the API types (controller-gen), so tests and tools can install them
// without reading files from disk.
package crds

import (
	"embed"
	"io/fs"
)

// FS holds one CRD manifest per file, named <group>_<plural>.yaml (for
// example karpenter.sh_nodepools.yaml).
//
//go:embed *.yaml
var FS embed.FS

// Manifest is one CRD manifest.
type Manifest struct {
	// Name is the file name, e.g. karpenter.sh_nodepools.yaml.
	Name string
	// Data is the YAML.
	Data []byte
}

// All returns every manifest in file-name order.
func All() []Manifest {
	// Reading an embed.FS built from a pattern that matched at compile time
	// cannot fail, so errors are impossible here.
	names, _ := fs.Glob(FS, "*.yaml")
	out := make([]Manifest, 0, len(names))
	for _, name := range names {
		data, _ := FS.ReadFile(name)
		out = append(out, Manifest{Name: name, Data: data})
	}
	return out
}
