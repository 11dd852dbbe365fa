package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeSource streams a fixed list of items, then blocks. Opened by GTID, it streams the items
// after the commit that carries the GTID set (all of them when none does).
type fakeSource struct {
	items []Item
	opens int
	holds string   // Holds answers why not, unless this is "yes"
	asked []string // the GTID sets Holds was asked about
	froms []Checkpoint
}

func (s *fakeSource) Status(context.Context) (SourceStatus, error) {
	return SourceStatus{ID: "src", Current: Position{File: "b.000001", Pos: 4}, Oldest: "b.000001"}, nil
}
func (s *fakeSource) Open(ctx context.Context, from Checkpoint) (Stream, error) {
	s.opens++
	s.froms = append(s.froms, from)
	var rest []Item
	if from.ByGTID() {
		rest = s.items
		for i, it := range s.items {
			if it.Commit && it.GTIDSet == from.GTIDSet {
				rest = s.items[i+1:]
			}
		}
		return newFakeStream(ctx, rest), nil
	}
	for _, it := range s.items {
		if from.Pos.Less(it.Pos) {
			rest = append(rest, it)
		}
	}
	return newFakeStream(ctx, rest), nil
}
func (s *fakeSource) Holds(_ context.Context, gtidSet string) (bool, string, error) {
	s.asked = append(s.asked, gtidSet)
	return s.holds == "yes", s.holds, nil
}

// fakeStream sends its items, then nothing until it is closed or ctx ends.
type fakeStream struct {
	ch   chan Streamed
	done chan struct{}
	once sync.Once
}

func newFakeStream(ctx context.Context, items []Item) *fakeStream {
	s := &fakeStream{ch: make(chan Streamed), done: make(chan struct{})}
	go func() {
		defer close(s.ch)
		for _, it := range items {
			select {
			case s.ch <- Streamed{Item: it}:
			case <-s.done:
				return
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-s.done:
		case <-ctx.Done():
		}
	}()
	return s
}

func (s *fakeStream) Items() <-chan Streamed { return s.ch }
func (s *fakeStream) Close()                 { s.once.Do(func() { close(s.done) }) }

type fakeStore struct {
	mu    sync.Mutex
	cp    Checkpoint
	ok    bool
	saves []Position
	marks []ResyncMark
}

func (s *fakeStore) Load(context.Context, string) (Checkpoint, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cp, s.ok, nil
}
func (s *fakeStore) Save(_ context.Context, cp Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cp, s.ok = cp, true
	s.saves = append(s.saves, cp.Pos)
	return nil
}
func (s *fakeStore) MarkResync(_ context.Context, _ string, m ResyncMark) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks = append(s.marks, m)
	return nil
}
func (s *fakeStore) allSaves() []Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Position(nil), s.saves...)
}
func (s *fakeStore) saved() Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cp.Pos
}

// fakeLeader grants the lock at once the first time; later calls block (standby).
type fakeLeader struct {
	mu       sync.Mutex
	acquires int
	lose     context.CancelFunc
}

func (l *fakeLeader) Acquire(ctx context.Context) (context.Context, func(), error) {
	l.mu.Lock()
	l.acquires++
	n := l.acquires
	l.mu.Unlock()
	if n > 1 {
		<-ctx.Done()
		return nil, nil, ctx.Err()
	}
	held, cancel := context.WithCancel(ctx)
	l.mu.Lock()
	l.lose = cancel
	l.mu.Unlock()
	return held, cancel, nil
}

// fakeChannel confirms only what the test confirms.
type fakeChannel struct {
	mu        sync.Mutex
	seq       uint64
	acked     map[uint64]bool
	w         uint64
	moved     chan struct{}
	onPublish func(seq uint64)
	msgs      []Message
	after     int // publishes after lostAt was set
	lostAt    bool
}

func newFakeChannel() *fakeChannel {
	return &fakeChannel{acked: map[uint64]bool{}, moved: make(chan struct{}, 1)}
}
func (c *fakeChannel) Open(context.Context) (Channel, error) { return c, nil }
func (c *fakeChannel) Publish(ctx context.Context, m Message) (uint64, error) {
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.msgs = append(c.msgs, m)
	if c.lostAt {
		c.after++
	}
	hook := c.onPublish
	c.mu.Unlock()
	if hook != nil {
		hook(seq)
	}
	return seq, nil
}
func (c *fakeChannel) confirm(seqs ...uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range seqs {
		c.acked[s] = true
	}
	for c.acked[c.w+1] {
		c.w++
	}
	select {
	case c.moved <- struct{}{}:
	default:
	}
}
func (c *fakeChannel) Confirmed() (uint64, <-chan struct{}, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w, c.moved, nil
}
func (c *fakeChannel) Close() error { return nil }

var tbl = &Table{Schema: "d", Name: "t", PK: []int{0}, Columns: []Column{{Name: "id", Kind: KindInt}}}

func rowsAt(pos uint32, ids ...int64) Item {
	p := Position{File: "b.000001", Pos: pos}
	it := Item{Pos: p}
	for _, id := range ids {
		it.Changes = append(it.Changes, Change{Table: tbl, Op: OpInsert, After: []any{id}, Pos: p, CommitTS: time.Unix(0, 0)})
	}
	return it
}

func commitAt(pos uint32) Item { return Item{Commit: true, Pos: Position{File: "b.000001", Pos: pos}} }

// TestCheckpointNeverPassesAnUnconfirmedEvent prevents invariant 1's violation: with events
// 1, 2 (txn A), 3 (txn B) and 4 (txn C) published and 1, 2 and 4 confirmed, the checkpoint
// may reach the end of A but not B or C; once 3 is confirmed it reaches C.
func TestCheckpointNeverPassesAnUnconfirmedEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{items: []Item{
			rowsAt(100, 1, 2), commitAt(110), // A: seq 1, 2
			rowsAt(200, 3), commitAt(210), // B: seq 3
			commitAt(250),                 // a transaction on an unfollowed table
			rowsAt(300, 4), commitAt(310), // C: seq 4
		}}
		store := &fakeStore{cp: Checkpoint{Name: "t", Epoch: 1, SourceID: "src", Pos: Position{File: "b.000001", Pos: 4}}, ok: true}
		ch := newFakeChannel()
		// One change per message: sequence numbers are event numbers.
		r := NewReader(Options{Name: "t", CheckpointInterval: 10 * time.Millisecond, BatchChanges: 1}, src, store, &fakeLeader{}, ch)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()

		synctest.Wait() // everything published, nothing confirmed
		ch.confirm(1, 2, 4)
		time.Sleep(time.Second) // fake clock: a hundred checkpoint ticks
		for _, p := range store.allSaves() {
			if p.Pos > 110 {
				t.Fatalf("checkpoint saved at %s while event 3 (txn ending at 210) is unconfirmed; saves %v", p, store.allSaves())
			}
		}
		if got := store.saved().Pos; got != 110 {
			t.Fatalf("checkpoint at %d, want 110 (end of the confirmed txn A)", got)
		}
		ch.confirm(3)
		time.Sleep(time.Second)
		if got := store.saved().Pos; got != 310 {
			t.Fatalf("checkpoint at %d after all confirms, want 310", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
	})
}

// TestLostLockStopsPublishingAtOnce prevents two readers publishing side by side: once the
// lock is lost, not one more event is published, and the reader returns to standby.
func TestLostLockStopsPublishingAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var items []Item
		for i := uint32(1); i <= 50; i++ {
			items = append(items, rowsAt(i*100, int64(i)), commitAt(i*100+10))
		}
		src := &fakeSource{items: items}
		store := &fakeStore{cp: Checkpoint{Name: "t", Epoch: 1, SourceID: "src", Pos: Position{File: "b.000001", Pos: 4}}, ok: true}
		leader := &fakeLeader{}
		ch := newFakeChannel()
		ch.onPublish = func(seq uint64) {
			if seq == 3 {
				leader.mu.Lock()
				leader.lose() // the lock monitor noticed another holder
				leader.mu.Unlock()
				ch.mu.Lock()
				ch.lostAt = true
				ch.mu.Unlock()
			}
		}
		r := NewReader(Options{Name: "t", BatchChanges: 1}, src, store, leader, ch)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		ch.mu.Lock()
		after, total := ch.after, ch.seq
		ch.mu.Unlock()
		if after != 0 {
			t.Fatalf("%d events published after the lock was lost (total %d)", after, total)
		}
		leader.mu.Lock()
		acquires := leader.acquires
		leader.mu.Unlock()
		if acquires != 2 {
			t.Fatalf("acquire called %d times, want 2 (back to standby)", acquires)
		}
		if r.Ready() {
			t.Fatal("reader reports ready without the lock")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
	})
}

// TestNoCheckpointStartsAtCurrentPositionAndSavesIt prevents losing the changes between the
// first start and the first confirm: the start position is saved before anything is read.
func TestNoCheckpointStartsAtCurrentPositionAndSavesIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{}
		r := NewReader(Options{Name: "t"}, &fakeSource{}, store, &fakeLeader{}, newFakeChannel())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		if saves := store.allSaves(); len(saves) == 0 || saves[0] != (Position{File: "b.000001", Pos: 4}) {
			t.Fatalf("saves %v, want the current position first", saves)
		}
		cancel()
		<-done
	})
}

// TestSourceChangeStartsANewEpoch prevents versions of a new primary sorting below the old
// primary's: another server identity bumps the epoch.
func TestSourceChangeStartsANewEpoch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{cp: Checkpoint{Name: "t", Epoch: 4, SourceID: "old-primary", Pos: Position{File: "b.000090", Pos: 77}}, ok: true}
		r := NewReader(Options{Name: "t"}, &fakeSource{}, store, &fakeLeader{}, newFakeChannel())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		store.mu.Lock()
		cp := store.cp
		store.mu.Unlock()
		want, _ := NextEpoch(4, "b.000090")
		if cp.Epoch != want || want <= 4 || cp.SourceID != "src" || cp.Pos.File != "b.000001" {
			t.Fatalf("checkpoint after source change = %+v, want epoch %d on src at its current position", cp, want)
		}
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	})
}

// TestBatchedTransactionCheckpointWaitsForItsMessage prevents invariant 1's violation when
// messages carry several changes: a transaction whose last change sits in a later message
// (split by the batch size, or flushed by the linger) is not checkpointed before that
// message is confirmed.
func TestBatchedTransactionCheckpointWaitsForItsMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{items: []Item{
			rowsAt(100, 1, 2), commitAt(110), // A fills message 1
			rowsAt(200, 3), commitAt(210), // B: message 2 (with C's first change)
			rowsAt(300, 4, 5), commitAt(310), // C: split over messages 2 and 3 (linger)
		}}
		store := &fakeStore{cp: Checkpoint{Name: "t", Epoch: 1, SourceID: "src", Pos: Position{File: "b.000001", Pos: 4}}, ok: true}
		ch := newFakeChannel()
		r := NewReader(Options{Name: "t", CheckpointInterval: 10 * time.Millisecond, BatchChanges: 2}, src, store, &fakeLeader{}, ch)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		time.Sleep(time.Second) // the linger flushes the partial last message
		ch.mu.Lock()
		var sizes []int
		for _, m := range ch.msgs {
			sizes = append(sizes, m.Changes)
		}
		ch.mu.Unlock()
		if len(sizes) != 3 || sizes[0] != 2 || sizes[1] != 2 || sizes[2] != 1 {
			t.Errorf("changes per message %v, want [2 2 1]", sizes)
		}
		ch.confirm(1, 3)
		time.Sleep(time.Second)
		if got := store.saved().Pos; got != 110 {
			t.Errorf("checkpoint at %d with message 2 unconfirmed, want 110 (end of A)", got)
		}
		ch.confirm(2)
		time.Sleep(time.Second)
		if got := store.saved().Pos; got != 310 {
			t.Errorf("checkpoint at %d after all confirms, want 310", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

// TestShutdownSavesTheConfirmedCheckpoint prevents a SIGTERM from throwing away confirmed
// progress: the last save runs although shutdown cancelled the session before the checkpoint
// interval came round, so a restart does not publish it all again.
func TestShutdownSavesTheConfirmedCheckpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{items: []Item{rowsAt(100, 1), commitAt(110), rowsAt(200, 2), commitAt(210)}}
		store := &fakeStore{cp: Checkpoint{Name: "t", Epoch: 1, SourceID: "src", Pos: Position{File: "b.000001", Pos: 4}}, ok: true}
		ch := newFakeChannel()
		r := NewReader(Options{Name: "t", CheckpointInterval: time.Hour, BatchChanges: 1}, src, store, &fakeLeader{}, ch)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.Run(ctx) }()
		time.Sleep(time.Second) // both transactions published, each in its message
		ch.confirm(1)
		time.Sleep(time.Second) // the session's first save
		ch.confirm(2)
		synctest.Wait()
		if got := store.saved().Pos; got != 110 {
			t.Fatalf("checkpoint at %d before shutdown; the test wants the first save (110) and the interval not come round", got)
		}
		cancel() // SIGTERM
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
		if got := store.saved().Pos; got != 210 {
			t.Errorf("checkpoint at %d after shutdown, want 210 (the confirmed transaction)", got)
		}
	})
}

// TestASessionSavesItsFirstCheckpointWithoutWaitingTheInterval prevents a reader in a crash
// loop (killed about every checkpoint interval) from republishing the same changes forever:
// a session's first confirmed boundary is saved within firstSave, not a whole interval later.
func TestASessionSavesItsFirstCheckpointWithoutWaitingTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{items: []Item{rowsAt(100, 1), commitAt(110)}}
		store := &fakeStore{cp: Checkpoint{Name: "t", Epoch: 1, SourceID: "src", Pos: Position{File: "b.000001", Pos: 4}}, ok: true}
		ch := newFakeChannel()
		r := NewReader(Options{Name: "t", CheckpointInterval: time.Hour}, src, store, &fakeLeader{}, ch)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go r.Run(ctx)
		time.Sleep(time.Second) // published after the linger
		ch.confirm(1)
		time.Sleep(firstSave + time.Millisecond)
		synctest.Wait()
		if got := store.saved().Pos; got != 110 {
			t.Errorf("checkpoint at %d %v after the confirm, want 110 (the first save does not wait the hour)", got, firstSave)
		}
	})
}

// TestStopAtReturnsOnceTheBoundaryIsConfirmed prevents a benchmark or test run from stopping
// early or late: Run returns, without ctx ending, only after the events up to the first
// transaction boundary at or after StopAt are published and confirmed, publishes nothing
// beyond that boundary, and leaves the checkpoint there.
func TestStopAtReturnsOnceTheBoundaryIsConfirmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{items: []Item{
			rowsAt(100, 1), rowsAt(105, 2), commitAt(110), // A: StopAt falls inside it
			rowsAt(200, 3), commitAt(210), // B: after the stop
		}}
		store := &fakeStore{cp: Checkpoint{Name: "t", Epoch: 1, SourceID: "src", Pos: Position{File: "b.000001", Pos: 4}}, ok: true}
		ch := newFakeChannel()
		stop := Position{File: "b.000001", Pos: 103}
		r := NewReader(Options{Name: "t", CheckpointInterval: time.Hour, StopAt: &stop}, src, store, &fakeLeader{}, ch)
		done := make(chan error, 1)
		go func() { done <- r.Run(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("run returned (%v) before the stop boundary was confirmed", err)
		default:
		}
		ch.confirm(1)
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
		ch.mu.Lock()
		msgs := len(ch.msgs)
		changes := ch.msgs[0].Changes
		ch.mu.Unlock()
		if msgs != 1 || changes != 2 {
			t.Errorf("%d messages (first with %d changes), want 1 with A's 2 changes", msgs, changes)
		}
		if got := store.saved().Pos; got != 110 {
			t.Errorf("checkpoint at %d after the stop, want 110 (end of A)", got)
		}
	})
}

// fakeFloor is a control schema's epoch floor.
type fakeFloor struct {
	f  Checkpoint
	ok bool
}

func (f *fakeFloor) Floor(context.Context) (Checkpoint, bool, error) { return f.f, f.ok, nil }

// fakeWritten is the master cluster's highest version, or its failure to answer.
type fakeWritten struct {
	mu    sync.Mutex
	v     Version
	ok    bool
	err   error
	asked int
}

func (w *fakeWritten) HighestVersion(context.Context) (Version, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.asked++
	return w.v, w.ok, w.err
}

// startEpoch runs a reader over one committed row at b.000001:100 until all is idle (fake
// clock) and returns the checkpoint it saved first and the versions it published.
func startEpoch(t *testing.T, store *fakeStore, opts Options) (first Checkpoint, versions []Version) {
	t.Helper()
	saves, versions := runSource(t, store, &fakeSource{items: []Item{rowsAt(100, 1), commitAt(110)}}, opts)
	if len(saves) > 0 {
		first = saves[0]
	}
	return first, versions
}

// runSource runs a reader over src until all is idle (fake clock) and returns every checkpoint
// it saved and the versions it published; the channel confirms nothing, the shutdown saves
// nothing past the start point.
func runSource(t *testing.T, store *fakeStore, src *fakeSource, opts Options) (saves []Checkpoint, versions []Version) {
	t.Helper()
	ch := newFakeChannel()
	opts.Name = "t"
	r := NewReader(opts, src, &recordingStore{fakeStore: store, saves: &saves}, &fakeLeader{}, ch)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	time.Sleep(time.Second) // the linger publishes the row
	synctest.Wait()
	cancel()
	<-done
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for _, m := range ch.msgs {
		var body struct {
			Changes []struct {
				Version Version `json:"version"`
			} `json:"changes"`
		}
		if err := json.Unmarshal(m.Body, &body); err != nil {
			t.Fatalf("decode message: %v", err)
		}
		for _, c := range body.Changes {
			versions = append(versions, c.Version)
		}
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	return saves, versions
}

// recordingStore keeps every saved checkpoint, not only its position.
type recordingStore struct {
	*fakeStore
	saves *[]Checkpoint
}

func (s *recordingStore) Save(ctx context.Context, cp Checkpoint) error {
	s.fakeStore.mu.Lock()
	*s.saves = append(*s.saves, cp)
	s.fakeStore.mu.Unlock()
	return s.fakeStore.Save(ctx, cp)
}

// TestReaderWithoutCheckpointStartsAtTheFloorNotAtEpoch1 prevents the silent freeze after a
// deleted checkpoint row or a new reader name: epoch 1 sorted every new write below what the
// clusters held since an earlier source change. On the floor's source the reader takes the
// floor's epoch, its versions above the floor's, and the clusters are not asked.
func TestReaderWithoutCheckpointStartsAtTheFloorNotAtEpoch1(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		floor := Checkpoint{Name: "renamed", Epoch: 3, SourceID: "src", Pos: Position{File: "b.000001", Pos: 2}}
		written := &fakeWritten{v: mustVersion(t, 9, "b.000001", 1), ok: true}
		cp, versions := startEpoch(t, &fakeStore{}, Options{Floor: &fakeFloor{f: floor, ok: true}, Written: written})
		if cp.Epoch != 3 || cp.Pos != (Position{File: "b.000001", Pos: 4}) {
			t.Fatalf("first checkpoint %+v, want epoch 3 at the current position b.000001:4", cp)
		}
		floorV := mustVersion(t, floor.Epoch, floor.Pos.File, floor.Pos.Pos)
		if len(versions) != 1 || versions[0] <= floorV || versions[0].Epoch() != 3 {
			t.Fatalf("published versions %v, want one of epoch 3 above the floor's %d", versions, floorV)
		}
		if written.asked != 0 {
			t.Errorf("the clusters were asked %d times although the control schema has a floor", written.asked)
		}
	})
}

// TestReaderWithoutFloorStartsAboveTheMastersHighestVersion prevents the freeze after the
// control schema is recreated (or a new one is pointed at old indices): with no floor the
// highest version the master holds is the only record, and the reader starts above it. A
// master that holds nothing means a new deployment: epoch 1.
func TestReaderWithoutFloorStartsAboveTheMastersHighestVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		held := mustVersion(t, 3, "b.070000", 9) // effective epoch 4: the suffix carried
		cp, versions := startEpoch(t, &fakeStore{}, Options{Floor: &fakeFloor{}, Written: &fakeWritten{v: held, ok: true}})
		if cp.Epoch != 5 || len(versions) != 1 || versions[0] <= held {
			t.Fatalf("first checkpoint epoch %d, versions %v; want epoch 5, above the master's %d", cp.Epoch, versions, held)
		}
		cp, _ = startEpoch(t, &fakeStore{}, Options{Floor: &fakeFloor{}, Written: &fakeWritten{}})
		if cp.Epoch != 1 {
			t.Fatalf("empty master: epoch %d, want 1", cp.Epoch)
		}
	})
}

// TestReaderDoesNotGuessAnEpochWhenTheMasterCannotAnswer prevents a reader with no floor from
// starting at a guessed epoch while the master is unreachable: nothing is saved or published,
// and the session is retried until the master answers.
func TestReaderDoesNotGuessAnEpochWhenTheMasterCannotAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		written := &fakeWritten{err: errors.New("connect master cluster es7: connection refused")}
		store := &fakeStore{}
		cp, versions := startEpoch(t, store, Options{Floor: &fakeFloor{}, Written: written})
		if cp != (Checkpoint{}) || len(versions) != 0 {
			t.Fatalf("saved %+v and published %v while the master could not answer", cp, versions)
		}
		if written.asked < 2 {
			t.Fatalf("master asked %d times in a second, want the session retried", written.asked)
		}
	})
}

// TestResumeBelowTheFloorOfItsSourceTakesTheFloorsEpoch prevents a reader renamed back to an
// old name (or a standby with an old checkpoint) from publishing under its old epoch below a
// later reader's writes: on the same source it resumes from its checkpoint at the floor's
// epoch. A floor of another source leaves it alone: its positions say nothing there.
func TestResumeBelowTheFloorOfItsSourceTakesTheFloorsEpoch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		old := Checkpoint{Name: "t", Epoch: 1, SourceID: "src", Pos: Position{File: "b.000001", Pos: 4}}
		floor := Checkpoint{Name: "other", Epoch: 3, SourceID: "src", Pos: Position{File: "b.000001", Pos: 4}}
		_, versions := startEpoch(t, &fakeStore{cp: old, ok: true}, Options{Floor: &fakeFloor{f: floor, ok: true}})
		if len(versions) != 1 || versions[0] != mustVersion(t, 3, "b.000001", 100) {
			t.Fatalf("versions %v, want the row at b.000001:100 in the floor's epoch 3", versions)
		}
		floor.SourceID = "elsewhere"
		_, versions = startEpoch(t, &fakeStore{cp: old, ok: true}, Options{Floor: &fakeFloor{f: floor, ok: true}})
		if len(versions) != 1 || versions[0].Epoch() != 1 {
			t.Fatalf("versions %v with a floor of another source, want epoch 1 kept", versions)
		}
	})
}

// TestSourceChangeStartsAboveTheFloor prevents a failover epoch taken from the reader's own
// checkpoint alone from landing below what another reader of the schema already published.
func TestSourceChangeStartsAboveTheFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		own := Checkpoint{Name: "t", Epoch: 1, SourceID: "old-primary", Pos: Position{File: "b.000090", Pos: 77}}
		floor := Checkpoint{Name: "other", Epoch: 6, SourceID: "old-primary", Pos: Position{File: "b.000095", Pos: 1}}
		cp, _ := startEpoch(t, &fakeStore{cp: own, ok: true}, Options{Floor: &fakeFloor{f: floor, ok: true}})
		want, _ := NextEpoch(6, "b.000095")
		if cp.Epoch != want {
			t.Fatalf("epoch after the source change %d, want %d (above the floor's epoch 6)", cp.Epoch, want)
		}
	})
}

// commitGTID is a commit at pos whose GTID position after it is set.
func commitGTID(pos uint32, set string) Item {
	it := commitAt(pos)
	it.GTIDSet = set
	return it
}

// TestSourceFailoverWithGTIDsResumesFromTheSavedSetAndSkipsNothing prevents the changes
// committed between the checkpoint and a failover from being skipped: with a GTID set saved
// and held by the new source, the reader resumes right after it (every domain, as saved), in
// a new epoch above every version of the old source, and marks no resync.
func TestSourceFailoverWithGTIDsResumesFromTheSavedSetAndSkipsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const saved = "0-1-10,1-1-5"
		old := Checkpoint{Name: "t", Epoch: 4, SourceID: "old-primary", Pos: Position{File: "b.000090", Pos: 77}, GTIDSet: saved}
		// The new primary's binlog: a transaction the checkpoint holds, then one committed on
		// the old primary after the checkpoint (replicated), then one of its own.
		src := &fakeSource{holds: "yes", items: []Item{rowsAt(100, 1), commitGTID(110, saved),
			rowsAt(200, 2), commitGTID(210, "0-1-11,1-1-5"), rowsAt(300, 3), commitGTID(310, "0-2-12,1-1-5")}}
		store := &fakeStore{cp: old, ok: true}
		saves, versions := runSource(t, store, src, Options{})
		if len(src.asked) == 0 || src.asked[0] != saved {
			t.Fatalf("Holds asked about %v, want the saved set %q", src.asked, saved)
		}
		epoch, _ := NextEpoch(4, "b.000090")
		if len(saves) == 0 || saves[0] != (Checkpoint{Name: "t", Epoch: epoch, SourceID: "src", Pos: Position{File: "b.000001"}, GTIDSet: saved}) {
			t.Fatalf("start point saved %+v, want epoch %d on src, by GTID set %q", saves, epoch, saved)
		}
		if !saves[0].ByGTID() || len(src.froms) == 0 || !src.froms[0].ByGTID() || src.froms[0].GTIDSet != saved {
			t.Fatalf("stream opened from %+v, want by the saved GTID set", src.froms)
		}
		want := []Version{mustVersion(t, epoch, "b.000001", 200), mustVersion(t, epoch, "b.000001", 300)}
		if !slices.Equal(versions, want) {
			t.Fatalf("published versions %v, want %v: the rows after the saved set, nothing before", versions, want)
		}
		if oldTop := mustVersion(t, 4+1, "b.000090", 1<<31); versions[0] <= oldTop {
			t.Fatalf("version %d not above the old source's (and its unsaved tail's) %d", versions[0], oldTop)
		}
		if len(store.marks) != 0 {
			t.Fatalf("resync marks %+v after a failover resumed by GTID", store.marks)
		}
		if start := saves[0]; !start.Pos.Less(Position{File: "b.000001", Pos: 100}) {
			t.Fatalf("start point %v not below the first position read", start.Pos)
		}
	})
}

// TestRestartBeforeTheFirstCheckpointOnTheNewSourceResumesByGTIDAgain prevents a restart
// between a GTID resume's start and its first confirmed transaction from reading the start
// point's placeholder position: it resumes by the GTID set again, same epoch, no new check.
func TestRestartBeforeTheFirstCheckpointOnTheNewSourceResumesByGTIDAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const saved = "0-1-10"
		start := Checkpoint{Name: "t", Epoch: 6, SourceID: "src", Pos: Position{File: "b.000001"}, GTIDSet: saved}
		src := &fakeSource{items: []Item{rowsAt(100, 1), commitGTID(110, saved), rowsAt(200, 2), commitGTID(210, "0-1-11")}}
		store := &fakeStore{cp: start, ok: true}
		_, versions := runSource(t, store, src, Options{})
		if len(src.asked) != 0 || len(store.marks) != 0 {
			t.Fatalf("asked %v, marks %+v: the same source needs neither", src.asked, store.marks)
		}
		if len(src.froms) == 0 || src.froms[0] != start {
			t.Fatalf("opened from %+v, want the saved start point %+v", src.froms, start)
		}
		if want := []Version{mustVersion(t, 6, "b.000001", 200)}; !slices.Equal(versions, want) {
			t.Fatalf("versions %v, want %v", versions, want)
		}
	})
}

// TestSourceFailoverWithoutAUsableGTIDSetMarksAResync prevents a silent gap: without a saved
// GTID set, or when the new source lacks part of it, the reader starts at the current
// position in a new epoch and marks a resync that says why it did not resume by GTID.
func TestSourceFailoverWithoutAUsableGTIDSetMarksAResync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			gtidSet, holds, why string
		}{
			{"", "", "the checkpoint has no GTID set"},
			{"0-1-10", "the new source's binlog does not reach 0-1-10", "does not reach 0-1-10"},
		} {
			old := Checkpoint{Name: "t", Epoch: 4, SourceID: "old-primary", Pos: Position{File: "b.000090", Pos: 77}, GTIDSet: tc.gtidSet}
			store := &fakeStore{cp: old, ok: true}
			src := &fakeSource{holds: tc.holds, items: []Item{rowsAt(100, 1), commitAt(110)}}
			saves, _ := runSource(t, store, src, Options{})
			epoch, _ := NextEpoch(4, "b.000090")
			if len(saves) == 0 || saves[0].Epoch != epoch || saves[0].Pos != (Position{File: "b.000001", Pos: 4}) || saves[0].ByGTID() {
				t.Fatalf("gtid set %q: start point %+v, want epoch %d at the current position", tc.gtidSet, saves, epoch)
			}
			if len(store.marks) != 1 || store.marks[0].Reason != "source_changed" || store.marks[0].Table != "*" ||
				!strings.Contains(store.marks[0].Detail, tc.why) {
				t.Fatalf("gtid set %q: marks %+v, want one source_changed mark saying %q", tc.gtidSet, store.marks, tc.why)
			}
		}
	})
}

// TestEventsAreCountedPerTableAndOp prevents a change missing from, or counted twice in,
// wye_cdc_events_total when changes of several tables and ops interleave across messages.
func TestEventsAreCountedPerTableAndOp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		other := &Table{Schema: "d", Name: "u", PK: []int{0}, Columns: []Column{{Name: "id", Kind: KindInt}}}
		change := func(pos uint32, tb *Table, op Op, id int64) Item {
			p := Position{File: "b.000001", Pos: pos}
			c := Change{Table: tb, Op: op, Pos: p, CommitTS: time.Unix(0, 0)}
			if op == OpDelete {
				c.Before = []any{id}
			} else {
				c.After = []any{id}
			}
			return Item{Pos: p, Changes: []Change{c}}
		}
		src := &fakeSource{items: []Item{
			rowsAt(100, 1, 2), change(110, other, OpDelete, 3), rowsAt(120, 4), change(130, tbl, OpDelete, 5),
			rowsAt(140, 6, 7, 8), change(150, other, OpDelete, 9), commitAt(160),
		}}
		store := &fakeStore{cp: Checkpoint{Name: "t", Epoch: 1, SourceID: "src", Pos: Position{File: "b.000001", Pos: 4}}, ok: true}
		ch := newFakeChannel()
		stop := Position{File: "b.000001", Pos: 160}
		m := NewMetrics(nil)
		r := NewReader(Options{Name: "t", CheckpointInterval: time.Hour, StopAt: &stop, BatchChanges: 3, Metrics: m}, src, store, &fakeLeader{}, ch)
		done := make(chan error, 1)
		go func() { done <- r.Run(context.Background()) }()
		synctest.Wait()
		ch.confirm(1, 2, 3)
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
		for _, c := range []struct {
			table string
			op    Op
			want  float64
		}{{"d.t", OpInsert, 6}, {"d.t", OpDelete, 1}, {"d.u", OpDelete, 2}, {"d.u", OpInsert, 0}} {
			if got := testutil.ToFloat64(m.Events.WithLabelValues(c.table, string(c.op))); got != c.want {
				t.Errorf("events of %s %s: %v, want %v", c.table, c.op, got, c.want)
			}
		}
	})
}
