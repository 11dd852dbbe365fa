package control

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestLockNamesAreScopedByTheControlSchema prevents two deployments with their own control
// schemas on one server, both with the default reader name, from waiting for each other's
// leader lock (GET_LOCK names are server-wide), while readers of one schema keep sharing it.
func TestLockNamesAreScopedByTheControlSchema(t *testing.T) {
	a, b := lockName("app_one", "cdc."+DefaultReaderName), lockName("app_two", "cdc."+DefaultReaderName)
	if a == b {
		t.Fatalf("control schemas app_one and app_two share the leader lock %q", a)
	}
	if again := lockName("app_one", "cdc."+DefaultReaderName); again != a {
		t.Fatalf("one schema and reader gave %q and %q", a, again)
	}
	if got, want := a, "wye.app_one.cdc.default"; got != want {
		t.Errorf("leader lock %q, want the readable %q", got, want)
	}
	if m := lockName("app_one", "control.migrate"); m == lockName("app_two", "control.migrate") || m == a {
		t.Errorf("migration lock %q not scoped or not apart from the leader lock", m)
	}
}

// TestLongLockNamesFitMySQLsLimitAndStayDistinct prevents GET_LOCK failing with
// ER_USER_LOCK_WRONG_NAME (MySQL refuses names over 64 characters) for a long control schema
// or reader name, and the hashed names that replace them from being unstable, colliding for
// names that only differ past the cut, or cutting a character in half.
func TestLongLockNamesFitMySQLsLimitAndStayDistinct(t *testing.T) {
	long := strings.Repeat("s", 64) // the longest database name
	names := map[string]string{}
	for _, c := range []struct{ schema, what string }{
		{long, "cdc." + strings.Repeat("n", 64)},
		{long, "cdc." + strings.Repeat("n", 63) + "m"}, // differs only in its last byte
		{long, "control.migrate"},
		{"wye", "cdc." + strings.Repeat("n", 64)},
		{"wye", "cdc." + strings.Repeat("é", 30)}, // two bytes per character
		{"wye_" + strings.Repeat("ü", 30), "cdc.default"},
		{"wye", "cdc." + strings.Repeat("n", 64-len("wye.wye.cdc."))}, // exactly 64: kept as is
	} {
		got := lockName(c.schema, c.what)
		full := "wye." + c.schema + "." + c.what
		if len(got) > maxLockName {
			t.Errorf("%s: lock name of %d bytes, MySQL allows %d", full, len(got), maxLockName)
		}
		if !utf8.ValidString(got) {
			t.Errorf("%s: lock name %q is not valid UTF-8", full, got)
		}
		if len(full) <= maxLockName && got != full {
			t.Errorf("%s: a name that fits became %q", full, got)
		}
		if len(full) > maxLockName && !strings.HasPrefix(full, strings.SplitN(got, "~", 2)[0]) {
			t.Errorf("%s: hashed name %q does not keep the name's head", full, got)
		}
		if got != lockName(c.schema, c.what) {
			t.Errorf("%s: two calls gave two names", full)
		}
		if other, dup := names[got]; dup {
			t.Errorf("%s and %s share the lock name %q", full, other, got)
		}
		names[got] = full
	}
	// Pinned: a hashed name is part of the protocol between processes of one deployment, so a
	// change of the hash would let an old and a new binary lead side by side.
	if got, want := lockName(long, "cdc.default"), "wye."+strings.Repeat("s", 43)+"~32429f9744f67514"; got != want {
		t.Errorf("hashed lock name %q, want %q", got, want)
	}
}
