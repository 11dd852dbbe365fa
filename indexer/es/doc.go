// Package es fans the indexer's documents out to every cluster.
// In: a batch of indexer.Docs. Out: one _bulk body (version_type=external) sent as the same
// bytes to the master (synchronously, results per item) and to each slave (asynchronously).
// Owns: the body format, per-cluster timeouts and queues, slave failure counting and ledger.
package es
