package diff

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"
)

// Corpus is a file of named searches (docs/diff.md, "A corpus of queries").
type Corpus struct {
	Queries []Query `yaml:"queries"`
}

// Query is one named search.
type Query struct {
	Name string `yaml:"name"`
	// Entity names the configured entity whose index (alias) is searched and whose version
	// field is left out of the hits' _source; Index names an index instead.
	Entity string `yaml:"entity"`
	Index  string `yaml:"index"`
	// TopK is how many hits are compared, in order (default: the body's size, else 10).
	TopK int `yaml:"top_k"`
	// Body is the search body (query, sort, size, aggs); track_total_hits is set to true.
	Body map[string]any `yaml:"body"`

	versionField string
}

// LoadCorpus reads a corpus file; unknown keys, a query without a name or body, and two queries
// of one name are errors naming the query.
func LoadCorpus(path string) (Corpus, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Corpus{}, fmt.Errorf("read corpus: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Corpus
	if err := dec.Decode(&c); err != nil {
		return Corpus{}, fmt.Errorf("read corpus %s: %w", path, err)
	}
	seen := map[string]bool{}
	for i, q := range c.Queries {
		where := fmt.Sprintf("%s: queries[%d]", path, i)
		switch {
		case q.Name == "":
			return Corpus{}, fmt.Errorf("%s.name: must not be empty", where)
		case seen[q.Name]:
			return Corpus{}, fmt.Errorf("%s.name: %q is used twice", where, q.Name)
		case q.Body == nil:
			return Corpus{}, fmt.Errorf("%s.body: must not be empty", where)
		case (q.Entity == "") == (q.Index == ""):
			return Corpus{}, fmt.Errorf("%s: want one of entity and index", where)
		case q.TopK < 0:
			return Corpus{}, fmt.Errorf("%s.top_k: must not be negative", where)
		}
		seen[q.Name] = true
	}
	if len(c.Queries) == 0 {
		return Corpus{}, fmt.Errorf("%s: no queries", path)
	}
	return c, nil
}

// Searcher runs a search body on an index and returns the answer's body; a cluster adapter
// (cmd/wye) wraps *cluster.Client.
type Searcher interface {
	Search(ctx context.Context, index string, body []byte) ([]byte, error)
	// Refresh makes the index's writes so far visible to searches (_refresh).
	Refresh(ctx context.Context, index string) error
}

// Searched is one cluster a corpus runs on.
type Searched struct {
	Name     string
	Searcher Searcher
}

// QueriesOptions configure one run of a corpus.
type QueriesOptions struct {
	Corpus   Corpus
	Clusters []Searched // Clusters[0] is the reference
	// Entity gives an entity's index (alias) and version field; false: not configured.
	Entity func(name string) (index, versionField string, ok bool)
	Report string // path of the report JSON; the differences go beside it (.ids.gz); "": none
	Logger *slog.Logger
}

// QueriesReport is what a run of a corpus found.
type QueriesReport struct {
	Status    string         `json:"status"` // equal, different, failed
	Reference string         `json:"reference"`
	Started   time.Time      `json:"started"`
	Finished  time.Time      `json:"finished"`
	Seconds   float64        `json:"duration_seconds"`
	Queries   int            `json:"queries"`
	Pairs     []*QueryTally  `json:"pairs"`
	Different []QueryFinding `json:"different,omitempty"` // the first ones (all in DiffFile)
	DiffFile  string         `json:"ids_file,omitempty"`
	Problems  []string       `json:"problems,omitempty"`
}

// QueryTally counts one cluster's answers against the reference's.
type QueryTally struct {
	Cluster   string `json:"cluster"`
	Equal     int    `json:"equal"`
	Different int    `json:"different"`
	Failed    int    `json:"failed"` // the search failed on the cluster (or on the reference)
}

// QueryFinding is one query that answered differently on one cluster: its first differences.
type QueryFinding struct {
	Query   string   `json:"query"`
	Cluster string   `json:"cluster"`
	What    []string `json:"what"`
}

// maxFindings bounds the findings the report itself holds (the file beside it holds them all).
const maxFindings = 20

// RunQueries runs every query of the corpus on every cluster and compares each answer with the
// reference's: the total (track_total_hits: true), the ids of the top-k hits and their order
// (hits of equal score, or equal sort values, may come in any order among themselves), the
// aggregations (buckets and values), and the hits' _source, its JSON shape included (an array
// that became null is a difference).
func RunQueries(ctx context.Context, opts QueriesOptions) (*QueriesReport, error) {
	if len(opts.Clusters) < 2 {
		return nil, errors.New("diff queries: at least two clusters to compare")
	}
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	rep := &QueriesReport{Reference: opts.Clusters[0].Name, Started: time.Now(), Queries: len(opts.Corpus.Queries)}
	var list *ids
	if opts.Report != "" {
		rep.DiffFile = idsPath(opts.Report)
		var err error
		if list, err = openIDs(rep.DiffFile); err != nil {
			return nil, err
		}
	}
	tallies := make([]*QueryTally, len(opts.Clusters)-1)
	for i, c := range opts.Clusters[1:] {
		tallies[i] = &QueryTally{Cluster: c.Name}
	}
	rep.Pairs = tallies
	// Every cluster's index is refreshed once before its first search: a search sees only what
	// the last refresh made visible, and a shard idle for a while skips its periodic refreshes,
	// so equal clusters would give different totals. One that cannot be refreshed (a role
	// without the privilege) is searched as it is.
	refreshed := map[string]bool{}
	for _, q := range opts.Corpus.Queries {
		index := q.Index
		if q.Entity != "" {
			idx, vf, ok := opts.Entity(q.Entity)
			if !ok {
				list.close()
				return nil, fmt.Errorf("diff queries: query %q: entity %q is not configured", q.Name, q.Entity)
			}
			index, q.versionField = idx, vf
		}
		body, k, err := q.request()
		if err != nil {
			list.close()
			return nil, err
		}
		answers := make([]*answer, len(opts.Clusters))
		errs := make([]error, len(opts.Clusters))
		for _, c := range opts.Clusters {
			if key := c.Name + "\x00" + index; !refreshed[key] {
				refreshed[key] = true
				if err := c.Searcher.Refresh(ctx, index); err != nil {
					opts.Logger.Warn("could not refresh the index before searching it", "cluster", c.Name, "index", index, "err", err)
				}
			}
		}
		for i, c := range opts.Clusters {
			var b []byte
			if b, errs[i] = c.Searcher.Search(ctx, index, body); errs[i] == nil {
				answers[i], errs[i] = decodeAnswer(b)
			}
		}
		if ctx.Err() != nil {
			list.close()
			return rep, ctx.Err()
		}
		for i, c := range opts.Clusters[1:] {
			t := tallies[i]
			if err := cmp.Or(errs[0], errs[i+1]); err != nil {
				t.Failed++
				rep.Problems = append(rep.Problems, fmt.Sprintf("query %s on %s: %v", q.Name, cmp.Or(map[bool]string{true: rep.Reference}[errs[0] != nil], c.Name), err))
				continue
			}
			what := compareAnswers(answers[0], answers[i+1], k, q.versionField)
			if len(what) == 0 {
				t.Equal++
				continue
			}
			t.Different++
			if len(rep.Different) < maxFindings {
				rep.Different = append(rep.Different, QueryFinding{Query: q.Name, Cluster: c.Name, What: what[:min(len(what), 5)]})
			}
			for _, w := range what {
				list.add("query", c.Name, q.Name, "", w)
			}
		}
	}
	if err := list.close(); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	rep.Finished = time.Now()
	rep.Seconds = rep.Finished.Sub(rep.Started).Seconds()
	rep.Status = StatusEqual
	for _, t := range tallies {
		if t.Different > 0 {
			rep.Status = StatusDifferent
		}
	}
	if len(rep.Problems) > 0 {
		rep.Status = StatusFailed
	}
	if opts.Report != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return rep, err
		}
		if err := os.WriteFile(opts.Report, append(b, '\n'), 0o644); err != nil {
			return rep, fmt.Errorf("write report: %w", err)
		}
	}
	return rep, nil
}

// Summary is the one-screen text of the report.
func (r *QueriesReport) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "diff queries against %s: %s in %s; %d queries\n", r.Reference, r.Status,
		time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond), r.Queries)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "cluster\tequal\tdifferent\tfailed\t")
	for _, t := range r.Pairs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", t.Cluster, t.Equal, t.Different, t.Failed)
	}
	tw.Flush()
	for _, f := range r.Different {
		fmt.Fprintf(&b, "different: query %s on %s: %s\n", f.Query, f.Cluster, strings.Join(f.What, "; "))
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	return b.String()
}

// request is the query's body with track_total_hits set, and the number of hits compared.
func (q Query) request() ([]byte, int, error) {
	body := make(map[string]any, len(q.Body)+1)
	for k, v := range q.Body {
		body[k] = v
	}
	body["track_total_hits"] = true
	k := q.TopK
	if k == 0 {
		k = 10
		if n, ok := body["size"].(int); ok {
			k = n
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, 0, fmt.Errorf("diff queries: query %q: body: %w", q.Name, err)
	}
	return b, k, nil
}

// answer is the part of a search answer compared.
type answer struct {
	Hits struct {
		Total struct {
			Value    int64  `json:"value"`
			Relation string `json:"relation"`
		} `json:"total"`
		Hits []struct {
			ID     string          `json:"_id"`
			Score  *float64        `json:"_score"`
			Sort   json.RawMessage `json:"sort"`
			Source json.RawMessage `json:"_source"`
		} `json:"hits"`
	} `json:"hits"`
	Aggregations json.RawMessage `json:"aggregations"`
}

func decodeAnswer(b []byte) (*answer, error) {
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("decode search answer: %w", err)
	}
	return &a, nil
}

// compareAnswers lists how o differs from r (nothing: the same answer).
func compareAnswers(r, o *answer, k int, versionField string) []string {
	var what []string
	if r.Hits.Total != o.Hits.Total {
		what = append(what, fmt.Sprintf("total %d (%s) against %d (%s)", o.Hits.Total.Value, o.Hits.Total.Relation,
			r.Hits.Total.Value, r.Hits.Total.Relation))
	}
	rh, oh := r.Hits.Hits[:min(k, len(r.Hits.Hits))], o.Hits.Hits[:min(k, len(o.Hits.Hits))]
	if len(rh) != len(oh) {
		what = append(what, fmt.Sprintf("%d hits against %d", len(oh), len(rh)))
	} else {
		// Runs of hits of equal rank (score, or sort values) must hold the same ids; a run cut by
		// k may end with other hits of that rank.
		for i := 0; i < len(rh); {
			j := i + 1
			for j < len(rh) && sameRank(rh[i].Score, rh[i].Sort, rh[j].Score, rh[j].Sort) {
				j++
			}
			want, got := map[string]bool{}, map[string]bool{}
			for n := i; n < j; n++ {
				want[rh[n].ID] = true
				got[oh[n].ID] = true
			}
			cut := j == len(rh)
			for n := i; n < j; n++ {
				if !want[oh[n].ID] && !(cut && sameRank(rh[i].Score, rh[i].Sort, oh[n].Score, oh[n].Sort)) {
					what = append(what, fmt.Sprintf("hit %d is %s, want one of %s", n+1, oh[n].ID, strings.Join(slices.Sorted(keys(want)), ",")))
					break
				}
			}
			i = j
		}
	}
	// The _source of every hit both answers hold, by id.
	bySource := map[string]json.RawMessage{}
	for _, h := range rh {
		bySource[h.ID] = h.Source
	}
	for _, h := range oh {
		src, ok := bySource[h.ID]
		if !ok || (src == nil) != (h.Source == nil) {
			continue
		}
		if src == nil {
			continue
		}
		d, err := Paths(src, h.Source, versionField)
		switch {
		case err != nil:
			what = append(what, fmt.Sprintf("hit %s: _source: %v", h.ID, err))
		case len(d.Paths) > 0:
			what = append(what, fmt.Sprintf("hit %s: _source differs at %s", h.ID, paths(d.Paths)))
		case len(d.Empty) > 0:
			what = append(what, fmt.Sprintf("hit %s: _source shape: [] / null / absent differ at %s", h.ID, paths(d.Empty)))
		}
	}
	if len(r.Aggregations) > 0 || len(o.Aggregations) > 0 {
		ra, oa := cmp.Or(string(r.Aggregations), "{}"), cmp.Or(string(o.Aggregations), "{}")
		d, err := Paths([]byte(ra), []byte(oa), "")
		switch {
		case err != nil:
			what = append(what, fmt.Sprintf("aggregations: %v", err))
		case !d.Same():
			what = append(what, "aggregations differ at "+paths(append(d.Paths, d.Empty...)))
		}
	}
	return what
}

// sameRank says two hits rank alike: the same sort values when the search sorts, else scores
// equal to a relative 1e-6 (engines and versions round scores differently).
func sameRank(s1 *float64, sort1 json.RawMessage, s2 *float64, sort2 json.RawMessage) bool {
	if len(sort1) > 0 || len(sort2) > 0 {
		return bytes.Equal(sort1, sort2)
	}
	if s1 == nil || s2 == nil {
		return s1 == nil && s2 == nil
	}
	return math.Abs(*s1-*s2) <= 1e-6*math.Max(1, math.Abs(*s1))
}

func keys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
