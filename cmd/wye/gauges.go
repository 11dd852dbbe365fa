package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/control"
)

// defaultGaugesPoll is how often the indexer re-reads the control schema's gauges.
const defaultGaugesPoll = 30 * time.Second

// controlGauges exports, from the indexer (a process that runs all the time), what the control
// schema records of the repair ledger and of the nightly runs and role changes made by commands
// that exit (docs/architecture.md, "Control schema"). Every indexer of one control schema
// exports the same values: aggregate them with max, not sum.
type controlGauges struct {
	store *control.Store
	log   *slog.Logger

	ledgerOpen      *prometheus.GaugeVec // wye_ledger_open_entries{cluster}
	ledgerOldest    *prometheus.GaugeVec // wye_ledger_oldest_entry_timestamp_seconds{cluster}
	lastSuccess     prometheus.Gauge     // wye_nightly_last_success_timestamp_seconds
	lastFinished    prometheus.Gauge     // wye_nightly_last_finished_timestamp_seconds
	lastStatus      prometheus.Gauge     // wye_nightly_last_status
	rolesEpoch      prometheus.Gauge     // wye_cluster_roles_epoch
	knownLedgerRows map[string]bool      // clusters whose ledger series exist
}

// newControlGauges registers the gauges with reg; clusters (the configured ones) read 0 open
// ledger entries until the ledger holds some.
func newControlGauges(reg prometheus.Registerer, store *control.Store, clusters []config.Cluster, log *slog.Logger) *controlGauges {
	g := &controlGauges{store: store, log: log, knownLedgerRows: map[string]bool{},
		ledgerOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wye_ledger_open_entries",
			Help: "Entities the repair ledger holds for a slave and no repair has written yet (from the control schema)."}, []string{"cluster"}),
		ledgerOldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wye_ledger_oldest_entry_timestamp_seconds",
			Help: "When the oldest open repair ledger entry of a slave was first recorded (Unix time; from the control schema)."}, []string{"cluster"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_nightly_last_success_timestamp_seconds",
			Help: "When the last nightly resync that left every cluster equal to MySQL finished (Unix time; 0 none; from the control schema)."}),
		lastFinished: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_nightly_last_finished_timestamp_seconds",
			Help: "When the last nightly resync finished, equal or failed (Unix time; 0 none; from the control schema)."}),
		lastStatus: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_nightly_last_status",
			Help: "0 when the last finished nightly resync left every cluster equal to MySQL, 1 when some cluster failed (from the control schema)."}),
		rolesEpoch: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_cluster_roles_epoch",
			Help: "Highest epoch of cluster_roles: it grows with every role change (promote)."}),
	}
	for _, c := range clusters {
		g.knownLedgerRows[c.Name] = true
	}
	reg.MustRegister(g.ledgerOpen, g.ledgerOldest, g.lastSuccess, g.lastFinished, g.lastStatus, g.rolesEpoch)
	return g
}

// Run reads the gauges now and then every poll until ctx ends. A failed read keeps the last
// values and is logged with the count of consecutive failures.
func (g *controlGauges) Run(ctx context.Context, poll time.Duration) {
	failures := 0
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if err := g.observe(ctx); err != nil && ctx.Err() == nil {
			failures++
			g.log.Warn("control gauges: cannot read the control schema", "err", err, "failures", failures)
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *controlGauges) observe(ctx context.Context) error {
	s, err := g.store.Gauges(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, l := range s.Ledger {
		seen[l.Cluster] = true
		g.ledgerOpen.WithLabelValues(l.Cluster).Set(float64(l.Open))
		g.ledgerOldest.WithLabelValues(l.Cluster).Set(unixOrZero(l.Oldest))
	}
	// A cluster whose ledger emptied reads 0 open entries, and has no oldest entry.
	for c := range g.knownLedgerRows {
		if !seen[c] {
			g.ledgerOpen.WithLabelValues(c).Set(0)
			g.ledgerOldest.DeleteLabelValues(c)
		}
	}
	for c := range seen {
		g.knownLedgerRows[c] = true
	}
	g.lastSuccess.Set(unixOrZero(s.LastSuccess))
	if s.LastRunOK {
		g.lastFinished.Set(unixOrZero(s.LastRun.Finished))
		status := 0.0
		if s.LastRun.Status != control.RunEqual {
			status = 1
		}
		g.lastStatus.Set(status)
	}
	g.rolesEpoch.Set(float64(s.RolesEpoch))
	return nil
}

func unixOrZero(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
