package control

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wyehq/wye/internal/reason"

	"github.com/wyehq/wye/indexer"
)

var _ indexer.Ledger = (*Store)(nil)

// ledgerRows bounds the rows of one ledger upsert.
const ledgerRows = 500

// Record implements indexer.Ledger: one upsert per ledgerRows, keeping the highest missed
// version. Rows go in (entity, id) order, so two workers recording overlapping ids lock them
// in the same order and cannot deadlock each other.
func (s *Store) Record(ctx context.Context, cluster string, missed []indexer.Missed) error {
	missed = slices.Clone(missed)
	slices.SortFunc(missed, func(a, b indexer.Missed) int {
		return cmp.Or(strings.Compare(a.Entity, b.Entity), strings.Compare(a.ID, b.ID))
	})
	for len(missed) > 0 {
		n := min(len(missed), ledgerRows)
		var q strings.Builder
		q.WriteString(`INSERT INTO repair_ledger (cluster, entity, doc_id, version, class, reason) VALUES `)
		args := make([]any, 0, n*6)
		for i, m := range missed[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?,?,?)")
			// Reasons are cut where they are made; Cut again holds the column's width whatever
			// the caller passed, on a character boundary.
			args = append(args, cluster, m.Entity, m.ID, m.Version, m.Class, reason.Cut("", m.Reason))
		}
		q.WriteString(` ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version)), class = VALUES(class),
			reason = VALUES(reason), misses = misses + 1, last_seen = CURRENT_TIMESTAMP(6), repaired_at = NULL`)
		if _, err := s.db.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("record repair ledger: %w", err)
		}
		missed = missed[n:]
	}
	return nil
}

// LedgerEntry is one row of repair_ledger.
type LedgerEntry struct {
	Cluster string
	Entity  string
	ID      string
	Version int64 // the highest version the cluster missed
	Class   string
	Reason  string
	Misses  int
	First   time.Time
	Last    time.Time
}

// LedgerKey is where a page of pending entries starts: after (Entity, ID). The zero key is
// before every entry.
type LedgerKey struct{ Entity, ID string }

// Pending returns up to limit entries of cluster not repaired yet, in (entity, id) order after
// from: keyset pages on the table's primary key, so a repair that marks entries as it goes
// never skips or repeats one.
func (s *Store) Pending(ctx context.Context, cluster string, from LedgerKey, limit int) ([]LedgerEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT entity, doc_id, version, class, reason, misses, first_seen, last_seen
FROM repair_ledger WHERE cluster = ? AND repaired_at IS NULL AND (entity > ? OR (entity = ? AND doc_id > ?))
ORDER BY entity, doc_id LIMIT ?`, cluster, from.Entity, from.Entity, from.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("read repair ledger of %s: %w", cluster, err)
	}
	defer rows.Close()
	var out []LedgerEntry
	for rows.Next() {
		e := LedgerEntry{Cluster: cluster}
		if err := rows.Scan(&e.Entity, &e.ID, &e.Version, &e.Class, &e.Reason, &e.Misses, &e.First, &e.Last); err != nil {
			return nil, fmt.Errorf("read repair ledger of %s: %w", cluster, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read repair ledger of %s: %w", cluster, err)
	}
	return out, nil
}

// Repaired is one ledger entry a repair wrote and verified: the cluster holds the document at
// Version or higher.
type Repaired struct {
	Entity, ID string
	Version    int64
}

// MarkRepaired sets repaired_at on the entries of done, each only while its missed version is
// at most the version the cluster was verified to hold: a compare-and-set on the version, so
// a miss recorded after the repair's snapshot (a higher version; Record clears repaired_at
// and keeps the highest version) stays pending for the next repair. It returns how many
// entries it marked; the others grew meanwhile.
func (s *Store) MarkRepaired(ctx context.Context, cluster string, done []Repaired) (int, error) {
	done = slices.Clone(done)
	slices.SortFunc(done, func(a, b Repaired) int {
		return cmp.Or(strings.Compare(a.Entity, b.Entity), strings.Compare(a.ID, b.ID))
	})
	marked := 0
	for len(done) > 0 {
		n := min(len(done), ledgerRows)
		// One UPDATE per row inside one transaction: rows are locked in (entity, id) order, as
		// Record locks them, so a repair and the indexers cannot deadlock.
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return marked, fmt.Errorf("mark repair ledger of %s: %w", cluster, err)
		}
		stmt, err := tx.PrepareContext(ctx, `UPDATE repair_ledger SET repaired_at = CURRENT_TIMESTAMP(6)
WHERE cluster = ? AND entity = ? AND doc_id = ? AND repaired_at IS NULL AND version <= ?`)
		if err != nil {
			tx.Rollback()
			return marked, fmt.Errorf("mark repair ledger of %s: %w", cluster, err)
		}
		page := 0
		for _, d := range done[:n] {
			res, err := stmt.ExecContext(ctx, cluster, d.Entity, d.ID, d.Version)
			if err != nil {
				stmt.Close()
				tx.Rollback()
				return marked, fmt.Errorf("mark repair ledger of %s: %w", cluster, err)
			}
			k, _ := res.RowsAffected()
			page += int(k)
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			return marked, fmt.Errorf("mark repair ledger of %s: %w", cluster, err)
		}
		marked += page
		done = done[n:]
	}
	return marked, nil
}

// LedgerStats is the pending part of one cluster's ledger, for status.
type LedgerStats struct {
	Pending int64     // entries not repaired
	Oldest  time.Time // first_seen of the oldest pending entry; zero when none
	Recent  int64     // pending entries whose last miss is within the window asked for
}

// LedgerStats returns, per cluster with pending entries, their count, the oldest, and how
// many missed again within window (last_seen).
func (s *Store) LedgerStats(ctx context.Context, window time.Duration) (map[string]LedgerStats, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT cluster, COUNT(*), MIN(first_seen),
  SUM(last_seen >= NOW(6) - INTERVAL ? MICROSECOND)
FROM repair_ledger WHERE repaired_at IS NULL GROUP BY cluster`, window.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("read repair ledger counts: %w", err)
	}
	defer rows.Close()
	out := map[string]LedgerStats{}
	for rows.Next() {
		var name string
		var st LedgerStats
		if err := rows.Scan(&name, &st.Pending, &st.Oldest, &st.Recent); err != nil {
			return nil, fmt.Errorf("read repair ledger counts: %w", err)
		}
		out[name] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read repair ledger counts: %w", err)
	}
	return out, nil
}
