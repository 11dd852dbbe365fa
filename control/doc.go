// Package control owns wye's control schema in MySQL: everything that must survive a pod.
// In: cdc checkpoints and resync marks, the configured cluster roles, the ids a slave missed.
// Out: the checkpoint to resume from, the epoch floor, the leader lock (named per control
// schema), the current master (polled), the ledger.
// Owns: the schema itself, migrated forward idempotently at Open (docs/architecture.md,
// "Control schema").
package control
