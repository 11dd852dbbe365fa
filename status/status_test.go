package status

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/control"
)

type fakeControl struct {
	roles  map[string]control.ClusterRole
	ledger map[string]control.LedgerStats
	run    *control.NightlyRun
	last   []control.JournalEntry
}

func (c fakeControl) Journal(context.Context, int) ([]control.JournalEntry, error) {
	return c.last, nil
}

func (c fakeControl) ClusterRoles(context.Context) (map[string]control.ClusterRole, error) {
	return c.roles, nil
}

func (c fakeControl) LedgerStats(context.Context, time.Duration) (map[string]control.LedgerStats, error) {
	return c.ledger, nil
}

func (c fakeControl) LastRun(context.Context) (control.NightlyRun, bool, error) {
	if c.run == nil {
		return control.NightlyRun{}, false, nil
	}
	return *c.run, true, nil
}

type fakeEngine struct {
	health string
	docs   int64
	max    float64
}

func (e fakeEngine) Health(context.Context, []string) (string, error) { return e.health, nil }
func (e fakeEngine) Count(context.Context, string) (int64, error)     { return e.docs, nil }
func (e fakeEngine) Max(context.Context, []string, string) (float64, bool, error) {
	return e.max, e.max > 0, nil
}

type fakeCDC struct {
	leader string
	cp     *cdc.Checkpoint
	head   cdc.Position
}

func (c fakeCDC) Checkpoint(context.Context) (cdc.Checkpoint, bool, error) {
	if c.cp == nil {
		return cdc.Checkpoint{}, false, nil
	}
	return *c.cp, true, nil
}

func (c fakeCDC) Leader(context.Context) (string, bool, error) { return c.leader, c.leader != "", nil }
func (c fakeCDC) Head(context.Context) (cdc.Position, string, error) {
	return c.head, "srv1", nil
}

type fakeQueues map[string]int

func (q fakeQueues) Depths(context.Context, []string) (map[string]int, error) { return q, nil }

type fakeWrites map[string]map[string]float64

func (w fakeWrites) Items(context.Context) (map[string]map[string]float64, error) { return w, nil }

func version(file uint32, pos uint32) float64 {
	v, err := cdc.VersionAt(1, "bin."+strings.Repeat("0", 5)+string(rune('0'+file)), pos)
	if err != nil {
		panic(err)
	}
	return float64(v)
}

// healthy is a fleet with nothing to say: es7 master, es8 and os2 slaves, all level.
func healthy() Options {
	v := version(1, 5000)
	return Options{
		Clusters: []Cluster{
			{Name: "es7", Configured: "master", Mapping: "v1", Engine: fakeEngine{"green", 10, v}, Drift: func(context.Context) (string, error) { return "", nil }},
			{Name: "es8", Configured: "slave", Mapping: "v1", Engine: fakeEngine{"green", 10, v}},
			{Name: "os2", Configured: "slave", Mapping: "v1", Engine: fakeEngine{"yellow", 10, v}},
		},
		Aliases: []Alias{{Name: "programs", VersionField: "wye_version"}},
		Control: fakeControl{roles: map[string]control.ClusterRole{"es7": {Role: "master", Epoch: 3}, "es8": {Role: "slave"}, "os2": {Role: "slave"}},
			run: &control.NightlyRun{ID: 7, Status: control.RunEqual}},
		CDC: fakeCDC{leader: "connection 12", cp: &cdc.Checkpoint{Epoch: 1, SourceID: "srv1", Pos: cdc.Position{File: "bin.000001", Pos: 4000}},
			head: cdc.Position{File: "bin.000001", Pos: 4500}},
		Queues:     fakeQueues{"wye.index": 3, "wye.parked": 0},
		QueueNames: []string{"wye.index", "wye.index.retry.5s", "wye.parked"},
		Parked:     "wye.parked",
	}
}

func TestAHealthyFleetHasNoProblemAndSaysSo(t *testing.T) {
	r := Gather(context.Background(), healthy())
	if !r.Healthy() {
		t.Fatalf("problems %q, want none", r.Problems)
	}
	if c := r.Clusters[0]; c.Epoch != 3 || c.Drift != "none" || c.Docs["programs"] != 10 {
		t.Errorf("es7 %+v", c)
	}
	if r.CDC.Lag != "500 bytes" || r.CDC.Leader != "connection 12" {
		t.Errorf("cdc %+v, want a lag of 500 bytes and the leader", r.CDC)
	}
	if r.Queues[1].Depth != -1 {
		t.Errorf("queues %+v: a retry tier not declared must read -1", r.Queues)
	}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil || !strings.HasSuffix(b.String(), "healthy\n") {
		t.Errorf("table (err %v):\n%s", err, b.String())
	}
}

func TestASlaveThatMissesWritesIsOneProblemLinePerCause(t *testing.T) {
	o := healthy()
	o.Clusters[2] = Cluster{Name: "os2", Configured: "slave", Mapping: "v1", Err: errors.New("dial tcp: connection refused")}
	o.Control = fakeControl{roles: o.Control.(fakeControl).roles,
		ledger: map[string]control.LedgerStats{"os2": {Pending: 42, Oldest: time.Now().Add(-time.Minute), Recent: 40}},
		run:    &control.NightlyRun{ID: 8, Status: control.RunFailed}}
	o.Queues = fakeQueues{"wye.index": 3, "wye.parked": 2}
	r := Gather(context.Background(), o)
	want := []string{"cluster os2: unreachable", "cluster os2: 42 ids in the repair ledger", "wye repair os2",
		"last nightly run 8 failed", "2 messages parked in wye.parked"}
	text := strings.Join(r.Problems, "\n")
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("problems lack %q:\n%s", w, text)
		}
	}
	if len(r.Problems) != 4 {
		t.Errorf("%d problems, want 4 (one per cause):\n%s", len(r.Problems), text)
	}
	if c := r.Clusters[2]; c.Failed != 40 || r.FailedSource != "ledger" {
		t.Errorf("os2 failed %v from %s, want the ledger's 40 recent misses", c.Failed, r.FailedSource)
	}
}

func TestDriftRedHealthNoLeaderAndALaggingSlaveAreProblems(t *testing.T) {
	o := healthy()
	o.Clusters[0].Drift = func(context.Context) (string, error) { return "programs drift (1 fields or settings differ)", nil }
	o.Clusters[1].Engine = fakeEngine{"red", 10, version(1, 5000)}
	o.Clusters[0].Engine = fakeEngine{"green", 10, version(1, 30<<20)}
	o.Clusters[2].Engine = fakeEngine{"green", 10, version(1, 10<<20)}
	o.CDC = fakeCDC{cp: o.CDC.(fakeCDC).cp, head: o.CDC.(fakeCDC).head}
	r := Gather(context.Background(), o)
	text := strings.Join(r.Problems, "\n")
	for _, w := range []string{"cluster es7: mapping v1 drifts", "cluster es8: health red", "cdc: no reader holds the leader lock",
		"cluster os2: 20971520 bytes of binlog behind the master es7"} {
		if !strings.Contains(text, w) {
			t.Errorf("problems lack %q:\n%s", w, text)
		}
	}
}

func TestTheFailedShareUnderWatchIsTheOneBetweenTwoReadings(t *testing.T) {
	o := healthy()
	o.Writes = fakeWrites{"os2": {"ok": 90, "retryable": 10}}
	first := Gather(context.Background(), o)
	if s := first.Clusters[2].FailedShare; s == nil || *s != 0.1 || first.FailedSource != "metrics" {
		t.Fatalf("first share %v from %s, want 0.1 from metrics", s, first.FailedSource)
	}
	o.Previous = first
	o.Writes = fakeWrites{"os2": {"ok": 190, "retryable": 10}}
	second := Gather(context.Background(), o)
	if s := second.Clusters[2].FailedShare; s == nil || *s != 0 {
		t.Errorf("second share %v, want 0: nothing failed between the readings", s)
	}
	if first.FailedWindow != "since the indexer started" || second.FailedWindow == first.FailedWindow {
		t.Errorf("windows %q then %q", first.FailedWindow, second.FailedWindow)
	}
}

func TestTwoMastersInTheRolesTableIsAProblem(t *testing.T) {
	o := healthy()
	c := o.Control.(fakeControl)
	c.roles["os2"] = control.ClusterRole{Role: "master", Epoch: 4}
	o.Control = c
	r := Gather(context.Background(), o)
	if !strings.Contains(strings.Join(r.Problems, "\n"), "2 clusters are master") {
		t.Errorf("problems %q", r.Problems)
	}
}

// TestTheLastPromoteIsShownWithItsOutcome prevents a status that hides who switched the master,
// when, and whether the switch held.
func TestTheLastPromoteIsShownWithItsOutcome(t *testing.T) {
	o := healthy()
	var b bytes.Buffer
	if err := Gather(context.Background(), o).WriteTable(&b); err != nil || !strings.Contains(b.String(), "last promote: none\n") {
		t.Fatalf("never promoted (err %v):\n%s", err, b.String())
	}
	c := o.Control.(fakeControl)
	at := time.Date(2026, 12, 1, 19, 0, 0, 0, time.UTC)
	c.last = []control.JournalEntry{{ID: 4, Finished: at, From: "es7", To: "es8", Epoch: 0, Outcome: control.OutcomeRolledBack,
		Who: "ops@host", Message: "reader switch failed: exit status 3"}}
	o.Control = c
	r := Gather(context.Background(), o)
	if p := r.Promote; p == nil || p.To != "es8" || p.Outcome != control.OutcomeRolledBack {
		t.Fatalf("last promote %+v", p)
	}
	b.Reset()
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if want := "last promote: #4 es7 -> es8 rolled_back at 2026-12-01T19:00:00Z by ops@host: reader switch failed: exit status 3\n"; !strings.Contains(b.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, b.String())
	}
	if !r.Healthy() {
		t.Errorf("a rolled back promote is history, not a problem: %q", r.Problems)
	}
}
