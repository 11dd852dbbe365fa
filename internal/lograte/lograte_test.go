package lograte

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type heldLog struct {
	mu  sync.Mutex
	got map[string]int
}

func (h *heldLog) add(key string, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got[key] += n
}

func (h *heldLog) of(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got[key]
}

// TestAFloodOfOneReasonLogsOneLineAndOneCountPerInterval: 40,001 parked messages of one
// reason must not write 40,001 lines, and none of them may go uncounted.
func TestAFloodOfOneReasonLogsOneLineAndOneCountPerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &heldLog{got: map[string]int{}}
		l := New(10*time.Second, h.add)
		lines := 0
		for range 40_001 {
			if ok, _ := l.Allow("strict", 1); ok {
				lines++
			}
		}
		if ok, _ := l.Allow("other reason", 2); !ok {
			t.Error("the first event of another key was held")
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if lines != 1 || h.of("strict") != 40_000 || h.of("other reason") != 0 {
			t.Errorf("lines %d, held %v; want 1 line and 40000 held", lines, h.got)
		}
		if ok, _ := l.Allow("strict", 1); !ok {
			t.Error("the first event after the interval was held")
		}
		l.Allow("strict", 3)
		l.Flush()
		if h.of("strict") != 40_003 {
			t.Errorf("after Flush held %d, want 40003", h.of("strict"))
		}
	})
}

// TestManyDistinctKeysShareOneWindow: reasons that all differ cannot grow the limiter.
func TestManyDistinctKeysShareOneWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &heldLog{got: map[string]int{}}
		l := New(time.Second, h.add)
		lines := 0
		for i := range 1000 {
			if ok, _ := l.Allow(fmt.Sprint("reason ", i), 1); ok {
				lines++
			}
		}
		if lines != MaxKeys+1 || len(l.open) != MaxKeys+1 {
			t.Errorf("lines %d, open %d; want %d", lines, len(l.open), MaxKeys+1)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if h.of(OtherKey) != 1000-MaxKeys-1 {
			t.Errorf("held under %s: %d", OtherKey, h.of(OtherKey))
		}
	})
}
