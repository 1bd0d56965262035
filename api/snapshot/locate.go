package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	rawMessage      = reflect.TypeFor[json.RawMessage]()
	quantityType    = reflect.TypeFor[resource.Quantity]()
)

// checkQuantity rejects quantities whose exponent would make the quantity
// parser work for minutes ("1e999999999999"); no real quantity comes close.
func checkQuantity(v any) error {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = x.String()
	default:
		return nil
	}
	if len(s) > 64 {
		return fmt.Errorf("quantity %.20q... is too long", s)
	}
	i := strings.LastIndexAny(s, "eE")
	if i < 0 {
		return nil
	}
	exp, err := strconv.Atoi(s[i+1:])
	if err == nil && (exp > 100 || exp < -100) {
		return fmt.Errorf("quantity %q is out of range", s)
	}
	return nil
}

// errUnknownField is what check reports for a field the type does not have.
var errUnknownField = errors.New("unknown field")

// check walks a decoded JSON value (from a json.Decoder with UseNumber)
// alongside the Go type it is meant for and returns the first problem as a
// *FieldError naming the field's path: an unknown field, a value of the
// wrong JSON type, a number out of range, or a value the field's own
// UnmarshalJSON rejects (a malformed quantity, time or duration). Decoding
// with encoding/json reports none of these with a path.
func check(v any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		if v == nil {
			return nil
		}
		t = t.Elem()
	}
	if t == rawMessage {
		return nil
	}
	if t == quantityType {
		if err := checkQuantity(v); err != nil {
			return &FieldError{Field: path, Err: err}
		}
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		if v == nil {
			return nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return &FieldError{Field: path, Err: err}
		}
		u := reflect.New(t).Interface().(json.Unmarshaler)
		if err := u.UnmarshalJSON(b); err != nil {
			return &FieldError{Field: path, Err: err}
		}
		return nil
	}
	if v == nil {
		// null leaves any field at its zero value.
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return typeError(path, v, "object")
		}
		fields := structFields(t)
		for _, k := range sortedKeys(obj) {
			ft, ok := fields[k]
			if !ok {
				return &FieldError{Field: join(path, k), Err: errUnknownField}
			}
			if err := check(obj[k], ft, join(path, k)); err != nil {
				return err
			}
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return typeError(path, v, "object")
		}
		for _, k := range sortedKeys(obj) {
			if err := checkMapKey(k, t.Key(), path); err != nil {
				return err
			}
			if err := check(obj[k], t.Elem(), path+"["+k+"]"); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			if _, ok := v.(string); !ok {
				return typeError(path, v, "base64 string")
			}
			return nil
		}
		arr, ok := v.([]any)
		if !ok {
			return typeError(path, v, "array")
		}
		for i, e := range arr {
			if err := check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			return typeError(path, v, "string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return typeError(path, v, "boolean")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			return typeError(path, v, "integer")
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || reflect.New(t).Elem().OverflowInt(i) {
			return fieldErrorf(path, "%s is not an integer in range of %s", n, t.Kind())
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			return typeError(path, v, "integer")
		}
		u, err := strconv.ParseUint(n.String(), 10, 64)
		if err != nil || reflect.New(t).Elem().OverflowUint(u) {
			return fieldErrorf(path, "%s is not a non-negative integer in range of %s", n, t.Kind())
		}
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			return typeError(path, v, "number")
		}
		f, err := strconv.ParseFloat(n.String(), 64)
		if err != nil || (t.Kind() == reflect.Float32 && math.Abs(f) > math.MaxFloat32) {
			return fieldErrorf(path, "%s is not a number in range of %s", n, t.Kind())
		}
	case reflect.Interface:
	default:
		return fieldErrorf(path, "cannot decode into %s", t)
	}
	return nil
}

func checkMapKey(k string, t reflect.Type, path string) error {
	switch t.Kind() {
	case reflect.String:
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if _, err := strconv.ParseInt(k, 10, 64); err != nil {
			return fieldErrorf(path+"["+k+"]", "map key must be an integer")
		}
		return nil
	default:
		return fieldErrorf(path+"["+k+"]", "unsupported map key type %s", t)
	}
}

func typeError(path string, v any, want string) error {
	return fieldErrorf(path, "want %s, got %s", want, jsonKind(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// structFields maps the JSON names of a struct's fields (with inlined and
// embedded structs flattened, as encoding/json does) to their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	addStructFields(t, out)
	return out
}

func addStructFields(t reflect.Type, out map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		if (f.Anonymous && name == "") || (name == "" && slices.Contains(strings.Split(opts, ","), "inline")) {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addStructFields(ft, out)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := out[name]; !dup {
			out[name] = f.Type
		}
	}
}
