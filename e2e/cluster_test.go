package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/wyehq/wye/cluster"
)

// clusterTestMapping is the shape every managed index has: strict, explicit, versioned.
const clusterTestMapping = `{
  "settings": {"number_of_shards": 1, "number_of_replicas": 0},
  "mappings": {
    "dynamic": "strict",
    "properties": {
      "id":          {"type": "keyword"},
      "title":       {"type": "text"},
      "wye_version": {"type": "long"},
      "updated_at":  {"type": "date"}
    }
  }
}`

// versionBase puts the test versions where real ones live: high bits hold the source epoch
// and binlog file (epoch<<48 | file<<32 | offset), so they exceed 2^32.
const versionBase = int64(1)<<48 | int64(7)<<32

const clusterTestDocs = 10_000

// TestClusterExternalVersionsHoldOnEveryFlavor connects to each cluster of the stack, checks
// its detected flavor and version, bulk-writes 10,000 documents with external versions and
// proves that an older write is refused as Stale while a newer one wins, for index and delete.
func TestClusterExternalVersionsHoldOnEveryFlavor(t *testing.T) {
	want := map[string]struct {
		flavor cluster.Flavor
		major  int
	}{
		"es7": {cluster.Elasticsearch, 7},
		"es8": {cluster.Elasticsearch, 8},
		"os2": {cluster.OpenSearch, 2},
	}
	for _, name := range clusterNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := cluster.New(cluster.Options{Name: name, URLs: []string{clusterURL(t, name)}, RequestTimeout: time.Minute})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			info := c.Info()
			t.Logf("cluster %s: %s %s (cluster_name %s, distribution %s)",
				name, info.Flavor, info.Version.Number, info.ClusterName, info.Distribution)
			if w := want[name]; info.Flavor != w.flavor || info.Version.Major != w.major {
				t.Fatalf("detected %s %s, want %s %d.x", info.Flavor, info.Version.Number, w.flavor, w.major)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			index := createTestIndex(t, ctx, c)

			bulkTestDocs(t, ctx, c, index)
			do(t, ctx, c, "refresh", esapi.IndicesRefreshRequest{Index: []string{index}})
			var count struct{ Count int }
			decode(t, do(t, ctx, c, "count", esapi.CountRequest{Index: []string{index}}), &count)
			if count.Count != clusterTestDocs {
				t.Fatalf("count = %d, want %d", count.Count, clusterTestDocs)
			}

			// An older or equal external version loses: 409, classified Stale.
			const id = 7
			v := versionBase + id
			items := bulk(t, ctx, c, indexAction(index, id, v-1, "older")+indexAction(index, id, v, "same"))
			for i, it := range items {
				if it.Status != http.StatusConflict || it.Class != cluster.Stale {
					t.Errorf("write %d with version <= current: status %d class %v (%s), want 409 stale", i, it.Status, it.Class, it.Reason)
				}
			}
			// A newer one wins and its version is the one stored.
			items = bulk(t, ctx, c, indexAction(index, id, v+100, "newer"))
			if it := items[0]; it.Class != cluster.OK || it.Version != v+100 {
				t.Fatalf("newer write: status %d class %v version %d (%s), want ok at %d", it.Status, it.Class, it.Version, it.Reason, v+100)
			}
			var doc struct {
				Version int64 `json:"_version"`
				Source  struct {
					Title string `json:"title"`
				} `json:"_source"`
			}
			decode(t, do(t, ctx, c, "get", esapi.GetRequest{Index: index, DocumentID: docID(id)}), &doc)
			if doc.Version != v+100 || doc.Source.Title != "newer" {
				t.Fatalf("stored doc: version %d title %q, want %d %q", doc.Version, doc.Source.Title, v+100, "newer")
			}

			// A versioned delete with a newer version removes the document...
			delVersion := int(versionBase + 8 + 1)
			if err := deleteDoc(ctx, c, index, 8, delVersion); err != nil {
				t.Fatalf("delete with a newer version: %v", err)
			}
			status, body, err := c.Do(ctx, esapi.GetRequest{Index: index, DocumentID: docID(8)})
			if err != nil || status != http.StatusNotFound {
				t.Fatalf("get deleted doc: status %d err %v body %s, want 404", status, err, body)
			}
			// ...and one with an older version is refused as Stale.
			err = deleteDoc(ctx, c, index, 9, int(versionBase+9-1))
			var se *cluster.StatusError
			if !errors.As(err, &se) || se.Status != http.StatusConflict || se.Class != cluster.Stale {
				t.Fatalf("delete with an older version: err = %v, want a 409 stale *StatusError", err)
			}
		})
	}
}

func TestClusterUnreachableURLIsNamed(t *testing.T) {
	const u = "http://127.0.0.1:1"
	_, err := cluster.New(cluster.Options{Name: "e2e-ghost", URLs: []string{u}, RequestTimeout: 5 * time.Second})
	var te *cluster.TransportError
	if !errors.As(err, &te) || cluster.ClassOf(err) != cluster.Retryable {
		t.Fatalf("err = %v (%T), want a retryable *cluster.TransportError", err, err)
	}
	for _, want := range []string{"e2e-ghost", u, "unreachable"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	t.Log(err)
}

func TestClusterRejectsNonSearchServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><html><head><title>Welcome to nginx!</title></head><body></body></html>")
	}))
	defer srv.Close()
	_, err := cluster.New(cluster.Options{Name: "e2e-web", URLs: []string{srv.URL}})
	if !errors.Is(err, cluster.ErrNotSearchEngine) {
		t.Fatalf("err = %v, want cluster.ErrNotSearchEngine", err)
	}
	for _, want := range []string{"e2e-web", srv.URL, "not a search engine"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	t.Log(err)
}

// createTestIndex creates a uniquely named index with clusterTestMapping, deleted at cleanup.
func createTestIndex(t *testing.T, ctx context.Context, c *cluster.Client) string {
	t.Helper()
	index := fmt.Sprintf("wye-e2e-cluster-%s-%d", c.Name(), time.Now().UnixNano())
	do(t, ctx, c, "create_index", esapi.IndicesCreateRequest{Index: index, Body: strings.NewReader(clusterTestMapping)})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		status, body, err := c.Do(ctx, esapi.IndicesDeleteRequest{Index: []string{index}})
		if err != nil || status != http.StatusOK {
			t.Errorf("delete index %s: status %d err %v body %s", index, status, err, body)
		}
	})
	return index
}

// bulkTestDocs writes clusterTestDocs documents, doc i at version versionBase+i, in chunks
// built by hand as the indexer builds them, and requires every item to be OK.
func bulkTestDocs(t *testing.T, ctx context.Context, c *cluster.Client, index string) {
	t.Helper()
	const chunk = 2_000
	for start := 0; start < clusterTestDocs; start += chunk {
		var b strings.Builder
		for i := start; i < start+chunk; i++ {
			b.WriteString(indexAction(index, i, versionBase+int64(i), fmt.Sprintf("Program %d", i)))
		}
		items := bulk(t, ctx, c, b.String())
		for j, it := range items {
			i := start + j
			if it.Class != cluster.OK || it.Status != http.StatusCreated || it.ID != docID(i) || it.Version != versionBase+int64(i) {
				t.Fatalf("doc %d: %+v, want created %s at version %d", i, it, docID(i), versionBase+int64(i))
			}
		}
	}
}

func docID(i int) string { return fmt.Sprintf("doc-%05d", i) }

// indexAction is one index action with an external version and its source line.
func indexAction(index string, i int, version int64, title string) string {
	meta, _ := json.Marshal(map[string]any{"index": map[string]any{
		"_index": index, "_id": docID(i), "version": version, "version_type": "external",
	}})
	src, _ := json.Marshal(map[string]any{
		"id": docID(i), "title": title, "wye_version": version,
		"updated_at": time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second).Format(time.RFC3339),
	})
	return string(meta) + "\n" + string(src) + "\n"
}

func bulk(t *testing.T, ctx context.Context, c *cluster.Client, body string) []cluster.BulkItem {
	t.Helper()
	items, err := c.Bulk(ctx, []byte(body))
	if err != nil {
		t.Fatalf("bulk on %s: %v", c.Name(), err)
	}
	return items
}

func deleteDoc(ctx context.Context, c *cluster.Client, index string, i, version int) error {
	status, body, err := c.Do(ctx, esapi.DeleteRequest{Index: index, DocumentID: docID(i), Version: &version, VersionType: "external"})
	if err != nil {
		return err
	}
	return c.Check("delete", status, body)
}

// do performs req and fails the test unless Check calls the answer OK.
func do(t *testing.T, ctx context.Context, c *cluster.Client, op string, req esapi.Request) []byte {
	t.Helper()
	status, body, err := c.Do(ctx, req)
	if err == nil {
		err = c.Check(op, status, body)
	}
	if err != nil {
		t.Fatalf("%s on %s: %v", op, c.Name(), err)
	}
	return body
}

func decode(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}
