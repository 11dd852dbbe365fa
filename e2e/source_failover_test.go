package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// mysql2Addr is the second MariaDB of the stack (`stack.sh up mariadb2`), a GTID replica of
// the first that this test promotes.
var mysql2Addr = "127.0.0.1:" + env("WYE_MYSQL2_PORT", "3307")

// TestSourceFailoverResumesFromTheGTIDSetAndLosesNothing prevents the changes committed
// between cdc's last checkpoint and a source failover from being skipped: the reader used to
// start at the new primary's current position and only mark a resync. Here the stack's
// MariaDB is the primary and mariadb2 its GTID replica. cdc is killed mid-workload (its
// checkpoint lags what it published), the workload goes on without it on the old primary,
// then stops; once the replica has applied everything it is promoted, cdc and the indexer are
// restarted against it, and the workload continues there. cdc must resume from the saved GTID
// set under a new epoch, with no resync mark, and every cluster must equal the new primary.
func TestSourceFailoverResumesFromTheGTIDSetAndLosesNothing(t *testing.T) {
	stack(t, "up", "mariadb2") // idempotent: a fresh replica unless it already replicates
	if t.Failed() {
		t.FailNow()
	}
	// Promoted below, it no longer replicates: the next `up mariadb2` provisions it again.
	// Stopped meanwhile, so it does not replay every other test's writes.
	t.Cleanup(func() { stack(t, "down", "mariadb2") })
	replica := openMySQLAt(t, mysql2Addr, mysqlAppUser, mysqlAppPass, "")

	r := newIndexerRig(t) // its database is created on the primary and replicated
	r.viaCDC = true
	name := "fo_" + r.id
	// A control schema of its own: the failover's new epochs stay out of the shared floor.
	ctl := privateControl(t)
	root := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	primaryCfg := withControl(t, r.config(freePort(t)), ctl)
	_, replicaPort, _ := strings.Cut(mysql2Addr, ":")
	replicaCfg := onSource(t, primaryCfg, replicaPort)

	cdc1 := startCDC(t, primaryCfg, name)
	idx1 := startIndexer(t, r, primaryCfg)

	c := newIndexerCatalog(r, 29)
	c.seed(2, 6, 40, 80, 8)
	for range 150 {
		c.step()
	}
	// The start point a new reader saves first carries the GTID position at it: a failover
	// within the reader's first checkpoint interval resumes by GTID too (it used to have none,
	// and such a failover could only mark a resync).
	if m := regexp.MustCompile(`no checkpoint: starting at .* gtid_set=(\S*)`).FindStringSubmatch(cdc1.out.String()); m == nil || !strings.HasPrefix(m[1], "0-1-") {
		t.Errorf("the new reader's start point has no GTID set (%q):\n%s", m, cdc1.out.String())
	}
	// cdc dies without a last checkpoint; what it published after its last save is read again
	// on the new primary. The writes that follow are committed on the old primary only while
	// no reader runs: the reader of old jumped over them.
	ctlDB := openMySQL(t, mysqlAppUser, mysqlAppPass, ctl)
	eventually(t, 30*time.Second, func() error {
		var gtids string
		if err := ctlDB.QueryRow("SELECT gtid_set FROM cdc_checkpoint WHERE name = ?", name).Scan(&gtids); err != nil {
			return err
		}
		if gtids == "" {
			return errors.New("checkpoint saved without a GTID set")
		}
		return nil
	})
	cdc1.cmd.Process.Kill()
	<-cdc1.done
	for range 100 {
		c.step()
	}
	var primaryPos string
	must(t, root.QueryRow("SELECT @@gtid_binlog_pos").Scan(&primaryPos))
	eventually(t, time.Minute, func() error {
		var waited sql.NullInt64
		if err := replica.QueryRow("SELECT MASTER_GTID_WAIT(?, 1)", primaryPos).Scan(&waited); err != nil {
			return err
		}
		if waited.Int64 != 0 {
			return fmt.Errorf("replica has not applied %s yet", primaryPos)
		}
		return nil
	})
	must(t, execErr(replica, "STOP SLAVE")) // promoted: the workload writes here from now on
	idx1.stop()                             // it reads the old primary, which now falls behind

	r.app = openMySQLAt(t, mysql2Addr, mysqlAppUser, mysqlAppPass, r.db)
	cdc2 := startCDC(t, replicaCfg, name)
	startIndexer(t, r, replicaCfg)
	for range 150 {
		c.step()
	}
	eventually(t, 3*time.Minute, func() error { return r.converged("es7", "es8", "os2") })

	out := cdc2.out.String()
	if !strings.Contains(out, "resuming from the checkpoint's GTID set on the new source") {
		t.Errorf("cdc did not resume from the GTID set on the new primary:\n%s", out)
	}
	if strings.Contains(out, "SOURCE CHANGED") {
		t.Errorf("cdc started at the new primary's current position (changes skipped):\n%s", out)
	}
	var marks int
	must(t, ctlDB.QueryRow("SELECT COUNT(*) FROM cdc_resync_needed WHERE name = ?", name).Scan(&marks))
	if marks != 0 {
		t.Errorf("%d resync marks after a failover resumed by GTID", marks)
	}
	// The checkpoint follows within a cdc.checkpoint_interval of the confirms.
	eventually(t, 15*time.Second, func() error {
		var sourceID, gtidSet string
		if err := ctlDB.QueryRow("SELECT server_uuid, gtid_set FROM cdc_checkpoint WHERE name = ?", name).Scan(&sourceID, &gtidSet); err != nil {
			return err
		}
		if !strings.HasPrefix(sourceID, "mariadb:2:") || !strings.Contains(gtidSet, "0-2-") {
			return fmt.Errorf("checkpoint of source %q at GTID %q, want mariadb2 past its own writes", sourceID, gtidSet)
		}
		return nil
	})
	if err := r.parkedCount(0); err != nil {
		t.Error(err)
	}
}

// onSource writes a copy of the wye.yaml at path whose source is the MariaDB on port and
// returns the copy's path.
func onSource(t *testing.T, path, port string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	const old = "source: {flavor: mariadb, host: 127.0.0.1, port: 3306,"
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no source line to replace:\n%s", path, b)
	}
	cfg := strings.Replace(string(b), old, "source: {flavor: mariadb, host: 127.0.0.1, port: "+port+",", 1)
	out := filepath.Join(t.TempDir(), "wye-source-"+port+".yaml")
	must(t, os.WriteFile(out, []byte(cfg), 0o600))
	return out
}

// startIndexer runs `wye indexer` on cfg with the rig's flags (indexerRig.start, which always
// uses the rig's own configuration) and waits until it is ready.
func startIndexer(t *testing.T, r *indexerRig, cfg string) *wyeProc {
	t.Helper()
	metrics := freePort(t)
	return runWye(t, "wye indexer ("+cfg+")", metrics, nil, "indexer", "-c", cfg, "--parked-queue", r.parked,
		"--retry-delays", "1s,2s,5s", "--batch-wait", "50ms", "--roles-poll", "1s", "--metrics-listen", metrics)
}

// openMySQLAt connects to the MariaDB at addr as user, to database db ("" for none).
func openMySQLAt(t *testing.T, addr, user, pass, db string) *sql.DB {
	t.Helper()
	requireReachable(t, "MariaDB", addr)
	d, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?parseTime=true&multiStatements=true", user, pass, addr, db))
	must(t, err)
	t.Cleanup(func() { d.Close() })
	must(t, d.Ping())
	return d
}

func execErr(db *sql.DB, q string) error {
	_, err := db.Exec(q)
	return err
}
