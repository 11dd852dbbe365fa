// Package indexer turns change events into documents and hands them to every cluster.
// In: change events (cdc message schemas 1 and 2) and targeted retry messages. Out: one
// versioned document or delete per affected entity, the master's results split into ack /
// retry / park, and what each slave missed for the ledger.
// Owns: the entity model, resolution of row events to entity ids, the denormalizer
// (Denormalize by ids, DenormalizeRange by key range) and the fan-out policies over the
// per-cluster writers (Stream for the stream, WriteAll for resync and repair).
// Adapters: indexer/sql (reads), indexer/es (one cluster's _bulk), indexer/consumer (queue, retries).
package indexer
