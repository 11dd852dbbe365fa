package control

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/internal/defaults"
)

// Defaults of a CDC.
const (
	DefaultReaderName = "default"   // the reader name when none is given
	DefaultLockPoll   = time.Second // standby poll and lock check interval
)

const (
	// lockIdleTimeout is the lock connection's server-side wait_timeout, set right after its
	// locks are taken: the server ends the session after this long without a statement, which
	// releases both locks. Without it a leader whose host vanishes without closing its TCP
	// connection (power loss, partition) keeps the lock until TCP keepalive or the global
	// wait_timeout (8 h by default) ends the session. A live leader checks the lock every Poll,
	// and a check either answers within checkTimeout or gives the lock up, so its session is
	// never idle for more than Poll + checkTimeout (4 s by default); lockSessionIdle raises the
	// timeout for a larger Poll.
	//
	// Takeover bound: the server ends the vanished leader's session lockIdleTimeout after it last
	// heard from it, and a standby's next GET_LOCK, at most one Poll later, wins. The leader
	// stops sending at most checkTimeout after its host or network fails (a check that got no
	// answer gives up and nothing else runs on the connection), so a standby leads within
	// lockIdleTimeout + checkTimeout + Poll = 14 s of the failure with the defaults, typically
	// lockIdleTimeout + Poll. A partitioned leader that still runs cancels its held context
	// within Poll + checkTimeout, before that.
	lockIdleTimeout = 10 * time.Second
	// checkTimeout bounds one lock check (see check).
	checkTimeout = 3 * time.Second
)

// CDCOptions configure the state of one cdc reader.
type CDCOptions struct {
	Name   string        // reader name: checkpoint row and leader lock (see CDC.LockName); DefaultReaderName
	Poll   time.Duration // DefaultLockPoll
	Logger *slog.Logger
}

// CDC keeps one reader's checkpoint and resync marks in the control schema, raises the
// schema's epoch floor with every checkpoint (see Save and Floor), and holds the reader's
// leader lock on a dedicated connection.
//
// Lock names: the leader lock is "wye.<control schema>.cdc.<name>" (lockName; hashed past 64
// characters). GET_LOCK names are server-wide, so without the schema two deployments with
// their own control schemas on one server, both with the default reader name, would wait for
// each other. Readers of one name on one control schema share the lock: that is the
// one-active-reader rule.
//
// Fencing invariant: a checkpoint write commits only if, when it is evaluated (after it holds
// the checkpoint row's lock), the leader lock is held by the connection that also holds this
// holder's private fence lock. The fence lock ("wye.cdc.fence.<random>", unique server-wide
// without a schema scope: 64 random bits) is taken on the lock connection right after the
// leader lock, so both vanish together when that connection dies;
// a deposed reader, or a process whose lock connection died, can never move the checkpoint,
// even if MySQL reuses connection ids after a restart.
//
// Vanished holder: the lock connection's session runs with wait_timeout = lockIdleTimeout
// (10 s), so a holder whose host disappears without closing its connection loses both locks
// when the server ends its idle session, and a standby leads within lockIdleTimeout +
// checkTimeout + Poll (14 s by default, see lockIdleTimeout) instead of hours. Fencing is
// unchanged: the locks vanish together, exactly as when the connection dies.
//
// Lock-connection invariant: only lock statements (GET_LOCK, the IS_USED_LOCK check,
// RELEASE_LOCK, and the SET of the session's wait_timeout in take) run on the lock connection,
// and none of them under a context a session can cancel. go-sql-driver/mysql closes the
// connection when a query's context is cancelled, and closing it releases GET_LOCK: a cancelled
// checkpoint save on that connection used to drop the lock (leader flap, duplicates). Saves
// therefore run on pooled connections, where a cancel costs a pooled connection and nothing
// else. The lock connection never goes back to the pool (discard): it carries the short
// wait_timeout, and after a failed take possibly the locks.
type CDC struct {
	opts CDCOptions
	db   *sql.DB
	lock string

	mu    sync.Mutex // guards conn and fence
	conn  *sql.Conn  // the lock connection while the lock is held
	fence string     // this holder's fence lock name while the lock is held, else ""
}

var (
	_ cdc.Store      = (*CDC)(nil)
	_ cdc.Leader     = (*CDC)(nil)
	_ cdc.EpochFloor = (*CDC)(nil)
)

// CDC returns the state of the reader opts.Name, on this store's pool.
func (s *Store) CDC(opts CDCOptions) *CDC {
	opts.Name = cmp.Or(opts.Name, DefaultReaderName)
	opts.Poll = defaults.Positive(opts.Poll, DefaultLockPoll)
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	return &CDC{opts: opts, db: s.db, lock: lockName(s.schema, "cdc."+opts.Name)}
}

// LockName is the server-wide name of the reader's leader lock (IS_USED_LOCK(name) tells
// which connection leads).
func (c *CDC) LockName() string { return c.lock }

// Load returns the checkpoint named name.
func (c *CDC) Load(ctx context.Context, name string) (cdc.Checkpoint, bool, error) {
	cp := cdc.Checkpoint{Name: name}
	var pos uint64
	err := c.db.QueryRowContext(ctx, `SELECT epoch, server_uuid, file, pos, gtid_set FROM cdc_checkpoint WHERE name = ?`, name).
		Scan(&cp.Epoch, &cp.SourceID, &cp.Pos.File, &pos, &cp.GTIDSet)
	if errors.Is(err, sql.ErrNoRows) {
		return cdc.Checkpoint{}, false, nil
	}
	if err != nil {
		return cdc.Checkpoint{}, false, fmt.Errorf("load checkpoint: %w", err)
	}
	cp.Pos.Pos = uint32(pos)
	return cp, true, nil
}

// ErrNotLeader is returned by Save when this process no longer holds the leader lock.
var ErrNotLeader = errors.New("leader lock not held")

// ErrCheckpointBehind is returned by Save when the checkpoint would move to a position whose
// version is below the saved one's: saving it would let new events carry versions below
// events already published (invariant 2). A new epoch must come from cdc.NextEpoch.
var ErrCheckpointBehind = errors.New("checkpoint version below the saved one")

// Save upserts cp, fenced: only while this process holds the leader lock (see CDC). In the
// same transaction it raises the epoch floor to cp (raiseFloor), so no checkpoint, and so no
// start point a reader publishes from, is ever above the floor. It runs on a pooled
// connection, so cancelling ctx never touches the lock connection.
func (c *CDC) Save(ctx context.Context, cp cdc.Checkpoint) error {
	c.mu.Lock()
	fence := c.fence
	c.mu.Unlock()
	if fence == "" {
		return fmt.Errorf("save checkpoint: %w", ErrNotLeader)
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	defer tx.Rollback()
	// Lock the row first, so the fence below is evaluated after any wait for it: a save that
	// waited behind another writer cannot commit on a fence read before the wait.
	var prev cdc.Checkpoint
	var prevPos uint64
	err = tx.QueryRowContext(ctx, `SELECT epoch, file, pos FROM cdc_checkpoint WHERE name = ? FOR UPDATE`, cp.Name).
		Scan(&prev.Epoch, &prev.Pos.File, &prevPos)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("save checkpoint: %w", err)
	default:
		prev.Pos.Pos = uint32(prevPos)
		if behind(cp, prev) {
			return fmt.Errorf("save checkpoint %d/%s over %d/%s: %w", cp.Epoch, cp.Pos, prev.Epoch, prev.Pos, ErrCheckpointBehind)
		}
	}
	res, err := tx.ExecContext(ctx, `
INSERT INTO cdc_checkpoint (name, epoch, server_uuid, file, pos, gtid_set, updated_at)
SELECT ?, ?, ?, ?, ?, ?, NOW(6) FROM DUAL WHERE IS_USED_LOCK(?) = IS_USED_LOCK(?)
ON DUPLICATE KEY UPDATE epoch = VALUES(epoch), server_uuid = VALUES(server_uuid), file = VALUES(file),
  pos = VALUES(pos), gtid_set = VALUES(gtid_set), updated_at = VALUES(updated_at)`,
		cp.Name, cp.Epoch, cp.SourceID, cp.Pos.File, cp.Pos.Pos, cp.GTIDSet, c.lock, fence)
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("save checkpoint: %w", ErrNotLeader)
	}
	if err := raiseFloor(ctx, tx, cp); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// behind reports whether cp's position versions below prev's. Positions that cannot be
// versioned are not compared: the reader refuses them itself.
func behind(cp, prev cdc.Checkpoint) bool {
	v, err := cdc.VersionAt(cp.Epoch, cp.Pos.File, cp.Pos.Pos)
	if err != nil {
		return false
	}
	p, err := cdc.VersionAt(prev.Epoch, prev.Pos.File, prev.Pos.Pos)
	return err == nil && v < p
}

// MarkResync records that a table needs a resync; the same mark twice is one row.
func (c *CDC) MarkResync(ctx context.Context, name string, m cdc.ResyncMark) error {
	_, err := c.db.ExecContext(ctx, `INSERT IGNORE INTO cdc_resync_needed (name, table_name, reason, detail, file, pos)
VALUES (?, ?, ?, ?, ?, ?)`, name, m.Table, m.Reason, m.Detail, m.Pos.File, m.Pos.Pos)
	if err != nil {
		return fmt.Errorf("mark resync: %w", err)
	}
	return nil
}

// Acquire polls GET_LOCK(LockName(), 0) on a dedicated connection until it wins, then
// takes this holder's fence lock on the same connection. While held, the lock is checked every
// Poll: if the connection dies or IS_USED_LOCK names another connection, the returned context
// is cancelled at once.
func (c *CDC) Acquire(ctx context.Context) (context.Context, func(), error) {
	conn, fence, err := c.wait(ctx)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	c.conn, c.fence = conn, fence
	c.mu.Unlock()

	held, lost := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.watch(held, lost)
	}()
	var once sync.Once
	release := func() {
		once.Do(func() {
			lost()
			<-done
			c.mu.Lock()
			defer c.mu.Unlock()
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			c.conn.ExecContext(rctx, "DO RELEASE_LOCK(?), RELEASE_LOCK(?)", c.fence, c.lock)
			discard(c.conn)
			c.conn, c.fence = nil, ""
		})
	}
	return held, release, nil
}

// wait polls until this process holds the leader and fence locks on one connection, which it
// returns with the fence's name.
func (c *CDC) wait(ctx context.Context) (*sql.Conn, string, error) {
	t := time.NewTicker(c.opts.Poll)
	defer t.Stop()
	var conn *sql.Conn
	for {
		if conn == nil {
			var err error
			if conn, err = c.db.Conn(ctx); err != nil && ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
		}
		if conn != nil {
			fence, err := c.take(ctx, conn)
			if err == nil && fence != "" {
				return conn, fence, nil
			}
			if err != nil { // a broken connection: take a fresh one next time
				if ctx.Err() == nil {
					c.opts.Logger.Warn("take leader lock", "lock", c.lock, "err", err)
				}
				discard(conn) // it may hold the locks: end its session
				conn = nil
			}
		}
		select {
		case <-ctx.Done():
			if conn != nil {
				conn.Close()
			}
			return nil, "", ctx.Err()
		case <-t.C:
		}
	}
}

// watch checks the held lock every Poll until held is done, and calls lost when it is gone.
func (c *CDC) watch(held context.Context, lost context.CancelFunc) {
	t := time.NewTicker(c.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-held.Done():
			return
		case <-t.C:
		}
		if err := c.check(); err != nil {
			if held.Err() == nil {
				c.opts.Logger.Warn("leader lock check failed", "lock", c.lock, "err", err)
			}
			lost()
			return
		}
	}
}

// take tries GET_LOCK on conn, then the fence lock, then sets the session's wait_timeout (see
// lockIdleTimeout). It returns the fence name when all three succeeded, "" when another
// connection holds the leader lock. After an error conn may hold the locks: discard it.
func (c *CDC) take(ctx context.Context, conn *sql.Conn) (string, error) {
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", c.lock).Scan(&got); err != nil {
		return "", fmt.Errorf("get lock %s: %w", c.lock, err)
	}
	if got.Int64 != 1 {
		return "", nil
	}
	var b [8]byte
	rand.Read(b[:])
	fence := "wye.cdc.fence." + hex.EncodeToString(b[:])
	// Servers that hold one user lock per connection (MySQL < 5.7.5, MariaDB < 10.0.2) would
	// release the leader lock here: the check below catches it.
	var ok sql.NullInt64
	err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0) = 1 AND IS_USED_LOCK(?) = CONNECTION_ID()", fence, c.lock).Scan(&ok)
	if err != nil {
		return "", fmt.Errorf("get fence lock: %w", err)
	}
	if ok.Int64 != 1 {
		return "", errors.New("get fence lock: the server does not hold two user locks on one connection")
	}
	// Without it a vanished holder keeps the lock for hours: no timeout, no lead.
	idle := lockSessionIdle(c.opts.Poll)
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION wait_timeout = %d", idle)); err != nil {
		return "", fmt.Errorf("set lock session wait_timeout: %w", err)
	}
	return fence, nil
}

// lockSessionIdle returns the lock session's wait_timeout in whole seconds: lockIdleTimeout,
// or, when poll is so long that a live holder's session could come near it between checks
// (idle up to poll + checkTimeout), that plus one more poll of margin.
func lockSessionIdle(poll time.Duration) int64 {
	idle := max(lockIdleTimeout, 2*poll+checkTimeout)
	return int64((idle + time.Second - 1) / time.Second)
}

// discard ends conn's session instead of returning it to the pool.
func discard(conn *sql.Conn) {
	conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}

// check verifies that the lock connection still holds the leader and fence locks. Its context
// is its own timeout, never a session's (see CDC): a check that cannot answer in checkTimeout
// has lost the lock anyway.
func (c *CDC) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	var mine sql.NullInt64
	err := c.conn.QueryRowContext(cctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID() AND IS_USED_LOCK(?) = CONNECTION_ID()",
		c.lock, c.fence).Scan(&mine)
	if err != nil {
		return fmt.Errorf("check leader lock: %w", err)
	}
	if mine.Int64 != 1 {
		return fmt.Errorf("check leader lock: %w", ErrNotLeader)
	}
	return nil
}
