// Package lograte bounds repeated log lines: at most one line per key (a parked reason, a
// slave's miss class) per interval, and the lines held back in that interval are reported as
// one count when it ends, so a flood of identical failures costs two lines per interval and no
// count is lost.
package lograte

import (
	"sync"
	"time"
)

// MaxKeys bounds the keys one Limiter tracks at once; events of further keys share one
// window under OtherKey until some close.
const MaxKeys = 100

// OtherKey is the key of the events that came while MaxKeys windows were open.
const OtherKey = "(other)"

// Limiter lets the first event of a key through, then counts the key's events for Every; when
// the window closes Held is called with the count (if any), and the next event goes through
// again. Safe for concurrent use.
type Limiter struct {
	every time.Duration
	held  func(key string, n int)

	mu   sync.Mutex
	open map[string]*window
}

type window struct {
	n     int
	timer *time.Timer
}

// New returns a Limiter with windows of every; held reports the events of a key that were not
// let through, once per window, from the window's timer.
func New(every time.Duration, held func(key string, n int)) *Limiter {
	return &Limiter{every: every, held: held, open: map[string]*window{}}
}

// Allow reports whether the caller logs the n events of key now (the first of a window). If
// not, they are counted for the key's Held line. The key a caller must log under is returned:
// key itself, or OtherKey when too many windows are open.
func (l *Limiter) Allow(key string, n int) (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.open[key]; !ok && len(l.open) >= MaxKeys {
		key = OtherKey
	}
	if w := l.open[key]; w != nil {
		w.n += n
		return false, key
	}
	w := &window{}
	w.timer = time.AfterFunc(l.every, func() { l.close(key, w) })
	l.open[key] = w
	return true, key
}

// close ends the window of key and reports what it held.
func (l *Limiter) close(key string, w *window) {
	l.mu.Lock()
	if l.open[key] != w {
		l.mu.Unlock()
		return // flushed already
	}
	delete(l.open, key)
	n := w.n
	l.mu.Unlock()
	if n > 0 {
		l.held(key, n)
	}
}

// Flush closes every window now, reporting what each held: call it when the component stops.
func (l *Limiter) Flush() {
	l.mu.Lock()
	open := l.open
	l.open = map[string]*window{}
	l.mu.Unlock()
	for key, w := range open {
		w.timer.Stop()
		if w.n > 0 {
			l.held(key, w.n)
		}
	}
}
