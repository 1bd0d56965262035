package catalog

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ParseError reports a problem with one line of a CSV file: the file name
// the caller gave, the 1-based line, and the column when one is to blame.
type ParseError struct {
	File   string
	Line   int
	Column string
	Err    error
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Column != "" {
		b.WriteString(": ")
		b.WriteString(e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ParseError) Unwrap() error { return e.Err }

// table reads a CSV file with a header row, addressing fields by column name
// and reporting errors with the file's line numbers.
type table struct {
	file string
	r    *csv.Reader
	cols map[string]int
	// header is the header as read (trimmed), in file order.
	header []string
}

// openTable reads the header of a CSV file. Lines starting with '#' are
// comments; blank lines are skipped; every row must have as many fields as
// the header.
func openTable(file string, r io.Reader) (*table, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.ReuseRecord = true
	rec, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, &ParseError{File: file, Err: errors.New("empty file: no header row")}
	}
	if err != nil {
		return nil, csvError(file, err)
	}
	t := &table{file: file, r: cr, cols: make(map[string]int, len(rec))}
	for i, name := range rec {
		name = strings.TrimSpace(name)
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff")
		}
		line, _ := cr.FieldPos(i)
		if name == "" {
			return nil, &ParseError{File: file, Line: line, Err: fmt.Errorf("header: column %d has no name", i+1)}
		}
		if _, dup := t.cols[name]; dup {
			return nil, &ParseError{File: file, Line: line, Err: fmt.Errorf("header: column %q appears twice", name)}
		}
		t.cols[name] = i
		t.header = append(t.header, name)
	}
	return t, nil
}

// require checks that the header names every column in want.
func (t *table) require(want ...string) error {
	var missing []string
	for _, c := range want {
		if _, ok := t.cols[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return &ParseError{File: t.file, Line: 1, Err: fmt.Errorf("header: missing column(s) %s", strings.Join(missing, ", "))}
	}
	return nil
}

// next returns the next data row, or io.EOF after the last one.
func (t *table) next() (row, error) {
	rec, err := t.r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return row{}, io.EOF
		}
		return row{}, csvError(t.file, err)
	}
	line, _ := t.r.FieldPos(0)
	return row{t: t, rec: rec, line: line}, nil
}

// csvError turns an encoding/csv error into a ParseError naming the file.
func csvError(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ParseError{File: file, Line: pe.Line, Err: pe.Err}
	}
	return &ParseError{File: file, Err: err}
}

// row is one data row of a table. Its record is only valid until the next
// call to table.next.
type row struct {
	t    *table
	rec  []string
	line int
}

// errorf returns a ParseError for column col of this row.
func (r row) errorf(col, format string, args ...any) error {
	return &ParseError{File: r.t.file, Line: r.line, Column: col, Err: fmt.Errorf(format, args...)}
}

// str returns the trimmed field of column col (which must be in the header).
func (r row) str(col string) string {
	return strings.TrimSpace(r.rec[r.t.cols[col]])
}

// int returns column col as a non-negative integer; empty reads as 0.
func (r row) int(col string) (int64, error) {
	s := r.str(col)
	if s == "" {
		return 0, nil
	}
	return r.parseInt(col, s)
}

// requiredInt returns column col as a non-negative integer that must be present.
func (r row) requiredInt(col string) (int64, error) {
	s := r.str(col)
	if s == "" {
		return 0, r.errorf(col, "missing value")
	}
	return r.parseInt(col, s)
}

func (r row) parseInt(col, s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, r.errorf(col, "integer out of range %q", s)
		}
		return 0, r.errorf(col, "invalid integer %q", s)
	}
	if v < 0 {
		return 0, r.errorf(col, "must not be negative, got %d", v)
	}
	return v, nil
}

// float returns column col as a finite, non-negative number that must be present.
func (r row) float(col string) (float64, error) {
	s := r.str(col)
	if s == "" {
		return 0, r.errorf(col, "missing value")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, r.errorf(col, "invalid number %q", s)
	}
	if v < 0 {
		return 0, r.errorf(col, "must not be negative, got %s", s)
	}
	return v, nil
}

// bool returns column col as a boolean ("true"/"false"); empty reads as false.
func (r row) bool(col string) (bool, error) {
	switch s := r.str(col); s {
	case "true":
		return true, nil
	case "false", "":
		return false, nil
	default:
		return false, r.errorf(col, "invalid boolean %q", s)
	}
}
