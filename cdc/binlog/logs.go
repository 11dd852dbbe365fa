package binlog

import (
	"context"
	"fmt"
)

// BinaryLogs lists the binlog files the source still holds, oldest first (SHOW BINARY LOGS:
// REPLICATION CLIENT on MySQL, BINLOG MONITOR on MariaDB). The first one is the next the
// server purges (docs/cdc.md, "Binlog retention").
func (s *Source) BinaryLogs(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("list binary logs: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("list binary logs: %w", err)
	}
	// Log_name first; File_size and, on MySQL 8, Encrypted follow.
	var files []string
	dest := make([]any, len(cols))
	for i := range dest {
		dest[i] = new(any)
	}
	for rows.Next() {
		var name string
		dest[0] = &name
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("list binary logs: %w", err)
		}
		files = append(files, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list binary logs: %w", err)
	}
	return files, nil
}
