package promote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wyehq/wye/control"
)

// world is the fakes of one promote: what each check answers, and a log of every side effect
// (and every question) in order.
type world struct {
	mu      sync.Mutex
	events  []string // every call, in order
	effects []string // the calls that change something: promote, roll back, journal, exec

	master   string
	health   map[string]Health
	down     map[string]bool
	drift    map[string][]string
	versions []map[string]map[string]int64 // successive reads: cluster -> entity -> highest
	reads    map[string]int
	pending  map[string]int64
	diffs    map[string]int64
	promote  error // what Store.Promote answers
	rollback error
}

func newWorld() *world {
	return &world{master: "es7", health: map[string]Health{"es7": Green, "es8": Green, "os2": Green},
		down: map[string]bool{}, drift: map[string][]string{}, pending: map[string]int64{}, reads: map[string]int{},
		versions: []map[string]map[string]int64{{"es7": {"program": 1000}, "es8": {"program": 990}, "os2": {"program": 1000}}}}
}

func (w *world) log(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, fmt.Sprintf(format, args...))
}

func (w *world) effect(format string, args ...any) {
	w.log(format, args...)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.effects = append(w.effects, fmt.Sprintf(format, args...))
}

func (w *world) Health(_ context.Context, c string) (Health, error) {
	w.log("health %s", c)
	if w.down[c] {
		return "", errors.New("dial tcp 127.0.0.1:1: connection refused")
	}
	return w.health[c], nil
}

func (w *world) Drift(_ context.Context, c string) ([]string, error) {
	w.log("drift %s", c)
	return w.drift[c], nil
}

func (w *world) MaxVersions(_ context.Context, c string) (map[string]int64, error) {
	w.log("versions %s", c)
	i := min(w.reads[c], len(w.versions)-1)
	w.reads[c]++
	return w.versions[i][c], nil
}

func (w *world) Compare(_ context.Context, master, target string, n int) (map[string]int64, error) {
	w.log("sample %s %s %d", master, target, n)
	return w.diffs, nil
}

func (w *world) PendingRepairs(_ context.Context, c string) (int64, error) {
	w.log("ledger %s", c)
	return w.pending[c], nil
}

func (w *world) Master(context.Context, []string) (string, bool, error) { return w.master, true, nil }

func (w *world) Promote(_ context.Context, p control.Promotion) (control.Promoted, error) {
	w.effect("PROMOTE %s->%s", p.From, p.To)
	if w.promote != nil {
		return control.Promoted{}, w.promote
	}
	w.master = p.To
	return control.Promoted{Journal: 7, Epoch: 3}, nil
}

func (w *world) RollBack(_ context.Context, p control.Promotion, done control.Promoted, why string) error {
	w.effect("ROLLBACK #%d to %s: %s", done.Journal, p.From, why)
	if w.rollback == nil {
		w.master = p.From
	}
	return w.rollback
}

func (w *world) Refused(_ context.Context, p control.Promotion, why string) error {
	w.effect("REFUSED %s: %s", p.To, why)
	return nil
}

func (w *world) sideEffects() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.effects)
}

func (w *world) options(target string, out *bytes.Buffer) Options {
	return Options{Target: target, Configured: []string{"es7", "es8", "os2"}, Recheck: time.Millisecond,
		Clusters: w, Sampler: w, Store: w, Journal: w, Ledger: w, Out: out, Who: "ops@host"}
}

// TestEachFailingCheckRefusesThePromoteAndChangesNothing prevents a promote to a cluster that
// would serve less than the master: each failing check alone refuses, with its reason printed
// and journaled, and the roles are never touched.
func TestEachFailingCheckRefusesThePromoteAndChangesNothing(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(w *world, o *Options)
		reason string
	}{
		{"target down", func(w *world, _ *Options) { w.down["es8"] = true }, "reachable: es8 is unreachable: dial tcp"},
		{"health red", func(w *world, _ *Options) { w.health["es8"] = Red }, "reachable: health red"},
		{"yellow without the flag", func(w *world, _ *Options) { w.health["es8"] = Yellow }, "--allow-yellow"},
		{"mapping drift", func(w *world, _ *Options) { w.drift["es8"] = []string{"programs: drift"} }, "mapping: not as declared: programs: drift"},
		{"ledger not empty", func(w *world, _ *Options) { w.pending["es8"] = 3 }, "repair ledger: 3 document(s) in the repair ledger of es8"},
		{"lagging", func(w *world, o *Options) { o.MaxLag = 5 }, "lag: highest versions behind es7 by more than promote.max_lag 5: program 10 behind"},
		{"sample differs", func(w *world, _ *Options) { w.diffs = map[string]int64{"missing": 4, "different": 1} }, "sample diff: differs from es7: 1 different, 4 missing"},
		{"already master", func(w *world, o *Options) { o.Target = "es7" }, "target: es7 is already the master"},
		{"not configured", func(w *world, o *Options) { o.Target = "es9" }, "target: es9 is not a configured cluster"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld()
			var out bytes.Buffer
			opts := w.options("es8", &out)
			c.break_(w, &opts)
			_, err := Run(context.Background(), opts)
			var refused *Refused
			if !errors.As(err, &refused) || !strings.Contains(refused.Reason, c.reason) {
				t.Fatalf("err %v, want a refusal with %q\n%s", err, c.reason, out.String())
			}
			if !strings.Contains(out.String(), "FAIL") {
				t.Errorf("no failed check printed:\n%s", out.String())
			}
			if got := w.sideEffects(); len(got) != 1 || !strings.HasPrefix(got[0], "REFUSED ") {
				t.Errorf("side effects %q, want only the refusal journaled", got)
			}
			if w.master != "es7" {
				t.Errorf("master %s after a refusal", w.master)
			}
		})
	}
}

// TestThePlanAndEveryCheckComeBeforeTheSwitch prevents a side effect before the operator saw
// what will happen: the plan is printed first, then each check as it passed, then the one
// transaction; a yellow target passes only with --allow-yellow, and a target a batch behind
// passes once it catches up on the recheck.
func TestThePlanAndEveryCheckComeBeforeTheSwitch(t *testing.T) {
	w := newWorld()
	w.health["es8"] = Yellow
	w.versions = append(w.versions, map[string]map[string]int64{"es8": {"program": 1000}})
	var out bytes.Buffer
	opts := w.options("es8", &out)
	opts.AllowYellow, opts.MaxLag = true, 5
	o, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if o.Promoted.Epoch != 3 || w.master != "es8" {
		t.Fatalf("outcome %+v, master %s", o, w.master)
	}
	text := out.String()
	order := []string{"plan: promote es8 to master", "now:      es7 is the master", "preflight:",
		"PASS  target", "PASS  reachable      health yellow", "PASS  mapping", "PASS  repair ledger",
		"PASS  lag", "PASS  sample diff", "promoted es8 to master at epoch 3 (journal #7)"}
	at := 0
	for _, want := range order {
		i := strings.Index(text[at:], want)
		if i < 0 {
			t.Fatalf("%q missing or out of order in:\n%s", want, text)
		}
		at += i
	}
	if last := w.events[len(w.events)-1]; last != "PROMOTE es7->es8" {
		t.Errorf("last event %q, want the promote after every check: %q", last, w.events)
	}
}

// TestMissesOfTheNewMasterWhileIndexersSwitchAreReported prevents a promote that reports
// success while the new master missed writes as a slave before every indexer saw the switch.
func TestMissesOfTheNewMasterWhileIndexersSwitchAreReported(t *testing.T) {
	w := newWorld()
	var out bytes.Buffer
	opts := w.options("es8", &out)
	opts.Settle = time.Millisecond
	w.promote = nil
	opts.Store = missingAfterPromote{w}
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "after the switch: WARNING 2 document(s) in the repair ledger of es8") {
		t.Errorf("output:\n%s", out.String())
	}
}

// missingAfterPromote is the world whose new master has 2 ledger entries once promoted.
type missingAfterPromote struct{ *world }

func (m missingAfterPromote) Promote(ctx context.Context, p control.Promotion) (control.Promoted, error) {
	done, err := m.world.Promote(ctx, p)
	m.pending[p.To] = 2
	return done, err
}

// TestDryRunRunsTheChecksAndChangesNothing prevents --dry-run from switching or journaling.
func TestDryRunRunsTheChecksAndChangesNothing(t *testing.T) {
	w := newWorld()
	var out bytes.Buffer
	opts := w.options("os2", &out)
	opts.DryRun = true
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if got := w.sideEffects(); len(got) != 0 || w.master != "es7" {
		t.Fatalf("dry run had side effects %q, master %s", got, w.master)
	}
	if !strings.Contains(out.String(), "dry run: every check passed; nothing changed") {
		t.Errorf("output:\n%s", out.String())
	}
	// A failing dry run is refused too (exit 1), still without journaling.
	w.pending["os2"] = 1
	if _, err := Run(context.Background(), opts); !errors.As(err, new(*Refused)) || len(w.sideEffects()) != 0 {
		t.Fatalf("failing dry run: err %v, side effects %q", err, w.sideEffects())
	}
}

// TestAFailedReaderSwitchRollsTheRolesBack prevents readers left on the old master while the
// indexers decide on the new one: the --exec command gets both masters in its environment, and
// when it fails the roles are switched back and the error says so.
func TestAFailedReaderSwitchRollsTheRolesBack(t *testing.T) {
	w := newWorld()
	var out bytes.Buffer
	opts := w.options("es8", &out)
	opts.Exec = "switch-readers"
	var env []string
	opts.Run = func(_ context.Context, cmd string, e []string) error {
		w.effect("EXEC %s", cmd)
		env = e
		return errors.New("exit status 3")
	}
	_, err := Run(context.Background(), opts)
	var rb *RolledBack
	if !errors.As(err, &rb) {
		t.Fatalf("err %v, want a roll back\n%s", err, out.String())
	}
	want := []string{"PROMOTE es7->es8", "EXEC switch-readers", "ROLLBACK #7 to es7: reader switch failed: exit status 3"}
	if got := w.sideEffects(); !slices.Equal(got, want) {
		t.Fatalf("side effects %q, want %q", got, want)
	}
	if w.master != "es7" {
		t.Errorf("master %s, want es7 back", w.master)
	}
	for _, e := range []string{"WYE_OLD_MASTER=es7", "WYE_NEW_MASTER=es8", "WYE_PROMOTE_EPOCH=3"} {
		if !slices.Contains(env, e) {
			t.Errorf("exec env %q lacks %s", env, e)
		}
	}
	if !strings.Contains(out.String(), "roles switched back: es7 is the master again (journal #7: rolled_back)") {
		t.Errorf("output:\n%s", out.String())
	}

	// A roll back that fails too says the new master stays.
	w = newWorld()
	opts = w.options("es8", &out)
	opts.Exec, opts.Run = "x", func(context.Context, string, []string) error { return errors.New("boom") }
	w.rollback = errors.New("control schema gone")
	if _, err := Run(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "could NOT be switched back") {
		t.Fatalf("err %v", err)
	}
}

// TestTheLoserOfTwoPromotesIsRefusedNamingTheWinner prevents a second promote from silently
// overriding the first: the transaction's race error becomes a refusal naming the winner.
func TestTheLoserOfTwoPromotesIsRefusedNamingTheWinner(t *testing.T) {
	w := newWorld()
	w.promote = &control.RaceError{Expected: "es7", Actual: "os2", Journal: 4, Who: "alice@a"}
	var out bytes.Buffer
	_, err := Run(context.Background(), w.options("es8", &out))
	var refused *Refused
	if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "the master is now os2, not es7 as checked: another promote won (journal #4 by alice@a)") {
		t.Fatalf("err %v", err)
	}
	w.promote = &control.FlapError{Journal: 4, Ago: time.Minute, MinGap: 10 * time.Minute}
	if _, err := Run(context.Background(), w.options("es8", &out)); !errors.As(err, &refused) || !strings.Contains(refused.Reason, "--force") {
		t.Fatalf("err %v", err)
	}
}

// TestADeclinedConfirmationChangesNothing prevents a promote the operator said no to.
func TestADeclinedConfirmationChangesNothing(t *testing.T) {
	w := newWorld()
	var out bytes.Buffer
	opts := w.options("es8", &out)
	opts.Confirm = func(string) (bool, error) { return false, nil }
	if _, err := Run(context.Background(), opts); !errors.As(err, new(*Refused)) || w.master != "es7" {
		t.Fatalf("err %v master %s", err, w.master)
	}
}

// repairer is a Repairer that repairs all but leave of a cluster's ledger entries, or fails.
type repairer struct {
	w     *world
	leave int64
	err   error
}

func (r repairer) Repair(_ context.Context, c string) (string, error) {
	r.w.effect("REPAIR %s", c)
	if r.err != nil {
		return "", r.err
	}
	n := r.w.pending[c] - r.leave
	r.w.pending[c] = r.leave
	return fmt.Sprintf("%s: %d ids repaired", c, n), nil
}

// TestRepairFirstRepairsTheTargetsLedgerBeforeTheChecksAndRefusesWhatRemains prevents a
// --repair-first promote that switches to a target still missing writes, or that repairs when
// it was not asked to: with the flag the target's ledger is repaired before the checks, which
// read it again; entries left pending or a failed repair refuse the promote; without the flag,
// with an empty ledger, or in a dry run nothing is repaired.
func TestRepairFirstRepairsTheTargetsLedgerBeforeTheChecksAndRefusesWhatRemains(t *testing.T) {
	run := func(pending int64, r func(*world) repairer, edit func(*Options)) (*world, string, error) {
		w := newWorld()
		w.pending["es8"] = pending
		var out bytes.Buffer
		opts := w.options("es8", &out)
		opts.RepairFirst, opts.Repairer = true, r(w)
		if edit != nil {
			edit(&opts)
		}
		_, err := Run(context.Background(), opts)
		return w, out.String(), err
	}
	all := func(w *world) repairer { return repairer{w: w} }

	w, out, err := run(3, all, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if want := []string{"REPAIR es8", "PROMOTE es7->es8"}; !slices.Equal(w.sideEffects(), want) {
		t.Fatalf("side effects %q, want %q", w.sideEffects(), want)
	}
	for _, want := range []string{"repair first: 3 document(s) in the repair ledger of es8", "PASS  repair first   es8: 3 ids repaired", "PASS  repair ledger  empty"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	for _, c := range []struct {
		name   string
		r      func(*world) repairer
		reason string
	}{
		{"entries remain", func(w *world) repairer { return repairer{w: w, leave: 1} }, "repair ledger: 1 document(s) in the repair ledger of es8"},
		{"repair fails", func(w *world) repairer { return repairer{w: w, err: errors.New("source down")} }, "repair first: repair es8: source down"},
	} {
		w, out, err := run(3, c.r, nil)
		var refused *Refused
		if !errors.As(err, &refused) || !strings.Contains(refused.Reason, c.reason) {
			t.Fatalf("%s: err %v, want a refusal with %q\n%s", c.name, err, c.reason, out)
		}
		if w.master != "es7" || slices.ContainsFunc(w.sideEffects(), func(e string) bool { return strings.HasPrefix(e, "PROMOTE") }) {
			t.Errorf("%s: master %s, side effects %q", c.name, w.master, w.sideEffects())
		}
	}

	for _, c := range []struct {
		name    string
		pending int64
		edit    func(*Options)
	}{
		{"empty ledger", 0, nil},
		{"dry run", 3, func(o *Options) { o.DryRun = true }},
		{"without the flag", 3, func(o *Options) { o.RepairFirst = false }},
	} {
		w, out, _ := run(c.pending, all, c.edit)
		if slices.ContainsFunc(w.sideEffects(), func(e string) bool { return strings.HasPrefix(e, "REPAIR") }) {
			t.Errorf("%s: repaired: %q\n%s", c.name, w.sideEffects(), out)
		}
	}
}
