package control

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNightlyRunning: another nightly resync holds the lock of this control schema.
var ErrNightlyRunning = errors.New("another wye nightly is running on this control schema")

// Nightly is the control schema's side of one nightly resync: its lock, its run row and the
// progress of every entity (docs/architecture.md, "Control schema").
//
// Invariant: two runs never overlap. The lock is GET_LOCK on one dedicated connection, and
// every write of the run goes through that same connection, so a run whose connection died
// (and with it the lock) cannot record progress any more: its next save fails and it stops.
type Nightly struct {
	conn *sql.Conn
	lock string
}

// NightlyRun is one row of nightly_run.
type NightlyRun struct {
	ID       int64
	Scope    string // what the run covers, as the nightly package encodes it
	Status   string // running, equal, failed, abandoned
	Resumes  int
	Started  time.Time
	Finished time.Time // zero while running
	Summary  string
}

// Run statuses.
const (
	RunRunning   = "running"
	RunEqual     = "equal"  // finished; every cluster equals MySQL
	RunFailed    = "failed" // finished; some cluster failed
	RunAbandoned = "abandoned"
)

// NightlyProgress is how far one step of one entity of a run got.
type NightlyProgress struct {
	Entity string
	Step   string // rows or orphans
	After  string // the last root key done (a message value); "" none yet
	Done   bool
	Chunks int
	Counts []byte // the counts so far, opaque to control
}

// Nightly takes the nightly lock of the control schema, without waiting: ErrNightlyRunning
// when another run holds it. Release frees it.
func (s *Store) Nightly(ctx context.Context) (*Nightly, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("nightly lock: %w", err)
	}
	lock := lockName(s.schema, "nightly")
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", lock).Scan(&got); err != nil {
		discard(conn)
		return nil, fmt.Errorf("nightly lock %s: %w", lock, err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, fmt.Errorf("%w (lock %s)", ErrNightlyRunning, lock)
	}
	return &Nightly{conn: conn, lock: lock}, nil
}

// Release frees the lock and its connection.
func (n *Nightly) Release() {
	n.conn.ExecContext(context.Background(), "DO RELEASE_LOCK(?)", n.lock)
	n.conn.Close()
}

const runCols = `id, scope, status, resumes, started_at, COALESCE(finished_at, started_at), summary`

func scanRun(row *sql.Row, r *NightlyRun) error {
	var finished time.Time
	if err := row.Scan(&r.ID, &r.Scope, &r.Status, &r.Resumes, &r.Started, &finished, &r.Summary); err != nil {
		return err
	}
	if r.Status != RunRunning {
		r.Finished = finished
	}
	return nil
}

// Unfinished returns the newest run that neither finished nor was abandoned: a run that was
// killed. ok is false when there is none.
func (n *Nightly) Unfinished(ctx context.Context) (r NightlyRun, ok bool, err error) {
	err = scanRun(n.conn.QueryRowContext(ctx, `SELECT `+runCols+` FROM nightly_run WHERE status = ? ORDER BY id DESC LIMIT 1`, RunRunning), &r)
	if errors.Is(err, sql.ErrNoRows) {
		return NightlyRun{}, false, nil
	}
	if err != nil {
		return NightlyRun{}, false, fmt.Errorf("read unfinished nightly run: %w", err)
	}
	return r, true, nil
}

// Start records a new run covering scope.
func (n *Nightly) Start(ctx context.Context, scope string) (NightlyRun, error) {
	res, err := n.conn.ExecContext(ctx, `INSERT INTO nightly_run (scope, summary) VALUES (?, '')`, scope)
	if err != nil {
		return NightlyRun{}, fmt.Errorf("start nightly run: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return NightlyRun{}, fmt.Errorf("start nightly run: %w", err)
	}
	return n.run(ctx, id)
}

// Resume counts one more resume of run id and returns it.
func (n *Nightly) Resume(ctx context.Context, id int64) (NightlyRun, error) {
	if _, err := n.conn.ExecContext(ctx, `UPDATE nightly_run SET resumes = resumes + 1 WHERE id = ? AND status = ?`, id, RunRunning); err != nil {
		return NightlyRun{}, fmt.Errorf("resume nightly run %d: %w", id, err)
	}
	return n.run(ctx, id)
}

// Abandon closes run id without a result: a new run with another scope replaces it.
func (n *Nightly) Abandon(ctx context.Context, id int64) error {
	return n.finish(ctx, id, RunAbandoned, "")
}

// Finish closes run id with its status (RunEqual or RunFailed) and summary.
func (n *Nightly) Finish(ctx context.Context, id int64, status, summary string) error {
	return n.finish(ctx, id, status, summary)
}

func (n *Nightly) finish(ctx context.Context, id int64, status, summary string) error {
	_, err := n.conn.ExecContext(ctx, `UPDATE nightly_run SET status = ?, summary = ?, finished_at = CURRENT_TIMESTAMP(6) WHERE id = ?`,
		status, summary, id)
	if err != nil {
		return fmt.Errorf("close nightly run %d: %w", id, err)
	}
	return nil
}

func (n *Nightly) run(ctx context.Context, id int64) (r NightlyRun, err error) {
	if err := scanRun(n.conn.QueryRowContext(ctx, `SELECT `+runCols+` FROM nightly_run WHERE id = ?`, id), &r); err != nil {
		return NightlyRun{}, fmt.Errorf("read nightly run %d: %w", id, err)
	}
	return r, nil
}

// Progress returns every step recorded for run id.
func (n *Nightly) Progress(ctx context.Context, id int64) ([]NightlyProgress, error) {
	rows, err := n.conn.QueryContext(ctx, `SELECT entity, step, after_key, done, chunks, counts FROM nightly_progress WHERE run_id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("read nightly progress: %w", err)
	}
	defer rows.Close()
	var out []NightlyProgress
	for rows.Next() {
		var p NightlyProgress
		if err := rows.Scan(&p.Entity, &p.Step, &p.After, &p.Done, &p.Chunks, &p.Counts); err != nil {
			return nil, fmt.Errorf("read nightly progress: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read nightly progress: %w", err)
	}
	return out, nil
}

// Save records the progress of one step of run id, after its chunk is written to every
// cluster: a resume starts after p.After.
func (n *Nightly) Save(ctx context.Context, id int64, p NightlyProgress) error {
	_, err := n.conn.ExecContext(ctx, `INSERT INTO nightly_progress (run_id, entity, step, after_key, done, chunks, counts)
VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE after_key = VALUES(after_key), done = VALUES(done),
  chunks = VALUES(chunks), counts = VALUES(counts)`, id, p.Entity, p.Step, p.After, p.Done, p.Chunks, p.Counts)
	if err != nil {
		return fmt.Errorf("save nightly progress of %s: %w", p.Entity, err)
	}
	return nil
}

// ResyncMark is one unresolved cdc_resync_needed row.
type ResyncMark struct {
	ID      int64
	Reader  string
	Table   string // "db.table", or "*" for the whole source
	Reason  string
	Detail  string
	Created time.Time
}

// ResyncMarks lists the marks cdc left that no run resolved yet.
func (n *Nightly) ResyncMarks(ctx context.Context) ([]ResyncMark, error) {
	rows, err := n.conn.QueryContext(ctx, `SELECT id, name, table_name, reason, detail, created_at FROM cdc_resync_needed
WHERE resolved_at IS NULL ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read resync marks: %w", err)
	}
	defer rows.Close()
	var out []ResyncMark
	for rows.Next() {
		var m ResyncMark
		if err := rows.Scan(&m.ID, &m.Reader, &m.Table, &m.Reason, &m.Detail, &m.Created); err != nil {
			return nil, fmt.Errorf("read resync marks: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Resolve marks the resync marks ids as resolved by a run.
func (n *Nightly) Resolve(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	q := `UPDATE cdc_resync_needed SET resolved_at = CURRENT_TIMESTAMP(6) WHERE id IN (?` + strings.Repeat(",?", len(ids)-1) + `)`
	if _, err := n.conn.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("resolve resync marks: %w", err)
	}
	return nil
}

// LastRun returns the newest finished run (equal or failed), for status and metrics.
func (s *Store) LastRun(ctx context.Context) (r NightlyRun, ok bool, err error) {
	err = scanRun(s.db.QueryRowContext(ctx, `SELECT `+runCols+` FROM nightly_run WHERE status IN (?, ?) ORDER BY id DESC LIMIT 1`,
		RunEqual, RunFailed), &r)
	if errors.Is(err, sql.ErrNoRows) {
		return NightlyRun{}, false, nil
	}
	if err != nil {
		return NightlyRun{}, false, fmt.Errorf("read last nightly run: %w", err)
	}
	return r, true, nil
}
