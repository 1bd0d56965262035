package crds_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/api/crds"
	"github.com/flotilla-dev/flotilla/api/crds/crdtest"
)

// validator admits objects of every embedded CRD; built once per test binary.
var validator = sync.OnceValues(func() (*crdtest.Validator, error) {
	var manifests [][]byte
	for _, m := range crds.All() {
		manifests = append(manifests, m.Data)
	}
	return crdtest.New(manifests...)
})

func newValidator(t *testing.T) *crdtest.Validator {
	t.Helper()
	v, err := validator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAllListsEveryCRD(t *testing.T) {
	t.Parallel()
	var got []string
	for _, m := range crds.All() {
		got = append(got, m.Name)
	}
	want := []string{
		"karpenter.k8s.aws_ec2nodeclasses.yaml",
		"karpenter.k8s.aws_provisioners.yaml",
		"karpenter.sh_nodeclaims.yaml",
		"karpenter.sh_nodepools.yaml",
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("All() = %v, want %v", got, want)
	}
}

func TestDefinitionsAreAccepted(t *testing.T) {
	t.Parallel()
	for _, m := range crds.All() {
		t.Run(m.Name, func(t *testing.T) {
			t.Parallel()
			def, err := crdtest.ParseDefinition(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if def.CRD.Spec.Scope != "Cluster" {
				t.Errorf("scope = %s, want Cluster", def.CRD.Spec.Scope)
			}
			if want := strings.TrimSuffix(m.Name, ".yaml"); def.CRD.Spec.Group+"_"+def.CRD.Spec.Names.Plural != want {
				t.Errorf("file %s holds %s.%s", m.Name, def.CRD.Spec.Names.Plural, def.CRD.Spec.Group)
			}
		})
	}
}

// TestDefinitionsCarryTheRules checks that the rules users rely on made it
// into the generated YAML.
func TestDefinitionsCarryTheRules(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"karpenter.sh_nodepools.yaml": {
			"requirements with operator 'In' or 'NotIn' must have at least one value",
			"requirements with operator 'Exists' or 'DoesNotExist' must not have values",
			"requirements with operator 'Gt' or 'Lt' must have a single non-negative integer value",
			"requirements with 'minValues' must have at least that many values",
			`label domain "kubernetes.io" is restricted`,
			"'schedule' must be set with 'duration'",
			"nodeClassRef.kind is immutable",
		},
		"karpenter.sh_nodeclaims.yaml": {
			"nodeClassRef is immutable",
			"requirements with operator 'In' or 'NotIn' must have at least one value",
		},
		"karpenter.k8s.aws_ec2nodeclasses.yaml": {
			"'id' cannot be combined with 'tags' in a subnet selector term",
			"an 'alias' term must be the only amiSelectorTerm",
			"'role' and 'instanceProfile' are mutually exclusive",
		},
		"karpenter.k8s.aws_provisioners.yaml": {
			"exactly one of 'provider' or 'providerRef' must be set",
			"'ttlSecondsAfterEmpty' and 'consolidation.enabled' are mutually exclusive",
		},
	}
	for _, m := range crds.All() {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(m.Data, &crd); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		var messages []string
		for _, v := range crd.Spec.Versions {
			collectMessages(v.Schema.OpenAPIV3Schema, &messages)
		}
		all := strings.Join(messages, "\n")
		for _, msg := range want[m.Name] {
			if !strings.Contains(all, msg) {
				t.Errorf("%s: no CEL rule with message %q", m.Name, msg)
			}
		}
	}
}

func collectMessages(s *apiextensionsv1.JSONSchemaProps, out *[]string) {
	if s == nil {
		return
	}
	for _, r := range s.XValidations {
		*out = append(*out, r.Message)
	}
	for _, p := range s.Properties {
		collectMessages(&p, out)
	}
	if s.Items != nil {
		collectMessages(s.Items.Schema, out)
	}
	if s.AdditionalProperties != nil {
		collectMessages(s.AdditionalProperties.Schema, out)
	}
}

// TestExamplesAreAccepted admits every example manifest in the API packages'
// testdata.
func TestExamplesAreAccepted(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	files, err := filepath.Glob("../*/*/testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d examples: %v", len(files), files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Create(data); err != nil {
				t.Errorf("rejected: %v", err)
			}
		})
	}
}
