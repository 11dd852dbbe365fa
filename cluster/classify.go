package cluster

import (
	"errors"
	"fmt"
)

// Class is what the caller should do with the outcome of one write (a bulk item or a
// request). The table lives in Classify and nowhere else.
type Class int

const (
	// OK: the write is done (2xx, or a delete of a document that is not there).
	OK Class = iota
	// Stale: an external-version conflict; a newer version is already in the index.
	Stale
	// Retryable: try again later (408, 429, 5xx, timeout, connection failure).
	Retryable
	// Permanent: the same write will fail again (mapping, parsing, illegal argument).
	Permanent
)

func (c Class) String() string {
	switch c {
	case OK:
		return "ok"
	case Stale:
		return "stale"
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Classify is the one classification function at the search-cluster boundary. status is the
// HTTP status of a bulk item or of a whole request, errType the Elasticsearch error type
// ("" if none) and op the operation ("index", "create", "update", "delete", "bulk", ...).
//
//	2xx                                   -> OK
//	409 version_conflict_engine_exception -> Stale
//	404 on delete                         -> OK (already gone)
//	408, 429, 5xx                         -> Retryable (408 is a timeout: DESIGN.md)
//	anything else (4xx mapping, parsing,
//	illegal argument, 3xx, unknown)       -> Permanent
//
// Transport failures have no status: they surface as *TransportError, which is Retryable.
func Classify(status int, errType string, op string) Class {
	switch {
	case status >= 200 && status < 300:
		return OK
	case status == 409 && errType == "version_conflict_engine_exception":
		return Stale
	case status == 404 && op == "delete":
		return OK
	case status == 408 || status == 429 || (status >= 500 && status < 600):
		return Retryable
	}
	return Permanent
}

// ClassOf reads the class of an error returned by this package: nil is OK, a
// *TransportError is Retryable, a *StatusError carries the class Classify gave it, and any
// other error (bad options, a malformed bulk body, an unexpected answer) is Permanent. It
// decides nothing itself.
func ClassOf(err error) Class {
	if err == nil {
		return OK
	}
	var te *TransportError
	if errors.As(err, &te) {
		return Retryable
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Class
	}
	return Permanent
}

// TransportError is a request that got no HTTP answer: connection refused, reset, DNS,
// TLS handshake, timeout or cancelled context. It is always Retryable; the retry loop
// checks for it with errors.As.
type TransportError struct {
	Cluster string
	Op      string // request kind, e.g. "Bulk"; empty for the detection request
	URL     string // node URL when known
	Err     error
}

func (e *TransportError) Error() string {
	s := "cluster " + e.Cluster + ": "
	if e.Op != "" {
		s += e.Op + ": "
	}
	s += "unreachable"
	if e.URL != "" {
		s += " at " + e.URL
	}
	return s + ": " + e.Err.Error()
}

func (e *TransportError) Unwrap() error { return e.Err }

// StatusError is a whole request answered with a status that Classify does not call OK
// (for a bulk: the request itself failed, not one of its items).
type StatusError struct {
	Cluster string
	Op      string
	Status  int
	Type    string // Elasticsearch error type, e.g. "es_rejected_execution_exception"
	Reason  string
	Class   Class
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("cluster %s: %s: status %d", e.Cluster, e.Op, e.Status)
	if e.Type != "" {
		s += " " + e.Type
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s + " (" + e.Class.String() + ")"
}
