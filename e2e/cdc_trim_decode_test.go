package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/cdc/binlog"
)

// TestCDCTrimmedUpdateDecodingPublishesTheSameChanges prevents the source's trimmed decoding
// of updates (cdc.update_images: changed decodes only the key, the whole columns and the
// changed columns: docs/cdc.md, "Update images") from changing one byte of a published
// change: a wide table of every common column type is updated in every way that matters
// (one column, NULL to value and back, a multi-row update changing different columns per
// row, an update writing the same value, a primary key change, many types at once), the
// binlog range is read twice, trimmed and decoding every column, and each change encoded in
// changed mode must come out identical. It also fails if the trim stops happening: an
// unchanged column must be nil in the trimmed stream's image and decoded in the full one.
func TestCDCTrimmedUpdateDecodingPublishesTheSameChanges(t *testing.T) {
	requireReachable(t, "MariaDB", mysqlAddr)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
	defer cancel()
	dbName, exec := scratchDB(ctx, t, "wye_trim")
	exec("SET SESSION time_zone = '+00:00'",
		`CREATE TABLE w (id INT PRIMARY KEY, link_id BIGINT,
		   ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
		   i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED, f FLOAT, d DOUBLE,
		   dec5 DECIMAL(5,2), dec65 DECIMAL(65,30),
		   ch CHAR(10), ch100 CHAR(100), vc VARCHAR(20), vc300 VARCHAR(300), bin BINARY(4), vbin VARBINARY(50),
		   tt TINYTEXT, tx TEXT, mt MEDIUMTEXT, lt LONGTEXT, tb TINYBLOB, bl BLOB,
		   en ENUM('a','b','c'), st SET('x','y','z'), b1 BIT(1), b17 BIT(17), y YEAR,
		   dt DATE, tm TIME, tm3 TIME(3), dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP NULL, ts6 TIMESTAMP(6) NULL,
		   js JSON, n INT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`)
	for id := 1; id <= 6; id++ {
		exec(fmt.Sprintf(`INSERT INTO w VALUES (%d, %d, -5, 250, -300, 60000, -70000, 16000000,
		   -2000000000, 4000000000, -9000000000000000000, 18000000000000000000, 1.5, 2.25,
		   123.45, '12345678901234567890123456789012345.123456789012345678901234567890',
		   'char', REPEAT('é', 100), 'short', REPEAT('ü', 300), 'ab', x'00ff',
		   'tiny', REPEAT('t', 1000), REPEAT('m', 70000), REPEAT('l', 300), x'0102', REPEAT('b', 500),
		   'b', 'x,z', b'1', b'10101010101010101', 2024,
		   '2024-02-29', '-12:34:56', '01:02:03.456', '2024-01-01 10:00:00', '2024-01-01 10:00:00.123456',
		   '2024-03-01 10:00:00', '2024-03-01 10:00:00.654321', '{"a": [1, 2]}', NULL)`, id, 10*id))
	}

	whole := cdc.WholeColumns{dbName + ".w": {"LINK_ID"}}
	trimmed, full := readTrimmedAndFull(ctx, t, dbName+".w", whole, func() {
		exec(
			"UPDATE w SET i = i + 1 WHERE id = 1",    // one column
			"UPDATE w SET n = 7 WHERE id = 1",        // NULL -> value
			"UPDATE w SET vc = NULL WHERE id = 2",    // value -> NULL
			"UPDATE w SET d = d, f = f WHERE id = 5", // the same values: no row changes
			// One rows event, two rows changing different columns.
			`UPDATE w SET vc300 = IF(id = 3, CONCAT(LEFT(vc300, 299), '!'), vc300), dec5 = IF(id = 4, dec5 + 1, dec5),
		   js = IF(id = 4, '{"b": 1}', js) WHERE id IN (3, 4)`,
			"UPDATE w SET id = 100 WHERE id = 6", // the primary key
			`UPDATE w SET lt = REPEAT('L', 400), mt = CONCAT(mt, 'x'), tm3 = '23:59:59.999', dtm6 = '2030-01-01 00:00:00.000001',
		   ts6 = '2031-05-06 07:08:09.000010', b17 = b'1', b1 = b'0', en = 'c', st = '', y = 1999, bin = 'zz', vbin = x'',
		   tb = NULL, ch100 = 'short now', ch = 'é', dec65 = -dec65, biu = 1, mi = 0, f = -2.5, dt = '1000-01-01',
		   tm = '00:00:00', dtm = '1969-07-20 20:17:40', ts = '1970-01-01 00:00:01', tt = '', tx = NULL WHERE id = 5`,
			"UPDATE w SET ti = ti + id WHERE id BETWEEN 1 AND 5", // one column in many rows
			"UPDATE w SET d = -0.0 WHERE id = 2",
			"DELETE FROM w WHERE id = 100",
		)
	})
	if len(trimmed) != len(full) {
		t.Fatalf("trimmed read has %d changes, full %d", len(trimmed), len(full))
	}
	updates := 0
	for i := range full {
		if full[i].Op == cdc.OpUpdate {
			updates++
		}
		bt, bf := cdc.Batch{Whole: whole}, cdc.Batch{Whole: whole}
		must(t, bt.Add(&trimmed[i]))
		must(t, bf.Add(&full[i]))
		if got, want := string(bt.Take().Body), string(bf.Take().Body); got != want {
			t.Errorf("change %d (%s):\ntrimmed %s\nfull    %s", i, full[i].Op, got, want)
		}
	}
	// 1 + 1 + 1 + 2 + 1 + 1 + 5 + 1 row updates.
	if updates != 13 {
		t.Errorf("%d updates read, want 13", updates)
	}
	// The first update changed only i: the trimmed stream must not have decoded vc300, and
	// must have decoded the key and the whole column link_id.
	cols := full[0].Table.Columns
	idx := func(name string) int {
		return slices.IndexFunc(cols, func(c cdc.Column) bool { return c.Name == name })
	}
	first := trimmed[0]
	if first.Op != cdc.OpUpdate || full[0].Before[idx("vc300")] == nil {
		t.Fatalf("first change %s %v: not the update of i, or vc300 not decoded in full", first.Op, full[0].Before)
	}
	for _, c := range []string{"vc300", "lt", "dec65", "dtm6"} {
		if v := first.Before[idx(c)]; v != nil {
			t.Errorf("trimmed update of i decoded unchanged column %s: %v (the trim is not happening)", c, v)
		}
	}
	for _, c := range []string{"id", "link_id", "i"} {
		if first.Before[idx(c)] == nil || first.After[idx(c)] == nil {
			t.Errorf("trimmed update of i did not decode %s", c)
		}
	}
}

// hostOf and portOf split mysqlAddr.
func hostOf(t *testing.T) string { h, _ := splitHostPort(t, mysqlAddr); return h }
func portOf(t *testing.T) uint16 { _, p := splitHostPort(t, mysqlAddr); return p }

// scratchDB creates a database named prefix and a unique suffix, dropped when t ends, and
// returns its name and exec, which runs statements in order in one session of it (a SET
// SESSION holds for every later statement) and fails t on the first error.
func scratchDB(ctx context.Context, t *testing.T, prefix string) (string, func(qs ...string)) {
	t.Helper()
	requireReachable(t, "MariaDB", mysqlAddr)
	dbName := fmt.Sprintf("%s_%d%03d", prefix, time.Now().Unix()%1000000, rand.IntN(1000))
	root := openMySQL(t, mysqlAppUser, mysqlAppPass, "")
	if _, err := root.Exec("CREATE DATABASE " + dbName + " CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() { root.Exec("DROP DATABASE IF EXISTS " + dbName) })
	db := openMySQL(t, mysqlAppUser, mysqlAppPass, dbName)
	db.SetMaxOpenConns(1)
	return dbName, func(qs ...string) {
		t.Helper()
		for _, q := range qs {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
}

// readTrimmedAndFull reads the changes to table that run commits twice from the binlog: by a
// source with trimmed update images (cdc.UpdateImagesChanged, whole columns whole) and by one
// decoding every column through go-mysql.
func readTrimmedAndFull(ctx context.Context, t *testing.T, table string, whole cdc.WholeColumns, run func()) (trimmed, full []cdc.Change) {
	t.Helper()
	source := func(images string, whole cdc.WholeColumns) *binlog.Source {
		src, err := binlog.NewSource(binlog.SourceOptions{Host: hostOf(t), Port: portOf(t), User: mysqlSrcUser,
			Password: mysqlSrcPass, ServerID: uint32(9100 + rand.IntN(800)), Tables: []string{table},
			UpdateImages: images, WholeColumns: whole})
		must(t, err)
		t.Cleanup(func() { src.Close() })
		return src
	}
	src := source("", nil)
	from := sourceEnd(ctx, t, src)
	run()
	to := sourceEnd(ctx, t, src)
	return readChanges(ctx, t, source(cdc.UpdateImagesChanged, whole), from, to), readChanges(ctx, t, src, from, to)
}

// sourceEnd is the end of src's binlog now: a transaction boundary.
func sourceEnd(ctx context.Context, t *testing.T, src *binlog.Source) cdc.Position {
	t.Helper()
	st, err := src.Status(ctx)
	if err != nil {
		t.Fatalf("source status: %v", err)
	}
	return st.Current
}

// readChanges reads the changes of src's followed tables from `from` to `to`, failing on a
// resync mark (an undecodable rows event).
func readChanges(ctx context.Context, t *testing.T, src *binlog.Source, from, to cdc.Position) []cdc.Change {
	t.Helper()
	st, err := src.Open(ctx, cdc.Checkpoint{Pos: from})
	if err != nil {
		t.Fatalf("open binlog at %s: %v", from, err)
	}
	defer st.Close()
	var out []cdc.Change
	for {
		var item cdc.Streamed
		select {
		case item = <-st.Items():
		case <-ctx.Done():
			t.Fatalf("read binlog (%d changes so far, up to %s): %v", len(out), to, ctx.Err())
		}
		if item.Err != nil {
			t.Fatalf("read binlog (%d changes so far, up to %s): %v", len(out), to, item.Err)
		}
		if item.Resync != nil {
			t.Fatalf("resync mark at %s: %s: %s", item.Pos, item.Resync.Reason, item.Resync.Detail)
		}
		out = append(out, item.Changes...)
		if item.Commit && !item.Pos.Less(to) {
			return out
		}
	}
}
