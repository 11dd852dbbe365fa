package control

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Gauges are the control schema's facts that a long-running process exports as metrics for
// what short-lived commands (nightly, promote) and the repair ledger leave behind: a
// Prometheus cannot scrape `wye nightly` after it exits, but it can scrape the indexer, which
// reads them here (docs/architecture.md, "Control schema").
type Gauges struct {
	Ledger []LedgerGauge
	// LastSuccess is when the newest nightly run that left every cluster equal finished;
	// zero when none did.
	LastSuccess time.Time
	// LastRun is the newest finished nightly run (equal or failed); ok false when none.
	LastRun   NightlyRun
	LastRunOK bool
	// RolesEpoch is the highest cluster_roles epoch: it grows with every role change.
	RolesEpoch uint64
}

// LedgerGauge is the repair ledger of one cluster: its open (not repaired) entries and when
// the oldest of them was first seen.
type LedgerGauge struct {
	Cluster string
	Open    int64
	Oldest  time.Time
}

// Gauges reads the current Gauges. The ledger count scans the open rows of the ledger: it is
// meant to be polled every few tens of seconds, not per batch.
func (s *Store) Gauges(ctx context.Context) (Gauges, error) {
	var g Gauges
	rows, err := s.db.QueryContext(ctx, `SELECT cluster, COUNT(*), MIN(first_seen) FROM repair_ledger
WHERE repaired_at IS NULL GROUP BY cluster ORDER BY cluster`)
	if err != nil {
		return g, fmt.Errorf("read ledger gauges: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var l LedgerGauge
		if err := rows.Scan(&l.Cluster, &l.Open, &l.Oldest); err != nil {
			return g, fmt.Errorf("read ledger gauges: %w", err)
		}
		g.Ledger = append(g.Ledger, l)
	}
	if err := rows.Err(); err != nil {
		return g, fmt.Errorf("read ledger gauges: %w", err)
	}
	var last sql.NullTime
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(finished_at) FROM nightly_run WHERE status = ?`, RunEqual).Scan(&last); err != nil {
		return g, fmt.Errorf("read last nightly success: %w", err)
	}
	g.LastSuccess = last.Time
	if g.LastRun, g.LastRunOK, err = s.LastRun(ctx); err != nil {
		return g, err
	}
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(epoch), 0) FROM cluster_roles`).Scan(&g.RolesEpoch); err != nil {
		return g, fmt.Errorf("read roles epoch: %w", err)
	}
	return g, nil
}
