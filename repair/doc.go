// Package repair re-indexes exactly the documents a slave missed, from its repair ledger
// (docs/operations.md, "Repair a slave").
// In: the cluster's pending ledger entries (control.Store.Pending), a page at a time; the
// source, read in a consistent snapshot with the version of its binlog position.
// Out: each entry's document as the source holds it now (indexer.Model.Denormalize), or a
// versioned delete when its root row is gone, written through the cluster's
// indexer.ClusterWriter; the entries whose write a fetch (_mget) proved marked repaired.
//
// Invariant (docs/architecture.md, "Resync"): a repair writes with the version of a snapshot
// position read before its rows, in cdc's epoch, exactly as the nightly resync does, so a
// stream write made after the snapshot (higher version) wins in any order. It never writes
// below an entry's missed version: such an entry is left pending (see Run).
package repair
