package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/indexer/consumer"
)

func init() { subcommands = append(subcommands, newParkedCmd) }

// newParkedCmd is `wye parked list|show|replay`: inspect the parked queue and put its
// messages back into the change queue once their cause is fixed (docs/indexer.md, "Parked
// messages").
func newParkedCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "parked",
		Short: "Inspect the parked queue and replay its messages once the cause is fixed",
		Long: "The indexer parks what it cannot write (permanent refusals, exhausted retries, poison " +
			"messages) with x-wye-* headers. list and show read the parked queue without consuming it; " +
			"replay puts the matching messages back into the change queue, acking each from the parked " +
			"queue only after the broker confirmed its publish. See docs/indexer.md, \"Parked messages\".",
		Args: cobra.NoArgs,
	}
	d := config.Default()
	pf := cmd.PersistentFlags()
	pf.String("parked-queue", d.AMQP.Parked, "the parked queue")
	pf.Int("limit", consumer.DefaultParkedLimit, "read at most this many parked messages (they are held unacked until the command ends)")
	bindKeys(pf, "parked-queue", "amqp.parked")
	cmd.AddCommand(newParkedListCmd(g), newParkedShowCmd(g), newParkedReplayCmd(g))
	return cmd
}

// parkedOptions loads the configuration and the queue options of a parked subcommand.
func parkedOptions(cmd *cobra.Command, g *globalFlags) (consumer.ParkedOptions, error) {
	cfg, err := loadConfig(cmd, g)
	if err != nil {
		return consumer.ParkedOptions{}, err
	}
	limit, err := cmd.Flags().GetInt("limit")
	if err != nil {
		return consumer.ParkedOptions{}, usageError{err}
	}
	if limit < 1 {
		return consumer.ParkedOptions{}, usageError{fmt.Errorf("--limit: %d: want 1 or more", limit)}
	}
	return consumer.ParkedOptions{URL: cfg.AMQP.URLWithPassword(), Queue: cfg.AMQP.Queue, Parked: cfg.AMQP.Parked, Limit: limit}, nil
}

func newParkedListCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Count parked messages by cluster, error type and reason, oldest first",
		Long: "Count the parked messages by cluster, error type and reason (cut to " + strconv.Itoa(consumer.ParkedReasonMax) +
			" characters), the group whose oldest message was first seen earliest first, plus the total. " +
			"Ids and values in reasons are masked ('…') so that one failure is one group. ID names a message of " +
			"the group for `wye parked show`. Nothing is consumed.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := parkedOptions(cmd, g)
			if err != nil {
				return err
			}
			sum, err := consumer.SummarizeParked(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if sum.Groups == nil {
					sum.Groups = []consumer.ParkedGroup{}
				}
				return enc.Encode(sum)
			}
			return printSummary(cmd.OutOrStdout(), opts.Parked, sum)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return cmd
}

func printSummary(w io.Writer, queue string, sum consumer.ParkedSummary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COUNT\tOLDEST FIRST SEEN\tCLUSTER\tERROR TYPE\tID\tREASON")
	for _, gr := range sum.Groups {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", gr.Count, when(gr.OldestAt), orDash(gr.Cluster), orDash(gr.ErrorType), gr.FirstID, oneLine(gr.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "total: %d parked in %s\n", sum.Total, queue)
	if err == nil && sum.Remaining > 0 {
		_, err = fmt.Fprintf(w, "not read: %d more beyond --limit\n", sum.Remaining)
	}
	return err
}

func newParkedShowCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show N|ID",
		Short: "Print one parked message, by position or id (as in list): headers and body",
		Long: "Print the headers and the body (decompressed if its content-encoding is zstd) of the parked " +
			"message with that id (the ID column of list and replay), or of the Nth message of the parked " +
			"queue in its current order. Reads and returns may rotate the queue's order; the id is stable. " +
			"Nothing is consumed.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			sel := args[0]
			if n, err := strconv.Atoi(sel); (err == nil && n < 1) || (err != nil && !isParkedID(sel)) {
				return usageError{fmt.Errorf("show: %q: want a position (1 or more) or a 12-character id", sel)}
			}
			opts, err := parkedOptions(cmd, g)
			if err != nil {
				return err
			}
			if n, err := strconv.Atoi(sel); err == nil {
				opts.Limit = max(opts.Limit, n)
			}
			p, err := consumer.ShowParked(cmd.Context(), opts, sel)
			if errors.Is(err, consumer.ErrNoParked) {
				return fmt.Errorf("show parked message %s: not in the first %d messages of %s", sel, opts.Limit, opts.Parked)
			}
			if err != nil {
				return err
			}
			return printParked(cmd.OutOrStdout(), p)
		},
	}
	return cmd
}

func printParked(w io.Writer, p consumer.Parked) error {
	fmt.Fprintf(w, "id: %s\nposition: %d\n", p.ID, p.Position)
	if p.Encoding != "" {
		fmt.Fprintf(w, "content-encoding: %s\n", p.Encoding)
	}
	keys := make([]string, 0, len(p.Headers))
	for k := range p.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s: %v\n", k, p.Headers[k])
	}
	body, err := p.PlainBody()
	if err != nil {
		fmt.Fprintf(w, "body (%d bytes, %v)\n", len(p.Body), err)
		return nil
	}
	_, err = fmt.Fprintf(w, "\n%s\n", body)
	return err
}

func newParkedReplayCmd(g *globalFlags) *cobra.Command {
	var f consumer.ParkedFilter
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Publish the matching parked messages back to the change queue",
		Long: "Publish every parked message that matches the filters (all of them without filters) back to the " +
			"change queue (amqp.queue), same body and content-encoding, without x-wye-target: its entity is " +
			"re-read and written to every cluster. Each message is acked from the parked queue only after the " +
			"broker confirmed its publish, so an interrupted replay loses nothing (a message may be replayed " +
			"twice; versioned writes make that harmless). Messages that do not match stay parked. Only the " +
			"messages parked when the replay starts are read. --dry-run prints what would be replayed.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.OlderThan < 0 {
				return usageError{fmt.Errorf("--older-than: %s: want a positive duration", f.OlderThan)}
			}
			opts, err := parkedOptions(cmd, g)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			verb := "replaying"
			if dryRun {
				verb = "would replay"
			}
			each := func(p consumer.Parked) {
				fmt.Fprintf(out, "%s %s: cluster=%s error_type=%s first_seen=%s reason=%s\n", verb, p.ID,
					orDash(p.Cluster), orDash(p.ErrorType), when(p.FirstSeen), oneLine(consumer.CutReason(p.Reason)))
			}
			c, err := consumer.ReplayParked(cmd.Context(), opts, f, time.Now(), dryRun, each)
			if err != nil {
				if c.Replayed > 0 && !dryRun {
					fmt.Fprintf(out, "failed after replaying %d (confirmed, acked); every other message stays parked\n", c.Replayed)
				}
				return err
			}
			if dryRun {
				fmt.Fprintf(out, "dry run: would replay %d, keep %d (nothing changed)\n", c.Replayed, c.Kept)
			} else {
				fmt.Fprintf(out, "replayed %d, kept %d\n", c.Replayed, c.Kept)
			}
			if c.Remaining > 0 {
				fmt.Fprintf(out, "not read: %d more beyond --limit (run replay again)\n", c.Remaining)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Cluster, "cluster", "", "only messages parked by this cluster (x-wye-cluster)")
	fl.StringVar(&f.ErrorType, "error-type", "", "only messages of this error type (x-wye-error-type, e.g. mapper_parsing_exception, poison)")
	fl.StringVar(&f.ReasonContains, "reason-contains", "", "only messages whose reason contains this text")
	fl.DurationVar(&f.OlderThan, "older-than", 0, "only messages first seen longer ago than this")
	fl.BoolVar(&dryRun, "dry-run", false, "print what would be replayed; publish and ack nothing")
	return cmd
}

// isParkedID reports whether s looks like a consumer.Parked ID.
func isParkedID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// usageArgs makes an argument check's failure a usage error (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a reason on its line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
