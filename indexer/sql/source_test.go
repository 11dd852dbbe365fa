package sql

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/wyehq/wye/indexer"
)

// A value read by SQL must be byte-identical to the same value in a change event
// (docs/cdc.md), or keys from events would not find the rows read back.
func TestSQLValuesUseTheChangeEventEncoding(t *testing.T) {
	for _, tc := range []struct {
		typ, raw string
		null     bool
		want     indexer.Value
	}{
		{typ: "INT", raw: "42", want: `42`},
		{typ: "UNSIGNED BIGINT", raw: "18446744073709551615", want: `18446744073709551615`},
		{typ: "DECIMAL", raw: "12.50", want: `"12.50"`},
		{typ: "DATETIME", raw: "2024-02-29 23:59:59.123456", want: `"2024-02-29 23:59:59.123456"`},
		{typ: "TIMESTAMP", raw: "2024-03-01 10:00:00", want: `"2024-03-01T10:00:00Z"`},
		{typ: "TIMESTAMP", raw: "0000-00-00 00:00:00", want: `"0000-00-00 00:00:00"`},
		{typ: "VARCHAR", raw: `héllo "q" <tag>`, want: `"héllo \"q\" \u003ctag\u003e"`},
		{typ: "BLOB", raw: "\x00\x01\x02\xff", want: `{"$base64":"AAEC/w=="}`},
		{typ: "JSON", raw: `{"a": [1, 2.5, null]}`, want: `{"a":[1,2.5,null]}`},
		{typ: "BIT", raw: "\x09", want: `9`},
		{typ: "DECIMAL", raw: "-0.50", want: `"-0.50"`},
		{typ: "BINARY", raw: "\x11\x00", want: `{"$base64":"EQA="}`},
		{typ: "INT", null: true, want: `null`},
	} {
		var b []byte
		if !tc.null {
			b = []byte(tc.raw)
		}
		if got := encode(tc.typ, b); got != tc.want {
			t.Errorf("encode(%s, %q) = %s, want %s", tc.typ, tc.raw, got, tc.want)
		}
	}
}

// The quick path of str must write what json.Marshal writes, or one value would have two
// encodings (documents and keys would differ between readers).
func TestQuotedStringsAreWhatEncodingJSONWrites(t *testing.T) {
	for _, s := range []string{"", "plain", "Program 1 ü 2", "a\"b", `back\slash`, "<tag>", "a&b", "tab\there",
		"\x01", "line\u2028sep", "para\u2029", "bad \xff utf8", "emoji 😀", "\x7f"} {
		want, _ := json.Marshal(s)
		if got := str(s); string(got) != string(want) {
			t.Errorf("str(%q) = %s, want %s", s, got, want)
		}
	}
}

// TestValuesBindInTheColumnsOwnTypeAndCharset prevents lookups that find nothing or fail: a
// BINARY key bound as the text of its encoding, a latin1 key bound as utf8mb4 text (error 1270
// "Illegal mix of collations" once one value has no latin1 form), a TIMESTAMP bound in RFC 3339,
// a DECIMAL compared as a double, a foreign key of another type ("100" for an INT).
func TestValuesBindInTheColumnsOwnTypeAndCharset(t *testing.T) {
	latin1 := column{typ: "varchar", charset: "latin1", collation: "latin1_german1_ci"}
	for _, tc := range []struct {
		col  column
		v    indexer.Value
		expr string
		arg  any
	}{
		{column{typ: "int"}, `100`, "?", int64(100)},
		{column{typ: "int"}, `"100"`, "?", int64(100)},
		{column{typ: "bigint"}, `18446744073709551615`, "?", uint64(18446744073709551615)},
		{column{typ: "year"}, `0`, "?", int64(0)},
		{column{typ: "decimal", precision: 30, scale: 2}, `"123456789012345678901234567.50"`, "CAST(? AS DECIMAL(30,2))", "123456789012345678901234567.50"},
		{column{typ: "varchar", charset: "utf8mb4", collation: "utf8mb4_bin"}, `"café"`, "?", "café"},
		{column{typ: "varchar", charset: "utf8mb4"}, `100`, "?", "100"},
		{latin1, `"café"`, "CONVERT(? USING latin1) COLLATE latin1_german1_ci", "café"},
		{column{typ: "enum", charset: "latin1", collation: "latin1_swedish_ci"}, `"é"`, "CONVERT(? USING latin1) COLLATE latin1_swedish_ci", "é"},
		{column{typ: "binary"}, `{"$base64":"EQA="}`, "?", []byte{0x11, 0}},
		{column{typ: "varbinary"}, `"ab"`, "?", []byte("ab")},
		{column{typ: "timestamp"}, `"2024-03-01T10:00:00.5Z"`, "?", "2024-03-01 10:00:00.5"},
		{column{typ: "timestamp"}, `"0000-00-00 00:00:00"`, "?", "0000-00-00 00:00:00"},
		{column{typ: "datetime"}, `"2024-03-01 10:00:00"`, "?", "2024-03-01 10:00:00"},
		{column{typ: "date"}, `"2024-03-01"`, "?", "2024-03-01"},
		{column{}, `{"$base64":"AQ=="}`, "?", []byte{1}}, // a column not known: by the value's own form
	} {
		expr, arg, ok := tc.col.bind(tc.v)
		if !ok || expr != tc.expr || !reflect.DeepEqual(arg, tc.arg) {
			t.Errorf("bind %s to %+v = %q %#v %v, want %q %#v", tc.v, tc.col, expr, arg, ok, tc.expr, tc.arg)
		}
	}
	// Values no row of the column can hold are left out of the IN list.
	for _, tc := range []struct {
		col column
		v   indexer.Value
	}{
		{column{typ: "int"}, `"abc"`}, {column{typ: "int"}, `"1.5"`}, {column{typ: "decimal", precision: 5, scale: 2}, `"1e3"`},
		{latin1, indexer.NullValue},
	} {
		if expr, arg, ok := tc.col.bind(tc.v); ok {
			t.Errorf("bind %s to %+v = %q %#v, want left out", tc.v, tc.col, expr, arg)
		}
	}
}

// TestRelationReadsCarryTheWhereAndOrderBy prevents a filter or order applied in Go only: the
// predicate goes into the statement as configured, in parentheses after the key match (so an
// OR in it cannot widen the match), and the order with quoted columns.
func TestRelationReadsCarryTheWhereAndOrderBy(t *testing.T) {
	src := &Source{tables: map[string]columns{"hr.titles": {"emp_no": {typ: "int"}}}}
	v := &view{src: src}
	q, args, err := v.in(context.Background(), "hr.titles", []string{"title", "from_date"}, "emp_no",
		[]indexer.Value{"1", "2"}, indexer.Filter{Where: "to_date = '9999-01-01' OR title = 'x'",
			Order: []indexer.Order{{Column: "from_date", Desc: true}, {Column: "title"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := "SELECT `title`,`from_date` FROM `hr`.`titles` WHERE `emp_no` IN (?,?) AND (to_date = '9999-01-01' OR title = 'x')" +
		" ORDER BY `from_date` DESC,`title`"
	if q != want || len(args) != 2 {
		t.Errorf("statement:\n got  %s %v\n want %s", q, args, want)
	}
	q, _, _ = v.in(context.Background(), "hr.titles", nil, "emp_no", []indexer.Value{"1"}, indexer.Filter{})
	if q != "SELECT * FROM `hr`.`titles` WHERE `emp_no` IN (?)" {
		t.Errorf("unfiltered statement: %s", q)
	}
}
