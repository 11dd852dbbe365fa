package cdc

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultRetentionPoll is how often the reader lists the binlog files the source still holds.
const DefaultRetentionPoll = 30 * time.Second

// BinaryLogs lists the binlog files the source still holds, oldest first.
type BinaryLogs interface {
	BinaryLogs(ctx context.Context) ([]string, error)
}

// RetentionMetrics tell how close the reader's checkpoint is to the binlog files the source
// purges next: a checkpoint in a purged file is the one loss wye cannot repair from the stream
// (docs/cdc.md, "Binlog retention"). Compare them with wye_cdc_checkpoint_file_seq.
type RetentionMetrics struct {
	Oldest prometheus.Gauge // wye_cdc_binlog_oldest_file_seq
	Newest prometheus.Gauge // wye_cdc_binlog_newest_file_seq
	Files  prometheus.Gauge // wye_cdc_binlog_files
}

// NewRetentionMetrics creates the series and registers them with reg (nil: not registered).
func NewRetentionMetrics(reg prometheus.Registerer) *RetentionMetrics {
	m := &RetentionMetrics{
		Oldest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_cdc_binlog_oldest_file_seq",
			Help: "Binlog file suffix of the oldest file the source still holds (the next one it purges)."}),
		Newest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_cdc_binlog_newest_file_seq",
			Help: "Binlog file suffix of the file the source writes now."}),
		Files: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wye_cdc_binlog_files",
			Help: "Binlog files the source holds."}),
	}
	if reg != nil {
		reg.MustRegister(m.Oldest, m.Newest, m.Files)
	}
	return m
}

// WatchRetention lists logs now and then every poll until ctx ends, and sets m. A failed list
// leaves the gauges as they were and is logged with the count of consecutive failures.
func WatchRetention(ctx context.Context, logs BinaryLogs, poll time.Duration, m *RetentionMetrics, log *slog.Logger) {
	failures := 0
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if err := m.observe(ctx, logs); err != nil && ctx.Err() == nil {
			failures++
			log.Warn("binlog retention: cannot list the source's binlog files", "err", err, "failures", failures)
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

func (m *RetentionMetrics) observe(ctx context.Context, logs BinaryLogs) error {
	files, err := logs.BinaryLogs(ctx)
	if err != nil || len(files) == 0 {
		return err
	}
	oldest, err := FileSeq(files[0])
	if err != nil {
		return err
	}
	newest, err := FileSeq(files[len(files)-1])
	if err != nil {
		return err
	}
	m.Oldest.Set(float64(oldest))
	m.Newest.Set(float64(newest))
	m.Files.Set(float64(len(files)))
	return nil
}
