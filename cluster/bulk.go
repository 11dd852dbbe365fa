package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// BulkItem is the result of one action of a _bulk request, in request order.
type BulkItem struct {
	Op      string // "index", "create", "update" or "delete"
	Index   string
	ID      string
	Version int64  // _version after the write (the external version when version_type=external)
	Result  string // "created", "updated", "deleted", "not_found", "noop"; empty on error
	Status  int
	ErrType string // e.g. "version_conflict_engine_exception"; empty when the item succeeded
	Reason  string // error reason, with its first cause
	Class   Class  // Classify(Status, ErrType, Op)
}

// BulkOption adjusts the _bulk request (not its body).
type BulkOption func(*esapi.BulkRequest)

// WithIndex sets the default index for actions that name none.
func WithIndex(index string) BulkOption { return func(r *esapi.BulkRequest) { r.Index = index } }

// WithRefresh sets the refresh parameter: "true", "wait_for" or "false".
func WithRefresh(refresh string) BulkOption {
	return func(r *esapi.BulkRequest) { r.Refresh = refresh }
}

// OutcomesOnly asks the cluster to answer each action with its outcome only
// (filter_path=errors,items.*.status,items.*.error): each item then carries the same Op,
// Status, ErrType, Reason and Class as without it, and no Index, ID, Version or Result. The
// answer is several times smaller to read and parse (about 25 bytes instead of about 200 for
// a successful write). Every item has a status, so filtering drops none and each keeps its
// action's position (Elasticsearch 7.17 and 8.14, OpenSearch 2.19: testdata/bulk-*.json).
func OutcomesOnly() BulkOption {
	return func(r *esapi.BulkRequest) { r.FilterPath = outcomesFilter }
}

var outcomesFilter = []string{"errors", "items.*.status", "items.*.error"}

// Bulk sends body, an NDJSON _bulk body we built ourselves, and returns one BulkItem per
// action. Invariant: on a nil error there is exactly one item per action in body, so no
// write can go unaccounted for (esutil.BulkIndexer can drop items; we never use it).
//
// The error is a *TransportError (no answer), a *StatusError (the whole request was
// refused: 429 is Retryable, 413 TooLarge) or a plain error for a malformed body or answer
// (Permanent). It is bounded by the cluster's BulkTimeout, not its RequestTimeout.
func (c *Client) Bulk(ctx context.Context, body []byte, opts ...BulkOption) ([]BulkItem, error) {
	actions, err := countActions(body)
	if err != nil {
		return nil, fmt.Errorf("check cluster %s bulk body: %w", c.name, err)
	}
	req := esapi.BulkRequest{Body: bytes.NewReader(body)}
	for _, o := range opts {
		o(&req)
	}
	status, resp, err := c.do(ctx, req, c.opts.BulkTimeout)
	if err != nil {
		return nil, err
	}
	if err := c.Check("bulk", status, resp); err != nil {
		return nil, err
	}
	items, err := parseBulkResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("parse cluster %s bulk response: %w", c.name, err)
	}
	if len(items) != actions {
		return nil, fmt.Errorf("parse cluster %s bulk response: %d items for %d actions", c.name, len(items), actions)
	}
	return items, nil
}

// countActions validates the shape of a _bulk body and counts its actions: each action
// line is {"index"|"create"|"update": ...} followed by a source line, or {"delete": ...}.
func countActions(body []byte) (int, error) {
	if len(body) == 0 {
		return 0, fmt.Errorf("empty body")
	}
	if body[len(body)-1] != '\n' {
		return 0, fmt.Errorf("body must end with a newline")
	}
	n, line := 0, 0
	for rest := body; len(rest) > 0; {
		var action []byte
		action, rest, _ = bytes.Cut(rest, []byte{'\n'})
		line++
		op, err := actionName(action)
		if err != nil {
			return 0, fmt.Errorf("line %d: %w", line, err)
		}
		n++
		if op == "delete" {
			continue
		}
		if len(rest) == 0 {
			return 0, fmt.Errorf("line %d: %s action without a source line", line, op)
		}
		_, rest, _ = bytes.Cut(rest, []byte{'\n'})
		line++
	}
	return n, nil
}

// actionName reads the first key of an action line without decoding the rest.
func actionName(line []byte) (string, error) {
	// The lines wye builds start exactly so; anything else takes the decoder.
	for _, op := range [...]string{"index", "delete", "create", "update"} {
		if len(line) > len(op)+4 && line[0] == '{' && line[1] == '"' && string(line[2:2+len(op)]) == op && line[2+len(op)] == '"' && line[3+len(op)] == ':' {
			return op, nil
		}
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", fmt.Errorf("action line is not a JSON object")
	}
	tok, err := dec.Token()
	if err != nil {
		return "", fmt.Errorf("read action: %w", err)
	}
	op, _ := tok.(string)
	switch op {
	case "index", "create", "update", "delete":
		return op, nil
	}
	return "", fmt.Errorf("unknown action %v", tok)
}

type bulkResponse struct {
	Items []bulkEntry `json:"items"`
}

// bulkEntry is one element of "items": an object with one key, the action. Named fields
// instead of a map spare a map per item.
type bulkEntry struct {
	Index  *bulkResult `json:"index"`
	Create *bulkResult `json:"create"`
	Update *bulkResult `json:"update"`
	Delete *bulkResult `json:"delete"`
}

type bulkResult struct {
	Index   string       `json:"_index"`
	ID      string       `json:"_id"`
	Version int64        `json:"_version"`
	Result  string       `json:"result"`
	Status  int          `json:"status"`
	Error   *errorObject `json:"error"`
}

// parseBulkResponse turns a 2xx _bulk answer into items, classifying each one.
func parseBulkResponse(body []byte) ([]BulkItem, error) {
	if items, ok := scanBulkResponse(body); ok {
		return items, nil
	}
	return decodeBulkResponse(body)
}

// decodeBulkResponse is parseBulkResponse with encoding/json, for answers the scanner does
// not take.
func decodeBulkResponse(body []byte) ([]BulkItem, error) {
	var r bulkResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	items := make([]BulkItem, 0, len(r.Items))
	for i, e := range r.Items {
		op, it, n := "", (*bulkResult)(nil), 0
		for _, c := range [...]struct {
			op string
			r  *bulkResult
		}{{"index", e.Index}, {"create", e.Create}, {"update", e.Update}, {"delete", e.Delete}} {
			if c.r != nil {
				op, it, n = c.op, c.r, n+1
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("item %d: want one action key, got %d", i, n)
		}
		item := BulkItem{Op: op, Index: it.Index, ID: it.ID, Version: it.Version, Result: it.Result, Status: it.Status}
		if it.Error != nil {
			item.ErrType, item.Reason = it.Error.Type, it.Error.fullReason()
		}
		item.Class = Classify(item.Status, item.ErrType, op)
		items = append(items, item)
	}
	return items, nil
}
