// Package e2e holds the end-to-end tests that run against the real local stack (MariaDB,
// RabbitMQ, Elasticsearch 7.17, Elasticsearch 8.14, OpenSearch 2.19) started by stack/stack.sh.
// In: the stack's endpoints (WYE_E2E_* env, defaults match stack.sh). Out: pass/fail.
// A test whose server is unreachable fails; it never skips (CI or not).
package e2e
