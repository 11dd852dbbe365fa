package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Errors New can wrap, for callers that map them to exit codes or messages.
var (
	// ErrNotSearchEngine: something answered, but not Elasticsearch or OpenSearch.
	ErrNotSearchEngine = errors.New("not a search engine")
	// ErrAuth: the cluster answered 401 or 403.
	ErrAuth = errors.New("authentication failed")
	// ErrUnsupported: a search engine this version of wye does not support.
	ErrUnsupported = errors.New("unsupported search engine")
)

// Flavor is the search engine family.
type Flavor int

const (
	UnknownFlavor Flavor = iota
	Elasticsearch
	OpenSearch
)

func (f Flavor) String() string {
	switch f {
	case Elasticsearch:
		return "Elasticsearch"
	case OpenSearch:
		return "OpenSearch"
	}
	return "unknown"
}

// Version is a server version as reported ("8.14.3", "8.15.0-SNAPSHOT") and its numbers.
type Version struct {
	Number              string
	Major, Minor, Patch int
}

// AtLeast reports whether v >= major.minor.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

func (v Version) less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Patch < w.Patch
}

// parseVersion reads "major.minor.patch" and ignores a "-qualifier".
func parseVersion(s string) (Version, error) {
	v := Version{Number: s}
	core, _, _ := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("parse version %q: want major.minor.patch", s)
	}
	nums := []*int{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, fmt.Errorf("parse version %q: bad number %q", s, p)
		}
		*nums[i] = n
	}
	return v, nil
}

// Info is what a cluster says about itself.
type Info struct {
	Flavor      Flavor
	Version     Version
	ClusterName string
	// Distribution is "opensearch" for OpenSearch and the build flavor for Elasticsearch
	// ("default", or "oss" for the Apache-licensed 7.x builds).
	Distribution string
}

func (i Info) String() string {
	return fmt.Sprintf("%s %s (cluster %s, %s)", i.Flavor, i.Version.Number, i.ClusterName, i.Distribution)
}

// supported returns an ErrUnsupported error for engines outside ES 7.14+/8.x, OpenSearch 2+.
//
// Elasticsearch before 7.14 does not send X-Elastic-Product, so the go-elasticsearch v8
// client refuses it; we forge that header only for OpenSearch, never for Elasticsearch.
func (i Info) supported() error {
	ok := false
	switch i.Flavor {
	case Elasticsearch:
		ok = (i.Version.Major == 7 && i.Version.Minor >= 14) || i.Version.Major == 8
	case OpenSearch:
		ok = i.Version.Major >= 2
	}
	if ok {
		return nil
	}
	return fmt.Errorf("%w: %s %s (supported: Elasticsearch 7.14+ and 8.x, OpenSearch 2.x and later)",
		ErrUnsupported, i.Flavor, i.Version.Number)
}

// maxDetectBody caps what we read of a GET / answer; a real one is about 550 bytes.
const maxDetectBody = 1 << 20

// detect asks one node what it is. It never uses the es client: its answer decides how
// that client is built (see productShim).
//
// GET / is the source. A minimal Elasticsearch 8 build without the rest-root module
// answers GET / with 405 (only DELETE / exists); when that answer carries the genuine
// X-Elastic-Product header we read the version from the nodes info API instead.
func detect(ctx context.Context, hc *http.Client, name, base string) (Info, error) {
	status, hdr, body, err := get(ctx, hc, name, base, "/")
	if err != nil {
		return Info{}, err
	}
	esHeader := hdr.Get("X-Elastic-Product") == "Elasticsearch"
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Info{}, fmt.Errorf("connect cluster %s at %s: %w (status %d): %s",
			name, base, ErrAuth, status, errorReason(body))
	case (status == http.StatusMethodNotAllowed || status == http.StatusNotFound) && esHeader:
		return detectFromNodes(ctx, hc, name, base)
	case status < 200 || status > 299:
		if !esHeader && !isJSON(hdr) {
			return Info{}, notSearchEngine(name, base, "/", status, hdr, "")
		}
		return Info{}, fmt.Errorf("connect cluster %s at %s: GET / answered status %d: %s",
			name, base, status, errorReason(body))
	}
	var root struct {
		ClusterName string `json:"cluster_name"`
		Version     struct {
			Number       string `json:"number"`
			Distribution string `json:"distribution"`
			BuildFlavor  string `json:"build_flavor"`
		} `json:"version"`
		Tagline string `json:"tagline"`
	}
	if err := json.Unmarshal(body, &root); err != nil {
		return Info{}, notSearchEngine(name, base, "/", status, hdr, "the body is not JSON")
	}
	if root.Version.Number == "" {
		return Info{}, notSearchEngine(name, base, "/", status, hdr, "no version.number in the JSON")
	}
	info := Info{ClusterName: root.ClusterName}
	switch {
	case root.Version.Distribution == "opensearch":
		info.Flavor, info.Distribution = OpenSearch, "opensearch"
	case esHeader || root.Tagline == "You Know, for Search":
		info.Flavor, info.Distribution = Elasticsearch, root.Version.BuildFlavor
	default:
		return Info{}, notSearchEngine(name, base, "/", status, hdr,
			fmt.Sprintf("version %q without the Elasticsearch tagline, X-Elastic-Product or version.distribution opensearch", root.Version.Number))
	}
	if info.Version, err = parseVersion(root.Version.Number); err != nil {
		return Info{}, fmt.Errorf("connect cluster %s at %s: %w", name, base, err)
	}
	return info, nil
}

// detectFromNodes reads the flavor-Elasticsearch version from the nodes info API; with
// several nodes (a rolling upgrade) the lowest version is the one that constrains us.
func detectFromNodes(ctx context.Context, hc *http.Client, name, base string) (Info, error) {
	const path = "/_nodes/_all?filter_path=cluster_name,nodes.*.version,nodes.*.build_flavor"
	status, hdr, body, err := get(ctx, hc, name, base, path)
	if err != nil {
		return Info{}, err
	}
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		return Info{}, fmt.Errorf("connect cluster %s at %s: %w (status %d on GET /_nodes): %s",
			name, base, ErrAuth, status, errorReason(body))
	}
	if status != http.StatusOK {
		return Info{}, fmt.Errorf("connect cluster %s at %s: GET / is not served and GET /_nodes answered status %d: %s",
			name, base, status, errorReason(body))
	}
	var nodes struct {
		ClusterName string `json:"cluster_name"`
		Nodes       map[string]struct {
			Version     string `json:"version"`
			BuildFlavor string `json:"build_flavor"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(body, &nodes); err != nil || len(nodes.Nodes) == 0 {
		return Info{}, notSearchEngine(name, base, "/_nodes", status, hdr, "no nodes listed")
	}
	info := Info{Flavor: Elasticsearch, ClusterName: nodes.ClusterName}
	first := true
	for _, n := range nodes.Nodes {
		v, err := parseVersion(n.Version)
		if err != nil {
			return Info{}, fmt.Errorf("connect cluster %s at %s: %w", name, base, err)
		}
		if first || v.less(info.Version) {
			info.Version, info.Distribution = v, n.BuildFlavor
			first = false
		}
	}
	return info, nil
}

func get(ctx context.Context, hc *http.Client, name, base, path string) (int, http.Header, []byte, error) {
	u := strings.TrimRight(base, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("build request for cluster %s: %w", name, err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, &TransportError{Cluster: name, URL: base, Err: unwrapURLError(err)}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxDetectBody))
	if err != nil {
		return 0, nil, nil, &TransportError{Cluster: name, URL: base, Err: fmt.Errorf("read GET %s: %w", path, err)}
	}
	return res.StatusCode, res.Header, body, nil
}

// unwrapURLError drops net/http's `Get "http://...":` prefix: TransportError names the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func notSearchEngine(name, base, path string, status int, hdr http.Header, why string) error {
	ct := hdr.Get("Content-Type")
	if ct == "" {
		ct = "no content type"
	}
	msg := fmt.Sprintf("connect cluster %s at %s: %%w: GET %s answered status %d (%s)", name, base, path, status, ct)
	if why != "" {
		msg += ": " + why
	}
	return fmt.Errorf(msg+"; is the URL pointing at Elasticsearch or OpenSearch?", ErrNotSearchEngine)
}

func isJSON(h http.Header) bool {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return mt == "application/json"
}
