package control

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/wyehq/wye/indexer/es"
)

const ddl = `
CREATE TABLE IF NOT EXISTS cluster_roles (
  cluster    VARCHAR(64)     NOT NULL PRIMARY KEY,
  role       VARCHAR(16)     NOT NULL COMMENT 'master or slave; exactly one master',
  epoch      BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'grows with every promote',
  updated_at TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS repair_ledger (
  cluster    VARCHAR(64)     NOT NULL,
  entity     VARCHAR(64)     NOT NULL,
  doc_id     VARCHAR(512)    NOT NULL,
  version    BIGINT          NOT NULL COMMENT 'highest version the cluster missed',
  class      VARCHAR(16)     NOT NULL COMMENT 'retryable, permanent or dropped',
  reason     TEXT            NOT NULL,
  misses     INT UNSIGNED    NOT NULL DEFAULT 1,
  first_seen TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  last_seen  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  repaired_at TIMESTAMP(6)   NULL,
  PRIMARY KEY (cluster, entity, doc_id)
) ENGINE=InnoDB`

// Store is the control schema connection.
type Store struct{ db *sql.DB }

var _ es.Ledger = (*Store)(nil)

// Open connects with cfg (config.Control.MySQLConfig()) and creates the tables if missing.
func Open(ctx context.Context, cfg *mysql.Config) (*Store, error) {
	cfg = cfg.Clone()
	cfg.MultiStatements = true
	cfg.ParseTime = true
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("configure control database: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		db.Close()
		return nil, fmt.Errorf("create control tables: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the connection pool.
func (s *Store) Close() error { return s.db.Close() }

// Seed writes the configured roles for clusters the table does not know yet. Existing rows
// win: after a promote the control schema, not the file, says who is master.
func (s *Store) Seed(ctx context.Context, roles map[string]string) error {
	for name, role := range roles {
		if _, err := s.db.ExecContext(ctx, `INSERT IGNORE INTO cluster_roles (cluster, role) VALUES (?, ?)`, name, role); err != nil {
			return fmt.Errorf("seed role of %s: %w", name, err)
		}
	}
	return nil
}

// SetRole changes a cluster's role (tests and, later, promote).
func (s *Store) SetRole(ctx context.Context, cluster, role string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE cluster_roles SET role = ?, epoch = epoch + 1 WHERE cluster = ?`, role, cluster)
	if err != nil {
		return fmt.Errorf("set role of %s: %w", cluster, err)
	}
	return nil
}

// master reads the master among the named clusters.
func (s *Store) master(ctx context.Context, clusters []string) (string, error) {
	q := `SELECT cluster FROM cluster_roles WHERE role = 'master' AND cluster IN (?` + strings.Repeat(",?", len(clusters)-1) + `) ORDER BY epoch DESC, updated_at DESC LIMIT 1`
	args := make([]any, len(clusters))
	for i, c := range clusters {
		args[i] = c
	}
	var m string
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&m); err != nil {
		return "", fmt.Errorf("read master: %w", err)
	}
	return m, nil
}

// Record implements es.Ledger: one upsert per call, keeping the highest missed version.
func (s *Store) Record(ctx context.Context, cluster string, missed []es.Missed) error {
	for len(missed) > 0 {
		n := min(len(missed), 500)
		var q strings.Builder
		q.WriteString(`INSERT INTO repair_ledger (cluster, entity, doc_id, version, class, reason) VALUES `)
		args := make([]any, 0, n*6)
		for i, m := range missed[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?,?,?)")
			reason := m.Reason
			if len(reason) > 1000 {
				reason = reason[:1000]
			}
			args = append(args, cluster, m.Entity, m.ID, m.Version, m.Class, reason)
		}
		q.WriteString(` ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version)), class = VALUES(class),
			reason = VALUES(reason), misses = misses + 1, last_seen = CURRENT_TIMESTAMP(6), repaired_at = NULL`)
		if _, err := s.db.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("record repair ledger: %w", err)
		}
		missed = missed[n:]
	}
	return nil
}

// Roles is the current master, polled from cluster_roles. It implements es.Roles.
type Roles struct {
	store    *Store
	clusters []string
	every    time.Duration
	log      *slog.Logger

	mu     sync.RWMutex
	master string
}

var _ es.Roles = (*Roles)(nil)

// NewRoles reads the master once (so a Roles is never without one) and returns a Roles that
// Run keeps current. every is the poll interval (default 2s: a promote is seen within 5s).
func NewRoles(ctx context.Context, s *Store, clusters []string, every time.Duration, log *slog.Logger) (*Roles, error) {
	if every <= 0 {
		every = 2 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	m, err := s.master(ctx, clusters)
	if err != nil {
		return nil, err
	}
	return &Roles{store: s, clusters: clusters, every: every, log: log, master: m}, nil
}

// Master returns the last master read.
func (r *Roles) Master() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.master
}

// Run polls until ctx is done. A failed read keeps the last known master.
func (r *Roles) Run(ctx context.Context) error {
	t := time.NewTicker(r.every)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		m, err := r.store.master(ctx, r.clusters)
		if err != nil {
			failures++
			if ctx.Err() == nil {
				r.log.Warn("poll cluster roles; keeping the last master", "master", r.Master(), "failures", failures, "err", err)
			}
			continue
		}
		failures = 0
		r.mu.Lock()
		old := r.master
		r.master = m
		r.mu.Unlock()
		if old != m {
			r.log.Info("master changed", "from", old, "to", m)
		}
	}
}
