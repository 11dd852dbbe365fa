// Package indexer turns change events into documents and writes them to every cluster.
// In: change events from RabbitMQ. Out: versioned _bulk writes to the master and slaves,
// retries and parked messages. Owns: denormalization SQL and per-cluster fan-out.
//
// Status: not built yet (issue 4).
package indexer
