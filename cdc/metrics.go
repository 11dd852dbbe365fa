package cdc

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the cdc component's Prometheus series (docs/cdc.md, "Observability").
type Metrics struct {
	Events         *prometheus.CounterVec // read from the binlog, by table and op
	Published      prometheus.Counter     // events handed to the broker
	Confirmed      prometheus.Counter     // messages (batches of events) confirmed by the broker
	Republished    prometheus.Counter     // events re-read after a restart from the checkpoint (duplicates)
	ConfirmSeconds prometheus.Histogram
	Pending        prometheus.Gauge // messages published, not yet confirmed
	LagSeconds     prometheus.Gauge // now - commit timestamp of the last published event
	CheckpointPos  prometheus.Gauge
	CheckpointFile prometheus.Gauge // binlog file suffix of the checkpoint
	Epoch          prometheus.Gauge
	ResyncNeeded   *prometheus.CounterVec // by reason
	Sessions       *prometheus.CounterVec // session ends, by result (lock_lost, error)
	Leader         prometheus.Gauge       // 1 while this reader holds the lock
	BrokerBlocked  prometheus.Gauge       // 1 while the broker blocks the publishing connection (resource alarm)
}

// NewMetrics creates the series and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_cdc_events_total",
			Help: "Row changes read from the binlog of followed tables."}, []string{"table", "op"}),
		Published: prometheus.NewCounter(prometheus.CounterOpts{Name: "wye_cdc_published_total",
			Help: "Events handed to the broker."}),
		Confirmed: prometheus.NewCounter(prometheus.CounterOpts{Name: "wye_cdc_confirmed_total",
			Help: "Messages (batches of events, schema 2) confirmed by the broker."}),
		Republished: prometheus.NewCounter(prometheus.CounterOpts{Name: "wye_cdc_republished_total",
			Help: "Events published again after a restart from the checkpoint (at-least-once duplicates)."}),
		ConfirmSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wye_cdc_confirm_seconds",
			Help: "Time from publish to broker confirm.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_cdc_pending_confirms",
			Help: "Messages published and not yet confirmed."}),
		LagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_cdc_lag_seconds",
			Help: "Seconds between the commit of the last published event and its publish."}),
		CheckpointPos: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_cdc_checkpoint_position",
			Help: "Binlog offset of the saved checkpoint."}),
		CheckpointFile: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_cdc_checkpoint_file_seq",
			Help: "Binlog file suffix of the saved checkpoint."}),
		Epoch: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_cdc_epoch",
			Help: "Source epoch of the versions being published."}),
		ResyncNeeded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_cdc_resync_needed_total",
			Help: "Changes that could not be streamed faithfully; a resync mark was written."}, []string{"reason"}),
		Sessions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wye_cdc_sessions_total",
			Help: "Ended publishing sessions, by result."}, []string{"result"}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_cdc_leader",
			Help: "1 while this reader holds the leader lock."}),
		BrokerBlocked: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_cdc_broker_blocked",
			Help: "1 while RabbitMQ blocks the publishing connection (memory or disk alarm): nothing is confirmed."}),
	}
	if reg != nil {
		reg.MustRegister(m.Events, m.Published, m.Confirmed, m.Republished, m.ConfirmSeconds, m.Pending,
			m.LagSeconds, m.CheckpointPos, m.CheckpointFile, m.Epoch, m.ResyncNeeded, m.Sessions, m.Leader, m.BrokerBlocked)
	}
	return m
}
