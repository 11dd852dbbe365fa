package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// mixedBody has the six actions answered by testdata/bulk-mixed-es8.json.
const mixedBody = `{"index":{"_index":"programs-v1","_id":"1","version":3,"version_type":"external"}}
{"id":"1","n":1}
{"index":{"_index":"programs-v1","_id":"2","version":6,"version_type":"external"}}
{"id":"2","n":"abc"}
{"delete":{"_index":"programs-v1","_id":"9","version":7,"version_type":"external"}}
{"index":{"_index":"programs-v1","_id":"4","version":6,"version_type":"external"}}
{"id":"4","n":4}
{"index":{"_index":"programs-v1","_id":"3","version":6,"version_type":"external"}}
{"id":"3","n":3,"x":1}
{"delete":{"_index":"programs-v1","_id":"1","version":9,"version_type":"external"}}
`

func newBulkFake(t *testing.T, status int, answer []byte) (*fakeCluster, *Client) {
	t.Helper()
	f := newFakeCluster(t, golden(t, "root-es8.json"), true)
	f.routes["POST /_bulk"] = fakeAnswer{status, answer}
	c, err := New(f.opts())
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func TestClusterBulkReportsEveryItem(t *testing.T) {
	_, c := newBulkFake(t, 200, golden(t, "bulk-mixed-es8.json"))
	items, err := c.Bulk(context.Background(), []byte(mixedBody))
	if err != nil {
		t.Fatalf("Bulk: %v", err)
	}
	want := []BulkItem{
		{Op: "index", Index: "programs-v1", ID: "1", Status: 409, ErrType: "version_conflict_engine_exception", Class: Stale},
		{Op: "index", Index: "programs-v1", ID: "2", Status: 400, ErrType: "document_parsing_exception", Class: Permanent},
		{Op: "delete", Index: "programs-v1", ID: "9", Version: 7, Result: "not_found", Status: 404, Class: OK},
		{Op: "index", Index: "programs-v1", ID: "4", Status: 429, ErrType: "es_rejected_execution_exception", Class: Retryable},
		{Op: "index", Index: "programs-v1", ID: "3", Status: 400, ErrType: "strict_dynamic_mapping_exception", Class: Permanent},
		{Op: "delete", Index: "programs-v1", ID: "1", Version: 9, Result: "deleted", Status: 200, Class: OK},
	}
	if len(items) != len(want) {
		t.Fatalf("got %d items, want %d", len(items), len(want))
	}
	for i, w := range want {
		got := items[i]
		got.Reason = "" // checked below
		if got != w {
			t.Errorf("item %d = %+v, want %+v", i, got, w)
		}
	}
	if r := items[1].Reason; !strings.Contains(r, "failed to parse field [n]") || !strings.Contains(r, `For input string: "abc"`) {
		t.Errorf("parsing error reason lost its cause: %q", r)
	}
}

func TestClusterBulkItemCountMismatchIsAnError(t *testing.T) {
	_, c := newBulkFake(t, 200, golden(t, "bulk-mixed-es8.json"))
	body := mixedBody + "{\"delete\":{\"_index\":\"programs-v1\",\"_id\":\"5\"}}\n" // 7 actions, 6 answers
	_, err := c.Bulk(context.Background(), []byte(body))
	if err == nil || !strings.Contains(err.Error(), "6 items for 7 actions") {
		t.Fatalf("Bulk: err = %v, want an item count mismatch", err)
	}
}

func TestClusterMalformedBulkBodyIsNotSent(t *testing.T) {
	bodies := map[string]string{
		"empty":             "",
		"no final newline":  `{"delete":{"_index":"i","_id":"1"}}`,
		"unknown action":    "{\"upsert\":{\"_index\":\"i\",\"_id\":\"1\"}}\n{}\n",
		"missing source":    "{\"index\":{\"_index\":\"i\",\"_id\":\"1\"}}\n",
		"action not object": "[1]\n",
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			f, c := newBulkFake(t, 200, golden(t, "bulk-mixed-es8.json"))
			_, err := c.Bulk(context.Background(), []byte(body))
			if err == nil || ClassOf(err) != Permanent {
				t.Fatalf("Bulk: err = %v (class %v), want a permanent error", err, ClassOf(err))
			}
			for _, r := range f.requests() {
				if r.path == "/_bulk" {
					t.Fatal("a malformed body was sent")
				}
			}
		})
	}
}

func TestClusterWholeBulkRejectionIsClassified(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   Class
	}{
		{429, `{"error":{"root_cause":[{"type":"es_rejected_execution_exception","reason":"rejected execution"}],"type":"es_rejected_execution_exception","reason":"rejected execution"},"status":429}`, Retryable},
		{503, `{"error":{"type":"cluster_block_exception","reason":"blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];"},"status":503}`, Unavailable},
		{403, `{"error":{"type":"cluster_block_exception","reason":"index [p] blocked by: [FORBIDDEN/8/index write (api)];"},"status":403}`, Unavailable},
		{413, ``, TooLarge},
		{400, `{"error":{"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\\n]"},"status":400}`, Permanent},
	}
	for _, tt := range tests {
		_, c := newBulkFake(t, tt.status, []byte(tt.body))
		_, err := c.Bulk(context.Background(), []byte("{\"delete\":{\"_index\":\"i\",\"_id\":\"1\"}}\n"))
		var se *StatusError
		if !errors.As(err, &se) || se.Status != tt.status || se.Class != tt.want {
			t.Errorf("status %d: err = %v, want a %v *StatusError", tt.status, err, tt.want)
		}
		if ClassOf(err) != tt.want {
			t.Errorf("status %d: ClassOf = %v, want %v", tt.status, ClassOf(err), tt.want)
		}
	}
}

// outcomesBody has the nine actions answered by testdata/bulk-full-*.json and
// bulk-outcomes-*.json (index h-cpu-bulk-<engine>, strict mapping of a long field a).
const outcomesBody = `{"index":{"_index":"p","_id":"1","version":5,"version_type":"external"}}
{"a":1}
{"index":{"_index":"p","_id":"1","version":3,"version_type":"external"}}
{"a":2}
{"delete":{"_index":"p","_id":"404","version":7,"version_type":"external"}}
{"index":{"_index":"p","_id":"2"}}
{"a":"notanumber"}
{"index":{"_index":"p","_id":"3"}}
{"b":1}
{"update":{"_index":"p","_id":"1"}}
{"doc":{"a":1}}
{"create":{"_index":"p","_id":"1"}}
{"a":1}
{"index":{"_index":"p","_id":"4"}}
{"a":4}
{"delete":{"_index":"p","_id":"4"}}
`

// TestOutcomesOnlyGivesEachActionTheSameOutcome prevents a write judged otherwise, or
// matched with another action, when the answer is filtered to the outcomes (OutcomesOnly):
// the real answers of Elasticsearch 7.17, 8.14 and OpenSearch 2.19 to the same nine actions
// (created, version conflicts, a delete not found, parsing and strict mapping refusals, an
// update, a create conflict, deletes), filtered and not, give every item the same Op,
// Status, ErrType, Reason and Class, in the same order; the filter is the request's.
func TestOutcomesOnlyGivesEachActionTheSameOutcome(t *testing.T) {
	for _, engine := range []string{"es7", "es8", "os2"} {
		t.Run(engine, func(t *testing.T) {
			_, c := newBulkFake(t, 200, golden(t, "bulk-full-"+engine+".json"))
			full, err := c.Bulk(context.Background(), []byte(outcomesBody))
			if err != nil {
				t.Fatalf("Bulk: %v", err)
			}
			f, c := newBulkFake(t, 200, golden(t, "bulk-outcomes-"+engine+".json"))
			outcomes, err := c.Bulk(context.Background(), []byte(outcomesBody), OutcomesOnly())
			if err != nil {
				t.Fatalf("Bulk, outcomes only: %v", err)
			}
			if q := f.requests()[len(f.requests())-1].query; q != "filter_path=errors%2Citems.%2A.status%2Citems.%2A.error" {
				t.Errorf("request query %q, want the outcomes filter", q)
			}
			classes := map[Class]bool{}
			for i, it := range full {
				classes[it.Class] = true
				want := BulkItem{Op: it.Op, Status: it.Status, ErrType: it.ErrType, Reason: it.Reason, Class: it.Class}
				if outcomes[i] != want {
					t.Errorf("item %d: filtered %+v, want %+v", i, outcomes[i], want)
				}
			}
			if len(full) != 9 || !classes[OK] || !classes[Stale] || !classes[Permanent] {
				t.Errorf("bad test: %d items of classes %v", len(full), classes)
			}
		})
	}
}
