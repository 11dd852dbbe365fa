// Package nightly resyncs every cluster from consistent MySQL snapshots (docs/nightly.md).
// In: an entity's root rows in key order, read chunk by chunk, each chunk in its own snapshot
// with the version of that snapshot's binlog position; each cluster's copies of the same
// documents, and a scan of each cluster's ids. Out: the documents that are missing or differ
// (compare.Doc), written with the snapshot's version; orphans deleted with a version; a small
// report and a gzip'd list of ids. Owns: the run (lock, resume per chunk, resync marks) through
// the control schema.
//
// Invariant (docs/architecture.md, "Resync"): every write of a resync carries the version of a
// snapshot position read before its rows, so a stream write made after the snapshot (higher
// version) wins in any order and one made before it is refused.
package nightly
