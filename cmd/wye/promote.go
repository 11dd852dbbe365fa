package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/spf13/cobra"

	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/diff"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/mapping"
	"github.com/wyehq/wye/promote"
	"github.com/wyehq/wye/repair"
)

func init() { subcommands = append(subcommands, newPromoteCmd) }

// promoteFailed is a promote refused by a check or the transaction, or rolled back: exit 1.
type promoteFailed struct{ err error }

func (e promoteFailed) Error() string { return e.err.Error() }
func (e promoteFailed) Unwrap() error { return e.err }
func (e promoteFailed) ExitCode() int { return exitFailure }

type promoteFlags struct {
	dryRun, yes, force, allowYellow, auto, repairFirst bool
	exec, metricsListen                                string
}

func newPromoteCmd(g *globalFlags) *cobra.Command {
	var f promoteFlags
	cmd := &cobra.Command{
		Use:   "promote <cluster>",
		Short: "Make a slave the master: plan, preflight checks, one transaction, optional reader switch",
		Long: `promote prints its plan, then runs every preflight check on the target and prints each one
pass or fail, before any side effect: the target is configured and not the master; reachable with
health green on its entity indices (yellow with --allow-yellow); its indices as its mapping
version declares (no drift); its repair ledger empty (--repair-first repairs it first, as
` + "`wye repair <cluster>`" + ` with its default rate, then reads it again); its highest
version per entity within promote.max_lag of the master's; a diff with the master equal (every
id and version, the content of promote.sample documents per entity). Then one control-schema transaction swaps the roles,
bumps the promote epoch and writes a journal row; indexers follow at their next roles poll. The
old master stays a slave and keeps receiving every write: rolling back is ` + "`wye promote <old>`" + `.
--exec runs a command (sh -c) that switches the readers, with WYE_OLD_MASTER and WYE_NEW_MASTER
in its environment; if it fails, the roles are switched back. A promote within
promote.min_interval of the last one needs --force. Without a terminal it needs --yes.
--auto (no cluster) runs the automatic failover instead, until stopped: one watchdog per control
schema acts (a lock; others wait); once the master has been unavailable for promote.auto_after it
promotes the first slave that passes every check it can run without the master, and runs --exec.
Exit 0: promoted (or, with --dry-run, every check passed); 1: refused, rolled back or failed
(the reason printed; nothing changed unless it says so); 2: usage or configuration.`,
		Args: usageArgs(func(cmd *cobra.Command, args []string) error {
			if f.auto {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd, g)
			if err != nil {
				return err
			}
			if f.auto {
				return runPromoteAuto(cmd.Context(), cfg, f)
			}
			return runPromote(cmd.Context(), cfg, args[0], f, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "run the checks only; change nothing")
	fl.BoolVar(&f.yes, "yes", false, "do not ask before switching (required without a terminal)")
	fl.BoolVar(&f.force, "force", false, "promote even within promote.min_interval of the last promote")
	fl.BoolVar(&f.allowYellow, "allow-yellow", false, "accept a target whose entity indices are yellow")
	fl.BoolVar(&f.repairFirst, "repair-first", false, "repair the target's repair ledger first (as wye repair does), then check it is empty")
	fl.BoolVar(&f.auto, "auto", false, "run the automatic failover watchdog (no cluster argument) until stopped")
	fl.StringVar(&f.metricsListen, "metrics-listen", "", "with --auto: host:port serving /metrics, /healthz, /readyz (default: metrics.listen)")
	fl.StringVar(&f.exec, "exec", "", "command (sh -c) that switches the readers; WYE_OLD_MASTER, WYE_NEW_MASTER in its environment")
	return cmd
}

func runPromote(ctx context.Context, cfg *config.Config, target string, f promoteFlags, stdin io.Reader, stdout io.Writer) error {
	var names []string
	for _, c := range cfg.Clusters {
		names = append(names, c.Name)
	}
	if !slices.Contains(names, target) {
		return usageError{fmt.Errorf("promote: %q is not a configured cluster (have %s)", target, strings.Join(names, ", "))}
	}
	fi, ok := stdin.(*os.File)
	terminal := ok && isTerminal(fi)
	if !f.yes && !f.dryRun && !terminal {
		return usageError{errors.New("promote: not a terminal: pass --yes to promote without being asked")}
	}
	model, err := newModel(cfg)
	if err != nil {
		return usageError{err}
	}
	store, err := control.Open(ctx, cfg.Control.MySQLConfig())
	if err != nil {
		return err
	}
	defer store.Close()
	opts := promoteOptions(cfg, model, store, f, names, stdout)
	opts.Target = target
	opts.RepairFirst, opts.Repairer = f.repairFirst, promoteRepairer{cfg: cfg, model: model, out: stdout}
	if !f.yes && terminal {
		opts.Confirm = func(question string) (bool, error) {
			fmt.Fprintf(stdout, "%s [y/N] ", question)
			answer, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return false, err
			}
			a := strings.ToLower(strings.TrimSpace(answer))
			return a == "y" || a == "yes", nil
		}
	}
	_, err = promote.Run(ctx, opts)
	if _, ok := errors.AsType[*promote.Refused](err); ok {
		return promoteFailed{err}
	}
	if _, ok := errors.AsType[*promote.RolledBack](err); ok {
		return promoteFailed{err}
	}
	return err
}

// promoteOptions are the options a promote by hand and the watchdog share.
func promoteOptions(cfg *config.Config, model *indexer.Model, store *control.Store, f promoteFlags, names []string, out io.Writer) promote.Options {
	probe := &promoteProbe{cfg: cfg, model: model, clients: map[string]*cluster.Client{}}
	return promote.Options{Configured: names, AllowYellow: f.allowYellow, DryRun: f.dryRun,
		Force: f.force, MinInterval: cfg.Promote.MinInterval, MaxLag: cfg.Promote.MaxLag, Sample: cfg.Promote.Sample,
		Exec: f.exec, Run: runShell, Who: whoAmI(), Clusters: probe, Sampler: probe, Store: store, Journal: store,
		Ledger: store, Out: out, Settle: 2 * cfg.Indexer.RolesPoll}
}

// promoteRepairer repairs the promote's target as `wye repair <cluster>` does, with its
// defaults (promote.Repairer).
type promoteRepairer struct {
	cfg   *config.Config
	model *indexer.Model
	out   io.Writer
}

var _ promote.Repairer = promoteRepairer{}

func (r promoteRepairer) Repair(ctx context.Context, name string) (string, error) {
	i := slices.IndexFunc(r.cfg.Clusters, func(c config.Cluster) bool { return c.Name == name })
	if i < 0 {
		return "", fmt.Errorf("%q is not a configured cluster", name)
	}
	rep, err := repairClusters(ctx, r.cfg, r.cfg.Clusters[i:i+1], repair.Options{Model: r.model, Logger: slog.Default()})
	if err != nil {
		return "", err
	}
	fmt.Fprint(r.out, rep.Summary())
	t := rep.Clusters[0]
	if t.Error != "" {
		return "", errors.New(t.Error)
	}
	if !rep.OK() {
		return "", fmt.Errorf("%d of %d ids not repaired (see the summary)", t.Failed, t.Pending)
	}
	return fmt.Sprintf("%d ids repaired (%d written, %d deleted, %d already current)", t.Marked(), t.Repaired, t.Deleted, t.Current), nil
}

// runPromoteAuto runs the automatic failover watchdog until ctx is done, under its lock.
func runPromoteAuto(ctx context.Context, cfg *config.Config, f promoteFlags) error {
	log := slog.Default()
	if f.dryRun || f.force || f.repairFirst {
		return usageError{errors.New("promote --auto: --dry-run, --force and --repair-first do not apply (the watchdog never forces nor repairs)")}
	}
	model, err := newModel(cfg)
	if err != nil {
		return usageError{err}
	}
	var names []string
	for _, c := range cfg.Clusters {
		names = append(names, c.Name)
	}
	store, err := control.Open(ctx, cfg.Control.MySQLConfig())
	if err != nil {
		return err
	}
	defer store.Close()
	addr := cmp.Or(f.metricsListen, cfg.Metrics.Listen)
	ep := newMetricsEndpoint(1)
	metrics := promote.NewAutoMetrics(ep.reg)
	stop, err := serveMetrics(addr, ep.reg, ep.Ready)
	if err != nil {
		return err
	}
	defer stop()
	log.Info("automatic failover: waiting for the watchdog lock", "after", cfg.Promote.AutoAfter, "every", cfg.Promote.AutoEvery)
	lock, err := store.WaitAutoLock(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer lock.Release()
	ep.addReady(func() bool { return true })
	log.Info("automatic failover: watching the master", "clusters", names, "after", cfg.Promote.AutoAfter, "exec", f.exec != "")
	return promote.Watch(ctx, promote.AutoOptions{Options: promoteOptions(cfg, model, store, f, names, io.Discard),
		After: cfg.Promote.AutoAfter, Every: cfg.Promote.AutoEvery, Held: lock.Held, Logger: log, Metrics: metrics})
}

// runShell runs command with sh -c, its output on ours, env added to ours.
func runShell(ctx context.Context, command string, env []string) error {
	c := exec.CommandContext(ctx, "sh", "-c", command)
	c.Env = append(os.Environ(), env...)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("%q: %w", command, err)
	}
	return nil
}

// whoAmI is user@host for the journal.
func whoAmI() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// promoteProbe answers the preflight's questions with the clusters' clients, the mapping files
// and the diff engine (promote.Clusters, promote.Sampler).
type promoteProbe struct {
	cfg     *config.Config
	model   *indexer.Model
	clients map[string]*cluster.Client
}

var (
	_ promote.Clusters = (*promoteProbe)(nil)
	_ promote.Sampler  = (*promoteProbe)(nil)
)

func (p *promoteProbe) client(name string) (*cluster.Client, error) {
	if c := p.clients[name]; c != nil {
		return c, nil
	}
	for _, c := range p.cfg.Clusters {
		if c.Name == name {
			client, err := cluster.New(clusterOptions(c))
			if err != nil {
				return nil, err
			}
			p.clients[name] = client
			return client, nil
		}
	}
	return nil, fmt.Errorf("no cluster %q configured", name)
}

func (p *promoteProbe) aliases() []string {
	var out []string
	for _, e := range p.model.Entities() {
		out = append(out, e.Index)
	}
	return out
}

// Health is the health of the cluster's entity indices (not of the whole cluster: an index of
// another application with replicas on a one-node cluster does not make this one yellow).
func (p *promoteProbe) Health(ctx context.Context, name string) (promote.Health, error) {
	c, err := p.client(name)
	if err != nil {
		return "", err
	}
	// A missing index makes the engines wait for it: the answer is a 408 whose status is red,
	// after Timeout rather than after their default 30 s.
	status, body, err := c.Do(ctx, esapi.ClusterHealthRequest{Index: p.aliases(), Timeout: time.Second})
	if err != nil {
		return "", err
	}
	var h struct {
		Status promote.Health `json:"status"`
	}
	if status == http.StatusRequestTimeout && json.Unmarshal(body, &h) == nil && h.Status != "" {
		return h.Status, nil
	}
	if err := c.Check("cluster health", status, body); err != nil {
		return "", err
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return "", fmt.Errorf("decode cluster health: %w", err)
	}
	return h.Status, nil
}

// Drift is what `wye mapping verify` finds on the cluster.
func (p *promoteProbe) Drift(ctx context.Context, name string) ([]string, error) {
	m := p.cfg.Mapping
	set, err := mapping.Load(m.Dir, mapping.LoadOptions{VersionField: m.VersionField})
	if err != nil {
		return nil, fmt.Errorf("load mappings: %w", err)
	}
	picked, err := selectClusters(p.cfg, []string{name})
	if err != nil {
		return nil, err
	}
	targets := connectMappingClusters(picked)
	if err := mapping.Resolve(set, targets); err != nil {
		return nil, fmt.Errorf("check mappings against %s: %w", name, err)
	}
	plan := mapping.MakePlan(ctx, set, targets, mapping.Options{Prefix: m.IndexPrefix})
	var out []string
	for _, c := range plan.Clusters {
		if c.Error != "" {
			out = append(out, c.Error)
		}
		for _, ip := range c.Indices {
			if ip.Status != mapping.StatusOK {
				out = append(out, fmt.Sprintf("%s %s", ip.Alias, ip.Status))
			}
		}
	}
	return out, nil
}

// MaxVersions is the highest version field of each entity's alias (cluster.Client.Max).
func (p *promoteProbe) MaxVersions(ctx context.Context, name string) (map[string]int64, error) {
	c, err := p.client(name)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, e := range p.model.Entities() {
		v, ok, err := c.Max(ctx, []string{e.Index}, e.VersionField)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name, err)
		}
		if ok {
			out[e.Name] = int64(v)
		}
	}
	return out, nil
}

// Compare runs diff.Docs with master as the reference and a content sample, and returns the
// differences by class; a cluster the diff could not compare is an error.
func (p *promoteProbe) Compare(ctx context.Context, master, target string, sample int) (map[string]int64, error) {
	var clusters []diff.Cluster
	for _, name := range []string{master, target} {
		c, err := p.client(name)
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, diff.Cluster{Name: name, Reader: c})
	}
	rep, err := diff.Docs(ctx, diff.Options{Model: p.model, Clusters: clusters, Content: diff.Content{Sample: sample},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	if len(rep.Problems) > 0 {
		return nil, errors.New(strings.Join(rep.Problems, "; "))
	}
	out := map[string]int64{}
	for _, e := range rep.Entities {
		for _, t := range e.Pairs {
			if t.Error != "" {
				return nil, fmt.Errorf("%s: %s", e.Name, t.Error)
			}
			for class, n := range map[string]int64{"missing": t.Missing, "extra": t.Extra, "different": t.Different,
				"empty_null": t.EmptyNull, "behind": t.Behind, "ahead": t.Ahead} {
				if n > 0 {
					out[class] += n
				}
			}
		}
	}
	return out, nil
}
