package snapshot

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError is a conversion error at one field of an object, named by its
// JSON path ("spec.containers[0].resources.requests[cpu]").
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErrorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// ObjectError is an error about one object: where it came from (a file and
// line, when decoded from one), which object it is and, through a wrapped
// *FieldError, which field.
type ObjectError struct {
	// File the object was read from; empty for objects from the API server.
	File string
	// Line of the object (or, when known, of the field) in File; 0 when
	// unknown.
	Line int
	// Kind and name ("namespace/name" for namespaced objects) of the object;
	// Name is empty when the object is too broken to have one.
	Kind string
	Name string
	// Position names the object in its file when the name is missing or
	// ambiguous: "items[3]" or "document 2".
	Position string
	Err      error
}

func (e *ObjectError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	var obj []string
	if e.Position != "" {
		obj = append(obj, e.Position)
	}
	if e.Kind != "" || e.Name != "" {
		obj = append(obj, strings.TrimSpace(e.Kind+" "+e.Name))
	}
	if len(obj) > 0 {
		b.WriteString(strings.Join(obj, " "))
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ObjectError) Unwrap() error { return e.Err }

// Field returns the path of the field the error is about, or "".
func (e *ObjectError) Field() string {
	var fe *FieldError
	if errors.As(e.Err, &fe) {
		return fe.Field
	}
	return ""
}

// objectError wraps err with the object's kind and name.
func objectError(kind, namespace, name string, err error) error {
	if err == nil {
		return nil
	}
	n := name
	if namespace != "" {
		n = namespace + "/" + name
	}
	return &ObjectError{Kind: kind, Name: n, Err: err}
}

// prefixField puts parent in front of the field path of a *FieldError (or
// wraps a plain error as one at parent).
func prefixField(parent string, err error) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		f := fe.Field
		switch {
		case f == "":
			f = parent
		case strings.HasPrefix(f, "["):
			f = parent + f
		default:
			f = parent + "." + f
		}
		return &FieldError{Field: f, Err: fe.Err}
	}
	return &FieldError{Field: parent, Err: err}
}
