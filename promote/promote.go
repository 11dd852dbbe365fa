package promote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/internal/defaults"
)

// Defaults of a promote; config.Default() shows them (promote.*).
const (
	// DefaultMinInterval is the anti-flap period: a promote within it of the last one needs
	// --force.
	DefaultMinInterval = 10 * time.Minute
	// DefaultMaxLag bounds how far the target's highest version per entity may be below the
	// master's, in version units: within one binlog file that is bytes of binlog (a version is
	// epoch<<48 + file sequence<<32 + offset, docs/architecture.md invariant 2), so 16 MiB is
	// seconds of a busy source. A difference across a binlog rotation or an epoch counts at
	// least a whole file (2^32) and fails; the next check passes once the target's next write
	// lands past the rotation.
	DefaultMaxLag int64 = 16 << 20
	// DefaultSample is the documents per entity whose content the sampled diff compares with
	// the master (ids and versions of every document are compared anyway).
	DefaultSample = 100
	// DefaultRecheck is the wait before the target's highest versions are read again when they
	// are behind the bound: a slave a batch behind a busy master is not lagging.
	DefaultRecheck = 2 * time.Second
)

// Health is a cluster's health: green, yellow or red.
type Health string

// The health a cluster reports.
const (
	Green  Health = "green"
	Yellow Health = "yellow"
	Red    Health = "red"
)

// Clusters answers the preflight's questions about one search cluster.
type Clusters interface {
	// Health is the cluster's health; an error: unreachable.
	Health(ctx context.Context, cluster string) (Health, error)
	// Drift names what of the cluster's indices and aliases is not as its mapping version
	// declares (`wye mapping verify`); empty: none.
	Drift(ctx context.Context, cluster string) ([]string, error)
	// MaxVersions is the highest version field per entity on the cluster; an entity without
	// documents is absent.
	MaxVersions(ctx context.Context, cluster string) (map[string]int64, error)
}

// Sampler compares the target's documents with the master's (diff.Docs with a content sample).
type Sampler interface {
	// Compare returns the differences found per class ("missing": 3), none when equal.
	Compare(ctx context.Context, master, target string, sample int) (map[string]int64, error)
}

// Store is the control schema's side of a promote (control.Store).
type Store interface {
	Master(ctx context.Context, clusters []string) (string, bool, error)
	Promote(ctx context.Context, p control.Promotion) (control.Promoted, error)
	RollBack(ctx context.Context, p control.Promotion, done control.Promoted, why string) error
}

// Journal records refused promotes (control.Store).
type Journal interface {
	Refused(ctx context.Context, p control.Promotion, why string) error
}

// Ledger counts a cluster's repair-ledger entries not repaired yet (control.Store).
type Ledger interface {
	PendingRepairs(ctx context.Context, cluster string) (int64, error)
}

// Repairer repairs a cluster's repair ledger (`wye repair <cluster>`: repair.Run through
// cmd/wye) and says what it did in one line.
type Repairer interface {
	Repair(ctx context.Context, cluster string) (string, error)
}

var (
	_ Store   = (*control.Store)(nil)
	_ Journal = (*control.Store)(nil)
	_ Ledger  = (*control.Store)(nil)
)

// Options configure one promote.
type Options struct {
	Target     string
	Configured []string // every configured cluster

	AllowYellow bool
	DryRun      bool
	// RepairFirst repairs the target's ledger with Repairer before the checks when it has
	// pending entries (not in a dry run); the ledger check then reads it again.
	RepairFirst bool
	Force       bool          // promote within MinInterval of the last promote
	MinInterval time.Duration // DefaultMinInterval
	MaxLag      int64         // DefaultMaxLag
	Sample      int           // DefaultSample
	Recheck     time.Duration // DefaultRecheck
	// Exec is a shell command that switches the readers (DNS, a Service, an app config); it
	// runs after the roles switched, with WYE_OLD_MASTER and WYE_NEW_MASTER set. "": none.
	Exec string
	// Run runs Exec (sh -c with env added); required when Exec is set.
	Run func(ctx context.Context, command string, env []string) error
	// Settle is how long after the switch every indexer has seen it (twice the roles poll);
	// then the new master's repair ledger is read again: batches the old master decided
	// before an indexer saw the switch reached the new master only as a slave
	// (docs/architecture.md, invariant 8). 0: not checked.
	Settle time.Duration
	// Confirm asks before the switch once every check passed; nil: no question (--yes).
	Confirm func(plan string) (bool, error)
	Who     string // OS user@host, for the journal

	Clusters Clusters
	Sampler  Sampler
	Store    Store
	Journal  Journal
	Ledger   Ledger
	Repairer Repairer // required with RepairFirst
	Out      io.Writer
	Now      func() time.Time
}

// Check is one preflight check and its result, as printed and journaled.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Outcome is what a promote did.
type Outcome struct {
	From, To string
	Checks   []Check
	Promoted control.Promoted // zero unless the roles switched
	DryRun   bool
}

// Refused is a promote that did not happen: a check failed, the transaction refused it, or
// the operator declined. Nothing changed.
type Refused struct{ Reason string }

func (e *Refused) Error() string { return "promote refused: " + e.Reason }

// RolledBack is a promote whose reader switch (--exec) failed: the roles were switched back.
type RolledBack struct{ Err error }

func (e *RolledBack) Error() string {
	return "reader switch failed, roles switched back: " + e.Err.Error()
}

func (e *RolledBack) Unwrap() error { return e.Err }

// Run promotes opts.Target: prints the plan, runs every preflight check and prints each
// result, all before any side effect; then, unless DryRun or a check failed, switches the
// roles in one control-schema transaction and runs the reader switch, switching the roles back
// if it fails. Errors: *Refused (nothing changed), *RolledBack, or a failure to reach the
// control schema.
func Run(ctx context.Context, opts Options) (*Outcome, error) {
	opts.MinInterval = defaults.Positive(opts.MinInterval, DefaultMinInterval)
	opts.MaxLag = defaults.Positive(opts.MaxLag, DefaultMaxLag)
	opts.Sample = defaults.Positive(opts.Sample, DefaultSample)
	opts.Recheck = defaults.Positive(opts.Recheck, DefaultRecheck)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Exec != "" && opts.Run == nil {
		return nil, errors.New("promote: Exec without Run")
	}
	if opts.RepairFirst && opts.Repairer == nil {
		return nil, errors.New("promote: RepairFirst without Repairer")
	}
	started := opts.Now()
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	from, ok, err := opts.Store.Master(ctx, opts.Configured)
	if err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	if !ok {
		return nil, errors.New("promote: cluster_roles names no master of the configured clusters (an indexer seeds them at start)")
	}
	o := &Outcome{From: from, To: opts.Target, DryRun: opts.DryRun}
	fmt.Fprint(out, plan(opts, from))

	o.Checks = append(repairFirst(ctx, opts, from, out), preflight(ctx, opts, from)...)
	fmt.Fprintln(out, "preflight:")
	for _, c := range o.Checks {
		mark := "PASS"
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(out, "  %s  %-14s %s\n", mark, c.Name, c.Detail)
	}
	checks, _ := json.Marshal(o.Checks)
	p := control.Promotion{Clusters: opts.Configured, From: from, To: opts.Target, MinGap: opts.MinInterval,
		Force: opts.Force, Who: opts.Who, Started: started, Checks: checks}
	refuse := func(why string) (*Outcome, error) {
		if !opts.DryRun && opts.Journal != nil {
			if err := opts.Journal.Refused(context.WithoutCancel(ctx), p, why); err != nil {
				fmt.Fprintf(out, "(the refusal could not be journaled: %v)\n", err)
			}
		}
		return o, &Refused{Reason: why}
	}
	if failed := failures(o.Checks); failed != "" {
		return refuse(failed)
	}
	if opts.DryRun {
		fmt.Fprintln(out, "dry run: every check passed; nothing changed")
		return o, nil
	}
	if opts.Confirm != nil {
		yes, err := opts.Confirm(fmt.Sprintf("promote %s to master (now %s)?", opts.Target, from))
		if err != nil {
			return o, fmt.Errorf("promote: %w", err)
		}
		if !yes {
			return refuse("declined by the operator")
		}
	}

	done, err := switchRoles(ctx, opts, p, out)
	if refused, ok := errors.AsType[*Refused](err); ok {
		return refuse(refused.Reason)
	}
	if done.Journal != 0 && err == nil {
		o.Promoted = done
		settled(ctx, opts, out)
	}
	return o, err
}

// repairFirst repairs the target's pending ledger entries when RepairFirst asks for it and the
// target is a configured slave with some, and returns the repair as a check (none when there
// was nothing to repair). It is the one side effect before the checks, asked for by the flag:
// it only writes to the target what the source holds, as `wye repair` does. A failed repair is
// a failed check; the ledger check after it says what stays pending.
func repairFirst(ctx context.Context, opts Options, from string, out io.Writer) []Check {
	to := opts.Target
	if !opts.RepairFirst || to == from || !slices.Contains(opts.Configured, to) {
		return nil
	}
	pending, err := opts.Ledger.PendingRepairs(ctx, to)
	if err != nil || pending == 0 {
		return nil // the ledger check reports it
	}
	if opts.DryRun {
		fmt.Fprintf(out, "repair first: dry run: %d document(s) in the repair ledger of %s not repaired\n", pending, to)
		return nil
	}
	fmt.Fprintf(out, "repair first: %d document(s) in the repair ledger of %s: repairing them (`wye repair %s`)\n", pending, to, to)
	done, err := opts.Repairer.Repair(ctx, to)
	if err != nil {
		return []Check{{Name: "repair first", Detail: fmt.Sprintf("repair %s: %v", to, err)}}
	}
	return []Check{{Name: "repair first", OK: true, Detail: done}}
}

// settled waits Settle and says whether the new master missed writes while the indexers
// switched: those are in its repair ledger, and a repair brings them.
func settled(ctx context.Context, opts Options, out io.Writer) {
	if opts.Settle <= 0 {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(opts.Settle):
	}
	n, err := opts.Ledger.PendingRepairs(ctx, opts.Target)
	switch {
	case err != nil:
		fmt.Fprintf(out, "after the switch: could not read the repair ledger of %s: %v\n", opts.Target, err)
	case n > 0:
		fmt.Fprintf(out, "after the switch: WARNING %d document(s) in the repair ledger of %s, missed while the indexers switched: repair them (`wye repair %s`)\n",
			n, opts.Target, opts.Target)
	default:
		fmt.Fprintf(out, "after the switch: the repair ledger of %s is still empty (%v later)\n", opts.Target, opts.Settle)
	}
}

// switchRoles runs the promote's transaction and then the reader switch, switching the roles
// back when it fails. A race or the anti-flap period is a *Refused (nothing changed).
func switchRoles(ctx context.Context, opts Options, p control.Promotion, out io.Writer) (control.Promoted, error) {
	done, err := opts.Store.Promote(ctx, p)
	if race, ok := errors.AsType[*control.RaceError](err); ok {
		return control.Promoted{}, &Refused{Reason: race.Error()}
	}
	if flap, ok := errors.AsType[*control.FlapError](err); ok {
		return control.Promoted{}, &Refused{Reason: flap.Error()}
	}
	if err != nil {
		return control.Promoted{}, fmt.Errorf("promote: %w", err)
	}
	fmt.Fprintf(out, "promoted %s to master at epoch %d (journal #%d); %s is a slave and keeps receiving every write\n",
		p.To, done.Epoch, done.Journal, p.From)
	if opts.Exec == "" {
		fmt.Fprintln(out, "readers: no --exec; switch them to", p.To, "yourself")
		return done, nil
	}
	env := []string{"WYE_OLD_MASTER=" + p.From, "WYE_NEW_MASTER=" + p.To, fmt.Sprintf("WYE_PROMOTE_EPOCH=%d", done.Epoch)}
	fmt.Fprintf(out, "readers: running %q\n", opts.Exec)
	if err := opts.Run(ctx, opts.Exec, env); err != nil {
		if rbErr := opts.Store.RollBack(context.WithoutCancel(ctx), p, done, "reader switch failed: "+err.Error()); rbErr != nil {
			return done, fmt.Errorf("reader switch failed (%v) and the roles could NOT be switched back: %w; %s is still the master",
				err, rbErr, p.To)
		}
		fmt.Fprintf(out, "reader switch failed: %v\nroles switched back: %s is the master again (journal #%d: rolled_back)\n",
			err, p.From, done.Journal)
		return control.Promoted{}, &RolledBack{Err: err}
	}
	fmt.Fprintln(out, "readers switched")
	return done, nil
}

// plan is what the promote will do, printed first.
func plan(opts Options, from string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "plan: promote %s to master\n", opts.Target)
	fmt.Fprintf(&b, "  now:      %s is the master\n", from)
	fmt.Fprintf(&b, "  then:     %s the master, %s a slave (it keeps receiving every write: `wye promote %s` rolls back)\n",
		opts.Target, from, from)
	fmt.Fprintln(&b, "  how:      one control-schema transaction: roles swapped, promote epoch bumped, a journal row; indexers switch at their next roles poll")
	if opts.Exec != "" {
		fmt.Fprintf(&b, "  readers:  %q with WYE_OLD_MASTER=%s WYE_NEW_MASTER=%s; if it fails the roles are switched back\n", opts.Exec, from, opts.Target)
	} else {
		fmt.Fprintln(&b, "  readers:  not switched (no --exec)")
	}
	if opts.DryRun {
		fmt.Fprintln(&b, "  dry run:  checks only")
	}
	return b.String()
}

// preflight runs every check and returns them in order; none has a side effect.
func preflight(ctx context.Context, opts Options, from string) []Check {
	var checks []Check
	add := func(name string, err error, ok string) {
		if err != nil {
			checks = append(checks, Check{Name: name, Detail: err.Error()})
			return
		}
		checks = append(checks, Check{Name: name, OK: true, Detail: ok})
	}
	to := opts.Target
	switch {
	case !slices.Contains(opts.Configured, to):
		add("target", fmt.Errorf("%s is not a configured cluster (have %s)", to, strings.Join(opts.Configured, ", ")), "")
		return checks
	case to == from:
		add("target", fmt.Errorf("%s is already the master", to), "")
		return checks
	}
	add("target", nil, fmt.Sprintf("%s is a configured slave", to))
	own, reachable := slaveChecks(ctx, opts, to)
	checks = append(checks, own...)
	if !reachable {
		return checks // the checks below would only repeat it
	}

	lag, err := lagCheck(ctx, opts, from)
	add("lag", err, lag)

	diffs, err := opts.Sampler.Compare(ctx, from, to, opts.Sample)
	if err == nil && len(diffs) > 0 {
		err = fmt.Errorf("differs from %s: %s", from, classes(diffs))
	}
	add("sample diff", err, fmt.Sprintf("equal to %s (every id and version, content of %d per entity)", from, opts.Sample))
	return checks
}

// slaveChecks are the checks of a cluster on its own, without the master: reachable and
// green, no mapping drift, an empty repair ledger. reachable is false when it did not answer.
func slaveChecks(ctx context.Context, opts Options, to string) (checks []Check, reachable bool) {
	add := func(name string, err error, ok string) {
		if err != nil {
			checks = append(checks, Check{Name: name, Detail: err.Error()})
			return
		}
		checks = append(checks, Check{Name: name, OK: true, Detail: ok})
	}
	health, err := opts.Clusters.Health(ctx, to)
	switch {
	case err != nil:
		add("reachable", fmt.Errorf("%s is unreachable: %w", to, err), "")
		return checks, false
	case health == Green, health == Yellow && opts.AllowYellow:
		add("reachable", nil, "health "+string(health))
	case health == Yellow:
		add("reachable", fmt.Errorf("health yellow (--allow-yellow to accept it)"), "")
	default:
		add("reachable", fmt.Errorf("health %s", health), "")
	}

	drift, err := opts.Clusters.Drift(ctx, to)
	if err == nil && len(drift) > 0 {
		err = fmt.Errorf("not as declared: %s (see `wye mapping plan --cluster %s`)", strings.Join(drift, "; "), to)
	}
	add("mapping", err, "no drift")

	pending, err := opts.Ledger.PendingRepairs(ctx, to)
	if err == nil && pending > 0 {
		err = fmt.Errorf("%d document(s) in the repair ledger of %s: repair them first (`wye repair %s`)", pending, to, to)
	}
	add("repair ledger", err, "empty")
	return checks, true
}

// lagCheck passes when, for every entity, the target's highest version is within MaxLag of
// the master's; a target behind is read again once after Recheck (a batch in flight).
func lagCheck(ctx context.Context, opts Options, from string) (string, error) {
	master, err := opts.Clusters.MaxVersions(ctx, from)
	if err != nil {
		return "", fmt.Errorf("read the highest versions of %s: %w", from, err)
	}
	behind := func() (map[string]int64, error) {
		target, err := opts.Clusters.MaxVersions(ctx, opts.Target)
		if err != nil {
			return nil, fmt.Errorf("read the highest versions of %s: %w", opts.Target, err)
		}
		out := map[string]int64{}
		for entity, v := range master {
			if d := v - target[entity]; d > opts.MaxLag {
				out[entity] = d
			}
		}
		return out, nil
	}
	late, err := behind()
	if err == nil && len(late) > 0 {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(opts.Recheck):
		}
		late, err = behind()
	}
	if err != nil {
		return "", err
	}
	if len(late) > 0 {
		var parts []string
		for _, e := range slices.Sorted(maps.Keys(late)) {
			parts = append(parts, fmt.Sprintf("%s %d behind", e, late[e]))
		}
		return "", fmt.Errorf("highest versions behind %s by more than promote.max_lag %d: %s", from, opts.MaxLag, strings.Join(parts, ", "))
	}
	return fmt.Sprintf("highest versions within %d of %s's", opts.MaxLag, from), nil
}

func classes(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}
