package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// scriptedCluster is a hand-written search server for reads that take several requests: GET /
// answers root, and each "METHOD /path" answers its scripted answers in order (the last one
// repeats). It records every other request with its query and body.
type scriptedCluster struct {
	*httptest.Server
	mu      sync.Mutex
	answers map[string][]fakeAnswer
	reqs    []scriptedRequest
}

type scriptedRequest struct {
	route string // "METHOD /path"
	query url.Values
	body  []byte
}

func newScriptedCluster(t *testing.T, root string, answers map[string][]fakeAnswer) *scriptedCluster {
	t.Helper()
	rootBody := golden(t, root)
	s := &scriptedCluster{answers: answers}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Both flavors get the header: OpenSearch clients add it themselves (productShim).
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			w.Write(rootBody)
			return
		}
		body, _ := io.ReadAll(r.Body)
		route := r.Method + " " + r.URL.Path
		s.mu.Lock()
		s.reqs = append(s.reqs, scriptedRequest{route, r.URL.Query(), body})
		a := fakeAnswer{http.StatusNotFound, []byte(`{"error":"no route ` + route + `","status":404}`)}
		if list := s.answers[route]; len(list) > 0 {
			a = list[0]
			if len(list) > 1 {
				s.answers[route] = list[1:]
			}
		}
		s.mu.Unlock()
		w.WriteHeader(a.status)
		w.Write(a.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scriptedCluster) client(t *testing.T) *Client {
	t.Helper()
	c, err := New(Options{Name: "fake", URLs: []string{s.URL}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func (s *scriptedCluster) requests() []scriptedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]scriptedRequest(nil), s.reqs...)
}

func (s *scriptedCluster) routes() []string {
	var routes []string
	for _, r := range s.requests() {
		routes = append(routes, r.route)
	}
	return routes
}

// jsonOf decodes a recorded body for comparison.
func jsonOf(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return m
}

func answer(status int, body string) []fakeAnswer { return []fakeAnswer{{status, []byte(body)}} }

const okShards = `"timed_out":false,"_shards":{"total":3,"successful":3,"skipped":0,"failed":0}`

// collect is a Scan callback that copies each page, as a caller that keeps hits must.
func collect(pages *[][]Hit) func([]Hit) error {
	return func(hits []Hit) error {
		*pages = append(*pages, append([]Hit(nil), hits...))
		return nil
	}
}

// TestScanSearchesAfterTheLastHitAndClosesTheLatestPointInTime prevents an Elasticsearch scan
// from re-reading or skipping a page, and from leaking its point-in-time: every page searches
// the newest pit id after the last hit's _shard_doc, and that id is closed at the end.
func TestScanSearchesAfterTheLastHitAndClosesTheLatestPointInTime(t *testing.T) {
	s := newScriptedCluster(t, "root-es8.json", map[string][]fakeAnswer{
		"POST /idx/_pit": answer(200, `{"id":"pit-1"}`),
		"POST /_search": {
			{200, []byte(`{"pit_id":"pit-2",` + okShards + `,"hits":{"hits":[
				{"_index":"idx","_id":"a","_version":7,"_score":null,"sort":[0]},
				{"_index":"idx","_id":"b","_version":8,"_score":null,"sort":[4294967296]}]}}`)},
			{200, []byte(`{"pit_id":"pit-3",` + okShards + `,"hits":{"hits":[
				{"_index":"idx","_id":"c","_version":9,"_score":null,"sort":[8589934592]}]}}`)},
		},
		"DELETE /_pit": answer(200, `{"succeeded":true,"num_freed":3}`),
	})
	var pages [][]Hit
	if err := s.client(t).Scan(context.Background(), "idx", 2, false, collect(&pages)); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	want := [][]Hit{{{ID: "a", Version: 7}, {ID: "b", Version: 8}}, {{ID: "c", Version: 9}}}
	if !reflect.DeepEqual(pages, want) {
		t.Fatalf("pages = %+v, want %+v (a short page is the last)", pages, want)
	}
	reqs := s.requests()
	if got := s.routes(); !reflect.DeepEqual(got, []string{"POST /idx/_pit", "POST /_search", "POST /_search", "DELETE /_pit"}) {
		t.Fatalf("requests = %v", got)
	}
	if ka := reqs[0].query.Get("keep_alive"); ka != "300s" {
		t.Errorf("open keep_alive = %q, want 300s", ka)
	}
	first := jsonOf(t, reqs[1].body)
	wantFirst := map[string]any{"size": 2.0, "version": true, "_source": false, "track_total_hits": false,
		"sort": []any{"_shard_doc"}, "pit": map[string]any{"id": "pit-1", "keep_alive": "300s"}}
	if !reflect.DeepEqual(first, wantFirst) {
		t.Errorf("first search = %v, want %v", first, wantFirst)
	}
	if p := reqs[1].query.Get("allow_partial_search_results"); p != "false" {
		t.Errorf("allow_partial_search_results = %q, want false: a partial page loses documents", p)
	}
	second := jsonOf(t, reqs[2].body)
	if pit := second["pit"].(map[string]any)["id"]; pit != "pit-2" || !reflect.DeepEqual(second["search_after"], []any{4294967296.0}) {
		t.Errorf("second search: pit %v search_after %v, want pit-2 after [4294967296]", pit, second["search_after"])
	}
	if closed := jsonOf(t, reqs[3].body); closed["id"] != "pit-3" {
		t.Errorf("closed %v, want the latest id pit-3", closed)
	}
}

// TestScanOnOpenSearchScrollsByDocAndClearsTheScroll prevents an OpenSearch scan from
// depending on _shard_doc (OpenSearch 2 has none) or leaking its scroll.
func TestScanOnOpenSearchScrollsByDocAndClearsTheScroll(t *testing.T) {
	s := newScriptedCluster(t, "root-os2.json", map[string][]fakeAnswer{
		"POST /idx/_search": answer(200, `{"_scroll_id":"s1",`+okShards+`,"hits":{"total":{"value":3},"hits":[
			{"_index":"idx","_id":"a","_version":7,"_source":{"t":"A"},"sort":[0]},
			{"_index":"idx","_id":"b","_version":8,"_source":{"t":"\"B\""},"sort":[1]}]}}`),
		"POST /_search/scroll": {
			{200, []byte(`{"_scroll_id":"s2",` + okShards + `,"hits":{"hits":[
				{"_index":"idx","_id":"c","_version":9,"_source":{},"sort":[0]}]}}`)},
			{200, []byte(`{"_scroll_id":"s2",` + okShards + `,"hits":{"hits":[]}}`)},
		},
		"DELETE /_search/scroll": answer(200, `{"succeeded":true,"num_freed":3}`),
	})
	var pages [][]Hit
	if err := s.client(t).Scan(context.Background(), "idx", 2, true, collect(&pages)); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	want := [][]Hit{
		{{ID: "a", Version: 7, Source: []byte(`{"t":"A"}`)}, {ID: "b", Version: 8, Source: []byte(`{"t":"\"B\""}`)}},
		{{ID: "c", Version: 9, Source: []byte(`{}`)}},
	}
	if !reflect.DeepEqual(pages, want) {
		t.Fatalf("pages = %+v, want %+v", pages, want)
	}
	reqs := s.requests()
	if got := s.routes(); !reflect.DeepEqual(got, []string{"POST /idx/_search", "POST /_search/scroll", "POST /_search/scroll", "DELETE /_search/scroll"}) {
		t.Fatalf("requests = %v", got)
	}
	if sc := reqs[0].query.Get("scroll"); sc != "300000ms" {
		t.Errorf("scroll = %q, want 300000ms", sc)
	}
	first := jsonOf(t, reqs[0].body)
	if want := map[string]any{"size": 2.0, "version": true, "_source": true, "sort": []any{"_doc"}}; !reflect.DeepEqual(first, want) {
		t.Errorf("first search = %v, want %v (a scroll refuses track_total_hits: false)", first, want)
	}
	if next := jsonOf(t, reqs[2].body); next["scroll_id"] != "s2" || next["scroll"] != "300s" {
		t.Errorf("second scroll = %v, want the latest id s2 kept alive 300s", next)
	}
	if cleared := jsonOf(t, reqs[3].body); !reflect.DeepEqual(cleared["scroll_id"], []any{"s2"}) {
		t.Errorf("cleared %v, want [s2]", cleared)
	}
}

// TestScanReleasesThePointInTimeOnError prevents a failed scan from leaving its view open: a
// failing fn, a page with a failed shard (which would otherwise silently lose that shard's
// documents) and a refused search all close the point-in-time, and the scan's own error wins.
func TestScanReleasesThePointInTimeOnError(t *testing.T) {
	errFn := errors.New("fn failed")
	page := `{"pit_id":"pit-1",` + okShards + `,"hits":{"hits":[{"_id":"a","_version":7,"sort":[0]}]}}`
	for _, tc := range []struct {
		name   string
		search string
		status int
		fn     error
		check  func(error) bool
	}{
		{"fn fails", page, 200, errFn, func(err error) bool { return errors.Is(err, errFn) }},
		{"a shard failed", `{"pit_id":"pit-1","timed_out":false,"_shards":{"total":3,"successful":2,"failed":1,
			"failures":[{"shard":1,"index":"idx","reason":{"type":"node_closed_exception","reason":"node closed"}}]},
			"hits":{"hits":[{"_id":"a","_version":7,"sort":[0]}]}}`, 200, nil,
			func(err error) bool {
				var se *StatusError
				return errors.As(err, &se) && se.Class == Retryable && strings.Contains(se.Reason, "node closed")
			}},
		{"search refused", `{"error":{"type":"search_phase_execution_exception","reason":"all shards failed"},"status":503}`, 503, nil,
			func(err error) bool { return ClassOf(err) == Retryable }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScriptedCluster(t, "root-es7.json", map[string][]fakeAnswer{
				"POST /idx/_pit": answer(200, `{"id":"pit-1"}`),
				"POST /_search":  answer(tc.status, tc.search),
				// Closing fails too: the scan's error is the one returned.
				"DELETE /_pit": answer(500, `{"error":{"type":"exception","reason":"close failed"},"status":500}`),
			})
			calls := 0
			err := s.client(t).Scan(context.Background(), "idx", 1, false, func([]Hit) error {
				calls++
				return tc.fn
			})
			if !tc.check(err) {
				t.Fatalf("Scan: err = %v", err)
			}
			if tc.fn == nil && calls != 0 {
				t.Errorf("fn called %d times with a page that is not whole", calls)
			}
			if got := s.routes(); got[len(got)-1] != "DELETE /_pit" {
				t.Errorf("requests = %v, want the point-in-time closed last", got)
			}
		})
	}
}

// TestScanClearsTheScrollOfARefusedPartialPage prevents a scroll opened on the shards that
// did answer from staying open when its first page is refused for the ones that did not.
func TestScanClearsTheScrollOfARefusedPartialPage(t *testing.T) {
	s := newScriptedCluster(t, "root-os2.json", map[string][]fakeAnswer{
		"POST /idx/_search": answer(200, `{"_scroll_id":"s1","timed_out":false,"_shards":{"total":3,"successful":2,"failed":1},
			"hits":{"hits":[{"_id":"a","_version":7,"sort":[0]}]}}`),
		"DELETE /_search/scroll": answer(200, `{"succeeded":true,"num_freed":2}`),
	})
	err := s.client(t).Scan(context.Background(), "idx", 10, false, func([]Hit) error {
		t.Error("fn called with a partial page")
		return nil
	})
	if ClassOf(err) != Retryable {
		t.Fatalf("Scan: err = %v, want a retryable error", err)
	}
	reqs := s.requests()
	if last := reqs[len(reqs)-1]; last.route != "DELETE /_search/scroll" || !reflect.DeepEqual(jsonOf(t, last.body)["scroll_id"], []any{"s1"}) {
		t.Errorf("last request %s %s, want s1 cleared", last.route, last.body)
	}
}

// TestScanReportsAFailedReleaseButNotAnExpiredView prevents a leaked view from going unnoticed,
// while an already expired one (404) is no error.
func TestScanReportsAFailedReleaseButNotAnExpiredView(t *testing.T) {
	for status, wantErr := range map[int]bool{500: true, 404: false} {
		s := newScriptedCluster(t, "root-os2.json", map[string][]fakeAnswer{
			"POST /idx/_search":      answer(200, `{"_scroll_id":"s1",`+okShards+`,"hits":{"hits":[]}}`),
			"DELETE /_search/scroll": answer(status, `{"succeeded":false,"num_freed":0}`),
		})
		err := s.client(t).Scan(context.Background(), "idx", 10, false, func([]Hit) error { return nil })
		if (err != nil) != wantErr {
			t.Errorf("clear scroll answered %d: err = %v, want error %t", status, err, wantErr)
		}
	}
}

// TestScanOfAMissingIndexIsARetryableStatusError prevents a missing index from reading as an
// empty one; nothing was opened, so nothing is released.
func TestScanOfAMissingIndexIsARetryableStatusError(t *testing.T) {
	const missing = `{"error":{"type":"index_not_found_exception","reason":"no such index [idx]"},"status":404}`
	for root, route := range map[string]string{"root-es8.json": "POST /idx/_pit", "root-os2.json": "POST /idx/_search"} {
		s := newScriptedCluster(t, root, map[string][]fakeAnswer{route: answer(404, missing)})
		err := s.client(t).Scan(context.Background(), "idx", 10, false, func([]Hit) error {
			t.Error("fn called for a missing index")
			return nil
		})
		var se *StatusError
		if !errors.As(err, &se) || se.Status != 404 || se.Type != "index_not_found_exception" || se.Class != Retryable {
			t.Errorf("%s: err = %v, want a retryable 404 index_not_found_exception", root, err)
		}
		if got := s.routes(); len(got) != 1 {
			t.Errorf("%s: requests = %v, want only %s", root, got, route)
		}
	}
}

// TestGetReturnsOnlyFoundDocuments prevents an absent document from reading as present, and a
// source from being fetched when not asked for.
func TestGetReturnsOnlyFoundDocuments(t *testing.T) {
	s := newScriptedCluster(t, "root-es8.json", map[string][]fakeAnswer{
		"POST /idx/_mget": answer(200, `{"docs":[
			{"_index":"idx_v1","_id":"a","_version":7,"_seq_no":0,"_primary_term":1,"found":true,"_source":{"t":"A"}},
			{"_index":"idx_v1","_id":"zz","found":false}]}`),
	})
	got, err := s.client(t).Get(context.Background(), "idx", []string{"a", "zz"}, true)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if want := map[string]Hit{"a": {ID: "a", Version: 7, Source: []byte(`{"t":"A"}`)}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Get = %+v, want %+v", got, want)
	}
	reqs := s.requests()
	if body := jsonOf(t, reqs[0].body); !reflect.DeepEqual(body, map[string]any{"ids": []any{"a", "zz"}}) {
		t.Errorf("mget body = %v", body)
	}
	if _, ok := reqs[0].query["_source"]; ok {
		t.Errorf("_source = %q asked with source", reqs[0].query.Get("_source"))
	}

	if _, err := s.client(t).Get(context.Background(), "idx", []string{"a"}, false); err != nil {
		t.Fatalf("Get without source: %v", err)
	}
	if src := s.requests()[1].query.Get("_source"); src != "false" {
		t.Errorf("_source = %q without source, want false", src)
	}

	n := len(s.requests())
	if got, err := s.client(t).Get(context.Background(), "idx", nil, true); err != nil || len(got) != 0 || len(s.requests()) != n {
		t.Errorf("Get of no ids = %v, %v after %d requests, want empty without a request", got, err, len(s.requests())-n)
	}
}

// TestGetOfAMissingIndexIsARetryableStatusError prevents a missing index from reading as
// "every document absent": _mget answers 200 and names the error per document.
func TestGetOfAMissingIndexIsARetryableStatusError(t *testing.T) {
	s := newScriptedCluster(t, "root-es7.json", map[string][]fakeAnswer{
		"POST /idx/_mget": answer(200, `{"docs":[{"_index":"idx","_type":null,"_id":"a","error":{
			"root_cause":[{"type":"index_not_found_exception","reason":"no such index [idx]"}],
			"type":"index_not_found_exception","reason":"no such index [idx]","index":"idx"}}]}`),
	})
	got, err := s.client(t).Get(context.Background(), "idx", []string{"a"}, false)
	var se *StatusError
	if !errors.As(err, &se) || se.Type != "index_not_found_exception" || se.Class != Retryable || se.Cluster != "fake" || got != nil {
		t.Fatalf("Get = %v, %v; want a retryable index_not_found_exception *StatusError", got, err)
	}
}

// TestCountOfAMissingIndexIsAnError prevents a missing index from counting as empty.
func TestCountOfAMissingIndexIsAnError(t *testing.T) {
	s := newScriptedCluster(t, "root-es8.json", map[string][]fakeAnswer{
		"POST /idx/_count":  answer(200, `{"count":12000,"_shards":{"total":3,"successful":3,"skipped":0,"failed":0}}`),
		"POST /gone/_count": answer(404, `{"error":{"type":"index_not_found_exception","reason":"no such index [gone]"},"status":404}`),
	})
	c := s.client(t)
	if n, err := c.Count(context.Background(), "idx"); err != nil || n != 12000 {
		t.Errorf("Count = %d, %v; want 12000", n, err)
	}
	_, err := c.Count(context.Background(), "gone")
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 404 || se.Class != Retryable {
		t.Errorf("Count of a missing index: err = %v, want a retryable 404 *StatusError", err)
	}
}

// BenchmarkScanPageDecode measures the client's share of a scan: decoding one page of 1,000
// hits with their sources.
func BenchmarkScanPageDecode(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"pit_id":"p",` + okShards + `,"hits":{"hits":[`)
	for i := range 1000 {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"_index":"idx","_id":"doc-%05d","_version":%d,"_score":null,"_source":{"id":"doc-%05d","title":"Program %d","wye_version":%d,"updated_at":"2024-05-01T12:00:00Z"},"sort":[%d]}`,
			i, 281505000000000+i, i, i, 281505000000000+i, i)
	}
	sb.WriteString(`]}}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var hits []Hit
	for b.Loop() {
		var p pageAnswer
		if err := json.Unmarshal(body, &p); err != nil {
			b.Fatal(err)
		}
		var err error
		if hits, err = p.hits(hits[:0]); err != nil || len(hits) != 1000 {
			b.Fatal(err)
		}
	}
}

// TestMgetFastPathAgreesWithEncodingJSON prevents the fast path of Get from reading an answer
// differently than encoding/json would: every answer it accepts gives the same hits, and the
// answers it cannot read (an escaped id, an error entry) are left to encoding/json.
func TestMgetFastPathAgreesWithEncodingJSON(t *testing.T) {
	answers := []string{
		`{"docs":[{"_index":"p_v1","_type":"_doc","_id":"1","_version":281479271677952,"_seq_no":3,"_primary_term":1,"found":true,"_source":{"id":1,"t":"a \"q\" \u00e9","n":[1,2,{"x":null}]}},{"_index":"p_v1","_id":"2","found":false}]}`,
		`{ "docs" : [ ] }`,
		`{"docs":[{"_index":"p","_id":"x","_version":1,"found":true,"_source":{}}],"extra":{"a":[1]}}`,
	}
	for _, a := range answers {
		fast, ok := scanMget([]byte(a))
		if !ok {
			t.Fatalf("fast path refused %s", a)
		}
		var slow struct {
			Docs []struct {
				ID      string          `json:"_id"`
				Version int64           `json:"_version"`
				Found   bool            `json:"found"`
				Source  json.RawMessage `json:"_source"`
			} `json:"docs"`
		}
		if err := json.Unmarshal([]byte(a), &slow); err != nil {
			t.Fatal(err)
		}
		var want []Hit
		for _, d := range slow.Docs {
			if d.Found {
				want = append(want, Hit{ID: d.ID, Version: d.Version, Source: d.Source})
			}
		}
		if len(fast) != len(want) {
			t.Fatalf("%s: fast %d hits, encoding/json %d", a, len(fast), len(want))
		}
		for i := range want {
			if fast[i].ID != want[i].ID || fast[i].Version != want[i].Version || string(fast[i].Source) != string(want[i].Source) {
				t.Errorf("%s: fast %+v, encoding/json %+v", a, fast[i], want[i])
			}
		}
	}
	for _, a := range []string{
		`{"docs":[{"_index":"p","_id":"a\"b","found":true,"_source":{}}]}`,
		`{"docs":[{"_index":"p","_id":"1","error":{"type":"index_not_found_exception","reason":"no such index"}}]}`,
		`{"docs":[{"_id":"1","found":true,"_source":{"a":}}]}`,
		`{"docs":[]`,
	} {
		if _, ok := scanMget([]byte(a)); ok {
			t.Errorf("fast path accepted %s", a)
		}
	}
}

func BenchmarkMgetAnswerOf1000Documents(b *testing.B) {
	var body bytes.Buffer
	body.WriteString(`{"docs":[`)
	for i := range 1000 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"_index":"programs_v1","_type":"_doc","_id":"%d","_version":281479271677952,"_seq_no":%d,"_primary_term":1,"found":true,"_source":{"channel":{"id":3,"name":"Arte","network":{"id":1,"name":"ARD"}},"episodes":[{"id":1,"number":1,"episode_title":"Pilot"},{"id":2,"number":2,"episode_title":"Two"}],"id":%d,"title":"A program title number %d","rating":4.5,"tags":[{"id":1,"name":"drama"}],"wye_version":281479271677952}}`, i, i, i, i)
	}
	body.WriteString(`]}`)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, ok := scanMget(body.Bytes()); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var res struct {
				Docs []struct {
					ID      string          `json:"_id"`
					Version int64           `json:"_version"`
					Found   bool            `json:"found"`
					Source  json.RawMessage `json:"_source"`
				} `json:"docs"`
			}
			if err := json.Unmarshal(body.Bytes(), &res); err != nil {
				b.Fatal(err)
			}
		}
	})
}
