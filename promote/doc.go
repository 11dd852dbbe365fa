// Package promote makes a slave the master (docs/architecture.md, "Promote").
// In: the target, the configured clusters, and adapters that answer the preflight's questions
// (health, mapping drift, highest versions, a sampled diff, the repair ledger) and hold the roles.
// Out: a plan and the checks, each pass or fail, printed before any side effect; then one
// control-schema transaction (roles, epoch, journal) and the optional reader switch, rolled
// back when it fails; or, with Watch, the automatic failover when the master stays unavailable.
// It owns the order of those steps and the refusal reasons.
package promote
