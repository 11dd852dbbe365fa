package consumer

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wyehq/wye/broker"
	"github.com/wyehq/wye/indexer"
)

// The parked queue's tools (`wye parked`): read it without consuming it, and put what matches
// a filter back into the change queue once the cause is fixed (docs/indexer.md, "Parked
// messages").

const (
	// DefaultParkedLimit bounds the messages one scan or replay reads: they are all held
	// unacked on one channel until it closes.
	DefaultParkedLimit = 100000
	// ParkedReasonMax is the runes of a reason a summary groups by; longer ones are cut.
	ParkedReasonMax = 120
	// parkedGroupsMax bounds a summary's groups; further distinct ones count in one "(other)" group.
	parkedGroupsMax = 1000
	// replayWindow is how many replayed publishes may await their confirms at once.
	replayWindow = 256
)

// ParkedOptions name the queues. Zero values take the defaults in brackets.
type ParkedOptions struct {
	URL    string // with the password; never logged
	Queue  string // the change queue replays go to [broker.DefaultQueue]
	Parked string // [broker.DefaultParkedQueue]
	Limit  int    // messages read at most [DefaultParkedLimit]
}

func (o ParkedOptions) withDefaults() ParkedOptions {
	o.Queue = cmp.Or(o.Queue, broker.DefaultQueue)
	o.Parked = cmp.Or(o.Parked, broker.DefaultParkedQueue)
	if o.Limit <= 0 {
		o.Limit = DefaultParkedLimit
	}
	return o
}

// Parked is one parked message as read from the queue.
type Parked struct {
	Position  int    // 1-based place in the queue when it was read; reads may rotate it (see ShowParked)
	ID        string // stable: a hash of the failure headers and the body (`wye parked show ID`)
	Cluster   string
	Status    int
	ErrorType string
	Reason    string
	Attempt   int
	FirstSeen time.Time // zero when the header is missing or unreadable
	Encoding  string    // content-encoding of Body: "" or "zstd"
	Headers   amqp.Table
	Body      []byte
}

// parkedFrom reads a delivery's failure headers.
func parkedFrom(d amqp.Delivery, pos int) Parked {
	p := Parked{Position: pos, Encoding: d.ContentEncoding, Headers: d.Headers, Body: d.Body, ID: parkedID(d)}
	p.Cluster, _ = d.Headers[HeaderCluster].(string)
	p.ErrorType, _ = d.Headers[HeaderErrorType].(string)
	p.Reason, _ = d.Headers[HeaderReason].(string)
	p.Status, _ = toInt(d.Headers[HeaderStatus])
	p.Attempt, _ = toInt(d.Headers[HeaderAttempt])
	if s, ok := d.Headers[HeaderFirstSeen].(string); ok {
		p.FirstSeen, _ = time.Parse(time.RFC3339Nano, s)
	}
	if d.Headers[HeaderErrorType] == nil && d.Headers["x-death"] != nil {
		// Dead-lettered by the change queue's delivery limit, not parked by the indexer.
		p.ErrorType = "delivery-limit"
	}
	return p
}

// parkedID identifies a parked message across reads, whatever its place in the queue: a hash
// of what the indexer wrote (failure headers, encoding, body), not of what reads change
// (x-delivery-count). Identical messages share it.
func parkedID(d amqp.Delivery) string {
	h := sha256.New()
	for _, k := range []string{HeaderCluster, HeaderErrorType, HeaderReason, HeaderFirstSeen} {
		fmt.Fprintf(h, "%s=%v\x00", k, d.Headers[k])
	}
	fmt.Fprintf(h, "%s\x00", d.ContentEncoding)
	h.Write(d.Body)
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// PlainBody is the message's body, decompressed when its content-encoding is zstd.
func (p Parked) PlainBody() ([]byte, error) {
	b, err := indexer.Decompress(p.Body, p.Encoding)
	if err != nil {
		return nil, fmt.Errorf("decompress body: %w", err)
	}
	return b, nil
}

// ParkedFilter selects parked messages; an empty field matches every message.
type ParkedFilter struct {
	Cluster        string        // x-wye-cluster equals
	ErrorType      string        // x-wye-error-type equals
	ReasonContains string        // x-wye-reason contains
	OlderThan      time.Duration // first seen more than this long ago (a message without first-seen never matches)
}

// Match reports whether p is selected at time now.
func (f ParkedFilter) Match(p Parked, now time.Time) bool {
	switch {
	case f.Cluster != "" && p.Cluster != f.Cluster:
		return false
	case f.ErrorType != "" && p.ErrorType != f.ErrorType:
		return false
	case f.ReasonContains != "" && !strings.Contains(p.Reason, f.ReasonContains):
		return false
	case f.OlderThan > 0 && (p.FirstSeen.IsZero() || now.Sub(p.FirstSeen) <= f.OlderThan):
		return false
	}
	return true
}

// ParkedGroup counts the parked messages of one cluster, error type and (cut) reason.
type ParkedGroup struct {
	Cluster   string    `json:"cluster"`
	ErrorType string    `json:"error_type"`
	Reason    string    `json:"reason"` // GroupReason: ids, values and positions masked, cut
	Count     int       `json:"count"`
	OldestAt  time.Time `json:"oldest_first_seen"` // zero when no message of the group has a first-seen
	First     int       `json:"first_position"`    // position of the group's first message
	FirstID   string    `json:"first_id"`          // id of the group's first message (`wye parked show`)
}

// ParkedSummary is what a scan of the parked queue found.
type ParkedSummary struct {
	Groups    []ParkedGroup `json:"groups"` // oldest first-seen first
	Total     int           `json:"total"`
	Remaining int           `json:"not_read"` // messages beyond the limit, not counted in the groups
}

// summarizer builds a ParkedSummary in bounded memory: at most parkedGroupsMax groups.
type summarizer struct {
	idx    map[[3]string]int
	groups []ParkedGroup
}

// Parts of Elasticsearch reasons that differ from one document to the next: quoted ids and
// values ("in document with id '8'. Preview of field's value: '...'") and the parse
// position ("[1:214] "). A summary masks them so that one failure is one group.
var (
	reasonQuoted   = regexp.MustCompile(`(^|\s)'[^']*'`) // after a space: not the one of "field's"
	reasonPosition = regexp.MustCompile(`\[\d+:\d+\] ?`)
)

// GroupReason is the reason a summary groups by: ids, values and positions masked, then cut
// to ParkedReasonMax runes. A source error (error type "source") is not masked: what it
// quotes are the names of columns and tables, which say what to fix.
func GroupReason(errType, s string) string {
	if errType == indexer.ErrTypeSource {
		return CutReason(s)
	}
	s = reasonPosition.ReplaceAllString(s, "")
	return CutReason(reasonQuoted.ReplaceAllString(s, "$1'…'"))
}

// CutReason bounds a reason to ParkedReasonMax runes.
func CutReason(s string) string {
	if utf8.RuneCountInString(s) <= ParkedReasonMax {
		return s
	}
	r := []rune(s)
	return string(r[:ParkedReasonMax]) + "…"
}

func (s *summarizer) add(p Parked) {
	if s.idx == nil {
		s.idx = map[[3]string]int{}
	}
	key := [3]string{p.Cluster, p.ErrorType, GroupReason(p.ErrorType, p.Reason)}
	i, ok := s.idx[key]
	if !ok && len(s.groups) >= parkedGroupsMax {
		key = [3]string{"", "", "(other)"}
		i, ok = s.idx[key]
	}
	if !ok {
		i = len(s.groups)
		s.idx[key] = i
		s.groups = append(s.groups, ParkedGroup{Cluster: key[0], ErrorType: key[1], Reason: key[2], First: p.Position, FirstID: p.ID})
	}
	g := &s.groups[i]
	g.Count++
	if !p.FirstSeen.IsZero() && (g.OldestAt.IsZero() || p.FirstSeen.Before(g.OldestAt)) {
		g.OldestAt = p.FirstSeen
	}
}

func (s *summarizer) summary() ParkedSummary {
	gs := slices.Clone(s.groups)
	slices.SortStableFunc(gs, func(a, b ParkedGroup) int {
		switch {
		case a.OldestAt.IsZero() && b.OldestAt.IsZero():
			return 0
		case a.OldestAt.IsZero(): // unknown age last
			return 1
		case b.OldestAt.IsZero():
			return -1
		}
		return a.OldestAt.Compare(b.OldestAt)
	})
	total := 0
	for _, g := range gs {
		total += g.Count
	}
	return ParkedSummary{Groups: gs, Total: total}
}

// SummarizeParked counts the parked messages by cluster, error type and reason, and leaves
// every one of them in the queue.
func SummarizeParked(ctx context.Context, opts ParkedOptions) (ParkedSummary, error) {
	var s summarizer
	remaining, err := ScanParked(ctx, opts, func(p Parked) error { s.add(p); return nil })
	if err != nil {
		return ParkedSummary{}, err
	}
	sum := s.summary()
	sum.Remaining = remaining
	return sum, nil
}

// ScanParked calls fn with each message the parked queue holds when it starts (up to
// opts.Limit), in queue order, and returns how many it left unread. It consumes nothing: the
// messages are got with manual ack on one channel and all return to the queue, in their
// order, when it closes unacked.
func ScanParked(ctx context.Context, opts ParkedOptions, fn func(Parked) error) (remaining int, err error) {
	opts = opts.withDefaults()
	conn, err := dialParked(opts.URL)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ch, n, err := openParked(conn, opts.Parked)
	if err != nil {
		return 0, err
	}
	defer ch.Close() // nothing is acked: every message got returns to the queue
	for i := 1; i <= min(n, opts.Limit); i++ {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("read parked queue: %w", err)
		}
		d, ok, err := ch.Get(opts.Parked, false)
		if err != nil {
			return 0, fmt.Errorf("get parked message: %w", err)
		}
		if !ok {
			break
		}
		if err := fn(parkedFrom(d, i)); err != nil {
			return 0, err
		}
	}
	return max(n-opts.Limit, 0), nil
}

// ShowParked returns the parked message that sel names, a position (1-based, queue order)
// or an id (Parked.ID), and leaves every message in the queue. It reads the whole queue (up
// to opts.Limit) even when it finds the message early: RabbitMQ 3.x puts what a channel
// returns at the tail of a quorum queue, so a partial read would rotate the queue's order.
func ShowParked(ctx context.Context, opts ParkedOptions, sel string) (Parked, error) {
	pos, err := strconv.Atoi(sel)
	if err == nil && pos < 1 {
		return Parked{}, fmt.Errorf("show parked message: position %d: want 1 or more", pos)
	}
	var found *Parked
	_, err = ScanParked(ctx, opts, func(p Parked) error {
		if found == nil && (p.Position == pos || p.ID == sel) {
			found = &p
		}
		return nil
	})
	if err != nil {
		return Parked{}, err
	}
	if found == nil {
		return Parked{}, ErrNoParked
	}
	return *found, nil
}

// ErrNoParked is returned by ShowParked when no parked message has that position or id.
var ErrNoParked = errors.New("no such parked message")

// ReplayCounts is what a replay did.
type ReplayCounts struct {
	Replayed  int `json:"replayed"` // published to the change queue, confirmed, then acked from parked
	Kept      int `json:"kept"`     // did not match: left in the parked queue
	Remaining int `json:"not_read"` // beyond the limit: left in the parked queue, not read
}

// ReplayParked publishes every parked message that f selects back to the change queue and
// acks it from the parked queue only after the broker confirmed that publish: an interrupted
// replay loses nothing, and a message may be replayed twice (versioned writes make that
// harmless). What does not match stays parked. With dryRun nothing is published or acked.
// each, when not nil, is called with every selected message before it is published.
// Only the messages parked when it starts are read, so that what the replay parks again is
// not replayed in a loop.
func ReplayParked(ctx context.Context, opts ParkedOptions, f ParkedFilter, now time.Time, dryRun bool, each func(Parked)) (ReplayCounts, error) {
	opts = opts.withDefaults()
	conn, err := dialParked(opts.URL)
	if err != nil {
		return ReplayCounts{}, err
	}
	defer conn.Close()
	get, n, err := openParked(conn, opts.Parked)
	if err != nil {
		return ReplayCounts{}, err
	}
	defer get.Close() // what is not acked returns to the parked queue
	pub, returns, err := openReplay(conn, opts.Queue)
	if err != nil {
		return ReplayCounts{}, err
	}
	defer pub.Close()
	r := &replayer{get: get, pub: pub, returns: returns, queue: opts.Queue}
	read := 0
	for read < min(n, opts.Limit) {
		if err := ctx.Err(); err != nil {
			return r.counts, fmt.Errorf("replay parked messages: %w", err)
		}
		d, ok, err := get.Get(opts.Parked, false)
		if err != nil {
			return r.counts, fmt.Errorf("get parked message: %w", err)
		}
		if !ok {
			break
		}
		read++
		p := parkedFrom(d, read)
		if !f.Match(p, now) {
			r.counts.Kept++
			continue
		}
		if each != nil {
			each(p)
		}
		if dryRun {
			r.counts.Replayed++
			continue
		}
		if err := r.replay(ctx, d); err != nil {
			return r.counts, err
		}
	}
	if err := r.flush(ctx); err != nil {
		return r.counts, err
	}
	r.counts.Remaining = max(n-read, 0)
	return r.counts, nil
}

// openReplay opens the confirmed channel replays are published on, after checking that the
// change queue exists.
func openReplay(conn *amqp.Connection, queue string) (*amqp.Channel, <-chan amqp.Return, error) {
	pub, err := conn.Channel()
	if err != nil {
		return nil, nil, fmt.Errorf("open publish channel: %w", err)
	}
	if _, err := pub.QueueDeclarePassive(queue, true, false, false, false, nil); err != nil {
		pub.Close()
		return nil, nil, fmt.Errorf("inspect change queue %s: %w", queue, err)
	}
	if err := pub.Confirm(false); err != nil {
		pub.Close()
		return nil, nil, fmt.Errorf("enable confirms: %w", err)
	}
	// Published mandatory: if the change queue vanished, the broker returns the message
	// (then still acks it); amqp091 hands the Return over before that ack.
	return pub, pub.NotifyReturn(make(chan amqp.Return, replayWindow)), nil
}

// replayer publishes parked deliveries to the change queue and acks each on the parked
// channel only after the broker confirmed its replay and returned none: an interrupted
// replay leaves every message parked or replayed, never neither.
type replayer struct {
	get, pub *amqp.Channel
	returns  <-chan amqp.Return
	queue    string
	window   []pendingReplay // at most replayWindow
	counts   ReplayCounts
}

type pendingReplay struct {
	tag uint64
	dc  *amqp.DeferredConfirmation
}

func (r *replayer) replay(ctx context.Context, d amqp.Delivery) error {
	dc, err := r.pub.PublishWithDeferredConfirmWithContext(ctx, "", r.queue, true, false, ReplayPublishing(d))
	if err != nil {
		return fmt.Errorf("publish replay: %w", err)
	}
	r.window = append(r.window, pendingReplay{tag: d.DeliveryTag, dc: dc})
	if len(r.window) >= replayWindow {
		return r.flush(ctx)
	}
	return nil
}

// flush waits for the confirms of the window, then acks its parked deliveries.
func (r *replayer) flush(ctx context.Context) error {
	for _, p := range r.window {
		ok, err := p.dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("wait for replay confirm: %w", err)
		}
		if !ok {
			return errors.New("replay parked messages: the broker refused a publish (nack); it stays parked")
		}
	}
	select {
	case ret := <-r.returns:
		return fmt.Errorf("replay parked messages: the broker returned a message for %q (%d %s); it stays parked", ret.RoutingKey, ret.ReplyCode, ret.ReplyText)
	default:
	}
	for _, p := range r.window {
		if err := r.get.Ack(p.tag, false); err != nil {
			return fmt.Errorf("ack parked message: %w", err)
		}
		r.counts.Replayed++
	}
	r.window = r.window[:0]
	return nil
}

// ReplayPublishing is the change-queue message that replays parked delivery d: the same body
// and content-encoding, persistent, without x-wye-target (written to every cluster, the
// entity re-read fresh), without the failure headers and the attempt count (a fresh start);
// x-wye-first-seen is kept, so that a message parked again shows its real age.
func ReplayPublishing(d amqp.Delivery) amqp.Publishing {
	var h amqp.Table
	if s, ok := d.Headers[HeaderFirstSeen].(string); ok {
		h = amqp.Table{HeaderFirstSeen: s}
	}
	return amqp.Publishing{
		ContentType: cmp.Or(d.ContentType, "application/json"), ContentEncoding: d.ContentEncoding,
		DeliveryMode: amqp.Persistent, Headers: h, Body: d.Body,
	}
}

func dialParked(url string) (*amqp.Connection, error) {
	conn, err := dial(url)
	if err != nil {
		return nil, broker.Classify("dial", err)
	}
	return conn, nil
}

// openParked opens a channel and returns it with the messages the parked queue holds now.
func openParked(conn *amqp.Connection, parked string) (*amqp.Channel, int, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, 0, fmt.Errorf("open channel: %w", err)
	}
	q, err := ch.QueueDeclarePassive(parked, true, false, false, false, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("inspect parked queue %s: %w", parked, err)
	}
	return ch, q.Messages, nil
}
