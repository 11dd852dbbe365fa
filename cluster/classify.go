package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	// TooLarge: the request body exceeds the cluster's http.max_content_length: send the
	// same documents in smaller requests; a single document that large is Permanent to the
	// caller.
	TooLarge
	// Unavailable: the cluster takes no write now (a write block: index.blocks.write, the
	// flood-stage disk watermark). Like a cluster that does not answer, it says nothing about
	// the document: wait and write again.
	Unavailable
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
	case TooLarge:
		return "too_large"
	case Unavailable:
		return "unavailable"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Classify is the one classification function at the search-cluster boundary. status is the
// HTTP status of a bulk item or of a whole request, errType the Elasticsearch error type
// ("" if none) and op the operation ("index", "create", "update", "delete", "bulk", ...).
// Callers act on its answer and decide nothing else from a status or an error type.
//
//	2xx                                   -> OK
//	409 version_conflict_engine_exception -> Stale
//	404 on delete                         -> OK (already gone, or its index is)
//	413                                   -> TooLarge (split the request; see TooLarge)
//	cluster_block_exception               -> Unavailable (the cluster blocks every write)
//	index_not_found_exception (not a
//	delete answered 404)                  -> Retryable (apply creates the index)
//	408, 429, 5xx                         -> Retryable (408 is a timeout: docs/architecture.md)
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
	case status == 413:
		// The body, not a document, is refused: the same documents fit in smaller requests.
		return TooLarge
	case errType == "cluster_block_exception":
		// index.blocks.write, read_only_allow_delete after the flood-stage disk watermark: the
		// cluster refuses every write until its operator lifts the block. Nothing is wrong with
		// the document.
		return Unavailable
	case errType == "index_not_found_exception":
		// The index written to is missing: `wye mapping gc` removed it (the caller lists
		// the alias's indices again) or `wye mapping apply` has not created it yet. The
		// document is fine and a missing index is created by apply: this needs patience,
		// not parking.
		return Retryable
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

// StatusError is a request answered with a status that Classify does not call OK (for a
// bulk: the request itself failed, not one of its items). NewStatusError builds it from the
// answer; Client.Check also names the cluster.
type StatusError struct {
	Cluster string // empty when the caller did not say (NewStatusError)
	Op      string // empty when the caller did not say
	Status  int
	Type    string // Elasticsearch error type, e.g. "es_rejected_execution_exception"
	Reason  string // the error reason with its first cause, or a short prefix of another body
	Class   Class  // Classify(Status, Type, Op)
}

func (e *StatusError) Error() string {
	var b strings.Builder
	if e.Cluster != "" {
		b.WriteString("cluster " + e.Cluster + ": ")
	}
	if e.Op != "" {
		b.WriteString(e.Op + ": ")
	}
	b.WriteString("status " + strconv.Itoa(e.Status))
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	b.WriteString(" (" + e.Class.String() + ")")
	return b.String()
}

// NewStatusError reads an answer that is not 2xx (its status and whole body) into a
// *StatusError: the Elasticsearch error type, the reason with its first cause, and the
// class Classify gives it for op ("" when the request is not a document write). It is the
// one reader of error answers; Cluster is left empty.
//
// The class is Classify's whatever it is: a caller for which some non-2xx answer is fine
// (a delete answered 404) tests Class == OK, as Client.Check does.
func NewStatusError(op string, status int, body []byte) *StatusError {
	errType, reason := parseError(body)
	if errType == "" && reason == "" {
		reason = errorReason(body)
	}
	return &StatusError{Op: op, Status: status, Type: errType, Reason: reason, Class: Classify(status, errType, op)}
}

// errorReason extracts "type: reason" from an Elasticsearch error body, or a short prefix
// of any other body.
func errorReason(body []byte) string {
	errType, reason := parseError(body)
	switch {
	case errType != "" && reason != "":
		return errType + ": " + reason
	case reason != "":
		return reason
	case errType != "":
		return errType
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		return "empty body"
	}
	return s
}

// parseError reads {"error":{"type":..,"reason":..,"caused_by":{..}}} or {"error":"..."}.
func parseError(body []byte) (errType, reason string) {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Error) == 0 {
		return "", ""
	}
	var s string
	if json.Unmarshal(e.Error, &s) == nil {
		return "", s
	}
	var obj errorObject
	if json.Unmarshal(e.Error, &obj) != nil {
		return "", ""
	}
	return obj.Type, obj.fullReason()
}

// errorObject is Elasticsearch's error shape, in request errors and bulk items.
type errorObject struct {
	Type     string       `json:"type"`
	Reason   string       `json:"reason"`
	CausedBy *errorObject `json:"caused_by"`
}

// fullReason appends the first cause, which holds the useful part of a mapping error
// ("failed to parse field [x]" caused by "For input string: ...").
func (e *errorObject) fullReason() string {
	if e == nil {
		return ""
	}
	r := e.Reason
	if c := e.CausedBy; c != nil && c.Reason != "" && c.Reason != e.Reason {
		r += " (caused by " + c.Type + ": " + c.Reason + ")"
	}
	return r
}
