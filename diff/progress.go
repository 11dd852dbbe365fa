package diff

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/wyehq/wye/internal/runreport"
)

// progress shows how a diff goes: a line redrawn every second on a terminal, else one log line
// every LogEvery.
type progress struct {
	term  io.Writer
	every time.Duration
	log   *slog.Logger

	mu          sync.Mutex
	name        string
	total, done int64
	since       time.Time
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

func (p *progress) entity(name string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.term != nil && p.name != "" {
		p.line()
		fmt.Fprintln(p.term)
	}
	p.name, p.total, p.done, p.since = name, total, 0, time.Now()
}

func (p *progress) add(n int64) {
	p.mu.Lock()
	p.done += n
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
	p.log.Info("diff progress", "entity", p.name, "documents", p.done, "of_about", p.total, "per_second", int64(p.rate()))
}

func (p *progress) rate() float64 {
	if secs := time.Since(p.since).Seconds(); secs > 0 {
		return float64(p.done) / secs
	}
	return 0
}

func (p *progress) line() {
	pct := 0.0
	if p.total > 0 {
		pct = min(100, 100*float64(p.done)/float64(p.total))
	}
	fmt.Fprintf(p.term, "\r%-12s %3.0f%%  %d/~%d documents  %d/s   ", p.name, pct, p.done, p.total, int64(p.rate()))
}
