# wye — the two commands a newcomer needs are `make demo` and `make test`.
GO      ?= go
STACK   := e2e/stack/stack.sh
BIN     := bin/wye

.PHONY: build demo test unit e2e bench-e2e stack-up stack-down stack-status stack-logs stack-clean vet deploy-check

build:
	$(GO) build -o $(BIN) ./cmd/wye

# The first demo: stack up, sample catalog, `wye run` + a workload, live summary (Ctrl-C stops).
demo:
	bash examples/catalog/demo.sh

# The migration drill (examples/drill; README, "The migration drill"): es7 loaded, es8 and os2
# joined, diffs, a mapping bump, promotes, a slave cut off and repaired, a rollback, under a
# workload; one line per step and a table. DRILL_FLAGS e.g. "--keep --outage 30s --rate 100".
.PHONY: drill
drill: stack-up build
	$(GO) run ./examples/drill --wye $(BIN) $(DRILL_FLAGS)

# The full suite: unit tests, then the e2e suite against the real stack it brings up.
# With CI=true an e2e test whose server is unreachable fails instead of skipping.
test: stack-up vet
	$(GO) test -count=1 -timeout 45m -v ./...

unit:
	$(GO) test -count=1 -short $$($(GO) list ./... | grep -v /e2e)

e2e: stack-up
	$(GO) test -count=1 -timeout 45m -v ./e2e/

vet:
	$(GO) vet ./...

# The deployment material (deploy/, docs/deploy.md): manifests rendered in process (kustomize)
# and checked, alerts through promtool, dashboard metric names; then the e2e where the stack's
# Prometheus scrapes `wye run`.
deploy-check: stack-up
	$(GO) test -count=1 ./deploy/
	$(GO) test -count=1 -run '^TestPrometheusScrapesWyeRunAndEvaluatesTheAlerts$$' ./e2e/

stack-up:
	bash $(STACK) up

stack-down:
	bash $(STACK) down

stack-status:
	bash $(STACK) status

stack-logs:
	bash $(STACK) logs $(SERVICE)

stack-clean:
	bash $(STACK) clean

# The end-to-end benchmark (e2e/e2e_bench_test.go): `wye run` from binlog to documents, drain
# and live phases, flat and catalog entities; not part of `make test`. Optional:
# BASELINE=<git ref> (built with git archive, measured in alternating rounds),
# CPUPROFILE=<dir> (one profile per phase), and WYE_BENCH_* in the environment (sizes, rates;
# WYE_BENCH_LOG=info logs wye's output of each drain; WYE_BENCH_INDEXER="batch_size: 4096"
# tries indexer keys on this tree's binary only).
bench-e2e: stack-up
	mkdir -p $(or $(CPUPROFILE),/tmp)
	flock /tmp/wye-bench.lock env WYE_BENCH_BASELINE=$(BASELINE) WYE_BENCH_CPUPROFILE=$(abspath $(CPUPROFILE)) \
		$(GO) test -tags bench -count=1 -timeout 90m -v -run '^TestEndToEndBenchmark$$' ./e2e/

# The cdc and indexer benchmarks (e2e/cdc_bench_test.go, e2e/indexer_bench_test.go): wye cdc
# bench against raw binlog reads, and the indexer pipeline into 1-3 clusters against raw _bulk.
.PHONY: bench-cdc bench-indexer
bench-cdc: stack-up
	flock /tmp/wye-bench.lock $(GO) test -tags bench -count=1 -timeout 60m -v -run '^TestCDCBenchmark' ./e2e/

bench-indexer: stack-up
	flock /tmp/wye-bench.lock $(GO) test -tags bench -count=1 -timeout 60m -v -run '^TestIndexerBenchmark$$' ./e2e/

# The nightly resync benchmark (e2e/nightly_bench_test.go): initial load vs raw _bulk, resync of
# equal clusters vs a bare scan, peak RSS, report size, CPU profiles; not part of `make test`.
# ROWS=<programs>[,<programs>...] (default 100000; 100000,1000000 compares peak RSS),
# ROUNDS=<n> (default 3), PROFILES=<dir> (default: a new temporary directory, printed).
.PHONY: bench-nightly
bench-nightly: stack-up
	flock /tmp/wye-bench.lock env WYE_BENCH_NIGHTLY_ROWS=$(or $(ROWS),100000) WYE_BENCH_NIGHTLY_ROUNDS=$(or $(ROUNDS),3) \
		WYE_BENCH_NIGHTLY_DIR=$(if $(PROFILES),$(abspath $(PROFILES))) \
		$(GO) test -tags bench -count=1 -timeout 180m -v -run '^TestNightlyBenchmark$$' ./e2e/

# The diff benchmark (e2e/diff_bench_test.go): `wye diff docs` of two equal clusters vs a bare
# _source scan, peak RSS; DOCS=<programs> (default 200000).
.PHONY: bench-diff
bench-diff: stack-up
	flock /tmp/wye-bench.lock env WYE_BENCH_DIFF_DOCS=$(or $(DOCS),200000) \
		$(GO) test -tags bench -count=1 -timeout 180m -v -run '^TestDiffDocsBenchmark$$' ./e2e/
