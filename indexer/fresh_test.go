package indexer

import (
	"context"
	"strings"
	"testing"
)

// TestSnapshotBehindTheEventIsRetriedThenWrittenFresh prevents a document built from a read
// older than its change (semi-sync AFTER_SYNC, XA PREPARE) from being written with the
// change's version, which would keep the old row for good: the entity goes to a retry for
// every cluster, and the retry's read, once the row shows the change, is written.
func TestSnapshotBehindTheEventIsRetriedThenWrittenFresh(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	p := NewPipeline(catalogModel(t), db, w, Options{})
	old := r("id", 100, "title", "News", "channel_id", 10)
	out, err := p.Process(context.Background(), msgs(event("cat.programs", "update", 9, old, r("id", 100, "title", "News!", "channel_id", 10))))
	if err != nil {
		t.Fatal(err)
	}
	if len(w.written()) != 0 {
		t.Fatalf("wrote %v from a read that does not show the change", w.written())
	}
	if len(out.Retries) != 1 || out.Behind != 1 || out.Retries[0].Cluster != "" || out.Retries[0].Attempt != 2 ||
		out.Retries[0].Reason != ReadBehindReason {
		t.Fatalf("retries %+v behind %d; want one retry for every cluster, attempt 2", out.Retries, out.Behind)
	}

	db.set("cat.programs", "id", r("id", 100, "title", "News!", "channel_id", 10)) // the commit becomes visible
	retry := out.Retries[0]
	if _, err := p.Process(context.Background(), []Message{{Body: retry.Body, Attempt: retry.Attempt, Cluster: retry.Cluster, FirstSeen: retry.FirstSeen}}); err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "written by the retry", w.written(), "100@9")
	if w.targets[0] != "" || !strings.Contains(w.source("100"), `"title":"News!"`) {
		t.Errorf("retry written to %q: %s; want every cluster, the fresh row", w.targets[0], w.source("100"))
	}
}

// TestInsertOrDeleteNotVisibleYetIsRetriedNotWritten prevents the two other faces of a read
// behind its change: an insert whose row is not visible yet must not become a versioned
// delete, and a delete whose row is still visible must not write the old document.
func TestInsertOrDeleteNotVisibleYetIsRetriedNotWritten(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	out := process(t, db, w,
		event("cat.programs", "insert", 5, Row{}, r("id", 500, "title", "New", "channel_id", 10)),
		event("cat.programs", "delete", 6, r("id", 101, "title", "Sport", "channel_id", 11), Row{}))
	if len(w.written()) != 0 || len(out.Retries) != 2 || out.Behind != 2 {
		t.Fatalf("wrote %v, retries %d (behind %d); want nothing written and both retried", w.written(), len(out.Retries), out.Behind)
	}
}

// TestReadNewerThanTheChangeIsWritten prevents the check from holding back a row that moved
// on: a read holding neither image of the update (a later change) is written at once.
func TestReadNewerThanTheChangeIsWritten(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	db.set("cat.programs", "id", r("id", 100, "title", "Later", "channel_id", 10))
	out := process(t, db, w, event("cat.programs", "update", 9, r("id", 100, "title", "News", "channel_id", 10),
		r("id", 100, "title", "News!", "channel_id", 10)))
	sameStrings(t, "written", w.written(), "100@9")
	if len(out.Retries) != 0 {
		t.Errorf("retried %+v a read newer than its change", out.Retries)
	}
}

// TestRetryForEveryClusterIsNotDroppedByAChangeInTheSameBatch prevents a retry without a
// target (a read that was behind, a replayed parked retry) from being lost when the batch also
// carries changes: both are written.
func TestRetryForEveryClusterIsNotDroppedByAChangeInTheSameBatch(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	db.set("cat.programs", "id", r("id", 101, "title", "Sport!", "channel_id", 11))
	p := NewPipeline(catalogModel(t), db, w, Options{})
	retry := Message{Body: EncodeRetry(Retry{Entity: "program", Key: "100", Version: 8}), Attempt: 2}
	change := Message{Body: event("cat.programs", "update", 9, r("id", 101, "title", "Sport", "channel_id", 11),
		r("id", 101, "title", "Sport!", "channel_id", 11))}
	if _, err := p.Process(context.Background(), []Message{retry, change}); err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "written", w.written(), "100@8", "101@9")
}
