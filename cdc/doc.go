// Package cdc reads the MySQL/MariaDB binlog and publishes versioned change events.
// In: row events of the followed tables (go-mysql). Out: persistent JSON events on the
// RabbitMQ exchange, confirmed. Owns: the leader lock and the binlog checkpoint.
// Adapters: cdc/mysql (binlog, control schema, leader lock), cdc/rabbit (publisher).
// docs/cdc.md documents versions, the message schema and the checkpoint rule.
package cdc
