package cdc

import (
	"context"
	"testing"
	"time"
)

// BenchmarkBatcherAdd hands the batcher 2048 single-column inserts, four per rows event (one
// position) and transaction, of one table, as a live stream of small transactions does, and
// publishes them in one message: the per-change work of the batcher (version, encoding, event
// counts, transaction boundaries).
func BenchmarkBatcherAdd(b *testing.B) {
	t := &Table{Schema: "d", Name: "t", PK: []int{0}, Columns: []Column{{Name: "id", Kind: KindInt}}}
	changes := make([]Change, 2048)
	for i := range changes {
		pos := Position{File: "mariadb-bin.000005", Pos: uint32(1000 + i/4*300)}
		changes[i] = Change{Table: t, Op: OpInsert, After: []any{int64(i)}, CommitTS: time.Unix(1795000000, 0), Pos: pos}
	}
	ch := newFakeChannel()
	r := NewReader(Options{Name: "bench", BatchChanges: len(changes) + 1}, &fakeSource{}, &fakeStore{}, &fakeLeader{}, ch)
	cp := Checkpoint{Name: "bench", Epoch: 1}
	bt := newBatcher(r, ch, &tracker{saved: cp, last: cp}, cp)
	ctx := context.Background()
	for b.Loop() {
		for i := 0; i < len(changes); i += 4 {
			item := Item{Changes: append([]Change(nil), changes[i:i+4]...), Pos: changes[i].Pos}
			if err := bt.handle(ctx, item); err != nil {
				b.Fatal(err)
			}
			if err := bt.handle(ctx, Item{Commit: true, Pos: Position{File: changes[i].Pos.File, Pos: changes[i].Pos.Pos + 100}}); err != nil {
				b.Fatal(err)
			}
		}
		if err := bt.flush(ctx); err != nil {
			b.Fatal(err)
		}
		ch.mu.Lock()
		ch.msgs = ch.msgs[:0]
		ch.mu.Unlock()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(changes)), "ns/change")
}
