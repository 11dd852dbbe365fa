// Package snapshot runs a read in a consistent snapshot of the source, again while the source
// fails transiently: what the nightly resync and the repair share (docs/architecture.md,
// "Resync").
package snapshot

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/wyehq/wye/indexer"
)

// Open opens a snapshot: a view and the version of its binlog position.
type Open func(ctx context.Context) (indexer.View, int64, error)

// Read runs fn in a new snapshot from open, closing it after; while the read fails with a
// transient *indexer.SourceError (a restart, a lost connection) it tries again with backoff
// up to wait max, tries times in all. A permanent failure, or any other error, is returned at
// once.
func Read(ctx context.Context, open Open, tries int, wait time.Duration, log *slog.Logger, fn func(v indexer.View, version int64) error) error {
	backoff := time.Second
	for try := 1; ; try++ {
		err := func() error {
			v, version, err := open(ctx)
			if err != nil {
				return err
			}
			defer v.Close()
			return fn(v, version)
		}()
		var se *indexer.SourceError
		if err == nil || ctx.Err() != nil || !errors.As(err, &se) || se.Permanent || try >= tries {
			return err
		}
		log.Warn("source read failed; trying again", "try", try, "in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, wait)
	}
}
