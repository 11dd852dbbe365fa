package consumer

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wyehq/wye/indexer"
)

// TestAFloodOfParkedMessagesLogsOneLinePerReasonAndCountsTheRest: the backfill parked
// 40,001 messages of one reason and wrote 40,001 lines (10 MB). One line per reason per
// interval, then one count, and no parked message goes uncounted.
func TestAFloodOfParkedMessagesLogsOneLinePerReasonAndCountsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		c := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, nil)
		var out indexer.Outcome
		for range 40_001 {
			out.Parked = append(out.Parked, indexer.Outgoing{Cluster: "es7", Status: 400, ErrType: "strict_dynamic_mapping_exception",
				Reason: "programs_v1: strict_dynamic_mapping_exception: mapping set to strict"})
		}
		out.Parked = append(out.Parked, indexer.Outgoing{Cluster: "es7", Status: 400, ErrType: "mapper_parsing_exception", Reason: "other"})
		c.record(nil, out, time.Now())
		time.Sleep(indexer.DefaultLogEvery)
		synctest.Wait()
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		var parked, more []string
		for _, l := range lines {
			switch {
			case strings.Contains(l, "msg=parked"):
				parked = append(parked, l)
			case strings.Contains(l, `msg="more parked"`):
				more = append(more, l)
			}
		}
		if len(parked) != 2 || len(more) != 1 || !strings.Contains(more[0], "count=40000") {
			t.Errorf("%d parked lines, %d count lines %q; want 2 and one of 40000", len(parked), len(more), more)
		}
	})
}
