package diff

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func answerOf(t *testing.T, s string) *answer {
	t.Helper()
	a, err := decodeAnswer([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func hitsJSON(total int, hits ...string) string {
	return `{"hits":{"total":{"value":` + strconv.Itoa(total) + `,"relation":"eq"},"hits":[` + strings.Join(hits, ",") + `]}}`
}

func TestQueryAnswersAllowSwapsAmongEqualScoresOnly(t *testing.T) {
	ref := answerOf(t, hitsJSON(3, `{"_id":"a","_score":2.0}`, `{"_id":"b","_score":1.0}`, `{"_id":"c","_score":1.0}`))
	swapped := answerOf(t, hitsJSON(3, `{"_id":"a","_score":2.0000001}`, `{"_id":"c","_score":1.0}`, `{"_id":"b","_score":1.0}`))
	if what := compareAnswers(ref, swapped, 10, ""); len(what) != 0 {
		t.Errorf("hits of equal score swapped: %q, want no difference", what)
	}
	reordered := answerOf(t, hitsJSON(3, `{"_id":"b","_score":2.0}`, `{"_id":"a","_score":1.0}`, `{"_id":"c","_score":1.0}`))
	if what := compareAnswers(ref, reordered, 10, ""); len(what) == 0 {
		t.Error("hits of other scores reordered: no difference found")
	}
	// A run of ties cut by k may end with another hit of that score.
	cut := answerOf(t, hitsJSON(3, `{"_id":"a","_score":2.0}`, `{"_id":"d","_score":1.0}`))
	if what := compareAnswers(answerOf(t, hitsJSON(3, `{"_id":"a","_score":2.0}`, `{"_id":"b","_score":1.0}`)), cut, 2, ""); len(what) != 0 {
		t.Errorf("a tie cut by k: %q, want no difference", what)
	}
}

func TestQueryAnswersNameAnArrayThatBecameNullAndATotalThatDiffers(t *testing.T) {
	ref := answerOf(t, hitsJSON(2, `{"_id":"a","_score":1,"_source":{"tags":[],"wye_version":1}}`))
	other := answerOf(t, hitsJSON(1, `{"_id":"a","_score":1,"_source":{"tags":null,"wye_version":2}}`))
	what := strings.Join(compareAnswers(ref, other, 10, "wye_version"), "; ")
	for _, want := range []string{"total 1 (eq) against 2 (eq)", "hit a: _source shape: [] / null / absent differ at tags"} {
		if !strings.Contains(what, want) {
			t.Errorf("differences %q do not say %q", what, want)
		}
	}
}

func TestQueryAnswersCompareAggregationBuckets(t *testing.T) {
	ref := answerOf(t, `{"hits":{"total":{"value":5,"relation":"eq"},"hits":[]},"aggregations":{"t":{"buckets":[{"key":"x","doc_count":3}]}}}`)
	other := answerOf(t, `{"hits":{"total":{"value":5,"relation":"eq"},"hits":[]},"aggregations":{"t":{"buckets":[{"key":"x","doc_count":2}]}}}`)
	if what := compareAnswers(ref, other, 10, ""); len(what) != 1 || !strings.Contains(what[0], "t.buckets[0].doc_count") {
		t.Errorf("differences %q, want the bucket's doc_count", what)
	}
}

func TestCorpusRefusesUnknownKeysAndNamelessQueries(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown key": "queries:\n  - {name: a, entity: program, body: {size: 1}, topk: 3}\n",
		"no name":     "queries:\n  - {entity: program, body: {size: 1}}\n",
		"twice":       "queries:\n  - {name: a, entity: program, body: {size: 1}}\n  - {name: a, entity: program, body: {size: 1}}\n",
	} {
		p := filepath.Join(dir, "q.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadCorpus(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if c, err := LoadCorpus("../examples/catalog/queries.yaml"); err != nil || len(c.Queries) == 0 {
		t.Errorf("the shipped corpus: %v", err)
	}
}
