package control

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/internal/defaults"
)

// DefaultRolesPoll is how often Roles re-reads cluster_roles: a promote is seen within 5s.
const DefaultRolesPoll = 2 * time.Second

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

// SetRole changes a cluster's role by hand (tests, an operator without `wye promote`), at a
// new promote epoch: the highest epoch of every row plus one, so indexers fence the change as
// they fence a promote (docs/architecture.md, invariant 8).
func (s *Store) SetRole(ctx context.Context, cluster, role string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE cluster_roles SET role = ?,
  epoch = (SELECT next FROM (SELECT COALESCE(MAX(epoch), 0) + 1 AS next FROM cluster_roles) AS e) WHERE cluster = ?`, role, cluster)
	if err != nil {
		return fmt.Errorf("set role of %s: %w", cluster, err)
	}
	return nil
}

// master reads the master among the named clusters (the master row of the highest epoch) and
// the promote epoch: the highest epoch of those clusters' rows, which every promote raises.
func (s *Store) master(ctx context.Context, clusters []string) (string, int64, error) {
	in := `cluster IN (?` + strings.Repeat(",?", len(clusters)-1) + `)`
	q := `SELECT cluster, (SELECT MAX(epoch) FROM cluster_roles WHERE ` + in + `) FROM cluster_roles
WHERE role = 'master' AND ` + in + ` ORDER BY epoch DESC, updated_at DESC LIMIT 1`
	args := append(anys(clusters), anys(clusters)...)
	var m string
	var epoch int64
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&m, &epoch); err != nil {
		return "", 0, fmt.Errorf("read master: %w", err)
	}
	return m, epoch, nil
}

// Master returns the master among clusters as cluster_roles records it; ok is false when it
// records none of them (roles are seeded by the indexer, and a promote changes them).
func (s *Store) Master(ctx context.Context, clusters []string) (string, bool, error) {
	if len(clusters) == 0 {
		return "", false, nil
	}
	m, _, err := s.master(ctx, clusters)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return m, true, nil
}

// Roles is the current master, polled from cluster_roles. It implements indexer.Roles.
type Roles struct {
	store    *Store
	clusters []string
	every    time.Duration
	log      *slog.Logger

	mu     sync.RWMutex
	master string
	epoch  int64
}

var _ indexer.Roles = (*Roles)(nil)

// NewRoles reads the master once (so a Roles is never without one) and returns a Roles that
// Run keeps current. every is the poll interval (DefaultRolesPoll).
func NewRoles(ctx context.Context, s *Store, clusters []string, every time.Duration, log *slog.Logger) (*Roles, error) {
	every = defaults.Positive(every, DefaultRolesPoll)
	log = cmp.Or(log, slog.Default())
	m, epoch, err := s.master(ctx, clusters)
	if err != nil {
		return nil, err
	}
	return &Roles{store: s, clusters: clusters, every: every, log: log, master: m, epoch: epoch}, nil
}

// Master returns the last master read and the promote epoch it was read at.
func (r *Roles) Master() (string, int64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.master, r.epoch
}

// Run polls until ctx is done. A failed read keeps the last known master.
func (r *Roles) Run(ctx context.Context) error {
	poll(ctx, r.every, func(ctx context.Context) error {
		m, epoch, err := r.store.master(ctx, r.clusters)
		if err != nil {
			return err
		}
		r.mu.Lock()
		old, oldEpoch := r.master, r.epoch
		r.master, r.epoch = m, epoch
		r.mu.Unlock()
		if old != m || oldEpoch != epoch {
			r.log.Info("cluster roles changed", "from", old, "to", m, "epoch", epoch)
		}
		return nil
	}, func(err error, failures int) {
		m, epoch := r.Master()
		r.log.Warn("poll cluster roles; keeping the last master", "master", m, "epoch", epoch, "failures", failures, "err", err)
	})
	return nil
}

// poll calls read every interval until ctx is done. A failed read is reported to failed with
// the count of consecutive failures (not when ctx ended it); the caller keeps its last value.
func poll(ctx context.Context, every time.Duration, read func(context.Context) error, failed func(err error, failures int)) {
	t := time.NewTicker(every)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := read(ctx); err != nil {
			failures++
			if ctx.Err() == nil {
				failed(err, failures)
			}
			continue
		}
		failures = 0
	}
}
