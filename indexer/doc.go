// Package indexer turns change events into documents and hands them to every cluster.
// In: change events (cdc message schema 1) and targeted retry messages. Out: one versioned
// document or delete per affected entity, master results split into ack / retry / park.
// Owns: the entity model, resolution of row events to entity ids, and batched denormalization.
// Adapters: indexer/sql (reads), indexer/es (fan-out _bulk), indexer/rabbit (queue, retries).
package indexer
