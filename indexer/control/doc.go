// Package control keeps the indexer's state in the control schema.
// In: cluster roles seeded from the configuration, entity ids a slave missed. Out: the
// current master (polled, so a promote is seen without a restart), the repair ledger rows.
// Owns: the cluster_roles and repair_ledger tables.
package control
