package cdc

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// SchemaVersion is the "schema" field of every message. Bump it on any incompatible change of
// the message layout or of a value encoding (docs/cdc.md, "Message schema").
const SchemaVersion = 1

// Op is the kind of a row change.
type Op string

const (
	OpInsert Op = "insert"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Kind says how a column's values are encoded in JSON. The binlog adapter maps MySQL column
// types to kinds; the encoding of each kind is documented in docs/cdc.md.
type Kind uint8

const (
	KindInt       Kind = iota // signed integer types: JSON number, exact digits
	KindUint                  // unsigned integer types: JSON number, exact digits (may exceed 2^53)
	KindFloat32               // FLOAT: shortest JSON number that round-trips a float32
	KindFloat64               // DOUBLE
	KindDecimal               // DECIMAL: JSON string with the column's scale ("12.50")
	KindDateTime              // DATETIME: "YYYY-MM-DD hh:mm:ss[.ffffff]" (no zone: DATETIME has none)
	KindTimestamp             // TIMESTAMP: UTC RFC 3339 "YYYY-MM-DDThh:mm:ss[.ffffff]Z"
	KindDate                  // DATE: "YYYY-MM-DD"
	KindTime                  // TIME: "[-]hhh:mm:ss[.ffffff]"
	KindYear                  // YEAR: JSON number
	KindText                  // character types: JSON string (utf8mb4 as-is)
	KindBinary                // BINARY/VARBINARY/BLOB/GEOMETRY: {"$base64": "..."}
	KindJSON                  // JSON: the document embedded as JSON
	KindEnum                  // ENUM: the member's name; "" for the invalid-value index 0
	KindSet                   // SET: the members' names joined by "," as MySQL prints them
	KindBit                   // BIT: JSON number
)

// Column describes one column of a table as the binlog described it at the change's position.
type Column struct {
	Name    string
	Kind    Kind
	Members []string // ENUM/SET member names, in definition order
}

// Table is a followed table's shape at one binlog point (from its TABLE_MAP event).
type Table struct {
	Schema  string
	Name    string
	Columns []Column
	PK      []int // column indexes of the primary key; empty when the table has none
}

// FullName returns "db.table".
func (t *Table) FullName() string { return t.Schema + "." + t.Name }

// Change is one row change read from the binlog.
type Change struct {
	Table    *Table
	Op       Op
	Before   []any // nil for inserts
	After    []any // nil for deletes
	Version  Version
	CommitTS time.Time // seconds; see docs/cdc.md for which binlog event stamps it
	Pos      Position  // end of the rows event
	GTID     string
	Epoch    uint32
}

// Encode renders the change as the JSON message body (schema 1):
//
//	{"schema":1,"table":"db.t","op":"update","pk":{...},"before":{...},"after":{...},
//	 "version":N,"commit_ts":"...Z","position":"file:pos","gtid":"0-1-42","epoch":1}
func (c *Change) Encode() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(256)
	b.WriteString(`{"schema":`)
	b.WriteString(strconv.Itoa(SchemaVersion))
	b.WriteString(`,"table":`)
	writeString(&b, c.Table.FullName())
	b.WriteString(`,"op":"`)
	b.WriteString(string(c.Op))
	b.WriteString(`","pk":`)
	key := c.After
	if key == nil {
		key = c.Before
	}
	if len(c.Table.PK) == 0 {
		b.WriteString("null")
	} else {
		b.WriteByte('{')
		for i, ci := range c.Table.PK {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := c.writeColumn(&b, ci, key); err != nil {
				return nil, err
			}
		}
		b.WriteByte('}')
	}
	if c.Before != nil {
		b.WriteString(`,"before":`)
		if err := c.writeRow(&b, c.Before); err != nil {
			return nil, err
		}
	}
	if c.After != nil {
		b.WriteString(`,"after":`)
		if err := c.writeRow(&b, c.After); err != nil {
			return nil, err
		}
	}
	b.WriteString(`,"version":`)
	b.WriteString(strconv.FormatInt(int64(c.Version), 10))
	b.WriteString(`,"commit_ts":"`)
	b.WriteString(c.CommitTS.UTC().Format(time.RFC3339))
	b.WriteString(`","position":`)
	writeString(&b, c.Pos.String())
	if c.GTID != "" {
		b.WriteString(`,"gtid":`)
		writeString(&b, c.GTID)
	}
	b.WriteString(`,"epoch":`)
	b.WriteString(strconv.FormatUint(uint64(c.Epoch), 10))
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (c *Change) writeRow(b *bytes.Buffer, row []any) error {
	b.WriteByte('{')
	for i := range c.Table.Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := c.writeColumn(b, i, row); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

func (c *Change) writeColumn(b *bytes.Buffer, i int, row []any) error {
	col := c.Table.Columns[i]
	writeString(b, col.Name)
	b.WriteByte(':')
	if i >= len(row) {
		return fmt.Errorf("encode %s.%s: row has %d values, want %d", c.Table.FullName(), col.Name, len(row), len(c.Table.Columns))
	}
	if err := EncodeValue(b, col, row[i]); err != nil {
		return fmt.Errorf("encode %s.%s: %w", c.Table.FullName(), col.Name, err)
	}
	return nil
}

// EncodeValue appends the JSON encoding of v, a value decoded by go-mysql from a column of
// col.Kind, to b. NULL (nil) is null for every kind.
func EncodeValue(b *bytes.Buffer, col Column, v any) error {
	if v == nil {
		b.WriteString("null")
		return nil
	}
	switch col.Kind {
	case KindInt, KindUint, KindYear, KindBit:
		s, ok := integer(v)
		if !ok {
			return fmt.Errorf("integer column: unexpected %T", v)
		}
		b.WriteString(s)
	case KindFloat32, KindFloat64:
		var f float64
		bits := 64
		switch x := v.(type) {
		case float32:
			f, bits = float64(x), 32
		case float64:
			f = x
		default:
			return fmt.Errorf("float column: unexpected %T", v)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("float column: %v has no JSON form", f)
		}
		b.WriteString(strconv.FormatFloat(f, 'g', -1, bits))
	case KindDecimal, KindDateTime, KindDate, KindTime:
		writeString(b, text(v))
	case KindTimestamp:
		writeString(b, timestampRFC3339(text(v)))
	case KindText:
		writeString(b, text(v))
	case KindBinary:
		var raw []byte
		switch x := v.(type) {
		case []byte:
			raw = x
		case string:
			raw = []byte(x)
		default:
			return fmt.Errorf("binary column: unexpected %T", v)
		}
		b.WriteString(`{"$base64":"`)
		b.WriteString(base64.StdEncoding.EncodeToString(raw))
		b.WriteString(`"}`)
	case KindJSON:
		raw := []byte(text(v))
		if len(raw) == 0 {
			// An empty JSON value (INSERT IGNORE of NULL into NOT NULL) reads back as null.
			b.WriteString("null")
			return nil
		}
		if !json.Valid(raw) {
			return fmt.Errorf("json column: invalid document %.40q", raw)
		}
		b.Write(raw)
	case KindEnum:
		n, ok := toUint(v)
		if !ok {
			return fmt.Errorf("enum column: unexpected %T", v)
		}
		if n == 0 || int(n) > len(col.Members) {
			writeString(b, "")
			return nil
		}
		writeString(b, col.Members[n-1])
	case KindSet:
		n, ok := toUint(v)
		if !ok {
			return fmt.Errorf("set column: unexpected %T", v)
		}
		var names []string
		for i, m := range col.Members {
			if n&(1<<uint(i)) != 0 {
				names = append(names, m)
			}
		}
		writeString(b, strings.Join(names, ","))
	default:
		return fmt.Errorf("unknown column kind %d", col.Kind)
	}
	return nil
}

// timestampRFC3339 turns go-mysql's UTC "YYYY-MM-DD hh:mm:ss[.f]" into RFC 3339. The zero
// timestamp has no instant: it stays "0000-00-00 00:00:00".
func timestampRFC3339(s string) string {
	if len(s) < 19 || strings.HasPrefix(s, "0000-00-00") {
		return s
	}
	return s[:10] + "T" + s[11:] + "Z"
}

func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	default:
		return fmt.Sprint(x)
	}
}

func integer(v any) (string, bool) {
	switch x := v.(type) {
	case int8:
		return strconv.FormatInt(int64(x), 10), true
	case int16:
		return strconv.FormatInt(int64(x), 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	case uint8:
		return strconv.FormatUint(uint64(x), 10), true
	case uint16:
		return strconv.FormatUint(uint64(x), 10), true
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case uint:
		return strconv.FormatUint(uint64(x), 10), true
	}
	return "", false
}

func toUint(v any) (uint64, bool) {
	s, ok := integer(v)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// writeString writes s as a JSON string. Invalid UTF-8 (a latin1 column read as bytes) is
// replaced by U+FFFD as encoding/json does.
func writeString(b *bytes.Buffer, s string) {
	if isPlain(s) {
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
		return
	}
	enc, _ := json.Marshal(s) // never fails for a string
	b.Write(enc)
}

// isPlain reports whether s needs no escaping (printable ASCII without " \ < > &).
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
