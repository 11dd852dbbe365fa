package indexer

import (
	"context"
	"strings"
	"testing"
)

// sharedTag is a catalog where n programs carry tag 7, and the rename of that tag.
func sharedTag(n int, title string) (*fakeDB, []byte) {
	db := catalogDB()
	for i := range n {
		id := 1000 + i
		db.set("cat.programs", "id", r("id", id, "title", title, "channel_id", 10))
		db.tables["cat.program_tags"] = append(db.tables["cat.program_tags"], r("program_id", id, "tag_id", 7))
	}
	db.set("cat.tags", "id", r("id", 7, "name", "LIVE"))
	return db, event("cat.tags", "update", 50, r("id", 7, "name", "live"), r("id", 7, "name", "LIVE"))
}

// TestRenameOfASharedRowIsWrittenInBoundedChunks prevents a rename touching many documents
// from being read and sent as one batch (memory growing with the fan-out, one huge _bulk):
// it is read and written ChunkDocs documents at a time, every document once.
func TestRenameOfASharedRowIsWrittenInBoundedChunks(t *testing.T) {
	db, rename := sharedTag(2500, "p")
	w := &fakeWriter{}
	p := NewPipeline(catalogModel(t), db, w, Options{ChunkDocs: 300})
	out, err := p.Process(context.Background(), msgs(rename))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i, b := range w.batches {
		if len(b) > 300 {
			t.Errorf("write %d holds %d documents, want at most ChunkDocs=300", i, len(b))
		}
		for _, d := range b {
			seen[d.ID]++
			if !strings.Contains(string(d.Source), `"LIVE"`) {
				t.Fatalf("document %s without the new name: %s", d.ID, d.Source)
			}
		}
	}
	if len(seen) != 2502 || out.Docs != 2502 { // 2500 + programs 100 and 101 of the sample
		t.Errorf("wrote %d documents (%d counted), want 2502", len(seen), out.Docs)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("document %s written %d times, want once", id, n)
		}
	}
	if len(w.batches) < 2502/300 {
		t.Errorf("%d writes: the rename was not chunked", len(w.batches))
	}
}

// TestChunksShrinkToKeepBigDocumentsUnderChunkBytes prevents big documents from multiplying
// past the byte bound: after a probe, a chunk holds what fits in ChunkBytes.
func TestChunksShrinkToKeepBigDocumentsUnderChunkBytes(t *testing.T) {
	db, rename := sharedTag(400, strings.Repeat("x", 10_000))
	w := &fakeWriter{}
	p := NewPipeline(catalogModel(t), db, w, Options{ChunkDocs: 1000, ChunkBytes: 100_000})
	if _, err := p.Process(context.Background(), msgs(rename)); err != nil {
		t.Fatal(err)
	}
	for i, b := range w.batches[1:] { // the first is the probe
		size := 0
		for _, d := range b {
			size += d.BulkSize()
		}
		if size > 100_000 {
			t.Errorf("chunk %d holds %d bytes in %d documents, want at most ChunkBytes=100000", i+1, size, len(b))
		}
	}
	if n := len(w.written()); n != 402 {
		t.Errorf("wrote %d documents, want 402", n)
	}
}

// TestWritesStayUnderBulkBytes prevents one _bulk request from outgrowing what the clusters
// accept: a chunk is sent in writes of at most BulkBytes (a bigger document goes alone).
func TestWritesStayUnderBulkBytes(t *testing.T) {
	db, rename := sharedTag(200, strings.Repeat("y", 1_000))
	w := &fakeWriter{}
	p := NewPipeline(catalogModel(t), db, w, Options{BulkBytes: 20_000})
	if _, err := p.Process(context.Background(), msgs(rename)); err != nil {
		t.Fatal(err)
	}
	for i, b := range w.batches {
		size := 0
		for _, d := range b {
			size += d.BulkSize()
		}
		if size > 20_000 && len(b) > 1 {
			t.Errorf("write %d is %d bytes in %d documents, want at most BulkBytes=20000", i, size, len(b))
		}
	}
	if n := len(w.written()); n != 202 {
		t.Errorf("wrote %d documents, want 202", n)
	}
}
