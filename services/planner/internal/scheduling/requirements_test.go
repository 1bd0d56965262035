package scheduling

import (
	"testing"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
	"github.com/google/go-cmp/cmp"
)

func req(key string, op model.Operator, v ...string) model.Requirement {
	return model.Requirement{Key: key, Operator: op, Values: v}
}

func TestSetIntersect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		a, b      model.Requirement
		empty     bool
		allows    []string
		disallows []string
		absentOK  bool
	}{
		{"In and In", req("k", model.OpIn, "a", "b"), req("k", model.OpIn, "b", "c"), false, []string{"b"}, []string{"a", "c"}, false},
		{"In and NotIn", req("k", model.OpIn, "a", "b"), req("k", model.OpNotIn, "a"), false, []string{"b"}, []string{"a"}, false},
		{"disjoint In", req("k", model.OpIn, "a"), req("k", model.OpIn, "b"), true, nil, []string{"a", "b"}, false},
		{"NotIn and DoesNotExist", req("k", model.OpNotIn, "a"), req("k", model.OpDoesNotExist), false, nil, []string{"a", "b"}, true},
		{"Exists and DoesNotExist", req("k", model.OpExists), req("k", model.OpDoesNotExist), true, nil, []string{"a"}, false},
		{"Gt and Lt", req("k", model.OpGt, "2"), req("k", model.OpLt, "5"), false, []string{"3", "4"}, []string{"2", "5", "x"}, false},
		{"Gt and Lt leave nothing", req("k", model.OpGt, "4"), req("k", model.OpLt, "5"), true, nil, []string{"4", "5"}, false},
		{"In and Gt", req("k", model.OpIn, "1", "8", "16"), req("k", model.OpGt, "4"), false, []string{"8", "16"}, []string{"1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := SetOf(tt.a).Intersect(SetOf(tt.b))
			if s.Empty() != tt.empty {
				t.Errorf("Empty() = %t, want %t (%+v)", s.Empty(), tt.empty, s)
			}
			for _, v := range tt.allows {
				if !s.Has(v) {
					t.Errorf("does not allow %q", v)
				}
			}
			for _, v := range tt.disallows {
				if s.Has(v) {
					t.Errorf("allows %q", v)
				}
			}
			if s.AbsentOK != tt.absentOK {
				t.Errorf("AbsentOK = %t, want %t", s.AbsentOK, tt.absentOK)
			}
		})
	}
}

func TestRequirements(t *testing.T) {
	t.Parallel()
	pool := NewRequirements(req("team", model.OpIn, "a", "b"), req(model.LabelZone, model.OpIn, "z1", "z2"))
	pod := NewRequirements(req("team", model.OpIn, "b"), req("tier", model.OpNotIn, "x"))
	got, conflict := pool.Intersect(pod)
	if conflict != "" {
		t.Fatalf("conflict on %s", conflict)
	}
	if diff := cmp.Diff(map[string]string{"team": "b"}, got.Labels()); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	want := []model.Requirement{
		req("team", model.OpIn, "b"),
		req("tier", model.OpNotIn, "x"),
		req(model.LabelZone, model.OpIn, "z1", "z2"),
	}
	if diff := cmp.Diff(want, got.Model()); diff != "" {
		t.Errorf("model (-want +got):\n%s", diff)
	}
	if k := pool.Conflict(NewRequirements(req("team", model.OpIn, "c"))); k != "team" {
		t.Errorf("conflict key %q, want team", k)
	}
	if !got.Matches(map[string]string{"team": "b", model.LabelZone: "z2"}) || got.Matches(map[string]string{"team": "b", "tier": "x", model.LabelZone: "z1"}) {
		t.Errorf("Matches disagrees with the requirements")
	}
}
