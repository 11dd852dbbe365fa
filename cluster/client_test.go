package cluster

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/wyehq/wye/internal/tlsconf"
)

func TestOpenSearchFlavorWorksWithoutProductHeader(t *testing.T) {
	f := newFakeCluster(t, golden(t, "root-os2.json"), false)
	c, err := New(f.opts())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	status, body, err := c.Do(context.Background(), esapi.ClusterHealthRequest{})
	if err != nil {
		t.Fatalf("Do against OpenSearch: %v (the product-header shim is missing)", err)
	}
	if status != 200 || !strings.Contains(string(body), "green") {
		t.Fatalf("Do = %d %s", status, body)
	}
}

// A server that says "Elasticsearch" on GET / but then answers without the product
// header must meet the client's genuine check: we never forge the header for it.
func TestElasticsearchFlavorGetsNoForgedProductHeader(t *testing.T) {
	f := newFakeCluster(t, golden(t, "root-es7.json"), false) // tagline says Elasticsearch
	c, err := New(f.opts())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if c.Info().Flavor != Elasticsearch {
		t.Fatalf("flavor = %v", c.Info().Flavor)
	}
	_, _, err = c.Do(context.Background(), esapi.ClusterHealthRequest{})
	if err == nil || !strings.Contains(err.Error(), "not Elasticsearch") {
		t.Fatalf("Do: err = %v, want the client's product-check refusal", err)
	}
	if ClassOf(err) != Permanent {
		t.Errorf("a failed product check is %v, want permanent", ClassOf(err))
	}
}

func TestClusterProductShimKeepsAGenuineHeader(t *testing.T) {
	next := roundTripFunc(func(*http.Request) (*http.Response, error) {
		h := http.Header{}
		h.Set("X-Elastic-Product", "Other")
		return &http.Response{StatusCode: 200, Header: h, Body: http.NoBody}, nil
	})
	req := httptest.NewRequest("GET", "http://x/", nil)
	res, err := (&productShim{next: next}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Header.Get("X-Elastic-Product"); got != "Other" {
		t.Fatalf("shim overwrote a header the server sent: %q", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestClusterSendsConfiguredAuthHeader(t *testing.T) {
	tests := []struct {
		name string
		set  func(*Options)
		want string
	}{
		{"none", func(*Options) {}, ""},
		{"basic", func(o *Options) { o.Username, o.Password = "wye", "s3cret" },
			"Basic " + base64.StdEncoding.EncodeToString([]byte("wye:s3cret"))},
		{"api key", func(o *Options) { o.APIKey = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==" },
			"ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="},
		{"bearer", func(o *Options) { o.BearerToken = "AAEAAWVsYXN0aWMva2liYW5h" }, "Bearer AAEAAWVsYXN0aWMva2liYW5h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCluster(t, golden(t, "root-es8.json"), true)
			opts := f.opts()
			tt.set(&opts)
			c, err := New(opts)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if _, _, err := c.Do(context.Background(), esapi.ClusterHealthRequest{}); err != nil {
				t.Fatalf("Do: %v", err)
			}
			reqs := f.requests()
			if len(reqs) != 2 {
				t.Fatalf("got %d requests, want detection + health", len(reqs))
			}
			for _, r := range reqs {
				if got := r.header.Get("Authorization"); got != tt.want {
					t.Errorf("%s %s: Authorization = %q, want %q", r.method, r.path, got, tt.want)
				}
			}
		})
	}
}

func TestClusterRejectsConflictingCredentials(t *testing.T) {
	base := Options{Name: "c", URLs: []string{"http://127.0.0.1:9200"}}
	tests := []struct {
		name  string
		set   func(*Options)
		field string
	}{
		{"no name", func(o *Options) { o.Name = "" }, "name"},
		{"no urls", func(o *Options) { o.URLs = nil }, "urls"},
		{"bad scheme", func(o *Options) { o.URLs = []string{"127.0.0.1:9200"} }, "urls[0]"},
		{"credentials in url", func(o *Options) { o.URLs = []string{"http://a:b@h:9200"} }, "urls[0]"},
		{"password alone", func(o *Options) { o.Password = "p" }, "password"},
		{"basic and api key", func(o *Options) { o.Username, o.APIKey = "u", "k" }, "api_key"},
		{"api key and bearer", func(o *Options) { o.APIKey, o.BearerToken = "k", "t" }, "bearer_token"},
		{"basic and bearer", func(o *Options) { o.Username, o.BearerToken = "u", "t" }, "bearer_token"},
		{"negative timeout", func(o *Options) { o.RequestTimeout = -time.Second }, "request_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := base
			tt.set(&opts)
			_, err := New(opts)
			if err == nil || !strings.Contains(err.Error(), tt.field+":") {
				t.Fatalf("New: err = %v, want one naming %q", err, tt.field)
			}
		})
	}
}

func TestClusterCAFileErrorsAreClear(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("this is not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for file, want := range map[string]string{
		missing: `cluster tls: tls.ca_file: "` + missing + `": cannot read: no such file or directory`,
		notPEM:  `cluster tls: tls.ca_file: "` + notPEM + `": holds no PEM certificate`,
	} {
		_, err := New(Options{Name: "tls", URLs: []string{"https://127.0.0.1:9200"}, TLS: tlsconf.Options{CAFile: file}})
		if err == nil || err.Error() != want {
			t.Errorf("CAFile %s: err = %v, want %q", file, err, want)
		}
	}
}

func TestClusterTrustsOnlyConfiguredCA(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Write(golden(t, "root-es8.json"))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := New(Options{Name: "tls", URLs: []string{srv.URL}, TLS: tlsconf.Options{CAFile: caFile}}); err != nil {
		t.Fatalf("with the CA file: %v", err)
	}
	_, err := New(Options{Name: "tls", URLs: []string{srv.URL}})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA file: err = %v, want a certificate error", err)
	}
	if _, err := New(Options{Name: "tls", URLs: []string{srv.URL}, TLS: tlsconf.Options{InsecureSkipVerify: true}}); err != nil {
		t.Fatalf("with InsecureSkipVerify: %v", err)
	}
}

// ELASTIC_CLIENT_APIVERSIONING=true makes the es client send compatible-with=8 media
// types, which Elasticsearch 7 (400) and OpenSearch (406) refuse.
func TestClusterSendsNoCompatibleWithMediaType(t *testing.T) {
	t.Setenv("ELASTIC_CLIENT_APIVERSIONING", "true")
	f := newFakeCluster(t, golden(t, "root-os2.json"), false)
	f.routes["POST /_bulk"] = fakeAnswer{200, []byte(`{"errors":false,"items":[{"delete":{"_index":"i","_id":"1","status":404,"result":"not_found"}}]}`)}
	c, err := New(f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Bulk(context.Background(), []byte("{\"delete\":{\"_index\":\"i\",\"_id\":\"1\"}}\n")); err != nil {
		t.Fatalf("Bulk: %v", err)
	}
	for _, r := range f.requests() {
		for _, h := range []string{"Accept", "Content-Type"} {
			if v := r.header.Get(h); strings.Contains(v, "compatible-with") {
				t.Errorf("%s %s sent %s: %s", r.method, r.path, h, v)
			}
		}
		if r.path == "/_bulk" && r.header.Get("Content-Type") != "application/x-ndjson" {
			t.Errorf("bulk Content-Type = %q", r.header.Get("Content-Type"))
		}
	}
}

func TestClusterRequestTimeoutIsRetryable(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			w.Write(golden(t, "root-os2.json"))
			return
		}
		select { // hold the answer until the client gives up
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := New(Options{Name: "slow", URLs: []string{srv.URL}, RequestTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Do(context.Background(), esapi.ClusterHealthRequest{})
	var te *TransportError
	if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do: err = %v, want a *TransportError wrapping a deadline", err)
	}
	if ClassOf(err) != Retryable || te.Op != "ClusterHealth" {
		t.Errorf("class %v op %q", ClassOf(err), te.Op)
	}
	t.Log(err)
}

// TestResponseBodyIsReadWholeWhateverItsStatedLength prevents an answer cut short or padded
// when its body is read into a buffer of its Content-Length: stated exactly, too short, too
// long, unparseable or absent, the bytes read are all the body's, as io.ReadAll reads them.
func TestResponseBodyIsReadWholeWhateverItsStatedLength(t *testing.T) {
	body := strings.Repeat(`{"items":[{"index":{"status":201}}]}`, 100)
	for _, stated := range []string{strconv.Itoa(len(body)), "10", strconv.Itoa(len(body) + 100), "x", "", "0", "-1"} {
		res := &esapi.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(iotest.HalfReader(strings.NewReader(body)))}
		if stated != "" {
			res.Header.Set("Content-Length", stated)
		}
		got, err := readBody(res)
		if err != nil || string(got) != body {
			t.Errorf("Content-Length %q: read %d bytes (%v), want the %d of the body", stated, len(got), err, len(body))
		}
	}
	failing := &esapi.Response{Header: http.Header{"Content-Length": {"100"}}, Body: io.NopCloser(iotest.ErrReader(io.ErrUnexpectedEOF))}
	if _, err := readBody(failing); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a failed read: error %v, want it", err)
	}
}

// BenchmarkReadBody reads the answer to 256 successful writes (about 55 KB, with its
// Content-Length) with io.ReadAll and with readBody.
func BenchmarkReadBody(b *testing.B) {
	body := string(okResponse(256))
	for _, c := range []struct {
		name string
		read func(*esapi.Response) ([]byte, error)
	}{{"ReadAll", func(r *esapi.Response) ([]byte, error) { return io.ReadAll(r.Body) }}, {"readBody", readBody}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res := &esapi.Response{Header: http.Header{"Content-Length": {strconv.Itoa(len(body))}}, Body: io.NopCloser(strings.NewReader(body))}
				if got, err := c.read(res); err != nil || len(got) != len(body) {
					b.Fatal(err)
				}
			}
		})
	}
}
