package control

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/wyehq/wye/internal/reason"

	"github.com/wyehq/wye/indexer"
)

var _ indexer.Ledger = (*Store)(nil)

// ledgerRows bounds the rows of one ledger upsert.
const ledgerRows = 500

// Record implements indexer.Ledger: one upsert per ledgerRows, keeping the highest missed
// version. Rows go in (entity, id) order, so two workers recording overlapping ids lock them
// in the same order and cannot deadlock each other.
func (s *Store) Record(ctx context.Context, cluster string, missed []indexer.Missed) error {
	missed = slices.Clone(missed)
	slices.SortFunc(missed, func(a, b indexer.Missed) int {
		return cmp.Or(strings.Compare(a.Entity, b.Entity), strings.Compare(a.ID, b.ID))
	})
	for len(missed) > 0 {
		n := min(len(missed), ledgerRows)
		var q strings.Builder
		q.WriteString(`INSERT INTO repair_ledger (cluster, entity, doc_id, version, class, reason) VALUES `)
		args := make([]any, 0, n*6)
		for i, m := range missed[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?,?,?)")
			// Reasons are cut where they are made; Cut again holds the column's width whatever
			// the caller passed, on a character boundary.
			args = append(args, cluster, m.Entity, m.ID, m.Version, m.Class, reason.Cut("", m.Reason))
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
