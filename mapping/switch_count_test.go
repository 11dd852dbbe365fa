package mapping

import (
	"context"
	"fmt"
	"testing"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// counter answers refreshes and, for each _count of index, the next of its counts (the last
// one repeats).
type counter struct {
	counts map[string][]int64
	asked  map[string]int
}

func (c *counter) Do(_ context.Context, req esapi.Request) (int, []byte, error) {
	r, ok := req.(esapi.CountRequest)
	if !ok {
		return 200, []byte(`{}`), nil // the refresh
	}
	name := r.Index[0]
	n := c.counts[name][min(c.asked[name], len(c.counts[name])-1)]
	c.asked[name]++
	return 200, fmt.Appendf(nil, `{"count":%d}`, n), nil
}

// TestASwitchUnderTheStreamIsNotRefusedForANewIndexOneRefreshBehind prevents `wye mapping
// switch` from refusing, with the stream running, a new index that was backfilled: each index
// refreshes on its own, so one count can see an insert the other does not see yet (the
// migration drill met v2 1942 against v1 1943). The counts are taken again before a refusal;
// a new index that stays short on every count is still refused.
func TestASwitchUnderTheStreamIsNotRefusedForANewIndexOneRefreshBehind(t *testing.T) {
	behindOnce := &counter{counts: map[string][]int64{"p_v1": {1943, 1944}, "p_v2": {1942, 1944}}, asked: map[string]int{}}
	counts, err := settledCounts(t.Context(), behindOnce, "p_v1", "p_v2")
	if err != nil || counts[0] != 1944 || counts[1] != 1944 {
		t.Errorf("one refresh behind: counts %v, %v; want the second count, 1944 and 1944", counts, err)
	}

	short := &counter{counts: map[string][]int64{"p_v1": {2000}, "p_v2": {10}}, asked: map[string]int{}}
	counts, err = settledCounts(t.Context(), short, "p_v1", "p_v2")
	if err != nil || counts[1] >= counts[0] {
		t.Errorf("never backfilled: counts %v, %v; want v2 short", counts, err)
	}
	if short.asked["p_v2"] != SwitchRecounts {
		t.Errorf("never backfilled: counted %d times, want %d", short.asked["p_v2"], SwitchRecounts)
	}

	equal := &counter{counts: map[string][]int64{"p_v1": {5}, "p_v2": {5}}, asked: map[string]int{}}
	if _, err := settledCounts(t.Context(), equal, "p_v1", "p_v2"); err != nil || equal.asked["p_v2"] != 1 {
		t.Errorf("equal at once: counted %d times (%v), want once", equal.asked["p_v2"], err)
	}
}
