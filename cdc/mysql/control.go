package mysql

import (
	"context"
	"database/sql"
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
// lock on a dedicated connection. Checkpoint writes go through that same connection and are
// fenced with IS_USED_LOCK, so a deposed reader can never move the checkpoint.
type Control struct {
	opts ControlOptions
	db   *sql.DB
	lock string

	mu   sync.Mutex // guards conn: lock checks and fenced writes share it
	conn *sql.Conn
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

// Save upserts cp on the lock connection, only while it holds the lock.
func (c *Control) Save(ctx context.Context, cp cdc.Checkpoint) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return fmt.Errorf("save checkpoint: %w", ErrNotLeader)
	}
	res, err := c.conn.ExecContext(ctx, `
INSERT INTO cdc_checkpoint (name, epoch, server_uuid, file, pos, gtid_set, updated_at)
SELECT ?, ?, ?, ?, ?, ?, NOW(6) FROM DUAL WHERE IS_USED_LOCK(?) = CONNECTION_ID()
ON DUPLICATE KEY UPDATE epoch = VALUES(epoch), server_uuid = VALUES(server_uuid), file = VALUES(file),
  pos = VALUES(pos), gtid_set = VALUES(gtid_set), updated_at = VALUES(updated_at)`,
		cp.Name, cp.Epoch, cp.SourceID, cp.Pos.File, cp.Pos.Pos, cp.GTIDSet, c.lock)
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("save checkpoint: %w", ErrNotLeader)
	}
	return nil
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

// Acquire polls GET_LOCK('wye.cdc.<name>', 0) on a dedicated connection until it wins. While
// held, the lock is checked every Poll: if the connection dies or IS_USED_LOCK names another
// connection, the returned context is cancelled at once.
func (c *Control) Acquire(ctx context.Context) (context.Context, func(), error) {
	t := time.NewTicker(c.opts.Poll)
	defer t.Stop()
	var conn *sql.Conn
	for {
		if conn == nil {
			var err error
			if conn, err = c.db.Conn(ctx); err != nil && ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
		}
		if conn != nil {
			var got sql.NullInt64
			err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", c.lock).Scan(&got)
			if err == nil && got.Int64 == 1 {
				break
			}
			if err != nil { // a broken connection: take a fresh one next time
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
	c.conn = conn
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
			if err := c.check(held); err != nil {
				if held.Err() == nil {
					c.opts.Logger.Warn("leader lock check failed", "lock", c.lock, "err", err)
				}
				lost()
				return
			}
		}
	}()
	release := func() {
		lost()
		<-done
		c.mu.Lock()
		defer c.mu.Unlock()
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c.conn.ExecContext(rctx, "DO RELEASE_LOCK(?)", c.lock)
		c.conn.Close()
		c.conn = nil
	}
	return held, release, nil
}

func (c *Control) check(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var mine sql.NullInt64
	if err := c.conn.QueryRowContext(cctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", c.lock).Scan(&mine); err != nil {
		return fmt.Errorf("check leader lock: %w", err)
	}
	if mine.Int64 != 1 {
		return fmt.Errorf("check leader lock: %w", ErrNotLeader)
	}
	return nil
}
