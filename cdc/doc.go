// Package cdc reads the MySQL/MariaDB binlog and publishes versioned change events.
// In: row events of the followed tables (go-mysql). Out: persistent JSON events on the
// RabbitMQ exchange, confirmed. Owns: the leader lock and the binlog checkpoint.
// Adapters: cdc/binlog (the binlog), cdc/publisher (RabbitMQ), control (checkpoints, resync
// marks and the leader lock, in the control schema).
// docs/cdc.md documents versions, the message schema and the checkpoint rule.
package cdc
