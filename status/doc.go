// Package status gathers what `wye status` shows (docs/operations.md, "Status"): per cluster
// its role and promote epoch, engine, reachability, health, mapping drift, documents, highest
// version and how far it trails the master, failed writes, repair ledger; cdc's leader,
// checkpoint and lag; the queue depths; the last nightly run. Every source is a small
// interface (adapters in cmd/wye), so the rules that turn readings into problems are tested
// with fakes. Read-only: status changes nothing.
package status
