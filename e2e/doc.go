// Package e2e holds the end-to-end tests that run against the real local stack (MariaDB,
// RabbitMQ, Elasticsearch 7.17, Elasticsearch 8.14, OpenSearch 2.19) started by stack/stack.sh.
// In: the stack's endpoints (WYE_E2E_* env, defaults match stack.sh). Out: pass/fail.
// With CI=true a test whose server is unreachable fails; elsewhere it skips.
package e2e
