package es

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/indexer"
)

// flatDocs are n documents of the flat entity of the end-to-end benchmark (one table of 10
// columns), as the denormalizer writes them.
func flatDocs(n int) []indexer.Doc {
	out := make([]indexer.Doc, n)
	for i := range out {
		id := 1 + 7*i
		out[i] = indexer.Doc{Entity: "item", Index: "items", ID: fmt.Sprint(id), Key: indexer.Value(fmt.Sprint(id)), Version: int64(1000 + i),
			Source: fmt.Appendf(nil, `{"active":%d,"code":"C%06d","created_at":"2026-01-02 03:04:05","id":%d,"mark":0,`+
				`"note":"changed %d","price":"%d.%02d","qty":%d,"title":"item number %d of the flat bench",`+
				`"updated_at":"2026-01-02 03:04:05.%06d","wye_version":%d}`, id%2, id, id, 7919*id, id%5000, id%100, id%1000, id, id, 1000+i)}
	}
	return out
}

// BenchmarkWriteFlatDocsToAnHTTPCluster is one Write of 500 flat documents through a real
// cluster.Client to an httptest server answering a canned _bulk response (every item created):
// the body built, sent, the response parsed and folded into results.
// go test -run - -bench WriteFlatDocs -benchmem ./indexer/es
func BenchmarkWriteFlatDocsToAnHTTPCluster(b *testing.B) {
	docs := flatDocs(500)
	var resp strings.Builder
	resp.WriteString(`{"took":30,"errors":false,"items":[`)
	for i, d := range docs {
		if i > 0 {
			resp.WriteByte(',')
		}
		fmt.Fprintf(&resp, `{"index":{"_index":"items_v1","_type":"_doc","_id":%q,"_version":%d,"result":"updated",`+
			`"_shards":{"total":1,"successful":1,"failed":0},"_seq_no":%d,"_primary_term":1,"status":200}}`, d.ID, d.Version, i)
	}
	resp.WriteString(`]}`)
	canned := []byte(resp.String())
	root, err := os.ReadFile("../../cluster/testdata/root-es7.json")
	if err != nil {
		b.Fatal(err)
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/" {
			w.Write(root)
			return
		}
		w.Write(canned)
	}))
	b.Cleanup(s.Close)
	c, err := cluster.New(cluster.Options{Name: "es7", URLs: []string{s.URL}, RequestTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	w := New(Options{Name: "es7", Client: c, Resolver: oneIndex{}, Logger: slog.New(slog.DiscardHandler)})
	b.ReportAllocs()
	for b.Loop() {
		for i, r := range w.Write(b.Context(), docs) {
			if r.Class != indexer.OK {
				b.Fatalf("doc %d: %+v", i, r)
			}
		}
	}
}

// BenchmarkBodyOf500FlatDocs is the _bulk body alone.
func BenchmarkBodyOf500FlatDocs(b *testing.B) {
	docs := flatDocs(500)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Body(docs); err != nil {
			b.Fatal(err)
		}
	}
}
