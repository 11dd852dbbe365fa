package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/wyehq/wye/cdc"
	cdcmysql "github.com/wyehq/wye/cdc/mysql"
)

// openTestControl opens the control-schema adapter of reader name against the stack's MariaDB.
func openTestControl(t *testing.T, name string) *cdcmysql.Control {
	t.Helper()
	requireReachable(t, "MariaDB", mysqlAddr)
	host, port := splitHostPort(t, mysqlAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cdcmysql.OpenControl(ctx, cdcmysql.ControlOptions{Host: host, Port: port,
		User: env("WYE_E2E_CONTROL_USER", "wye"), Password: env("WYE_E2E_CONTROL_PASSWORD", "wye-control"),
		Database: "wye", Name: name, Poll: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("open control: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// cannotAcquire fails the test if other gets the leader lock within d.
func cannotAcquire(t *testing.T, other *cdcmysql.Control, d time.Duration, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if _, release, err := other.Acquire(ctx); err == nil {
		release()
		t.Fatalf("%s: a second reader acquired the leader lock: the first one lost it", when)
	}
}

// TestCDCCancelledCheckpointSaveKeepsTheLeaderLock prevents a leader flap: a session cancelled
// while its checkpoint save is in flight (broker nack, lock check, shutdown of a session) must
// not close the connection that holds GET_LOCK. go-sql-driver/mysql closes a connection whose
// query context is cancelled, and closing the lock connection releases the lock, so a standby
// took over and both published. The save is held mid-flight by a row lock on its checkpoint row.
func TestCDCCancelledCheckpointSaveKeepsTheLeaderLock(t *testing.T) {
	name := fmt.Sprintf("faults_%d%03d", time.Now().Unix()%1000000, rand.IntN(1000))
	app := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	t.Cleanup(func() { app.Exec("DELETE FROM wye.cdc_checkpoint WHERE name = ?", name) })
	leader, standby := openTestControl(t, name), openTestControl(t, name)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	held, release, err := leader.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	defer release()
	cp := cdc.Checkpoint{Name: name, Epoch: 1, SourceID: "e2e", Pos: cdc.Position{File: "mariadb-bin.000001", Pos: 4}}
	if err := leader.Save(ctx, cp); err != nil {
		t.Fatalf("first save: %v", err)
	}

	// Another transaction locks the checkpoint row: the next save waits for it, mid-flight.
	blocker, err := app.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback()
	var locked string
	if err := blocker.QueryRow("SELECT name FROM wye.cdc_checkpoint WHERE name = ? FOR UPDATE", name).Scan(&locked); err != nil {
		t.Fatalf("lock checkpoint row: %v", err)
	}
	var blockerTrx string
	if err := blocker.QueryRow("SELECT trx_id FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = CONNECTION_ID()").
		Scan(&blockerTrx); err != nil {
		t.Fatalf("blocker transaction id: %v", err)
	}
	saveCtx, cancelSave := context.WithCancel(held)
	saved := make(chan error, 1)
	cp.Pos.Pos = 4711
	go func() { saved <- leader.Save(saveCtx, cp) }()
	eventually(t, 20*time.Second, func() error {
		var n int
		if err := app.QueryRow("SELECT COUNT(*) FROM information_schema.INNODB_LOCK_WAITS WHERE blocking_trx_id = ?",
			blockerTrx).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return errors.New("the save is not waiting for the checkpoint row yet")
		}
		return nil
	})
	cancelSave()
	select {
	case err := <-saved:
		if err == nil {
			t.Fatal("a cancelled save reported success")
		}
		t.Logf("cancelled save returned: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled save did not return")
	}
	blocker.Rollback()

	// The lock survives: the holder's own checks pass for several polls, a second reader
	// cannot take it, and the leader can still save.
	cannotAcquire(t, standby, 2*time.Second, "after a cancelled save")
	if held.Err() != nil {
		t.Fatal("the leader's lock context was cancelled after a cancelled save")
	}
	cp.Pos.Pos = 9000
	if err := leader.Save(ctx, cp); err != nil {
		t.Fatalf("save after the cancelled one: %v", err)
	}
	var pos int64
	if err := app.QueryRow("SELECT pos FROM wye.cdc_checkpoint WHERE name = ?", name).Scan(&pos); err != nil || pos != 9000 {
		t.Fatalf("checkpoint pos = %d (%v), want 9000", pos, err)
	}

	// Control: the fence holds, and the second reader does get the lock once it is released.
	if err := standby.Save(ctx, cp); !errors.Is(err, cdcmysql.ErrNotLeader) {
		t.Fatalf("save by a reader without the lock: %v, want ErrNotLeader", err)
	}
	release()
	if err := leader.Save(ctx, cp); !errors.Is(err, cdcmysql.ErrNotLeader) {
		t.Fatalf("save after release: %v, want ErrNotLeader", err)
	}
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	_, release2, err := standby.Acquire(actx)
	if err != nil {
		t.Fatalf("the second reader cannot acquire a released lock: %v", err)
	}
	release2()
}

// TestCDCCheckpointSaveIsFencedWhenTheLockConnectionDies prevents a deposed leader from moving
// the checkpoint: once its lock connection is killed (the lock released), its saves fail even
// though they run on other connections, and the new holder's saves succeed.
func TestCDCCheckpointSaveIsFencedWhenTheLockConnectionDies(t *testing.T) {
	name := fmt.Sprintf("fence_%d%03d", time.Now().Unix()%1000000, rand.IntN(1000))
	app := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	t.Cleanup(func() { app.Exec("DELETE FROM wye.cdc_checkpoint WHERE name = ?", name) })
	old, next := openTestControl(t, name), openTestControl(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	held, release, err := old.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	defer release()
	cp := cdc.Checkpoint{Name: name, Epoch: 1, SourceID: "e2e", Pos: cdc.Position{File: "mariadb-bin.000001", Pos: 4}}
	if err := old.Save(ctx, cp); err != nil {
		t.Fatalf("save: %v", err)
	}
	var holder int64
	if err := app.QueryRow("SELECT IS_USED_LOCK(?)", "wye.cdc."+name).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(fmt.Sprintf("KILL CONNECTION %d", holder)); err != nil {
		t.Fatalf("kill the lock connection: %v", err)
	}
	// Before the old leader notices, its saves are already refused.
	cp.Pos.Pos = 100
	if err := old.Save(ctx, cp); !errors.Is(err, cdcmysql.ErrNotLeader) {
		t.Fatalf("save after the lock connection died: %v, want ErrNotLeader", err)
	}
	eventually(t, 5*time.Second, func() error {
		if held.Err() == nil {
			return errors.New("the old leader has not noticed the lost lock")
		}
		return nil
	})
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	_, release2, err := next.Acquire(actx)
	if err != nil {
		t.Fatalf("the next reader cannot acquire: %v", err)
	}
	defer release2()
	cp.Pos.Pos = 200
	if err := next.Save(ctx, cp); err != nil {
		t.Fatalf("save by the new holder: %v", err)
	}
	cp.Pos.Pos = 300
	if err := old.Save(ctx, cp); !errors.Is(err, cdcmysql.ErrNotLeader) {
		t.Fatalf("save by the deposed leader: %v, want ErrNotLeader", err)
	}
}
