package indexer

import (
	"context"
	"fmt"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// flatBench is the flat entity of the end-to-end benchmark (e2e/e2e_bench_test.go): one table
// of 10 columns, every column read, updated a row at a time (qty, note, updated_at).
type flatBench struct {
	model *Model
	db    *indexedDB
	msg   Message
}

// flatColumns are the flat table's columns, shared by its rows as by the rows of one SQL read.
var flatColumns = NewColumns("id", "title", "code", "qty", "price", "active", "mark", "note", "created_at", "updated_at")

// flatRow is row id of the flat table, at revision rev.
func flatRow(id, rev int) Row {
	return NewRow(flatColumns, []Value{
		Value(fmt.Sprint(id)), Value(fmt.Sprintf(`"item number %d of the flat bench"`, id)),
		Value(fmt.Sprintf(`"C%06d"`, id)), Value(fmt.Sprint(id%1000 + rev)), Value(fmt.Sprintf(`"%d.%02d"`, id%5000, id%100)),
		Value(fmt.Sprint(id % 2)), "0", Value(fmt.Sprintf(`"changed %d"`, 7919*id+rev)),
		`"2026-01-02 03:04:05"`, Value(fmt.Sprintf(`"2026-01-02 03:04:%02d.%06d"`, rev%60, id)),
	})
}

func newFlatBench(b *testing.B, n int, compress bool) *flatBench {
	m, err := NewModel([]EntityDef{{Name: "item", Index: "items", VersionField: "wye_version", Table: "bench.items", Key: "id"}})
	if err != nil {
		b.Fatal(err)
	}
	db := &indexedDB{tables: map[string]map[Value]Row{"bench.items": {}}}
	var changes [][]byte
	for i := range n {
		id := 1 + i*7
		before, after := flatRow(id, 0), flatRow(id, 1)
		db.tables["bench.items"][after.Get("id")] = after // the read shows the change
		changes = append(changes, change("bench.items", "update", int64(1000+i), before, after))
	}
	msg := Message{Body: batch(changes...)}
	if compress {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			b.Fatal(err)
		}
		msg = Message{Body: enc.EncodeAll(msg.Body, nil), Encoding: "zstd"}
	}
	return &flatBench{model: m, db: db, msg: msg}
}

// BenchmarkProcessBatchOf500FlatUpdates is the indexer's in-process path for one cdc message
// of 500 single-row updates of the flat entity, zstd as cdc sends it: decode, resolve, read
// (an in-memory view), denormalize and hand the documents to the writer (a fake that answers
// OK). go test -run - -bench ProcessBatch -benchmem ./indexer
func BenchmarkProcessBatchOf500FlatUpdates(b *testing.B) {
	for _, compress := range []bool{true, false} {
		name := "zstd"
		if !compress {
			name = "plain"
		}
		b.Run(name, func(b *testing.B) {
			fb := newFlatBench(b, 500, compress)
			w := &okWriter{}
			p := NewPipeline(fb.model, fb.db, w, Options{})
			msgs := []Message{fb.msg}
			b.ReportAllocs()
			for b.Loop() {
				out, err := p.Process(b.Context(), msgs)
				if err != nil || out.Docs != 500 || len(out.Retries)+len(out.Parked) != 0 {
					b.Fatalf("docs %d, retries %d, parked %d: %v", out.Docs, len(out.Retries), len(out.Parked), err)
				}
			}
		})
	}
}

// indexedDB is an in-memory source whose tables are indexed by their key column: the reads
// of a benchmark cost a map lookup per value, as an index lookup would. Rows returns the
// stored rows themselves (a read's own allocations are the SQL adapter's, measured there).
type indexedDB struct {
	tables map[string]map[Value]Row
}

var _ Source = (*indexedDB)(nil)

func (f *indexedDB) View(context.Context) (View, error) { return f, nil }
func (f *indexedDB) Close() error                       { return nil }

func (f *indexedDB) Rows(_ context.Context, table string, cols []string, where string, values []Value, filter Filter) ([]Row, error) {
	if cols != nil || where != "id" || filter.Where != "" {
		return nil, fmt.Errorf("indexedDB: only whole rows by id")
	}
	out := make([]Row, 0, len(values))
	for _, v := range values {
		if r, ok := f.tables[table][v]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *indexedDB) Each(ctx context.Context, table string, cols []string, where string, values []Value, filter Filter, fn func(Row)) error {
	return each(fn)(f.Rows(ctx, table, cols, where, values, filter))
}

func (f *indexedDB) Scan(context.Context, string, []string, string, Value, int) ([]Row, error) {
	return nil, fmt.Errorf("indexedDB: no scan")
}

// okWriter answers every document OK, and keeps the bytes of the last batch's sources.
type okWriter struct{ bytes int }

func (w *okWriter) Write(_ context.Context, docs []Doc, cluster string) (string, []Result, error) {
	w.bytes = 0
	for _, d := range docs {
		w.bytes += len(d.Source)
	}
	return "es7", make([]Result, len(docs)), nil
}
