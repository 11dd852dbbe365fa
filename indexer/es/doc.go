// Package es fans the indexer's documents out to every cluster.
// In: a batch of indexer.Docs. Out: per cluster one _bulk body (version_type=external) with each
// action once per write target of that cluster (every <alias>_vN, from a TargetResolver), sent
// to the master synchronously (results per item) and to each slave asynchronously.
// Owns: the body format, the write-target cache, per-cluster timeouts and queues, slave failure
// counting and ledger.
package es
