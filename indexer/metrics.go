package indexer

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the indexer's Prometheus series (docs/indexer.md, "Observability"). Adapters
// (fan-out, consumer) record into the same struct: one per process, labels by cluster.
type Metrics struct {
	Items        *prometheus.CounterVec   // wye_indexer_items_total{cluster,result}: ok, stale, retryable, permanent, dropped
	BulkSeconds  *prometheus.HistogramVec // wye_indexer_bulk_seconds{cluster}
	BulkBytes    *prometheus.HistogramVec // wye_indexer_bulk_bytes{cluster}
	Queries      prometheus.Histogram     // wye_indexer_sql_queries_per_batch
	BatchDocs    prometheus.Histogram     // wye_indexer_batch_documents
	BatchSeconds prometheus.Histogram     // wye_indexer_batch_seconds: receive of the first message -> ack
	LagSeconds   prometheus.Histogram     // wye_indexer_lag_seconds: commit -> acked after the master write
	Messages     *prometheus.CounterVec   // wye_indexer_messages_total{result}: acked, retried, parked, requeued
	Ledger       *prometheus.CounterVec   // wye_indexer_ledger_entries_total{cluster}
	LedgerLost   *prometheus.CounterVec   // wye_indexer_ledger_lost_total{cluster}
	SlaveBacklog *prometheus.GaugeVec     // wye_indexer_slave_backlog_batches{cluster}
	Failures     prometheus.Counter       // wye_indexer_batch_failures_total: batches kept for a retry
	Overlapped   prometheus.Counter       // wye_indexer_batches_overlapped_total: batches started while another was in flight
	ReadsBehind  prometheus.Counter       // wye_indexer_reads_behind_total: entities read before their change was visible
	// MasterUnavailable is wye_indexer_master_unavailable: 1 while a batch waits for a master
	// that takes no write (down, or blocking writes).
	MasterUnavailable prometheus.Gauge
	QueueDepth        *prometheus.GaugeVec // wye_indexer_queue_messages{queue}: ready messages, sampled
	// FieldsProjected is wye_indexer_fields_projected_total{cluster,index}: fields left out of
	// documents for an index whose strict mapping lacks them, during a mapping version bump.
	FieldsProjected *prometheus.CounterVec
	// OtherIndexRefused is wye_indexer_other_index_refused_total{cluster,index}: permanent
	// refusals by an index the alias does not point at, which decide nothing.
	OtherIndexRefused *prometheus.CounterVec
	// Decided is wye_indexer_decided_total{cluster}: documents whose write a cluster decided as
	// the master (its results made the retries and parked messages).
	Decided *prometheus.CounterVec
	// Fenced is wye_indexer_fenced_total{cluster}: documents written again to the new master
	// because the promote epoch changed while the old master wrote them (invariant 8).
	Fenced *prometheus.CounterVec
}

// NewMetrics creates the series and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Items: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_indexer_items_total",
			Help: "Document writes per cluster by result class (ok, stale, retryable, permanent, dropped)."}, []string{"cluster", "result"}),
		BulkSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wye_indexer_bulk_seconds",
			Help: "Latency of one _bulk request, per cluster.", Buckets: prometheus.ExponentialBuckets(0.002, 2, 14)}, []string{"cluster"}),
		BulkBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wye_indexer_bulk_bytes",
			Help: "Size of one _bulk body, per cluster.", Buckets: prometheus.ExponentialBuckets(1024, 4, 8)}, []string{"cluster"}),
		Queries: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wye_indexer_sql_queries_per_batch",
			Help: "SQL queries one batch made to resolve and denormalize its entities.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128}}),
		BatchDocs: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wye_indexer_batch_documents",
			Help: "Documents written per batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		BatchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wye_indexer_batch_seconds",
			Help: "From the first message of a batch to its ack.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		LagSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wye_indexer_lag_seconds",
			Help: "End-to-end lag: source commit to ack after the master write.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_indexer_messages_total",
			Help: "Deliveries by outcome (acked, retried, parked, requeued)."}, []string{"result"}),
		Ledger: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_indexer_ledger_entries_total",
			Help: "Entity ids recorded in the repair ledger, per slave."}, []string{"cluster"}),
		LedgerLost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_indexer_ledger_lost_total",
			Help: "Entity ids a slave missed that could not be recorded in the repair ledger (the control database refused until the deadline)."}, []string{"cluster"}),
		SlaveBacklog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wye_indexer_slave_backlog_batches",
			Help: "Batches waiting for a slave."}, []string{"cluster"}),
		Failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "wye_indexer_batch_failures_total",
			Help: "Batches that could not be processed (source or broker down) and were kept for another try."}),
		Overlapped: prometheus.NewCounter(prometheus.CounterOpts{Name: "wye_indexer_batches_overlapped_total",
			Help: "Batches started while the batch before them was still in flight (a backlog: indexer.batches_in_flight)."}),
		ReadsBehind: prometheus.NewCounter(prometheus.CounterOpts{Name: "wye_indexer_reads_behind_total",
			Help: "Entities whose read did not show their change yet (the snapshot was behind the binlog): retried instead of written."}),
		MasterUnavailable: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_indexer_master_unavailable",
			Help: "1 while a batch waits for a master that takes no write (unreachable, failing whole requests, or blocking writes); no attempt is spent meanwhile."}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wye_indexer_queue_messages",
			Help: "Messages ready in the change, retry and parked queues (sampled every 5s while consuming)."}, []string{"queue"}),
		FieldsProjected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_indexer_fields_projected_total",
			Help: "Fields left out of documents for an index whose strict mapping does not know them (a mapping version bump), per cluster and index."}, []string{"cluster", "index"}),
		OtherIndexRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_indexer_other_index_refused_total",
			Help: "Documents refused (permanent) by an index the alias does not point at during a version bump: not parked, not ledgered."}, []string{"cluster", "index"}),
		Decided: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_indexer_decided_total",
			Help: "Documents whose write a cluster decided as the master."}, []string{"cluster"}),
		Fenced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_indexer_fenced_total",
			Help: "Documents written again to the new master because the promote epoch changed while the old master wrote them."}, []string{"cluster"}),
	}
	if reg != nil {
		reg.MustRegister(m.Decided, m.Fenced)
		reg.MustRegister(m.Items, m.BulkSeconds, m.BulkBytes, m.Queries, m.BatchDocs, m.BatchSeconds, m.LagSeconds,
			m.Messages, m.Ledger, m.LedgerLost, m.SlaveBacklog, m.Failures, m.Overlapped, m.ReadsBehind, m.MasterUnavailable, m.QueueDepth,
			m.FieldsProjected, m.OtherIndexRefused)
	}
	return m
}
