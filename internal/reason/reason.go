// Package reason bounds the error reasons wye logs and stores (parked message headers, the
// repair ledger, log lines): an engine's message may quote the values it refused, and those
// are row data. Every stored or logged reason passes through Cut (docs/architecture.md,
// "Error classes").
package reason

import (
	"strings"
	"unicode/utf8"
)

// Max is the bytes a reason keeps; a longer one ends in "…".
const Max = 300

// previews are the phrases after which an engine quotes a refused value: the rest of the
// sentence is row data and is dropped.
var previews = []string{
	"Preview of field's value:", // Elasticsearch and OpenSearch mapper_parsing_exception
}

// Cut returns msg prefixed by its engine error type (when given and not already leading),
// with quoted value previews removed and at most Max bytes, cut on a character boundary.
func Cut(errType, msg string) string {
	for _, p := range previews {
		if i := strings.Index(msg, p); i >= 0 {
			rest := msg[i+len(p):]
			// The quoted value ends the sentence; keep what follows it, if anything does.
			end := len(rest)
			if j := strings.Index(rest, "'; "); j >= 0 {
				end = j + 2
			}
			msg = msg[:i] + p + " <cut>" + rest[end:]
		}
	}
	if errType != "" && !strings.HasPrefix(msg, errType) {
		msg = errType + ": " + msg
	}
	if len(msg) <= Max {
		return msg
	}
	cut := Max - len("…")
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}
