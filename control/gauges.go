package control

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	// Roles is each known cluster's role (master or slave).
	Roles map[string]string
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
	if g.Roles, err = s.roles(ctx); err != nil {
		return g, err
	}
	return g, nil
}

func (s *Store) roles(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT cluster, role FROM cluster_roles`)
	if err != nil {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var c, r string
		if err := rows.Scan(&c, &r); err != nil {
			return nil, fmt.Errorf("read roles: %w", err)
		}
		out[c] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read roles: %w", err)
	}
	return out, nil
}

// DefaultGaugesPoll is how often WatchGauges re-reads the Gauges.
const DefaultGaugesPoll = 30 * time.Second

// GaugeMetrics are the Prometheus series of the Gauges. Every indexer of one control schema
// exports the same values: aggregate them with max, not sum.
type GaugeMetrics struct {
	LedgerOpen   *prometheus.GaugeVec // wye_ledger_open_entries{cluster}
	LedgerOldest *prometheus.GaugeVec // wye_ledger_oldest_entry_timestamp_seconds{cluster}
	LastSuccess  prometheus.Gauge     // wye_nightly_last_success_timestamp_seconds
	LastFinished prometheus.Gauge     // wye_nightly_last_finished_timestamp_seconds
	LastStatus   prometheus.Gauge     // wye_nightly_last_status
	RolesEpoch   prometheus.Gauge     // wye_cluster_roles_epoch
	Master       *prometheus.GaugeVec // wye_cluster_master{cluster}: 1 master, 0 slave
}

// NewGaugeMetrics creates the series and registers them with reg (nil: not registered).
func NewGaugeMetrics(reg prometheus.Registerer) *GaugeMetrics {
	m := &GaugeMetrics{
		LedgerOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wye_ledger_open_entries",
			Help: "Entities the repair ledger holds for a slave that no repair has written yet (from the control schema)."}, []string{"cluster"}),
		LedgerOldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wye_ledger_oldest_entry_timestamp_seconds",
			Help: "When the oldest open repair ledger entry of a slave was first recorded (Unix time; from the control schema)."}, []string{"cluster"}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_nightly_last_success_timestamp_seconds",
			Help: "When the last nightly resync that left every cluster equal to MySQL finished (Unix time; 0 none; from the control schema)."}),
		LastFinished: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_nightly_last_finished_timestamp_seconds",
			Help: "When the last nightly resync finished, equal or failed (Unix time; 0 none; from the control schema)."}),
		LastStatus: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_nightly_last_status",
			Help: "0 when the last finished nightly resync left every cluster equal to MySQL, 1 when some cluster failed (from the control schema)."}),
		RolesEpoch: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_cluster_roles_epoch",
			Help: "Highest epoch of cluster_roles: it grows with every role change (promote)."}),
		Master: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wye_cluster_master",
			Help: "1 for the cluster cluster_roles names master, 0 for a slave (from the control schema)."}, []string{"cluster"}),
	}
	if reg != nil {
		reg.MustRegister(m.LedgerOpen, m.LedgerOldest, m.LastSuccess, m.LastFinished, m.LastStatus, m.RolesEpoch, m.Master)
	}
	return m
}

// WatchGauges reads the Gauges into m now and then every poll until ctx ends. clusters (the
// configured ones) read 0 open ledger entries until the ledger holds some, and a cluster whose
// ledger emptied reads 0 again. A failed read keeps the last values and is logged with the
// count of consecutive failures.
func (s *Store) WatchGauges(ctx context.Context, m *GaugeMetrics, clusters []string, poll time.Duration, log *slog.Logger) {
	known := map[string]bool{}
	for _, c := range clusters {
		known[c] = true
		m.LedgerOpen.WithLabelValues(c).Set(0)
	}
	failures := 0
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		g, err := s.Gauges(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			failures++
			log.Warn("control gauges: cannot read the control schema", "err", err, "failures", failures)
		case err == nil:
			failures = 0
			m.set(g, known)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *GaugeMetrics) set(g Gauges, known map[string]bool) {
	seen := map[string]bool{}
	for _, l := range g.Ledger {
		seen[l.Cluster] = true
		known[l.Cluster] = true
		m.LedgerOpen.WithLabelValues(l.Cluster).Set(float64(l.Open))
		m.LedgerOldest.WithLabelValues(l.Cluster).Set(unixSeconds(l.Oldest))
	}
	for c := range known {
		if !seen[c] {
			m.LedgerOpen.WithLabelValues(c).Set(0)
			m.LedgerOldest.DeleteLabelValues(c)
		}
	}
	m.LastSuccess.Set(unixSeconds(g.LastSuccess))
	if g.LastRunOK {
		m.LastFinished.Set(unixSeconds(g.LastRun.Finished))
		status := 0.0
		if g.LastRun.Status != RunEqual {
			status = 1
		}
		m.LastStatus.Set(status)
	}
	m.RolesEpoch.Set(float64(g.RolesEpoch))
	for c, role := range g.Roles {
		master := 0.0
		if role == "master" {
			master = 1
		}
		m.Master.WithLabelValues(c).Set(master)
	}
}

// unixSeconds is t as Unix seconds, 0 for the zero time.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
