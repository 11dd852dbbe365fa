package nightly

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/wyehq/wye/internal/runreport"
)

// progress shows how a run goes: a bar redrawn every second on a terminal, else one log line
// every LogEvery (a Kubernetes job's log).
type progress struct {
	term  io.Writer
	every time.Duration
	log   *slog.Logger

	mu                       sync.Mutex
	name                     string
	total, done, startedAt   int64 // estimated rows, rows done, rows done when the entity (re)started
	written, deleted, failed int64
	since                    time.Time
}

func newProgress(term io.Writer, every time.Duration, log *slog.Logger) *progress {
	return &progress{term: term, every: every, log: log}
}

// start draws until the returned stop is called.
func (p *progress) start(ctx context.Context) (stop func()) {
	stopTick := runreport.Tick(ctx, p.term != nil, p.every, p.show)
	return func() {
		stopTick()
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.term != nil && p.name != "" {
			p.line()
			fmt.Fprintln(p.term)
		}
	}
}

// entity starts the bar of one entity: total estimated rows, done already (a resume).
func (p *progress) entity(name string, total, done int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.term != nil && p.name != "" {
		p.line()
		fmt.Fprintln(p.term)
	}
	p.name, p.total, p.done, p.startedAt, p.since = name, total, done, done, time.Now()
	p.written, p.deleted, p.failed = 0, 0, 0
}

func (p *progress) rows(n int64) {
	p.mu.Lock()
	p.done += n
	p.mu.Unlock()
}

func (p *progress) add(t *Tally) {
	p.mu.Lock()
	p.written += t.Written
	p.deleted += t.Deleted
	p.failed += t.Failed
	p.mu.Unlock()
}

func (p *progress) show() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.name == "" {
		return
	}
	if p.term != nil {
		p.line()
		return
	}
	rate, eta := p.rates()
	p.log.Info("nightly progress", "entity", p.name, "rows", p.done, "of_about", p.total, "rows_per_second", int64(rate),
		"written", p.written, "deleted", p.deleted, "failed", p.failed, "eta", eta)
}

// line redraws the bar in place.
func (p *progress) line() {
	rate, eta := p.rates()
	pct := 0.0
	if p.total > 0 {
		pct = min(100, 100*float64(p.done)/float64(p.total))
	}
	const width = 24
	fill := int(pct / 100 * width)
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '.'
		if i < fill {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(p.term, "\r%-12s [%s] %3.0f%%  %d/~%d rows  %d rows/s  written %d  deleted %d  failed %d  ETA %s   ",
		p.name, bar, pct, p.done, p.total, int64(rate), p.written, p.deleted, p.failed, eta)
}

func (p *progress) rates() (float64, time.Duration) {
	secs := time.Since(p.since).Seconds()
	if secs <= 0 {
		return 0, 0
	}
	rate := float64(p.done-p.startedAt) / secs
	if rate <= 0 || p.total <= p.done {
		return rate, 0
	}
	return rate, (time.Duration(float64(p.total-p.done)/rate) * time.Second).Round(time.Second)
}
