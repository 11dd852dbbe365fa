package cluster

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// slowCluster answers GET / at once and every other request after delay.
func slowCluster(t *testing.T, delay time.Duration) *httptest.Server {
	t.Helper()
	root := golden(t, "root-es7.json")
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/" {
			w.Write(root)
			return
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		if r.URL.Path == "/_bulk" {
			w.Write([]byte(`{"took":1,"errors":false,"items":[{"index":{"_index":"p","_id":"1","status":201}}]}`))
			return
		}
		w.Write([]byte(`{"cluster_name":"fake","status":"green"}`))
	}))
	t.Cleanup(s.Close)
	return s
}

const oneDoc = `{"index":{"_index":"p","_id":"1","version":1,"version_type":"external"}}` + "\n" + `{"a":1}` + "\n"

// TestBulkIsBoundByTheBulkTimeoutNotTheRequestTimeout prevents timeouts.bulk from being
// ignored: a _bulk slower than timeouts.request but within timeouts.bulk succeeds, any other
// request that slow fails, and a _bulk slower than timeouts.bulk fails as a transport error.
func TestBulkIsBoundByTheBulkTimeoutNotTheRequestTimeout(t *testing.T) {
	srv := slowCluster(t, 300*time.Millisecond)
	c, err := New(Options{Name: "slow", URLs: []string{srv.URL}, RequestTimeout: 100 * time.Millisecond, BulkTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if items, err := c.Bulk(ctx, []byte(oneDoc)); err != nil || len(items) != 1 || items[0].Class != OK {
		t.Errorf("bulk within timeouts.bulk but beyond timeouts.request: %v, %v", items, err)
	}
	var te *TransportError
	if _, _, err := c.Do(ctx, esapi.ClusterHealthRequest{}); !errors.As(err, &te) {
		t.Errorf("a request beyond timeouts.request: %v, want a transport error", err)
	}

	c, err = New(Options{Name: "slow", URLs: []string{srv.URL}, RequestTimeout: 5 * time.Second, BulkTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Bulk(ctx, []byte(oneDoc)); !errors.As(err, &te) || ClassOf(err) != Retryable {
		t.Errorf("bulk beyond timeouts.bulk: %v, want a retryable transport error", err)
	}
}
