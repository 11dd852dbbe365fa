package indexer

import (
	"context"
	"sync"
)

// A Turn orders the writes of consecutive batches that one consumer processes at once
// (docs/indexer.md, "Batches in flight"): a batch reads its documents while the batch before
// it is written, but its first write waits until every write of that batch knows its indices.
//
// Invariant (docs/architecture.md, invariant 9): the indices of a cluster's writes are
// resolved in batch order. The set of an
// alias's indices only grows during a version bump (`wye mapping apply` adds `_vN+1`), so a
// newer batch's write reaches every index an older batch's write of the same document
// reached, and the new index never keeps an older version than the alias's index. Two
// unordered batches could break that: the older read written to both indices after the newer
// one went to the old index alone.
type Turn struct {
	after <-chan struct{} // closed when the previous batch's writes have their indices; nil: none
	done  chan struct{}   // closed by pass
	once  sync.Once
}

// NewTurn is the turn of a batch with no batch before it in flight.
func NewTurn() *Turn { return &Turn{done: make(chan struct{})} }

// Next is the turn of the batch after t.
func (t *Turn) Next() *Turn { return &Turn{after: t.done, done: make(chan struct{})} }

// wait returns once the batch before t has passed its turn, or with ctx's error. A nil Turn
// orders nothing.
func (t *Turn) wait(ctx context.Context) error {
	if t == nil || t.after == nil {
		return nil
	}
	select {
	case <-t.after:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pass lets the next batch write. Idempotent; a nil Turn does nothing.
func (t *Turn) pass() {
	if t != nil {
		t.once.Do(func() { close(t.done) })
	}
}

type fixedKey struct{}

// withIndicesFixed returns ctx carrying f, for IndicesFixed to call.
func withIndicesFixed(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, fixedKey{}, f)
}

// IndicesFixed is called by a ClusterWriter once the indices of a write are resolved and before
// it sends the write: the batch's last write then lets the next batch write (Turn).
func IndicesFixed(ctx context.Context) {
	if f, ok := ctx.Value(fixedKey{}).(func()); ok {
		f()
	}
}
