# streamd — `make run` serves a demo show, `make test` runs every test,
# `make bench` measures. Variables: ARGS (run), BENCH_ARGS (bench).
GO      ?= go
GOBIN   := $(shell $(GO) env GOPATH)/bin
export PATH := $(PATH):$(GOBIN)
ARGS    ?=
BENCH_ARGS ?=

.PHONY: run build test deps vet bench clean

build:
	$(GO) build -o bin/streamd ./cmd/streamd

run:
	$(GO) run ./cmd/streamd --demo $(ARGS)

deps:
	./scripts/deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

# -p 1: one package at a time. The browser tests measure frames and
# milliseconds; on a 2-core machine, other packages' tests running beside
# them skew what they measure (about half a minute longer in all).
test: deps vet
	$(GO) test -race -count=1 -p 1 -timeout 20m ./...

bench: deps
	$(GO) run ./bench $(BENCH_ARGS)

clean:
	rm -rf bin data bench-results
