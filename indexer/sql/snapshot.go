package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/internal/serverid"
)

// Snapshot is where a consistent snapshot sits in the source's binlog: every transaction
// committed before File:Pos is visible in it, none after (docs/architecture.md, "Resync").
type Snapshot struct {
	File   string
	Pos    uint32
	Server string // the source's identity (internal/serverid), as cdc's checkpoint records it
}

// Snapshot opens a read view inside START TRANSACTION WITH CONSISTENT SNAPSHOT and returns the
// binlog position of that snapshot, read BEFORE any row: a resync writes the view's rows with
// the version of that position, so a change committed after it (a higher version) wins in any
// order and one committed before it is refused.
//
// MariaDB gives the position of the snapshot itself (binlog_snapshot_file/position, no global
// lock). MySQL has no such variable: the position is read just before the snapshot opens, so a
// transaction committed between the two is visible under a version below its own, and the
// stream's write of it (higher) still wins. Never a position read after the snapshot.
func (s *Source) Snapshot(ctx context.Context) (indexer.View, Snapshot, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, Snapshot{}, classify(fmt.Errorf("open snapshot: %w", err))
	}
	var snap Snapshot
	err = s.openSnapshot(ctx, conn, &snap)
	if err != nil {
		conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		conn.Close()
		return nil, Snapshot{}, classify(fmt.Errorf("open snapshot: %w", err))
	}
	done := func() error {
		_, err := conn.ExecContext(context.Background(), "ROLLBACK")
		return errors.Join(err, conn.Close())
	}
	return &view{tx: conn, done: done, src: s}, snap, nil
}

func (s *Source) openSnapshot(ctx context.Context, conn *sql.Conn, snap *Snapshot) error {
	if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return err
	}
	mysql := s.flavor == serverid.MySQL
	if mysql {
		if err := binlogStatus(ctx, conn, snap); err != nil {
			return err
		}
	}
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		return err
	}
	if !mysql {
		if err := mariadbSnapshot(ctx, conn, snap); err != nil {
			return err
		}
	}
	id, err := serverid.Read(ctx, conn, s.flavor)
	if err != nil {
		return err
	}
	snap.Server = id
	if want := s.followed(); want != "" && want != id {
		return &indexer.SourceError{Permanent: true, Err: fmt.Errorf(
			"the source connection reads server %q but cdc follows %q: a resync must read the server whose binlog gives its versions", id, want)}
	}
	return nil
}

// followed is the identity of the server cdc follows, "" when not known or not checked.
func (s *Source) followed() string {
	if s.follow == nil {
		return ""
	}
	return s.follow()
}

// mariadbSnapshot reads the binlog position of the session's consistent snapshot.
func mariadbSnapshot(ctx context.Context, conn *sql.Conn, snap *Snapshot) error {
	rows, err := conn.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return err
	}
	defer rows.Close()
	var pos string
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return err
		}
		switch name {
		case "Binlog_snapshot_file", "binlog_snapshot_file":
			snap.File = value
		case "Binlog_snapshot_position", "binlog_snapshot_position":
			pos = value
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return setPos(snap, pos, "binlog_snapshot_file/position (is log_bin on?)")
}

// binlogStatus reads the current binlog position (MySQL: SHOW BINARY LOG STATUS from 8.2,
// SHOW MASTER STATUS before).
func binlogStatus(ctx context.Context, conn *sql.Conn, snap *Snapshot) error {
	rows, err := conn.QueryContext(ctx, "SHOW BINARY LOG STATUS")
	if err != nil {
		rows, err = conn.QueryContext(ctx, "SHOW MASTER STATUS")
	}
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	var pos string
	if rows.Next() {
		vals := make([]sql.NullString, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		snap.File, pos = vals[0].String, vals[1].String
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return setPos(snap, pos, "SHOW BINARY LOG STATUS (is log_bin on?)")
}

func setPos(snap *Snapshot, pos, what string) error {
	n, err := strconv.ParseUint(pos, 10, 32)
	if snap.File == "" || err != nil {
		return fmt.Errorf("no binlog position from %s: file %q, position %q", what, snap.File, pos)
	}
	snap.Pos = uint32(n)
	return nil
}

// Estimate is the number of rows InnoDB estimates table ("db.table") holds: instant, and off by
// up to a few tens of percent; a progress bar's total, never a count.
func (s *Source) Estimate(ctx context.Context, table string) (int64, error) {
	db, t, _ := strings.Cut(table, ".")
	var n sql.NullInt64
	err := s.db.QueryRowContext(ctx, "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", db, t).Scan(&n)
	if err != nil {
		return 0, classify(fmt.Errorf("estimate rows of %s: %w", table, err))
	}
	return n.Int64, nil
}
