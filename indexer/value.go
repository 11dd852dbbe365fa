package indexer

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
)

// Value is one column value in its message encoding (docs/cdc.md): compact JSON text, so
// `42`, `"a-b"`, `null`. Event images and SQL reads use the same encoding, which is what lets
// a key from an event find the rows read from the database.
type Value string

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
	if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' && !strings.ContainsRune(string(v[1:len(v)-1]), '\\') {
		return string(v[1 : len(v)-1]) // nothing escaped: the text between the quotes
	}
	if len(v) > 0 && v[0] == '"' {
		var s string
		if json.Unmarshal([]byte(v), &s) == nil {
			return s
		}
	}
	return string(v)
}

// Arg is the value as a database/sql argument when the column's type is not known:
// integers stay integers (a string compared with an integer column would still match, but
// the reverse defeats the index), binary values are their bytes.
func (v Value) Arg() any {
	if len(v) > 0 && v[0] == '"' {
		return v.ID()
	}
	if b, ok := v.Bytes(); ok {
		return b
	}
	if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return n
	}
	if n, err := strconv.ParseUint(string(v), 10, 64); err == nil {
		return n
	}
	return string(v)
}

// base64Head and base64Tail frame a binary value (docs/cdc.md, "Message schema 2").
const (
	base64Head = `{"$base64":"`
	base64Tail = `"}`
)

// Bytes returns the bytes of a binary value ({"$base64":"..."}); ok is false for any other.
func (v Value) Bytes() (b []byte, ok bool) {
	s := string(v)
	if len(s) < len(base64Head)+len(base64Tail) || s[:len(base64Head)] != base64Head || s[len(s)-len(base64Tail):] != base64Tail {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(s[len(base64Head) : len(s)-len(base64Tail)])
	return b, err == nil
}

// match is v as rows are matched with it: the value itself, except that a string holding
// an integer in its plain form ("100", a VARCHAR foreign key) is that number (100, the INT
// key it refers to), which MySQL's comparison holds equal. Values of one column never
// collide under it: a column holds strings or numbers, not both. Document ids do not change
// (Value.ID is the same for both forms).
func (v Value) match() Value {
	if len(v) < 3 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	if n := v[1 : len(v)-1]; plainInt(n) || n[0] == '-' && n != "-0" && plainInt(n[1:]) {
		return n
	}
	return v
}

// compareValues orders numbers numerically before strings; it orders array elements by key.
func compareValues(a, b Value) int {
	if plainInt(a) && plainInt(b) { // the usual keys; numeric order without parsing
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return cmp.Compare(a, b)
	}
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
	return cmp.Compare(a, b)
}

// MarshalJSON writes the value as the JSON it already is.
func (v Value) MarshalJSON() ([]byte, error) {
	if v == "" {
		return []byte(NullValue), nil
	}
	return []byte(v), nil
}

// plainInt reports a non-negative integer without leading zeros: for two of them, longer is
// larger and equal lengths compare as text.
func plainInt(v Value) bool {
	if len(v) == 0 || len(v) > 1 && v[0] == '0' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// appendHTMLSafe appends v, escaping '<', '>', '&', U+2028 and U+2029 as encoding/json does
// when it writes a json.Marshaler's output: strings read by SQL are escaped already, a JSON
// column is not.
func appendHTMLSafe(b []byte, v Value) []byte {
	for i := 0; i < len(v); i++ {
		if htmlByte[v[i]] {
			var out bytes.Buffer
			json.HTMLEscape(&out, []byte(v))
			return append(b, out.Bytes()...)
		}
	}
	return append(b, v...)
}

// htmlByte marks the bytes appendHTMLSafe looks for: '<', '>', '&', and 0xE2, the first byte
// of U+2028 and U+2029.
var htmlByte = [256]bool{'<': true, '>': true, '&': true, 0xE2: true}
