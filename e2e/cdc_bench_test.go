//go:build bench

package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCDCBenchmarkReportsReadAndPublishRates runs `wye cdc bench` on 600k fresh row changes
// and logs raw read rate, publish rate, their ratio (target >= 0.8; reported, not asserted:
// the shared machine's load makes rates noisy) and the message bytes per change.
func TestCDCBenchmarkReportsReadAndPublishRates(t *testing.T) {
	r := newCDCRig(t)
	src := openMySQL(t, mysqlSrcUser, mysqlSrcPass, "")
	masterPos := func() string {
		var file string
		var pos uint32
		var a, b any
		if err := src.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &a, &b); err != nil {
			t.Fatalf("show master status: %v", err)
		}
		return fmt.Sprintf("%s:%d", file, pos)
	}
	if _, err := r.app.Exec(`CREATE TABLE bench (id BIGINT PRIMARY KEY, ver INT NOT NULL, parent_id BIGINT NOT NULL,
	  note VARCHAR(64) CHARACTER SET utf8mb4, amount DECIMAL(12,2), at DATETIME(6)) ENGINE=InnoDB`); err != nil {
		t.Fatal(err)
	}
	from := masterPos()
	gen := time.Now()
	const rows, batch = 300_000, 1000
	for i := 0; i < rows; i += batch {
		var vals []string
		for j := i; j < i+batch; j++ {
			vals = append(vals, fmt.Sprintf("(%d, 1, %d, 'note é %d', %d.25, NOW(6))", j, j%500, j, j))
		}
		if _, err := r.app.Exec("INSERT INTO bench VALUES " + strings.Join(vals, ",")); err != nil {
			t.Fatal(err)
		}
	}
	// The range spans a binlog rotation, as a long range does in production: every path must
	// read across it (the bench refuses paths that handled different numbers of changes).
	if _, err := r.app.Exec("FLUSH BINARY LOGS"); err != nil {
		t.Fatalf("rotate the binlog: %v", err)
	}
	for i := 0; i < rows; i += batch {
		if _, err := r.app.Exec("UPDATE bench SET ver = ver + 1, parent_id = parent_id + 1 WHERE id >= ? AND id < ?", i, i+batch); err != nil {
			t.Fatal(err)
		}
	}
	to := masterPos()
	t.Logf("generated %d row changes in %v (binlog %s .. %s)", 2*rows, time.Since(gen).Round(time.Millisecond), from, to)

	cfg := r.config(freePort(t), "bench")
	out, err := exec.Command(wyeBinary(t), "cdc", "bench", "-c", cfg, "--from", from, "--to", to, "--log-level", "warn").CombinedOutput()
	if err != nil {
		t.Fatalf("wye cdc bench: %v\n%s", err, out)
	}
	t.Logf("wye cdc bench:\n%s", out)
	for _, want := range []string{"ratio publish/raw", "message bytes per change"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("no %q in the output", want)
		}
	}
}
