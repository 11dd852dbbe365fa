// Package mapping manages explicit, versioned index mappings on every cluster.
// In: the mapping files of the repository (mappings/<index>/<vN>/, see Load) and, per cluster,
// its engine and configured version plus the live mappings, settings and aliases it reports.
// Out: a Plan (create, alias, nothing, drift), the calls that apply it, the alias switch and
// garbage collection of a version bump, and WriteTargets (indices, alias, projections) for the
// indexer. Owns: concrete index names (<prefix><index>_vN), the application-facing alias
// (<prefix><index>), the normalization that makes a live mapping comparable with the declared
// one, and the projection of a document onto an index's strict mapping.
package mapping
