package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/wyehq/wye/broker"
	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/control"
	indexersql "github.com/wyehq/wye/indexer/sql"
	"github.com/wyehq/wye/mapping"
	"github.com/wyehq/wye/status"
)

func init() { subcommands = append(subcommands, newStatusCmd) }

// statusProblems is a reading with problems: exit 1, after the report was printed.
type statusProblems struct{ n int }

func (e statusProblems) Error() string {
	return fmt.Sprintf("status: %d %s need attention (see above)", e.n, plural(e.n, "problem"))
}
func (e statusProblems) ExitCode() int { return exitFailure }

func newStatusCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	var watch, window time.Duration
	var metrics string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every cluster, cdc and the queues; exit 1 when something needs attention",
		Long: `status reads, without changing anything: per cluster its role and promote epoch
(cluster_roles), engine and version, health of wye's aliases, mapping drift, documents per
alias, the highest version applied and how far it trails the master's, the share of its writes
that failed (from the indexer's /metrics when reachable, else the ids the ledger recorded in the
window), its repair-ledger size and oldest entry; cdc's leader, epoch, checkpoint and lag behind
the source's binlog; the depth of the change queue, the retry tiers and the parked queue; the
last nightly run; the last promote (promote_journal: when, from, to, outcome, epoch, who).
Each problem is one line. Exit 0: healthy; 1: something needs attention;
2: usage or configuration. --watch redraws every interval until interrupted. See
docs/operations.md.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if watch < 0 || window <= 0 {
				return usageError{errors.New("status: --watch and --window must be positive durations")}
			}
			cfg, err := loadConfig(cmd, g)
			if err != nil {
				return err
			}
			if metrics == "" {
				metrics = cfg.Metrics.Listen
			}
			return runStatus(cmd.Context(), cfg, statusFlags{json: asJSON, watch: watch, window: window, metrics: metrics}, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	fl.DurationVar(&watch, "watch", 0, "read again every interval until interrupted (0: once)")
	fl.DurationVar(&window, "window", status.DefaultWindow, "the window of recent misses when the failed share comes from the ledger")
	fl.StringVar(&metrics, "metrics", "", "host:port of an indexer's /metrics for the failed share (default: metrics.listen)")
	return cmd
}

type statusFlags struct {
	json          bool
	watch, window time.Duration
	metrics       string
}

func runStatus(ctx context.Context, cfg *config.Config, f statusFlags, out io.Writer) error {
	model, err := newModel(cfg)
	if err != nil {
		return usageError{err}
	}
	store, src, closeAll, err := openStateAndSource(ctx, cfg, 1)
	if err != nil {
		return err
	}
	defer closeAll()

	opts := status.Options{Control: store, Window: f.window, Parked: cfg.AMQP.Parked,
		CDC:    statusCDC{cdc: store.CDC(control.CDCOptions{Name: cfg.CDC.Name}), name: cfg.CDC.Name, src: src},
		Queues: amqpQueues{url: cfg.AMQP.URLWithPassword()}}
	opts.QueueNames = append(opts.QueueNames, cfg.AMQP.Queue)
	for _, d := range cfg.Indexer.RetryDelays {
		opts.QueueNames = append(opts.QueueNames, broker.RetryQueue(cfg.AMQP.Queue, d))
	}
	opts.QueueNames = append(opts.QueueNames, cfg.AMQP.Parked)
	if f.metrics != "" {
		opts.Writes = metricsWrites{addr: f.metrics}
	}
	for _, e := range model.Entities() {
		if !slices.ContainsFunc(opts.Aliases, func(a status.Alias) bool { return a.Name == e.Index }) {
			opts.Aliases = append(opts.Aliases, status.Alias{Name: e.Index, VersionField: e.VersionField})
		}
	}
	set, setErr := statusMappings(cfg)
	var prev *status.Report
	for {
		rctx, cancel := context.WithTimeout(ctx, status.DefaultTimeout)
		opts.Clusters = statusClusters(rctx, cfg, set, setErr)
		opts.Previous = prev
		rep := status.Gather(rctx, opts)
		cancel()
		if f.watch > 0 && !f.json {
			fmt.Fprint(out, "\033[H\033[2J")
			fmt.Fprintf(out, "wye status at %s (every %s; Ctrl-C stops)\n\n", rep.Time.Format(time.RFC3339), f.watch)
		}
		if f.json {
			err = rep.WriteJSON(out)
		} else {
			err = rep.WriteTable(out)
		}
		if err != nil {
			return err
		}
		if f.watch == 0 || ctx.Err() != nil {
			if !rep.Healthy() {
				return statusProblems{len(rep.Problems)}
			}
			return nil
		}
		prev = rep
		select {
		case <-ctx.Done():
			if !rep.Healthy() {
				return statusProblems{len(rep.Problems)}
			}
			return nil
		case <-time.After(f.watch):
		}
	}
}

// statusMappings loads the mapping files for the drift check; an error says why drift is
// not checked (a deployment that does not use wye mapping has no files).
func statusMappings(cfg *config.Config) (*mapping.Set, error) {
	if cfg.Indexer.IndexTargets == config.IndexTargetsAlias {
		return nil, errors.New("indices not managed by wye mapping (indexer.index_targets: alias)")
	}
	set, err := mapping.Load(cfg.Mapping.Dir, mapping.LoadOptions{VersionField: cfg.Mapping.VersionField})
	if err != nil {
		return nil, fmt.Errorf("mapping files %s: %w", cfg.Mapping.Dir, err)
	}
	if err := checkEntities(cfg, set); err != nil {
		return nil, err
	}
	return set, nil
}

// statusClusters connects every cluster at once; one that cannot be connected has Err.
func statusClusters(ctx context.Context, cfg *config.Config, set *mapping.Set, setErr error) []status.Cluster {
	out := make([]status.Cluster, len(cfg.Clusters))
	var wg sync.WaitGroup
	for i, c := range cfg.Clusters {
		wg.Go(func() {
			s := status.Cluster{Name: c.Name, Configured: string(c.Role), Mapping: c.Mapping}
			client, err := cluster.New(clusterOptions(c))
			if err != nil {
				s.Err = err
				out[i] = s
				return
			}
			info := client.Info()
			s.Engine, s.About = client, info.Flavor.String()+" "+info.Version.Number
			s.Drift = func(ctx context.Context) (string, error) {
				if setErr != nil {
					return "", setErr
				}
				t := mapping.Cluster{Name: c.Name, Version: c.Mapping, API: client, Engine: mapping.EngineOf(info)}
				return driftLine(mapping.MakePlan(ctx, set, []mapping.Cluster{t}, mapping.Options{Prefix: cfg.Mapping.IndexPrefix}))
			}
			out[i] = s
		})
	}
	wg.Wait()
	return out
}

// driftLine sums up a one-cluster plan: "" when every index family is as declared.
func driftLine(p *mapping.Plan) (string, error) {
	var parts []string
	for _, c := range p.Clusters {
		if c.Error != "" {
			return "", errors.New(c.Error)
		}
		for _, ip := range c.Indices {
			switch {
			case ip.Status == mapping.StatusOK:
			case len(ip.Drift) > 0:
				parts = append(parts, fmt.Sprintf("%s %s (%d fields or settings differ)", ip.Alias, ip.Status, len(ip.Drift)))
			default:
				parts = append(parts, fmt.Sprintf("%s %s", ip.Alias, ip.Status))
			}
		}
	}
	return strings.Join(parts, "; "), nil
}

// statusCDC reads cdc's state: its checkpoint and leader lock in the control schema, the
// source's binlog head from a snapshot (the position the nightly resync would version with).
type statusCDC struct {
	cdc  *control.CDC
	name string
	src  *indexersql.Source
}

func (s statusCDC) Checkpoint(ctx context.Context) (cdc.Checkpoint, bool, error) {
	return s.cdc.Load(ctx, s.name)
}

func (s statusCDC) Leader(ctx context.Context) (string, bool, error) {
	id, host, ok, err := s.cdc.Leader(ctx)
	if err != nil || !ok {
		return "", ok, err
	}
	who := "connection " + strconv.FormatInt(id, 10)
	if host != "" {
		who += " from " + host
	}
	return who, true, nil
}

func (s statusCDC) Head(ctx context.Context) (cdc.Position, string, error) {
	v, snap, err := s.src.Snapshot(ctx)
	if err != nil {
		return cdc.Position{}, "", err
	}
	v.Close()
	return cdc.Position{File: snap.File, Pos: snap.Pos}, snap.Server, nil
}

// amqpQueues reads queue depths with passive declares, one channel each: a passive declare
// of a missing queue (404) closes its channel.
type amqpQueues struct{ url string }

func (q amqpQueues) Depths(ctx context.Context, names []string) (map[string]int, error) {
	dl, _ := ctx.Deadline()
	conn, err := amqp.DialConfig(q.url, amqp.Config{Dial: amqp.DefaultDial(time.Until(dl))})
	if err != nil {
		return nil, broker.Classify("dial", err)
	}
	defer conn.Close()
	out := map[string]int{}
	for _, name := range names {
		ch, err := conn.Channel()
		if err != nil {
			return nil, broker.Classify("open channel", err)
		}
		d, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			continue
		}
		if err != nil {
			return nil, broker.Classify("declare "+name, err)
		}
		out[name] = d.Messages
		ch.Close()
	}
	return out, nil
}

// metricsWrites reads wye_indexer_items_total from an indexer's /metrics.
type metricsWrites struct{ addr string }

func (m metricsWrites) Items(ctx context.Context) (map[string]map[string]float64, error) {
	host, port, err := net.SplitHostPort(m.addr)
	if err != nil {
		return nil, err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, "GET", "http://"+net.JoinHostPort(host, port)+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("metrics: %s", res.Status)
	}
	return parseItems(res.Body)
}

// parseItems reads the samples of wye_indexer_items_total{cluster,result} in the Prometheus
// text format.
func parseItems(r io.Reader) (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		line, ok := strings.CutPrefix(s.Text(), "wye_indexer_items_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(line, "} ")
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		var cl, result string
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, `"`)
			switch k {
			case "cluster":
				cl = v
			case "result":
				result = v
			}
		}
		if out[cl] == nil {
			out[cl] = map[string]float64{}
		}
		out[cl][result] += n
	}
	return out, s.Err()
}
