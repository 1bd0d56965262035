package crds_test

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/api/crds/crdtest"
)

// patch returns base with the field at dotted path set to the YAML value
// (or removed when value is "<delete>"), as JSON.
func patch(t *testing.T, base, path, value string) []byte {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(base), &obj); err != nil {
		t.Fatalf("base: %v", err)
	}
	keys := strings.Split(path, ".")
	m := obj
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	last := keys[len(keys)-1]
	if value == "<delete>" {
		delete(m, last)
	} else {
		var v any
		if err := yaml.Unmarshal([]byte(value), &v); err != nil {
			t.Fatalf("value %q: %v", value, err)
		}
		m[last] = v
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// admissionCase is one change to a valid object and what the API server
// says: wantErr empty means accepted, otherwise a substring of the error.
type admissionCase struct {
	name    string
	path    string
	value   string
	wantErr string
}

func runAdmission(t *testing.T, base string, cases []admissionCase) {
	t.Helper()
	v := newValidator(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Create(patch(t, base, tc.path, tc.value))
			checkAdmission(t, err, tc.wantErr)
		})
	}
}

func checkAdmission(t *testing.T, err error, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Errorf("rejected: %v", err)
	case wantErr != "" && err == nil:
		t.Errorf("accepted, want an error containing %q", wantErr)
	case wantErr != "" && !crdtest.IsInvalid(err):
		t.Errorf("error %v is not an invalid-object error", err)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Errorf("error %q does not contain %q", err, wantErr)
	}
}
