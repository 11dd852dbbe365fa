// Package mapping manages explicit, versioned index mappings per cluster.
// In: mapping files from the repository and each cluster's live mappings. Out: a plan
// (create, alias, nothing, drift) and the calls that apply it. Owns: index names and aliases.
//
// Status: not built yet (issue 5).
package mapping
