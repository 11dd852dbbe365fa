package indexer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// fakeDB is an in-memory source: tables of rows, every Rows call counted.
type fakeDB struct {
	tables  map[string][]Row
	queries []string // "table.where" per call
	// where evaluates, per Filter.Where the entities use, the predicate as MySQL would.
	where  map[string]func(Row) bool
	fail   error
	refuse func(table string, values []Value) error // non-nil error: that read fails
}

var _ Source = (*fakeDB)(nil)

func (f *fakeDB) View(context.Context) (View, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	return f, nil
}
func (f *fakeDB) Close() error { return nil }

func (f *fakeDB) Rows(_ context.Context, table string, cols []string, where string, values []Value, filter Filter) ([]Row, error) {
	f.queries = append(f.queries, table+"."+where)
	holds := func(Row) bool { return true }
	if filter.Where != "" {
		if holds = f.where[filter.Where]; holds == nil {
			return nil, fmt.Errorf("fake: unknown predicate %q", filter.Where)
		}
	}
	if f.refuse != nil {
		if err := f.refuse(table, values); err != nil {
			return nil, err
		}
	}
	var out []Row
	for _, r := range f.tables[table] {
		// As MySQL compares: a string holding an integer equals the integer.
		if slices.ContainsFunc(values, func(v Value) bool { return v.match() == r.Get(where).match() }) && holds(r) {
			out = append(out, project(r, cols))
		}
	}
	return out, nil
}

func (f *fakeDB) Each(ctx context.Context, table string, cols []string, where string, values []Value, filter Filter, fn func(Row)) error {
	return each(fn)(f.Rows(ctx, table, cols, where, values, filter))
}

// each is View.Each of a fake from its Rows: fn for every row read, then Rows' error.
func each(fn func(Row)) func([]Row, error) error {
	return func(rows []Row, err error) error {
		for _, r := range rows {
			fn(r)
		}
		return err
	}
}

func (f *fakeDB) Scan(_ context.Context, table string, cols []string, key string, after Value, limit int) ([]Row, error) {
	f.queries = append(f.queries, table+"."+key+">")
	rows := slices.Clone(f.tables[table])
	slices.SortFunc(rows, func(a, b Row) int { return compareValues(a.Get(key), b.Get(key)) })
	var out []Row
	for _, r := range rows {
		if len(out) == limit {
			break
		}
		if after.IsNull() || compareValues(r.Get(key), after) > 0 {
			out = append(out, project(r, cols))
		}
	}
	return out, nil
}

func project(r Row, cols []string) Row {
	if cols == nil {
		return r
	}
	kv := make([]string, 0, 2*len(cols))
	for _, c := range cols {
		kv = append(kv, c, string(r.Get(c)))
	}
	return RowOf(kv...)
}

// set replaces the row of table whose column id equals r[id].
func (f *fakeDB) set(table, id string, r Row) {
	rows := f.tables[table]
	for i := range rows {
		if rows[i].Get(id) == r.Get(id) {
			rows[i] = r
			return
		}
	}
	f.tables[table] = append(rows, r)
}

func (f *fakeDB) del(table, id string, v Value) {
	f.tables[table] = slices.DeleteFunc(f.tables[table], func(r Row) bool { return r.Get(id) == v })
}

// r builds a row from alternating column names and Go values.
func r(kv ...any) Row {
	pairs := make([]string, len(kv))
	for i := 0; i < len(kv); i += 2 {
		b, _ := json.Marshal(kv[i+1])
		pairs[i], pairs[i+1] = kv[i].(string), string(b)
	}
	return RowOf(pairs...)
}

// catalogEntity is the sample catalog: program -> channel -> network (two levels of
// many-to-one), program -> episodes -> credits (two levels of one-to-many), program <-> tags.
func catalogEntity() EntityDef {
	return EntityDef{
		Name: "program", Index: "programs", VersionField: "wye_version",
		Table: "cat.programs", Key: "id", Columns: cols("id", "title", "channel_id"),
		Relations: []RelationDef{
			{Name: "channel", Table: "cat.channels", Key: []string{"id"}, From: "channel_id", Columns: cols("id", "name"),
				Relations: []RelationDef{{Name: "network", Table: "cat.networks", Key: []string{"id"}, From: "network_id"}}},
			{Name: "episodes", Table: "cat.episodes", Key: []string{"id"}, ParentKey: "program_id", Many: true,
				Columns:   append(cols("id"), Column{Name: "title", Field: "name"}),
				Relations: []RelationDef{{Name: "credits", Table: "cat.credits", Key: []string{"id"}, ParentKey: "episode_id", Many: true}}},
			{Name: "tags", Table: "cat.tags", Key: []string{"id"}, Many: true,
				Through: Through{Table: "cat.program_tags", ParentKey: "program_id", Key: "tag_id"}},
		},
	}
}

// cols lists columns kept under their own names.
func cols(names ...string) []Column {
	out := make([]Column, len(names))
	for i, n := range names {
		out[i] = Column{Name: n, Field: n}
	}
	return out
}

func catalogDB() *fakeDB {
	return &fakeDB{tables: map[string][]Row{
		"cat.networks": {r("id", 1, "name", "ARD")},
		"cat.channels": {r("id", 10, "name", "One", "network_id", 1), r("id", 11, "name", "Two", "network_id", 1), r("id", 12, "name", "Solo", "network_id", nil)},
		"cat.programs": {r("id", 100, "title", "News", "channel_id", 10), r("id", 101, "title", "Sport", "channel_id", 11), r("id", 102, "title", "Film", "channel_id", 12)},
		"cat.episodes": {r("id", 1000, "title", "e1", "program_id", 100), r("id", 1001, "title", "e2", "program_id", 100), r("id", 1002, "title", "e3", "program_id", 101)},
		"cat.credits":  {r("id", 5, "episode_id", 1000, "person", "Ann")},
		"cat.tags":     {r("id", 7, "name", "live"), r("id", 8, "name", "hd")},
		"cat.program_tags": {r("program_id", 100, "tag_id", 7), r("program_id", 101, "tag_id", 7),
			r("program_id", 101, "tag_id", 8)},
	}}
}

func catalogModel(t testing.TB) *Model {
	t.Helper()
	m, err := NewModel([]EntityDef{catalogEntity()})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// event is a change message body of schema 1 (one change at the top level), which the
// indexer still reads.
func event(table, op string, version int64, before, after Row) []byte {
	var m map[string]any
	json.Unmarshal(change(table, op, version, before, after), &m)
	m["schema"] = 1
	b, _ := json.Marshal(m)
	return b
}

// change is one element of a schema 2 message's "changes".
func change(table, op string, version int64, before, after Row) []byte {
	m := map[string]any{"table": table, "op": op, "version": version, "commit_ts": "2026-01-02T03:04:05Z"}
	if !before.IsNil() {
		m["before"] = before
	}
	if !after.IsNil() {
		m["after"] = after
	}
	b, _ := json.Marshal(m)
	return b
}

// batch is a schema 2 message body of the given changes.
func batch(changes ...[]byte) []byte {
	return append(append([]byte(`{"schema":2,"changes":[`), bytes.Join(changes, []byte(","))...), "]}"...)
}

// fakeWriter records the batches and answers with the results it is given per doc id.
type fakeWriter struct {
	batches [][]Doc
	targets []string
	answer  func(d Doc) Result
}

var _ Writer = (*fakeWriter)(nil)

func (w *fakeWriter) Write(_ context.Context, docs []Doc, cluster string) (string, []Result, error) {
	w.batches = append(w.batches, docs)
	w.targets = append(w.targets, cluster)
	out := make([]Result, len(docs))
	for i, d := range docs {
		if w.answer != nil {
			out[i] = w.answer(d)
		}
	}
	decider := cluster
	if decider == "" {
		decider = "es7"
	}
	return decider, out, nil
}

// written returns "id@version" or "id@version:delete" for every doc of every batch.
func (w *fakeWriter) written() []string {
	var out []string
	for _, b := range w.batches {
		for _, d := range b {
			s := fmt.Sprintf("%s@%d", d.ID, d.Version)
			if d.Source == nil {
				s += ":delete"
			}
			out = append(out, s)
		}
	}
	return out
}

func (w *fakeWriter) source(id string) string {
	for _, b := range w.batches {
		for _, d := range b {
			if d.ID == id {
				return string(d.Source)
			}
		}
	}
	return ""
}

func msgs(bodies ...[]byte) []Message {
	out := make([]Message, len(bodies))
	for i, b := range bodies {
		out[i] = Message{Body: b}
	}
	return out
}

func sameStrings(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %s\n want %s", what, strings.Join(got, " "), strings.Join(want, " "))
	}
}
