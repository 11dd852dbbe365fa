package indexer

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func process(t *testing.T, db *fakeDB, w *fakeWriter, bodies ...[]byte) Outcome {
	t.Helper()
	p := NewPipeline(catalogModel(t), db, w, Options{Now: func() time.Time { return time.Unix(1700000000, 0) }})
	out, err := p.Process(context.Background(), msgs(bodies...))
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	return out
}

func TestChildMoveReindexesBothParents(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	before := r("id", 1002, "title", "e3", "program_id", 101)
	after := r("id", 1002, "title", "e3", "program_id", 100)
	db.set("cat.episodes", "id", after)
	out := process(t, db, w, event("cat.episodes", "update", 42, before, after))
	sameStrings(t, "written", w.written(), "100@42", "101@42")
	if strings.Contains(w.source("101"), "e3") || !strings.Contains(w.source("100"), `"name":"e3"`) {
		t.Errorf("episode not moved: 100=%s 101=%s", w.source("100"), w.source("101"))
	}
	if out.Queries != 6 { // programs, channels, networks, episodes, credits, program_tags (no tags: 100 has one)
		t.Logf("queries = %d", out.Queries)
	}
}

func TestTagRenameReindexesEveryProgramWithTheTag(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	db.set("cat.tags", "id", r("id", 7, "name", "LIVE"))
	process(t, db, w, event("cat.tags", "update", 50, r("id", 7, "name", "live"), r("id", 7, "name", "LIVE")))
	sameStrings(t, "written", w.written(), "100@50", "101@50")
	if !strings.Contains(w.source("101"), `"tags":[{"id":7,"name":"LIVE"},{"id":8,"name":"hd"}]`) {
		t.Errorf("tags not re-read in key order: %s", w.source("101"))
	}
}

func TestGrandchildChangeReachesTheRootThroughTwoLevels(t *testing.T) {
	t.Run("network renamed -> channels -> programs", func(t *testing.T) {
		db, w := catalogDB(), &fakeWriter{}
		db.set("cat.networks", "id", r("id", 1, "name", "ZDF"))
		process(t, db, w, event("cat.networks", "update", 60, r("id", 1, "name", "ARD"), r("id", 1, "name", "ZDF")))
		sameStrings(t, "written", w.written(), "100@60", "101@60")
		if !strings.Contains(w.source("100"), `"channel":{"id":10,"name":"One","network":{"id":1,"name":"ZDF"}}`) {
			t.Errorf("nested network not in document: %s", w.source("100"))
		}
	})
	t.Run("credit added -> episode -> program", func(t *testing.T) {
		db, w := catalogDB(), &fakeWriter{}
		c := r("id", 6, "episode_id", 1002, "person", "Bob")
		db.set("cat.credits", "id", c)
		process(t, db, w, event("cat.credits", "insert", 61, Row{}, c))
		sameStrings(t, "written", w.written(), "101@61")
		if !strings.Contains(w.source("101"), `"credits":[{"episode_id":1002,"id":6,"person":"Bob"}]`) {
			t.Errorf("nested credit not in document: %s", w.source("101"))
		}
	})
}

func TestCoalescesToTheHighestVersionPerEntity(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	p := r("id", 100, "title", "News", "channel_id", 10)
	db.set("cat.programs", "id", r("id", 100, "title", "y", "channel_id", 10))
	process(t, db, w,
		event("cat.programs", "update", 70, p, r("id", 100, "title", "x", "channel_id", 10)),
		event("cat.programs", "update", 90, p, r("id", 100, "title", "y", "channel_id", 10)),
		event("cat.program_tags", "insert", 80, Row{}, r("program_id", 100, "tag_id", 8)),
	)
	sameStrings(t, "written", w.written(), "100@90")
}

func TestDenormalizeQueriesDoNotGrowWithEntitiesOrEvents(t *testing.T) {
	count := func(n int) int {
		db, w := catalogDB(), &fakeWriter{}
		p := NewPipeline(catalogModel(t), db, w, Options{})
		// A first batch teaches the pipeline the documents' size: the first chunk of an
		// entity of unknown size is a small probe.
		if _, err := p.Process(context.Background(), msgs(event("cat.programs", "update", 1, r("id", 100), r("id", 100, "title", "x")))); err != nil {
			t.Fatal(err)
		}
		db.queries, w.batches = nil, nil
		var bodies [][]byte
		for i := range n {
			id := 200 + i
			row := r("id", id, "title", "p", "channel_id", 10+i%3)
			db.set("cat.programs", "id", row)
			db.set("cat.episodes", "id", r("id", 3000+i, "title", "e", "program_id", id))
			db.set("cat.program_tags", "program_id", r("program_id", id, "tag_id", 7))
			bodies = append(bodies, event("cat.programs", "insert", int64(100+i), Row{}, row), event("cat.programs", "update", int64(100+i), row, row))
		}
		if _, err := p.Process(context.Background(), msgs(bodies...)); err != nil {
			t.Fatal(err)
		}
		if len(w.written()) != n {
			t.Fatalf("%d programs changed, %d written", n, len(w.written()))
		}
		return len(db.queries)
	}
	one, many := count(1), count(300)
	if one != many || one > 8 {
		t.Errorf("SQL queries for 1 entity: %d, for 300: %d; want equal and at most one per table", one, many)
	}
}

func TestDeletedRootBecomesVersionedDelete(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	p := r("id", 102, "title", "Film", "channel_id", 12)
	db.del("cat.programs", "id", p.Get("id"))
	process(t, db, w, event("cat.programs", "delete", 99, p, Row{}))
	sameStrings(t, "written", w.written(), "102@99:delete")
}

func TestDocumentCarriesTheConfiguredFieldsAndVersion(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	p := r("id", 100, "title", "News", "channel_id", 10)
	process(t, db, w, event("cat.programs", "update", 7, r("id", 100, "title", "Old", "channel_id", 10), p))
	want := `{"channel":{"id":10,"name":"One","network":{"id":1,"name":"ARD"}},"channel_id":10,` +
		`"episodes":[{"credits":[{"episode_id":1000,"id":5,"person":"Ann"}],"id":1000,"name":"e1"},{"credits":[],"id":1001,"name":"e2"}],` +
		`"id":100,"tags":[{"id":7,"name":"live"}],"title":"News","wye_version":7}`
	if got := w.source("100"); got != want {
		t.Errorf("document:\n got  %s\n want %s", got, want)
	}
}

func TestUpdateOfAColumnNoDocumentShowsReindexesNothing(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	before := r("id", 100, "title", "News", "channel_id", 10, "internal_note", "a")
	after := r("id", 100, "title", "News", "channel_id", 10, "internal_note", "b")
	process(t, db, w, event("cat.programs", "update", 5, before, after))
	if len(w.batches) != 0 || len(db.queries) != 0 {
		t.Errorf("wrote %v with %d queries; want nothing", w.written(), len(db.queries))
	}
}

func TestPoisonMessagesAreParkedWithAReasonNotRetried(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	db.set("cat.programs", "id", r("id", 100, "title", "News!", "channel_id", 10)) // the change is visible
	good := r("id", 100, "title", "News", "channel_id", 10)
	out := process(t, db, w,
		[]byte(`{not json`),
		[]byte(`{"schema":3,"changes":[{"table":"cat.programs","op":"insert","after":{"id":1},"version":3}]}`),
		event("cat.unknown", "insert", 4, Row{}, r("id", 1)),
		event("cat.programs", "insert", 0, Row{}, r("id", 1)),
		event("cat.programs", "update", 9, good, r("id", 100, "title", "News!", "channel_id", 10)),
	)
	var reasons []string
	for _, p := range out.Parked {
		reasons = append(reasons, p.Reason)
		if p.ErrType != "poison" {
			t.Errorf("parked %q with type %q, want poison", p.Reason, p.ErrType)
		}
	}
	if len(reasons) != 4 || !strings.Contains(reasons[1], "unknown schema version 3") || !strings.Contains(reasons[2], `unknown table "cat.unknown"`) {
		t.Errorf("parked reasons: %q", reasons)
	}
	if len(out.Retries) != 0 {
		t.Errorf("poison retried: %v", out.Retries)
	}
	sameStrings(t, "written despite poison in the batch", w.written(), "100@9")
}

func TestMasterFailuresRetryTargetedAtTheMasterThenPark(t *testing.T) {
	db := catalogDB()
	w := &fakeWriter{answer: func(d Doc) Result {
		switch d.ID {
		case "100":
			return Result{Class: Retryable, Status: 429, ErrType: "es_rejected_execution_exception", Reason: "queue full"}
		case "101":
			return Result{Class: Permanent, Status: 400, ErrType: "strict_dynamic_mapping_exception", Reason: "mapping set to strict"}
		}
		return Result{Class: Stale, Status: 409}
	}}
	p1 := r("id", 100, "title", "News", "channel_id", 10)
	p2 := r("id", 101, "title", "Sport", "channel_id", 11)
	p3 := r("id", 102, "title", "Film", "channel_id", 12)
	out := process(t, db, w, event("cat.programs", "insert", 1, Row{}, p1), event("cat.programs", "insert", 1, Row{}, p2), event("cat.programs", "insert", 1, Row{}, p3))
	if len(out.Retries) != 1 || out.Retries[0].Cluster != "es7" || out.Retries[0].Attempt != 2 {
		t.Fatalf("retries = %+v, want one for the master, attempt 2", out.Retries)
	}
	if len(out.Parked) != 1 || out.Parked[0].Cluster != "es7" || out.Parked[0].Status != 400 ||
		!strings.Contains(out.Parked[0].Reason, "strict") {
		t.Fatalf("parked = %+v, want 101 with its mapping error", out.Parked)
	}

	// The retry message comes back: it is written to the master only, and parked when exhausted.
	retry := out.Retries[0]
	p := NewPipeline(catalogModel(t), db, w, Options{MaxAttempts: 2})
	out, err := p.Process(context.Background(), []Message{{Body: retry.Body, Attempt: retry.Attempt, Cluster: retry.Cluster, FirstSeen: retry.FirstSeen}})
	if err != nil {
		t.Fatal(err)
	}
	if last := w.targets[len(w.targets)-1]; last != "es7" {
		t.Errorf("retry written to %q, want only the master es7", last)
	}
	if len(out.Retries) != 0 || len(out.Parked) != 1 || out.Parked[0].Attempt != 2 ||
		!strings.Contains(out.Parked[0].Reason, "gave up after 2 attempts") || !out.Parked[0].FirstSeen.Equal(retry.FirstSeen) {
		t.Errorf("exhausted retry: retries %+v parked %+v", out.Retries, out.Parked)
	}
}

func TestSourceDownDecidesNothing(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	db.fail = context.DeadlineExceeded
	p := NewPipeline(catalogModel(t), db, w, Options{})
	if _, err := p.Process(context.Background(), msgs(event("cat.programs", "delete", 3, r("id", 1), Row{}))); err == nil {
		t.Fatal("want an error: the batch must be kept, not acked")
	}
	if len(w.batches) != 0 {
		t.Error("wrote without reading")
	}
}

// TestPoisonChangeInABatchParksOnlyThatChange prevents one bad change from holding back or
// losing the good changes of its message: the bad one is parked alone, as a message of its
// own that can be replayed, and the others are written.
func TestPoisonChangeInABatchParksOnlyThatChange(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	db.set("cat.programs", "id", r("id", 100, "title", "News!", "channel_id", 10)) // the change is visible
	good := r("id", 100, "title", "News", "channel_id", 10)
	body := batch(
		change("cat.programs", "update", 9, good, r("id", 100, "title", "News!", "channel_id", 10)),
		change("cat.unknown", "insert", 10, Row{}, r("id", 1)),
		[]byte(`"not an object"`),
		change("cat.programs", "insert", 11, Row{}, r("id", 101, "title", "Sport", "channel_id", 11)),
	)
	out := process(t, db, w, body)
	if len(out.Parked) != 2 {
		t.Fatalf("parked %d, want the 2 bad changes: %+v", len(out.Parked), out.Parked)
	}
	var alone struct {
		Schema  int               `json:"schema"`
		Changes []json.RawMessage `json:"changes"`
	}
	if err := json.Unmarshal(out.Parked[0].Body, &alone); err != nil || alone.Schema != 2 || len(alone.Changes) != 1 ||
		!strings.Contains(string(alone.Changes[0]), "cat.unknown") || !strings.Contains(out.Parked[0].Reason, "unknown table") {
		t.Errorf("parked body %s (reason %q): want the one bad change as a schema 2 message", out.Parked[0].Body, out.Parked[0].Reason)
	}
	if !strings.Contains(out.Parked[1].Reason, "not a JSON object") {
		t.Errorf("second parked reason %q", out.Parked[1].Reason)
	}
	sameStrings(t, "written from the batch", w.written(), "100@9", "101@11")
}

// TestCompressedMessagesAreReadAndUnreadableOnesParkedAsTheyCame prevents a zstd batch from
// being taken for poison, and an undecompressable body from being parked in a form nobody
// can read again: it keeps its content-encoding.
func TestCompressedMessagesAreReadAndUnreadableOnesParkedAsTheyCame(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	db.set("cat.programs", "id", r("id", 100, "title", "News!", "channel_id", 10)) // the change is visible
	good := r("id", 100, "title", "News", "channel_id", 10)
	plain := batch(change("cat.programs", "update", 9, good, r("id", 100, "title", "News!", "channel_id", 10)))
	enc, _ := zstd.NewWriter(nil)
	p := NewPipeline(catalogModel(t), db, w, Options{})
	out, err := p.Process(context.Background(), []Message{
		{Body: enc.EncodeAll(plain, nil), Encoding: "zstd"},
		{Body: []byte("\x28\xb5\x2f\xfd garbage"), Encoding: "zstd"},
		{Body: plain, Encoding: "br"},
	})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "written from the compressed batch", w.written(), "100@9")
	if len(out.Parked) != 2 || out.Parked[0].Encoding != "zstd" || !strings.Contains(out.Parked[0].Reason, "zstd") ||
		!strings.Contains(out.Parked[1].Reason, `unknown content-encoding "br"`) {
		t.Errorf("parked %+v", out.Parked)
	}
}

// TestRetryAndChangeOfOneEntityInABatchWriteItOnce prevents writing an entity twice to the
// master in one batch (once for its retry, once for its change): the retry rides with the
// change, and keeps its attempt count so that a failing entity is still parked in the end.
func TestRetryAndChangeOfOneEntityInABatchWriteItOnce(t *testing.T) {
	db := catalogDB()
	db.set("cat.programs", "id", r("id", 100, "title", "News!", "channel_id", 10)) // the change is visible
	w := &fakeWriter{answer: func(d Doc) Result {
		return Result{Class: Retryable, Status: 429, ErrType: "es_rejected_execution_exception", Reason: "queue full"}
	}}
	p := NewPipeline(catalogModel(t), db, w, Options{MaxAttempts: 3})
	first := time.Unix(1600000000, 0)
	out, err := p.Process(context.Background(), []Message{
		{Body: EncodeRetry(Retry{Entity: "program", Key: valueOf(json.RawMessage("100")), Version: 5}), Attempt: 3, Cluster: "es7", FirstSeen: first},
		{Body: event("cat.programs", "update", 9, r("id", 100, "title", "News", "channel_id", 10), r("id", 100, "title", "News!", "channel_id", 10))},
	})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "written", w.written(), "100@9")
	if len(out.Retries) != 0 || len(out.Parked) != 1 || out.Parked[0].Attempt != 3 || !out.Parked[0].FirstSeen.Equal(first) {
		t.Errorf("retries %+v parked %+v: want 100 parked after its 3rd attempt, first seen %v", out.Retries, out.Parked, first)
	}
}

// TestARetryWithItsIntegerKeyAsAStringIsWritten prevents a retry whose key is the string form
// of an integer key ("100", written by hand or by another build) from being read and then
// neither written nor retried: its document is found under the key rows match it with.
func TestARetryWithItsIntegerKeyAsAStringIsWritten(t *testing.T) {
	db := catalogDB()
	db.set("cat.programs", "id", r("id", 100, "title", "News", "channel_id", 10))
	w := &fakeWriter{}
	p := NewPipeline(catalogModel(t), db, w, Options{})
	out, err := p.Process(context.Background(), []Message{
		{Body: EncodeRetry(Retry{Entity: "program", Key: valueOf(json.RawMessage(`"100"`)), Version: 5}), Attempt: 2, Cluster: "es7"},
	})
	if err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "written", w.written(), "100@5")
	if len(out.Retries)+len(out.Parked) != 0 || out.Docs != 1 {
		t.Errorf("outcome %+v: want the document written once, nothing retried or parked", out)
	}
}

// TestMasterOutageHoldsTheBatchAndSpendsNoAttempt prevents an outage of the master from
// parking documents that only needed patience: while the master takes no write, nothing of
// the batch is decided (no retry message, nothing parked, no attempt spent); once it takes
// writes again, the same batch is written.
func TestMasterOutageHoldsTheBatchAndSpendsNoAttempt(t *testing.T) {
	db := catalogDB()
	down := true
	w := &fakeWriter{answer: func(Doc) Result {
		if down {
			return Result{Class: Retryable, Reason: "cluster es7: Bulk: unreachable", Unavailable: true}
		}
		return Result{Class: OK}
	}}
	p := NewPipeline(catalogModel(t), db, w, Options{MaxAttempts: 1})
	batch := msgs(event("cat.programs", "update", 5, r("id", 100, "title", "x", "channel_id", 10), r("id", 100, "title", "News", "channel_id", 10)))
	for range 3 { // more tries than MaxAttempts: none of them counts
		out, err := p.Process(context.Background(), batch)
		var ue *UnavailableError
		if !errors.As(err, &ue) || ue.Cluster != "es7" {
			t.Fatalf("master down: err = %v, want an UnavailableError naming es7", err)
		}
		if len(out.Retries)+len(out.Parked) != 0 {
			t.Fatalf("master down: decided %+v", out)
		}
	}
	down = false
	out, err := p.Process(context.Background(), batch)
	if err != nil || len(out.Retries)+len(out.Parked) != 0 || out.Docs != 1 {
		t.Fatalf("master back: %+v, %v; want the document written", out, err)
	}
}
