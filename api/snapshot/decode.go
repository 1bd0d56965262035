package snapshot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// document is one object's source: its JSON, where it sits in its file, and
// how to find the line of a field in it.
type document struct {
	file string
	// position is "items[3]" or "document 2"; empty for a file holding a
	// single object.
	position string
	data     []byte
	// text and firstLine locate the object's source text in the file, for
	// line numbers.
	text      []byte
	firstLine int
	// textPath is the object's path within text ("items[3]" for an item
	// of a List), empty when text holds the object alone.
	textPath string
}

// header is the part of every object the decoders read first.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

func (h header) name() string {
	if h.Metadata.Namespace != "" {
		return h.Metadata.Namespace + "/" + h.Metadata.Name
	}
	return h.Metadata.Name
}

// errorf returns an *ObjectError for the document, with the line of field
// (a path such as "spec.containers[0].resources") when it can be found.
func (d *document) errorf(h header, err error) error {
	e := &ObjectError{File: d.file, Kind: h.Kind, Name: h.name(), Position: d.position, Err: err}
	var fe *FieldError
	if errors.As(err, &fe) {
		e.Line = d.line(fe.Field)
	} else {
		e.Line = d.line("")
	}
	return e
}

// line returns the line of the field at path in the file (the object's
// first line for an empty path or a field that cannot be found), or 0.
func (d *document) line(path string) int {
	if len(d.text) == 0 {
		return 0
	}
	var root yaml.Node
	if err := yaml.Unmarshal(d.text, &root); err != nil || len(root.Content) == 0 {
		return d.firstLine
	}
	n := root.Content[0]
	line := n.Line
	full := path
	if d.textPath != "" {
		full = d.textPath
		if path != "" && !strings.HasPrefix(path, "[") {
			full += "."
		}
		full += path
	}
	for _, seg := range splitPath(full) {
		next := child(n, seg)
		if next == nil {
			break
		}
		n = next
		line = n.Line
	}
	return d.firstLine + line - 1
}

// splitPath splits "a.b[0][key].c" into a, b, [0], [key], c. Keys in
// brackets may contain dots.
func splitPath(path string) []string {
	var out []string
	for path != "" {
		switch {
		case path[0] == '.':
			path = path[1:]
		case path[0] == '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return append(out, path)
			}
			out = append(out, path[:end+1])
			path = path[end+1:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				return append(out, path)
			}
			out = append(out, path[:end])
			path = path[end:]
		}
	}
	return out
}

func child(n *yaml.Node, seg string) *yaml.Node {
	key := seg
	if strings.HasPrefix(seg, "[") {
		key = strings.TrimSuffix(strings.TrimPrefix(seg, "["), "]")
		if n.Kind == yaml.SequenceNode {
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil
			}
			return n.Content[i]
		}
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			if n.Content[i+1].Kind == yaml.ScalarNode {
				return n.Content[i]
			}
			return n.Content[i+1]
		}
	}
	return nil
}

// decodeInto decodes the document into out (a pointer to a typed object)
// strictly: unknown fields, duplicate fields, values of the wrong type and
// malformed quantities are errors naming the field.
func (d *document) decodeInto(h header, out any) error {
	generic, err := decodeGeneric(d.data)
	if err != nil {
		return d.errorf(h, err)
	}
	if err := check(generic, reflect.TypeOf(out), ""); err != nil {
		return d.errorf(h, err)
	}
	strict, err := sigsjson.UnmarshalStrict(d.data, out)
	if err != nil {
		return d.errorf(h, err)
	}
	for _, s := range strict {
		var fe sigsjson.FieldError
		if errors.As(s, &fe) {
			return d.errorf(h, &FieldError{Field: fe.FieldPath(), Err: s})
		}
		return d.errorf(h, s)
	}
	return nil
}

// decodeGeneric decodes JSON into maps, slices and json.Numbers; trailing
// data is an error.
func decodeGeneric(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: data after the top-level value")
	}
	return v, nil
}

// readHeader reads apiVersion, kind and name leniently (the strict decode
// comes later and names the field).
func (d *document) readHeader() (header, error) {
	var h header
	if err := json.Unmarshal(d.data, &h); err != nil {
		var generic any
		if gerr := json.Unmarshal(d.data, &generic); gerr == nil {
			if _, ok := generic.(map[string]any); !ok {
				return h, d.errorf(h, fmt.Errorf("want an object, got %s", jsonKind(generic)))
			}
		}
		return h, d.errorf(h, fmt.Errorf("invalid object: %w", err))
	}
	return h, nil
}

// jsonList splits a JSON file holding a List (or a typed list such as
// PodList) into its items, or returns the file as its only document when
// it holds a single object of itemKind.
func jsonList(file string, data []byte, itemKind string) ([]*document, error) {
	whole := &document{file: file, data: data, text: data, firstLine: 1}
	if ok, off := sigsjson.SyntaxErrorOffset(json.Unmarshal(data, new(any))); ok {
		return nil, &ObjectError{File: file, Line: lineAt(data, off), Err: errors.New("invalid JSON")}
	}
	h, err := whole.readHeader()
	if err != nil {
		return nil, err
	}
	if h.Kind == itemKind {
		return []*document{whole}, nil
	}
	if h.Kind != "List" && h.Kind != itemKind+"List" {
		return nil, whole.errorf(h, &FieldError{Field: "kind", Err: fmt.Errorf("want List, %sList or %s, got %q", itemKind, itemKind, h.Kind)})
	}
	var list struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   json.RawMessage   `json:"metadata"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := whole.decodeInto(h, &list); err != nil {
		return nil, err
	}
	// Lines of items are found through the file as a whole.
	docs := make([]*document, len(list.Items))
	for i, item := range list.Items {
		pos := fmt.Sprintf("items[%d]", i)
		docs[i] = &document{file: file, position: pos, data: item, text: data, firstLine: 1, textPath: pos}
	}
	return docs, nil
}

// yamlDocuments splits a multi-document YAML file into its documents (a
// List document into its items), converted to JSON.
func yamlDocuments(file string, data []byte) ([]*document, error) {
	var docs []*document
	index := 0
	for _, chunk := range splitYAML(data) {
		if isBlankYAML(chunk.text) {
			continue
		}
		index++
		pos := fmt.Sprintf("document %d", index)
		j, err := sigsyaml.YAMLToJSONStrict(chunk.text)
		if err != nil {
			return nil, &ObjectError{File: file, Line: chunk.firstLine + yamlErrorLine(err) - 1, Position: pos, Err: fmt.Errorf("invalid YAML: %w", err)}
		}
		d := &document{file: file, position: pos, data: j, text: chunk.text, firstLine: chunk.firstLine}
		h, err := d.readHeader()
		if err != nil {
			return nil, err
		}
		if h.Kind != "List" {
			docs = append(docs, d)
			continue
		}
		items, err := jsonList(file, j, "")
		if err != nil {
			return nil, err
		}
		for i, it := range items {
			it.position = fmt.Sprintf("%s items[%d]", pos, i)
			it.text, it.firstLine = chunk.text, chunk.firstLine
			docs = append(docs, it)
		}
	}
	return docs, nil
}

type yamlChunk struct {
	text      []byte
	firstLine int
}

// splitYAML splits on "---" document separators, remembering where each
// document starts.
func splitYAML(data []byte) []yamlChunk {
	var out []yamlChunk
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), len(data)+1)
	var cur bytes.Buffer
	start, line := 1, 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if l == "---" || strings.HasPrefix(l, "--- ") || strings.HasPrefix(l, "---\t") {
			out = append(out, yamlChunk{text: bytes.Clone(cur.Bytes()), firstLine: start})
			cur.Reset()
			start = line + 1
			continue
		}
		cur.WriteString(l)
		cur.WriteByte('\n')
	}
	return append(out, yamlChunk{text: cur.Bytes(), firstLine: start})
}

func isBlankYAML(b []byte) bool {
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// yamlErrorLine digs "line N" out of a YAML parser error, or returns 1.
func yamlErrorLine(err error) int {
	msg := err.Error()
	i := strings.Index(msg, "line ")
	if i < 0 {
		return 1
	}
	j := i + len("line ")
	k := j
	for k < len(msg) && msg[k] >= '0' && msg[k] <= '9' {
		k++
	}
	n, cerr := strconv.Atoi(msg[j:k])
	if cerr != nil || n < 1 {
		return 1
	}
	return n
}

// lineAt returns the 1-based line of byte offset off.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}
