package es

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/indexer"
)

// testCluster is one cluster of a test fan-out.
type testCluster struct {
	Name    string
	Client  Bulker
	Timeout time.Duration
}

// fanOpts set up the streaming policy over one Writer per cluster, as cmd/wye does.
type fanOpts struct {
	Roles         indexer.Roles
	Ledger        indexer.Ledger
	Backlog       int
	SlaveInFlight int
	Resolver      *fakeResolver // nil: no resolver
	TTL           time.Duration
	Targets       []testCluster
}

func fan(o fanOpts) *indexer.Stream {
	var ws []indexer.ClusterWriter
	for _, t := range o.Targets {
		var res IndexResolver
		if o.Resolver != nil {
			res = clusterResolver{o.Resolver, t.Name}
		}
		ws = append(ws, New(Options{Name: t.Name, Client: t.Client, Timeout: t.Timeout, Resolver: res, IndicesTTL: o.TTL}))
	}
	return indexer.NewStream(indexer.StreamOptions{Clusters: ws, Roles: o.Roles, Ledger: o.Ledger,
		Backlog: o.Backlog, SlaveInFlight: o.SlaveInFlight})
}

type fixedRoles string

func (r fixedRoles) Master() (string, int64) { return string(r), 0 }

// memLedger records what a slave missed.
type memLedger struct {
	mu  sync.Mutex
	ids map[string][]string // cluster -> "id:class"
}

func (l *memLedger) Record(_ context.Context, cl string, ms []indexer.Missed) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range ms {
		l.ids[cl] = append(l.ids[cl], m.ID+":"+m.Class)
	}
	return nil
}

func (l *memLedger) get(cl string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ids[cl]...)
}

// fakeES answers GET / as Elasticsearch 7.17 and _bulk with bulk(), counting bodies.
func fakeES(t *testing.T, bulk func(w http.ResponseWriter, r *http.Request, body string)) *httptest.Server {
	root, err := os.ReadFile("../../cluster/testdata/root-es7.json")
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		if r.URL.Path == "/" {
			w.Write(root)
			return
		}
		b := make([]byte, r.ContentLength)
		r.Body.Read(b)
		bulk(w, r, string(b))
	}))
	t.Cleanup(s.Close)
	return s
}

func client(t *testing.T, name, url string) *cluster.Client {
	c, err := cluster.New(cluster.Options{Name: name, URLs: []string{url}, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// okBulk answers every action of the body: 201, or the status given for an id.
func okBulk(special map[string]string) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, _ *http.Request, body string) {
		var items []string
		for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
			if !strings.HasPrefix(line, `{"index"`) && !strings.HasPrefix(line, `{"delete"`) {
				continue
			}
			id := line[strings.Index(line, `"_id":"`)+7:]
			id = id[:strings.Index(id, `"`)]
			if s, ok := special[id]; ok {
				items = append(items, s)
				continue
			}
			items = append(items, fmt.Sprintf(`{"index":{"_index":"p","_id":%q,"_version":1,"result":"created","status":201}}`, id))
		}
		fmt.Fprintf(w, `{"took":1,"errors":true,"items":[%s]}`, strings.Join(items, ","))
	}
}

func docs(n int) []indexer.Doc {
	out := make([]indexer.Doc, n)
	for i := range out {
		out[i] = indexer.Doc{Entity: "program", Index: "programs", ID: fmt.Sprint(i), Key: indexer.Value(fmt.Sprint(i)),
			Version: int64(100 + i), Source: []byte(fmt.Sprintf(`{"id":%d}`, i))}
	}
	return out
}

func TestHangingSlaveNeverDelaysTheMaster(t *testing.T) {
	release := make(chan struct{})
	hanging := fakeES(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		select { // a slave that accepts the connection and never answers
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	master := fakeES(t, okBulk(map[string]string{
		"1": `{"index":{"_id":"1","status":400,"error":{"type":"strict_dynamic_mapping_exception","reason":"mapping set to strict, dynamic introduction of [x] is not allowed"}}}`,
		"2": `{"index":{"_id":"2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"current version [200] is higher"}}}`,
		"3": `{"index":{"_id":"3","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected"}}}`,
	}))
	ledger := &memLedger{ids: map[string][]string{}}
	f := fan(fanOpts{Roles: fixedRoles("es7"), Ledger: ledger, Backlog: 1, Targets: []testCluster{
		{Name: "es7", Client: client(t, "es7", master.URL), Timeout: 5 * time.Second},
		{Name: "dead", Client: client(t, "dead", hanging.URL), Timeout: 4 * time.Second},
	}})
	ctx := t.Context()
	f.Start(ctx)

	start := time.Now()
	for range 5 { // more batches than the slave's backlog holds
		decider, res, err := f.Write(ctx, docs(4), "")
		if err != nil || decider != "es7" {
			t.Fatalf("Write: %q %v", decider, err)
		}
		want := []indexer.Class{indexer.OK, indexer.Permanent, indexer.Stale, indexer.Retryable}
		for i, r := range res {
			if r.Class != want[i] {
				t.Errorf("doc %d: class %v, want %v (%+v)", i, r.Class, want[i], r)
			}
		}
		if !strings.Contains(res[1].Reason, "mapping set to strict") || res[1].Status != 400 {
			t.Errorf("permanent result lost its reason: %+v", res[1])
		}
	}
	// A master that waited for the slave would take its 4 s timeout per write, 20 s for the
	// five; the bound is far from that and from 0, so machine noise cannot decide it.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("5 master writes took %v with a hanging slave (its timeout is 4s); the master waited", d)
	}
	// The slave's misses (timeouts and backlog drops) all reach the ledger.
	deadline := time.Now().Add(30 * time.Second) // beyond two rounds of the slave's 4 s timeout
	for len(ledger.get("dead")) < 20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := ledger.get("dead"); len(got) != 20 {
		t.Errorf("ledger for the dead slave holds %d ids, want all 20: %v", len(got), got)
	}
	if got := ledger.get("es7"); len(got) != 0 {
		t.Errorf("master failures went to the ledger: %v", got)
	}
	stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f.Stop(stop)
}

func TestBodyIsExternallyVersionedAndDeletesHaveNoSource(t *testing.T) {
	d := docs(2)
	d[1].Source = nil
	b, err := Body(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"index":{"_index":"programs","_id":"0","version":100,"version_type":"external"}}` + "\n" + `{"id":0}` + "\n" +
		`{"delete":{"_index":"programs","_id":"1","version":101,"version_type":"external"}}` + "\n"
	if string(b) != want {
		t.Errorf("body:\n%s\nwant:\n%s", b, want)
	}
}

func TestTooLargeBodyIsSplitNotParked(t *testing.T) {
	var requests int
	var mu sync.Mutex
	limited := fakeES(t, func(w http.ResponseWriter, r *http.Request, body string) {
		mu.Lock()
		requests++
		mu.Unlock()
		if strings.Count(body, `"version_type"`) > 2 {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		okBulk(nil)(w, r, body)
	})
	f := fan(fanOpts{Roles: fixedRoles("es7"), Targets: []testCluster{{Name: "es7", Client: client(t, "es7", limited.URL), Timeout: 5 * time.Second}}})
	_, res, err := f.Write(t.Context(), docs(7), "")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Class != indexer.OK {
			t.Errorf("doc %d: %+v, want ok after splitting", i, r)
		}
	}
	if len(res) != 7 || requests < 5 {
		t.Errorf("%d results after %d requests", len(res), requests)
	}
}

// TestRetryForADemotedMasterGoesToTheCurrentMaster prevents retries from pinning a promoted
// fleet to its old master: a retry targeted at es7 after es8 became the master must be
// decided by es8, and es7 (now a slave) must not be written synchronously.
func TestRetryForADemotedMasterGoesToTheCurrentMaster(t *testing.T) {
	var oldHits, newHits atomic.Int32
	old := fakeES(t, func(w http.ResponseWriter, r *http.Request, body string) {
		oldHits.Add(1)
		okBulk(nil)(w, r, body)
	})
	current := fakeES(t, func(w http.ResponseWriter, r *http.Request, body string) {
		newHits.Add(1)
		okBulk(nil)(w, r, body)
	})
	f := fan(fanOpts{Roles: fixedRoles("es8"), Targets: []testCluster{
		{Name: "es7", Client: client(t, "es7", old.URL), Timeout: 5 * time.Second},
		{Name: "es8", Client: client(t, "es8", current.URL), Timeout: 5 * time.Second},
	}})
	ctx := t.Context()
	f.Start(ctx)
	defer func() {
		stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.Stop(stop)
	}()

	decider, res, err := f.Write(ctx, docs(2), "es7")
	if err != nil || decider != "es8" {
		t.Fatalf("Write(retry for es7) decided by %q, %v; want the current master es8", decider, err)
	}
	for i, r := range res {
		if r.Class != indexer.OK {
			t.Errorf("doc %d: class %v", i, r.Class)
		}
	}
	if oldHits.Load() != 0 || newHits.Load() != 1 {
		t.Errorf("bulk requests: demoted es7 %d, master es8 %d; want 0 and 1", oldHits.Load(), newHits.Load())
	}
}

// TestMergedSlaveBatchesRecordEachFailedDocOnce: a slave that fell behind sends the waiting
// batches as one request, with at most SlaveInFlight requests in flight; every document's
// own result still decides whether it reaches the ledger, once, with its class.
func TestMergedSlaveBatchesRecordEachFailedDocOnce(t *testing.T) {
	release := make(chan struct{})
	var inFlight, maxInFlight atomic.Int32
	var mu sync.Mutex
	var sizes []int
	answer := okBulk(map[string]string{
		"1":  `{"index":{"_id":"1","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}`,
		"13": `{"index":{"_id":"13","status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}}`,
		"30": `{"index":{"_id":"30","status":409,"error":{"type":"version_conflict_engine_exception","reason":"newer"}}}`,
		"31": `{"index":{"_id":"31","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}`,
	})
	slave := fakeES(t, func(w http.ResponseWriter, r *http.Request, body string) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		mu.Lock()
		sizes = append(sizes, strings.Count(body, `"version_type"`))
		mu.Unlock()
		<-release // every request waits until all batches are queued
		answer(w, r, body)
	})
	master := fakeES(t, okBulk(nil))
	ledger := &memLedger{ids: map[string][]string{}}
	f := fan(fanOpts{Roles: fixedRoles("es7"), Ledger: ledger, Backlog: 16, SlaveInFlight: 2, Targets: []testCluster{
		{Name: "es7", Client: client(t, "es7", master.URL), Timeout: 5 * time.Second},
		{Name: "slave", Client: client(t, "slave", slave.URL), Timeout: 5 * time.Second},
	}})
	ctx := t.Context()
	f.Start(ctx)
	for b := range 8 { // 8 batches of 4: ids 0..31
		batch := docs(32)[b*4 : b*4+4]
		if _, _, err := f.Write(ctx, batch, ""); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for inFlight.Load() < 2 && time.Now().Before(deadline) { // both workers hold a request
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.Stop(stop)

	sameSet(t, "ledger", ledger.get("slave"), "1:permanent", "13:retryable", "31:permanent")
	if m := maxInFlight.Load(); m != 2 {
		t.Errorf("slave had %d requests in flight at most, want 2 (SlaveInFlight)", m)
	}
	mu.Lock()
	defer mu.Unlock()
	total, merged := 0, false
	for _, n := range sizes {
		total += n
		merged = merged || n > 4
	}
	if total != 32 || !merged {
		t.Errorf("slave requests carried %v documents: want 32 in all, some request merging batches", sizes)
	}
}

func sameSet(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// TestOnlyAVerdictOnTheDocumentSpendsAnAttempt prevents an outage from being taken for a
// problem of the documents: a request that failed as a whole (no answer, 5xx, 401) or a write
// block says the cluster took nothing (Unavailable); an item's own error, and a single
// document too large for any request, are verdicts on that document.
func TestOnlyAVerdictOnTheDocumentSpendsAnAttempt(t *testing.T) {
	whole := func(status int) func(http.ResponseWriter, *http.Request, string) {
		return func(w http.ResponseWriter, _ *http.Request, _ string) {
			w.WriteHeader(status)
			w.Write([]byte(`{"error":{"type":"x","reason":"whole request"},"status":` + fmt.Sprint(status) + `}`))
		}
	}
	tests := []struct {
		name        string
		bulk        func(http.ResponseWriter, *http.Request, string)
		docs        int
		unavailable bool
		class       indexer.Class
	}{
		{"503 for the request", whole(503), 2, true, indexer.Retryable},
		{"401 after a key rotation", whole(401), 2, true, indexer.Permanent},
		{"write block on the index", okBulk(map[string]string{
			"0": `{"index":{"_id":"0","status":403,"error":{"type":"cluster_block_exception","reason":"index [programs] blocked by: [FORBIDDEN/8/index write (api)];"}}}`,
		}), 1, true, indexer.Retryable},
		{"item rejected (429)", okBulk(map[string]string{
			"0": `{"index":{"_id":"0","status":429,"error":{"type":"es_rejected_execution_exception","reason":"busy"}}}`,
		}), 1, false, indexer.Retryable},
		{"item refused by the mapping", okBulk(map[string]string{
			"0": `{"index":{"_id":"0","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}`,
		}), 1, false, indexer.Permanent},
		{"one document too large for any request", whole(413), 1, false, indexer.Permanent},
	}
	for _, tt := range tests {
		srv := fakeES(t, tt.bulk)
		w := New(Options{Name: "es7", Client: client(t, "es7", srv.URL), Timeout: 5 * time.Second})
		for i, r := range w.Write(t.Context(), docs(tt.docs)) {
			if r.Unavailable != tt.unavailable || r.Class != tt.class {
				t.Errorf("%s: doc %d: %+v, want class %v, unavailable %v", tt.name, i, r, tt.class, tt.unavailable)
			}
		}
	}
	// Dead cluster: no answer at all.
	srv := fakeES(t, okBulk(nil))
	c := client(t, "es7", srv.URL)
	srv.Close()
	w := New(Options{Name: "es7", Client: c, Timeout: 2 * time.Second})
	if r := w.Write(t.Context(), docs(1))[0]; !r.Unavailable || r.Class != indexer.Retryable {
		t.Errorf("unreachable cluster: %+v, want retryable and unavailable", r)
	}
	// Its indices cannot even be listed: unavailable too; a listing that finds none is not.
	for _, tt := range []struct {
		err         error
		unavailable bool
	}{
		{&cluster.TransportError{Cluster: "es7", Op: "IndicesGetAlias", Err: errors.New("connection refused")}, true},
		{errors.New("list indices of programs: none exists; run `wye mapping apply`"), false},
	} {
		w := New(Options{Name: "es7", Client: c, Resolver: failingResolver{tt.err}})
		if r := w.Write(t.Context(), docs(1))[0]; r.Unavailable != tt.unavailable || r.Class != indexer.Retryable {
			t.Errorf("listing fails with %v: %+v, want retryable, unavailable %v", tt.err, r, tt.unavailable)
		}
	}
}

type failingResolver struct{ err error }

func (f failingResolver) WriteTargets(context.Context, string) ([]Target, error) {
	return nil, f.err
}
