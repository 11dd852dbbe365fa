package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wyehq/wye/control"
)

// TestTwoNightlyRunsNeverOverlapAndProgressSurvivesTheProcess prevents two resyncs writing one
// control schema's progress at once, and a killed run losing what it had done: the lock is
// exclusive per control schema and goes with its connection; a run's progress and its
// unfinished status outlive the store that wrote them.
func TestTwoNightlyRunsNeverOverlapAndProgressSurvivesTheProcess(t *testing.T) {
	requireReachable(t, "MariaDB", mysqlAddr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := privateControl(t)
	open := func() *control.Store {
		s, err := control.Open(ctx, mysqlDriverConfig(mysqlAppUser, mysqlAppPass, db))
		must(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	first, err := a.Nightly(ctx)
	must(t, err)
	if _, err := b.Nightly(ctx); !errors.Is(err, control.ErrNightlyRunning) {
		t.Fatalf("second lock while the first is held: %v, want ErrNightlyRunning", err)
	}
	run, err := first.Start(ctx, `{"entities":["program"]}`)
	must(t, err)
	must(t, first.Save(ctx, run.ID, control.NightlyProgress{Entity: "program", Step: "rows", After: "4000", Chunks: 4, Counts: []byte(`{"rows":4000}`)}))
	must(t, first.Save(ctx, run.ID, control.NightlyProgress{Entity: "program", Step: "rows", After: "5000", Chunks: 5, Counts: []byte(`{"rows":5000}`)}))
	// The process dies: its connections end, and the lock with them.
	killer := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	rows, err := killer.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ?", db)
	must(t, err)
	var ids []int64
	for rows.Next() {
		var id int64
		must(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		killer.ExecContext(ctx, "KILL ?", id)
	}
	// KILL returns before the session has ended (and released its locks): a process that died
	// is gone once the server has dropped its connections.
	eventually(t, 10*time.Second, func() error {
		for _, id := range ids {
			var n int
			if err := killer.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", id).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("killed connection %d is still there", id)
			}
		}
		return nil
	})
	if err := first.Save(ctx, run.ID, control.NightlyProgress{Entity: "program", Step: "rows", After: "6000"}); err == nil {
		t.Fatal("a run whose lock connection died saved progress")
	}

	second, err := b.Nightly(ctx)
	must(t, err)
	defer second.Release()
	old, ok, err := second.Unfinished(ctx)
	must(t, err)
	if !ok || old.ID != run.ID || old.Scope != run.Scope {
		t.Fatalf("unfinished run after the kill: %+v %v, want run %d", old, ok, run.ID)
	}
	resumed, err := second.Resume(ctx, old.ID)
	must(t, err)
	progress, err := second.Progress(ctx, resumed.ID)
	must(t, err)
	if resumed.Resumes != 1 || len(progress) != 1 || progress[0].After != "5000" || progress[0].Chunks != 5 || string(progress[0].Counts) != `{"rows":5000}` {
		t.Fatalf("resumed %+v progress %+v: want one resume and the last saved chunk", resumed, progress)
	}
	must(t, second.Finish(ctx, resumed.ID, control.RunEqual, "ok"))
	if _, ok, err := second.Unfinished(ctx); err != nil || ok {
		t.Fatalf("a finished run is still unfinished: %v %v", ok, err)
	}
	last, ok, err := b.LastRun(ctx)
	must(t, err)
	if !ok || last.ID != run.ID || last.Status != control.RunEqual || last.Finished.IsZero() {
		t.Fatalf("last run %+v %v", last, ok)
	}
}
