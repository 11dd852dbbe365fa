// Package cluster is the client layer for one Elasticsearch or OpenSearch cluster.
// In: Options (URLs, one kind of credentials, TLS, timeout); out: a Client that knows the
// cluster's flavor and version, performs untyped esapi requests and our own _bulk bodies.
// It owns the product-header shim, flavor detection, the reading of error answers
// (NewStatusError) and the classification of answers (Classify) at the search-cluster
// boundary.
package cluster
