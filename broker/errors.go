package broker

import (
	"errors"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Error is a broker failure, classified by Classify. Retry loops read it with errors.As and
// keep retrying either way; Permanent only says that retrying will not help until an operator
// changes something (credentials, permissions, a vhost, a queue declared with other arguments).
type Error struct {
	Op        string // what wye was doing: "dial", "declare", "publish", "consume", ...
	Permanent bool   // the same operation fails again until an operator acts
	Code      int    // the AMQP reply code (403, 406, 320, ...); 0 when there is none (network, timeout)
	Err       error  // the failure as amqp091-go or the network reported it, with wye's context
}

// Error returns the message of Err: Op and the class are attributes for logs, not text.
func (e *Error) Error() string { return e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Class is "permanent" or "transient", for logs and metric labels.
func (e *Error) Class() string {
	if e.Permanent {
		return "permanent"
	}
	return "transient"
}

// Classify is the one classification of errors at the broker boundary. It returns nil for
// nil, err itself if it already holds an *Error (the innermost Op is the most precise), and
// otherwise an *Error wrapping err:
//
//	403 ACCESS_REFUSED       ErrSASL, ErrCredentials, ErrVhost, no permission  -> permanent
//	404 NOT_FOUND            a queue or exchange wye expects to exist          -> permanent
//	406 PRECONDITION_FAILED  a queue declared with other arguments             -> permanent
//	530 NOT_ALLOWED          unknown vhost, connection limit reached           -> permanent
//	anything else            network errors, timeouts, ErrClosed (504),
//	                         320 CONNECTION_FORCED, 541 INTERNAL_ERROR,
//	                         resource alarms, nacks, returned messages         -> transient
//
// A 404 reaches Classify only for a resource wye expects: the passive declares that may
// miss handle their 404 themselves.
//
// The codes are those of the *amqp.Error anywhere in err's chain, so callers must wrap with
// %w, never format an *amqp.Error with %v.
func Classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*Error](err); ok {
		return err
	}
	e := &Error{Op: op, Err: err}
	if ae, ok := errors.AsType[*amqp.Error](err); ok && ae != nil {
		e.Code = ae.Code
		switch ae.Code {
		case amqp.AccessRefused, amqp.NotFound, amqp.PreconditionFailed, amqp.NotAllowed:
			e.Permanent = true
		}
	}
	// Authentication failures are permanent whatever code a future amqp091-go gives them.
	if errors.Is(err, amqp.ErrSASL) || errors.Is(err, amqp.ErrCredentials) {
		e.Permanent = true
	}
	return e
}
