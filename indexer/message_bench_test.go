package indexer

import (
	"fmt"
	"testing"
)

// BenchmarkDecodeBatch measures the decoding of one cdc message of 2048 program updates
// (schema 2), the indexer's per-change cost before any SQL: go test -bench DecodeBatch ./indexer
func BenchmarkDecodeBatch(b *testing.B) {
	m := catalogModel(b)
	var changes [][]byte
	for i := range 2048 {
		before := r("id", 100+i, "title", fmt.Sprintf("Title é %d", i), "channel_id", 10)
		after := r("id", 100+i, "title", fmt.Sprintf("Title é %d!", i), "channel_id", 11)
		changes = append(changes, change("cat.programs", "update", int64(1000+i), before, after))
	}
	benchDecode(b, m, batch(changes...), 2048)
}

// benchDecode decodes body, a message of n changes, once per iteration.
func benchDecode(b *testing.B, m *Model, body []byte, n int) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d, err := m.decode(body)
		if err != nil || len(d.changes) != n {
			b.Fatalf("decoded %d changes: %v", len(d.changes), err)
		}
	}
}
