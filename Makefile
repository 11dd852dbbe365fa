# wye — the two commands a newcomer needs are `make demo` and `make test`.
GO      ?= go
STACK   := e2e/stack/stack.sh
BIN     := bin/wye

.PHONY: build demo test unit e2e stack-up stack-down stack-status stack-logs stack-clean vet

build:
	$(GO) build -o $(BIN) ./cmd/wye

# The first demo: stack up, sample catalog, `wye run` + a workload, live summary (Ctrl-C stops).
demo:
	bash examples/catalog/demo.sh

# The full suite: unit tests, then the e2e suite against the real stack it brings up.
# With CI=true an e2e test whose server is unreachable fails instead of skipping.
test: stack-up vet
	$(GO) test -count=1 -timeout 25m -v ./...

unit:
	$(GO) test -count=1 -short $$($(GO) list ./... | grep -v /e2e)

e2e: stack-up
	$(GO) test -count=1 -timeout 25m -v ./e2e/

vet:
	$(GO) vet ./...

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
