package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// Hit is one document as a read saw it.
type Hit struct {
	ID      string
	Version int64  // the document's _version (wye writes external versions)
	Source  []byte // the raw _source as stored; nil when the read did not ask for it
}

// scanKeepAlive is how long the engine keeps a scan's view between two pages: the time fn
// has for one page, plus the next page's request. The view is released as soon as Scan
// returns; this only bounds how long an abandoned one (a crashed wye) holds its segments.
const scanKeepAlive = 5 * time.Minute

// Get reads the documents of ids from index (an index or an alias naming one index) with one
// _mget: their versions, and their _source when source is true. Ids not found are absent
// from the map. The read is real-time: it sees writes not refreshed yet.
//
// Errors: a *TransportError when no answer came, a *StatusError otherwise. _mget answers 200
// when the index is missing and reports it for each document instead; that error is a
// *StatusError with Status 0 and the class Classify gives its type (index_not_found_exception
// is Retryable, as everywhere).
func (c *Client) Get(ctx context.Context, index string, ids []string, source bool) (map[string]Hit, error) {
	if len(ids) == 0 {
		return map[string]Hit{}, nil // _mget refuses an empty list
	}
	body, err := json.Marshal(struct {
		IDs []string `json:"ids"`
	}{ids})
	if err != nil {
		return nil, fmt.Errorf("encode mget of cluster %s: %w", c.name, err)
	}
	req := esapi.MgetRequest{Index: index, Body: bytes.NewReader(body)}
	if !source {
		req.Source = []string{"false"}
	}
	status, resp, err := c.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := c.Check("mget", status, resp); err != nil {
		return nil, err
	}
	if found, ok := scanMget(resp); ok {
		hits := make(map[string]Hit, len(found))
		for _, h := range found {
			hits[h.ID] = h
		}
		return hits, nil
	}
	var res struct {
		Docs []struct {
			ID      string          `json:"_id"`
			Version int64           `json:"_version"`
			Found   bool            `json:"found"`
			Source  json.RawMessage `json:"_source"`
			Error   *errorObject    `json:"error"`
		} `json:"docs"`
	}
	if err := json.Unmarshal(resp, &res); err != nil {
		return nil, fmt.Errorf("decode mget of cluster %s: %w", c.name, err)
	}
	hits := make(map[string]Hit, len(res.Docs))
	for _, d := range res.Docs {
		if e := d.Error; e != nil {
			return nil, &StatusError{Cluster: c.name, Op: "mget", Type: e.Type, Reason: e.fullReason(),
				Class: Classify(0, e.Type, "mget")}
		}
		if d.Found {
			hits[d.ID] = Hit{ID: d.ID, Version: d.Version, Source: d.Source}
		}
	}
	return hits, nil
}

// Count is the number of documents of index (_count). Like a search, it sees what the last
// refresh made visible.
func (c *Client) Count(ctx context.Context, index string) (int64, error) {
	status, resp, err := c.Do(ctx, esapi.CountRequest{Index: []string{index}})
	if err != nil {
		return 0, err
	}
	if err := c.Check("count", status, resp); err != nil {
		return 0, err
	}
	var res struct {
		Count *int64 `json:"count"`
	}
	if err := json.Unmarshal(resp, &res); err != nil || res.Count == nil {
		return 0, fmt.Errorf("decode count of cluster %s: %q is not a count", c.name, truncate(resp))
	}
	return *res.Count, nil
}

// Refresh makes every write to index so far visible to Count and Scan (_refresh).
func (c *Client) Refresh(ctx context.Context, index string) error {
	status, resp, err := c.Do(ctx, esapi.IndicesRefreshRequest{Index: []string{index}})
	if err != nil {
		return err
	}
	return c.Check("refresh", status, resp)
}

// Scan reads every document of index once, in pages of at most size (at most the index's
// max_result_window, 10,000 by default), in a stable order of the engine's choosing, inside
// one consistent view of the index, and calls fn with each page (ids and versions; _source
// too when source is true). Documents written after Scan began may or may not be seen; every
// document visible when it began (as of the last refresh) is seen exactly once. fn must not
// keep the slice (the Sources may be kept) and must return within 5 minutes, the view's
// keep-alive. The view is released when Scan returns, also on error or cancellation; a
// failed release is returned only when the scan itself succeeded.
//
// The view per engine:
//   - Elasticsearch (7.12+, so every version wye supports, OSS builds included): a
//     point-in-time, searched with search_after on _shard_doc alone. _shard_doc is (shard
//     ordinal in the PIT, Lucene doc id): unique and constant within the PIT, so pages neither
//     skip nor repeat, and no field is loaded to sort (elastic/elasticsearch#66093, #68833).
//   - OpenSearch: a scroll sorted by _doc. Its point-in-time (2.x) has no _shard_doc before
//     3.3 (opensearch-project/OpenSearch#17064, #18924), and search_after needs a unique
//     tiebreak: _doc alone repeats across shards (pages would skip documents) and _id needs
//     fielddata (#11831). A scroll holds the same consistent view and _doc is its cheapest
//     order. One path for every OpenSearch version keeps it the one the e2e tests run.
//
// Errors are those of Get, and fn's as it returned it. A page that misses shards (failed or
// timed out) is never taken for a short one: it is a Retryable *StatusError (503), as the
// engine's own refusal of a partial search is.
func (c *Client) Scan(ctx context.Context, index string, size int, source bool, fn func([]Hit) error) error {
	if size <= 0 {
		return fmt.Errorf("scan cluster %s index %s: size %d: must be positive", c.name, index, size)
	}
	if c.info.Flavor == OpenSearch {
		return c.scanScroll(ctx, index, size, source, fn)
	}
	return c.scanPIT(ctx, index, size, source, fn)
}

// scanPIT is Scan over an Elasticsearch point-in-time.
func (c *Client) scanPIT(ctx context.Context, index string, size int, source bool, fn func([]Hit) error) (err error) {
	status, resp, err := c.Do(ctx, esapi.OpenPointInTimeRequest{Index: []string{index}, KeepAlive: keepAlive})
	if err != nil {
		return err
	}
	if err := c.Check("open_point_in_time", status, resp); err != nil {
		return err
	}
	var opened struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(resp, &opened); err != nil || opened.ID == "" {
		return fmt.Errorf("decode point-in-time of cluster %s: %q has no id", c.name, truncate(resp))
	}
	// Each answer may carry a new id for the same view: the latest one is searched and closed.
	pit := opened.ID
	defer func() {
		body, _ := json.Marshal(struct {
			ID string `json:"id"`
		}{pit})
		if rerr := c.release(ctx, esapi.ClosePointInTimeRequest{Body: bytes.NewReader(body)}); err == nil && rerr != nil {
			err = fmt.Errorf("release point-in-time of cluster %s: %w", c.name, rerr)
		}
	}()

	no := false
	req := pageRequest{Size: size, Version: true, Source: source, TrackTotalHits: &no,
		Sort: []string{"_shard_doc"}, PIT: &pitRef{ID: pit, KeepAlive: keepAlive}}
	var hits []Hit
	for {
		body, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("encode search of cluster %s: %w", c.name, err)
		}
		page, err := c.page(ctx, "search", esapi.SearchRequest{Body: bytes.NewReader(body), AllowPartialSearchResults: &no})
		if page != nil && page.PITID != "" {
			pit, req.PIT.ID = page.PITID, page.PITID
		}
		if err != nil {
			return err
		}
		if hits, err = page.hits(hits[:0]); err != nil {
			return fmt.Errorf("decode search of cluster %s: %w", c.name, err)
		}
		if len(hits) > 0 {
			if err := fn(hits); err != nil {
				return err
			}
		}
		// Every shard answered (page checks it), so a short page is the last one.
		if len(hits) < size {
			return nil
		}
		last := page.Hits.Hits[len(page.Hits.Hits)-1].Sort
		if !last.ok {
			return fmt.Errorf("decode search of cluster %s: the last hit has no _shard_doc to search after", c.name)
		}
		req.SearchAfter = append(req.SearchAfter[:0], last.value)
	}
}

// scanScroll is Scan over an OpenSearch scroll.
func (c *Client) scanScroll(ctx context.Context, index string, size int, source bool, fn func([]Hit) error) (err error) {
	body, err := json.Marshal(pageRequest{Size: size, Version: true, Source: source, Sort: []string{"_doc"}})
	if err != nil {
		return fmt.Errorf("encode search of cluster %s: %w", c.name, err)
	}
	no := false
	page, err := c.page(ctx, "search", esapi.SearchRequest{Index: []string{index}, Body: bytes.NewReader(body),
		Scroll: scanKeepAlive, AllowPartialSearchResults: &no})
	// Each answer may carry a new id for the same scroll, a refused partial one too: the
	// latest one is read and cleared.
	var scroll string
	if page != nil && page.ScrollID != "" {
		scroll = page.ScrollID
		defer func() {
			body, _ := json.Marshal(struct {
				ScrollID []string `json:"scroll_id"`
			}{[]string{scroll}})
			if rerr := c.release(ctx, esapi.ClearScrollRequest{Body: bytes.NewReader(body)}); err == nil && rerr != nil {
				err = fmt.Errorf("release scroll of cluster %s: %w", c.name, rerr)
			}
		}()
	}
	if err != nil {
		return err
	}
	if scroll == "" {
		return fmt.Errorf("decode search of cluster %s: no _scroll_id in the answer", c.name)
	}
	var hits []Hit
	for {
		if hits, err = page.hits(hits[:0]); err != nil {
			return fmt.Errorf("decode search of cluster %s: %w", c.name, err)
		}
		if len(hits) == 0 {
			return nil
		}
		if err := fn(hits); err != nil {
			return err
		}
		body, err := json.Marshal(struct {
			Scroll   string `json:"scroll"`
			ScrollID string `json:"scroll_id"`
		}{keepAlive, scroll})
		if err != nil {
			return fmt.Errorf("encode scroll of cluster %s: %w", c.name, err)
		}
		page, err = c.page(ctx, "scroll", esapi.ScrollRequest{Body: bytes.NewReader(body)})
		if page != nil && page.ScrollID != "" {
			scroll = page.ScrollID
		}
		if err != nil {
			return err
		}
	}
}

// keepAlive is scanKeepAlive as the engines write a time value.
var keepAlive = fmt.Sprintf("%ds", int(scanKeepAlive/time.Second))

// release frees a scan's view (a point-in-time or a scroll) even when ctx is done: the scan
// may end because it was cancelled. Releasing is a delete: a view already gone (404) is OK.
func (c *Client) release(ctx context.Context, req esapi.Request) error {
	status, resp, err := c.Do(context.WithoutCancel(ctx), req)
	if err != nil {
		return err
	}
	return c.Check("delete", status, resp)
}

// pageRequest is the body of one page of a scan.
type pageRequest struct {
	Size           int      `json:"size"`
	Version        bool     `json:"version"`
	Source         bool     `json:"_source"`
	TrackTotalHits *bool    `json:"track_total_hits,omitempty"` // false where allowed; a scroll refuses it
	Sort           []string `json:"sort"`
	PIT            *pitRef  `json:"pit,omitempty"`
	SearchAfter    []int64  `json:"search_after,omitempty"`
}

type pitRef struct {
	ID        string `json:"id"`
	KeepAlive string `json:"keep_alive"`
}

// pageAnswer is one page of a scan as the engines answer it.
type pageAnswer struct {
	PITID    string `json:"pit_id"`
	ScrollID string `json:"_scroll_id"`
	TimedOut bool   `json:"timed_out"`
	Shards   struct {
		Total      int           `json:"total"`
		Successful int           `json:"successful"` // skipped shards included
		Failed     int           `json:"failed"`
		Failures   []pageFailure `json:"failures"`
	} `json:"_shards"`
	Hits struct {
		Hits []struct {
			ID      string          `json:"_id"`
			Version int64           `json:"_version"`
			Source  json.RawMessage `json:"_source"`
			Sort    shardDoc        `json:"sort"`
		} `json:"hits"`
	} `json:"hits"`
}

type pageFailure struct {
	Shard  int          `json:"shard"`
	Index  string       `json:"index"`
	Reason *errorObject `json:"reason"`
}

// page performs one page request and checks that every shard answered in time. A page that
// misses shards is returned with the error: its ids name the view to release.
func (c *Client) page(ctx context.Context, op string, req esapi.Request) (*pageAnswer, error) {
	status, resp, err := c.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := c.Check(op, status, resp); err != nil {
		return nil, err
	}
	var p pageAnswer
	if err := json.Unmarshal(resp, &p); err != nil {
		return nil, fmt.Errorf("decode %s of cluster %s: %w", op, c.name, err)
	}
	if p.Shards.Failed > 0 || p.Shards.Successful < p.Shards.Total || p.TimedOut {
		// A partial page would silently drop documents: refuse it as the engine would refuse
		// the request (503, Retryable), naming the first cause.
		se := &StatusError{Cluster: c.name, Op: op, Status: 503, Type: "search_phase_execution_exception",
			Reason: fmt.Sprintf("%d of %d shards answered (timed out: %t)", p.Shards.Successful, p.Shards.Total, p.TimedOut)}
		if len(p.Shards.Failures) > 0 {
			if f := p.Shards.Failures[0]; f.Reason != nil {
				se.Reason += fmt.Sprintf("; shard %d of %s: %s: %s", f.Shard, f.Index, f.Reason.Type, f.Reason.fullReason())
			}
		}
		se.Class = Classify(se.Status, se.Type, op)
		return &p, se
	}
	return &p, nil
}

// hits appends the page's documents to dst; each must have an id and a version (version:
// true was asked, and versions start at 1).
func (p *pageAnswer) hits(dst []Hit) ([]Hit, error) {
	for i, h := range p.Hits.Hits {
		if h.ID == "" || h.Version <= 0 {
			return nil, fmt.Errorf("hit %d has no _id or _version", i)
		}
		dst = append(dst, Hit{ID: h.ID, Version: h.Version, Source: h.Source})
	}
	return dst, nil
}

// shardDoc is a hit's sort values under a sort on _shard_doc (or _doc): one integer, read
// without allocating (one hit in a page needs it, every hit has it).
type shardDoc struct {
	value int64
	ok    bool
}

func (d *shardDoc) UnmarshalJSON(b []byte) error {
	v, ok := bytes.CutPrefix(bytes.TrimSpace(b), []byte("["))
	if v, ok2 := bytes.CutSuffix(v, []byte("]")); ok && ok2 {
		if n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64); err == nil {
			*d = shardDoc{value: n, ok: true}
			return nil
		}
	}
	return fmt.Errorf("sort values %.100s: want one integer", b)
}

// truncate shortens an unexpected answer for an error message.
func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// scanMget is the fast path of Get's answer, as scanBulkResponse is for _bulk: the found
// documents' ids, versions and _source (a slice of body, checked once as JSON), without
// reflection or a second pass over each source. ok is false for anything it does not expect
// (an escaped id, a document with an error, a malformed answer): Get then decodes the answer
// with encoding/json, so this path can make the read cheaper, never change what it means.
func scanMget(body []byte) (hits []Hit, ok bool) {
	s := scanner{b: body}
	if !s.consume('{') {
		return nil, false
	}
	seen := false
	for {
		key, ok := s.raw()
		if !ok || !s.consume(':') {
			return nil, false
		}
		if string(key) == "docs" {
			if seen || !s.consume('[') {
				return nil, false
			}
			seen = true
			if !s.consume(']') {
				for {
					h, found, ok := s.mgetDoc()
					if !ok {
						return nil, false
					}
					if found {
						hits = append(hits, h)
					}
					if s.consume(',') {
						continue
					}
					if !s.consume(']') {
						return nil, false
					}
					break
				}
			}
		} else if !s.skip(0) {
			return nil, false
		}
		if s.consume(',') {
			continue
		}
		if !s.consume('}') {
			return nil, false
		}
		return hits, seen && s.end()
	}
}

// mgetDoc reads one entry of an _mget answer's docs.
func (s *scanner) mgetDoc() (h Hit, found, ok bool) {
	if !s.consume('{') || s.consume('}') {
		return h, false, false
	}
	for {
		key, ok := s.raw()
		if !ok || !s.consume(':') {
			return h, false, false
		}
		switch string(key) {
		case "_id":
			id, ok := s.raw()
			if !ok {
				return h, false, false
			}
			h.ID = string(id)
		case "_version":
			if h.Version, ok = s.int(); !ok {
				return h, false, false
			}
		case "found":
			s.ws()
			switch {
			case s.literal("true"):
				found = true
			case s.literal("false"):
			default:
				return h, false, false
			}
		case "_source":
			s.ws()
			start := s.i
			if !s.skip(0) {
				return h, false, false
			}
			h.Source = s.b[start:s.i]
		case "error":
			return h, false, false
		default:
			if !s.skip(0) {
				return h, false, false
			}
		}
		if s.consume(',') {
			continue
		}
		return h, found, s.consume('}') && h.ID != ""
	}
}
