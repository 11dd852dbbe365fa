package defaults

import (
	"testing"
	"time"
)

// TestUnsetOrNegativeBoundTakesTheDefault prevents a zero backlog or interval (an option left
// out) from reaching make(chan) or a ticker, where it would panic or spin.
func TestUnsetOrNegativeBoundTakesTheDefault(t *testing.T) {
	if got := Positive(0, 64); got != 64 {
		t.Errorf("Positive(0, 64) = %d", got)
	}
	if got := Positive(-1, 64); got != 64 {
		t.Errorf("Positive(-1, 64) = %d", got)
	}
	if got := Positive(3, 64); got != 3 {
		t.Errorf("Positive(3, 64) = %d", got)
	}
	if got := Positive(time.Duration(0), time.Second); got != time.Second {
		t.Errorf("Positive(0s, 1s) = %v", got)
	}
}
