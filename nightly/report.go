package nightly

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wyehq/wye/internal/runreport"
)

// Report is what a run did: counts only, so it stays small however large the tables are
// (docs/nightly.md, "The report"). The ids are in IDsFiles.
type Report struct {
	Run          int64     `json:"run"`
	Status       string    `json:"status"` // equal: every cluster equals MySQL; failed: some cluster failed
	Resumes      int       `json:"resumes"`
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished"`
	Seconds      float64   `json:"duration_seconds"`
	DryRun       bool      `json:"dry_run,omitempty"`
	RewriteAll   bool      `json:"rewrite_all,omitempty"`
	IntoNewIndex bool      `json:"into_new_index,omitempty"`
	Entities     []*Entity `json:"entities"`
	// MarksResolved counts the resync marks cdc left that this run covered.
	MarksResolved int      `json:"resync_marks_resolved"`
	IDsFiles      []string `json:"ids_files,omitempty"` // one per attempt (a resumed run has several)
	Problems      []string `json:"problems,omitempty"`  // why the status is failed, one line each
}

// Entity is one entity's part of the report.
type Entity struct {
	Name     string   `json:"entity"`
	Rows     int64    `json:"rows"` // root rows read from MySQL
	Chunks   int      `json:"chunks"`
	Seconds  float64  `json:"duration_seconds"`
	FirstV   int64    `json:"first_snapshot_version,omitempty"`
	LastV    int64    `json:"last_snapshot_version,omitempty"`
	Resumed  bool     `json:"resumed,omitempty"` // this entity continued from a killed attempt
	Clusters []*Tally `json:"clusters"`
}

// Tally is what one entity's resync did on one cluster.
type Tally struct {
	Cluster   string `json:"cluster"`
	Index     string `json:"index"`
	Equal     int64  `json:"equal"`
	Missing   int64  `json:"missing"`   // written (or, dry run, would be)
	Different int64  `json:"different"` // written (or, dry run, would be)
	Written   int64  `json:"written"`
	Skipped   int64  `json:"skipped_newer"` // a stream write newer than the snapshot was there
	Orphans   int64  `json:"orphans"`       // documents MySQL no longer has
	Deleted   int64  `json:"deleted"`
	// Refused is set when the orphans exceed the delete limit: none of them were deleted.
	Refused  bool             `json:"mass_delete_refused,omitempty"`
	Failed   int64            `json:"failed"`
	Failures map[string]int64 `json:"failures,omitempty"` // by class
	Error    string           `json:"error,omitempty"`    // the cluster was left out of the run
}

func (t *Tally) fail(class string, n int64) {
	if n == 0 {
		return
	}
	t.Failed += n
	if t.Failures == nil {
		t.Failures = map[string]int64{}
	}
	t.Failures[class] += n
}

// add adds the counts of o (another attempt's, or another step's) to t.
func (t *Tally) add(o *Tally) {
	t.Equal += o.Equal
	t.Missing += o.Missing
	t.Different += o.Different
	t.Written += o.Written
	t.Skipped += o.Skipped
	t.Orphans += o.Orphans
	t.Deleted += o.Deleted
	t.Refused = t.Refused || o.Refused
	for c, n := range o.Failures {
		t.fail(c, n)
	}
	t.Error = cmp.Or(t.Error, o.Error)
}

func (r *Report) failed() bool { return len(r.Problems) > 0 }

// Write writes the report as indented JSON to path (atomically: a reader never sees half).
func (r *Report) Write(path string) error { return runreport.WriteJSON(path, r) }

// Summary is the one-screen text of the report.
func (r *Report) Summary() string {
	var b strings.Builder
	mode := ""
	if r.DryRun {
		mode = " (dry run: nothing written)"
	}
	fmt.Fprintf(&b, "nightly run %d: %s in %s%s", r.Run, r.Status, time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond), mode)
	if r.Resumes > 0 {
		fmt.Fprintf(&b, ", resumed %d time(s)", r.Resumes)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "entity\tcluster\trows\tequal\tmissing\tdifferent\twritten\tskipped\torphans\tdeleted\tfailed\tseconds\t")
	for _, e := range r.Entities {
		for _, t := range e.Clusters {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t\n", e.Name, t.Cluster, e.Rows, t.Equal, t.Missing,
				t.Different, t.Written, t.Skipped, t.Orphans, t.Deleted, t.Failed, e.Seconds)
		}
	}
	tw.Flush()
	if r.MarksResolved > 0 {
		fmt.Fprintf(&b, "resync marks resolved: %d\n", r.MarksResolved)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	return b.String()
}

// ids writes the id lists of one attempt, gzip'd: one line per document, "what cluster entity
// id", what being missing, different, deleted, orphan (found by a dry run, not deleted) or
// failed:<class>. Safe for concurrent use; a nil list writes nothing.
type ids struct{ *runreport.Lines }

func openIDs(path string) (*ids, error) {
	l, err := runreport.Create(path)
	if err != nil {
		return nil, err
	}
	return &ids{l}, nil
}

func (l *ids) add(what, cluster, entity string, list []string) {
	if l != nil {
		l.Each([]string{what, cluster, entity}, list)
	}
}

func (l *ids) close() error {
	if l == nil {
		return nil
	}
	return l.Close()
}

// sortedTallies returns the tallies of m in the order of names.
func sortedTallies(m map[string]*Tally, names []string) []*Tally {
	out := make([]*Tally, 0, len(m))
	for _, n := range names {
		if t, ok := m[n]; ok {
			out = append(out, t)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(names, n) {
			out = append(out, m[n])
		}
	}
	return out
}
