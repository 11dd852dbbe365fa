package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestClassifyClusterAnswers(t *testing.T) {
	tests := []struct {
		status  int
		errType string
		op      string
		want    Class
	}{
		{200, "", "index", OK},
		{201, "", "index", OK},
		{200, "", "delete", OK},
		{409, "version_conflict_engine_exception", "index", Stale},
		{409, "version_conflict_engine_exception", "delete", Stale},
		{404, "", "delete", OK},
		{404, "index_not_found_exception", "index", Retryable},
		{404, "index_not_found_exception", "delete", OK},
		{404, "document_missing_exception", "update", Permanent},
		{429, "es_rejected_execution_exception", "index", Retryable},
		{429, "circuit_breaking_exception", "bulk", Retryable},
		{408, "", "bulk", Retryable}, // a request timeout is a timeout (docs/architecture.md error classes)
		{500, "", "index", Retryable},
		{502, "", "bulk", Retryable},
		{503, "unavailable_shards_exception", "index", Retryable},
		{504, "", "delete", Retryable},
		{400, "mapper_parsing_exception", "index", Permanent},
		{400, "document_parsing_exception", "index", Permanent}, // ES 8's name for it
		{400, "strict_dynamic_mapping_exception", "index", Permanent},
		{400, "illegal_argument_exception", "index", Permanent},
		{409, "resource_already_exists_exception", "index", Permanent},
		{413, "", "bulk", TooLarge},
		{403, "cluster_block_exception", "index", Unavailable}, // index.blocks.write: wait, do not park
		{429, "cluster_block_exception", "index", Unavailable}, // flood-stage watermark (ES 8 answers 429)
		{301, "", "bulk", Permanent},
		{0, "", "index", Permanent},
	}
	for _, tt := range tests {
		if got := Classify(tt.status, tt.errType, tt.op); got != tt.want {
			t.Errorf("Classify(%d, %q, %q) = %v, want %v", tt.status, tt.errType, tt.op, got, tt.want)
		}
	}
}

func TestClassOfClusterErrors(t *testing.T) {
	transport := fmt.Errorf("flush: %w", &TransportError{Cluster: "c", Err: errors.New("connection reset")})
	status := fmt.Errorf("flush: %w", &StatusError{Cluster: "c", Op: "bulk", Status: 429, Class: Retryable})
	tests := []struct {
		err  error
		want Class
	}{
		{nil, OK},
		{transport, Retryable},
		{status, Retryable},
		{&StatusError{Status: 400, Class: Permanent}, Permanent},
		{fmt.Errorf("flush: %w", &StatusError{Status: 413, Class: TooLarge}), TooLarge},
		{errors.New("check bulk body: empty body"), Permanent},
	}
	for _, tt := range tests {
		if got := ClassOf(tt.err); got != tt.want {
			t.Errorf("ClassOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestOversizedBulkIsSplitNotParked: a _bulk whose body exceeds http.max_content_length is
// answered 413 (with an empty body by Elasticsearch, an HTML page by a proxy). The documents
// are fine, so the answer is TooLarge, for the caller to send them in smaller requests,
// never the Permanent that would park a whole batch of good documents.
func TestOversizedBulkIsSplitNotParked(t *testing.T) {
	for _, body := range []string{``, `<html><head><title>413 Request Entity Too Large</title></head></html>`} {
		_, c := newBulkFake(t, 413, []byte(body))
		_, err := c.Bulk(context.Background(), []byte("{\"delete\":{\"_index\":\"i\",\"_id\":\"1\"}}\n"))
		var se *StatusError
		if !errors.As(err, &se) || se.Status != 413 || se.Class != TooLarge || ClassOf(err) != TooLarge {
			t.Errorf("bulk answered 413 %q: err = %v (class %v), want a too_large *StatusError", body, err, ClassOf(err))
		}
	}
	for _, op := range []string{"bulk", "index", "delete", ""} {
		if got := Classify(413, "", op); got != TooLarge {
			t.Errorf("Classify(413, %q) = %v, want too_large", op, got)
		}
	}
	if s := TooLarge.String(); s != "too_large" {
		t.Errorf("TooLarge.String() = %q", s)
	}
}

// TestMissingIndexIsRetriedNotParked: a write whose index is missing (`wye mapping gc`
// removed it, or `wye mapping apply` has not created it yet) is Retryable, as a bulk item
// and as a whole request; a delete there is done (the document is gone with its index).
func TestMissingIndexIsRetriedNotParked(t *testing.T) {
	const missing = `{"took":1,"errors":true,"items":[` +
		`{"index":{"_index":"programs_v1","_id":"1","status":404,"error":{"type":"index_not_found_exception","reason":"no such index [programs_v1]","index":"programs_v1"}}},` +
		`{"create":{"_index":"programs_v1","_id":"2","status":404,"error":{"type":"index_not_found_exception","reason":"no such index [programs_v1]","index":"programs_v1"}}},` +
		`{"update":{"_index":"programs_v1","_id":"3","status":404,"error":{"type":"index_not_found_exception","reason":"no such index [programs_v1]","index":"programs_v1"}}},` +
		`{"delete":{"_index":"programs_v1","_id":"4","status":404,"error":{"type":"index_not_found_exception","reason":"no such index [programs_v1]","index":"programs_v1"}}}]}`
	want := []Class{Retryable, Retryable, Retryable, OK}
	for name, parse := range map[string]func([]byte) ([]BulkItem, error){"parseBulkResponse": parseBulkResponse, "decodeBulkResponse": decodeBulkResponse} {
		items, err := parse([]byte(missing))
		if err != nil || len(items) != len(want) {
			t.Fatalf("%s: %d items, %v", name, len(items), err)
		}
		for i, it := range items {
			if it.ErrType != "index_not_found_exception" || it.Class != want[i] {
				t.Errorf("%s: %s item in a missing index: %s %v, want %v", name, it.Op, it.ErrType, it.Class, want[i])
			}
		}
	}

	c := &Client{name: "es8"}
	body := []byte(`{"error":{"root_cause":[{"type":"index_not_found_exception","reason":"no such index [programs_v1]"}],"type":"index_not_found_exception","reason":"no such index [programs_v1]","index":"programs_v1"},"status":404}`)
	if err := c.Check("index", 404, body); ClassOf(err) != Retryable {
		t.Errorf("index request on a missing index: %v (class %v), want retryable", err, ClassOf(err))
	}
	if err := c.Check("delete", 404, body); err != nil {
		t.Errorf("delete on a missing index: %v, want nil", err)
	}
}

// TestErrorAnswerIsReadOnce: NewStatusError is the one reader of error answers, for cluster
// and mapping alike: type, reason with its first cause (once), class from Classify, and a
// short prefix of a body that is not an Elasticsearch error.
func TestErrorAnswerIsReadOnce(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name     string
		op       string
		status   int
		body     string
		wantType string
		reason   string
		class    Class
	}{
		{"mapping error with cause", "create_index", 400,
			`{"error":{"type":"mapper_parsing_exception","reason":"Failed to parse mapping","caused_by":{"type":"illegal_argument_exception","reason":"No handler for type [strng]"}},"status":400}`,
			"mapper_parsing_exception", "Failed to parse mapping (caused by illegal_argument_exception: No handler for type [strng])", Permanent},
		{"cause repeating the reason", "", 400,
			`{"error":{"type":"illegal_argument_exception","reason":"same","caused_by":{"type":"illegal_argument_exception","reason":"same"}}}`,
			"illegal_argument_exception", "same", Permanent},
		{"already exists", "", 400,
			`{"error":{"type":"resource_already_exists_exception","reason":"index [programs_v1/abc] already exists"},"status":400}`,
			"resource_already_exists_exception", "index [programs_v1/abc] already exists", Permanent},
		{"string error", "", 500, `{"error":"Incorrect HTTP method","status":500}`, "", "Incorrect HTTP method", Retryable},
		{"rejected", "bulk", 429, `{"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"},"status":429}`,
			"es_rejected_execution_exception", "rejected execution", Retryable},
		{"missing index", "", 404, `{"error":{"type":"index_not_found_exception","reason":"no such index [x]"},"status":404}`,
			"index_not_found_exception", "no such index [x]", Retryable},
		{"proxy page", "", 502, "  <html>bad gateway</html>\n", "", "<html>bad gateway</html>", Retryable},
		{"long body", "", 400, long, "", long[:200] + "...", Permanent},
		{"empty body", "bulk", 413, "", "", "empty body", TooLarge},
	}
	for _, tt := range tests {
		se := NewStatusError(tt.op, tt.status, []byte(tt.body))
		want := StatusError{Op: tt.op, Status: tt.status, Type: tt.wantType, Reason: tt.reason, Class: tt.class}
		if *se != want {
			t.Errorf("%s: NewStatusError = %+v, want %+v", tt.name, *se, want)
		}
		if ClassOf(fmt.Errorf("wrapped: %w", se)) != tt.class {
			t.Errorf("%s: ClassOf = %v, want %v", tt.name, ClassOf(se), tt.class)
		}
	}

	se := NewStatusError("", 400, []byte(`{"error":{"type":"illegal_argument_exception","reason":"bad"}}`))
	if got, want := se.Error(), "status 400 illegal_argument_exception: bad (permanent)"; got != want {
		t.Errorf("Error() without cluster or op = %q, want %q", got, want)
	}
	se.Cluster, se.Op = "es8", "bulk"
	if got, want := se.Error(), "cluster es8: bulk: status 400 illegal_argument_exception: bad (permanent)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
