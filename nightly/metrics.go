package nightly

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the series of a run (docs/nightly.md, "Metrics").
type Metrics struct {
	Rows        *prometheus.CounterVec // wye_nightly_rows_total{entity}
	Docs        *prometheus.CounterVec // wye_nightly_documents_total{cluster,entity,result}
	Running     prometheus.Gauge       // wye_nightly_running
	LastSuccess prometheus.Gauge       // wye_nightly_last_success_timestamp_seconds
	LastSeconds prometheus.Gauge       // wye_nightly_last_duration_seconds
	LastStatus  prometheus.Gauge       // wye_nightly_last_status: 0 equal, 1 failed
}

// NewMetrics creates the series and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_nightly_rows_total",
			Help: "Root rows the nightly resync read from MySQL, per entity."}, []string{"entity"}),
		Docs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_nightly_documents_total",
			Help: "Documents per cluster and entity by result: equal, missing, different, written, skipped_newer, orphan, deleted, failed_<class>."},
			[]string{"cluster", "entity", "result"}),
		Running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_nightly_running",
			Help: "1 while a nightly resync runs in this process."}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_nightly_last_success_timestamp_seconds",
			Help: "When the last nightly resync that left every cluster equal to MySQL finished (Unix time)."}),
		LastSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_nightly_last_duration_seconds",
			Help: "Duration of the last finished nightly resync."}),
		LastStatus: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_nightly_last_status",
			Help: "0 when the last nightly resync left every cluster equal to MySQL, 1 when some cluster failed."}),
	}
	if reg != nil {
		reg.MustRegister(m.Rows, m.Docs, m.Running, m.LastSuccess, m.LastSeconds, m.LastStatus)
	}
	return m
}

// record adds one chunk's (or page's) counts of one cluster.
func (m *Metrics) record(cluster, entity string, t *Tally) {
	add := func(result string, n int64) {
		if n > 0 {
			m.Docs.WithLabelValues(cluster, entity, result).Add(float64(n))
		}
	}
	add("equal", t.Equal)
	add("missing", t.Missing)
	add("different", t.Different)
	add("written", t.Written)
	add("skipped_newer", t.Skipped)
	add("orphan", t.Orphans)
	add("deleted", t.Deleted)
	for c, n := range t.Failures {
		add("failed_"+c, n)
	}
}
