package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMariaDBRestartMidWorkloadLosesNothing prevents a restart of MariaDB, which is both the
// source and the control schema, from losing changes or leaving a process stuck (issue 11):
// `wye cdc` loses its binlog stream and its leader lock, `wye indexer` its reads, roles and
// ledger connections, all while changes are being written and processed. Neither process is
// restarted: cdc must take the lock again and resume from its checkpoint (no new epoch, no
// resync mark), the indexer must hold what it could not read, and afterwards every cluster
// equals MariaDB with nothing parked. The stack script stops and starts MariaDB; a cleanup
// starts it again even when the test fails, since every other test needs it.
func TestMariaDBRestartMidWorkloadLosesNothing(t *testing.T) {
	r := newIndexerRig(t)
	r.viaCDC = true
	name := "idx_" + r.id
	cdcMetrics := freePort(t)
	cdcOut := startWye(t, r, "cdc", "cdc", "-c", r.config(freePort(t)), "--name", name, "--metrics-listen", cdcMetrics)
	eventually(t, 30*time.Second, func() error { return readyz(cdcMetrics) })
	p := r.start()

	c := newIndexerCatalog(r, 13)
	c.seed(2, 6, 60, 100, 10)
	for range 300 {
		c.step()
	}
	// Mid-workload: writes to half of the programs (titles, new episodes, tag renames that fan
	// out) run until MariaDB goes down; after the restart only the other half is written. So
	// nothing after the restart re-reads the first half, and a change of it lost in the
	// restart would stay visible in the final comparison instead of being overwritten.
	programs := slices.Sorted(maps.Keys(c.rows["programs"]))
	tags := slices.Sorted(maps.Keys(c.rows["tags"]))
	var before, after []int
	for i, id := range programs {
		if i%2 == 0 {
			before = append(before, id)
		} else {
			after = append(after, id)
		}
	}
	w := startTrickle(t, r.app, func(i int) (string, []any) {
		switch id := before[i%len(before)]; i % 10 {
		case 0, 5:
			return "INSERT INTO episodes (id, program_id, number, title) VALUES (?, ?, ?, ?)", []any{1_000_000 + i, id, i % 50, fmt.Sprintf("Trickle %d", i)}
		case 1:
			return "UPDATE tags SET name = ? WHERE id = ?", []any{fmt.Sprintf("trickle-%d", i), tags[i%len(tags)]}
		default:
			return "UPDATE programs SET title = ? WHERE id = ?", []any{fmt.Sprintf("Trickle %d", i), id}
		}
	})
	eventually(t, 30*time.Second, func() error { return w.atLeast(200) })

	t.Cleanup(func() { stack(t, "up", "mariadb") }) // even on failure: every other test needs it
	stack(t, "down", "mariadb")
	if t.Failed() {
		t.FailNow()
	}
	down := time.Now()
	beforeOK, beforeFailed := w.stop()
	eventually(t, 30*time.Second, func() error {
		if readyz(cdcMetrics) == nil {
			return errors.New("cdc still reports ready with MariaDB down")
		}
		return nil
	})
	stack(t, "up", "mariadb")
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("MariaDB down and up again in %v", time.Since(down).Round(time.Millisecond))
	w = startTrickle(t, r.app, func(i int) (string, []any) {
		return "UPDATE programs SET title = ? WHERE id = ?", []any{fmt.Sprintf("After %d", i), after[i%len(after)]}
	})
	eventually(t, time.Minute, func() error { return w.atLeast(200) })
	afterOK, afterFailed := w.stop()
	eventually(t, 3*time.Minute, func() error { return r.converged("es7", "es8", "os2") })
	t.Logf("converged %v after the restart; writes committed (failed) before the restart %d (%d), after %d (%d); indexer batch tries held %v",
		time.Since(down).Round(time.Millisecond), beforeOK, beforeFailed, afterOK, afterFailed, p.metric(t, "wye_indexer_batch_failures_total"))

	eventually(t, 30*time.Second, func() error {
		if err := readyz(cdcMetrics); err != nil {
			return fmt.Errorf("cdc: %w", err)
		}
		if err := readyz(p.metrics); err != nil {
			return fmt.Errorf("indexer: %w", err)
		}
		return nil
	})
	out := cdcOut.String()
	if strings.Count(out, "leader lock acquired") < 2 || !strings.Contains(out, "resuming from checkpoint") {
		t.Error("cdc did not take the leader lock again and resume from its checkpoint after the restart")
	}
	if strings.Contains(out, "SOURCE CHANGED") {
		t.Error("cdc took the restarted MariaDB for another source (new epoch, changes skipped)")
	}
	ctl := openMySQL(t, "wye", "wye-control", "wye")
	var marks int
	must(t, ctl.QueryRow("SELECT COUNT(*) FROM cdc_resync_needed WHERE name = ?", name).Scan(&marks))
	if marks != 0 {
		t.Errorf("%d resync marks after a restart of the same MariaDB", marks)
	}
	if parked := p.metric(t, "wye_indexer_messages_total", "result", "parked"); parked != 0 {
		t.Errorf("%v messages parked across a MariaDB restart; batches must wait, not park", parked)
	}
	if err := r.parkedCount(0); err != nil {
		t.Error(err)
	}
}

// trickle runs the statements write(0), write(1), ... at a steady pace until stopped,
// counting what committed and what failed (MariaDB away); failures are expected and never
// fail the test: only committed writes matter, the clusters are compared with MariaDB.
type trickle struct {
	ok, failed atomic.Int64
	stop       func() (ok, failed int64)
}

func startTrickle(t *testing.T, db *sql.DB, write func(i int) (string, []any)) *trickle {
	w := &trickle{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pace := time.NewTicker(5 * time.Millisecond) // a load, not a flood to catch up on
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-pace.C:
			}
			q, args := write(i)
			qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := db.ExecContext(qctx, q, args...)
			qcancel()
			if err != nil {
				w.failed.Add(1)
			} else {
				w.ok.Add(1)
			}
		}
	}()
	w.stop = sync.OnceValues(func() (int64, int64) {
		cancel()
		<-done
		return w.ok.Load(), w.failed.Load()
	})
	t.Cleanup(func() { w.stop() })
	return w
}

// atLeast is nil once n writes committed.
func (w *trickle) atLeast(n int64) error {
	if got := w.ok.Load(); got < n {
		return fmt.Errorf("%d trickle writes committed, want %d (%d failed)", got, n, w.failed.Load())
	}
	return nil
}
