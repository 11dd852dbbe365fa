package cluster

import (
	"errors"
	"fmt"
	"testing"
)

func TestClassifyClusterAnswers(t *testing.T) {
	tests := []struct {
		status  int
		errType string
		op      string
		want    Class
	}{
		{200, "", "index", OK},
		{201, "", "index", OK},
		{200, "", "delete", OK},
		{409, "version_conflict_engine_exception", "index", Stale},
		{409, "version_conflict_engine_exception", "delete", Stale},
		{404, "", "delete", OK},
		{404, "index_not_found_exception", "index", Permanent},
		{404, "document_missing_exception", "update", Permanent},
		{429, "es_rejected_execution_exception", "index", Retryable},
		{429, "circuit_breaking_exception", "bulk", Retryable},
		{408, "", "bulk", Retryable}, // a request timeout is a timeout (DESIGN.md error classes)
		{500, "", "index", Retryable},
		{502, "", "bulk", Retryable},
		{503, "unavailable_shards_exception", "index", Retryable},
		{504, "", "delete", Retryable},
		{400, "mapper_parsing_exception", "index", Permanent},
		{400, "document_parsing_exception", "index", Permanent}, // ES 8's name for it
		{400, "strict_dynamic_mapping_exception", "index", Permanent},
		{400, "illegal_argument_exception", "index", Permanent},
		{409, "resource_already_exists_exception", "index", Permanent},
		{413, "", "bulk", Permanent},
		{301, "", "bulk", Permanent},
		{0, "", "index", Permanent},
	}
	for _, tt := range tests {
		if got := Classify(tt.status, tt.errType, tt.op); got != tt.want {
			t.Errorf("Classify(%d, %q, %q) = %v, want %v", tt.status, tt.errType, tt.op, got, tt.want)
		}
	}
}

func TestClassOfClusterErrors(t *testing.T) {
	transport := fmt.Errorf("flush: %w", &TransportError{Cluster: "c", Err: errors.New("connection reset")})
	status := fmt.Errorf("flush: %w", &StatusError{Cluster: "c", Op: "bulk", Status: 429, Class: Retryable})
	tests := []struct {
		err  error
		want Class
	}{
		{nil, OK},
		{transport, Retryable},
		{status, Retryable},
		{&StatusError{Status: 400, Class: Permanent}, Permanent},
		{errors.New("check bulk body: empty body"), Permanent},
	}
	for _, tt := range tests {
		if got := ClassOf(tt.err); got != tt.want {
			t.Errorf("ClassOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
