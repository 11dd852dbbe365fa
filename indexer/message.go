package indexer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"

	"time"

	"github.com/wyehq/wye/internal/reason"
)

// SchemaVersion is the newest message schema this indexer reads: the "schema" field of every
// change message (docs/cdc.md, "Message schema") and of the retry messages the indexer writes
// itself. Schema 2 messages carry a batch, {"schema":2,"changes":[...]}; schema 1 messages
// (one change, the fields at the top level) are still read, so that an upgrade can drain a
// queue of them.
const SchemaVersion = 2

// Change is a row change event as the indexer reads it. Only the documented message fields
// are decoded; cdc's internal types are not used.
type Change struct {
	Table    string // "db.table"
	Op       string // insert | update | delete
	Before   Row    // nil (IsNil) for inserts
	After    Row    // nil (IsNil) for deletes
	Version  int64
	CommitTS time.Time

	at origin // where the change came from in its batch, to park it as it came
}

// origin places a change in its batch: the message (index in the batch) and the change
// within a schema 2 message (index in "changes"; -1 for a schema 1 message, the change itself).
type origin struct{ msg, idx int }

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
	Cluster   string    // cluster a retry message is for; "" for a change event (all clusters)
	FirstSeen time.Time // when the first attempt failed; zero for a change event
	Encoding  string    // AMQP content-encoding of Body: "" (plain JSON) or "zstd"
}

// zstdDecoder decompresses message bodies; DecodeAll is safe for concurrent use. A body may
// not inflate beyond 256 MiB.
var zstdDecoder = func() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(256<<20))
	if err != nil {
		panic(err) // only for invalid options
	}
	return d
}()

// plain returns the message's JSON body, decompressed; a body that cannot be is poison.
func (m Message) plain() ([]byte, error) {
	b, err := Decompress(m.Body, m.Encoding)
	if err != nil {
		return nil, poison("%v", err)
	}
	return b, nil
}

// Decompress returns body as plain JSON, given its AMQP content-encoding: "" (plain) or "zstd".
func Decompress(body []byte, encoding string) ([]byte, error) {
	switch encoding {
	case "":
		return body, nil
	case "zstd":
		b, err := zstdDecoder.DecodeAll(body, nil)
		if err != nil {
			return nil, fmt.Errorf("content-encoding zstd: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("unknown content-encoding %q (this indexer reads zstd or none)", encoding)
}

// PoisonError is a message that can never be processed, whatever is retried: not JSON, an
// unknown schema version, an unknown table or entity, a missing field. It is parked, never
// requeued.
type PoisonError struct{ Reason string }

func (e *PoisonError) Error() string { return "poison message: " + e.Reason }

func poison(format string, args ...any) error {
	return &PoisonError{Reason: reason.Cut("", fmt.Sprintf(format, args...))} // may quote the message
}

// wire is the union of a change event and a retry message.
type wire struct {
	Schema   *int                       `json:"schema"`
	Changes  []wire                     `json:"changes"`
	Table    string                     `json:"table"`
	Op       string                     `json:"op"`
	Before   map[string]json.RawMessage `json:"before"`
	After    map[string]json.RawMessage `json:"after"`
	Version  int64                      `json:"version"`
	CommitTS string                     `json:"commit_ts"`
	Entity   string                     `json:"entity"`
	Key      json.RawMessage            `json:"key"`

	// The fast path (wire.go) reads the images as Rows, and refuses a field seen twice.
	fast          bool
	before, after Row
	seen          struct{ table, op, commitTS, version, before, after bool }
}

// images are the change's row images.
func (w *wire) images() (before, after Row) {
	if w.fast {
		return w.before, w.after
	}
	return row(w.Before), row(w.After)
}

// decoded is what one message holds: a retry, or changes, some of which may be poison.
type decoded struct {
	retry   *Retry
	changes []*Change
	bad     []badChange
}

// badChange is one change of a batch that can never be processed: it is parked alone (as a
// schema 2 message of that one change), the rest of its message is processed.
type badChange struct {
	body   []byte
	reason string
}

// decode is the one classification at the message boundary: it returns the message's retry
// or changes, or a *PoisonError saying why the whole message cannot be used.
func (m *Model) decode(body []byte) (decoded, error) { return m.decodeBody(body, false) }

// decodeBody is decode; with view, the values read are views of body instead of a copy of it:
// only for a body that nothing writes again (one decompressed for this decode).
func (m *Model) decodeBody(body []byte, view bool) (decoded, error) {
	// One parse for the whole message; only a batch with a bad change is read again, change by
	// change, to park that change alone.
	w, fast := fastWire(body, view)
	if !fast {
		w = wire{}
	}
	if d := json.NewDecoder(bytes.NewReader(body)); !fast {
		if err := d.Decode(&w); err != nil {
			var env envelope
			if json.Unmarshal(body, &env) == nil && env.Schema != nil && *env.Schema == 2 && len(env.Changes) > 0 {
				return m.decodeEach(env.Changes), nil
			}
			return decoded{}, poison("not a JSON object: %v", err)
		}
	}
	switch {
	case w.Schema == nil:
		return decoded{}, poison("no schema field")
	case *w.Schema < 1 || *w.Schema > SchemaVersion:
		return decoded{}, poison("unknown schema version %d (this indexer reads 1 to %d)", *w.Schema, SchemaVersion)
	case w.Entity != "":
		r, err := m.decodeRetry(&w)
		return decoded{retry: r}, err
	case *w.Schema == 1:
		c, err := m.decodeChange(&w, nil, nil)
		if c != nil {
			c.at.idx = -1
		}
		return decoded{changes: []*Change{c}}, err
	case len(w.Changes) == 0:
		return decoded{}, poison("schema 2 message without changes")
	}
	out := decoded{changes: make([]*Change, 0, len(w.Changes))}
	var ts commitTimes
	all := make([]Change, len(w.Changes)) // one allocation for the changes of the message
	for i := range w.Changes {
		c, err := m.decodeChange(&w.Changes[i], &ts, &all[i])
		if err != nil {
			var env envelope
			if err := json.Unmarshal(body, &env); err != nil {
				return decoded{}, poison("not a JSON object: %v", err)
			}
			return m.decodeEach(env.Changes), nil
		}
		c.at.idx = i
		out.changes = append(out.changes, c)
	}
	return out, nil
}

// envelope is a schema 2 message with its changes left undecoded.
type envelope struct {
	Schema  *int              `json:"schema"`
	Changes []json.RawMessage `json:"changes"`
}

// decodeEach decodes a batch change by change: the good ones are returned, each bad one is
// returned as a message of its own.
func (m *Model) decodeEach(changes []json.RawMessage) decoded {
	out := decoded{changes: make([]*Change, 0, len(changes))}
	for i, raw := range changes {
		var cw wire
		err := json.Unmarshal(raw, &cw)
		if err != nil {
			err = poison("change is not a JSON object: %v", err)
		} else {
			var c *Change
			if c, err = m.decodeChange(&cw, nil, nil); err == nil {
				c.at.idx = i
				out.changes = append(out.changes, c)
				continue
			}
		}
		alone := append(append([]byte(`{"schema":2,"changes":[`), raw...), "]}"...)
		out.bad = append(out.bad, badChange{body: alone, reason: err.(*PoisonError).Reason})
	}
	return out
}

func (m *Model) decodeRetry(w *wire) (*Retry, error) {
	if w.Version <= 0 {
		return nil, poison("version %d: want a positive 63-bit integer", w.Version)
	}
	if m.entity(w.Entity) == nil {
		return nil, poison("unknown entity %q", w.Entity)
	}
	if v := valueOf(w.Key); v.IsNull() {
		return nil, poison("retry message for %s without a key", w.Entity)
	}
	// The key as rows are matched with it, as the refs of changes hold it: a retry written by
	// hand or by an older build with "100" for an INT key must find its document (the id is
	// the same for both forms).
	return &Retry{Entity: w.Entity, Key: valueOf(w.Key).match(), Version: w.Version}, nil
}

// commitTimes remembers the last commit_ts parsed: the changes of one message mostly share it.
type commitTimes struct {
	text string
	ts   time.Time
}

// decodeChange reads one change into c (nil: a new one).
func (m *Model) decodeChange(w *wire, last *commitTimes, c *Change) (*Change, error) {
	if w.Version <= 0 {
		return nil, poison("version %d: want a positive 63-bit integer", w.Version)
	}
	if !m.follows(w.Table) {
		return nil, poison("unknown table %q: no entity reads it", w.Table)
	}
	if c == nil {
		c = new(Change)
	}
	*c = Change{Table: w.Table, Op: w.Op, Version: w.Version}
	c.Before, c.After = w.images()
	switch {
	case w.Op == "insert" && c.After.IsNil(), w.Op == "update" && (c.After.IsNil() || c.Before.IsNil()),
		w.Op == "delete" && c.Before.IsNil():
		return nil, poison("%s of %s without its row image", w.Op, w.Table)
	case w.Op != "insert" && w.Op != "update" && w.Op != "delete":
		return nil, poison("unknown op %q", w.Op)
	}
	if w.CommitTS != "" {
		if last != nil && last.text == w.CommitTS {
			c.CommitTS = last.ts
			return c, nil
		}
		ts, err := time.Parse(time.RFC3339, w.CommitTS)
		if err != nil {
			return nil, poison("commit_ts %q: %v", w.CommitTS, errors.Unwrap(err))
		}
		c.CommitTS = ts
		if last != nil {
			*last = commitTimes{w.CommitTS, ts}
		}
	}
	return c, nil
}

// row is the image encoding/json read (nil: the nil Row), its columns in name order.
func row(m map[string]json.RawMessage) Row { return rowOf(m, valueOf) }

// EncodeRetry is the body of a retry message for one entity.
func EncodeRetry(r Retry) []byte {
	b, _ := json.Marshal(struct {
		Schema int `json:"schema"`
		Retry
	}{SchemaVersion, r}) // cannot fail: strings and numbers only
	return b
}
