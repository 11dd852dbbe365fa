package control

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wyehq/wye/internal/reason"
)

// Outcomes of a promote, as promote_journal records them.
const (
	OutcomePromoted   = "promoted"
	OutcomeRefused    = "refused"
	OutcomeRolledBack = "rolled_back"
)

// Promotion is one promote asked of the control schema (docs/architecture.md, "Promote").
type Promotion struct {
	Clusters []string // the configured clusters: the roles considered are theirs
	From     string   // the master the preflight checks saw
	To       string   // the cluster to make master
	// MinGap: a promote within MinGap of the last one needs Force (no flapping).
	MinGap  time.Duration
	Force   bool
	Who     string          // OS user@host
	Started time.Time       // when the command started
	Checks  json.RawMessage // the preflight checks and their results
}

// Promoted is a committed promote: its journal row and the epoch it set.
type Promoted struct {
	Journal int64
	Epoch   int64
}

// RaceError is a promote whose checks saw another master than the one the control schema
// holds now: another promote (or a hand edit) won in between.
type RaceError struct {
	Expected, Actual string
	Journal          int64  // the journal row of the promote that made Actual master; 0: none
	Who              string // who ran it
}

func (e *RaceError) Error() string {
	msg := fmt.Sprintf("the master is now %s, not %s as checked", e.Actual, e.Expected)
	if e.Journal > 0 {
		msg += fmt.Sprintf(": another promote won (journal #%d by %s)", e.Journal, e.Who)
	}
	return msg
}

// FlapError is a promote within the anti-flap period of the last one, without force.
type FlapError struct {
	Journal int64         // the last promote
	To, Who string        // whom it promoted, and who ran it
	Ago     time.Duration // how long ago it finished
	MinGap  time.Duration
}

func (e *FlapError) Error() string {
	return fmt.Sprintf("the last promote (journal #%d: %s by %s) was %v ago, within promote.min_interval %v: use --force to promote again",
		e.Journal, e.To, e.Who, e.Ago.Round(time.Second), e.MinGap)
}

// term is the roles of some clusters, read under FOR UPDATE inside a promote's transaction.
type term struct {
	roles  map[string]string
	master string
	epoch  int64 // the promote epoch: the highest epoch of the clusters
}

// lockRoles reads the clusters' roles and locks their rows until the transaction ends, so two
// promotes are serialized: the second reads what the first committed.
func lockRoles(ctx context.Context, tx *sql.Tx, clusters []string) (term, error) {
	rows, err := tx.QueryContext(ctx, `SELECT cluster, role, epoch FROM cluster_roles WHERE cluster IN (?`+
		strings.Repeat(",?", len(clusters)-1)+`) ORDER BY epoch DESC, updated_at DESC FOR UPDATE`, anys(clusters)...)
	if err != nil {
		return term{}, fmt.Errorf("lock cluster roles: %w", err)
	}
	defer rows.Close()
	t := term{roles: map[string]string{}}
	for rows.Next() {
		var c, role string
		var epoch int64
		if err := rows.Scan(&c, &role, &epoch); err != nil {
			return term{}, fmt.Errorf("lock cluster roles: %w", err)
		}
		t.roles[c] = role
		t.epoch = max(t.epoch, epoch)
		if role == "master" && t.master == "" {
			t.master = c // the highest epoch first: the master Roles reads too
		}
	}
	if err := rows.Err(); err != nil {
		return term{}, fmt.Errorf("lock cluster roles: %w", err)
	}
	return t, nil
}

// switchTo makes to the only master among the clusters at epoch, every other master a slave.
func switchTo(ctx context.Context, tx *sql.Tx, clusters []string, to string, epoch int64) error {
	args := append([]any{to, epoch, to}, anys(clusters)...)
	_, err := tx.ExecContext(ctx, `UPDATE cluster_roles SET role = IF(cluster = ?, 'master', 'slave'), epoch = ?
WHERE (cluster = ? OR role = 'master') AND cluster IN (?`+strings.Repeat(",?", len(clusters)-1)+`)`, args...)
	if err != nil {
		return fmt.Errorf("switch cluster roles to %s: %w", to, err)
	}
	return nil
}

// Promote makes p.To the master in one transaction: the clusters' roles locked, the master
// checked to still be p.From (else a *RaceError naming the winner), the anti-flap period
// checked (else a *FlapError), the roles switched (the old master becomes a slave), the
// promote epoch bumped for both, and the journal row written. Indexers see the new master and
// epoch at their next poll of cluster_roles (Roles); work decided under the old epoch is
// written again to the new master (docs/architecture.md, invariant 8).
func (s *Store) Promote(ctx context.Context, p Promotion) (Promoted, error) {
	if len(p.Clusters) == 0 {
		return Promoted{}, errors.New("promote: no clusters")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Promoted{}, fmt.Errorf("promote: %w", err)
	}
	defer tx.Rollback()
	t, err := lockRoles(ctx, tx, p.Clusters)
	if err != nil {
		return Promoted{}, err
	}
	if t.master != p.From {
		race := &RaceError{Expected: p.From, Actual: t.master}
		// The winner's journal row, if a promote made it master (a plain read: the row is
		// committed, since its transaction held the locks just taken).
		tx.QueryRowContext(ctx, `SELECT id, who FROM promote_journal WHERE outcome = ? AND to_cluster = ? ORDER BY id DESC LIMIT 1`,
			OutcomePromoted, t.master).Scan(&race.Journal, &race.Who)
		return Promoted{}, race
	}
	if _, ok := t.roles[p.To]; !ok {
		return Promoted{}, fmt.Errorf("promote %s: it has no row in cluster_roles (an indexer seeds the configured roles at start)", p.To)
	}
	if p.To == t.master {
		return Promoted{}, fmt.Errorf("promote %s: it is already the master", p.To)
	}
	if !p.Force && p.MinGap > 0 {
		// A plain read after the locks: its snapshot starts now, so it sees every promote
		// committed before. A rolled-back promote changed nothing in the end: it does not count.
		var id, agoMicros int64
		var last, who string
		err := tx.QueryRowContext(ctx, `SELECT id, to_cluster, who, TIMESTAMPDIFF(MICROSECOND, finished_at, CURRENT_TIMESTAMP(6)) FROM promote_journal
WHERE outcome = ? AND to_cluster IN (?`+strings.Repeat(",?", len(p.Clusters)-1)+`) ORDER BY id DESC LIMIT 1`,
			append([]any{OutcomePromoted}, anys(p.Clusters)...)...).Scan(&id, &last, &who, &agoMicros)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return Promoted{}, fmt.Errorf("promote: read the last promote: %w", err)
		case time.Duration(agoMicros)*time.Microsecond < p.MinGap:
			return Promoted{}, &FlapError{Journal: id, To: last, Who: who, Ago: time.Duration(agoMicros) * time.Microsecond, MinGap: p.MinGap}
		}
	}
	epoch := t.epoch + 1
	if err := switchTo(ctx, tx, p.Clusters, p.To, epoch); err != nil {
		return Promoted{}, err
	}
	id, err := insertJournal(ctx, tx, p, epoch, OutcomePromoted, "")
	if err != nil {
		return Promoted{}, err
	}
	if err := tx.Commit(); err != nil {
		return Promoted{}, fmt.Errorf("promote: commit: %w", err)
	}
	return Promoted{Journal: id, Epoch: epoch}, nil
}

// RollBack switches the roles of a committed promote back (its reader switch failed): p.From
// master again at a new epoch (epochs never go back), p.To a slave, and the journal row marked
// rolled_back with why. It refuses when the roles changed since the promote.
func (s *Store) RollBack(ctx context.Context, p Promotion, done Promoted, why string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("roll back promote: %w", err)
	}
	defer tx.Rollback()
	t, err := lockRoles(ctx, tx, p.Clusters)
	if err != nil {
		return err
	}
	if t.master != p.To || t.epoch != done.Epoch {
		return fmt.Errorf("roll back promote: the roles changed since (master %s at epoch %d, not %s at %d): not switched back",
			t.master, t.epoch, p.To, done.Epoch)
	}
	if err := switchTo(ctx, tx, p.Clusters, p.From, t.epoch+1); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE promote_journal SET outcome = ?, message = ?, finished_at = CURRENT_TIMESTAMP(6) WHERE id = ?`,
		OutcomeRolledBack, reason.Cut("", why), done.Journal); err != nil {
		return fmt.Errorf("roll back promote: journal: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("roll back promote: commit: %w", err)
	}
	return nil
}

// Refused journals a promote that its checks (or the transaction) refused: nothing changed.
func (s *Store) Refused(ctx context.Context, p Promotion, why string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("journal refused promote: %w", err)
	}
	defer tx.Rollback()
	if _, err := insertJournal(ctx, tx, p, 0, OutcomeRefused, why); err != nil {
		return err
	}
	return tx.Commit()
}

func insertJournal(ctx context.Context, tx *sql.Tx, p Promotion, epoch int64, outcome, why string) (int64, error) {
	checks := string(p.Checks)
	if checks == "" {
		checks = "[]"
	}
	started := p.Started
	if started.IsZero() {
		started = time.Now()
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO promote_journal (who, started_at, from_cluster, to_cluster, epoch, checks, outcome, message)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, p.Who, started.UTC(), p.From, p.To, epoch, checks, outcome, reason.Cut("", why))
	if err != nil {
		return 0, fmt.Errorf("journal promote: %w", err)
	}
	return res.LastInsertId()
}

// JournalEntry is one row of promote_journal.
type JournalEntry struct {
	ID               int64
	Who              string
	Started          time.Time
	Finished         time.Time
	From, To         string
	Epoch            int64
	Checks           string
	Outcome, Message string
}

// Journal returns the last n promote_journal rows, newest first.
func (s *Store) Journal(ctx context.Context, n int) ([]JournalEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, who, started_at, finished_at, from_cluster, to_cluster, epoch, checks, outcome, message
FROM promote_journal ORDER BY id DESC LIMIT ?`, n)
	if err != nil {
		return nil, fmt.Errorf("read promote journal: %w", err)
	}
	defer rows.Close()
	var out []JournalEntry
	for rows.Next() {
		var e JournalEntry
		if err := rows.Scan(&e.ID, &e.Who, &e.Started, &e.Finished, &e.From, &e.To, &e.Epoch, &e.Checks, &e.Outcome, &e.Message); err != nil {
			return nil, fmt.Errorf("read promote journal: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// PendingRepairs counts a cluster's repair_ledger entries not repaired yet: a promote's
// preflight wants none (the target would serve what it missed).
func (s *Store) PendingRepairs(ctx context.Context, cluster string) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM repair_ledger WHERE cluster = ? AND repaired_at IS NULL`, cluster).Scan(&n); err != nil {
		return 0, fmt.Errorf("count repair ledger of %s: %w", cluster, err)
	}
	return n, nil
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// AutoLock is the automatic failover's leader lock, GET_LOCK('wye.<control database>.promote.auto')
// on a connection of its own: one watchdog per control schema acts, standbys wait.
type AutoLock struct {
	conn *sql.Conn
	name string
}

// WaitAutoLock blocks until this process holds the automatic failover's lock or ctx is done.
func (s *Store) WaitAutoLock(ctx context.Context) (*AutoLock, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("automatic failover lock: %w", err)
	}
	name := lockName(s.schema, "promote.auto")
	for {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 5)", name).Scan(&got); err != nil {
			conn.Close()
			return nil, fmt.Errorf("automatic failover lock %s: %w", name, err)
		}
		if got.Int64 == 1 {
			return &AutoLock{conn: conn, name: name}, nil
		}
		if err := ctx.Err(); err != nil {
			conn.Close()
			return nil, err
		}
	}
}

// Held returns an error unless the lock is still this connection's.
func (l *AutoLock) Held(ctx context.Context) error {
	var mine sql.NullBool
	if err := l.conn.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", l.name).Scan(&mine); err != nil {
		return fmt.Errorf("check lock %s: %w", l.name, err)
	}
	if !mine.Valid || !mine.Bool {
		return fmt.Errorf("lock %s is no longer held", l.name)
	}
	return nil
}

// Release gives the lock up and closes its connection.
func (l *AutoLock) Release() {
	l.conn.ExecContext(context.Background(), "DO RELEASE_LOCK(?)", l.name)
	l.conn.Close()
}
