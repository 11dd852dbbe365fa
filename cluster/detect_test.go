package cluster

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFlavorDetectedFromRootAnswer(t *testing.T) {
	tests := []struct {
		name       string
		rootStatus int
		root       string
		esHeader   bool
		routes     map[string]fakeAnswer
		want       Info
	}{
		{
			name: "elasticsearch 7.17 oss", rootStatus: 200, root: "root-es7.json", esHeader: true,
			want: Info{Elasticsearch, Version{"7.17.9", 7, 17, 9}, "wye-es7", "oss"},
		},
		{
			name: "elasticsearch 8.14", rootStatus: 200, root: "root-es8.json", esHeader: true,
			want: Info{Elasticsearch, Version{"8.14.3", 8, 14, 3}, "wye-es8", "default"},
		},
		{
			name: "opensearch 2.19", rootStatus: 200, root: "root-os2.json", esHeader: false,
			want: Info{OpenSearch, Version{"2.19.1", 2, 19, 1}, "wye-os2", "opensearch"},
		},
		{
			// A minimal ES 8 without the rest-root module: GET / is 405 (only DELETE /).
			name: "elasticsearch 8.14 without GET /", rootStatus: 405, root: "root-es8-no-rest-root.json", esHeader: true,
			routes: map[string]fakeAnswer{"GET /_nodes/_all": {200, golden(t, "nodes-es8.json")}},
			want:   Info{Elasticsearch, Version{"8.14.3", 8, 14, 3}, "wye-es8", "default"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCluster(t, golden(t, tt.root), tt.esHeader)
			f.rootStatus = tt.rootStatus
			for k, v := range tt.routes {
				f.routes[k] = v
			}
			c, err := New(f.opts())
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if got := c.Info(); got != tt.want {
				t.Fatalf("Info() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFlavorDetectionTakesLowestNodeVersion(t *testing.T) {
	f := newFakeCluster(t, golden(t, "root-es8-no-rest-root.json"), true)
	f.rootStatus = 405
	f.routes["GET /_nodes/_all"] = fakeAnswer{200, []byte(`{"cluster_name":"c","nodes":{
		"a":{"version":"8.14.3","build_flavor":"default"},
		"b":{"version":"8.9.2","build_flavor":"default"},
		"c":{"version":"8.14.0","build_flavor":"default"}}}`)}
	c, err := New(f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Info().Version.Number; v != "8.9.2" {
		t.Fatalf("version = %s, want the lowest node version 8.9.2", v)
	}
}

func TestUnsupportedFlavorVersionIsRefused(t *testing.T) {
	tests := []struct {
		name, root string
		esHeader   bool
	}{
		{"elasticsearch 6", `{"cluster_name":"c","version":{"number":"6.8.23","build_flavor":"default"},"tagline":"You Know, for Search"}`, false},
		// 7.10 sends no X-Elastic-Product; the v8 client would refuse it and we do not forge it.
		{"elasticsearch 7.10", `{"cluster_name":"c","version":{"number":"7.10.2","build_flavor":"oss"},"tagline":"You Know, for Search"}`, false},
		{"elasticsearch 9", `{"cluster_name":"c","version":{"number":"9.0.0","build_flavor":"default"},"tagline":"You Know, for Search"}`, true},
		{"opensearch 1", `{"cluster_name":"c","version":{"distribution":"opensearch","number":"1.3.19"},"tagline":"The OpenSearch Project: https://opensearch.org/"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCluster(t, []byte(tt.root), tt.esHeader)
			_, err := New(f.opts())
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("New: err = %v, want ErrUnsupported", err)
			}
			if !strings.Contains(err.Error(), "cluster fake") {
				t.Errorf("error %q does not name the cluster", err)
			}
		})
	}
}

func TestNonSearchServerIsNotACluster(t *testing.T) {
	tests := []struct {
		name, contentType, body string
		status                  int
	}{
		{"html page", "text/html; charset=utf-8", "<!doctype html><html><body>It works!</body></html>", 200},
		{"json without version", "application/json", `{"status":"ok","service":"billing"}`, 200},
		{"json with version but no engine marker", "application/json", `{"version":{"number":"1.2.3"}}`, 200},
		{"html 404", "text/html", "<html><body>Not Found</body></html>", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			_, err := New(Options{Name: "web", URLs: []string{srv.URL}})
			if !errors.Is(err, ErrNotSearchEngine) {
				t.Fatalf("New: err = %v, want ErrNotSearchEngine", err)
			}
			for _, want := range []string{"cluster web", srv.URL, "not a search engine"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// closedURL is an http URL on which nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestUnreachableClusterIsNamed(t *testing.T) {
	u := closedURL(t)
	_, err := New(Options{Name: "ghost", URLs: []string{u}})
	var te *TransportError
	if !errors.As(err, &te) {
		t.Fatalf("New: err = %v (%T), want a *TransportError", err, err)
	}
	if ClassOf(err) != Retryable {
		t.Errorf("ClassOf = %v, want retryable", ClassOf(err))
	}
	for _, want := range []string{"cluster ghost", "unreachable", u, "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestClusterDetectionTriesNextURL(t *testing.T) {
	f := newFakeCluster(t, golden(t, "root-os2.json"), false)
	c, err := New(Options{Name: "os", URLs: []string{closedURL(t), f.URL}})
	if err != nil {
		t.Fatalf("New with a dead first node: %v", err)
	}
	if c.Info().Flavor != OpenSearch {
		t.Fatalf("flavor = %v", c.Info().Flavor)
	}
}

func TestClusterAuthFailureIsNamed(t *testing.T) {
	const body = `{"error":{"root_cause":[{"type":"security_exception","reason":"unable to authenticate user [wye] for REST request [/]"}],"type":"security_exception","reason":"unable to authenticate user [wye] for REST request [/]","header":{"WWW-Authenticate":["Basic realm=\"security\" charset=\"UTF-8\"","ApiKey"]}},"status":401}`
	for _, status := range []int{401, 403} {
		f := newFakeCluster(t, []byte(body), true)
		f.rootStatus = status
		// The second URL answers fine: wrong credentials must not be hidden by trying it.
		ok := newFakeCluster(t, golden(t, "root-es8.json"), true)
		_, err := New(Options{Name: "secured", URLs: []string{f.URL, ok.URL}, Username: "wye", Password: "wrong"})
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("status %d: err = %v, want ErrAuth", status, err)
		}
		for _, want := range []string{"cluster secured", "security_exception"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
		if strings.Contains(err.Error(), "wrong") {
			t.Errorf("error %q leaks the password", err)
		}
	}
}

func TestFlavorVersionParsing(t *testing.T) {
	tests := []struct {
		in   string
		want Version
		ok   bool
	}{
		{"7.17.9", Version{"7.17.9", 7, 17, 9}, true},
		{"8.15.0-SNAPSHOT", Version{"8.15.0-SNAPSHOT", 8, 15, 0}, true},
		{"3.0.0-alpha1", Version{"3.0.0-alpha1", 3, 0, 0}, true},
		{"8.14", Version{}, false},
		{"x.1.2", Version{}, false},
	}
	for _, tt := range tests {
		got, err := parseVersion(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("parseVersion(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && got != tt.want {
			t.Errorf("parseVersion(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	if v := (Version{Major: 3, Minor: 3}); !v.AtLeast(3, 3) || v.AtLeast(3, 4) || !v.AtLeast(2, 19) {
		t.Errorf("AtLeast is wrong for %+v", v)
	}
}
