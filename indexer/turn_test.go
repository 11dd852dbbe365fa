package indexer

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// turnWriter is a fakeWriter that fixes its indices as es.Writer does and records, per write,
// whether the batch's turn had passed once they were fixed.
type turnWriter struct {
	fakeWriter
	turn   *Turn
	passed []bool
}

func (w *turnWriter) Write(ctx context.Context, docs []Doc, cluster string) (string, []Result, error) {
	IndicesFixed(ctx)
	select {
	case <-w.turn.done:
		w.passed = append(w.passed, true)
	default:
		w.passed = append(w.passed, false)
	}
	return w.fakeWriter.Write(ctx, docs, cluster)
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestABatchWritesNothingBeforeTheBatchBeforeItFixedItsIndices prevents two batches in
// flight from resolving their indices out of order, which during a version bump could leave
// the new index an older version of a document than the alias's index: the second batch
// reads, but its first write waits for the first batch's turn.
func TestABatchWritesNothingBeforeTheBatchBeforeItFixedItsIndices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db, rename := sharedTag(50, "p")
		prev := NewTurn()
		turn := prev.Next()
		w := &turnWriter{turn: turn}
		p := NewPipeline(catalogModel(t), db, w, Options{})
		done := make(chan error, 1)
		go func() {
			_, err := p.ProcessInTurn(t.Context(), msgs(rename), turn)
			done <- err
		}()
		synctest.Wait()
		if len(w.batches) != 0 || len(db.queries) == 0 {
			t.Fatalf("before the previous batch passed its turn: %d writes, %d queries; want no write, the reads done",
				len(w.batches), len(db.queries))
		}
		prev.pass()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(w.batches) == 0 || !closed(turn.done) {
			t.Errorf("after the turn: %d writes, turn passed %v; want the batch written and its turn passed", len(w.batches), closed(turn.done))
		}
	})
}

// TestOnlyABatchsLastWritePassesItsTurn prevents the next batch from writing while this one
// still has chunks to write: their indices would be resolved after the next batch's.
func TestOnlyABatchsLastWritePassesItsTurn(t *testing.T) {
	db, rename := sharedTag(1000, "p")
	turn := NewTurn()
	w := &turnWriter{turn: turn}
	p := NewPipeline(catalogModel(t), db, w, Options{ChunkDocs: 300})
	if _, err := p.ProcessInTurn(context.Background(), msgs(rename), turn); err != nil {
		t.Fatal(err)
	}
	if len(w.passed) < 4 {
		t.Fatalf("%d writes; want the rename in several chunks", len(w.passed))
	}
	for i, passed := range w.passed {
		if last := i == len(w.passed)-1; passed != last {
			t.Errorf("write %d of %d: turn passed %v once its indices were fixed, want %v", i+1, len(w.passed), passed, last)
		}
	}
}

// TestABatchThatFailsKeepsItsTurn prevents the next batch from writing before a batch that
// could not be decided (it will be tried again and write later): the turn passes only when
// the batch is decided.
func TestABatchThatFailsKeepsItsTurn(t *testing.T) {
	db, rename := sharedTag(3, "p")
	db.fail = errors.New("source down")
	turn := NewTurn()
	p := NewPipeline(catalogModel(t), db, &fakeWriter{}, Options{})
	if _, err := p.ProcessInTurn(context.Background(), msgs(rename), turn); err == nil {
		t.Fatal("Process with the source down: no error")
	}
	if closed(turn.done) {
		t.Fatal("a batch that failed passed its turn")
	}
	db.fail = nil
	if _, err := p.ProcessInTurn(context.Background(), msgs(rename), turn); err != nil {
		t.Fatal(err)
	}
	if !closed(turn.done) {
		t.Error("the batch was decided on its second try and kept its turn")
	}
}

// orderedCluster records the first document of each write once its indices are fixed, after
// a pause that varies from write to write (the resolution of a cache that expired).
type orderedCluster struct {
	mu    sync.Mutex
	fixed []string
	n     int
}

func (c *orderedCluster) Name() string { return "es8" }

func (c *orderedCluster) Write(ctx context.Context, docs []Doc) []Result {
	c.mu.Lock()
	c.n++
	pause := time.Duration(c.n%3) * time.Millisecond
	c.mu.Unlock()
	time.Sleep(pause)
	c.mu.Lock()
	c.fixed = append(c.fixed, docs[0].ID)
	c.mu.Unlock()
	IndicesFixed(ctx)
	return sameResults(len(docs), Result{Class: OK})
}

// TestASlaveResolvesItsIndicesInQueueOrder prevents a slave's concurrent writes from
// resolving their indices out of order (which, during a version bump, could leave the new
// index an older version than the alias's index): with two workers, the writes fix their
// indices in the order the batches were queued.
func TestASlaveResolvesItsIndicesInQueueOrder(t *testing.T) {
	slave := &orderedCluster{}
	s := NewStream(StreamOptions{Clusters: []ClusterWriter{&fakeCluster{name: "es7", class: OK}, slave},
		Roles: staticRoles("es7"), SlaveInFlight: 2, BulkBytes: 1}) // BulkBytes 1: no two batches merge
	s.Start(context.Background())
	var want []string
	for i := range 60 {
		id := strconv.Itoa(i)
		want = append(want, id)
		if _, _, err := s.Write(context.Background(), []Doc{{Entity: "p", ID: id, Version: 1, Source: []byte("{}")}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	s.Stop(context.Background())
	if !slices.Equal(slave.fixed, want) {
		t.Errorf("the slave fixed its indices in the order %v, want the queue's %v", slave.fixed, want)
	}
}
