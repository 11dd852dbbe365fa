// Package changes fills the sample media catalog (examples/catalog/schema.sql) and changes it
// one random row change at a time, as an application would: updates, child moves between
// programs, tag links, renames, deletes (children first: no cascades) and inserts. The catalog
// workload (examples/catalog/workload) and the migration drill (examples/drill) use it.
package changes

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/go-sql-driver/mysql"
)

// CreateDatabase (re)creates the dsn's database and runs the schema file in it.
func CreateDatabase(dsn, schema string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return err
	}
	ddl, err := os.ReadFile(schema)
	if err != nil {
		return err
	}
	name := cfg.DBName
	cfg.DBName, cfg.MultiStatements = "", true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("DROP DATABASE IF EXISTS `" + name + "`; CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4; USE `" + name + "`; " + string(ddl)); err != nil {
		return err
	}
	return nil
}

// Maker makes the changes; it is not safe for concurrent use.
type Maker struct {
	db   *sql.DB
	rnd  *rand.Rand
	next int
}

// New returns a Maker for the catalog database db.
func New(db *sql.DB) *Maker {
	return &Maker{db: db, rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))}
}

// Count returns the rows of table.
func (w *Maker) Count(table string) int {
	var n int
	w.db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n)
	return n
}

func (w *Maker) exec(ctx context.Context, q string, args ...any) error {
	_, err := w.db.ExecContext(ctx, q, args...)
	return err
}

// pick returns a random id of table, or 0 when it is empty.
func (w *Maker) pick(table string) int {
	var id int
	w.db.QueryRow("SELECT id FROM " + table + " ORDER BY RAND() LIMIT 1").Scan(&id)
	return id
}

// Seed fills an empty catalog with programs (channels, episodes and tags scale with it); a
// catalog that holds programs is left as it is.
func (w *Maker) Seed(ctx context.Context, programs int) error {
	w.db.QueryRow("SELECT COALESCE(MAX(id), 0) FROM programs").Scan(&w.next)
	if w.next > 0 {
		return nil // already seeded
	}
	ins := func(q string, rows int, row func(i int) []any) error {
		for i := 1; i <= rows; i++ {
			if err := w.exec(ctx, q, row(i)...); err != nil {
				return err
			}
		}
		return nil
	}
	nets, chans, tags := 5, max(programs/60, 5), 50
	if err := ins("INSERT INTO networks (id, name) VALUES (?, ?)", nets, func(i int) []any { return []any{i, fmt.Sprintf("Network %d", i)} }); err != nil {
		return err
	}
	if err := ins("INSERT INTO channels (id, name, network_id) VALUES (?, ?, ?)", chans, func(i int) []any {
		return []any{i, fmt.Sprintf("Channel %d", i), 1 + w.rnd.IntN(nets)}
	}); err != nil {
		return err
	}
	if err := ins("INSERT INTO tags (id, name) VALUES (?, ?)", tags, func(i int) []any { return []any{i, fmt.Sprintf("tag-%d", i)} }); err != nil {
		return err
	}
	if err := ins("INSERT INTO programs (id, title, channel_id, duration_s, rating, code, updated_at) VALUES (?, ?, ?, ?, ?, ?, NOW())", programs, func(i int) []any {
		return []any{i, fmt.Sprintf("Program %d", i), 1 + w.rnd.IntN(chans), w.rnd.IntN(7200), fmt.Sprintf("%.1f", float64(w.rnd.IntN(100))/10), fmt.Sprintf("P-%05d", i)}
	}); err != nil {
		return err
	}
	if err := ins("INSERT INTO episodes (id, program_id, number, title) VALUES (?, ?, ?, ?)", programs*2, func(i int) []any {
		return []any{i, 1 + w.rnd.IntN(programs), w.rnd.IntN(50), fmt.Sprintf("Episode %d", i)}
	}); err != nil {
		return err
	}
	if err := ins("INSERT IGNORE INTO program_tags (program_id, tag_id) VALUES (?, ?)", programs*2, func(int) []any {
		return []any{1 + w.rnd.IntN(programs), 1 + w.rnd.IntN(tags)}
	}); err != nil {
		return err
	}
	w.next = programs
	return nil
}

// Step makes one random change, as the e2e workload does (e2e/indexer_catalog_test.go).
func (w *Maker) Step(ctx context.Context) error {
	switch n := w.rnd.IntN(100); {
	case n < 25:
		return w.exec(ctx, "UPDATE programs SET title = ?, duration_s = ?, updated_at = NOW() WHERE id = ?", fmt.Sprintf("Retitled %d", w.rnd.IntN(1e6)), w.rnd.IntN(7200), w.pick("programs"))
	case n < 35:
		return w.exec(ctx, "UPDATE programs SET channel_id = ? WHERE id = ?", w.pick("channels"), w.pick("programs"))
	case n < 40: // delete a program with its children (no cascades: they would not be in the binlog)
		id := w.pick("programs")
		if err := w.exec(ctx, "DELETE FROM episodes WHERE program_id = ?", id); err != nil {
			return err
		}
		if err := w.exec(ctx, "DELETE FROM program_tags WHERE program_id = ?", id); err != nil {
			return err
		}
		return w.exec(ctx, "DELETE FROM programs WHERE id = ?", id)
	case n < 45:
		w.next++
		return w.exec(ctx, "INSERT INTO programs (id, title, channel_id, duration_s, code, updated_at) VALUES (?, ?, ?, 0, ?, NOW())", w.next, fmt.Sprintf("Program %d", w.next), w.pick("channels"), fmt.Sprintf("P-%05d", w.next))
	case n < 60:
		return w.exec(ctx, "UPDATE episodes SET program_id = ? WHERE id = ?", w.pick("programs"), w.pick("episodes")) // a child moves
	case n < 70:
		w.next++
		return w.exec(ctx, "INSERT INTO episodes (id, program_id, number, title) VALUES (?, ?, 1, 'New episode')", 1_000_000+w.next, w.pick("programs"))
	case n < 85:
		p, t := w.pick("programs"), w.pick("tags")
		if w.rnd.IntN(2) == 0 {
			return w.exec(ctx, "INSERT IGNORE INTO program_tags (program_id, tag_id) VALUES (?, ?)", p, t)
		}
		return w.exec(ctx, "DELETE FROM program_tags WHERE program_id = ? AND tag_id = ?", p, t)
	case n < 92:
		id := w.pick("tags")
		return w.exec(ctx, "UPDATE tags SET name = ? WHERE id = ?", fmt.Sprintf("tag-%d-%d", id, w.rnd.IntN(1000)), id)
	default:
		id := w.pick("channels")
		return w.exec(ctx, "UPDATE channels SET name = ? WHERE id = ?", fmt.Sprintf("Channel %d/%d", id, w.rnd.IntN(1000)), id)
	}
}
