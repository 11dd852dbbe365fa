package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/cdc/publisher"
	"github.com/wyehq/wye/control"
)

// openTestControl opens the control-schema adapter of reader name against the stack's MariaDB.
func openTestControl(t *testing.T, name string) *control.CDC {
	t.Helper()
	requireReachable(t, "MariaDB", mysqlAddr)
	return openControlVia(t, name, mysqlAddr)
}

// cannotAcquire fails the test if other gets the leader lock within d.
func cannotAcquire(t *testing.T, other *control.CDC, d time.Duration, when string) {
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
	if err := standby.Save(ctx, cp); !errors.Is(err, control.ErrNotLeader) {
		t.Fatalf("save by a reader without the lock: %v, want ErrNotLeader", err)
	}
	release()
	if err := leader.Save(ctx, cp); !errors.Is(err, control.ErrNotLeader) {
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
	if err := app.QueryRow("SELECT IS_USED_LOCK(?)", old.LockName()).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(fmt.Sprintf("KILL CONNECTION %d", holder)); err != nil {
		t.Fatalf("kill the lock connection: %v", err)
	}
	// KILL returns before the killed thread has ended and released its locks (seconds on a
	// busy server): the premise is a released lock, so wait for that, not for the leader.
	eventually(t, 10*time.Second, func() error {
		var now sql.NullInt64
		if err := app.QueryRow("SELECT IS_USED_LOCK(?)", old.LockName()).Scan(&now); err != nil {
			return err
		}
		if now.Valid && now.Int64 == holder {
			return errors.New("the killed connection still holds the lock")
		}
		return nil
	})
	// Before the old leader notices, its saves are already refused.
	cp.Pos.Pos = 100
	if err := old.Save(ctx, cp); !errors.Is(err, control.ErrNotLeader) {
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
	if err := old.Save(ctx, cp); !errors.Is(err, control.ErrNotLeader) {
		t.Fatalf("save by the deposed leader: %v, want ErrNotLeader", err)
	}
}

// rabbitmqctl runs the stack's rabbitmqctl against its node (wye@localhost), as stack.sh does:
// the real script, with HOME pointing at the node's Erlang cookie, as the node's user.
func rabbitmqctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	rq := filepath.Join(env("WYE_STACK_DIR", "/var/tmp/wye-stack"), "rabbitmq")
	var bin string
	cands, _ := filepath.Glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmqctl")
	for _, c := range append([]string{"/usr/lib/rabbitmq/bin/rabbitmqctl"}, cands...) {
		if _, err := os.Stat(c); err == nil {
			bin = c
			break
		}
	}
	if bin == "" {
		t.Fatal("rabbitmqctl not found (is the stack installed? bash e2e/stack/stack.sh up rabbitmq)")
	}
	cmd := append([]string{"env", "HOME=" + filepath.Join(rq, "home"), "RABBITMQ_NODENAME=wye@localhost", bin, "-q"}, args...)
	if os.Geteuid() == 0 {
		cmd = append([]string{"runuser", "-u", "rabbitmq", "--"}, cmd...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cmd[0], cmd[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// memoryAlarm raises RabbitMQ's memory alarm (the whole node blocks publishers) and restores
// the watermark in t.Cleanup. The node also restores it by itself after deadMan, in case this
// test process dies before its cleanup: other tests share the broker.
func memoryAlarm(t *testing.T, deadMan time.Duration) {
	t.Helper()
	orig, err := rabbitmqctl(t, "eval", "vm_memory_monitor:get_vm_memory_high_watermark().")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^([0-9.e+-]+|\{absolute,[0-9]+\})$`).MatchString(orig) {
		t.Fatalf("unexpected memory watermark %q", orig)
	}
	restore := fmt.Sprintf("vm_memory_monitor:set_vm_memory_high_watermark(%s).", orig)
	t.Cleanup(func() {
		if _, err := rabbitmqctl(t, "eval", restore); err != nil {
			t.Errorf("restore the memory watermark to %s: %v", orig, err)
			return
		}
		eventually(t, 30*time.Second, func() error {
			out, err := rabbitmqctl(t, "eval", "rabbit_alarm:get_alarms().")
			if err == nil && strings.Contains(out, "memory") {
				err = fmt.Errorf("memory alarm still set: %s", out)
			}
			return err
		})
	})
	if _, err := rabbitmqctl(t, "eval", fmt.Sprintf(
		"vm_memory_monitor:set_vm_memory_high_watermark(0.0000001), timer:apply_after(%d, vm_memory_monitor, set_vm_memory_high_watermark, [%s]).",
		deadMan.Milliseconds(), orig)); err != nil {
		t.Fatal(err)
	}
	t.Logf("memory alarm raised (watermark was %s; the node restores it within %v)", orig, deadMan)
}

// alarmRig is one publisher session on a private exchange and queue.
type alarmRig struct {
	pub        *publisher.Publisher
	m          *cdc.Metrics
	ch         cdc.Channel
	session    context.Context
	endSession context.CancelFunc
}

func openAlarmRig(t *testing.T, closeTimeout time.Duration) *alarmRig {
	t.Helper()
	requireReachable(t, "RabbitMQ", amqpAddr(t))
	id := fmt.Sprintf("%d%03d", time.Now().Unix()%1000000, rand.IntN(1000))
	exchange, queue := "wye.e2e.alarm."+id, "wye.e2e.alarm."+id
	t.Cleanup(func() { // registered before the alarm: runs after it is lifted
		conn, err := amqp.Dial(amqpURL)
		if err != nil {
			t.Errorf("dial to clean up: %v", err)
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			ch.QueueDelete(queue, false, false, false)
			ch.QueueDelete(queue+".parked", false, false, false)
			ch.ExchangeDelete(exchange, false, false)
		}
	})
	r := &alarmRig{m: cdc.NewMetrics(nil)}
	r.pub = publisher.New(publisher.Options{URL: amqpURL, Exchange: exchange, Queue: queue, Parked: queue + ".parked",
		Window: 256, CloseTimeout: closeTimeout, Metrics: r.m})
	r.session, r.endSession = context.WithCancel(context.Background())
	t.Cleanup(r.endSession)
	var err error
	if r.ch, err = r.pub.Open(r.session); err != nil {
		t.Fatalf("open: %v", err)
	}
	msg := cdc.Message{RoutingKey: "e2e.alarm", Body: []byte(`{"schema":1}`), MessageID: "first", Changes: 1}
	if _, err := r.ch.Publish(r.session, msg); err != nil {
		t.Fatalf("publish before the alarm: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		if w, _, err := r.ch.Confirmed(); err != nil || w < 1 {
			return fmt.Errorf("not confirmed yet (w=%d, err=%v)", w, err)
		}
		return nil
	})
	return r
}

// publishUntilBlocked publishes body-sized messages in the background until the publisher
// reports the blocked connection; the returned channel yields the publish error that ends them.
func (r *alarmRig) publishUntilBlocked(t *testing.T, bodySize int) <-chan error {
	t.Helper()
	msg := cdc.Message{RoutingKey: "e2e.alarm", Body: []byte(`"` + strings.Repeat("x", bodySize) + `"`), Changes: 1}
	published := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			msg.MessageID = fmt.Sprint("alarm/", i)
			if _, err := r.ch.Publish(r.session, msg); err != nil {
				published <- err
				return
			}
			if bodySize < 1024 && r.pub.Blocked() {
				return // small messages: stop while they still fit in the socket buffers
			}
		}
	}()
	eventually(t, 20*time.Second, func() error {
		if !r.pub.Blocked() {
			return errors.New("the publisher does not report the blocked connection")
		}
		return nil
	})
	if g := gaugeValue(t, r.m.BrokerBlocked); g != 1 {
		t.Errorf("wye_cdc_broker_blocked = %v while blocked, want 1", g)
	}
	return published
}

// closeWithin fails the test unless r's channel closes within d.
func (r *alarmRig) closeWithin(t *testing.T, d time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- r.ch.Close() }()
	select {
	case err := <-done:
		t.Logf("Close returned after %v under the alarm: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(d):
		t.Fatalf("Close did not return within %v under a broker alarm", d) // the cleanup lifts the alarm
	}
	if r.pub.Blocked() || gaugeValue(t, r.m.BrokerBlocked) != 0 {
		t.Error("still reported blocked after Close")
	}
}

// TestCDCShutdownDoesNotHangUnderABrokerAlarm prevents a reader that never exits: RabbitMQ
// under a memory alarm blocks publishing connections and reads nothing more from them, so
// amqp091's Connection.Close waited for a close-ok forever, and a publish stuck in a full
// socket never returned. Under one real alarm: (1) a blocked connection is reported and Close
// returns by CloseTimeout; (2) a publish stuck in the socket returns once the session's
// context ends, and Close follows.
func TestCDCShutdownDoesNotHangUnderABrokerAlarm(t *testing.T) {
	const closeTimeout = 2 * time.Second
	idle, stuck := openAlarmRig(t, closeTimeout), openAlarmRig(t, closeTimeout)
	memoryAlarm(t, 45*time.Second)

	idle.publishUntilBlocked(t, 16)
	idle.closeWithin(t, closeTimeout+500*time.Millisecond)

	published := stuck.publishUntilBlocked(t, 256<<10)
	stuck.endSession() // shutdown or lock loss
	select {
	case err := <-published:
		t.Logf("stuck publish returned after the session ended: %v", err)
	case <-time.After(closeTimeout + 3*time.Second):
		t.Fatal("a publish stuck under the alarm did not return after the session ended")
	}
	stuck.closeWithin(t, closeTimeout+500*time.Millisecond)
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var d dto.Metric
	if err := g.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetGauge().GetValue()
}

// TestCDCCheckpointRefusesToMoveBelowTheSavedVersion prevents a new epoch that is too small
// (the old epoch+1 rule) once the binlog suffix passed 65535 and carried into the epoch bits:
// its versions would sort below ones already published. The store refuses such a checkpoint,
// and accepts the epoch cdc.NextEpoch gives.
func TestCDCCheckpointRefusesToMoveBelowTheSavedVersion(t *testing.T) {
	name := fmt.Sprintf("behind_%d%03d", time.Now().Unix()%1000000, rand.IntN(1000))
	app := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	t.Cleanup(func() { app.Exec("DELETE FROM wye.cdc_checkpoint WHERE name = ?", name) })
	ctl := openTestControl(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, release, err := ctl.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	defer release()
	old := cdc.Checkpoint{Name: name, Epoch: 1, SourceID: "old", Pos: cdc.Position{File: "mariadb-bin.070000", Pos: 4711}}
	if err := ctl.Save(ctx, old); err != nil {
		t.Fatalf("save past suffix 65535: %v", err)
	}
	tooSmall := cdc.Checkpoint{Name: name, Epoch: old.Epoch + 1, SourceID: "new", Pos: cdc.Position{File: "other-bin.000001", Pos: 4}}
	if err := ctl.Save(ctx, tooSmall); !errors.Is(err, control.ErrCheckpointBehind) {
		t.Fatalf("save of epoch %d after %d/%s: %v, want ErrCheckpointBehind", tooSmall.Epoch, old.Epoch, old.Pos, err)
	}
	next, err := cdc.NextEpoch(old.Epoch, old.Pos.File)
	if err != nil {
		t.Fatal(err)
	}
	tooSmall.Epoch = next
	if err := ctl.Save(ctx, tooSmall); err != nil {
		t.Fatalf("save of cdc.NextEpoch %d: %v", next, err)
	}
}
