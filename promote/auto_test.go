package promote

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wyehq/wye/control"
)

// clock is a settable Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// autoWatch is a watchdog over the world w with the master es7 down, a 2 minute threshold and
// a reader switch that records its environment.
func autoWatch(w *world, logs *bytes.Buffer, c *clock, env *[]string) *watch {
	w.down["es7"] = true
	var out bytes.Buffer
	o := AutoOptions{Options: w.options("", &out), After: 2 * time.Minute, Metrics: NewAutoMetrics(nil),
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	o.Now, o.MinInterval, o.MaxLag = c.now, DefaultMinInterval, DefaultMaxLag
	o.Exec = "switch-readers"
	o.Run = func(_ context.Context, cmd string, e []string) error {
		w.effect("EXEC %s", cmd)
		*env = e
		return nil
	}
	return &watch{AutoOptions: o}
}

// TestAutoFailoverWaitsForTheThresholdThenPromotesAHealthySlaveAndSwitchesReaders prevents a
// failover on a blip and a failover that never comes: nothing happens before the master has
// been unavailable for After; then the first healthy slave is promoted and the reader switch
// runs with both masters in its environment; once promoted, the new master answers and the
// watchdog does nothing more.
func TestAutoFailoverWaitsForTheThresholdThenPromotesAHealthySlaveAndSwitchesReaders(t *testing.T) {
	w := newWorld()
	var logs bytes.Buffer
	var env []string
	c := &clock{t: time.Unix(1_000_000, 0)}
	a := autoWatch(w, &logs, c, &env)
	for _, at := range []time.Duration{0, time.Minute, 2*time.Minute - time.Second} {
		c.t = time.Unix(1_000_000, 0).Add(at)
		a.step(context.Background())
		if got := w.sideEffects(); len(got) != 0 {
			t.Fatalf("after %v of master outage: side effects %q, want none before 2m", at, got)
		}
	}
	c.t = time.Unix(1_000_000, 0).Add(2 * time.Minute)
	a.step(context.Background())
	want := []string{"PROMOTE es7->es8", "EXEC switch-readers"}
	if got := w.sideEffects(); !slices.Equal(got, want) {
		t.Fatalf("side effects %q, want %q\n%s", got, want, logs.String())
	}
	if !slices.Contains(env, "WYE_OLD_MASTER=es7") || !slices.Contains(env, "WYE_NEW_MASTER=es8") {
		t.Errorf("reader switch env %q", env)
	}
	if got := testutil.ToFloat64(a.Metrics.Decisions.WithLabelValues(DecisionPromoted)); got != 1 {
		t.Errorf("promoted decisions %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "automatic failover: promoted") {
		t.Errorf("log:\n%s", logs.String())
	}
	c.t = c.t.Add(time.Hour)
	a.step(context.Background())
	if got := w.sideEffects(); len(got) != 2 {
		t.Errorf("the watchdog acted again on a healthy new master: %q", got)
	}
}

// TestAutoFailoverPicksTheSlaveThatPassesOverOneThatLagsOrHasLedgerEntries prevents a failover
// to a slave that would serve less than another: es8 first has ledger entries, then (ledger
// empty) highest versions far behind os2's; both times os2 is promoted.
func TestAutoFailoverPicksTheSlaveThatPassesOverOneThatLagsOrHasLedgerEntries(t *testing.T) {
	for name, tc := range map[string]struct {
		spoil func(w *world)
		why   string // why es8 was passed over, as the promoted decision logs it
	}{
		"ledger": {func(w *world) { w.pending["es8"] = 2 }, "es8: repair ledger: 2 document(s)"},
		"lag": {func(w *world) {
			w.versions = []map[string]map[string]int64{{"es8": {"program": 1000}, "os2": {"program": 1000 + DefaultMaxLag + 1}}}
		}, "es8: lag: behind the best slave by more than promote.max_lag"},
	} {
		spoil, why := tc.spoil, tc.why
		t.Run(name, func(t *testing.T) {
			w := newWorld()
			spoil(w)
			var logs bytes.Buffer
			var env []string
			c := &clock{t: time.Unix(0, 0)}
			a := autoWatch(w, &logs, c, &env)
			a.step(context.Background())
			c.t = c.t.Add(3 * time.Minute)
			a.step(context.Background())
			if got := w.sideEffects(); len(got) == 0 || got[0] != "PROMOTE es7->os2" {
				t.Fatalf("side effects %q, want os2 promoted\n%s", got, logs.String())
			}
			if !strings.Contains(logs.String(), "passed_over=\""+why) {
				t.Errorf("the promoted decision does not say es8 was passed over for %q:\n%s", why, logs.String())
			}
		})
	}
}

// TestAutoFailoverWithNoPassingSlavePromotesNothingAndSaysWhy prevents a failover to a broken
// slave, and one within the anti-flap period: each decline is counted and logged with every
// slave's reason.
func TestAutoFailoverWithNoPassingSlavePromotesNothingAndSaysWhy(t *testing.T) {
	w := newWorld()
	w.down["es8"] = true
	w.drift["os2"] = []string{"programs drift"}
	var logs bytes.Buffer
	var env []string
	c := &clock{t: time.Unix(0, 0)}
	a := autoWatch(w, &logs, c, &env)
	a.step(context.Background())
	c.t = c.t.Add(3 * time.Minute)
	a.step(context.Background())
	if got := w.sideEffects(); len(got) != 0 {
		t.Fatalf("side effects %q, want none", got)
	}
	for _, want := range []string{"automatic failover: declined", "es8: reachable: es8 is unreachable", "os2: mapping: not as declared: programs drift"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if got := testutil.ToFloat64(a.Metrics.Decisions.WithLabelValues(DecisionDeclined)); got != 1 {
		t.Errorf("declined decisions %v, want 1", got)
	}

	// A healthy slave, but the last promote was within promote.min_interval: declined.
	w.down["es8"] = false
	w.promote = &control.FlapError{Journal: 2, To: "es7", Who: "ops@a", Ago: time.Minute, MinGap: 10 * time.Minute}
	c.t = c.t.Add(time.Minute)
	a.step(context.Background())
	if !strings.Contains(logs.String(), "use --force") || w.master != "es7" {
		t.Errorf("anti-flap not honoured: master %s\n%s", w.master, logs.String())
	}
	// The leader lock lost: declined before the transaction.
	w.promote = nil
	a.Held = func(context.Context) error { return errors.New("lock gone") }
	c.t = c.t.Add(time.Minute)
	a.step(context.Background())
	if w.master != "es7" || !strings.Contains(logs.String(), "lost its leader lock") {
		t.Errorf("promoted without the leader lock: master %s\n%s", w.master, logs.String())
	}
}
