package e2e

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestCDCLosesNoChangeWhenTheReaderIsKilled prevents invariant 1's violation: a workload of
// 50,000+ row changes (multi-row, multi-table, child moves, deletes, rollbacks) runs while the
// reader process is SIGKILLed at random points and restarted; every committed change is
// consumed, versions grow along each row's history, moves carry both parents.
func TestCDCLosesNoChangeWhenTheReaderIsKilled(t *testing.T) {
	r := newCDCRig(t)
	w := newWorkload(t, r.app)
	c := r.consume()
	p := r.start("parents", "children")
	waitReady(t, 30*time.Second, p)

	const target = 50_000
	const minKills = 6
	var kills atomic.Int32
	stop := make(chan struct{})
	killerDone := make(chan struct{})
	go func() { // kill at random points, restart at once
		defer close(killerDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(400+rand.IntN(1600)) * time.Millisecond):
			}
			p.kill()
			kills.Add(1)
			p = r.start("parents", "children")
		}
	}()
	start := time.Now()
	for w.changes < target || kills.Load() < minKills {
		w.step(t)
	}
	close(stop)
	<-killerDone
	t.Logf("workload: %d row changes, %d rolled-back txns in %v; reader killed %d times",
		w.changes, w.rolled, time.Since(start).Round(time.Millisecond), kills.Load())

	events, dups := r.waitCovered(w, c, 3*time.Minute, p)
	t.Logf("consumed %d events for %d changes: %d duplicates (%.1f%%) after %d kills",
		len(events), w.changes, dups, 100*float64(dups)/float64(w.changes), kills.Load())
	if dups > w.changes {
		t.Errorf("duplicates %d exceed the number of changes %d: checkpoints do not advance", dups, w.changes)
	}
	if len(c.bad) > 0 {
		t.Errorf("%d undecodable messages, first %.200s", len(c.bad), c.bad[0])
	}
}

// TestCDCOnlyOneOfTwoReadersPublishes prevents two active readers: of two started at once only
// one is ready and publishes; when it is killed the other takes over within seconds.
func TestCDCOnlyOneOfTwoReadersPublishes(t *testing.T) {
	r := newCDCRig(t)
	w := newWorkload(t, r.app)
	c := r.consume()
	a, b := r.start("parents", "children"), r.start("parents", "children")
	leader := waitReady(t, 30*time.Second, a, b)
	standby := a
	if leader == a {
		standby = b
	}
	for w.changes < 3000 {
		w.step(t)
	}
	events, _ := r.waitCovered(w, c, time.Minute, a, b)
	want := fmt.Sprintf("/%d", leader.pid())
	for _, e := range events {
		if !strings.HasSuffix(e.appID, want) {
			t.Fatalf("event published by %q while pid %d holds the lock", e.appID, leader.pid())
		}
	}
	if standby.ready() {
		t.Fatal("the standby reports ready")
	}

	leader.kill()
	killed := time.Now()
	for w.changes < 6000 {
		w.step(t)
	}
	waitReady(t, 15*time.Second, standby)
	t.Logf("standby took over %v after the leader was killed", time.Since(killed).Round(time.Millisecond))
	events, dups := r.waitCovered(w, c, time.Minute, standby)
	t.Logf("%d events, %d duplicates", len(events), dups)
}

// TestCDCSurvivesABrokerOutage prevents losing events or checkpointing unconfirmed ones while
// RabbitMQ is down for 20 s mid-workload.
func TestCDCSurvivesABrokerOutage(t *testing.T) {
	r := newCDCRig(t)
	w := newWorkload(t, r.app)
	c := r.consume()
	p := r.start("parents", "children")
	waitReady(t, 30*time.Second, p)
	for w.changes < 5000 {
		w.step(t)
	}
	t.Cleanup(func() { stack(t, "up", "rabbitmq") }) // even on failure
	stack(t, "down", "rabbitmq")
	// The session ends on the lost connection and its last save (of confirmed events) lands
	// before /readyz turns false; from then on the checkpoint may not move until the broker is back.
	deadline := time.Now().Add(30 * time.Second)
	for p.ready() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	before := r.checkpoint()
	down := time.Now()
	pace := time.NewTicker(20 * time.Millisecond) // a steady trickle, not a flood to catch up on
	for time.Since(down) < 20*time.Second {
		<-pace.C
		w.step(t)
	}
	pace.Stop()
	during := r.checkpoint()
	if during != before {
		t.Errorf("checkpoint moved from %s to %s while the broker was down: ahead of confirms", before, during)
	}
	if p.ready() {
		t.Error("reader reports ready while the broker is down")
	}
	stack(t, "up", "rabbitmq")
	for i := 0; i < 200; i++ {
		w.step(t)
	}
	events, dups := r.waitCovered(w, c, 2*time.Minute, p)
	t.Logf("%d changes (%d during the outage), %d events, %d duplicates", w.changes, w.changes-5000, len(events), dups)
}

func (r *cdcRig) checkpoint() string {
	var file string
	var pos int64
	if err := r.control.QueryRow("SELECT file, pos FROM cdc_checkpoint WHERE name = ?", r.id).Scan(&file, &pos); err != nil {
		r.t.Fatalf("read checkpoint: %v", err)
	}
	return fmt.Sprintf("%s:%d", file, pos)
}

func stack(t *testing.T, verb, svc string) {
	cmd := exec.Command("bash", "stack/stack.sh", verb, svc)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("stack.sh %s %s: %v\n%s", verb, svc, err, out)
	}
}

// TestCDCEventsCarryTheColumnsOfTheirOwnBinlogPoint prevents mis-mapping replayed rows after
// ALTER TABLE: the reader is down while columns are added and dropped, then replays the whole
// stretch; each event carries the columns the table had when the row was written. A TRUNCATE
// of a followed table leaves a resync mark.
func TestCDCEventsCarryTheColumnsOfTheirOwnBinlogPoint(t *testing.T) {
	r := newCDCRig(t)
	db := r.app
	if _, err := db.Exec("CREATE TABLE items (id INT PRIMARY KEY, a VARCHAR(16)) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	c := r.consume()
	p := r.start("items")
	waitReady(t, 30*time.Second, p)
	run := func(q string) {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	run("INSERT INTO items VALUES (1, 'one')")
	eventually(t, 30*time.Second, func() error {
		if len(c.snapshot()) < 1 {
			return fmt.Errorf("first event not consumed")
		}
		return nil
	})
	p.kill()
	run("INSERT INTO items VALUES (2, 'two')")
	run("ALTER TABLE items ADD COLUMN b INT NOT NULL DEFAULT 7")
	run("INSERT INTO items VALUES (3, 'three', 3)")
	run("UPDATE items SET b = 22 WHERE id = 2")
	run("ALTER TABLE items DROP COLUMN a")
	run("INSERT INTO items VALUES (4, 4)")
	run("TRUNCATE TABLE items")
	p = r.start("items")

	want := []struct {
		op, cols string
	}{
		{"insert", "id,a"}, {"insert", "id,a,b"}, {"update", "id,b"}, {"insert", "id,b"},
	}
	var got []event
	eventually(t, 60*time.Second, func() error {
		got = nil
		seen := map[string]bool{} // a replay after the kill may repeat the first insert
		for _, e := range c.snapshot() {
			if k := e.Position + string(e.PK["id"]); !seen[k] {
				seen[k] = true
				got = append(got, e)
			}
		}
		if len(got) < len(want)+1 {
			return fmt.Errorf("%d of %d events", len(got), len(want))
		}
		return nil
	})
	for i, w := range want {
		e := got[i+1] // got[0] is the row written before the kill
		img := e.After
		cols := make([]string, 0, len(img))
		for _, k := range []string{"id", "a", "b"} {
			if _, ok := img[k]; ok {
				cols = append(cols, k)
			}
		}
		if e.Op != w.op || strings.Join(cols, ",") != w.cols || len(img) != len(cols) {
			t.Errorf("event %d: %s with columns %v, want %s with %s", i, e.Op, img, w.op, w.cols)
		}
	}
	if b := string(got[3].Before["b"]); b != "7" { // the update of row 2
		t.Errorf("update before.b = %s, want the default 7 added by ALTER", b)
	}
	eventually(t, 30*time.Second, func() error {
		var n int
		r.control.QueryRow("SELECT COUNT(*) FROM cdc_resync_needed WHERE name = ? AND reason = 'truncate' AND table_name = ?",
			r.id, r.db+".items").Scan(&n)
		if n != 1 {
			return fmt.Errorf("%d truncate marks, want 1", n)
		}
		return nil
	})
}

// TestCDCSavepointDoesNotEndTheTransaction prevents a checkpoint in the middle of a
// transaction: a SAVEPOINT (ORMs' nested transactions) is a query event inside the
// transaction, not a commit. Rows after it must still carry the transaction's GTID.
func TestCDCSavepointDoesNotEndTheTransaction(t *testing.T) {
	r := newCDCRig(t)
	db := r.app
	if _, err := db.Exec("CREATE TABLE sp (id INT PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	c := r.consume()
	p := r.start("sp")
	waitReady(t, 30*time.Second, p)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, tx, "INSERT INTO sp VALUES (1)")
	mustExec(t, tx, "SAVEPOINT s1")
	mustExec(t, tx, "INSERT INTO sp VALUES (2)")
	mustExec(t, tx, "RELEASE SAVEPOINT s1")
	mustExec(t, tx, "INSERT INTO sp VALUES (3)")
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var got []event
	eventually(t, 30*time.Second, func() error {
		got = c.snapshot()
		if len(got) < 3 {
			return fmt.Errorf("%d of 3 events consumed", len(got))
		}
		return nil
	})
	for _, e := range got[:3] {
		if e.GTID == "" || e.GTID != got[0].GTID {
			t.Errorf("event id=%s at %s has gtid %q, want the transaction's %q", e.PK["id"], e.Position, e.GTID, got[0].GTID)
		}
	}
}
