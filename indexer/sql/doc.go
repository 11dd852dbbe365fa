// Package sql reads the source database for the indexer.
// In: table, columns, a key column and an IN list of values. Out: rows encoded as indexer
// Values, in the cdc message encoding. Owns: the SQL text and consistent read snapshots.
package sql
