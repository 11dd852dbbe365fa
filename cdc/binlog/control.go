package binlog

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/wyehq/wye/cdc"
)

// ControlOptions configure the control-schema adapter.
type ControlOptions struct {
	Host     string
	Port     uint16
	User     string
	Password string
	Database string
	Name     string        // reader name: checkpoint row and lock "wye.cdc.<name>"
	Poll     time.Duration // standby poll and lock check interval; default 1s
	Logger   *slog.Logger
}

// Control keeps the checkpoint and resync marks in the control schema and holds the leader
// lock on a dedicated connection.
//
// Fencing invariant: a checkpoint write commits only if, when it is evaluated (after it holds
// the checkpoint row's lock), the leader lock is held by the connection that also holds this
// holder's private fence lock. The fence lock ("wye.cdc.fence.<random>") is taken on the lock
// connection right after the leader lock, so both vanish together when that connection dies;
// a deposed reader, or a process whose lock connection died, can never move the checkpoint,
// even if MySQL reuses connection ids after a restart.
//
// Lock-connection invariant: only lock statements (GET_LOCK, the IS_USED_LOCK check,
// RELEASE_LOCK) run on the lock connection, and none of them under a context a session can
// cancel. go-sql-driver/mysql closes the connection when a query's context is cancelled, and
// closing it releases GET_LOCK: a cancelled checkpoint save on that connection used to drop the
// lock (leader flap, duplicates). Saves therefore run on pooled connections, where a cancel
// costs a pooled connection and nothing else.
type Control struct {
	opts ControlOptions
	db   *sql.DB
	lock string

	mu    sync.Mutex // guards conn and fence
	conn  *sql.Conn  // the lock connection while the lock is held
	fence string     // this holder's fence lock name while the lock is held, else ""
}

var (
	_ cdc.Store  = (*Control)(nil)
	_ cdc.Leader = (*Control)(nil)
)

const schemaDDL = `
CREATE TABLE IF NOT EXISTS cdc_checkpoint (
  name        VARCHAR(64)     NOT NULL PRIMARY KEY,
  epoch       INT UNSIGNED    NOT NULL,
  server_uuid VARCHAR(255)    NOT NULL COMMENT 'source identity: MySQL server_uuid, MariaDB server_id + binlog basename',
  file        VARCHAR(255)    NOT NULL,
  pos         BIGINT UNSIGNED NOT NULL,
  gtid_set    TEXT            NOT NULL,
  updated_at  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS cdc_resync_needed (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name        VARCHAR(64)     NOT NULL,
  table_name  VARCHAR(255)    NOT NULL,
  reason      VARCHAR(32)     NOT NULL,
  detail      TEXT            NOT NULL,
  file        VARCHAR(255)    NOT NULL,
  pos         BIGINT UNSIGNED NOT NULL,
  created_at  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  resolved_at TIMESTAMP(6)    NULL,
  UNIQUE KEY one_mark (name, table_name, reason, file, pos)
) ENGINE=InnoDB;`

// OpenControl connects and creates the cdc tables if missing.
func OpenControl(ctx context.Context, opts ControlOptions) (*Control, error) {
	if opts.Name == "" {
		opts.Name = "default"
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg := driver.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.Passwd, cfg.DBName = "tcp", fmt.Sprintf("%s:%d", opts.Host, opts.Port), opts.User, opts.Password, opts.Database
	cfg.MultiStatements = true
	cfg.Timeout = 5 * time.Second
	cfg.ReadTimeout = 10 * time.Second
	cfg.WriteTimeout = 10 * time.Second
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open control schema: %w", err)
	}
	c := &Control{opts: opts, db: sql.OpenDB(conn), lock: "wye.cdc." + opts.Name}
	c.db.SetMaxOpenConns(4)
	if _, err := c.db.ExecContext(ctx, schemaDDL); err != nil {
		c.db.Close()
		return nil, fmt.Errorf("create cdc control tables: %w", err)
	}
	return c, nil
}

// Close closes the pool (and with it any held lock).
func (c *Control) Close() error { return c.db.Close() }

// Load returns the checkpoint named name.
func (c *Control) Load(ctx context.Context, name string) (cdc.Checkpoint, bool, error) {
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

// Save upserts cp, fenced: only while this process holds the leader lock (see Control). It runs
// on a pooled connection, so cancelling ctx never touches the lock connection.
func (c *Control) Save(ctx context.Context, cp cdc.Checkpoint) error {
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
func (c *Control) MarkResync(ctx context.Context, name string, m cdc.ResyncMark) error {
	_, err := c.db.ExecContext(ctx, `INSERT IGNORE INTO cdc_resync_needed (name, table_name, reason, detail, file, pos)
VALUES (?, ?, ?, ?, ?, ?)`, name, m.Table, m.Reason, m.Detail, m.Pos.File, m.Pos.Pos)
	if err != nil {
		return fmt.Errorf("mark resync: %w", err)
	}
	return nil
}

// Acquire polls GET_LOCK('wye.cdc.<name>', 0) on a dedicated connection until it wins, then
// takes this holder's fence lock on the same connection. While held, the lock is checked every
// Poll: if the connection dies or IS_USED_LOCK names another connection, the returned context
// is cancelled at once.
func (c *Control) Acquire(ctx context.Context) (context.Context, func(), error) {
	t := time.NewTicker(c.opts.Poll)
	defer t.Stop()
	var conn *sql.Conn
	var fence string
	for {
		if conn == nil {
			var err error
			if conn, err = c.db.Conn(ctx); err != nil && ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
		}
		if conn != nil {
			var err error
			if fence, err = c.take(ctx, conn); err == nil && fence != "" {
				break
			}
			if err != nil { // a broken connection: take a fresh one next time
				if ctx.Err() == nil {
					c.opts.Logger.Warn("take leader lock", "lock", c.lock, "err", err)
				}
				conn.Close()
				conn = nil
			}
		}
		select {
		case <-ctx.Done():
			if conn != nil {
				conn.Close()
			}
			return nil, nil, ctx.Err()
		case <-t.C:
		}
	}
	c.mu.Lock()
	c.conn, c.fence = conn, fence
	c.mu.Unlock()

	held, lost := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
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
			c.conn.Close()
			c.conn, c.fence = nil, ""
		})
	}
	return held, release, nil
}

// take tries GET_LOCK on conn, then the fence lock. It returns the fence name when both are
// held, "" when another connection holds the leader lock.
func (c *Control) take(ctx context.Context, conn *sql.Conn) (string, error) {
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
	return fence, nil
}

// check verifies that the lock connection still holds the leader and fence locks. Its context
// is its own timeout, never a session's (see Control): a check that cannot answer in 3 s has
// lost the lock anyway.
func (c *Control) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
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
