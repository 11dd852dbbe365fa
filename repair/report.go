package repair

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a repair did, per cluster.
type Report struct {
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"duration_seconds"`
	DryRun   bool      `json:"dry_run,omitempty"`
	Clusters []*Tally  `json:"clusters"`
}

// Tally is what the repair did on one cluster. Every pending entry it read ends in exactly one
// of Repaired, Deleted, Current, Failed or (dry run) Would.
type Tally struct {
	Cluster  string `json:"cluster"`
	Pending  int64  `json:"pending"`         // ledger entries read
	Repaired int64  `json:"repaired"`        // document written, fetched back at its version or newer
	Deleted  int64  `json:"deleted"`         // root row gone: versioned delete, fetched back gone
	Current  int64  `json:"already_current"` // the cluster held this version or a newer one already
	Would    int64  `json:"would_repair,omitempty"`
	// Grew counts entries repaired and verified whose slave missed a newer write meanwhile:
	// not marked, the next repair takes them (they are counted in Repaired, Deleted or Current too).
	Grew     int64            `json:"missed_again"`
	Failed   int64            `json:"failed"`
	Failures map[string]int64 `json:"failures,omitempty"` // by class (FailRetryable, ...)
	Error    string           `json:"error,omitempty"`    // the cluster could not be repaired at all
}

// Marked is how many entries the repair marked repaired on the cluster.
func (t *Tally) Marked() int64 { return t.Repaired + t.Deleted + t.Current - t.Grew }

// OK reports whether every cluster's entries were repaired (or, dry run, read).
func (r *Report) OK() bool {
	for _, t := range r.Clusters {
		if t.Failed > 0 || t.Error != "" {
			return false
		}
	}
	return true
}

// Summary is the one-screen account of the repair.
func (r *Report) Summary() string {
	var b strings.Builder
	what := "repair"
	if r.DryRun {
		what = "repair (dry run: nothing written or marked)"
	}
	fmt.Fprintf(&b, "%s: %d %s in %s\n", what, len(r.Clusters), plural(len(r.Clusters), "cluster"),
		time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tPENDING\tREPAIRED\tDELETED\tALREADY CURRENT\tMISSED AGAIN\tFAILED\tFAILURES")
	for _, t := range r.Clusters {
		if t.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t%s\n", t.Cluster, t.Error)
			continue
		}
		repaired := fmt.Sprint(t.Repaired)
		if r.DryRun {
			repaired = fmt.Sprintf("(would %d)", t.Would)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%d\t%s\n", t.Cluster, t.Pending, repaired, t.Deleted, t.Current, t.Grew, t.Failed, failures(t.Failures))
	}
	tw.Flush()
	for _, t := range r.Clusters {
		switch {
		case t.Error != "":
			fmt.Fprintf(&b, "%s: not repaired: %s\n", t.Cluster, t.Error)
		case t.Pending == 0:
			fmt.Fprintf(&b, "%s: nothing to repair: the ledger has no pending entry\n", t.Cluster)
		case !r.DryRun:
			fmt.Fprintf(&b, "%s: %d ids repaired (%d written, %d deleted, %d already current)", t.Cluster, t.Marked(), t.Repaired, t.Deleted, t.Current)
			if t.Grew > 0 {
				fmt.Fprintf(&b, "; %d missed a newer write meanwhile and stay pending", t.Grew)
			}
			if t.Failed > 0 {
				fmt.Fprintf(&b, "; %d failed and stay pending (%s)", t.Failed, failures(t.Failures))
			}
			fmt.Fprintln(&b)
		}
		if t.Failures[FailBehind] > 0 {
			fmt.Fprintf(&b, "%s: %d entries missed a version above the source snapshot's: cdc's checkpoint lags a source change, "+
				"or the source read is another server than cdc follows; run the repair again once cdc has saved a checkpoint\n",
				t.Cluster, t.Failures[FailBehind])
		}
	}
	return b.String()
}

func failures(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}
