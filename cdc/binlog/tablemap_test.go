package binlog

import (
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/wyehq/wye/cdc"
)

// insertEvent builds a WRITE_ROWS_EVENTv1 of table 7 with n columns, one row per image.
func insertEvent(n int, images ...[][]byte) []byte {
	ev := updateEvent(n, images...)
	body := ev[replication.EventHeaderSize:]
	bitmap := (n + 7) / 8
	// An update carries two column bitmaps, an insert one: drop the second.
	body = append(body[:9+bitmap:9+bitmap], body[9+2*bitmap:]...)
	return binlogEvent(replication.WRITE_ROWS_EVENTv1, body)
}

// renamed returns the table map event tm of table d.t as one of table d.<name> (one letter).
func renamed(tm []byte, name byte) []byte {
	out := append([]byte(nil), tm...)
	out[replication.EventHeaderSize+12] = name
	return out
}

// syncerParser is a go-mysql parser set up as Open sets up the syncer's for st (without
// lazy: table maps decoded in full by go-mysql, as before keepOptionalMeta).
func syncerParser(st *stream, lazy bool) *replication.BinlogParser {
	p := replication.NewBinlogParser()
	p.SetParseTime(true)
	p.SetTimestampStringLocation(time.UTC)
	p.SetFlavor(gomysql.MariaDBFlavor)
	p.SetRowsEventDecodeFunc(st.decodeRows)
	if lazy {
		p.SetTableMapOptionalMetaDecodeFunc(st.keepOptionalMeta)
	}
	return p
}

// exportedFields are the exported fields of a table map event, which go-mysql's users read.
func exportedFields(tme *replication.TableMapEvent) map[string]any {
	v := reflect.ValueOf(tme).Elem()
	out := map[string]any{}
	for i := range v.NumField() {
		if f := v.Type().Field(i); f.IsExported() {
			out[f.Name] = v.Field(i).Interface()
		}
	}
	return out
}

// TestTableMapsLeftUndecodedByGoMySQLYieldTheSameChanges prevents a change described with a
// stale table map when go-mysql leaves the optional metadata of table maps to the stream
// (keepOptionalMeta): through repeated maps, an ALTER TABLE (columns reordered and renamed
// under the same table id), a table id reused by another table, an unfollowed table, maps
// without column names and a new format description, the stream yields exactly the items of a
// stream whose table maps go-mysql decodes in full, every followed table map ends with the
// fields go-mysql decodes, and a repeated map keeps its table's description.
func TestTableMapsLeftUndecodedByGoMySQLYieldTheSameChanges(t *testing.T) {
	v1 := []testCol{{"id", gomysql.MYSQL_TYPE_LONG, nil}, {"a", gomysql.MYSQL_TYPE_LONG, nil},
		{"note", gomysql.MYSQL_TYPE_VARCHAR, []byte{64, 0}}}
	v2 := []testCol{v1[0], v1[2], {"b", gomysql.MYSQL_TYPE_LONG, nil}} // ALTER: a renamed b, moved last
	fde, tm1 := testMapEvents(v1, []int{0}, []int{1})
	_, tm2 := testMapEvents(v2, []int{0}, []int{2})
	_, tmPK := testMapEvents(v1, []int{0, 1}, []int{1})                      // the same columns, another primary key
	wide := []testCol{v1[0], {"a", gomysql.MYSQL_TYPE_LONGLONG, nil}, v1[2]} // ALTER: a INT to BIGINT
	_, tmWide := testMapEvents(wide, []int{0}, []int{1})
	other := renamed(tm1, 'u')  // d.u: not followed
	reused := renamed(tm1, 'v') // d.v: followed, d.t's columns and table id
	// tm1 without its optional metadata: 15 bytes to the column count, 3 types, the metadata
	// (its length and 2 bytes), the null bitmap.
	bare := binlogEvent(replication.TABLE_MAP_EVENT, tm1[replication.EventHeaderSize:replication.EventHeaderSize+22])
	img1 := func(id, a int32, note string) [][]byte { return [][]byte{le32(id), le32(a), str(note, 1)} }
	img2 := func(id int32, note string, b int32) [][]byte { return [][]byte{le32(id), str(note, 1), le32(b)} }
	events := [][]byte{
		fde,
		tm1, insertEvent(3, img1(1, -1, "x")), updateEvent(3, img1(1, -1, "x"), img1(1, -2, "x")),
		other, tm1, updateEvent(3, img1(2, 5, "y"), img1(2, 5, "z")),
		tm1, insertEvent(3, img1(3, -7, "w")),
		reused, insertEvent(3, img1(6, 2, "t")),
		tm1, insertEvent(3, img1(7, 3, "s")),
		tm2, updateEvent(3, img2(1, "x", -2), img2(1, "x", -3)),
		tm2, insertEvent(3, img2(4, "v", -9)),
		tmPK, insertEvent(3, img1(5, 1, "u")),
		bare, insertEvent(3, img1(8, 4, "r")),
		tm1, insertEvent(3, img1(9, 5, "q")),
		fde, tm1, updateEvent(3, img1(9, 5, "q"), img1(9, 6, "q")),
		tmWide, insertEvent(3, [][]byte{le32(10), le64(1 << 40), str("p", 1)}),
	}
	read := func(lazy bool) (items []cdc.Item, maps []*replication.TableMapEvent, tables []*cdc.Table) {
		t.Helper()
		src := &Source{opts: SourceOptions{Flavor: gomysql.MariaDBFlavor, Logger: slog.New(slog.DiscardHandler), UpdateImages: cdc.UpdateImagesChanged},
			followed: map[string]map[string]bool{"d": {"t": true, "v": true}}}
		st := src.newStream()
		p := syncerParser(st, lazy)
		for i, raw := range events {
			ev, err := p.Parse(raw)
			if err != nil {
				t.Fatalf("event %d: parse: %v", i, err)
			}
			item, ok, err := st.item(ev)
			if err != nil {
				t.Fatalf("event %d: item: %v", i, err)
			}
			if tme, isMap := ev.Event.(*replication.TableMapEvent); isMap && tme.Table[0] != 'u' {
				maps = append(maps, tme)
			}
			if ok {
				for c := range item.Changes {
					item.Changes[c].CommitTS = time.Time{} // the time read: no transaction time here
				}
				items = append(items, item)
				if len(item.Changes) > 0 {
					tables = append(tables, item.Changes[0].Table)
				}
			}
		}
		return items, maps, tables
	}
	full, fullMaps, _ := read(false)
	lazy, lazyMaps, tables := read(true)
	if len(full) != 13 {
		t.Fatalf("bad test: %d items from go-mysql's decoding, want 13", len(full))
	}
	if !reflect.DeepEqual(lazy, full) {
		t.Errorf("items differ:\n got %+v\nwant %+v", lazy, full)
	}
	for i := range fullMaps {
		if got, want := exportedFields(lazyMaps[i]), exportedFields(fullMaps[i]); !reflect.DeepEqual(got, want) {
			t.Errorf("table map %d: fields %v, want go-mysql's %v", i, got, want)
		}
	}
	if tables[0] != tables[1] || tables[0] != tables[2] || tables[0] != tables[3] || tables[9] != tables[10] {
		t.Error("a repeated table map alike got a new description")
	}
	if tables[4].Name != "v" || tables[5].Name != "t" || tables[5] == tables[0] {
		t.Errorf("a table id reused by another table: described as %s, then %s", tables[4].Name, tables[5].Name)
	}
	if tables[6] == tables[5] || tables[6] != tables[7] || tables[6].Columns[2].Name != "b" {
		t.Errorf("after the ALTER the changes describe the table as %+v", tables[6])
	}
	if tables[11] == tables[10] || lazy[12].Changes[0].After[1] != uint64(1<<40) {
		t.Errorf("after a column's type changed: item %+v", lazy[12])
	}
	if !slices.Equal(tables[8].PK, []int{0, 1}) {
		t.Errorf("a new primary key: changes describe it as %v", tables[8].PK)
	}
	if lazy[9].Resync == nil || lazy[9].Resync.Reason != "no_metadata" {
		t.Errorf("a table map without column names: item %+v, want a no_metadata resync", lazy[9])
	}
}

// TestUnfollowedTableMapsAreNotDecoded prevents decoding the optional metadata of a table no
// reader follows: its table maps keep it undecoded, and its rows are skipped as before.
func TestUnfollowedTableMapsAreNotDecoded(t *testing.T) {
	cols := []testCol{{"id", gomysql.MYSQL_TYPE_LONG, nil}}
	fde, tm := testMapEvents(cols, []int{0}, nil)
	src := &Source{opts: SourceOptions{Flavor: gomysql.MariaDBFlavor, Logger: slog.New(slog.DiscardHandler)},
		followed: map[string]map[string]bool{"d": {"other": true}}}
	st := src.newStream()
	p := syncerParser(st, true)
	for _, raw := range [][]byte{fde, tm, insertEvent(1, [][]byte{le32(1)})} {
		ev, err := p.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		item, ok, err := st.item(ev)
		if err != nil || ok {
			t.Fatalf("item %+v %v %v, want none", item, ok, err)
		}
		if tme, isMap := ev.Event.(*replication.TableMapEvent); isMap && tme.ColumnName != nil {
			t.Errorf("column names of an unfollowed table decoded: %q", tme.ColumnName)
		}
	}
	if len(st.tables) != 0 {
		t.Errorf("unfollowed table described: %v", st.tables)
	}
}

// BenchmarkTableMapThenUpdate parses what every transaction of the e2e bench's items table
// carries, its table map and an update, through the stream (item for each event, as
// HandleEvent): with go-mysql decoding every table map in full (the stream before
// keepOptionalMeta), and with the optional metadata left to the stream.
func BenchmarkTableMapThenUpdate(b *testing.B) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC)
	fde, tm := testMapEvents(itemsCols, []int{0}, []int{3})
	upd := updateEvent(len(itemsCols), itemImage(42, 5, "before", t0), itemImage(42, 6, "after", t0.Add(time.Millisecond)))
	for _, lazy := range []bool{false, true} {
		name := "go-mysql"
		if lazy {
			name = "lazy"
		}
		b.Run(name, func(b *testing.B) {
			st := testStream()
			p := syncerParser(st, lazy)
			for _, raw := range [][]byte{fde, tm, upd} {
				ev, err := p.Parse(raw)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := st.item(ev); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				for _, raw := range [][]byte{tm, upd} {
					ev, err := p.Parse(raw)
					if err != nil {
						b.Fatal(err)
					}
					if _, _, err := st.item(ev); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
