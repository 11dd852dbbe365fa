package cluster

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// fakeCluster is a hand-written search server: GET / answers root (with the
// X-Elastic-Product header when esHeader), other paths answer from routes, and every
// request's headers are recorded.
type fakeCluster struct {
	*httptest.Server
	rootStatus int
	root       []byte
	esHeader   bool
	routes     map[string]fakeAnswer // "METHOD /path" -> answer

	mu   sync.Mutex
	reqs []recorded
}

type fakeAnswer struct {
	status int
	body   []byte
}

type recorded struct {
	method, path, query string
	header              http.Header
}

func newFakeCluster(t *testing.T, root []byte, esHeader bool) *fakeCluster {
	t.Helper()
	f := &fakeCluster{rootStatus: http.StatusOK, root: root, esHeader: esHeader, routes: map[string]fakeAnswer{
		"GET /_cluster/health": {200, []byte(`{"cluster_name":"fake","status":"green"}`)},
	}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeCluster) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone()})
	f.mu.Unlock()
	if f.esHeader {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if r.Method == http.MethodGet && r.URL.Path == "/" {
		w.WriteHeader(f.rootStatus)
		w.Write(f.root)
		return
	}
	a, ok := f.routes[r.Method+" "+r.URL.Path]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"no route","status":404}`))
		return
	}
	w.WriteHeader(a.status)
	w.Write(a.body)
}

func (f *fakeCluster) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func (f *fakeCluster) opts() Options {
	return Options{Name: "fake", URLs: []string{f.URL}}
}

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
