package indexer

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestForeignKeyTypedAsTextFindsItsIntegerParent prevents a versioned delete of a document
// whose row exists: a child's VARCHAR foreign key ("100") names the parent's INT key (100),
// MySQL finds the row, and the indexer used to match the row back by the text `"100"`, find
// nothing and delete document 100. The same holds for a many-to-one link (programs.channel_id).
func TestForeignKeyTypedAsTextFindsItsIntegerParent(t *testing.T) {
	db, w := catalogDB(), &fakeWriter{}
	ep := r("id", 1003, "title", "e4", "program_id", "100")
	db.set("cat.episodes", "id", ep)
	prog := r("id", 103, "title", "Text link", "channel_id", "10")
	db.set("cat.programs", "id", prog)
	process(t, db, w, batch(change("cat.episodes", "insert", 42, Row{}, ep), change("cat.programs", "insert", 43, Row{}, prog)))
	sameStrings(t, "written", w.written(), "100@42", "103@43")
	if !strings.Contains(w.source("100"), `"name":"e4"`) || !strings.Contains(w.source("100"), `"name":"e1"`) {
		t.Errorf("program 100 lacks the episode linked by text: %s", w.source("100"))
	}
	if !strings.Contains(w.source("103"), `"channel":{"id":10,"name":"One"`) {
		t.Errorf("program 103 lacks its channel linked by text: %s", w.source("103"))
	}
}

// TestValueMatchesOnlyWhatMySQLHoldsEqual: a plain integer in a string matches the number;
// anything MySQL would compare otherwise (leading zeros, signs, decimals) stays itself.
func TestValueMatchesOnlyWhatMySQLHoldsEqual(t *testing.T) {
	for v, want := range map[Value]Value{
		`"100"`: `100`, `"-7"`: `-7`, `"0"`: `0`, `100`: `100`,
		`"0100"`: `"0100"`, `"-0"`: `"-0"`, `"1.5"`: `"1.5"`, `"+1"`: `"+1"`, `""`: `""`, `"a1"`: `"a1"`,
		`{"$base64":"AAE="}`: `{"$base64":"AAE="}`, NullValue: NullValue,
	} {
		if got := v.match(); got != want {
			t.Errorf("%s.match() = %s, want %s", v, got, want)
		}
		if v.match().ID() != v.ID() {
			t.Errorf("%s: document id %q changes under match (%q)", v, v.ID(), v.match().ID())
		}
	}
}

// TestBinaryValueBindsAsItsBytes prevents the lookup of a BINARY key by the text of its
// encoding ({"$base64":...}), which finds no row.
func TestBinaryValueBindsAsItsBytes(t *testing.T) {
	v := Value(`{"$base64":"ESIzRFVmd4iZqrvM3e7/AA=="}`)
	b, ok := v.Arg().([]byte)
	if !ok || len(b) != 16 || b[0] != 0x11 || b[15] != 0 {
		t.Fatalf("Arg() = %#v, want the 16 bytes", v.Arg())
	}
	for _, v := range []Value{`"{\"$base64\":\"AAE=\"}"`, `{"$base64":"not base64!"}`, `{"$base64":1}`, `42`} {
		if _, ok := v.Bytes(); ok {
			t.Errorf("%s read as binary", v)
		}
	}
}

// TestIDOfAStringIsItsJSONText: the quick path of ID (no escapes) agrees with decoding.
func TestIDOfAStringIsItsJSONText(t *testing.T) {
	for _, s := range []string{"", "café", `a"b`, `back\slash`, "<tag>", "line\u2028", "tab\t"} {
		b, _ := json.Marshal(s)
		if got := Value(b).ID(); got != s {
			t.Errorf("ID(%s) = %q, want %q", b, got, s)
		}
	}
	if got := Value(`"caf\u00e9"`).ID(); got != "café" {
		t.Errorf("escaped: %q", got)
	}
	if !bytes.Equal([]byte(Value(`42`).ID()), []byte("42")) {
		t.Error("number id")
	}
}
