// Package serverid reads the identity of a MySQL or MariaDB server the one way wye compares it:
// cdc stamps its checkpoints with it (the server whose binlog it follows), and the indexer
// checks, inside each read view, that it reads that same server (docs/architecture.md,
// invariant 4).
package serverid

import (
	"context"
	"database/sql"
	"fmt"
)

// Flavors: the server's product decides how it is identified.
const (
	MariaDB = "mariadb"
	MySQL   = "mysql"
)

// Querier runs one query: a *sql.DB, *sql.Conn or *sql.Tx.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Read returns the server's identity: MySQL's server_uuid; on MariaDB, which has none, its
// server_id and binlog basename ("mariadb:<id>:<basename>"), which identify its binlog.
func Read(ctx context.Context, q Querier, flavor string) (string, error) {
	if flavor == MySQL {
		var id string
		if err := q.QueryRowContext(ctx, "SELECT @@server_uuid").Scan(&id); err != nil {
			return "", fmt.Errorf("read server_uuid: %w", err)
		}
		return id, nil
	}
	var id uint32
	var base sql.NullString
	if err := q.QueryRowContext(ctx, "SELECT @@server_id, @@log_bin_basename").Scan(&id, &base); err != nil {
		return "", fmt.Errorf("read server identity: %w", err)
	}
	return fmt.Sprintf("mariadb:%d:%s", id, base.String), nil
}
