package cdc

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkBatchOf2048Updates measures encoding and compressing one full message of updates
// shaped like the e2e benchmark's table (ids, a foreign key, utf8mb4 text, DECIMAL,
// DATETIME(6)), and reports the bytes per change before and after zstd:
// go test -run - -bench BatchOf2048 ./cdc
func BenchmarkBatchOf2048Updates(b *testing.B) {
	t := &Table{Schema: "wye_cdc_bench", Name: "bench", PK: []int{0}, Columns: []Column{{Name: "id", Kind: KindInt},
		{Name: "ver", Kind: KindInt}, {Name: "parent_id", Kind: KindInt}, {Name: "note", Kind: KindText},
		{Name: "amount", Kind: KindDecimal}, {Name: "at", Kind: KindDateTime}}}
	changes := make([]Change, 2048)
	for i := range changes {
		pos := Position{File: "mariadb-bin.000005", Pos: uint32(1000 + i*300)}
		v, _ := VersionAt(1, pos.File, pos.Pos)
		row := func(ver, parent int) []any {
			return []any{int64(i), int64(ver), int64(parent), fmt.Sprintf("note é %d", i), fmt.Sprintf("%d.25", i),
				fmt.Sprintf("2026-11-23 03:00:%02d.%06d", i%60, i*37%1000000)}
		}
		changes[i] = Change{Table: t, Op: OpUpdate, Before: row(1, i%500), After: row(2, i%500+1), Version: v,
			CommitTS: time.Unix(1795000000+int64(i/100), 0), Pos: pos, GTID: fmt.Sprintf("0-1-%d", 1000+i/10), Epoch: 1}
	}
	for _, compress := range []bool{false, true} {
		b.Run(fmt.Sprintf("zstd=%v", compress), func(b *testing.B) { benchBatch(b, Batch{Compress: compress}, changes) })
	}
}

// benchBatch encodes changes into one message of bt per iteration and reports the message's
// bytes and the time per change.
func benchBatch(b *testing.B, bt Batch, changes []Change) {
	var size int
	for b.Loop() {
		for i := range changes {
			if err := bt.Add(&changes[i]); err != nil {
				b.Fatal(err)
			}
		}
		size = len(bt.Take().Body)
	}
	b.ReportMetric(float64(size)/float64(len(changes)), "B/change")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(changes)), "ns/change")
}

// BenchmarkBatchOf2048ItemUpdates measures the message of the e2e benchmark's flat workload:
// `UPDATE items SET qty = qty + 1, note = '...', updated_at = NOW(6)` on a table of 10 columns
// (id INT pk, title VARCHAR(200), code VARCHAR(16), qty INT, price DECIMAL(10,2), active
// TINYINT, mark BIGINT, note VARCHAR(255), created_at DATETIME, updated_at DATETIME(6)), each
// value as go-mysql decodes it; 3 of the 10 columns change:
// go test -run - -bench BatchOf2048 ./cdc
func BenchmarkBatchOf2048ItemUpdates(b *testing.B) {
	t := &Table{Schema: "wye_e2e_bench", Name: "items", PK: []int{0}, Columns: []Column{{Name: "id", Kind: KindInt},
		{Name: "title", Kind: KindText}, {Name: "code", Kind: KindText}, {Name: "qty", Kind: KindInt},
		{Name: "price", Kind: KindDecimal}, {Name: "active", Kind: KindInt}, {Name: "mark", Kind: KindInt},
		{Name: "note", Kind: KindText}, {Name: "created_at", Kind: KindDateTime},
		{Name: "updated_at", Kind: KindDateTime, Frac: 6}}}
	created := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	changes := make([]Change, 2048)
	for i := range changes {
		pos := Position{File: "mariadb-bin.000005", Pos: uint32(1000 + i*300)}
		v, _ := VersionAt(1, pos.File, pos.Pos)
		row := func(qty int, note int64, updated time.Time) []any {
			return []any{int32(i), fmt.Sprintf("item number %d of the flat bench", i), fmt.Sprintf("C%06d", i), int32(qty),
				fmt.Sprintf("%d.%02d", i%1000, i%100), int8(i % 2), int64(0), fmt.Sprintf("changed %d", note), created, updated}
		}
		at := created.Add(time.Duration(i) * 37 * time.Microsecond)
		changes[i] = Change{Table: t, Op: OpUpdate, Before: row(i%50, int64(i)*7919, at), After: row(i%50+1, int64(i)*104729, at.Add(time.Second)),
			Version: v, CommitTS: time.Unix(1795000000+int64(i/100), 0), Pos: pos, GTID: fmt.Sprintf("0-1-%d", 1000+i/10), Epoch: 1}
	}
	for _, images := range []string{UpdateImagesFull, UpdateImagesChanged} {
		for _, compress := range []bool{false, true} {
			b.Run(fmt.Sprintf("images=%s/zstd=%v", images, compress), func(b *testing.B) {
				benchBatch(b, Batch{Compress: compress, FullImages: images == UpdateImagesFull}, changes)
			})
		}
	}
}

// BenchmarkUpdateOfA64MBRow measures the message of one update of a row holding a 64 MiB
// LONGBLOB, sent whole (as before large values were digested: two base64 images) and with the
// blob digested (docs/cdc.md, "Large values"):
// go test -run - -bench 64MBRow -benchtime 3x ./cdc
func BenchmarkUpdateOfA64MBRow(b *testing.B) {
	t := &Table{Schema: "d", Name: "big", PK: []int{0}, Columns: []Column{{Name: "id", Kind: KindInt},
		{Name: "title", Kind: KindText}, {Name: "payload", Kind: KindBinary}}}
	blob := make([]byte, 64<<20) // random: a media file compresses little
	rand.NewChaCha8([32]byte{1}).Read(blob)
	blob2 := append(blob[:len(blob)-1:len(blob)-1], 1)
	c := Change{Table: t, Op: OpUpdate, Before: []any{int64(1), "before", blob}, After: []any{int64(1), "after", blob2},
		Pos: Position{File: "mariadb-bin.000005", Pos: 1000}, CommitTS: time.Unix(1795000000, 0), Epoch: 1}
	for _, whole := range []bool{true, false} {
		b.Run(fmt.Sprintf("payload_whole=%v", whole), func(b *testing.B) {
			bt := Batch{Compress: true}
			if whole {
				bt.Whole = WholeColumns{"d.big": {"payload"}}
			}
			var json, sent int
			for b.Loop() {
				if err := bt.Add(&c); err != nil {
					b.Fatal(err)
				}
				json = bt.Size() + 2
				sent = len(bt.Take().Body)
			}
			b.ReportMetric(float64(json), "JSON-B/change")
			b.ReportMetric(float64(sent), "sent-B/change")
		})
	}
}
