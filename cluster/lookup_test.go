package cluster

import (
	"context"
	"reflect"
	"strconv"
	"testing"
)

// TestLookupSearchesTheIdsAndRefusesMoreThanOneSearchHolds prevents a lookup that reads other
// documents than those asked, misses a version, or silently truncates at the engines' result
// window: the ids go in one ids query with versions, the hits come back by id, and more than
// 10,000 ids are refused before any request.
func TestLookupSearchesTheIdsAndRefusesMoreThanOneSearchHolds(t *testing.T) {
	s := newScriptedCluster(t, "root-es8.json", map[string][]fakeAnswer{
		"POST /idx/_search": answer(200, `{"took":1,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},
			"hits":{"max_score":1.0,"hits":[{"_index":"idx_v1","_id":"a","_version":7,"_score":1.0,"_source":{"t":"A"}}]}}`),
	})
	c := s.client(t)
	got, err := c.Lookup(context.Background(), "idx", []string{"a", "zz"}, true)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if want := map[string]Hit{"a": {ID: "a", Version: 7, Source: []byte(`{"t":"A"}`)}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Lookup = %+v, want %+v", got, want)
	}
	body := jsonOf(t, s.requests()[0].body)
	want := map[string]any{"size": 2.0, "version": true, "_source": true, "track_total_hits": false,
		"query": map[string]any{"ids": map[string]any{"values": []any{"a", "zz"}}}}
	if !reflect.DeepEqual(body, want) {
		t.Errorf("lookup body = %v, want %v", body, want)
	}

	many := make([]string, maxLookup+1)
	for i := range many {
		many[i] = strconv.Itoa(i)
	}
	n := len(s.requests())
	if _, err := c.Lookup(context.Background(), "idx", many, false); err == nil || len(s.requests()) != n {
		t.Errorf("Lookup of %d ids = %v after %d requests, want an error and no request", len(many), err, len(s.requests())-n)
	}
}
