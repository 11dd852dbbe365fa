package control

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
)

// Defaults of the control schema's connection pool.
const (
	DefaultMaxConns     = 4
	DefaultDialTimeout  = 5 * time.Second
	DefaultReadTimeout  = 10 * time.Second
	DefaultWriteTimeout = 10 * time.Second
)

// Store is one connection pool to the control schema. Open migrates the schema first, so
// every process works on the newest layout it knows.
type Store struct {
	db     *sql.DB
	schema string // the control schema's database name, canonical (see schemaName)
}

// Open connects with cfg (the control database and its user) and migrates the schema.
func Open(ctx context.Context, cfg *mysql.Config) (*Store, error) {
	cfg = cfg.Clone()
	cfg.MultiStatements = true
	cfg.ParseTime = true
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultDialTimeout
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("configure control schema: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(DefaultMaxConns)
	s := &Store{db: db}
	if s.schema, err = schemaName(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool (and with it any lock a CDC holds).
func (s *Store) Close() error { return s.db.Close() }

// schemaName returns the control schema's database name as the server identifies it: the
// scope of every server-wide lock name (see lockName). Where the server compares database
// names case-insensitively (lower_case_table_names 1 or 2), "Wye" and "wye" are one schema
// and must give one lock name, else two readers would lead on one checkpoint row.
func schemaName(ctx context.Context, db *sql.DB) (string, error) {
	var name sql.NullString
	var lower int
	if err := db.QueryRowContext(ctx, "SELECT DATABASE(), @@lower_case_table_names").Scan(&name, &lower); err != nil {
		return "", fmt.Errorf("read control schema name: %w", err)
	}
	if !name.Valid || name.String == "" {
		return "", fmt.Errorf("read control schema name: no database selected (control.database)")
	}
	if lower != 0 {
		return strings.ToLower(name.String), nil
	}
	return name.String, nil
}

// maxLockName is the longest user lock name MySQL accepts (64 characters; 5.7+ refuses longer
// ones with ER_USER_LOCK_WRONG_NAME). Bytes are counted, which is never fewer than characters.
const maxLockName = 64

// lockName returns the server-wide user lock name "wye.<schema>.<what>". GET_LOCK names are
// global to the server, not to a database: scoping them by the control schema keeps two
// deployments with their own control schemas on one server independent (docs/architecture.md,
// "Control schema"). A name longer than maxLockName keeps its readable head, cut at a rune
// boundary, and ends in "~" and 16 hex digits of the SHA-256 of the whole name: stable across
// processes and versions, and distinct for distinct names (a collision only makes two readers
// wait for each other, it never lets two lead on one checkpoint).
func lockName(schema, what string) string {
	name := "wye." + schema + "." + what
	if len(name) <= maxLockName {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := "~" + hex.EncodeToString(sum[:8])
	keep := maxLockName - len(suffix)
	for keep > 0 && !utf8.RuneStart(name[keep]) {
		keep--
	}
	return name[:keep] + suffix
}

// migrations are the control schema's history, oldest first. A migration is applied once per
// schema and recorded in control_schema; each statement is idempotent on its own too, so a
// schema created before control_schema existed (every table IF NOT EXISTS) migrates in place.
// Append, never edit: a deployed schema has run the old text.
var migrations = []string{
	1: `
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
) ENGINE=InnoDB;
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
) ENGINE=InnoDB`,
	// The epoch floor (docs/architecture.md, invariant 2; control/floor.go): seeded with the
	// highest checkpoint, so a schema migrated under running readers covers what they published.
	2: `
CREATE TABLE IF NOT EXISTS cdc_epoch_floor (
  id          TINYINT UNSIGNED NOT NULL PRIMARY KEY COMMENT 'always 1: one floor per control schema',
  version     BIGINT UNSIGNED  NOT NULL COMMENT 'version of (epoch, file, pos): the highest start point any reader saved',
  epoch       INT UNSIGNED     NOT NULL,
  server_uuid VARCHAR(255)     NOT NULL COMMENT 'source identity of that start point',
  file        VARCHAR(255)     NOT NULL,
  pos         BIGINT UNSIGNED  NOT NULL,
  name        VARCHAR(64)      NOT NULL COMMENT 'the reader that saved it',
  updated_at  TIMESTAMP(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;
INSERT IGNORE INTO cdc_epoch_floor (id, version, epoch, server_uuid, file, pos, name)
SELECT 1, (CAST(epoch AS UNSIGNED) << 48) + (CAST(SUBSTRING_INDEX(file, '.', -1) AS UNSIGNED) << 32) + pos,
  epoch, server_uuid, file, pos, name
FROM cdc_checkpoint ORDER BY 2 DESC LIMIT 1`,
	// Nightly resync runs and their progress per entity (control/nightly.go).
	3: `
CREATE TABLE IF NOT EXISTS nightly_run (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  scope       TEXT            NOT NULL COMMENT 'what the run covers (entities, clusters, flags): a resume must match it',
  status      VARCHAR(16)     NOT NULL DEFAULT 'running' COMMENT 'running, equal, failed, abandoned',
  resumes     INT UNSIGNED    NOT NULL DEFAULT 0,
  started_at  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  finished_at TIMESTAMP(6)    NULL,
  summary     TEXT            NOT NULL COMMENT 'the report summary when finished',
  KEY by_status (status, id)
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS nightly_progress (
  run_id      BIGINT UNSIGNED NOT NULL,
  entity      VARCHAR(64)     NOT NULL,
  step        VARCHAR(16)     NOT NULL COMMENT 'rows (MySQL in key order) or orphans (each cluster scanned)',
  after_key   TEXT            NOT NULL COMMENT 'the last root key done, as a message value; empty: none yet',
  done        TINYINT(1)      NOT NULL DEFAULT 0,
  chunks      INT UNSIGNED    NOT NULL DEFAULT 0,
  counts      MEDIUMTEXT      NOT NULL COMMENT 'the counts so far, as the nightly package encodes them',
  updated_at  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (run_id, entity, step)
) ENGINE=InnoDB`,
	// The promote journal (control/promote.go): every promote, refused, done or rolled back.
	4: `
CREATE TABLE IF NOT EXISTS promote_journal (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  who          VARCHAR(255)    NOT NULL COMMENT 'OS user@host of the command',
  started_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  finished_at  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  from_cluster VARCHAR(64)     NOT NULL COMMENT 'the master before',
  to_cluster   VARCHAR(64)     NOT NULL COMMENT 'the cluster promoted (or refused)',
  epoch        BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'the promote epoch it set; 0: refused',
  checks       MEDIUMTEXT      NOT NULL COMMENT 'the preflight checks and their results, JSON',
  outcome      VARCHAR(16)     NOT NULL COMMENT 'promoted, refused or rolled_back',
  message      TEXT            NOT NULL,
  KEY by_outcome (outcome, id)
) ENGINE=InnoDB`,
}

// SchemaVersion is the newest control schema this build knows.
var SchemaVersion = len(migrations) - 1

// migrate applies the migrations the schema has not seen, under a lock so that processes
// starting together apply each one once. A schema newer than this build is refused: an old
// binary must not write a layout it does not know.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate control schema: %w", err)
	}
	defer conn.Close()
	var got sql.NullInt64
	lock := lockName(s.schema, "control.migrate")
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 30)", lock).Scan(&got); err != nil || got.Int64 != 1 {
		return fmt.Errorf("migrate control schema: lock %s not granted in 30s (err %v)", lock, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK(?)", lock)
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS control_schema (
  version    INT UNSIGNED NOT NULL PRIMARY KEY,
  applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB`); err != nil {
		return fmt.Errorf("migrate control schema: %w", err)
	}
	var have int
	if err := conn.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM control_schema").Scan(&have); err != nil {
		return fmt.Errorf("migrate control schema: %w", err)
	}
	if have > SchemaVersion {
		return fmt.Errorf("control schema is at version %d, this wye knows %d: upgrade wye", have, SchemaVersion)
	}
	for v := have + 1; v <= SchemaVersion; v++ {
		if _, err := conn.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate control schema to version %d: %w", v, err)
		}
		if _, err := conn.ExecContext(ctx, "INSERT IGNORE INTO control_schema (version) VALUES (?)", v); err != nil {
			return fmt.Errorf("migrate control schema to version %d: %w", v, err)
		}
	}
	return nil
}
