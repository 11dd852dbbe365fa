package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// server is an *amqp.Error as amqp091-go builds it from a connection.close or channel.close.
func server(code int, reason string) *amqp.Error {
	return &amqp.Error{Code: code, Reason: reason, Server: true, Recover: code != amqp.ConnectionForced}
}

// TestBrokerMisconfigurationIsNotMistakenForABlip prevents two failures of the retry loops'
// reports: a misconfiguration (wrong password, missing permission, unknown vhost, a queue
// declared with other arguments) retried forever while logged like a network blip, and a blip
// (broker restart, network loss, resource alarm) reported as needing an operator.
func TestBrokerMisconfigurationIsNotMistakenForABlip(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
		code      int
	}{
		{"wrong password (RabbitMQ closes with 403)", fmt.Errorf("dial broker: %w",
			server(amqp.AccessRefused, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN")), true, 403},
		{"wrong password (socket closed without a reply)", fmt.Errorf("dial broker: %w", amqp.ErrCredentials), true, 403},
		{"no shared SASL mechanism", fmt.Errorf("dial broker: %w", amqp.ErrSASL), true, 403},
		{"no access to the vhost", fmt.Errorf("dial broker: %w", amqp.ErrVhost), true, 403},
		{"no write permission on the exchange", fmt.Errorf("declare exchange wye.changes: %w",
			server(amqp.AccessRefused, "ACCESS_REFUSED - access to exchange 'wye.changes' in vhost '/' refused")), true, 403},
		{"queue declared with other arguments", fmt.Errorf("declare queue wye.index: %w",
			server(amqp.PreconditionFailed, "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit'")), true, 406},
		{"unknown vhost", fmt.Errorf("dial broker: %w",
			server(amqp.NotAllowed, "NOT_ALLOWED - vhost nope not found")), true, 530},
		{"queue deleted under wye", fmt.Errorf("inspect queue wye.parked: %w",
			server(amqp.NotFound, "NOT_FOUND - no queue 'wye.parked' in vhost '/'")), true, 404},

		{"broker down", fmt.Errorf("dial broker: %w", refused), false, 0},
		{"connection reset", fmt.Errorf("publish: %w", &net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}), false, 0},
		{"connection lost mid-frame", io.ErrUnexpectedEOF, false, 0},
		{"write blocked past the deadline (resource alarm)", fmt.Errorf("publish: %w", os.ErrDeadlineExceeded), false, 0},
		{"confirm wait timed out", fmt.Errorf("wait for publish confirm: %w", context.DeadlineExceeded), false, 0},
		{"channel or connection closed", fmt.Errorf("ack batch: %w", amqp.ErrClosed), false, amqp.ChannelError},
		{"broker restart or operator close", fmt.Errorf("broker connection closed: %w",
			server(amqp.ConnectionForced, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'")), false, 320},
		{"broker internal error", fmt.Errorf("declare queue wye.index: %w",
			server(amqp.InternalError, "INTERNAL_ERROR - timeout waiting for the quorum leader")), false, 541},
		{"queue full (nack)", errors.New("broker nacked message 7 (queue full or unavailable)"), false, 0},
		{"typed nil close reason", fmt.Errorf("closed: %w", error((*amqp.Error)(nil))), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Classify("op", tc.err)
			e, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("Classify(%v) = %T, want *broker.Error", tc.err, err)
			}
			if e.Permanent != tc.permanent || e.Code != tc.code || e.Op != "op" {
				t.Errorf("Classify(%v) = {Op %q Permanent %v Code %d}, want {Op \"op\" Permanent %v Code %d}",
					tc.err, e.Op, e.Permanent, e.Code, tc.permanent, tc.code)
			}
			if !errors.Is(err, tc.err) || err.Error() != tc.err.Error() {
				t.Errorf("Classify hides the error it classifies: %v", err)
			}
		})
	}
}

// TestClassifyKeepsTheFirstClassification prevents an outer loop from burying the step that
// failed: classifying an already classified error returns it unchanged, and nil stays nil.
func TestClassifyKeepsTheFirstClassification(t *testing.T) {
	if err := Classify("dial", nil); err != nil {
		t.Fatalf("Classify(nil) = %v", err)
	}
	inner := Classify("declare", fmt.Errorf("declare queue q: %w", server(amqp.PreconditionFailed, "inequivalent arg")))
	outer := Classify("session", fmt.Errorf("session: %w", inner))
	e, ok := errors.AsType[*Error](outer)
	if !ok || e != inner || e.Op != "declare" || !e.Permanent {
		t.Errorf("reclassified: %#v", e)
	}
}
