package indexer

import "testing"

// TestIDValueFindsTheKeyItsIDCameFrom prevents an orphan check from missing the root row of a
// document (and deleting a document MySQL still has): the value bound for an id must be the key
// whose Value.ID gave that id.
func TestIDValueFindsTheKeyItsIDCameFrom(t *testing.T) {
	for _, key := range []Value{`42`, `-7`, `"abc"`, `"a\"b\\c"`, `"100"`, `{"$base64":"AAEC"}`, `"2024-01-02 03:04:05"`} {
		v := IDValue(key.ID())
		if v.ID() != key.ID() {
			t.Errorf("IDValue(%q).ID() = %q, want %q", key.ID(), v.ID(), key.ID())
		}
		if _, isBin := key.Bytes(); isBin {
			if _, ok := v.Bytes(); !ok {
				t.Errorf("IDValue of binary key %s is %s: not bound as bytes", key, v)
			}
		}
	}
}
