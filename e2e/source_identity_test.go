package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wyehq/wye/internal/serverid"
)

// TestIndexerReadsOnlyTheServerCDCFollows prevents the indexer from building documents from
// another server than the one whose binlog cdc follows (a replica named by source.host, a
// pooled connection that outlived a switchover): its rows may be older than the changes, and
// the documents would keep them under newer versions. The indexer reads mariadb2, a replica,
// while the reader's checkpoint names the primary: the batch waits, saying so, and nothing is
// written; once the checkpoint names mariadb2 (as after cdc follows it), the batch is written.
func TestIndexerReadsOnlyTheServerCDCFollows(t *testing.T) {
	stack(t, "up", "mariadb2")
	if t.Failed() {
		t.FailNow()
	}
	t.Cleanup(func() { stack(t, "down", "mariadb2") })
	ctx := context.Background()
	replica := openMySQLAt(t, mysql2Addr, mysqlAppUser, mysqlAppPass, "")
	primary := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	primaryID, err := serverid.Read(ctx, primary, serverid.MariaDB)
	must(t, err)
	replicaID, err := serverid.Read(ctx, replica, serverid.MariaDB)
	must(t, err)
	if primaryID == replicaID {
		t.Fatalf("primary and replica share the identity %q: this test would check nothing", primaryID)
	}

	r := newIndexerRig(t) // its database is created on the primary and replicated
	name := "ident_" + r.id
	ctl := openMySQL(t, "wye", "wye-control", "wye")
	_, err = ctl.Exec("INSERT INTO cdc_checkpoint (name, epoch, server_uuid, file, pos, gtid_set) VALUES (?, 1, ?, 'e2e', 4, '')", name, primaryID)
	must(t, err)
	t.Cleanup(func() { ctl.Exec("DELETE FROM cdc_checkpoint WHERE name = ?", name) })

	c := newIndexerCatalog(r, 31)
	c.seed(1, 2, 5, 0, 0)
	eventually(t, time.Minute, func() error { // the replica has every row the events name
		var n int
		if err := replica.QueryRow("SELECT COUNT(*) FROM " + r.db + ".programs").Scan(&n); err != nil {
			return err
		}
		if n != 5 {
			return fmt.Errorf("replica holds %d of 5 programs", n)
		}
		return nil
	})
	_, port, _ := strings.Cut(mysql2Addr, ":")
	t.Setenv("WYE_SOURCE_PORT", port)
	t.Setenv("WYE_CDC_NAME", name)
	ind := r.start()

	eventually(t, time.Minute, func() error {
		if !strings.Contains(ind.output(), "but cdc follows") {
			return fmt.Errorf("the indexer has not refused to read the replica yet")
		}
		return nil
	})
	if docs, err := r.docs("es7"); err != nil || len(docs) != 0 {
		t.Fatalf("master holds %d documents read from a server cdc does not follow (%v)", len(docs), err)
	}

	_, err = ctl.Exec("UPDATE cdc_checkpoint SET server_uuid = ? WHERE name = ?", replicaID, name)
	must(t, err)
	eventually(t, time.Minute, func() error { return r.converged("es7", "es8", "os2") })
}
