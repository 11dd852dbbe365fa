package binlog

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// directCase is a column of a type decodeKept decodes and the raw values (nil: NULL) it is
// tested with.
type directCase struct {
	name     string
	col      testCol
	unsigned bool
	values   [][]byte
}

// padCol is a BLOB no update of the tests changes: left out, and of a type decodeKept does not
// decode, which must not keep it from decoding the others.
var padCol = testCol{"pad", gomysql.MYSQL_TYPE_BLOB, []byte{2}}

// TestDirectDecodingYieldsExactlyGoMySQLsValues prevents a directly decoded value that differs
// from go-mysql's own decoding of the same bytes in type or value (the published change would
// differ from a full read's): for every type decoded directly, edge values and random bytes,
// NULLs among them, in a many-row update, decodeKept's rows equal go-mysql's decoding of the
// whole rows for the kept columns and are those of the rewritten rows decoded by go-mysql
// (the trimmed path before), with the same skipped columns and bitmaps.
func TestDirectDecodingYieldsExactlyGoMySQLsValues(t *testing.T) {
	for _, c := range directCases(rand.New(rand.NewPCG(1, 2))) {
		t.Run(c.name, func(t *testing.T) {
			cols := []testCol{{"id", gomysql.MYSQL_TYPE_LONG, nil}, c.col, padCol}
			var unsigned []int
			if c.unsigned {
				unsigned = []int{1}
			}
			var images [][][]byte
			pad := str("unchanged", 2)
			for k, v := range c.values {
				next := c.values[(k+1)%len(c.values)]
				images = append(images, [][]byte{le32(int32(k)), v, pad}, [][]byte{le32(int32(k)), next, pad})
			}
			ev := updateEvent(3, images...)
			parse := func(decode func(*replication.RowsEvent, []byte) error) *replication.RowsEvent {
				t.Helper()
				got, err := testParserSigned(t, cols, []int{0}, unsigned, decode).Parse(ev)
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				return got.Event.(*replication.RowsEvent)
			}
			// trimmed measures e as the stream does, then decodes the kept columns with kept.
			trimmed := func(kept func(st *stream, e *replication.RowsEvent, data, bitmap []byte, p *trimPlan) error) func(*replication.RowsEvent, []byte) error {
				st := testStream()
				return func(e *replication.RowsEvent, data []byte) error {
					pos, err := e.DecodeHeader(data)
					if err != nil {
						return err
					}
					p := st.describe(e.Table).plan
					bitmap, ok := st.trim.trim(e, data[pos:], p)
					if !ok {
						t.Fatal("update not trimmed")
					}
					return kept(st, e, data[pos:], bitmap, p)
				}
			}
			direct := parse(trimmed(func(st *stream, e *replication.RowsEvent, data, bitmap []byte, p *trimPlan) error {
				if !st.trim.direct(e, p) || !st.trim.decodeKept(e, data, bitmap, p) {
					t.Fatal("update not decoded directly")
				}
				return nil
			}))
			rewritten := parse(trimmed(func(st *stream, e *replication.RowsEvent, data, bitmap []byte, _ *trimPlan) error {
				e.ColumnBitmap1, e.ColumnBitmap2 = bitmap, bitmap
				return e.DecodeData(0, st.trim.rewrite(data))
			}))
			full := parse(nil)
			checkKept(t, direct, full, 0, 1)
			if !reflect.DeepEqual(direct.Rows, rewritten.Rows) || !reflect.DeepEqual(direct.SkippedColumns, rewritten.SkippedColumns) ||
				!bytes.Equal(direct.ColumnBitmap1, rewritten.ColumnBitmap1) || !bytes.Equal(direct.ColumnBitmap2, rewritten.ColumnBitmap2) {
				t.Errorf("direct decoding: rows %v skipped %v bitmaps %x %x\nrewritten:      rows %v skipped %v bitmaps %x %x",
					direct.Rows, direct.SkippedColumns, direct.ColumnBitmap1, direct.ColumnBitmap2,
					rewritten.Rows, rewritten.SkippedColumns, rewritten.ColumnBitmap1, rewritten.ColumnBitmap2)
			}
			for r := range full.Rows {
				if reflect.TypeOf(direct.Rows[r][1]) != reflect.TypeOf(full.Rows[r][1]) {
					t.Fatalf("image %d: %T, go-mysql %T", r, direct.Rows[r][1], full.Rows[r][1])
				}
			}
		})
	}
}

// directCases are the columns of every type decoded directly, with their values: the edges
// of each type and random bytes.
func directCases(rnd *rand.Rand) []directCase {
	random := func(n, size int) [][]byte {
		var out [][]byte
		for range n {
			b := make([]byte, size)
			for i := range b {
				b[i] = byte(rnd.UintN(256))
			}
			out = append(out, b)
		}
		return out
	}
	var cases []directCase
	for _, it := range []struct {
		name string
		tp   byte
		size int
	}{
		{"TINYINT", gomysql.MYSQL_TYPE_TINY, 1}, {"SMALLINT", gomysql.MYSQL_TYPE_SHORT, 2},
		{"MEDIUMINT", gomysql.MYSQL_TYPE_INT24, 3}, {"INT", gomysql.MYSQL_TYPE_LONG, 4},
		{"BIGINT", gomysql.MYSQL_TYPE_LONGLONG, 8},
	} {
		fill := func(low, rest, high byte) []byte { // little-endian: low byte first
			b := bytes.Repeat([]byte{rest}, it.size)
			b[0], b[it.size-1] = low, high
			if it.size == 1 {
				b[0] = high
			}
			return b
		}
		values := [][]byte{fill(0, 0, 0), fill(1, 0, 0), nil, fill(0xff, 0xff, 0x7f), fill(0, 0, 0x80),
			fill(0xff, 0xff, 0xff), fill(2, 0, 0), nil, nil, fill(0xfe, 0xff, 0xff), fill(0x80, 0, 0)}
		values = append(values, random(40, it.size)...)
		for _, unsigned := range []bool{false, true} {
			name := it.name
			if unsigned {
				name += " UNSIGNED"
			}
			cases = append(cases, directCase{name, testCol{"c", it.tp, nil}, unsigned, values})
		}
	}
	multibyte := "héllo wörld ✓ 😀 ñ"
	for _, sc := range []struct {
		name string
		col  testCol
		max  int // bytes
	}{
		{"VARCHAR(40) latin1", testCol{"c", gomysql.MYSQL_TYPE_VARCHAR, []byte{40, 0}}, 40},
		{"VARCHAR(63) utf8mb4", testCol{"c", gomysql.MYSQL_TYPE_VARCHAR, []byte{252, 0}}, 252},
		{"VARCHAR(300) utf8mb4", testCol{"c", gomysql.MYSQL_TYPE_VARCHAR, []byte{0xb0, 0x04}}, 1200},
		{"VAR_STRING(40)", testCol{"c", gomysql.MYSQL_TYPE_VAR_STRING, []byte{40, 0}}, 40},
		{"CHAR(10) latin1", testCol{"c", gomysql.MYSQL_TYPE_STRING, []byte{0xfe, 0x0a}}, 10},
		{"CHAR(100) utf8mb4", testCol{"c", gomysql.MYSQL_TYPE_STRING, []byte{0xee, 0x90}}, 400},
		{"BINARY(4)", testCol{"c", gomysql.MYSQL_TYPE_STRING, []byte{0xfe, 0x04}}, 4},
	} {
		prefix := lengthPrefix(sc.max)
		var values [][]byte
		for _, s := range []string{"", "a", multibyte, strings.Repeat("é", sc.max/2), strings.Repeat("z", sc.max),
			"\x00\x00", "a\x00b", "\xff\xfe invalid UTF-8", "trailing  "} {
			if len(s) <= sc.max {
				values = append(values, str(s, prefix))
			}
		}
		values = append(values, nil, str("", prefix), nil, nil)
		for _, b := range random(30, sc.max) {
			values = append(values, str(string(b[:rnd.IntN(sc.max+1)]), prefix))
		}
		cases = append(cases, directCase{sc.name, sc.col, false, values})
	}
	for fsp := range 7 {
		frac := func(us int) []byte { // the fraction bytes of fsp digits, us truncated to them
			switch fsp {
			case 1, 2:
				return []byte{byte(us / 10000)}
			case 3, 4:
				return binary.BigEndian.AppendUint16(nil, uint16(us/100))
			case 5, 6:
				return []byte{byte(us >> 16), byte(us >> 8), byte(us)}
			}
			return nil
		}
		dt := func(y, mo, d, h, mi, s, us int) []byte {
			ymd := int64(y*13+mo)<<5 | int64(d)
			v := uint64(ymd<<17|int64(h<<12|mi<<6|s)) + 0x8000000000
			return append([]byte{byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}, frac(us)...)
		}
		values := [][]byte{dt(0, 0, 0, 0, 0, 0, 0), dt(0, 0, 0, 0, 0, 0, 123456), dt(1970, 1, 1, 0, 0, 0, 0),
			dt(1969, 12, 31, 23, 59, 59, 999999), nil, dt(1000, 1, 1, 0, 0, 0, 0), dt(9999, 12, 31, 23, 59, 59, 999999),
			dt(2024, 2, 29, 12, 34, 56, 123456), dt(2024, 2, 1, 0, 0, 0, 0), dt(2023, 2, 1, 0, 0, 0, 0), dt(2024, 0, 10, 1, 2, 3, 0), dt(2024, 5, 0, 1, 2, 3, 500000),
			dt(0, 1, 1, 0, 0, 0, 1), dt(2038, 1, 19, 3, 14, 7, 999999), dt(1970, 1, 1, 0, 0, 0, 1), nil, nil,
			dt(2025, 1, 2, 3, 4, 5, 100000), dt(2024, 2, 31, 25, 61, 61, 0)}
		values = append(values, random(30, 5+(fsp+1)/2)...)
		cases = append(cases, directCase{"DATETIME(" + strconv.Itoa(fsp) + ")",
			testCol{"c", gomysql.MYSQL_TYPE_DATETIME2, []byte{byte(fsp)}}, false, values})
		ts := func(sec uint32, us int) []byte { return append(binary.BigEndian.AppendUint32(nil, sec), frac(us)...) }
		values = [][]byte{ts(0, 0), ts(0, 654321), ts(1, 0), nil, ts(2147483647, 999999), ts(0xffffffff, 1),
			ts(1700000000, 123456), ts(86400, 500000), nil, nil, ts(1700000000, 0)}
		values = append(values, random(30, 4+(fsp+1)/2)...)
		cases = append(cases, directCase{"TIMESTAMP(" + strconv.Itoa(fsp) + ")",
			testCol{"c", gomysql.MYSQL_TYPE_TIMESTAMP2, []byte{byte(fsp)}}, false, values})
	}
	for _, ps := range [][2]int{{10, 2}, {1, 0}, {9, 0}, {10, 0}, {18, 9}, {65, 30}, {65, 0}, {5, 5}, {38, 38}, {20, 10}, {13, 4}, {4, 2}} {
		precision, scale := ps[0], ps[1]
		nines := strings.Repeat("9", precision-scale) + "." + strings.Repeat("9", scale)
		values := [][]byte{decimalBin("0", precision, scale), decimalBin("1", precision, scale),
			decimalBin("-1", precision, scale), decimalBin(nines, precision, scale), decimalBin("-"+nines, precision, scale),
			nil, decimalBin("0."+strings.Repeat("0", max(scale-1, 0))+"1", precision, scale),
			decimalBin("-0."+strings.Repeat("0", max(scale-1, 0))+"5", precision, scale), nil, nil}
		for range 30 { // random digits
			digits := func(n int) string {
				b := make([]byte, n)
				for i := range b {
					b[i] = byte('0' + rnd.IntN(10))
				}
				return string(b)
			}
			v := digits(rnd.IntN(precision-scale+1)) + "." + digits(rnd.IntN(scale+1))
			if rnd.IntN(2) == 0 {
				v = "-" + v
			}
			values = append(values, decimalBin(v, precision, scale))
		}
		cases = append(cases, directCase{"DECIMAL(" + strconv.Itoa(precision) + "," + strconv.Itoa(scale) + ")",
			testCol{"c", gomysql.MYSQL_TYPE_NEWDECIMAL, []byte{byte(precision), byte(scale)}}, false, values})
	}
	return cases
}

// decimalBin is s ("[-]digits[.digits]", cut to precision and scale) in MySQL's binary DECIMAL
// format (strings/decimal.c decimal2bin): groups of 9 digits in 4 bytes big-endian, the digits
// left over (first of the integral part, last of the fraction) in 0-4 bytes, every byte
// inverted when negative, then the first byte's high bit flipped.
func decimalBin(s string, precision, scale int) []byte {
	neg := strings.HasPrefix(s, "-")
	intPart, fracPart, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	integral := precision - scale
	intPart = strings.Repeat("0", integral) + intPart
	intPart = intPart[len(intPart)-integral:]                  // digits beyond precision-scale dropped
	fracPart = (fracPart + strings.Repeat("0", scale))[:scale] // digits past the scale dropped
	digBytes := [10]int{0, 1, 1, 2, 2, 3, 3, 4, 4, 4}
	var b []byte
	put := func(digits string) {
		v := uint64(0)
		if digits != "" {
			v, _ = strconv.ParseUint(digits, 10, 32)
		}
		for i := digBytes[len(digits)] - 1; i >= 0; i-- {
			b = append(b, byte(v>>(8*i)))
		}
	}
	lead := integral % 9
	put(intPart[:lead])
	for i := lead; i < integral; i += 9 {
		put(intPart[i : i+9])
	}
	for i := 0; i+9 <= scale; i += 9 {
		put(fracPart[i : i+9])
	}
	put(fracPart[scale/9*9:])
	if neg {
		for i := range b {
			b[i] ^= 0xff
		}
	}
	b[0] ^= 0x80
	return b
}

// TestDirectDecodingLeavesADecimalGoMySQLCannotDecodeToIt prevents decoding a DECIMAL that
// go-mysql fails on (a 4-byte group above 999999999, which MySQL never writes): go-mysql's
// own decoding must decide, so that the event fails as it did (a resync mark), and every
// value it does decode, decodeKept decodes alike.
func TestDirectDecodingLeavesADecimalGoMySQLCannotDecodeToIt(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	failed, decoded := 0, 0
	for _, ps := range [][2]int{{10, 2}, {18, 9}, {65, 30}, {20, 0}} {
		precision, scale := ps[0], ps[1]
		size, _ := decimalSize(precision, scale)
		cols := []testCol{{"id", gomysql.MYSQL_TYPE_LONG, nil}, {"c", gomysql.MYSQL_TYPE_NEWDECIMAL, []byte{byte(precision), byte(scale)}}}
		for range 200 {
			v := make([]byte, size)
			for i := range v {
				v[i] = byte(rnd.UintN(256))
			}
			ev := updateEvent(2, [][]byte{le32(1), v}, [][]byte{le32(1), decimalBin("1", precision, scale)})
			full, err := testParser(t, cols, []int{0}, nil).Parse(ev)
			got, ok := decimalValue(v, precision, scale)
			switch {
			case err != nil && ok:
				t.Fatalf("DECIMAL(%d,%d) % x: decoded as %q, go-mysql fails: %v", precision, scale, v, got, err)
			case err != nil:
				failed++
				st := testStream()
				if _, err := testParser(t, cols, []int{0}, st.decodeRows).Parse(ev); err != nil || st.bad == nil {
					t.Fatalf("DECIMAL(%d,%d) % x: the stream's decode did not fail the event (%v)", precision, scale, v, err)
				}
			default:
				decoded++
				if want := full.Event.(*replication.RowsEvent).Rows[0][1]; !ok || got != want {
					t.Fatalf("DECIMAL(%d,%d) % x: %q %v, go-mysql %q", precision, scale, v, got, ok, want)
				}
			}
		}
	}
	if failed == 0 || decoded == 0 {
		t.Fatalf("%d random values failed and %d decoded: both kinds needed", failed, decoded)
	}
}

// TestUpdateKeepingAColumnNotDecodedDirectlyGoesThroughGoMySQL prevents decoding directly an
// update that keeps a column of another type (FLOAT, DATE, BLOB here), or one parsed with other
// options than the source's (ParseTime off would make times text): go-mysql decodes its
// rewritten rows, as before. An update of the same table keeping only direct types is decoded
// directly, and both come out as go-mysql's full decoding for the kept columns.
func TestUpdateKeepingAColumnNotDecodedDirectlyGoesThroughGoMySQL(t *testing.T) {
	cols := []testCol{{"id", gomysql.MYSQL_TYPE_LONG, nil}, {"f", gomysql.MYSQL_TYPE_FLOAT, []byte{4}},
		{"d", gomysql.MYSQL_TYPE_DATE, nil}, {"n", gomysql.MYSQL_TYPE_LONG, nil}, padCol}
	f := func(v float32) []byte { return binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)) }
	date := []byte{0x21, 0x2f, 0x0f} // 1945-09-01
	pad := str("same", 2)
	for _, c := range []struct {
		name       string
		parseTime  bool
		before     [][]byte
		after      [][]byte
		kept       []int
		wantDirect bool
	}{
		{"FLOAT changed", true, [][]byte{le32(1), f(1.5), date, le32(1), pad}, [][]byte{le32(1), f(2.5), date, le32(2), pad}, []int{0, 1, 3}, false},
		{"DATE to NULL", true, [][]byte{le32(1), f(1.5), date, le32(1), pad}, [][]byte{le32(1), f(1.5), nil, le32(1), pad}, []int{0, 2}, false},
		{"BLOB changed", true, [][]byte{le32(1), f(1.5), date, le32(1), pad}, [][]byte{le32(1), f(1.5), date, le32(1), str("new", 2)}, []int{0, 4}, false},
		{"only INT changed", true, [][]byte{le32(1), f(1.5), date, le32(1), pad}, [][]byte{le32(1), f(1.5), date, le32(7), pad}, []int{0, 3}, true},
		{"only INT changed, ParseTime off", false, [][]byte{le32(1), f(1.5), date, le32(1), pad}, [][]byte{le32(1), f(1.5), date, le32(7), pad}, []int{0, 3}, false},
	} {
		st := testStream()
		ev := updateEvent(len(cols), c.before, c.after)
		p := testParser(t, cols, []int{0}, func(e *replication.RowsEvent, data []byte) error {
			pos, err := e.DecodeHeader(data)
			if err != nil {
				return err
			}
			plan := st.describe(e.Table).plan
			if _, ok := st.trim.trim(e, data[pos:], plan); !ok {
				t.Errorf("%s: not trimmed", c.name)
			} else if got := st.trim.direct(e, plan); got != c.wantDirect {
				t.Errorf("%s: decoded directly %v, want %v", c.name, got, c.wantDirect)
			}
			return st.trim.decode(e, pos, data, plan)
		})
		p.SetParseTime(c.parseTime)
		trimmed, err := p.Parse(ev)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		fp := testParser(t, cols, []int{0}, nil)
		fp.SetParseTime(c.parseTime)
		full, err := fp.Parse(ev)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		checkKept(t, trimmed.Event.(*replication.RowsEvent), full.Event.(*replication.RowsEvent), c.kept...)
	}
}

// TestRowsOfEarlierUpdatesKeepTheirValuesWhileLaterOnesAreDecoded prevents a directly decoded
// row, value or text shared with a later event (decodeKept carves them from chunks): the rows
// of every update stay as decoded while hundreds more, over several chunks, are decoded by
// the same stream, and growing one row does not touch another.
func TestRowsOfEarlierUpdatesKeepTheirValuesWhileLaterOnesAreDecoded(t *testing.T) {
	st := testStream()
	p := testParser(t, itemsCols, []int{0}, st.decodeRows)
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var events []*replication.RowsEvent
	var want [][][]any
	for k := range 300 {
		before := itemImage(int32(k), int32(k), strings.Repeat("b", k%40+1), t0)
		after := itemImage(int32(k), int32(k+1), strings.Repeat("a", k%50+1), t0.Add(time.Duration(k+1)*time.Second))
		ev, err := p.Parse(updateEvent(len(itemsCols), before, after, after, before))
		if err != nil || st.bad != nil {
			t.Fatalf("update %d: %v %v", k, err, st.badErr)
		}
		e := ev.Event.(*replication.RowsEvent)
		events = append(events, e)
		var rows [][]any
		for _, r := range e.Rows {
			rows = append(rows, slices.Clone(r))
		}
		want = append(want, rows)
		if e.Rows[0][3] != int32(k) || e.Rows[1][7] != strings.Repeat("a", k%50+1) {
			t.Fatalf("update %d decoded as %v", k, e.Rows)
		}
	}
	for _, e := range events {
		e.Rows[0] = append(e.Rows[0], "grown")
		e.Rows = append(e.Rows, []any{"grown"})
		e.SkippedColumns = append(e.SkippedColumns, []int{-1})
	}
	for k, e := range events {
		if !reflect.DeepEqual(e.Rows[1:4], want[k][1:]) || !reflect.DeepEqual(e.Rows[0][:len(itemsCols)], want[k][0]) ||
			len(e.SkippedColumns) != 5 || !slices.Equal(e.SkippedColumns[0], []int{1, 2, 4, 5, 6, 8}) {
			t.Fatalf("update %d: rows now %v, decoded as %v", k, e.Rows, want[k])
		}
	}
}

// TestDirectDecodingOnlyWithTheParserOptionsItFollows prevents values decoded directly when
// go-mysql would decode them otherwise: with DECIMAL as decimal.Decimal (UseDecimal) or times
// as text (ParseTime off) the event is not decoded directly.
func TestDirectDecodingOnlyWithTheParserOptionsItFollows(t *testing.T) {
	for _, c := range []struct {
		name                  string
		parseTime, useDecimal bool
		want                  bool
	}{{"source's options", true, false, true}, {"UseDecimal", true, true, false}, {"ParseTime off", false, false, false}} {
		p := replication.NewBinlogParser()
		p.SetParseTime(c.parseTime)
		p.SetUseDecimal(c.useDecimal)
		var got, called bool
		p.SetRowsEventDecodeFunc(func(e *replication.RowsEvent, data []byte) error {
			got, called = directOptions(e), true
			return nil
		})
		fde, tm := testMapEvents([]testCol{{"id", gomysql.MYSQL_TYPE_LONG, nil}}, []int{0}, nil)
		for _, ev := range [][]byte{fde, tm, updateEvent(1, [][]byte{le32(1)}, [][]byte{le32(2)})} {
			if _, err := p.Parse(ev); err != nil {
				t.Fatal(err)
			}
		}
		if !called || got != c.want {
			t.Errorf("%s: decoded directly %v, want %v", c.name, got, c.want)
		}
	}
}
