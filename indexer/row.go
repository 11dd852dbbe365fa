package indexer

import (
	"encoding/json"
	"iter"
	"slices"
	"strings"
)

// Columns are the column names of rows that share them: the rows of one SQL read, the images
// of one table in a message, in the order of the rows' values. Image names are distinct (the
// message decoder refuses an image that repeats one); a read's are as selected, the first of
// a repeated name found by a lookup (SQL gives each the same value). A Columns is never
// changed once built, so any number of rows and goroutines share it.
type Columns struct {
	names []string
	// index is a name's first position for lists wider than linearColumns, nil for narrower
	// ones, which a scan reads faster than a hash.
	index map[string]int
}

// linearColumns is the widest list of columns looked up by a scan instead of a map.
const linearColumns = 16

// NewColumns returns the columns named names; it keeps names.
func NewColumns(names ...string) *Columns {
	c, _ := newColumns(names)
	return c
}

// newColumns is NewColumns that also reports whether names are distinct.
func newColumns(names []string) (c *Columns, distinct bool) {
	c, distinct = &Columns{names: names}, true
	if len(names) <= linearColumns {
		for i, n := range names {
			if slices.Contains(names[:i], n) {
				distinct = false
			}
		}
		return c, distinct
	}
	c.index = make(map[string]int, len(names))
	for i, n := range names {
		if _, dup := c.index[n]; dup {
			distinct = false
			continue
		}
		c.index[n] = i
	}
	return c, distinct
}

// at is the position of name, -1 when c does not hold it (or c is nil).
func (c *Columns) at(name string) int {
	if c == nil {
		return -1
	}
	if c.index != nil {
		if i, ok := c.index[name]; ok {
			return i
		}
		return -1
	}
	for i, n := range c.names {
		if n == name {
			return i
		}
	}
	return -1
}

// Len is the number of columns.
func (c *Columns) Len() int { return len(c.names) }

// sameSet reports whether c and d hold the same names, in any order.
func (c *Columns) sameSet(d *Columns) bool {
	if c == d {
		return true
	}
	if c == nil || d == nil || len(c.names) != len(d.names) {
		return false
	}
	if slices.Equal(c.names, d.names) {
		return true
	}
	for _, n := range c.names {
		if d.at(n) < 0 {
			return false
		}
	}
	return true
}

// Row is one table row or change image: a value per column, the columns shared with the
// other rows of its read or message. The zero Row is no row at all (IsNil: an insert's before
// image, a delete's after image); a Row of no column is not nil. A column the row does not
// hold reads as the zero Value, which IsNull, as a missing map key did.
type Row struct {
	cols *Columns
	vals []Value // len(vals) == cols.Len()
}

// NewRow is the row of vals under cols, one value per column, in order; it keeps vals.
func NewRow(cols *Columns, vals []Value) Row {
	if len(vals) != cols.Len() {
		panic("indexer.NewRow: one value per column")
	}
	return Row{cols: cols, vals: vals}
}

// RowOf builds a row from alternating column names and values (tests, fakes):
// RowOf("id", "7", "title", `"Seven"`). A repeated name keeps its last value, as a map would.
func RowOf(kv ...string) Row {
	if len(kv)%2 != 0 {
		panic("indexer.RowOf: names and values must alternate")
	}
	var names []string
	var vals []Value
	for i := 0; i < len(kv); i += 2 {
		if j := slices.Index(names, kv[i]); j >= 0 {
			vals[j] = Value(kv[i+1])
			continue
		}
		names, vals = append(names, kv[i]), append(vals, Value(kv[i+1]))
	}
	if names == nil {
		names = []string{} // a row of no column, not the nil row
	}
	return Row{cols: NewColumns(names...), vals: vals}
}

// RowFrom is the row holding the columns of m, in name order; nil m is the nil row.
func RowFrom(m map[string]Value) Row { return rowOf(m, func(v Value) Value { return v }) }

// rowOf is the row holding the columns of m, in name order, each value val of m's; nil m is
// the nil row.
func rowOf[V any](m map[string]V, val func(V) Value) Row {
	if m == nil {
		return Row{}
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	vals := make([]Value, len(names))
	for i, n := range names {
		vals[i] = val(m[n])
	}
	return Row{cols: NewColumns(names...), vals: vals}
}

// IsNil reports no row at all (not a row of no column).
func (r Row) IsNil() bool { return r.cols == nil }

// Len is the number of columns the row holds.
func (r Row) Len() int { return len(r.vals) }

// Get is the value of col; the zero Value when the row does not hold it.
func (r Row) Get(col string) Value {
	if i := r.cols.at(col); i >= 0 {
		return r.vals[i]
	}
	return ""
}

// near is Get(col) for col likely at position i (rows of the same columns in the same order):
// one comparison when it is there.
func (r Row) near(col string, i int) Value {
	if i < len(r.vals) && r.cols.names[i] == col {
		return r.vals[i]
	}
	return r.Get(col)
}

// Lookup is the value of col and whether the row holds it.
func (r Row) Lookup(col string) (Value, bool) {
	if i := r.cols.at(col); i >= 0 {
		return r.vals[i], true
	}
	return "", false
}

// All yields every column and its value, in the row's column order.
func (r Row) All() iter.Seq2[string, Value] {
	return func(yield func(string, Value) bool) {
		for i, v := range r.vals {
			if !yield(r.cols.names[i], v) {
				return
			}
		}
	}
}

// Columns are the row's columns, nil for the nil row.
func (r Row) Columns() *Columns { return r.cols }

// Equal reports whether r and s are both nil, or hold the same columns with the same values,
// in any order: what comparing two maps of them told.
func (r Row) Equal(s Row) bool {
	if r.IsNil() || s.IsNil() {
		return r.IsNil() == s.IsNil()
	}
	if len(r.vals) != len(s.vals) {
		return false
	}
	if r.cols == s.cols {
		return slices.Equal(r.vals, s.vals)
	}
	for i, n := range r.cols.names {
		if v, ok := s.Lookup(n); !ok || v != r.vals[i] {
			return false
		}
	}
	return true
}

// MarshalJSON writes the row as a JSON object, its columns sorted by name as encoding/json
// writes a map (the bytes a map of them gave); null for the nil row.
func (r Row) MarshalJSON() ([]byte, error) {
	if r.IsNil() {
		return []byte(NullValue), nil
	}
	order := make([]int, len(r.vals))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int { return strings.Compare(r.cols.names[i], r.cols.names[j]) })
	b := []byte{'{'}
	for n, i := range order {
		if n > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(r.cols.names[i])
		v, _ := r.vals[i].MarshalJSON()
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// String is the row as JSON, for messages.
func (r Row) String() string {
	b, _ := r.MarshalJSON()
	return string(b)
}

// rowArena hands out the values of many rows from few allocations: the images of one message.
// A row's values stay valid as long as the row: the arena only ever moves to a new backing
// array, never writes over one it gave out.
type rowArena struct{ vals []Value }

// next returns room for n values, from the current backing array when it has the room, else
// from a new one of room for size (at least n).
func (a *rowArena) next(n, size int) []Value {
	if cap(a.vals)-len(a.vals) < n {
		a.vals = make([]Value, 0, max(size, n))
	}
	start := len(a.vals)
	a.vals = a.vals[:start+n]
	return a.vals[start : start+n : start+n]
}
