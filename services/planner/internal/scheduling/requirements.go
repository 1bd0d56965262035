// Package scheduling holds the constraint algebra the solvers share: sets of
// label values a node template may take (Requirements), narrowed as pods
// join the template, and the checks that decide whether a pod may join.
package scheduling

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/flotilla-dev/flotilla/services/planner/internal/model"
)

// Set is the set of values a node's label may take for one key. AbsentOK
// says whether the node may lack the label; the present values are either a
// finite list (Values) or everything except a list (Complement), further
// bounded by integer bounds from Gt and Lt.
type Set struct {
	AbsentOK   bool
	Complement bool
	// Values is sorted and free of duplicates.
	Values []string
	// Gt and Lt are exclusive integer bounds; math.MinInt64 and
	// math.MaxInt64 when unbounded.
	Gt, Lt int64
}

// Any is the set that allows every value and an absent label.
var Any = Set{AbsentOK: true, Complement: true, Gt: math.MinInt64, Lt: math.MaxInt64}

// SetOf returns the set a requirement allows.
func SetOf(r model.Requirement) Set {
	s := Set{Gt: math.MinInt64, Lt: math.MaxInt64}
	switch r.Operator {
	case model.OpIn:
		s.Values = sortedUnique(r.Values)
	case model.OpNotIn:
		s.AbsentOK, s.Complement, s.Values = true, true, sortedUnique(r.Values)
	case model.OpExists:
		s.Complement = true
	case model.OpDoesNotExist:
		s.AbsentOK = true
	case model.OpGt, model.OpLt:
		s.Complement = true
		if len(r.Values) == 1 {
			if v, err := strconv.ParseInt(r.Values[0], 10, 64); err == nil {
				if r.Operator == model.OpGt {
					s.Gt = v
				} else {
					s.Lt = v
				}
				break
			}
		}
		// Malformed bounds allow nothing (decoding rejects them earlier).
		s.Complement = false
	}
	return s
}

func sortedUnique(v []string) []string {
	out := slices.Clone(v)
	slices.Sort(out)
	return slices.Compact(out)
}

func (s Set) bounded() bool { return s.Gt != math.MinInt64 || s.Lt != math.MaxInt64 }

func (s Set) inBounds(v string) bool {
	if !s.bounded() {
		return true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return err == nil && n > s.Gt && n < s.Lt
}

// Has reports whether v is an allowed present value.
func (s Set) Has(v string) bool {
	if !s.inBounds(v) {
		return false
	}
	_, found := slices.BinarySearch(s.Values, v)
	return found != s.Complement
}

// Allows reports whether a label with value v (present) or no label
// (present false) is allowed.
func (s Set) Allows(v string, present bool) bool {
	if !present {
		return s.AbsentOK
	}
	return s.Has(v)
}

// HasPresent reports whether some present value is allowed.
func (s Set) HasPresent() bool {
	if s.Complement {
		return s.Lt == math.MaxInt64 || s.Gt == math.MinInt64 || s.Lt-s.Gt > 1
	}
	return len(s.Values) > 0
}

// Empty reports whether the set allows nothing, not even an absent label.
func (s Set) Empty() bool { return !s.AbsentOK && !s.HasPresent() }

// Intersect returns the values both sets allow.
func (s Set) Intersect(o Set) Set {
	out := Set{AbsentOK: s.AbsentOK && o.AbsentOK, Gt: max(s.Gt, o.Gt), Lt: min(s.Lt, o.Lt)}
	switch {
	case s.Complement && o.Complement:
		out.Complement = true
		out.Values = sortedUnique(append(slices.Clone(s.Values), o.Values...))
	case s.Complement:
		out.Values = filter(o.Values, func(v string) bool { return !contains(s.Values, v) })
	case o.Complement:
		out.Values = filter(s.Values, func(v string) bool { return !contains(o.Values, v) })
	default:
		out.Values = filter(s.Values, func(v string) bool { return contains(o.Values, v) })
	}
	if !out.Complement && out.bounded() {
		out.Values = filter(out.Values, out.inBounds)
	}
	return out
}

func contains(sorted []string, v string) bool {
	_, ok := slices.BinarySearch(sorted, v)
	return ok
}

func filter(v []string, keep func(string) bool) []string {
	var out []string
	for _, x := range v {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// Single returns the only value the set allows, when it allows exactly one
// present value and no absent label.
func (s Set) Single() (string, bool) {
	if s.AbsentOK || s.Complement || len(s.Values) != 1 {
		return "", false
	}
	return s.Values[0], true
}

// Requirements maps label keys to the sets of values a node template allows;
// keys not present are unconstrained. The zero value allows everything.
type Requirements struct {
	keys []string // sorted
	sets []Set
}

// NewRequirements builds the conjunction of requirements.
func NewRequirements(rs ...model.Requirement) Requirements {
	var out Requirements
	for _, r := range rs {
		out = out.With(r.Key, SetOf(r))
	}
	return out
}

// Len returns the number of constrained keys.
func (r Requirements) Len() int { return len(r.keys) }

// Keys returns the constrained keys, sorted.
func (r Requirements) Keys() []string { return r.keys }

// Get returns the set for key, or Any when unconstrained.
func (r Requirements) Get(key string) (Set, bool) {
	i, ok := slices.BinarySearch(r.keys, key)
	if !ok {
		return Any, false
	}
	return r.sets[i], true
}

// With returns r with key narrowed by s.
func (r Requirements) With(key string, s Set) Requirements {
	i, ok := slices.BinarySearch(r.keys, key)
	out := Requirements{keys: slices.Clone(r.keys), sets: slices.Clone(r.sets)}
	if ok {
		out.sets[i] = out.sets[i].Intersect(s)
		return out
	}
	out.keys = slices.Insert(out.keys, i, key)
	out.sets = slices.Insert(out.sets, i, s)
	return out
}

// Intersect returns the conjunction of r and o, and the first key whose sets
// do not intersect ("" when they all do).
func (r Requirements) Intersect(o Requirements) (Requirements, string) {
	out := r
	for i, k := range o.keys {
		out = out.With(k, o.sets[i])
		if s, _ := out.Get(k); s.Empty() {
			return out, k
		}
	}
	return out, ""
}

// Conflict returns the first key on which r and o allow nothing in common,
// or "" when they are compatible.
func (r Requirements) Conflict(o Requirements) string {
	for i, k := range o.keys {
		s, ok := r.Get(k)
		if ok && s.Intersect(o.sets[i]).Empty() {
			return k
		}
	}
	return ""
}

// Matches reports whether a label set satisfies every requirement.
func (r Requirements) Matches(labels map[string]string) bool {
	for i, k := range r.keys {
		v, ok := labels[k]
		if !r.sets[i].Allows(v, ok) {
			return false
		}
	}
	return true
}

// Labels returns the labels every node of the template carries: the keys
// whose set allows exactly one value.
func (r Requirements) Labels() map[string]string {
	out := map[string]string{}
	for i, k := range r.keys {
		if v, ok := r.sets[i].Single(); ok {
			out[k] = v
		}
	}
	return out
}

// Model converts the requirements back to node selector requirements, one or
// two per key, sorted by key.
func (r Requirements) Model() []model.Requirement {
	var out []model.Requirement
	for i, k := range r.keys {
		s := r.sets[i]
		switch {
		case !s.Complement && !s.AbsentOK:
			out = append(out, model.Requirement{Key: k, Operator: model.OpIn, Values: slices.Clone(s.Values)})
			continue
		case !s.Complement && s.AbsentOK && len(s.Values) == 0:
			out = append(out, model.Requirement{Key: k, Operator: model.OpDoesNotExist})
			continue
		case !s.Complement:
			// Absent or one of a few values: not expressible as one
			// requirement; NotIn of nothing would widen it, so keep the
			// values as In (a node with the label is the common case).
			out = append(out, model.Requirement{Key: k, Operator: model.OpIn, Values: slices.Clone(s.Values)})
			continue
		}
		switch {
		case len(s.Values) > 0:
			out = append(out, model.Requirement{Key: k, Operator: model.OpNotIn, Values: slices.Clone(s.Values)})
		case !s.AbsentOK && !s.bounded():
			out = append(out, model.Requirement{Key: k, Operator: model.OpExists})
		}
		if s.Gt != math.MinInt64 {
			out = append(out, model.Requirement{Key: k, Operator: model.OpGt, Values: []string{strconv.FormatInt(s.Gt, 10)}})
		}
		if s.Lt != math.MaxInt64 {
			out = append(out, model.Requirement{Key: k, Operator: model.OpLt, Values: []string{strconv.FormatInt(s.Lt, 10)}})
		}
	}
	return out
}

// String formats the requirements for people.
func (r Requirements) String() string {
	var parts []string
	for _, m := range r.Model() {
		parts = append(parts, m.String())
	}
	return strings.Join(parts, ", ")
}
