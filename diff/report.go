package diff

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wyehq/wye/internal/runreport"
)

// Status of a diff.
const (
	StatusEqual     = "equal"     // every compared cluster equals the reference
	StatusDifferent = "different" // some document differs
	StatusFailed    = "failed"    // some cluster could not be compared (Problems say why)
)

// Report is what a diff found: counts only, so it stays small however large the indices are.
// The ids (and the paths that differ) are in IDsFile.
type Report struct {
	Status    string    `json:"status"`
	Reference string    `json:"reference"` // a cluster name, or "mysql"
	Content   string    `json:"content"`   // all, none, sample:N
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	Seconds   float64   `json:"duration_seconds"`
	// Fetched counts the documents read in full (with _source), every cluster together.
	Fetched  int64     `json:"documents_fetched_in_full"`
	Entities []*Entity `json:"entities"`
	IDsFile  string    `json:"ids_file,omitempty"`
	Problems []string  `json:"problems,omitempty"`
}

// Entity is one entity's part of the report.
type Entity struct {
	Name    string   `json:"entity"`
	Index   string   `json:"index"`
	Seconds float64  `json:"duration_seconds"`
	Pairs   []*Tally `json:"pairs"`
}

// Tally is what one entity's diff found on one cluster against the reference.
type Tally struct {
	Reference string `json:"reference"`
	Cluster   string `json:"cluster"`
	Compared  int64  `json:"compared"` // the reference's documents looked up on the cluster
	Equal     int64  `json:"equal"`
	// ContentChecked counts the documents whose content was compared (the rest: ids and versions).
	ContentChecked int64  `json:"content_checked"`
	Missing        int64  `json:"missing"`    // in the reference, not on the cluster
	Extra          int64  `json:"extra"`      // on the cluster, not in the reference
	Different      int64  `json:"different"`  // other content at the same version (or against MySQL)
	EmptyNull      int64  `json:"empty_null"` // [] / null / absent field
	Behind         int64  `json:"behind"`     // the cluster's version is lower: still after the rechecks
	Ahead          int64  `json:"ahead"`      // the reference's version is lower: still after the rechecks
	Rechecked      int64  `json:"rechecked"`  // lag differences read again; those found equal then are in Equal
	Fetched        int64  `json:"documents_fetched_in_full"`
	Error          string `json:"error,omitempty"`
}

// Differences is the number of documents in a class other than equal.
func (t *Tally) Differences() int64 {
	return t.Missing + t.Extra + t.Different + t.EmptyNull + t.Behind + t.Ahead
}

func (t *Tally) count(c Class) {
	switch c {
	case Equal:
		t.Equal++
	case Missing:
		t.Missing++
	case Extra:
		t.Extra++
	case Different:
		t.Different++
	case EmptyNull:
		t.EmptyNull++
	case Behind:
		t.Behind++
	case Ahead:
		t.Ahead++
	}
}

// Write writes the report as indented JSON to path (atomically: a reader never sees half).
func (r *Report) Write(path string) error { return runreport.WriteJSON(path, r) }

// Summary is the one-screen text of the report.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "diff docs against %s: %s in %s; content %s; %d documents fetched in full\n", r.Reference, r.Status,
		time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond), r.Content, r.Fetched)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "entity\tcluster\tcompared\tequal\tmissing\textra\tdifferent\tempty/null\tbehind\tahead\tfetched\tseconds\t")
	for _, e := range r.Entities {
		for _, t := range e.Pairs {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t\n", e.Name, t.Cluster, t.Compared, t.Equal,
				t.Missing, t.Extra, t.Different, t.EmptyNull, t.Behind, t.Ahead, t.Fetched, e.Seconds)
		}
	}
	tw.Flush()
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	return b.String()
}

// ids writes the id list, gzip'd: one line per document found different,
// "class<TAB>cluster<TAB>entity<TAB>id<TAB>detail", detail being the paths that differ
// (comma-separated) or the two versions. Safe for concurrent use; a nil list writes nothing.
type ids struct{ *runreport.Lines }

func openIDs(path string) (*ids, error) {
	l, err := runreport.Create(path)
	if err != nil {
		return nil, err
	}
	return &ids{l}, nil
}

func (l *ids) add(class, cluster, entity, id, detail string) {
	if l != nil {
		l.Line(class, cluster, entity, id, detail)
	}
}

func (l *ids) close() error {
	if l == nil {
		return nil
	}
	return l.Close()
}

// idsPath is the id list beside the report at report.
func idsPath(report string) string { return strings.TrimSuffix(report, ".json") + ".ids.gz" }
