package cdc

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

var update = flag.Bool("update", false, "rewrite golden files")

// allKinds is a table with one column of every kind, as the binlog adapter describes it.
var allKinds = &Table{Schema: "catalog", Name: "everything", PK: []int{0, 1}, Columns: []Column{
	{Name: "id", Kind: KindUint},
	{Name: "tenant", Kind: KindInt},
	{Name: "big_unsigned", Kind: KindUint},
	{Name: "price", Kind: KindDecimal},
	{Name: "ratio", Kind: KindFloat32},
	{Name: "score", Kind: KindFloat64},
	{Name: "created", Kind: KindDateTime},
	{Name: "seen", Kind: KindTimestamp},
	{Name: "zero_seen", Kind: KindTimestamp},
	{Name: "day", Kind: KindDate},
	{Name: "dur", Kind: KindTime},
	{Name: "yr", Kind: KindYear},
	{Name: "title", Kind: KindText},
	{Name: "raw", Kind: KindBinary},
	{Name: "doc", Kind: KindJSON},
	{Name: "state", Kind: KindEnum, Members: []string{"draft", "live"}},
	{Name: "flags", Kind: KindSet, Members: []string{"a", "b", "c"}},
	{Name: "bits", Kind: KindBit},
	{Name: "nothing", Kind: KindText},
}}

func goldenChanges() map[string]Change {
	row1 := []any{uint32(7), int64(-3), uint64(18446744073709551615), "12.50", float32(0.1), 1.0 / 3,
		"2024-02-29 23:59:59.123456", "2024-03-01 10:00:00", "0000-00-00 00:00:00", "2024-02-29", "-838:59:59",
		2024, "héllo ✓ \"quoted\" <tag> 😀", []byte{0, 1, 2, 0xff}, `{"a": [1, 2.5, null], "b": "x"}`,
		int64(2), int64(5), int64(9), nil}
	row2 := append([]any(nil), row1...)
	row2[12], row2[15] = "changed", int64(0)
	at := time.Date(2024, 3, 1, 10, 0, 1, 0, time.UTC)
	pos := Position{File: "mariadb-bin.000003", Pos: 4711}
	v, _ := VersionAt(2, pos.File, pos.Pos)
	base := Change{Table: allKinds, Version: v, CommitTS: at, Pos: pos, GTID: "0-1-99", Epoch: 2}
	ins, upd, del := base, base, base
	ins.Op, ins.After = OpInsert, row1
	upd.Op, upd.Before, upd.After = OpUpdate, row1, row2
	del.Op, del.Before = OpDelete, row2
	return map[string]Change{"insert": ins, "update": upd, "delete": del}
}

// TestEncodingMatchesGoldenFiles prevents a silent change of the message schema or of a
// value's encoding (DECIMAL scale, DATETIME without zone, TIMESTAMP in UTC, JSON embedded,
// binary as base64, NULL, unsigned 64-bit, utf8mb4).
func TestEncodingMatchesGoldenFiles(t *testing.T) {
	for name, c := range goldenChanges() {
		t.Run(name, func(t *testing.T) {
			got, err := encodeOne(&c)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !json.Valid(got) {
				t.Fatalf("not JSON: %s", got)
			}
			var pretty bytes.Buffer
			json.Indent(&pretty, got, "", "  ")
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", "event_"+name+".golden.json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("encoding changed; got:\n%s\nwant:\n%s", pretty.Bytes(), want)
			}
		})
	}
}

// TestUnencodableValueIsAnErrorNotAGuess prevents publishing a wrong value: a Go type the kind
// does not expect fails the encoding (the reader then marks the table for resync).
func TestUnencodableValueIsAnErrorNotAGuess(t *testing.T) {
	c := Change{Table: &Table{Schema: "d", Name: "t", Columns: []Column{{Name: "n", Kind: KindInt}}}, Op: OpInsert,
		After: []any{"not a number"}}
	if _, err := encodeOne(&c); err == nil {
		t.Fatal("encoded a string as an integer")
	}
}

// TestKeyValuesAreEncodedAsASQLReadReturnsThem prevents a key from an event that finds no
// row: the binlog drops the trailing 0x00 bytes of BINARY(n) (a SQL read returns all n) and
// carries latin1 text as stored (a SQL read converts it to utf8mb4), so the indexer took
// such rows for deleted.
func TestKeyValuesAreEncodedAsASQLReadReturnsThem(t *testing.T) {
	uuid := []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	for _, tc := range []struct {
		name string
		col  Column
		v    any
		want string
	}{
		{"BINARY(16) UUID ending in 0x00", Column{Kind: KindBinary, Pad: 16}, string(uuid), `{"$base64":"ESIzRFVmd4iZqrvM3e7/AA=="}`},
		{"BINARY(4) all zero", Column{Kind: KindBinary, Pad: 4}, []byte{}, `{"$base64":"AAAAAA=="}`},
		{"BINARY(2) full", Column{Kind: KindBinary, Pad: 2}, []byte{1, 0}, `{"$base64":"AQA="}`},
		{"VARBINARY keeps its length", Column{Kind: KindBinary}, []byte{1}, `{"$base64":"AQ=="}`},
		{"latin1 café", Column{Kind: KindText, Charset: CharsetLatin1}, "caf\xe9", `"café"`},
		{"latin1 as MySQL converts 0x80-0x9F", Column{Kind: KindText, Charset: CharsetLatin1}, "\x80\x81\x8d\x8f\x90\x9d\x9f\xff", "\"€\u0081\u008d\u008f\u0090\u009d\u0178ÿ\""},
		{"latin1 ASCII", Column{Kind: KindText, Charset: CharsetLatin1}, []byte("plain"), `"plain"`},
		{"utf8mb4 as is", Column{Kind: KindText}, "café", `"café"`},
		{"BIGINT UNSIGNED above 2^63", Column{Kind: KindUint}, uint64(1<<63 + 5), `9223372036854775813`},
		{"YEAR 0", Column{Kind: KindYear}, 0, `0`},
		{"DECIMAL", Column{Kind: KindDecimal}, "-0.50", `"-0.50"`},
		{"ENUM", Column{Kind: KindEnum, Members: []string{"b", "é"}}, int64(2), `"é"`},
	} {
		got, err := AppendValue(nil, tc.col, tc.v)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: got %s (%v), want %s", tc.name, got, err, tc.want)
		}
	}
	if got := CharsetLatin1.UTF8("caf\xe9"); got != "café" {
		t.Errorf("latin1 member name: %q, want café", got)
	}
}

// TestBatchIsOneSchema2MessageInBinlogOrder prevents a consumer from misreading a batch: the
// body is {"schema":2,"changes":[...]} in order, the header count matches, a mixed batch is
// routed as such, and a change that cannot be encoded leaves the batch valid.
func TestBatchIsOneSchema2MessageInBinlogOrder(t *testing.T) {
	g := goldenChanges()
	other := &Table{Schema: "d", Name: "t", PK: []int{0}, Columns: []Column{{Name: "n", Kind: KindInt}}}
	var b Batch
	ins, upd := g["insert"], g["update"]
	for _, c := range []*Change{&ins, &upd} {
		if err := b.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Add(&Change{Table: other, Op: OpInsert, After: []any{"not a number"}}); err == nil {
		t.Fatal("encoded a string as an integer")
	}
	m := b.Take()
	if m.RoutingKey != "catalog.everything" || m.Changes != 2 {
		t.Fatalf("routing key %q, %d changes; want catalog.everything, 2", m.RoutingKey, m.Changes)
	}
	var got struct {
		Schema  int `json:"schema"`
		Changes []struct {
			Op string `json:"op"`
		} `json:"changes"`
	}
	if err := json.Unmarshal(m.Body, &got); err != nil {
		t.Fatalf("not JSON: %v: %s", err, m.Body)
	}
	if got.Schema != 2 || len(got.Changes) != 2 || got.Changes[0].Op != "insert" || got.Changes[1].Op != "update" {
		t.Fatalf("decoded %+v", got)
	}
	if b.Len() != 0 {
		t.Fatalf("batch not emptied: %d", b.Len())
	}
	b.Add(&ins)
	b.Add(&Change{Table: other, Op: OpInsert, After: []any{int64(1)}})
	if m := b.Take(); m.RoutingKey != MixedRoutingKey || !json.Valid(m.Body) {
		t.Fatalf("mixed batch routed %q, body %s", m.RoutingKey, m.Body)
	}
}

// A small body goes plain and a large one compressed: a body under CompressMinBytes must not
// claim content-encoding zstd (the indexer would fail to decompress JSON), and one over it
// must decompress to exactly the JSON the batch built.
func TestASmallBatchIsSentPlainAndALargeOneCompressed(t *testing.T) {
	upd := goldenChanges()["update"]
	b := Batch{Compress: true}
	if err := b.Add(&upd); err != nil {
		t.Fatal(err)
	}
	if m := b.Take(); m.ContentEncoding != "" || !json.Valid(m.Body) {
		t.Fatalf("a %d-byte body: content-encoding %q, valid JSON %v", len(m.Body), m.ContentEncoding, json.Valid(m.Body))
	}
	plain := Batch{}
	for b.Size() < CompressMinBytes {
		if err := b.Add(&upd); err != nil {
			t.Fatal(err)
		}
		plain.Add(&upd)
	}
	m, want := b.Take(), plain.Take().Body
	if m.ContentEncoding != "zstd" || len(m.Body) >= len(want) {
		t.Fatalf("a %d-byte body: content-encoding %q, %d bytes sent", len(want), m.ContentEncoding, len(m.Body))
	}
	got, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if body, err := got.DecodeAll(m.Body, nil); err != nil || !bytes.Equal(body, want) {
		t.Fatalf("decompressed to %d bytes (%v), want the %d bytes of JSON", len(body), err, len(want))
	}
}

// FuzzAppendStringMatchesEncodingJSON prevents the fast string encoder from drifting from
// encoding/json (the message schema's reference): HTML escapes, control characters, U+2028,
// invalid UTF-8. `go test -fuzz FuzzAppendString ./cdc` explores beyond the seeds.
func FuzzAppendStringMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uo\te`, "<a href='x'>&amp;</a>", "tab\tnl\ncr\r\b\f\x00\x1f\x7f",
		"héllo ✓ 😀", "\u2028\u2029", "bad \xff\xfe utf8 \xc3", "\xed\xa0\x80 surrogate", "mixed é\"<\xff>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendString(%q) = %s, encoding/json %s", s, got, want)
		}
	})
}

// encodeOne is the element a batch of c alone carries in its "changes".
func encodeOne(c *Change) ([]byte, error) {
	var b Batch
	if err := b.Add(c); err != nil {
		return nil, err
	}
	var m struct{ Changes []json.RawMessage }
	if err := json.Unmarshal(b.Take().Body, &m); err != nil || len(m.Changes) != 1 {
		return nil, fmt.Errorf("batch of one: %v", err)
	}
	return m.Changes[0], nil
}

// TestLargeValuesAreDigestedButNeverKeysOrLinkColumns prevents a change bigger than the broker
// takes (a LONGBLOB row: two images, base64) and, the other way, a key or link column the
// indexer could no longer match rows by: a value whose encoding is over InlineMax is sent as
// the SHA-256 of its bytes, except the primary key and the columns named whole; a value at
// InlineMax is sent as it is, and the digest changes with the value.
func TestLargeValuesAreDigestedButNeverKeysOrLinkColumns(t *testing.T) {
	tbl := &Table{Schema: "d", Name: "t", PK: []int{0}, Columns: []Column{
		{Name: "id", Kind: KindText},
		{Name: "parent", Kind: KindBinary},
		{Name: "blob", Kind: KindBinary},
		{Name: "note", Kind: KindText},
		{Name: "at_max", Kind: KindText},
		{Name: "over_max", Kind: KindText, Charset: CharsetLatin1},
		{Name: "doc", Kind: KindJSON},
		{Name: "uuid", Kind: KindBinary, Pad: 255},
		{Name: "flags", Kind: KindSet, Members: []string{strings.Repeat("a", 200), strings.Repeat("b", 200)}},
		{Name: "escaped", Kind: KindText},
	}}
	key := strings.Repeat("k", 300)
	parent := bytes.Repeat([]byte{7}, 400)
	blob := bytes.Repeat([]byte{1, 2, 3}, 1000)
	blob2 := append(bytes.Clone(blob[:len(blob)-1]), 4)
	atMax := strings.Repeat("m", InlineMax-2) // InlineMax bytes with its quotes
	overMax := strings.Repeat("\xe9", InlineMax-1)
	doc := `{"a":"` + strings.Repeat("j", 300) + `"}`
	escaped := strings.Repeat("<", 100) // 100 bytes, 602 encoded (\u003c)
	before := []any{key, parent, blob, "short", atMax, overMax, doc, []byte{9}, int64(3), escaped}
	after := slices.Clone(before)
	after[2], after[3] = blob2, "changed"
	c := Change{Table: tbl, Op: OpUpdate, Before: before, After: after, Pos: Position{File: "f.000001", Pos: 4}}

	// Full images: the unchanged large values are in the images too (an update's images
	// otherwise leave them out: TestUpdateImagesCarryOnlyKeysWholeColumnsAndChangedColumns).
	bt := Batch{Whole: WholeColumns{"d.t": {"PARENT"}}, FullImages: true}
	if err := bt.Add(&c); err != nil {
		t.Fatal(err)
	}
	var m struct {
		Changes []struct{ PK, Before, After map[string]json.RawMessage }
	}
	body := bt.Take().Body
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	digest := func(b []byte) string {
		sum := sha256.Sum256(b)
		return `{"$digest":"` + hex.EncodeToString(sum[:]) + `"}`
	}
	got := m.Changes[0]
	want := func(img map[string]json.RawMessage, col, want string) {
		t.Helper()
		if string(img[col]) != want {
			t.Errorf("%s: %.100s, want %.100s", col, img[col], want)
		}
	}
	want(got.PK, "id", `"`+key+`"`)
	for _, img := range []map[string]json.RawMessage{got.Before, got.After} {
		want(img, "id", `"`+key+`"`)
		want(img, "parent", `{"$base64":"`+base64.StdEncoding.EncodeToString(parent)+`"}`)
		want(img, "at_max", `"`+atMax+`"`)
		want(img, "over_max", digest([]byte(CharsetLatin1.UTF8(overMax))))
		want(img, "doc", digest([]byte(doc)))
		want(img, "uuid", digest(append([]byte{9}, make([]byte, 254)...)))
		want(img, "escaped", digest([]byte(escaped)))
		want(img, "flags", digest([]byte(`"`+strings.Repeat("a", 200)+","+strings.Repeat("b", 200)+`"`)))
	}
	want(got.Before, "blob", digest(blob))
	want(got.After, "blob", digest(blob2))
	want(got.Before, "note", `"short"`)
	want(got.After, "note", `"changed"`)
	if bytes.Equal(got.Before["blob"], got.After["blob"]) {
		t.Error("the digest of blob did not change with its value")
	}
	if len(body) > 5000 {
		t.Errorf("message of %d bytes: large values are not digested", len(body))
	}
}

// TestEveryChangeCarriesItsOwnPosition prevents a change published with the position of the
// change before it (the encoder keeps the last position's rendering): changes at one
// position, another, and the first again, in a file whose name JSON must escape.
func TestEveryChangeCarriesItsOwnPosition(t *testing.T) {
	tb := &Table{Schema: "d", Name: "t", PK: []int{0}, Columns: []Column{{Name: "id", Kind: KindInt}}}
	p1, p2 := Position{File: `b"<1>.000001`, Pos: 4}, Position{File: `b"<1>.000001`, Pos: 40}
	var bt Batch
	positions := []Position{p1, p1, p2, p1, {File: "c.000002", Pos: 4}}
	for i, p := range positions {
		if err := bt.Add(&Change{Table: tb, Op: OpInsert, After: []any{int64(i)}, Pos: p}); err != nil {
			t.Fatal(err)
		}
	}
	var m struct {
		Changes []struct {
			Position string `json:"position"`
		} `json:"changes"`
	}
	if err := json.Unmarshal(bt.Take().Body, &m); err != nil {
		t.Fatal(err)
	}
	for i, p := range positions {
		if i >= len(m.Changes) || m.Changes[i].Position != p.String() {
			t.Errorf("change %d: position %+v, want %s", i, m.Changes, p)
		}
	}
}
