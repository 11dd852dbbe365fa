// Package es writes documents to one Elasticsearch or OpenSearch cluster.
// In: a batch of indexer.Docs. Out: one _bulk body (version_type=external) with each action
// once per concrete index of the document's alias on that cluster (every <alias>_vN, from an
// IndexResolver), its source projected for an index that lacks some of its fields during a
// version bump, and one indexer.Result per document, decided by the alias's index.
// Owns: the body format, the per-cluster index cache, the cluster's timeout, the mapping of
// cluster classes to the indexer's. The fan-out policy is the indexer's (indexer.Stream).
package es
