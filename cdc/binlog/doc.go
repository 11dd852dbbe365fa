// Package binlog adapts a MySQL/MariaDB source's binlog to the cdc reader (cdc.Binlog).
// In: the replication stream of the followed tables (go-mysql BinlogSyncer), with ROW images
// and FULL row metadata. Out: cdc.Items in commit order (changes, commits, resync marks).
// Owns: the source's status (position, GTID set, identity) and the decoding of rows events.
package binlog
