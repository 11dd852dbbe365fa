package sql

import (
	"database/sql"
	"fmt"
	"testing"

	"github.com/wyehq/wye/indexer"
)

// BenchmarkEncodeRowsOf500FlatRows is the encoding of one read of 500 rows of the flat table of
// the end-to-end benchmark (10 columns), as the view does it after each Scan: every value
// in the change event encoding, one Row per row. go test -run - -bench EncodeRows ./indexer/sql
func BenchmarkEncodeRowsOf500FlatRows(b *testing.B) {
	names := []string{"id", "title", "code", "qty", "price", "active", "mark", "note", "created_at", "updated_at"}
	typs := []string{"INT", "VARCHAR", "VARCHAR", "INT", "DECIMAL", "TINYINT", "BIGINT", "VARCHAR", "DATETIME", "DATETIME"}
	rows := make([][]sql.RawBytes, 500)
	for i := range rows {
		id := 1 + 7*i
		for _, v := range []string{fmt.Sprint(id), fmt.Sprintf("item number %d of the flat bench", id), fmt.Sprintf("C%06d", id),
			fmt.Sprint(id % 1000), fmt.Sprintf("%d.%02d", id%5000, id%100), fmt.Sprint(id % 2), "0",
			fmt.Sprintf("changed %d", 7919*id), "2026-01-02 03:04:05", fmt.Sprintf("2026-01-02 03:04:05.%06d", id)} {
			rows[i] = append(rows[i], sql.RawBytes(v))
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		enc := newRowEncoder(names, typs)
		out := make([]indexer.Row, 0, len(rows))
		for _, raw := range rows {
			out = append(out, enc.row(enc.room(), raw))
		}
		if out[499].Get("title") != `"item number 3494 of the flat bench"` {
			b.Fatalf("title %s", out[499].Get("title"))
		}
	}
}

// TestARowEncodedAtOnceHoldsEachValueAsEncodeWrites prevents the one-string-per-row encoding
// from giving any value other bytes than encode gives it alone (keys would not match events).
func TestARowEncodedAtOnceHoldsEachValueAsEncodeWrites(t *testing.T) {
	typs := []string{"INT", "DECIMAL", "TIMESTAMP", "TIMESTAMP", "VARCHAR", "BLOB", "JSON", "BIT", "INT", "TIMESTAMP", "JSON"}
	raws := []sql.RawBytes{sql.RawBytes("42"), sql.RawBytes("-0.50"), sql.RawBytes("2024-03-01 10:00:00.5"), sql.RawBytes("0000-00-00 00:00:00"),
		sql.RawBytes(`héllo "q" <tag>` + "\u2028"), sql.RawBytes("\x00\xff"), sql.RawBytes(`{"a": [1, "<"]}`), sql.RawBytes("\x01\x00"), nil,
		sql.RawBytes("2024-03-01\xe2\x80\xa810:00"), sql.RawBytes("not json")}
	names := make([]string, len(typs))
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i)
	}
	enc := newRowEncoder(names, typs)
	r := enc.row(enc.room(), raws)
	for i, n := range names {
		if want := encode(typs[i], raws[i]); r.Get(n) != want {
			t.Errorf("%s %q: %s, want %s", typs[i], raws[i], r.Get(n), want)
		}
	}
}

// TestRowsOfOneReadKeepTheirOwnValues prevents the room shared by the rows of a read from
// handing one row's values to another: every row of a long read holds its own values.
func TestRowsOfOneReadKeepTheirOwnValues(t *testing.T) {
	enc := newRowEncoder([]string{"id", "name"}, []string{"INT", "VARCHAR"})
	var rows []indexer.Row
	for i := range 3 * maxRowsRoom {
		rows = append(rows, enc.row(enc.room(), []sql.RawBytes{sql.RawBytes(fmt.Sprint(i)), sql.RawBytes(fmt.Sprint("n", i))}))
	}
	for i, r := range rows {
		if id, name := r.Get("id"), r.Get("name"); id != indexer.Value(fmt.Sprint(i)) || name != indexer.Value(fmt.Sprintf(`"n%d"`, i)) || r.Len() != 2 {
			t.Fatalf("row %d: %s", i, r)
		}
	}
}
