// Package cdc reads the MySQL/MariaDB binlog and publishes versioned change events.
// In: row events of the followed tables (go-mysql). Out: persistent JSON events on the
// RabbitMQ exchange, confirmed. Owns: the leader lock and the binlog checkpoint.
//
// Status: not built yet (issue 3). The e2e suite already proves the source's binlog is
// in ROW/FULL format and streams to the replication user.
package cdc
