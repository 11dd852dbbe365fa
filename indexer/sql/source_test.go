package sql

import (
	"encoding/json"
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
