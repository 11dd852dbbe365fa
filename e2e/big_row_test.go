package e2e

import (
	"crypto/rand"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TestCDCPublishesA64MBRowAndKeepsStreaming prevents one change bigger than the broker's
// max_message_size (a LONGBLOB row: an update carries two images, base64 in JSON) from being
// resent forever from the same checkpoint while cdc publishes nothing more for any table.
// Through the real `wye cdc` and `wye indexer`, a 64 MiB random value (incompressible) is
// inserted and then updated in the middle of a catalog workload: the blob travels as a digest,
// the other changes keep flowing, and every cluster ends up equal to MariaDB, the big row's
// document (which shows its small columns and a 1 KiB text, itself digested in events) too.
func TestCDCPublishesA64MBRowAndKeepsStreaming(t *testing.T) {
	r := newIndexerRig(t)
	r.viaCDC = true
	// 64 MiB values need packets above MariaDB's 16 MiB default. The global value applies to
	// connections opened after it; the old one is restored for the tests that follow.
	var packet int64
	must(t, r.app.QueryRow("SELECT @@GLOBAL.max_allowed_packet").Scan(&packet))
	if _, err := r.app.Exec("SET GLOBAL max_allowed_packet = 134217728"); err != nil {
		t.Fatalf("raise max_allowed_packet: %v", err)
	}
	t.Cleanup(func() { r.app.Exec("SET GLOBAL max_allowed_packet = " + strconv.FormatInt(packet, 10)) })
	// The client's own limit too (go-sql-driver's default is 64 MiB): the value is bound as a
	// parameter, which the driver sends in chunks of at most this size.
	cfg := mysqlDriverConfig(mysqlAppUser, mysqlAppPass, r.db)
	cfg.MaxAllowedPacket = 128 << 20
	conn, err := mysql.NewConnector(cfg)
	must(t, err)
	big := sql.OpenDB(conn)
	t.Cleanup(func() { big.Close() })

	index := "big_rows_" + r.id
	if _, err := r.app.Exec(`CREATE TABLE big_rows (id INT PRIMARY KEY, title VARCHAR(64) NOT NULL,
	  summary TEXT NOT NULL, payload LONGBLOB)`); err != nil {
		t.Fatal(err)
	}
	r.entities = append(r.entities, fmt.Sprintf("- name: big_rows\n  index: %s\n  root: {table: %s.big_rows, key: id, columns: [id, title, summary]}", index, r.db))
	for _, c := range clusterNames {
		if status, body := indexerHTTP(t, "PUT", clusterURL(t, c)+"/"+index, []byte(`{"mappings":{"dynamic":false}}`)); status != 200 {
			t.Fatalf("create index %s on %s: %d %s", index, c, status, body)
		}
		t.Cleanup(func() { indexerHTTP(t, "DELETE", clusterURL(t, c)+"/"+index, nil) })
	}
	cdcMetrics := freePort(t)
	startWye(t, r, "cdc", "cdc", "-c", r.config(freePort(t)), "--name", "idx_"+r.id, "--metrics-listen", cdcMetrics)
	eventually(t, 30*time.Second, func() error { return readyz(cdcMetrics) })
	// Written by name (--index-targets alias): the big_rows index is one concrete index; the
	// catalog's alias points at one index.
	r.start("--index-targets", "alias")

	payload := func() []byte {
		b := make([]byte, 64<<20)
		rand.Read(b)
		return b
	}
	summary := func(c byte) string { return strings.Repeat(string(c), 1024) }
	c := newIndexerCatalog(r, uint64(time.Now().UnixNano()))
	c.seed(3, 10, 50, 100, 15)
	steps := func(n int) {
		for range n {
			c.step()
		}
	}
	steps(100)
	if _, err := big.Exec("INSERT INTO big_rows VALUES (1, 'inserted', ?, ?), (2, 'small', ?, NULL)", summary('a'), payload(), summary('b')); err != nil {
		t.Fatalf("insert the 64 MiB row: %v", err)
	}
	steps(100)
	if _, err := big.Exec("UPDATE big_rows SET title = 'updated', payload = ? WHERE id = 1", payload()); err != nil {
		t.Fatalf("update the 64 MiB row: %v", err)
	}
	steps(100)
	// Only the 1 KiB summary changes (a digest in the event): the document must follow.
	if _, err := big.Exec("UPDATE big_rows SET summary = ? WHERE id = 2", summary('c')); err != nil {
		t.Fatal(err)
	}
	steps(100)

	want := func() (map[string]map[string]any, error) {
		rows, err := r.app.Query("SELECT id, title, summary FROM big_rows")
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[string]map[string]any{}
		for rows.Next() {
			var id int
			var title, summary string
			if err := rows.Scan(&id, &title, &summary); err != nil {
				return nil, err
			}
			out[strconv.Itoa(id)] = map[string]any{"id": float64(id), "title": title, "summary": summary}
		}
		return out, rows.Err()
	}
	eventually(t, 3*time.Minute, func() error {
		if err := r.converged(clusterNames...); err != nil {
			return err
		}
		exp, err := want()
		if err != nil {
			return err
		}
		for _, cl := range clusterNames {
			got, err := r.docsIn(cl, index)
			if err != nil {
				return err
			}
			if err := diffDocs(cl, got, exp); err != nil {
				return err
			}
		}
		return nil
	})
}
