package es

import (
	"encoding/json"
	"testing"
)

// Index names and ids are quoted without encoding/json when they need no escape; the bytes
// must be the same either way.
func TestQuotedNamesAreWhatEncodingJSONWrites(t *testing.T) {
	for _, s := range []string{"", "programs_v1", "42", "a\"b", `a\b`, "<x>", "a&b", "ü", "\x01", "a\u2028b", "bad\xff"} {
		want, _ := json.Marshal(s)
		if got := appendJSON([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("appendJSON(%q) = %s, want x%s", s, got, want)
		}
	}
}
