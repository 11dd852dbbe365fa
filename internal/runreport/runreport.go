// Package runreport holds what the long commands (nightly, diff) share to show and keep a run:
// the report written atomically, the gzip'd id list beside it, and the progress ticker.
package runreport

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// WriteJSON writes v as indented JSON to path, atomically: a reader never sees half a report.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// Lines is a gzip'd file of tab-separated lines, one per document: the long lists a report
// leaves out. Safe for concurrent use; a nil *Lines writes nothing.
type Lines struct {
	mu  sync.Mutex
	f   *os.File
	buf *bufio.Writer
	gz  *gzip.Writer
}

// Create starts the list at path. Ids compress well at any level: the fastest is used.
func Create(path string) (*Lines, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create id list: %w", err)
	}
	buf := bufio.NewWriterSize(f, 64<<10)
	gz, err := gzip.NewWriterLevel(buf, gzip.BestSpeed)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create id list: %w", err)
	}
	return &Lines{f: f, buf: buf, gz: gz}, nil
}

// Each writes one line per last field: prefix fields, then each of last.
func (l *Lines) Each(prefix []string, last []string) {
	if l == nil || len(last) == 0 {
		return
	}
	head := strings.Join(prefix, "\t") + "\t"
	b := make([]byte, 0, len(last)*(len(head)+12))
	for _, s := range last {
		b = append(append(append(b, head...), s...), '\n')
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gz.Write(b) // an error here is the file's: Close returns it
}

// Line writes one line of fields.
func (l *Lines) Line(fields ...string) {
	if l == nil || len(fields) == 0 {
		return
	}
	l.Each(fields[:len(fields)-1], fields[len(fields)-1:])
}

// Close finishes the gzip stream and the file.
func (l *Lines) Close() error {
	if l == nil {
		return nil
	}
	err := l.gz.Close()
	if e := l.buf.Flush(); err == nil {
		err = e
	}
	if e := l.f.Close(); err == nil {
		err = e
	}
	return err
}

// Tick calls show every second on a terminal, every `every` otherwise (a log line), until the
// returned stop is called; stop waits for the last call to end.
func Tick(ctx context.Context, terminal bool, every time.Duration, show func()) (stop func()) {
	if terminal {
		every = time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				show()
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// Pacer holds a rate of units per second (rows, bytes, ledger entries): Wait returns once n
// more units fit under it. A nil Pacer, or one of rate 0 or less, never waits.
type Pacer struct {
	mu    sync.Mutex
	rate  float64
	start time.Time
	n     float64
}

// NewPacer returns a Pacer of rate units per second.
func NewPacer(rate float64) *Pacer { return &Pacer{rate: rate, start: time.Now()} }

// Wait counts n more units and waits until they fit under the rate, or ctx ends.
func (p *Pacer) Wait(ctx context.Context, n int64) error {
	if p == nil || p.rate <= 0 {
		return nil
	}
	p.mu.Lock()
	p.n += float64(n)
	due := p.start.Add(time.Duration(p.n / p.rate * float64(time.Second)))
	p.mu.Unlock()
	select {
	case <-time.After(time.Until(due)):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
