package cdc

import (
	"testing"
	"time"
)

// go-mysql decodes DATETIME and TIMESTAMP as time.Time (ParseTime) and, for values a
// time.Time cannot hold, as text: both must encode to the same bytes the text always gave.
func TestTimeValuesEncodeAsTheirTextDoes(t *testing.T) {
	at := time.Date(2024, 2, 29, 23, 5, 9, 924100000, time.UTC)
	local := at.In(time.FixedZone("x", 5*3600)) // TIMESTAMP decoded in the process's zone
	for _, tc := range []struct {
		kind Kind
		frac int
		v    time.Time
		text string
	}{
		{KindDateTime, 0, at, "2024-02-29 23:05:09"},
		{KindDateTime, 3, at, "2024-02-29 23:05:09.924"},
		{KindDateTime, 6, at, "2024-02-29 23:05:09.924100"},
		{KindTimestamp, 0, local, "2024-02-29 23:05:09"},
		{KindTimestamp, 2, local, "2024-02-29 23:05:09.92"},
		{KindTimestamp, 6, local, "2024-02-29 23:05:09.924100"},
	} {
		col := Column{Name: "c", Kind: tc.kind, Frac: tc.frac}
		fromTime, err := AppendValue(nil, col, tc.v)
		if err != nil {
			t.Fatal(err)
		}
		fromText, err := AppendValue(nil, col, tc.text)
		if err != nil {
			t.Fatal(err)
		}
		if string(fromTime) != string(fromText) {
			t.Errorf("kind %d frac %d: time.Time encodes as %s, its text as %s", tc.kind, tc.frac, fromTime, fromText)
		}
	}
}
