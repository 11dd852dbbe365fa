// Package diff tells clusters apart, and clusters from MySQL (docs/diff.md). In: a reference
// (one cluster, or the documents wye builds from MySQL now) and the other clusters, read page by
// page (cluster.Client's Scan and Get, indexer.Model's DenormalizeRange and Exists). Out: per
// entity and cluster pair, counts per class (missing, extra, different with the JSON paths that
// differ, empty array vs null vs missing field, version behind), a small report and a gzip'd
// list of ids. Owns: the classes and their paths (Classify, Paths) and the recheck of lag, so
// that a live stream gives no false difference.
package diff
