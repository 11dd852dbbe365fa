package control

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/wyehq/wye/internal/defaults"
)

// Followed is the identity of the server a cdc reader follows, as its checkpoint records it
// (cdc_checkpoint.server_uuid), polled: the indexer checks that it reads that same server
// (docs/architecture.md, invariant 4), and a source change by cdc reaches it within a poll.
type Followed struct {
	cdc   *CDC
	name  string
	every time.Duration
	log   *slog.Logger

	mu     sync.RWMutex
	source string
}

// NewFollowed reads the checkpoint of reader name once and returns the poller (every:
// DefaultRolesPoll when 0). No checkpoint yet (cdc never ran) is "": nothing to check.
func NewFollowed(ctx context.Context, s *Store, name string, every time.Duration, log *slog.Logger) (*Followed, error) {
	f := &Followed{cdc: s.CDC(CDCOptions{Name: name}), name: cmp.Or(name, DefaultReaderName),
		every: defaults.Positive(every, DefaultRolesPoll), log: cmp.Or(log, slog.Default())}
	return f, f.read(ctx)
}

// Source returns the identity last read ("" while the reader has no checkpoint).
func (f *Followed) Source() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.source
}

func (f *Followed) read(ctx context.Context) error {
	cp, _, err := f.cdc.Load(ctx, f.name)
	if err != nil {
		return err
	}
	f.mu.Lock()
	old := f.source
	f.source = cp.SourceID
	f.mu.Unlock()
	if old != "" && old != cp.SourceID {
		f.log.Info("cdc follows another source", "reader", f.name, "from", old, "to", cp.SourceID)
	}
	return nil
}

// Run polls until ctx is done. A failed read keeps the last identity.
func (f *Followed) Run(ctx context.Context) {
	poll(ctx, f.every, f.read, func(err error, failures int) {
		f.log.Warn("poll the source cdc follows; keeping the last one", "reader", f.name, "source", f.Source(),
			"failures", failures, "err", err)
	})
}
