package es

import (
	"context"
	"strings"
	"testing"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/internal/reason"
)

// answerBulker answers every _bulk with the same items, or the same error.
type answerBulker struct {
	item cluster.BulkItem
	err  error
}

func (b answerBulker) Bulk(_ context.Context, body []byte, _ ...cluster.BulkOption) ([]cluster.BulkItem, error) {
	if b.err != nil {
		return nil, b.err
	}
	items := make([]cluster.BulkItem, strings.Count(string(body), `"_index"`))
	for i := range items {
		items[i] = b.item
	}
	return items, nil
}

// TestStoredReasonsKeepNoRowValue prevents an engine's quote of a refused value (row data)
// from reaching the parked headers, the repair ledger or a log line through Result.Reason,
// and an engine's message from growing them without bound.
func TestStoredReasonsKeepNoRowValue(t *testing.T) {
	const secret = "4111-1111-1111-1111"
	mapper := "failed to parse field [year] of type [long] in document with id '7'. Preview of field's value: '" + secret + "'"
	for _, tc := range []struct {
		name   string
		bulker answerBulker
		want   string
	}{
		{"a refused document", answerBulker{item: cluster.BulkItem{Status: 400, ErrType: "mapper_parsing_exception",
			Reason: mapper, Class: cluster.Permanent}},
			"programs: mapper_parsing_exception: failed to parse field [year] of type [long] in document with id '7'. Preview of field's value: <cut>"},
		{"a refused request", answerBulker{err: cluster.NewStatusError("bulk", 400,
			[]byte(`{"error":{"type":"mapper_parsing_exception","reason":"`+strings.ReplaceAll(mapper, "'", `\u0027`)+`"}}`))},
			"bulk: status 400 mapper_parsing_exception: failed to parse field [year] of type [long] in document with id '7'. Preview of field's value: <cut>"},
		{"a long message", answerBulker{item: cluster.BulkItem{Status: 400, ErrType: "illegal_argument_exception",
			Reason: strings.Repeat("x", 2*reason.Max), Class: cluster.Permanent}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := New(Options{Name: "es7", Client: tc.bulker})
			for _, r := range w.Write(t.Context(), docs(2)) {
				if strings.Contains(r.Reason, secret) {
					t.Fatalf("reason keeps the row's value: %q", r.Reason)
				}
				if len(r.Reason) > len("programs: ")+reason.Max {
					t.Fatalf("reason of %d bytes, want at most the index and %d", len(r.Reason), reason.Max)
				}
				if tc.want != "" && !strings.HasPrefix(r.Reason, tc.want) {
					t.Fatalf("reason = %q\n want it to start %q", r.Reason, tc.want)
				}
			}
		})
	}
}
