// Package nightly resyncs every cluster from a consistent MySQL snapshot.
// In: a snapshot read of the entity tables and its binlog position. Out: versioned writes
// to every cluster, orphan removal and a small report. Owns: resync runs in the control schema.
//
// Status: not built yet.
package nightly
