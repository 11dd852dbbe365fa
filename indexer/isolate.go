package indexer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wyehq/wye/internal/reason"
)

// isolate processes a batch whose reads the source refused for good (a permanent
// *SourceError: a column dropped, a grant missing, values it cannot compare) one entity at a
// time, so that the error parks only the changes it concerns and the rest of the batch is
// written (docs/architecture.md, "Error classes"). The changes and retries of an entity whose
// reads still fail are parked with the reason; when the error depends on the values read
// (SourceError.ValueDependent), they are halved until the ones the source refuses are found.
// Any other error decides nothing and is returned: the whole batch is kept.
func (p *Pipeline) isolate(ctx context.Context, w work, msgs []Message) (Outcome, error) {
	is := isolation{p: p, msgs: msgs, parked: map[*Change]bool{}, raw: map[int][]json.RawMessage{}}
	for _, e := range p.model.entities {
		if err := is.narrow(ctx, p.model.workOf(e, w), e); err != nil {
			return Outcome{}, err
		}
	}
	return is.out, nil
}

// isolation is the state of one isolate call.
type isolation struct {
	p      *Pipeline
	msgs   []Message
	out    Outcome
	parked map[*Change]bool          // a change read by two refused entities is parked once
	raw    map[int][]json.RawMessage // message index -> its changes as they came
}

// narrow runs u, the work of entity e, and parks it if the source refuses its reads.
func (is *isolation) narrow(ctx context.Context, u work, e *Entity) error {
	if u.size() == 0 {
		return nil
	}
	o, err := is.p.run(ctx, u, e, nil) // the batch holds its turn (ProcessInTurn)
	if err == nil {
		is.out.add(o)
		return nil
	}
	se, ok := errors.AsType[*SourceError](err)
	if !ok || !se.Permanent || !errors.As(err, new(readError)) {
		return err
	}
	if se.ValueDependent && u.size() > 1 {
		a, b := u.halves()
		if err := is.narrow(ctx, a, e); err != nil {
			return err
		}
		return is.narrow(ctx, b, e)
	}
	is.park(u, e, se)
	return nil
}

// park parks the changes of u (one message, as they came, not yet parked for another entity)
// and each of its retries, with the source's reason.
func (is *isolation) park(u work, e *Entity, se *SourceError) {
	now := is.p.opts.Now()
	// The server's words (they name the column or table), without the layers of the pipeline.
	why := reason.Cut("", fmt.Sprintf("%s: %v", e.Name, se.Err))
	var raws [][]byte
	for _, c := range u.changes {
		if !is.parked[c] {
			is.parked[c] = true
			raws = append(raws, is.rawChange(c))
		}
	}
	if len(raws) > 0 {
		body := append(append([]byte(`{"schema":2,"changes":[`), bytes.Join(raws, []byte(","))...), "]}"...)
		is.out.Parked = append(is.out.Parked, Outgoing{Body: body, Attempt: 1, ErrType: ErrTypeSource, Reason: why, FirstSeen: now})
	}
	for _, r := range u.retries {
		first := r.first
		if first.IsZero() {
			first = now
		}
		is.out.Parked = append(is.out.Parked, Outgoing{Body: EncodeRetry(r.Retry), Attempt: r.attempt,
			ErrType: ErrTypeSource, Reason: why, FirstSeen: first})
	}
}

// rawChange is c as its message carried it, every field kept (pk, position, gtid): a replay
// goes through the normal path with the change cdc published.
func (is *isolation) rawChange(c *Change) json.RawMessage {
	changes, ok := is.raw[c.at.msg]
	if !ok {
		body, _ := is.msgs[c.at.msg].plain() // decoded once already: cannot fail now
		if c.at.idx < 0 {
			return body // schema 1: the message is the change; its "schema" field is ignored inside a batch
		}
		var env envelope
		_ = json.Unmarshal(body, &env) // decoded once already
		changes = env.Changes
		is.raw[c.at.msg] = changes
	}
	return changes[c.at.idx]
}

// workOf is the part of w that concerns entity e: the changes of tables it reads, its retries.
func (m *Model) workOf(e *Entity, w work) work {
	var out work
	for _, c := range w.changes {
		if m.reads(e, c.Table) {
			out.changes = append(out.changes, c)
		}
	}
	for _, r := range w.retries {
		if r.Entity == e.Name {
			out.retries = append(out.retries, r)
		}
	}
	return out
}

// reads reports whether entity e reads table (as a node or a join table).
func (m *Model) reads(e *Entity, table string) bool {
	for _, n := range m.byTable[table] {
		if n.entity == e {
			return true
		}
	}
	for _, n := range m.byJoin[table] {
		if n.entity == e {
			return true
		}
	}
	return false
}

// halves splits w in two of about the same size.
func (w work) halves() (work, work) {
	n := w.size() / 2
	if n <= len(w.changes) {
		return work{changes: w.changes[:n]}, work{changes: w.changes[n:], retries: w.retries}
	}
	k := n - len(w.changes)
	return work{changes: w.changes, retries: w.retries[:k]}, work{retries: w.retries[k:]}
}
