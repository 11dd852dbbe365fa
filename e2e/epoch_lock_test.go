package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/control"
)

// The epoch floor and the control-schema-scoped lock names (docs/cdc.md, "Epochs" and "One
// active reader"). Every test here runs its readers on control schemas of its own: epochs only
// grow, and the shared schema `wye` must not carry one test's source changes into the next.

// privateControl creates an empty control schema, dropped at cleanup, and returns its name.
// wye_app may create databases; the stack's control user may not.
func privateControl(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("wye_ctl_%d%03d", time.Now().Unix()%1000000, rand.IntN(1000))
	root := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	if _, err := root.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create control schema: %v", err)
	}
	t.Cleanup(func() { root.Exec("DROP DATABASE IF EXISTS " + name) })
	return name
}

var controlLine = regexp.MustCompile(`(?m)^control: \{.*\}$`)

// withControl writes a copy of the wye.yaml at path whose control schema is db and returns
// the copy's path.
func withControl(t *testing.T, path, db string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	host, port := splitHostPort(t, mysqlAddr)
	line := fmt.Sprintf("control: {host: %s, port: %d, user: %s, password: %q, database: %s}", host, port, mysqlAppUser, mysqlAppPass, db)
	if !controlLine.Match(b) {
		t.Fatalf("%s has no control line to replace", path)
	}
	out := filepath.Join(t.TempDir(), "wye-"+db+".yaml")
	must(t, os.WriteFile(out, controlLine.ReplaceAll(b, []byte(line)), 0o600))
	return out
}

// wyeProc is a `wye` process that a test stops and starts again mid-test (startWye runs one
// until cleanup).
type wyeProc struct {
	cmd     *exec.Cmd
	out     *lockedOutput
	metrics string
	done    chan struct{}
}

// startCDC runs `wye cdc` on cfg (reader name: the default when name is "") and waits until
// it leads and streams.
func startCDC(t *testing.T, cfg, name string) *wyeProc {
	t.Helper()
	metrics := freePort(t)
	args := []string{"cdc", "-c", cfg, "--metrics-listen", metrics, "--log-level", "info"}
	if name != "" {
		args = append(args, "--name", name)
	}
	return runWye(t, "wye cdc "+name, metrics, []string{"WYE_CONTROL_PASSWORD=wye-control"}, args...)
}

// runWye runs the wye binary with args and the stack's source and broker secrets (plus env),
// stops it at cleanup (logging its output if the test failed), and waits until /readyz on
// metrics answers; a process that exits first fails the test.
func runWye(t *testing.T, what, metrics string, env []string, args ...string) *wyeProc {
	t.Helper()
	p := &wyeProc{out: &lockedOutput{}, metrics: metrics, done: make(chan struct{})}
	u, _ := url.Parse(amqpURL)
	amqpPass, _ := u.User.Password()
	p.cmd = exec.Command(wyeBinary(t), args...)
	p.cmd.Env = append(append(os.Environ(), "WYE_SOURCE_PASSWORD="+mysqlSrcPass, "WYE_AMQP_PASSWORD="+amqpPass), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	must(t, p.cmd.Start())
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", what, p.out.String())
		}
	})
	eventually(t, time.Minute, func() error {
		select {
		case <-p.done:
			t.Fatalf("%s exited:\n%s", what, p.out.String())
		default:
		}
		return readyz(p.metrics)
	})
	return p
}

// stop ends the process with SIGTERM (its last checkpoint save included), SIGKILL after 15 s.
func (p *wyeProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// touchPrograms changes every program's title, so every document must be written again.
func touchPrograms(r *indexerRig) {
	r.t.Helper()
	if _, err := r.app.Exec("UPDATE programs SET title = CONCAT(LEFT(title, 190), '+')"); err != nil {
		r.t.Fatalf("touch programs: %v", err)
	}
}

// convergedAtEpoch waits until every cluster equals MariaDB and every master document carries
// a version of epoch. A write sorted below the documents' versions is a 409 and never lands:
// the touched titles would stay old, and converged would fail.
func convergedAtEpoch(r *indexerRig, epoch uint32, timeout time.Duration) {
	r.t.Helper()
	eventually(r.t, timeout, func() error {
		if err := r.converged("es7", "es8", "os2"); err != nil {
			return err
		}
		docs, err := r.docs("es7")
		if err != nil {
			return err
		}
		for id, d := range docs {
			v, _ := d["wye_version"].(float64) // exact: versions of epochs below 32 are < 2^53
			if got := cdc.Version(v).Epoch(); got != epoch {
				return fmt.Errorf("document %s has version %d of epoch %d, want epoch %d", id, int64(v), got, epoch)
			}
		}
		return nil
	})
}

// execControl runs one statement on control schema db.
func execControl(t *testing.T, db, q string, args ...any) {
	t.Helper()
	if _, err := openMySQL(t, mysqlAppUser, mysqlAppPass, db).Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestDeletedCheckpointOrRenamedReaderAfterASourceChangeStillWrites prevents the silent
// freeze of the index after a source change: a reader with no checkpoint row (deleted, or a
// new reader name) used to start at epoch 1, below the epoch-3 versions the clusters held, so
// every write was a 409 "stale". It must continue at the epoch floor (epoch 3, the same
// source), and the touched documents must land in every cluster.
func TestDeletedCheckpointOrRenamedReaderAfterASourceChangeStillWrites(t *testing.T) {
	r := newIndexerRig(t)
	r.viaCDC = true
	ctl := privateControl(t)
	cfg := withControl(t, r.config(freePort(t)), ctl)
	name := "epoch_" + r.id
	reader := startCDC(t, cfg, name)
	r.start()
	workloadConverges(t, r, 100, 2*time.Minute)
	convergedAtEpoch(r, 1, time.Minute)

	// The source changes as the reader sees it: another server identity, and no GTID set to
	// resume from. The reader starts epoch NextEpoch(1, ...) = 3 at the current position.
	reader.stop()
	execControl(t, ctl, "UPDATE cdc_checkpoint SET server_uuid = 'e2e-old-primary', gtid_set = '' WHERE name = ?", name)
	reader = startCDC(t, cfg, name)
	if !strings.Contains(reader.out.String(), "SOURCE CHANGED") {
		t.Fatalf("the reader did not see the source change:\n%s", reader.out.String())
	}
	touchPrograms(r)
	convergedAtEpoch(r, 3, time.Minute)

	// The checkpoint row is deleted.
	reader.stop()
	execControl(t, ctl, "DELETE FROM cdc_checkpoint WHERE name = ?", name)
	reader = startCDC(t, cfg, name)
	if out := reader.out.String(); !strings.Contains(out, "no checkpoint") || !strings.Contains(out, `epoch_from="epoch floor 3`) {
		t.Fatalf("after the deleted checkpoint the reader did not start from the epoch floor:\n%s", out)
	}
	touchPrograms(r)
	convergedAtEpoch(r, 3, time.Minute)

	// The reader is renamed (the old name's checkpoint stays behind).
	reader.stop()
	reader = startCDC(t, cfg, name+"_renamed")
	if out := reader.out.String(); !strings.Contains(out, `epoch_from="epoch floor 3`) {
		t.Fatalf("the renamed reader did not start from the epoch floor:\n%s", out)
	}
	touchPrograms(r)
	convergedAtEpoch(r, 3, time.Minute)
}

// TestFreshControlSchemaStartsAboveTheVersionsInTheMaster prevents the same freeze when the
// control data is gone altogether (a recreated control schema, or a new one pointed at
// existing indices): with no checkpoint and no epoch floor, the reader must start above the
// highest version the master holds (epoch 3 here, so epoch 4), not at epoch 1.
func TestFreshControlSchemaStartsAboveTheVersionsInTheMaster(t *testing.T) {
	r := newIndexerRig(t)
	r.viaCDC = true
	base := r.config(freePort(t))
	old := privateControl(t)
	cfg := withControl(t, base, old)
	name := "fresh_" + r.id
	reader := startCDC(t, cfg, name)
	reader.stop()
	// An earlier source change, as the control schema records it: epoch 3 at the same position.
	execControl(t, old, "UPDATE cdc_checkpoint SET epoch = 3 WHERE name = ?", name)
	reader = startCDC(t, cfg, name)
	r.start()
	workloadConverges(t, r, 100, 2*time.Minute)
	convergedAtEpoch(r, 3, time.Minute)
	reader.stop()

	reader = startCDC(t, withControl(t, base, privateControl(t)), name)
	if out := reader.out.String(); !strings.Contains(out, "above the highest version the master holds") {
		t.Fatalf("the reader of a fresh control schema did not start above the master's versions:\n%s", out)
	}
	touchPrograms(r)
	convergedAtEpoch(r, 4, time.Minute)
}

// TestTwoDeploymentsOnOneServerLeadAtOnceWithTheDefaultReaderName prevents two wye
// deployments with their own control schemas on one MariaDB from blocking each other: the
// leader lock was the server-wide GET_LOCK('wye.cdc.default'), so the second reader waited
// as a standby for the first one's lock and its index never changed. Both must lead at once,
// on locks of their own, and both indices must converge.
func TestTwoDeploymentsOnOneServerLeadAtOnceWithTheDefaultReaderName(t *testing.T) {
	app := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	var rigs [2]*indexerRig
	var readers [2]*wyeProc
	var ctls [2]string
	for i := range rigs {
		rigs[i] = newIndexerRig(t)
		rigs[i].viaCDC = true
		ctls[i] = privateControl(t)
		readers[i] = startCDC(t, withControl(t, rigs[i].config(freePort(t)), ctls[i]), "") // cdc.name: the default
	}
	var holders [2]int64
	for i := range readers {
		if err := readyz(readers[i].metrics); err != nil {
			t.Fatalf("reader of control schema %s no longer leads once the other started: %v", ctls[i], err)
		}
		lock := "wye." + ctls[i] + ".cdc." + control.DefaultReaderName
		if holders[i] = lockHolder(t, app, lock); holders[i] == 0 {
			t.Fatalf("nobody holds %s while its reader leads", lock)
		}
	}
	if holders[0] == holders[1] {
		t.Fatalf("one connection (%d) holds both deployments' leader locks", holders[0])
	}
	for i, r := range rigs {
		r.start()
		workloadConverges(t, r, 100, 2*time.Minute)
		if err := readyz(readers[i].metrics); err != nil {
			t.Fatalf("reader of control schema %s stopped leading: %v", ctls[i], err)
		}
	}
}

// TestEpochFloorOutlivesCheckpointsAndNeverMovesDown prevents the floor itself from going
// backwards: a checkpoint of a lower version (another reader, an old epoch) must not lower
// it, deleting every checkpoint must leave it, and a schema migrated under existing readers
// must start with their highest checkpoint as its floor.
func TestEpochFloorOutlivesCheckpointsAndNeverMovesDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := privateControl(t)
	open := func() *control.Store {
		s, err := control.Open(ctx, mysqlDriverConfig(mysqlAppUser, mysqlAppPass, db))
		must(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	save := func(s *control.Store, cp cdc.Checkpoint) {
		t.Helper()
		c := s.CDC(control.CDCOptions{Name: cp.Name, Poll: 50 * time.Millisecond})
		_, release, err := c.Acquire(ctx)
		must(t, err)
		defer release()
		must(t, c.Save(ctx, cp))
	}
	floor := func(s *control.Store) cdc.Checkpoint {
		t.Helper()
		f, ok, err := s.CDC(control.CDCOptions{}).Floor(ctx)
		must(t, err)
		if !ok {
			t.Fatal("no epoch floor")
		}
		return f
	}
	s := open()
	if _, ok, err := s.CDC(control.CDCOptions{}).Floor(ctx); err != nil || ok {
		t.Fatalf("a new control schema has a floor (%v, %v)", ok, err)
	}
	high := cdc.Checkpoint{Name: "a", Epoch: 3, SourceID: "s", Pos: cdc.Position{File: "b.000010", Pos: 500}}
	save(s, high)
	save(s, cdc.Checkpoint{Name: "b", Epoch: 1, SourceID: "s", Pos: cdc.Position{File: "b.000020", Pos: 9}})
	save(s, cdc.Checkpoint{Name: "c", Epoch: 3, SourceID: "t", Pos: cdc.Position{File: "b.000010", Pos: 400}})
	if f := floor(s); f != high {
		t.Fatalf("floor %+v after lower checkpoints, want %+v", f, high)
	}
	execControl(t, db, "DELETE FROM cdc_checkpoint")
	if f := floor(s); f != high {
		t.Fatalf("floor %+v after every checkpoint was deleted, want %+v", f, high)
	}

	// A schema of the version before the floor, under readers: the migration seeds the floor
	// with their highest checkpoint (by version: the suffix carries into the epoch bits).
	execControl(t, db, "DROP TABLE cdc_epoch_floor; DELETE FROM control_schema WHERE version >= 2")
	execControl(t, db, `INSERT INTO cdc_checkpoint (name, epoch, server_uuid, file, pos, gtid_set) VALUES
		('x', 2, 's', 'b.000900', 4, ''), ('y', 1, 's', 'b.070000', 8, ''), ('z', 1, 's', 'b.000001', 99, '')`)
	s2 := open()
	want := cdc.Checkpoint{Name: "y", Epoch: 1, SourceID: "s", Pos: cdc.Position{File: "b.070000", Pos: 8}}
	if f := floor(s2); f != want {
		t.Fatalf("floor seeded by the migration %+v, want the highest checkpoint %+v", f, want)
	}
	var n int
	if err := openMySQL(t, mysqlAppUser, mysqlAppPass, db).QueryRow("SELECT COUNT(*) FROM control_schema").Scan(&n); err != nil || n != control.SchemaVersion {
		t.Fatalf("control_schema rows %d (%v), want %d", n, err, control.SchemaVersion)
	}
}
