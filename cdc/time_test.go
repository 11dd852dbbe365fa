package cdc

import (
	"math/rand/v2"
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

// appendTime writes DATETIME and TIMESTAMP digits by hand: they must be the digits
// time.AppendFormat gives for every year a column holds, every fraction length (truncated,
// never rounded) and both separators, so the hand-written path cannot drift from the layout.
func TestHandFormattedTimesMatchAppendFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 1_000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC),
		time.Date(2024, 2, 29, 23, 5, 9, 924_100_000, time.FixedZone("x", 5*3600)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // past what a column holds: AppendFormat's own path
	}
	for range 2000 {
		times = append(times, time.Unix(r.Int64N(253402300800), r.Int64N(1e9)).In(time.FixedZone("y", r.IntN(86400)-43200)))
	}
	for _, at := range times {
		for frac := range 7 {
			want := at.UTC().AppendFormat([]byte(`"`), timeLayouts[frac])
			if got := string(appendTime(nil, at, frac, false)); got != string(want)+`"` {
				t.Fatalf("%v frac %d: DATETIME %s, AppendFormat %s\"", at, frac, got, want)
			}
			want[11] = 'T'
			if got := string(appendTime(nil, at, frac, true)); got != string(want)+`Z"` {
				t.Fatalf("%v frac %d: TIMESTAMP %s, AppendFormat %sZ\"", at, frac, got, want)
			}
		}
	}
}
