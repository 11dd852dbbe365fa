package consumer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	amqp "github.com/rabbitmq/amqp091-go"
)

var parkedNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func parkedDelivery(cluster, errType, reason string, firstSeen time.Time) amqp.Delivery {
	h := amqp.Table{HeaderCluster: cluster, HeaderStatus: int32(400), HeaderErrorType: errType,
		HeaderReason: reason, HeaderAttempt: int32(1)}
	if !firstSeen.IsZero() {
		h[HeaderFirstSeen] = firstSeen.Format(time.RFC3339Nano)
	}
	return amqp.Delivery{Headers: h, Body: []byte(`{"schema":2,"entity":"program","key":1,"version":5}`)}
}

// A filter that selects too much replays what the operator meant to keep parked (e.g. the
// poison messages of another cluster's failure); one that selects too little leaves fixed
// documents unwritten.
func TestParkedFilterReplaysOnlyWhatTheOperatorSelected(t *testing.T) {
	old := parkedNow.Add(-2 * time.Hour)
	recent := parkedNow.Add(-time.Minute)
	mapping := parkedFrom(parkedDelivery("es7", "mapper_parsing_exception", "failed to parse field [updated_at]", old), 1)
	poison := parkedFrom(parkedDelivery("", "poison", "not a JSON object", recent), 2)
	undated := parkedFrom(parkedDelivery("es7", "mapper_parsing_exception", "failed to parse", time.Time{}), 3)
	cases := []struct {
		name string
		f    ParkedFilter
		want []bool // mapping, poison, undated
	}{
		{"no filter selects all", ParkedFilter{}, []bool{true, true, true}},
		{"cluster", ParkedFilter{Cluster: "es7"}, []bool{true, false, true}},
		{"cluster is exact", ParkedFilter{Cluster: "es"}, []bool{false, false, false}},
		{"error type", ParkedFilter{ErrorType: "poison"}, []bool{false, true, false}},
		{"reason contains", ParkedFilter{ReasonContains: "updated_at"}, []bool{true, false, false}},
		{"older than", ParkedFilter{OlderThan: time.Hour}, []bool{true, false, false}},
		{"older than is strict", ParkedFilter{OlderThan: 2 * time.Hour}, []bool{false, false, false}},
		{"all conditions must hold", ParkedFilter{Cluster: "es7", ReasonContains: "JSON"}, []bool{false, false, false}},
	}
	for _, c := range cases {
		for i, p := range []Parked{mapping, poison, undated} {
			if got := c.f.Match(p, parkedNow); got != c.want[i] {
				t.Errorf("%s: message %d (%s %s): match %v, want %v", c.name, i+1, p.ErrorType, p.Reason, got, c.want[i])
			}
		}
	}
}

// A replay that kept x-wye-target would write only to the cluster that refused, leaving
// slaves stale; one that dropped the content-encoding would park a compressed body as poison.
func TestReplayedMessageGoesToEveryClusterWithItsEncoding(t *testing.T) {
	d := parkedDelivery("es7", "mapper_parsing_exception", "x", parkedNow)
	d.Headers[HeaderTarget] = "es7"
	d.ContentEncoding = "zstd"
	p := ReplayPublishing(d)
	if _, ok := p.Headers[HeaderTarget]; ok {
		t.Errorf("replay keeps %s: %v", HeaderTarget, p.Headers)
	}
	for _, h := range []string{HeaderAttempt, HeaderCluster, HeaderErrorType, HeaderReason, HeaderStatus} {
		if _, ok := p.Headers[h]; ok {
			t.Errorf("replay keeps %s: %v", h, p.Headers)
		}
	}
	if p.Headers[HeaderFirstSeen] != d.Headers[HeaderFirstSeen] {
		t.Errorf("replay lost %s: %v", HeaderFirstSeen, p.Headers)
	}
	if p.ContentEncoding != "zstd" || p.DeliveryMode != amqp.Persistent || string(p.Body) != string(d.Body) {
		t.Errorf("replay publishing: %+v", p)
	}
}

// A summary that grew with every distinct reason (reasons often carry ids) would exhaust
// memory on a large parked queue; one sorted otherwise would hide the oldest failure.
func TestParkedSummaryIsBoundedAndOldestFirst(t *testing.T) {
	var s summarizer
	long := strings.Repeat("é", 3*ParkedReasonMax)
	s.add(parkedFrom(parkedDelivery("es7", "poison", "undated", time.Time{}), 1))
	s.add(parkedFrom(parkedDelivery("es7", "mapper_parsing_exception", long+"a", parkedNow), 2))
	s.add(parkedFrom(parkedDelivery("es7", "mapper_parsing_exception", long+"b", parkedNow.Add(-time.Hour)), 3))
	for i := range 2 * parkedGroupsMax {
		s.add(parkedFrom(parkedDelivery("es8", "x", fmt.Sprintf("reason %d", i), parkedNow.Add(time.Duration(i)*time.Second)), 4+i))
	}
	sum := s.summary()
	if sum.Total != 3+2*parkedGroupsMax {
		t.Errorf("total %d", sum.Total)
	}
	if len(sum.Groups) > parkedGroupsMax+1 {
		t.Errorf("%d groups, want at most %d", len(sum.Groups), parkedGroupsMax+1)
	}
	g := sum.Groups[0]
	if g.Count != 2 || g.First != 2 || !g.OldestAt.Equal(parkedNow.Add(-time.Hour)) || g.ErrorType != "mapper_parsing_exception" {
		t.Errorf("first group (long reasons cut into one, oldest first): %+v", g)
	}
	if n := len([]rune(g.Reason)); n > ParkedReasonMax+1 {
		t.Errorf("reason of %d runes not cut", n)
	}
	if last := sum.Groups[len(sum.Groups)-1]; last.Reason != "undated" {
		t.Errorf("undated group not last: %+v", last)
	}
	other := 0
	for _, g := range sum.Groups {
		if g.Reason == "(other)" {
			other = g.Count
		}
	}
	if other == 0 {
		t.Error("no (other) group beyond the bound")
	}
}

// `wye parked show` of a message parked still compressed must print its JSON, not zstd bytes.
func TestShowDecompressesAZstdParkedBody(t *testing.T) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schema":2,"changes":[]}`
	p := Parked{Encoding: "zstd", Body: enc.EncodeAll([]byte(want), nil)}
	got, err := p.PlainBody()
	if err != nil || string(got) != want {
		t.Errorf("plain body %q, %v", got, err)
	}
	if _, err := (Parked{Encoding: "zstd", Body: []byte("not zstd")}).PlainBody(); err == nil {
		t.Error("a corrupt zstd body decoded")
	}
	if _, err := (Parked{Encoding: "br"}).PlainBody(); err == nil {
		t.Error("an unknown encoding decoded")
	}
}

// Messages the change queue dead-lettered (delivery limit) carry no x-wye headers; list must
// still tell them apart from the indexer's verdicts.
func TestDeadLetteredMessageIsListedAsDeliveryLimit(t *testing.T) {
	p := parkedFrom(amqp.Delivery{Headers: amqp.Table{"x-death": []any{}}}, 7)
	if p.ErrorType != "delivery-limit" || p.Position != 7 {
		t.Errorf("dead-lettered: %+v", p)
	}
}

// Grouping by the raw reason made one group per document (Elasticsearch puts the id and the
// value in it): a list of a thousand parked documents of one failure was a thousand lines.
func TestOneFailureOfManyDocumentsIsOneGroup(t *testing.T) {
	var s summarizer
	for i, r := range []string{
		"programs_v1: [1:214] failed to parse field [updated_at] of type [date] in document with id '8'. Preview of field's value: '0000-00-00 00:00:00'",
		"programs_v1: [1:97] failed to parse field [updated_at] of type [date] in document with id 'abc'. Preview of field's value: 'x'",
	} {
		s.add(parkedFrom(parkedDelivery("es8", "mapper_parsing_exception", r, parkedNow), i+1))
	}
	sum := s.summary()
	if len(sum.Groups) != 1 || sum.Groups[0].Count != 2 {
		t.Fatalf("groups: %+v", sum.Groups)
	}
	if want := "programs_v1: failed to parse field [updated_at] of type [date] in document with id '…'. Preview of field's value: '…'"; sum.Groups[0].Reason != want {
		t.Errorf("reason %q, want %q", sum.Groups[0].Reason, want)
	}
}

// An id that changed from one read to the next (RabbitMQ counts every read in
// x-delivery-count) would make `wye parked show ID` miss the message list named.
func TestParkedIDSurvivesRereadsAndTellsMessagesApart(t *testing.T) {
	d := parkedDelivery("es7", "mapper_parsing_exception", "x", parkedNow)
	a := parkedFrom(d, 1)
	d.Headers["x-delivery-count"] = int64(5)
	if b := parkedFrom(d, 9); b.ID != a.ID || len(a.ID) != 12 {
		t.Errorf("id %q after a reread, was %q", b.ID, a.ID)
	}
	d.Body = []byte(`{"schema":2,"entity":"program","key":2,"version":5}`)
	if c := parkedFrom(d, 1); c.ID == a.ID {
		t.Errorf("two parked entities share id %q", a.ID)
	}
}
