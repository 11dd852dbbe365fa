package e2e

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/wyehq/wye/control"
)

func controlConfig() *mysql.Config {
	return mysqlDriverConfig(env("WYE_E2E_CONTROL_USER", "wye"), env("WYE_E2E_CONTROL_PASSWORD", "wye-control"), "wye")
}

// TestControlSchemaMigratesOnceAndRefusesANewerOne prevents two failures of the one control
// schema: processes starting together applying a migration twice (or failing on each other),
// and an old binary writing a schema a newer wye has already moved on.
func TestControlSchemaMigratesOnceAndRefusesANewerOne(t *testing.T) {
	requireReachable(t, "MariaDB", mysqlAddr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := control.Open(ctx, controlConfig())
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d of 4 at once: %v", i, err)
		}
	}
	conn, err := mysql.NewConnector(controlConfig())
	must(t, err)
	db := sql.OpenDB(conn)
	defer db.Close()
	var rows, top int
	must(t, db.QueryRowContext(ctx, "SELECT COUNT(*), MAX(version) FROM control_schema").Scan(&rows, &top))
	if rows != control.SchemaVersion || top != control.SchemaVersion {
		t.Errorf("control_schema holds %d rows up to version %d, want each of 1..%d once", rows, top, control.SchemaVersion)
	}
	for _, table := range []string{"cdc_checkpoint", "cdc_resync_needed", "cluster_roles", "repair_ledger"} {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'wye' AND TABLE_NAME = ?", table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s after migration: %d, %v", table, n, err)
		}
	}

	newer := control.SchemaVersion + 1
	_, err = db.ExecContext(ctx, "INSERT INTO control_schema (version) VALUES (?)", newer)
	must(t, err)
	defer db.Exec("DELETE FROM control_schema WHERE version = ?", newer)
	if s, err := control.Open(ctx, controlConfig()); err == nil {
		s.Close()
		t.Fatal("a schema newer than this build was opened")
	} else if !strings.Contains(err.Error(), "upgrade wye") {
		t.Errorf("newer schema: %v, want an error saying to upgrade wye", err)
	}
}
