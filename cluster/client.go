package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// Client talks to one cluster whose flavor and version are known.
type Client struct {
	name string
	info Info
	es   *elasticsearch.Client
	opts Options
}

// New validates opts, asks the cluster what it is (GET / on each URL in turn until one
// answers, bounded by RequestTimeout) and builds the go-elasticsearch client for it.
//
// Errors name the cluster and URL: a *TransportError when no URL answers, ErrAuth on
// 401/403, ErrNotSearchEngine when the answer is not Elasticsearch or OpenSearch,
// ErrUnsupported for a version outside ES 7.14+/8.x and OpenSearch 2+.
func New(opts Options) (*Client, error) {
	opts, err := opts.validate()
	if err != nil {
		return nil, err
	}
	base, err := opts.baseTransport()
	if err != nil {
		return nil, err
	}

	info, err := detectAny(opts, base)
	if err != nil {
		return nil, err
	}
	if err := info.supported(); err != nil {
		return nil, fmt.Errorf("connect cluster %s: %w", opts.Name, err)
	}

	// Invariant: the shim is installed only when GET / has identified the server as
	// OpenSearch, before the es client exists. A server that identifies as Elasticsearch
	// faces the client's genuine X-Elastic-Product check unchanged.
	transport := base
	if info.Flavor == OpenSearch {
		transport = &productShim{next: base}
	}
	es, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses: opts.URLs,
		Transport: transport,
		// Retries belong to the caller's one classified retry loop (with backoff and a
		// cap); a hidden retry here would double a slave's latency and re-send bulks.
		DisableRetry: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create cluster %s client: %w", opts.Name, err)
	}
	return &Client{name: opts.Name, info: info, es: es, opts: opts}, nil
}

// detectAny tries each URL in order and returns the first answer. Wrong credentials are
// final: the other nodes would refuse them too.
func detectAny(opts Options, base http.RoundTripper) (Info, error) {
	hc := &http.Client{Transport: base, Timeout: opts.RequestTimeout}
	var errs []error
	for _, u := range opts.URLs {
		ctx, cancel := context.WithTimeout(context.Background(), opts.RequestTimeout)
		info, err := detect(ctx, hc, opts.Name, u)
		cancel()
		if err == nil {
			return info, nil
		}
		if errors.Is(err, ErrAuth) {
			return Info{}, err
		}
		errs = append(errs, err)
	}
	return Info{}, errors.Join(errs...)
}

// productShim makes OpenSearch acceptable to the go-elasticsearch v8 client, which refuses
// a first 2xx answer without "X-Elastic-Product: Elasticsearch". See New for when it is used.
type productShim struct{ next http.RoundTripper }

var (
	_ http.RoundTripper = (*productShim)(nil)
	_ http.RoundTripper = (*headerTransport)(nil)
	_ esapi.Transport   = (*elasticsearch.Client)(nil)
)

func (s *productShim) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := s.next.RoundTrip(req)
	if err == nil && res.Header.Get("X-Elastic-Product") == "" {
		res.Header.Set("X-Elastic-Product", "Elasticsearch")
	}
	return res, err
}

// Name is the configured cluster name.
func (c *Client) Name() string { return c.name }

// Info is what the cluster said about itself when the client was created.
func (c *Client) Info() Info { return c.info }

// ES is the underlying client for the untyped esapi. Never use the typed API: it sends
// compatible-with=8 media types that Elasticsearch 7 (400) and OpenSearch (406) reject.
func (c *Client) ES() *elasticsearch.Client { return c.es }

// Do performs req under the cluster's RequestTimeout and returns the status and the whole
// body. A non-2xx status is not an error here: pass it to Check (or Classify). The error
// is a *TransportError when no answer came back.
func (c *Client) Do(ctx context.Context, req esapi.Request) (status int, body []byte, err error) {
	return c.do(ctx, req, c.opts.RequestTimeout)
}

// do is Do under timeout: Bulk passes the cluster's BulkTimeout, everything else its
// RequestTimeout.
func (c *Client) do(ctx context.Context, req esapi.Request, timeout time.Duration) (status int, body []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := req.Do(ctx, c.es)
	if err != nil {
		// Not transport failures, so not Retryable: a closed client, and the client's
		// product check (its error is an unexported errors.New, matched by its text).
		if errors.Is(err, elasticsearch.ErrClosed) || strings.Contains(err.Error(), "not Elasticsearch") {
			return 0, nil, fmt.Errorf("cluster %s: %s: %w", c.name, opName(req), err)
		}
		return 0, nil, &TransportError{Cluster: c.name, Op: opName(req), Err: err}
	}
	defer res.Body.Close()
	body, err = readBody(res)
	if err != nil {
		return 0, nil, &TransportError{Cluster: c.name, Op: opName(req), Err: fmt.Errorf("read response body: %w", err)}
	}
	return res.StatusCode, body, nil
}

// readBody reads res's body whole, into a buffer of its Content-Length when the answer states
// one (up to preallocMax), without io.ReadAll's growing copies.
func readBody(res *esapi.Response) ([]byte, error) {
	n, err := strconv.ParseInt(res.Header.Get("Content-Length"), 10, 64)
	if err != nil || n <= 0 || n > preallocMax {
		return io.ReadAll(res.Body)
	}
	b := make([]byte, 0, n+1) // one more: the read that sees the end needs room
	for {
		m, err := res.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) { // more than stated: the rest as io.ReadAll would read it
			rest, err := io.ReadAll(res.Body)
			return append(b, rest...), err
		}
	}
}

// preallocMax is the largest Content-Length readBody allocates at once.
const preallocMax = 64 << 20

// Check turns an answer into nil when Classify calls it OK for op ("index", "delete",
// ...), and into a *StatusError (NewStatusError, naming the cluster) carrying the class
// otherwise.
func (c *Client) Check(op string, status int, body []byte) error {
	// The error type only tells Stale, Retryable and Permanent apart; what is OK is OK
	// whatever the body says, so a 2xx answer (a _bulk answer is large) is not parsed twice.
	if Classify(status, "", op) == OK {
		return nil
	}
	se := NewStatusError(op, status, body)
	if se.Class == OK {
		return nil
	}
	se.Cluster = c.name
	return se
}

// opName names a request for errors: esapi.BulkRequest -> "Bulk".
func opName(req esapi.Request) string {
	s := fmt.Sprintf("%T", req)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "*"), "esapi.")
	return strings.TrimSuffix(s, "Request")
}
