package indexer

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Value is one column value in its message encoding (docs/cdc.md): compact JSON text, so
// `42`, `"a-b"`, `null`. Event images and SQL reads use the same encoding, which is what lets
// a key from an event find the rows read from the database.
type Value string

// Row is one table row, column name -> value.
type Row map[string]Value

// NullValue is SQL NULL.
const NullValue Value = "null"

// valueOf compacts raw JSON into a Value.
func valueOf(raw json.RawMessage) Value {
	if len(raw) == 0 {
		return NullValue
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return Value(raw)
	}
	return Value(b.String())
}

// IsNull reports SQL NULL (or a missing column).
func (v Value) IsNull() bool { return v == "" || v == NullValue }

// ID is the value as a document id: a string without its quotes, a number as written.
func (v Value) ID() string {
	if len(v) > 0 && v[0] == '"' {
		var s string
		if json.Unmarshal([]byte(v), &s) == nil {
			return s
		}
	}
	return string(v)
}

// Arg is the value as a database/sql argument: integers stay integers (a string compared
// with an integer column would still match, but the reverse defeats the index).
func (v Value) Arg() any {
	if len(v) > 0 && v[0] == '"' {
		return v.ID()
	}
	if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return n
	}
	if n, err := strconv.ParseUint(string(v), 10, 64); err == nil {
		return n
	}
	return string(v)
}

// compareValues orders numbers numerically before strings; it orders array elements by key.
func compareValues(a, b Value) int {
	fa, ea := strconv.ParseFloat(string(a), 64)
	fb, eb := strconv.ParseFloat(string(b), 64)
	switch {
	case ea == nil && eb == nil:
		if fa != fb {
			if fa < fb {
				return -1
			}
			return 1
		}
		if len(a) != len(b) { // big integers beyond float precision
			return len(a) - len(b)
		}
	case ea == nil:
		return -1
	case eb == nil:
		return 1
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// MarshalJSON writes the value as the JSON it already is.
func (v Value) MarshalJSON() ([]byte, error) {
	if v == "" {
		return []byte(NullValue), nil
	}
	return []byte(v), nil
}
