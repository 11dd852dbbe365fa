package cluster

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wyehq/wye/internal/tlsconf"
)

// Defaults of Options.
const (
	// DefaultRequestTimeout bounds every request but _bulk (detection included) when
	// Options.RequestTimeout is zero.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultBulkTimeout bounds one _bulk when Options.BulkTimeout is zero: a bulk request
	// carries up to thousands of documents.
	DefaultBulkTimeout = 60 * time.Second
)

// Options describe how to reach one cluster. The config package fills it; field names in
// validation errors are the snake_case config keys.
type Options struct {
	Name string   // used in every error and metric label
	URLs []string // one or more node URLs, e.g. "https://es-1:9200"

	// At most one kind of credentials: Username/Password (basic), APIKey, or BearerToken.
	Username, Password string
	// APIKey is the base64 "encoded" form Elasticsearch returns when the key is created
	// (base64 of "id:api_key"); it is sent as "Authorization: ApiKey <APIKey>".
	APIKey string
	// BearerToken is sent as "Authorization: Bearer <BearerToken>" (service tokens, JWT).
	BearerToken string

	// TLS adjusts the verification of https URLs (trusted CAs, server name, a client
	// certificate); the zero value verifies against the system roots and each URL's host.
	TLS tlsconf.Options

	// RequestTimeout bounds each request but _bulk, including reading the answer. Default
	// DefaultRequestTimeout. Each cluster has its own, so a slow slave cannot hold the master.
	RequestTimeout time.Duration
	// BulkTimeout bounds each _bulk request, including reading its answer. Default
	// DefaultBulkTimeout.
	BulkTimeout time.Duration
}

// validate checks the options and returns a copy with defaults applied.
func (o Options) validate() (Options, error) {
	if o.Name == "" {
		return o, errors.New("validate cluster options: name: must not be empty")
	}
	fail := func(field, format string, a ...any) error {
		return fmt.Errorf("validate cluster %s options: %s: %s", o.Name, field, fmt.Sprintf(format, a...))
	}
	if len(o.URLs) == 0 {
		return o, fail("urls", "must not be empty")
	}
	for i, raw := range o.URLs {
		u, err := url.Parse(raw)
		if err != nil {
			return o, fail(fmt.Sprintf("urls[%d]", i), "%v", err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return o, fail(fmt.Sprintf("urls[%d]", i), "scheme must be http or https, got %q", u.Scheme)
		}
		if u.Host == "" {
			return o, fail(fmt.Sprintf("urls[%d]", i), "missing host in %q", raw)
		}
		if u.User != nil {
			return o, fail(fmt.Sprintf("urls[%d]", i), "credentials in the URL are not allowed; use username/password")
		}
	}
	if o.Password != "" && o.Username == "" {
		return o, fail("password", "set without username")
	}
	if o.APIKey != "" && o.Username != "" {
		return o, fail("api_key", "must not be set together with username/password")
	}
	if o.BearerToken != "" && (o.Username != "" || o.APIKey != "") {
		return o, fail("bearer_token", "must not be set together with username/password or api_key")
	}
	if o.RequestTimeout < 0 {
		return o, fail("request_timeout", "must not be negative")
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.BulkTimeout < 0 {
		return o, fail("bulk_timeout", "must not be negative")
	}
	if o.BulkTimeout == 0 {
		o.BulkTimeout = DefaultBulkTimeout
	}
	return o, nil
}

// authorization is the value of the Authorization header, "" for none.
func (o Options) authorization() string {
	switch {
	case o.Username != "":
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(o.Username+":"+o.Password))
	case o.APIKey != "":
		return "ApiKey " + o.APIKey
	case o.BearerToken != "":
		return "Bearer " + o.BearerToken
	}
	return ""
}

// baseTransport is the HTTP transport shared by detection and the es client, with TLS
// settings applied and the request headers we own.
func (o Options) baseTransport() (http.RoundTripper, error) {
	// No host: net/http sets each connection's server name from its URL.
	tlsConf, err := o.TLS.Client("tls", "")
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", o.Name, err)
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32, // concurrent bulk requests to one node reuse connections
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		// No "Accept-Encoding: gzip": the engines would deflate every _bulk answer (about
		// 200 bytes per item) and wye inflate it, CPU on both sides of a link where the
		// uncompressed request is far larger than the answer anyway.
		DisableCompression: true,
	}
	return &headerTransport{next: t, authorization: o.authorization()}, nil
}

// headerTransport sets the headers wye owns on every request.
//
// Invariant: no request leaves with a "compatible-with=8" media type. The es client adds
// them when ELASTIC_CLIENT_APIVERSIONING=true is in the environment; Elasticsearch 7 answers
// 400 and OpenSearch 406 to them.
type headerTransport struct {
	next          http.RoundTripper
	authorization string
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context()) // a RoundTripper must not modify the caller's request
	if t.authorization != "" {
		req.Header.Set("Authorization", t.authorization)
	}
	if strings.Contains(req.Header.Get("Accept"), "compatible-with") {
		req.Header.Set("Accept", "application/json")
	}
	if strings.Contains(req.Header.Get("Content-Type"), "compatible-with") {
		ct := "application/json"
		if p := req.URL.Path; strings.HasSuffix(p, "/_bulk") || strings.HasSuffix(p, "/_msearch") {
			ct = "application/x-ndjson"
		}
		req.Header.Set("Content-Type", ct)
	}
	return t.next.RoundTrip(req)
}
