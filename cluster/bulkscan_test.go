package cluster

import (
	"fmt"
	"strings"
	"testing"
)

// okResponse is an Elasticsearch 7 answer to n successful external-versioned index actions.
func okResponse(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"took":31,"errors":false,"items":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"index":{"_index":"programs_idx_0a1b2c3d_v1","_type":"_doc","_id":"%d","_version":1795400000000000,"result":"updated","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":%d,"_primary_term":1,"status":200}}`, 1000+i, 50000+i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// okOutcomes is the answer of okResponse filtered by OutcomesOnly.
func okOutcomes(n int) []byte {
	return []byte(`{"errors":false,"items":[` + strings.Repeat(`{"index":{"status":200}},`, n-1) + `{"index":{"status":200}}]}`)
}

// BenchmarkParseBulkResponse parses the answer to 256 successful writes, whole and filtered by
// OutcomesOnly.
func BenchmarkParseBulkResponse(b *testing.B) {
	for _, c := range []struct {
		name string
		body []byte
	}{{"full", okResponse(256)}, {"outcomes", okOutcomes(256)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				items, err := parseBulkResponse(c.body)
				if err != nil || len(items) != 256 {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCountActions(b *testing.B) {
	var body strings.Builder
	for i := range 256 {
		fmt.Fprintf(&body, `{"index":{"_index":"programs_idx_0a1b2c3d","_id":"%d","version":1795400000000000,"version_type":"external"}}`+"\n", i)
		body.WriteString(`{"id":"1","title":"Program 1 ü 2","episodes":[{"id":3,"number":4,"episode_title":"Episode 3"}],"wye_version":1795400000000000}` + "\n")
	}
	bs := []byte(body.String())
	for b.Loop() {
		if n, err := countActions(bs); err != nil || n != 256 {
			b.Fatal(n, err)
		}
	}
}

// TestFastBulkParseNeverChangesAnItem: the scanner either gives exactly what encoding/json
// gives, or declines and leaves the answer to it.
func TestFastBulkParseNeverChangesAnItem(t *testing.T) {
	answers := map[string]string{
		"mixed es8":   string(golden(t, "bulk-mixed-es8.json")),
		"ok es7":      string(okResponse(3)),
		"outcomes":    string(golden(t, "bulk-outcomes-es8.json")),
		"ok outcomes": string(okOutcomes(3)),
		"empty":       `{"took":1,"errors":false,"items":[]}`,
		"no items":    `{"took":1,"errors":false}`,
		"os2 create and noop": `{"took":2,"errors":false,"items":[{"create":{"_index":"p","_id":"a","_version":1,"result":"created","forced_refresh":true,"status":201}},` +
			`{"update":{"_index":"p","_id":"b","_version":-1,"result":"noop","status":200}}]}`,
		"escaped id":           `{"items":[{"index":{"_index":"p","_id":"a\"b","status":201}}]}`,
		"escaped skipped":      `{"items":[{"index":{"_index":"p","_id":"a","x":"\u00e9\n","status":201}}]}`,
		"unicode id":           `{"items":[{"index":{"_index":"p","_id":"prøgram ü","status":201}}]}`,
		"invalid utf8 id":      "{\"items\":[{\"index\":{\"_index\":\"p\",\"_id\":\"a\xffb\",\"status\":201}}]}",
		"two actions":          `{"items":[{"index":{"_index":"p","_id":"a","status":201},"delete":{"_index":"p","_id":"a","status":200}}]}`,
		"unknown action":       `{"items":[{"upsert":{"_index":"p","_id":"a","status":201}}]}`,
		"float status":         `{"items":[{"index":{"_index":"p","_id":"a","status":201.0}}]}`,
		"null id":              `{"items":[{"index":{"_index":"p","_id":null,"status":201}}]}`,
		"error string":         `{"items":[{"index":{"_index":"p","_id":"a","status":400,"error":"boom"}}]}`,
		"trailing garbage":     `{"items":[]} x`,
		"truncated":            `{"items":[{"index":{"_index":"p","_id":"a","status":201}`,
		"bad number":           `{"took":01,"items":[]}`,
		"nested skipped":       `{"a":{"b":[1,2,{"c":null,"d":true,"e":false,"f":-1.5e+3}]},"items":[{"delete":{"_index":"p","_id":"1","_version":9,"result":"not_found","status":404}}]}`,
		"duplicate items":      `{"items":[],"items":[{"index":{"_index":"p","_id":"a","status":201}}]}`,
		"whitespace":           " {\n \"items\" : [ { \"index\" : { \"_index\" : \"p\" , \"_id\" : \"a\" , \"status\" : 201 } } ] } \n",
		"big version":          `{"items":[{"index":{"_index":"p","_id":"a","_version":9223372036854775807,"status":201}}]}`,
		"version out of range": `{"items":[{"index":{"_index":"p","_id":"a","_version":9223372036854775808,"status":201}}]}`,
	}
	mustScan := map[string]bool{"mixed es8": true, "ok es7": true, "outcomes": true, "ok outcomes": true, "empty": true, "no items": true, "os2 create and noop": true,
		"unicode id": true, "escaped skipped": true, "nested skipped": true, "whitespace": true, "big version": true}
	for name, body := range answers {
		t.Run(name, func(t *testing.T) {
			fast, ok := scanBulkResponse([]byte(body))
			slow, err := decodeBulkResponse([]byte(body))
			if !ok {
				if mustScan[name] {
					t.Fatal("the scanner declined an answer the engines give")
				}
				return // encoding/json decides
			}
			if err != nil {
				t.Fatalf("scanner took an answer encoding/json refuses (%v): %+v", err, fast)
			}
			if len(fast) != len(slow) {
				t.Fatalf("scanner: %d items, encoding/json: %d", len(fast), len(slow))
			}
			for i := range fast {
				if fast[i] != slow[i] {
					t.Errorf("item %d: scanner %+v, encoding/json %+v", i, fast[i], slow[i])
				}
			}
		})
	}
}
