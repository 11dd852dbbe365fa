package es

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wyehq/wye/indexer"
)

// fakeResolver answers the index lookups of every cluster from a table and counts the calls
// per cluster; of(cluster) is that cluster's IndexResolver.
type fakeResolver struct {
	mu      sync.Mutex
	targets map[string][]string // cluster -> indices; missing: no index exists
	calls   map[string]int
}

func (r *fakeResolver) indices(cl, alias string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[cl]++
	names, ok := r.targets[cl]
	if !ok {
		return nil, fmt.Errorf("list indices of %s: none exists", alias)
	}
	return names, nil
}

func (r *fakeResolver) callsOf(cl string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[cl]
}

// clusterResolver is one cluster's view of a fakeResolver.
type clusterResolver struct {
	r       *fakeResolver
	cluster string
}

// WriteTargets marks no index as the alias's: every index decides.
func (c clusterResolver) WriteTargets(_ context.Context, alias string) ([]Target, error) {
	names, err := c.r.indices(c.cluster, alias)
	var out []Target
	for _, n := range names {
		out = append(out, Target{Name: n})
	}
	return out, err
}

var _ IndexResolver = clusterResolver{}

// recordingES keeps every body and answers each action with answer(index, id).
func recordingES(t *testing.T, answer func(index, id string) string) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var bodies []string
	s := fakeES(t, func(w http.ResponseWriter, _ *http.Request, body string) {
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
		var items []string
		for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
			if !strings.HasPrefix(line, `{"index"`) && !strings.HasPrefix(line, `{"delete"`) {
				continue
			}
			index := between(line, `"_index":"`)
			id := between(line, `"_id":"`)
			items = append(items, answer(index, id))
		}
		fmt.Fprintf(w, `{"took":1,"errors":true,"items":[%s]}`, strings.Join(items, ","))
	})
	return s, &bodies
}

func between(s, after string) string {
	s = s[strings.Index(s, after)+len(after):]
	return s[:strings.Index(s, `"`)]
}

func created(index, id string) string {
	return fmt.Sprintf(`{"index":{"_index":%q,"_id":%q,"_version":1,"result":"created","status":201}}`, index, id)
}

func TestVersionBumpWritesEveryTargetIndexTheSameBytesAndVersion(t *testing.T) {
	strictV2 := `{"index":{"_index":"programs_v2","_id":"1","status":400,"error":{"type":"strict_dynamic_mapping_exception","reason":"mapping set to strict"}}}`
	srv, bodies := recordingES(t, func(index, id string) string {
		if index == "programs_v2" && id == "1" {
			return strictV2
		}
		return created(index, id)
	})
	res := &fakeResolver{targets: map[string][]string{"es7": {"programs_v1", "programs_v2"}}, calls: map[string]int{}}
	f := fan(fanOpts{Roles: fixedRoles("es7"), Resolver: res, Targets: []testCluster{{Name: "es7", Client: client(t, "es7", srv.URL), Timeout: 5 * time.Second}}})

	d := docs(3)
	d[2].Source = nil // a delete goes to both too
	_, results, err := f.Write(t.Context(), d, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(*bodies) != 1 {
		t.Fatalf("%d requests, want one _bulk for both indices", len(*bodies))
	}
	lines := strings.Split(strings.TrimSuffix((*bodies)[0], "\n"), "\n")
	want := []string{
		`{"index":{"_index":"programs_v1","_id":"0","version":100,"version_type":"external"}}`, `{"id":0}`,
		`{"index":{"_index":"programs_v2","_id":"0","version":100,"version_type":"external"}}`, `{"id":0}`,
		`{"index":{"_index":"programs_v1","_id":"1","version":101,"version_type":"external"}}`, `{"id":1}`,
		`{"index":{"_index":"programs_v2","_id":"1","version":101,"version_type":"external"}}`, `{"id":1}`,
		`{"delete":{"_index":"programs_v1","_id":"2","version":102,"version_type":"external"}}`,
		`{"delete":{"_index":"programs_v2","_id":"2","version":102,"version_type":"external"}}`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("body:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	// Doc 1 is OK on v1 but refused by v2: it is not written to this cluster.
	if results[0].Class != indexer.OK || results[2].Class != indexer.OK {
		t.Errorf("docs 0 and 2: %+v %+v, want ok", results[0], results[2])
	}
	if r := results[1]; r.Class != indexer.Permanent || !strings.HasPrefix(r.Reason, "programs_v2: ") || r.Status != 400 {
		t.Errorf("doc 1: %+v, want the permanent answer of programs_v2", r)
	}
}

func TestIndexNotFoundForgetsCachedTargetsAndIsRetryable(t *testing.T) {
	var mu sync.Mutex
	gone := false // programs_v1 removed by gc
	srv, _ := recordingES(t, func(index, id string) string {
		mu.Lock()
		defer mu.Unlock()
		if gone && index == "programs_v1" {
			return fmt.Sprintf(`{"index":{"_index":%q,"_id":%q,"status":404,"error":{"type":"index_not_found_exception","reason":"no such index [programs_v1]"}}}`, index, id)
		}
		return created(index, id)
	})
	res := &fakeResolver{targets: map[string][]string{"es7": {"programs_v1", "programs_v2"}}, calls: map[string]int{}}
	f := fan(fanOpts{Roles: fixedRoles("es7"), Resolver: res, TTL: time.Hour,
		Targets: []testCluster{{Name: "es7", Client: client(t, "es7", srv.URL), Timeout: 5 * time.Second}}})
	write := func() indexer.Class {
		t.Helper()
		_, r, err := f.Write(t.Context(), docs(1), "")
		if err != nil {
			t.Fatal(err)
		}
		return r[0].Class
	}
	write()
	write()
	if n := res.callsOf("es7"); n != 1 {
		t.Fatalf("%d resolutions for two writes within the TTL, want 1", n)
	}
	mu.Lock()
	gone = true
	mu.Unlock()
	res.mu.Lock()
	res.targets["es7"] = []string{"programs_v2"}
	res.mu.Unlock()
	if c := write(); c != indexer.Retryable {
		t.Errorf("write to a vanished target: %v, want retryable (the document is fine)", c)
	}
	if c := write(); c != indexer.OK {
		t.Errorf("write after index_not_found: %v, want ok on the re-resolved targets", c)
	}
	if n := res.callsOf("es7"); n != 2 {
		t.Errorf("%d resolutions, want 2: index_not_found must forget the cache", n)
	}
}

func TestNoWriteTargetsIsRetryableOnTheMasterAndLedgeredOnSlaves(t *testing.T) {
	var mu sync.Mutex
	requests := map[string]int{}
	bulk := func(name string) func(http.ResponseWriter, *http.Request, string) {
		return func(w http.ResponseWriter, r *http.Request, body string) {
			mu.Lock()
			requests[name]++
			mu.Unlock()
			okBulk(nil)(w, r, body)
		}
	}
	master, slave := fakeES(t, bulk("es7")), fakeES(t, bulk("es8"))
	res := &fakeResolver{targets: map[string][]string{}, calls: map[string]int{}} // no index anywhere
	ledger := &memLedger{ids: map[string][]string{}}
	f := fan(fanOpts{Roles: fixedRoles("es7"), Resolver: res, Ledger: ledger, Targets: []testCluster{
		{Name: "es7", Client: client(t, "es7", master.URL), Timeout: 5 * time.Second},
		{Name: "es8", Client: client(t, "es8", slave.URL), Timeout: 5 * time.Second},
	}})
	f.Start(t.Context())
	_, results, err := f.Write(t.Context(), docs(2), "")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.Class != indexer.Retryable || !strings.Contains(r.Reason, "resolve indices of programs on es7") {
			t.Errorf("doc %d: %+v, want retryable naming the missing targets", i, r)
		}
	}
	stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f.Stop(stop)
	if got := ledger.get("es8"); len(got) != 2 || got[0] != "0:retryable" {
		t.Errorf("slave ledger %v, want both ids as retryable", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if requests["es7"]+requests["es8"] != 0 {
		t.Errorf("bulk requests %v: nothing may be written to the alias name", requests)
	}
}
