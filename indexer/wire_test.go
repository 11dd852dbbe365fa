package indexer

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// slowDecode is decode without its fast path: encoding/json, as before wire.go.
func slowDecode(m *Model, body []byte) (decoded, error) {
	var w wire
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&w); err != nil {
		return decoded{}, err
	}
	var out decoded
	if w.Schema == nil || *w.Schema != 2 || w.Entity != "" || len(w.Changes) == 0 {
		return m.decode(body) // not what the fast path reads
	}
	for i := range w.Changes {
		c, err := m.decodeChange(&w.Changes[i], nil, nil)
		if err != nil {
			return m.decode(body)
		}
		c.at.idx = i
		out.changes = append(out.changes, c)
	}
	return out, nil
}

// sameChange reports equal changes: the same fields, and images of the same columns and values
// (in any column order: encoding/json's images are in name order, the fast path's as sent).
func sameChange(a, b Change) bool {
	if !a.Before.Equal(b.Before) || !a.After.Equal(b.After) {
		return false
	}
	a.Before, a.After, b.Before, b.After = Row{}, Row{}, Row{}, Row{}
	return reflect.DeepEqual(a, b)
}

// FuzzFastDecodeAgreesWithEncodingJSON: whatever the fast path reads, it reads as
// encoding/json does (same changes, same rows, same values); what it cannot, it leaves.
func FuzzFastDecodeAgreesWithEncodingJSON(f *testing.F) {
	m := catalogModel(f)
	before := r("id", 100, "title", "News <é> \"q\"", "channel_id", 10)
	after := r("id", 100, "title", "News!", "channel_id", nil)
	f.Add(batch(change("cat.programs", "update", 7, before, after)))
	f.Add(batch(change("cat.programs", "insert", 8, Row{}, after), change("cat.episodes", "delete", 9, before, Row{})))
	f.Add([]byte(`{"schema":2,"changes":[{"table":"cat.programs","op":"update","pk":{"id":1},"before":{"id":1,"doc":{ "a" : [1, 2.5e3, null] }},"after":{"id":1,"title":"a\u00e9\n"},"version":5,"commit_ts":"2026-01-02T03:04:05Z","position":"f:1","gtid":"0-1-2","epoch":1}]}`))
	f.Add([]byte(`{"schema":2,"changes":[{"Table":"cat.programs","op":"insert","after":{"id":1},"version":5}]}`))
	f.Add([]byte(`{"schema":2,"changes":[{"table":"cat.programs","op":"insert","after":{"id":1},"version":5}]} trailing`))
	f.Add([]byte(`{"schema":2,"changes":[{"table":"cat.programs","op":"insert","after":{"id":-0,"x":01},"version":5}]}`))
	for _, name := range []string{"event_update", "event_insert", "event_delete"} {
		if b, err := os.ReadFile("../cdc/testdata/" + name + ".golden.json"); err == nil {
			f.Add(append(append([]byte(`{"schema":2,"changes":[`), b...), "]}"...))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w, ok := fastWire(body, false)
		if !ok {
			return
		}
		if err := json.Unmarshal(body, new(any)); err != nil {
			t.Fatalf("the fast path read what is not JSON: %q: %v", body, err)
		}
		var slow wire
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&slow); err != nil {
			t.Fatalf("encoding/json refuses what the fast path read: %q: %v", body, err)
		}
		if (w.Schema == nil) != (slow.Schema == nil) || w.Schema != nil && *w.Schema != *slow.Schema || len(w.Changes) != len(slow.Changes) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", body, w, slow)
		}
		all := append([]wire{w}, w.Changes...)
		sl := append([]wire{slow}, slow.Changes...)
		for i := range all {
			a, b := all[i], sl[i]
			ab, aa := a.images()
			bb, ba := b.images()
			if a.Table != b.Table || a.Op != b.Op || a.Version != b.Version || a.CommitTS != b.CommitTS ||
				!ab.Equal(bb) || !aa.Equal(ba) {
				t.Fatalf("%q: change %d differs:\nfast %+v %v %v\njson %+v %v %v", body, i, a, ab, aa, b, bb, ba)
			}
		}
		fd, ferr := m.decode(body)
		sd, serr := slowDecode(m, body)
		if (ferr == nil) != (serr == nil) || len(fd.changes) != len(sd.changes) {
			t.Fatalf("%q: decode %v %d changes, encoding/json %v %d", body, ferr, len(fd.changes), serr, len(sd.changes))
		}
		if ferr != nil {
			return
		}
		for i := range fd.changes {
			if !sameChange(*fd.changes[i], *sd.changes[i]) {
				t.Fatalf("%q: change %d: %+v vs %+v", body, i, *fd.changes[i], *sd.changes[i])
			}
		}
	})
}
