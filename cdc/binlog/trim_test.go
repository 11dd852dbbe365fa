package binlog

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/wyehq/wye/cdc"
)

// testCol is one column of a hand-built table map: its binlog type and the metadata bytes
// the table map event carries for it (decodeMeta's layout).
type testCol struct {
	name string
	tp   byte
	meta []byte
}

// binlogEvent frames body as a binlog event of type tp (no checksum).
func binlogEvent(tp replication.EventType, body []byte) []byte {
	h := make([]byte, replication.EventHeaderSize, replication.EventHeaderSize+len(body))
	h[4] = byte(tp)
	binary.LittleEndian.PutUint32(h[9:], uint32(replication.EventHeaderSize+len(body)))
	return append(h, body...)
}

// testParser returns a go-mysql parser that has read a format description (6-byte table
// ids, no checksum) and the table map of cols (table id 7, primary key pk), decoding rows
// events with decode (nil: go-mysql's own).
func testParser(t testing.TB, cols []testCol, pk []int, decode func(*replication.RowsEvent, []byte) error) *replication.BinlogParser {
	t.Helper()
	return testParserSigned(t, cols, pk, nil, decode)
}

// testParserSigned is testParser with the columns of unsigned (indexes of numeric columns)
// unsigned in the table map's signedness metadata.
func testParserSigned(t testing.TB, cols []testCol, pk, unsigned []int, decode func(*replication.RowsEvent, []byte) error) *replication.BinlogParser {
	t.Helper()
	p := replication.NewBinlogParser()
	p.SetParseTime(true)
	p.SetTimestampStringLocation(time.UTC)
	p.SetFlavor(gomysql.MariaDBFlavor)
	if decode != nil {
		p.SetRowsEventDecodeFunc(decode)
	}
	fde, tm := testMapEvents(cols, pk, unsigned)
	for _, ev := range [][]byte{fde, tm} {
		if _, err := p.Parse(ev); err != nil {
			t.Fatalf("parse: %v", err)
		}
	}
	return p
}

// testMapEvents returns a format description event (6-byte table ids, no checksum) and the
// table map event of cols (table d.t, id 7, primary key pk, unsigned as testParserSigned).
func testMapEvents(cols []testCol, pk, unsigned []int) (fdeEvent, tableMapEvent []byte) {
	fde := make([]byte, 0, 100)
	fde = binary.LittleEndian.AppendUint16(fde, 4)
	fde = append(fde, make([]byte, 50)...)
	copy(fde[2:], "5.0.0") // old enough to carry no checksum
	fde = binary.LittleEndian.AppendUint32(fde, 0)
	fde = append(fde, replication.EventHeaderSize)
	for range 200 { // through MariaDB's event types (compressed rows events are 166-171)
		fde = append(fde, 8) // post-header length 8: 6-byte table ids
	}
	tm := []byte{7, 0, 0, 0, 0, 0, 0, 0, 1, 'd', 0, 1, 't', 0, byte(len(cols))}
	var meta, names, keys []byte
	for _, c := range cols {
		tm = append(tm, c.tp)
		meta = append(meta, c.meta...)
		names = append(append(names, byte(len(c.name))), c.name...)
	}
	for _, k := range pk {
		keys = append(keys, byte(k))
	}
	tm = append(append(tm, byte(len(meta))), meta...)
	tm = append(tm, make([]byte, (len(cols)+7)/8)...) // null bitmap
	if len(unsigned) > 0 {
		// One bit per numeric column, in column order, the high bit first (go-mysql UnsignedMap).
		var signs []byte
		bit := 0
		for i, c := range cols {
			switch c.tp {
			case gomysql.MYSQL_TYPE_TINY, gomysql.MYSQL_TYPE_SHORT, gomysql.MYSQL_TYPE_INT24, gomysql.MYSQL_TYPE_LONG,
				gomysql.MYSQL_TYPE_LONGLONG, gomysql.MYSQL_TYPE_DECIMAL, gomysql.MYSQL_TYPE_NEWDECIMAL,
				gomysql.MYSQL_TYPE_FLOAT, gomysql.MYSQL_TYPE_DOUBLE, gomysql.MYSQL_TYPE_YEAR:
			default:
				continue
			}
			if bit%8 == 0 {
				signs = append(signs, 0)
			}
			if slices.Contains(unsigned, i) {
				signs[bit/8] |= 0x80 >> (bit % 8)
			}
			bit++
		}
		tm = append(append(append(tm, replication.TABLE_MAP_OPT_META_SIGNEDNESS), byte(len(signs))), signs...)
	}
	tm = append(append(append(tm, replication.TABLE_MAP_OPT_META_COLUMN_NAME), byte(len(names))), names...)
	tm = append(append(append(tm, replication.TABLE_MAP_OPT_META_SIMPLE_PRIMARY_KEY), byte(len(keys))), keys...)
	return binlogEvent(replication.FORMAT_DESCRIPTION_EVENT, fde), binlogEvent(replication.TABLE_MAP_EVENT, tm)
}

// updateEvent builds an UPDATE_ROWS_EVENTv1 of table 7 with n columns: images alternate
// before and after, each the raw value of every column (nil: NULL).
func updateEvent(n int, images ...[][]byte) []byte {
	b := []byte{7, 0, 0, 0, 0, 0, 0, 0, byte(n)}
	bitmap := make([]byte, (n+7)/8)
	for i := range n {
		bitmap[i>>3] |= 1 << (i & 7)
	}
	b = append(append(b, bitmap...), bitmap...)
	for _, img := range images {
		nulls := make([]byte, (n+7)/8)
		var vals []byte
		for i, v := range img {
			if v == nil {
				nulls[i>>3] |= 1 << (i & 7)
			}
			vals = append(vals, v...)
		}
		b = append(append(b, nulls...), vals...)
	}
	return binlogEvent(replication.UPDATE_ROWS_EVENTv1, b)
}

func le32(v int32) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }
func le64(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

// str is a CHAR/VARCHAR value with a prefix-byte length.
func str(s string, prefix int) []byte {
	if prefix == 1 {
		return append([]byte{byte(len(s))}, s...)
	}
	return append(binary.LittleEndian.AppendUint16(nil, uint16(len(s))), s...)
}

// datetime2 is a DATETIME(fsp) value in MySQL's binary format (fsp 0 or 6 here).
func datetime2(tm time.Time, fsp int) []byte {
	ymd := int64((tm.Year()*13+int(tm.Month())))<<5 | int64(tm.Day())
	hms := int64(tm.Hour()<<12 | tm.Minute()<<6 | tm.Second())
	v := uint64(ymd<<17|hms) + 0x8000000000
	b := []byte{byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	if fsp == 6 {
		us := tm.Nanosecond() / 1000
		b = append(b, byte(us>>16), byte(us>>8), byte(us))
	}
	return b
}

// decimal10_2 is a non-negative DECIMAL(10,2) value in MySQL's binary format.
func decimal10_2(units, cents uint32) []byte {
	return append(binary.BigEndian.AppendUint32(nil, units|0x80000000), byte(cents))
}

// itemsCols is the e2e bench's items table: id INT PK, title VARCHAR(200), code VARCHAR(16),
// qty INT, price DECIMAL(10,2), active TINYINT, mark BIGINT, note VARCHAR(255),
// created_at DATETIME, updated_at DATETIME(6), all utf8mb4.
var itemsCols = []testCol{
	{"id", gomysql.MYSQL_TYPE_LONG, nil},
	{"title", gomysql.MYSQL_TYPE_VARCHAR, []byte{0x20, 0x03}}, // 800 bytes
	{"code", gomysql.MYSQL_TYPE_VARCHAR, []byte{64, 0}},
	{"qty", gomysql.MYSQL_TYPE_LONG, nil},
	{"price", gomysql.MYSQL_TYPE_NEWDECIMAL, []byte{10, 2}},
	{"active", gomysql.MYSQL_TYPE_TINY, nil},
	{"mark", gomysql.MYSQL_TYPE_LONGLONG, nil},
	{"note", gomysql.MYSQL_TYPE_VARCHAR, []byte{0xfc, 0x03}}, // 1020 bytes
	{"created_at", gomysql.MYSQL_TYPE_DATETIME2, []byte{0}},
	{"updated_at", gomysql.MYSQL_TYPE_DATETIME2, []byte{6}},
}

// itemImage is one row image of itemsCols.
func itemImage(id int32, qty int32, note string, updated time.Time) [][]byte {
	return [][]byte{le32(id), str("a title long enough to be worth skipping", 2), str("C-17", 1), le32(qty),
		decimal10_2(1234, 50), {1}, le64(987654321), str(note, 2),
		datetime2(time.Date(2024, 2, 29, 23, 5, 9, 0, time.UTC), 0), datetime2(updated, 6)}
}

// testStream is a stream of testParser's table d.t, as Open makes it with update images
// trimmed to the changed columns and whole the columns named.
func testStream(whole ...string) *stream {
	src := &Source{opts: SourceOptions{Logger: slog.New(slog.DiscardHandler), UpdateImages: cdc.UpdateImagesChanged,
		WholeColumns: cdc.WholeColumns{"d.t": whole}}, followed: map[string]map[string]bool{"d": {"t": true}}}
	return src.newStream()
}

// decodeBoth parses ev through a trimming stream's decoder (whole columns of d.t) and
// through go-mysql's own, returning both rows events.
func decodeBoth(t *testing.T, cols []testCol, pk []int, whole []string, ev []byte) (trimmed, full *replication.RowsEvent) {
	t.Helper()
	st := testStream(whole...)
	for _, decode := range []func(*replication.RowsEvent, []byte) error{st.decodeRows, nil} {
		got, err := testParser(t, cols, pk, decode).Parse(ev)
		if err != nil {
			t.Fatalf("parse update: %v", err)
		}
		if decode != nil {
			if st.bad != nil {
				t.Fatalf("trimmed decode failed: %v", st.badErr)
			}
			trimmed = got.Event.(*replication.RowsEvent)
		} else {
			full = got.Event.(*replication.RowsEvent)
		}
	}
	return trimmed, full
}

// checkKept asserts that trimmed holds full's value for the kept columns and nil for the
// others, in every image.
func checkKept(t *testing.T, trimmed, full *replication.RowsEvent, kept ...int) {
	t.Helper()
	if len(trimmed.Rows) != len(full.Rows) {
		t.Fatalf("trimmed decode has %d images, full %d", len(trimmed.Rows), len(full.Rows))
	}
	keep := map[int]bool{}
	for _, k := range kept {
		keep[k] = true
	}
	for r := range full.Rows {
		for i, want := range full.Rows[r] {
			got := trimmed.Rows[r][i]
			if !keep[i] {
				want = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("image %d column %d: trimmed %#v, want %#v", r, i, got, want)
			}
		}
	}
}

// TestUpdateDecodesOnlyKeyWholeAndChangedColumns prevents decoding every column of an update
// whose images carry only the key, the whole columns and the changed ones (and prevents
// losing a changed column): two rows changing different columns keep the union of both, in
// both rows, since go-mysql's column bitmap is per event.
func TestUpdateDecodesOnlyKeyWholeAndChangedColumns(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC)
	ev := updateEvent(len(itemsCols),
		itemImage(1, 5, "old", t0), itemImage(1, 6, "old", t0), // row 1: qty
		itemImage(2, 5, "old", t0), itemImage(2, 5, "new note", t0.Add(time.Second)), // row 2: note, updated_at
	)
	trimmed, full := decodeBoth(t, itemsCols, []int{0}, []string{"CODE"}, ev)
	checkKept(t, trimmed, full, 0, 2, 3, 7, 9)
	if trimmed.Rows[3][7] != "new note" || trimmed.Rows[0][3] != int32(5) {
		t.Errorf("trimmed rows %v: changed values not decoded", trimmed.Rows)
	}
}

// TestUpdateOfANullColumnKeepsIt prevents treating NULL -> value (or value -> NULL) as
// unchanged: the null bit differs though neither image has bytes to compare, and an empty
// string is not NULL.
func TestUpdateOfANullColumnKeepsIt(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	before, after := itemImage(1, 5, "", t0), itemImage(1, 5, "", t0)
	before[2], after[6] = nil, nil // code NULL -> value, mark value -> NULL; note '' both
	trimmed, full := decodeBoth(t, itemsCols, []int{0}, nil, updateEvent(len(itemsCols), before, after))
	checkKept(t, trimmed, full, 0, 2, 6)
}

// TestUpdateThatChangesNothingDecodesOnlyTheKey prevents a no-op update from decoding every
// column, and from losing its rows.
func TestUpdateThatChangesNothingDecodesOnlyTheKey(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	img := itemImage(9, 5, "same", t0)
	trimmed, full := decodeBoth(t, itemsCols, []int{0}, nil, updateEvent(len(itemsCols), img, img))
	checkKept(t, trimmed, full, 0)
}

// TestUpdateWithoutKeyOrChangeKeepsItsRows prevents losing the rows of an update of a table
// without a primary key whose images are alike: with no column to keep, the rewritten rows
// would have no bytes and go-mysql would read no row at all.
func TestUpdateWithoutKeyOrChangeKeepsItsRows(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	img := itemImage(9, 5, "same", t0)
	trimmed, full := decodeBoth(t, itemsCols, nil, nil, updateEvent(len(itemsCols), img, img, img, img))
	if len(trimmed.Rows) != 4 {
		t.Fatalf("%d images decoded, want 4", len(trimmed.Rows))
	}
	checkKept(t, trimmed, full, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
}

// TestATableMapThatChangesRedescribesTheTableForDecodeAndChanges prevents one cached
// description serving a table whose map changed under the same table id (an ALTER between
// transactions): the trim keeps the whole column where the new map has it and the changes
// name the new columns, while a repeated map alike keeps the description (and the encoder's
// per-table state keyed by it).
func TestATableMapThatChangesRedescribesTheTableForDecodeAndChanges(t *testing.T) {
	st := testStream("b")
	long := func(n int32) []byte { return le32(n) }
	read := func(cols []testCol, img []byte) (*replication.RowsEvent, cdc.Item) {
		t.Helper()
		ev, err := testParser(t, cols, []int{0}, st.decodeRows).Parse(img)
		if err != nil || st.bad != nil {
			t.Fatalf("parse: %v %v", err, st.badErr)
		}
		item, ok, err := st.item(ev)
		if err != nil || !ok || len(item.Changes) != 1 {
			t.Fatalf("item %+v %v %v, want one change", item, ok, err)
		}
		return ev.Event.(*replication.RowsEvent), item
	}
	v1 := []testCol{{"id", gomysql.MYSQL_TYPE_LONG, nil}, {"a", gomysql.MYSQL_TYPE_LONG, nil}, {"b", gomysql.MYSQL_TYPE_LONG, nil}}
	v2 := []testCol{v1[0], v1[2], v1[1]} // the same columns, b moved before a
	img := [][]byte{long(1), long(2), long(3)}
	ev := updateEvent(3, img, img)
	e1, first := read(v1, ev)
	e1b, again := read(v1, ev)
	e2, moved := read(v2, ev)
	if e1.Table == e1b.Table || again.Changes[0].Table != first.Changes[0].Table {
		t.Error("a repeated table map alike got a new description")
	}
	if got := e1.Rows[0]; got[0] != int32(1) || got[1] != nil || got[2] != int32(3) {
		t.Errorf("first map: trimmed image %v, want id and b (column 2) only", got)
	}
	if got := e2.Rows[0]; got[0] != int32(1) || got[1] != int32(2) || got[2] != nil {
		t.Errorf("changed map: trimmed image %v, want id and b (column 1) only", got)
	}
	if tb := moved.Changes[0].Table; tb == first.Changes[0].Table || tb.Columns[1].Name != "b" {
		t.Errorf("changed map: changes describe the table as %+v", tb)
	}
}

// TestCharOver255BytesIsMeasuredWithATwoByteLength prevents mis-measuring a CHAR whose
// maximum length in bytes exceeds 255 (CHAR(100) utf8mb4: 400 bytes): the table map folds
// bits 8-9 of the length into the real type byte (MySQL bug 37426), and the value then has a
// 2-byte length. ENUM and SET also log as STRING, with their pack length in meta.
func TestCharOver255BytesIsMeasuredWithATwoByteLength(t *testing.T) {
	for _, c := range []struct {
		name string
		meta uint16
		want colSize
	}{
		{"CHAR(10) latin1", 0xfe0a, colSize{prefix: 1}},
		{"CHAR(63) utf8mb4 (252 bytes)", 0xfefc, colSize{prefix: 1}},
		{"CHAR(100) utf8mb4 (400 bytes)", 0xee90, colSize{prefix: 2}},
		{"CHAR(255) utf8mb4 (1020 bytes)", 0xcefc, colSize{prefix: 2}},
		{"ENUM of 3 members", 0xf701, colSize{fixed: 1}},
		{"ENUM of 300 members", 0xf702, colSize{fixed: 2}},
		{"SET of 12 members", 0xf802, colSize{fixed: 2}},
		{"SET of 64 members", 0xf808, colSize{fixed: 8}},
	} {
		got, ok := columnSize(gomysql.MYSQL_TYPE_STRING, c.meta)
		if !ok || got != c.want {
			t.Errorf("%s (meta %#04x): %+v %v, want %+v", c.name, c.meta, got, ok, c.want)
		}
	}
	// And decoded past it: a column after a 400-byte CHAR holding 300 bytes.
	cols := []testCol{{"id", gomysql.MYSQL_TYPE_LONG, nil}, {"c", gomysql.MYSQL_TYPE_STRING, []byte{0xee, 0x90}},
		{"n", gomysql.MYSQL_TYPE_LONG, nil}}
	long := string(make([]byte, 300))
	ev := updateEvent(3, [][]byte{le32(1), str(long, 2), le32(1)}, [][]byte{le32(1), str(long, 2), le32(2)})
	trimmed, full := decodeBoth(t, cols, []int{0}, nil, ev)
	checkKept(t, trimmed, full, 0, 2)
}

// TestDecimalBinarySizeFollowsPrecisionAndScale prevents mis-measuring DECIMAL: 4 bytes per 9
// digits on each side of the point, 0-4 bytes for the remaining digits.
func TestDecimalBinarySizeFollowsPrecisionAndScale(t *testing.T) {
	for _, c := range []struct{ precision, scale, want int }{
		{5, 2, 3}, {10, 2, 5}, {18, 9, 8}, {65, 30, 30}, {1, 0, 1}, {9, 0, 4}, {10, 0, 5}, {38, 38, 17},
	} {
		got, ok := columnSize(gomysql.MYSQL_TYPE_NEWDECIMAL, uint16(c.precision<<8|c.scale))
		if !ok || got.fixed != c.want {
			t.Errorf("DECIMAL(%d,%d): %d bytes %v, want %d", c.precision, c.scale, got.fixed, ok, c.want)
		}
	}
	if _, ok := columnSize(gomysql.MYSQL_TYPE_NEWDECIMAL, 2<<8|5); ok {
		t.Error("DECIMAL(2,5) measured: scale over precision is no column MySQL writes")
	}
}

// TestTemporalAndBitSizes prevents mis-measuring the types whose size comes from metadata:
// fractional seconds take (fsp+1)/2 bytes, BIT(n) (n+7)/8.
func TestTemporalAndBitSizes(t *testing.T) {
	for _, c := range []struct {
		name string
		tp   byte
		meta uint16
		want int
	}{
		{"DATETIME(0)", gomysql.MYSQL_TYPE_DATETIME2, 0, 5}, {"DATETIME(6)", gomysql.MYSQL_TYPE_DATETIME2, 6, 8},
		{"TIMESTAMP(3)", gomysql.MYSQL_TYPE_TIMESTAMP2, 3, 6}, {"TIME(1)", gomysql.MYSQL_TYPE_TIME2, 1, 4},
		{"BIT(1)", gomysql.MYSQL_TYPE_BIT, 1, 1}, {"BIT(17)", gomysql.MYSQL_TYPE_BIT, 2<<8 | 1, 3},
		{"BIT(64)", gomysql.MYSQL_TYPE_BIT, 8 << 8, 8}, {"YEAR", gomysql.MYSQL_TYPE_YEAR, 0, 1},
		{"DATE", gomysql.MYSQL_TYPE_DATE, 0, 3}, {"TIMESTAMP", gomysql.MYSQL_TYPE_TIMESTAMP, 0, 4},
	} {
		got, ok := columnSize(c.tp, c.meta)
		if !ok || got != (colSize{fixed: c.want}) {
			t.Errorf("%s: %+v %v, want %d bytes", c.name, got, ok, c.want)
		}
	}
}

// TestUnmeasurableUpdateIsDecodedWhole prevents guessing: a column type without a known size
// rule (the pre-5.0 DECIMAL), or row data that ends inside a value, leaves the event to
// go-mysql's own decoding, every column.
func TestUnmeasurableUpdateIsDecodedWhole(t *testing.T) {
	cols := []testCol{{"id", gomysql.MYSQL_TYPE_LONG, nil}, {"n", gomysql.MYSQL_TYPE_LONG, nil},
		{"old", gomysql.MYSQL_TYPE_NEWDATE, nil}}
	if _, ok := columnSize(gomysql.MYSQL_TYPE_DECIMAL, 0); ok {
		t.Error("the old DECIMAL type measured")
	}
	st := testStream()
	p := testParser(t, cols[:2], []int{0}, func(e *replication.RowsEvent, data []byte) error {
		pos, err := e.DecodeHeader(data)
		if err != nil {
			return err
		}
		plan := st.describe(e.Table).plan
		if _, ok := st.trim.trim(e, data[pos:len(data)-1], plan); ok {
			t.Error("row data cut inside a value was trimmed")
		}
		if _, ok := st.trim.trim(e, data[pos:], plan); !ok {
			t.Error("a measurable update was not trimmed")
		}
		return st.trim.decode(e, pos, data, plan)
	})
	if _, err := p.Parse(updateEvent(2, [][]byte{le32(1), le32(1)}, [][]byte{le32(1), le32(1)})); err != nil {
		t.Fatal(err)
	}
	old := &replication.TableMapEvent{TableID: 1, ColumnCount: 1, Schema: []byte("d"), Table: []byte("t"),
		ColumnType: []byte{gomysql.MYSQL_TYPE_DECIMAL}, ColumnMeta: []uint16{0}, ColumnName: [][]byte{[]byte("d")}}
	if got := st.describe(old).plan; got == nil || got.ok {
		t.Errorf("a table with an old DECIMAL column has the trim plan %+v, want one not ok", got)
	}
}

// TestCompressedUpdateIsDecodedWhole prevents measuring MariaDB's compressed rows events
// (log_bin_compress: UPDATE_ROWS_COMPRESSED_EVENT_V1), whose row data reaches the decode
// function still zlib-compressed (DecodeData inflates it): they are decoded whole. The flag is
// go-mysql's unexported RowsEvent.compressed; a go-mysql without it turns trimming off.
func TestCompressedUpdateIsDecodedWhole(t *testing.T) {
	if !compressedField.found {
		t.Fatal("go-mysql's RowsEvent has no bool field compressed: no update is trimmed")
	}
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	plain := updateEvent(len(itemsCols), itemImage(1, 5, "a", t0), itemImage(1, 6, "a", t0))
	head := replication.EventHeaderSize + 9 + 2*((len(itemsCols)+7)/8) // table id, flags, count, bitmaps
	rows := plain[head:]
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(rows)
	zw.Close()
	body := append(append([]byte{}, plain[replication.EventHeaderSize:head]...), 0x84)
	body = append(binary.BigEndian.AppendUint32(body, uint32(len(rows))), z.Bytes()...)
	ev := binlogEvent(replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1, body)
	trimmed, full := decodeBoth(t, itemsCols, []int{0}, nil, ev)
	checkKept(t, trimmed, full, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	if full.Rows[1][3] != int32(6) {
		t.Fatalf("the hand-built compressed event decodes as %v", full.Rows)
	}
}

// BenchmarkDecodeUpdateRows parses one update of the e2e bench's items table (qty, note and
// updated_at changed) with every column decoded, as go-mysql does, and trimmed to the key and
// the changed columns.
func BenchmarkDecodeUpdateRows(b *testing.B) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC)
	ev := updateEvent(len(itemsCols), itemImage(42, 5, "before", t0), itemImage(42, 6, "after", t0.Add(time.Millisecond)))
	st := testStream()
	for _, c := range []struct {
		name   string
		decode func(*replication.RowsEvent, []byte) error
	}{
		{"full", func(e *replication.RowsEvent, data []byte) error {
			pos, err := e.DecodeHeader(data)
			if err != nil {
				return err
			}
			return e.DecodeData(pos, data)
		}},
		{"trim", st.decodeRows},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := testParser(b, itemsCols, []int{0}, c.decode)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Parse(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
