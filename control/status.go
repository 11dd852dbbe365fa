package control

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ClusterRole is one row of cluster_roles.
type ClusterRole struct {
	Role    string
	Epoch   int64 // grows with every promote
	Updated time.Time
}

// ClusterRoles returns every row of cluster_roles by cluster name, for status.
func (s *Store) ClusterRoles(ctx context.Context) (map[string]ClusterRole, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT cluster, role, epoch, updated_at FROM cluster_roles`)
	if err != nil {
		return nil, fmt.Errorf("read cluster roles: %w", err)
	}
	defer rows.Close()
	out := map[string]ClusterRole{}
	for rows.Next() {
		var name string
		var r ClusterRole
		if err := rows.Scan(&name, &r.Role, &r.Epoch, &r.Updated); err != nil {
			return nil, fmt.Errorf("read cluster roles: %w", err)
		}
		out[name] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read cluster roles: %w", err)
	}
	return out, nil
}

// Leader names the session holding the reader's leader lock (IS_USED_LOCK): its connection id
// and, where this user may see it in the process list, its client host. ok is false when no
// reader leads.
func (c *CDC) Leader(ctx context.Context) (conn int64, host string, ok bool, err error) {
	var id sql.NullInt64
	if err := c.db.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", c.lock).Scan(&id); err != nil {
		return 0, "", false, fmt.Errorf("read leader lock %s: %w", c.lock, err)
	}
	if !id.Valid {
		return 0, "", false, nil
	}
	var h sql.NullString
	// Without the PROCESS privilege only this user's sessions are listed: the host stays "".
	c.db.QueryRowContext(ctx, "SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = ?", id.Int64).Scan(&h)
	return id.Int64, h.String, true, nil
}
