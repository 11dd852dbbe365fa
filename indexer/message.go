package indexer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SchemaVersion is the message schema this indexer reads: the "schema" field of every change
// event (docs/cdc.md, "Message schema") and of the retry messages the indexer writes itself.
const SchemaVersion = 1

// Change is a row change event as the indexer reads it. Only the documented message fields
// are decoded; cdc's internal types are not used.
type Change struct {
	Table    string // "db.table"
	Op       string // insert | update | delete
	Before   Row    // nil for inserts
	After    Row    // nil for deletes
	Version  int64
	CommitTS time.Time
}

// Retry names one entity to write again to one cluster. The indexer publishes it (to a
// retry tier) when the master could not take the entity's write; reading it back skips
// resolution and re-reads the entity fresh.
type Retry struct {
	Entity  string `json:"entity"`
	Key     Value  `json:"key"` // root key value
	Version int64  `json:"version"`
}

// Message is one delivery as the pipeline sees it.
type Message struct {
	Body      []byte
	Attempt   int       // which attempt this delivery's write is (header x-wye-attempt); 0 or 1 for a change event
	Target    string    // cluster a retry message is for; "" for a change event (all clusters)
	FirstSeen time.Time // when the first attempt failed; zero for a change event
}

// PoisonError is a message that can never be processed, whatever is retried: not JSON, an
// unknown schema version, an unknown table or entity, a missing field. It is parked, never
// requeued.
type PoisonError struct{ Reason string }

func (e *PoisonError) Error() string { return "poison message: " + e.Reason }

func poison(format string, args ...any) error {
	return &PoisonError{Reason: fmt.Sprintf(format, args...)}
}

// wire is the union of a change event and a retry message.
type wire struct {
	Schema   *int                       `json:"schema"`
	Table    string                     `json:"table"`
	Op       string                     `json:"op"`
	Before   map[string]json.RawMessage `json:"before"`
	After    map[string]json.RawMessage `json:"after"`
	Version  int64                      `json:"version"`
	CommitTS string                     `json:"commit_ts"`
	Entity   string                     `json:"entity"`
	Key      json.RawMessage            `json:"key"`
}

// decode is the one classification at the message boundary: it returns a Change or a
// Retry, or a *PoisonError saying why the message cannot be used.
func (m *Model) decode(body []byte) (*Change, *Retry, error) {
	var w wire
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&w); err != nil {
		return nil, nil, poison("not a JSON object: %v", err)
	}
	switch {
	case w.Schema == nil:
		return nil, nil, poison("no schema field")
	case *w.Schema != SchemaVersion:
		return nil, nil, poison("unknown schema version %d (this indexer reads %d)", *w.Schema, SchemaVersion)
	case w.Version <= 0:
		return nil, nil, poison("version %d: want a positive 63-bit integer", w.Version)
	}
	if w.Entity != "" {
		if m.entity(w.Entity) == nil {
			return nil, nil, poison("unknown entity %q", w.Entity)
		}
		if v := valueOf(w.Key); v.IsNull() {
			return nil, nil, poison("retry message for %s without a key", w.Entity)
		}
		return nil, &Retry{Entity: w.Entity, Key: valueOf(w.Key), Version: w.Version}, nil
	}
	if !m.follows(w.Table) {
		return nil, nil, poison("unknown table %q: no entity reads it", w.Table)
	}
	c := &Change{Table: w.Table, Op: w.Op, Version: w.Version, Before: row(w.Before), After: row(w.After)}
	switch {
	case w.Op == "insert" && c.After == nil, w.Op == "update" && (c.After == nil || c.Before == nil),
		w.Op == "delete" && c.Before == nil:
		return nil, nil, poison("%s of %s without its row image", w.Op, w.Table)
	case w.Op != "insert" && w.Op != "update" && w.Op != "delete":
		return nil, nil, poison("unknown op %q", w.Op)
	}
	if w.CommitTS != "" {
		ts, err := time.Parse(time.RFC3339, w.CommitTS)
		if err != nil {
			return nil, nil, poison("commit_ts %q: %v", w.CommitTS, errors.Unwrap(err))
		}
		c.CommitTS = ts
	}
	return c, nil, nil
}

func row(m map[string]json.RawMessage) Row {
	if m == nil {
		return nil
	}
	r := make(Row, len(m))
	for k, v := range m {
		r[k] = valueOf(v)
	}
	return r
}

// EncodeRetry is the body of a retry message for one entity.
func EncodeRetry(r Retry) []byte {
	b, _ := json.Marshal(struct {
		Schema int `json:"schema"`
		Retry
	}{SchemaVersion, r}) // cannot fail: strings and numbers only
	return b
}
