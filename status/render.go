package status

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for a terminal: one line per cluster, cdc, the queues, the
// last nightly run, then one line per problem.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tROLE\tEPOCH\tENGINE\tHEALTH\tMAPPING\tDRIFT\tDOCUMENTS\tHIGHEST VERSION\tBEHIND MASTER\tFAILED\tLEDGER\tOLDEST")
	for _, c := range r.Clusters {
		health := c.Health
		if !c.Reachable {
			health = "unreachable"
		}
		oldest := "-"
		if !c.LedgerOldest.IsZero() {
			oldest = r.Time.Sub(c.LedgerOldest).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", c.Name, c.Role, c.Epoch, dash(c.Engine), health,
			dash(c.Mapping), cut(c.Drift, 40), docs(c.Docs), c.MaxV, dash(c.Behind), r.failed(c), c.Ledger, oldest)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	d := r.CDC
	leader := d.Leader
	if leader == "" {
		leader = "none"
	}
	fmt.Fprintf(w, "\ncdc: leader %s  epoch %d  checkpoint %s  source %s  lag %s\n", leader, d.Epoch, dash(d.Position), dash(d.Head), dash(d.Lag))
	if len(r.Queues) > 0 {
		var qs []string
		for _, q := range r.Queues {
			n := fmt.Sprint(q.Depth)
			if q.Depth < 0 {
				n = "not declared"
			}
			qs = append(qs, q.Name+" "+n)
		}
		fmt.Fprintf(w, "queues: %s\n", strings.Join(qs, "  "))
	}
	if n := r.Nightly; n != nil {
		fmt.Fprintf(w, "last nightly: run %d %s at %s\n", n.ID, n.Status, n.Finished.Format(time.RFC3339))
	} else {
		fmt.Fprintln(w, "last nightly: none finished")
	}
	if p := r.Promote; p != nil {
		fmt.Fprintf(w, "last promote: #%d %s -> %s %s at %s", p.ID, p.From, p.To, p.Outcome, p.Finished.Format(time.RFC3339))
		if p.Epoch > 0 {
			fmt.Fprintf(w, " (epoch %d)", p.Epoch)
		}
		fmt.Fprintf(w, " by %s", p.Who)
		if p.Message != "" {
			fmt.Fprintf(w, ": %s", cut(p.Message, 120))
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, "last promote: none")
	}
	if r.Healthy() {
		_, err := fmt.Fprintln(w, "healthy")
		return err
	}
	fmt.Fprintf(w, "%d %s:\n", len(r.Problems), plural(len(r.Problems), "problem"))
	for _, p := range r.Problems {
		fmt.Fprintln(w, "  "+p)
	}
	return nil
}

// failed is the FAILED column: the share with its source.
func (r *Report) failed(c *ClusterStatus) string {
	if c.FailedShare != nil {
		return fmt.Sprintf("%.1f%% (metrics, %s)", 100**c.FailedShare, r.FailedWindow)
	}
	if r.FailedSource == "metrics" {
		return "- (metrics)"
	}
	return fmt.Sprintf("%d ids (ledger, %s)", int64(c.Failed), r.FailedWindow)
}

func docs(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
