package mapping

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes v (a *Plan or []Result) as indented JSON, for machines.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// WriteTable writes a plan for people: one row per cluster and index, then the drift of
// each drifted index field by field, then the notes.
func (p *Plan) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tENGINE\tALIAS\tTARGET\tALIAS ON\tSTATUS\tPLAN")
	for _, c := range p.Clusters {
		if c.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\tERROR\t%s\n", c.Cluster, c.Error)
			continue
		}
		for _, ip := range c.Indices {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Cluster, c.Engine, ip.Alias, ip.Target,
				orDash(strings.Join(ip.AliasOn, ",")), strings.ToUpper(string(ip.Status)), ip.summary())
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	var b strings.Builder
	for _, c := range p.Clusters {
		for _, ip := range c.Indices {
			byIndex := map[string][]Drift{}
			var order []string
			for _, d := range ip.Drift {
				if byIndex[d.Index] == nil {
					order = append(order, d.Index)
				}
				byIndex[d.Index] = append(byIndex[d.Index], d)
			}
			for _, index := range order {
				fmt.Fprintf(&b, "\nDRIFT on cluster %s, index %s (- declared only, + live only, ~ changed):\n", c.Cluster, index)
				for _, d := range byIndex[index] {
					b.WriteString("  " + d.line() + "\n")
				}
			}
		}
	}
	for _, c := range p.Clusters {
		for _, ip := range c.Indices {
			if len(ip.Unmapped) == 0 {
				continue
			}
			fmt.Fprintf(&b, "\nUNMAPPED on cluster %s, index %s: the entity writes these fields, which the strict mapping "+
				"refuses (every document carrying one is parked):\n", c.Cluster, ip.Target)
			for _, f := range ip.Unmapped {
				b.WriteString("  - field " + f + "\n")
			}
		}
	}
	first := true
	for _, c := range p.Clusters {
		for _, ip := range c.Indices {
			for _, n := range ip.Notes {
				if first {
					b.WriteString("\n")
					first = false
				}
				fmt.Fprintf(&b, "note: cluster %s: %s\n", c.Cluster, n)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	return nil
}

func (ip IndexPlan) summary() string {
	switch ip.Status {
	case StatusFailed:
		return ip.Error
	case StatusConflict:
		return "CONFLICT: see the notes below"
	}
	var parts []string
	if len(ip.Unmapped) > 0 {
		parts = append(parts, fmt.Sprintf("UNMAPPED: %d entity field(s), see below", len(ip.Unmapped)))
	}
	if ip.Status == StatusDrift {
		parts = append(parts, fmt.Sprintf("DRIFT: %d difference(s), see below", len(ip.Drift)))
		if ip.targetDrifted() {
			return strings.Join(parts, "; ") + "; apply will not touch " + ip.Target
		}
	}
	for _, a := range ip.Actions {
		parts = append(parts, a.String())
	}
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, "; ")
}

func (d Drift) line() string {
	mark := map[Change]string{Added: "+", Removed: "-", Changed: "~"}[d.Change]
	what := d.Kind + " " + d.Field
	switch d.Change {
	case Added:
		return fmt.Sprintf("%s %s: live %s, not declared", mark, what, d.Live)
	case Removed:
		return fmt.Sprintf("%s %s: declared %s, missing live", mark, what, d.Declared)
	}
	return fmt.Sprintf("%s %s: declared %s, live %s", mark, what, d.Declared, d.Live)
}

// WriteResults writes the steps of apply, switch or gc as a table for people.
func WriteResults(w io.Writer, rs []Result) error {
	if len(rs) == 0 {
		_, err := fmt.Fprintln(w, "nothing to do")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tALIAS\tSTEP\tOUTCOME\tREASON")
	for _, r := range rs {
		step := r.Op
		switch {
		case r.From != "":
			step += " " + r.From + " -> " + r.Index
		case r.Index != "":
			step += " " + r.Index
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Cluster, r.Alias, step, strings.ToUpper(string(r.Outcome)), orDash(r.Reason))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
