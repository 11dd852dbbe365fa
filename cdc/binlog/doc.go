// Package mysql adapts MySQL/MariaDB to the cdc reader.
// In: the source's binlog (go-mysql BinlogSyncer) and the control schema (database/sql).
// Out: cdc.Items in commit order, checkpoints, resync marks. Owns: the GET_LOCK leader lock.
package binlog
