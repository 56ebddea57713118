# notos-agent: build, test, benchmark. See README.md.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BIN       := bin/notos-agent
FUZZTIME  ?= 10s
# Tier 1 and 2 tests are heavy (namespaces, dnsmasq, QEMU): one package at a time.
TESTFLAGS ?= -count=1 -p 1 -timeout 45m

export CGO_ENABLED := 0
export NOTOS_AGENT_BIN := $(CURDIR)/$(BIN)

.PHONY: all build test unit lint fuzz bench e2e demo clean
all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/notos-agent

# The whole suite: lint, every test tier, and a short run of every fuzz target.
test: build lint
	$(GO) test $(TESTFLAGS) ./...
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# Tier 0 only: no root, no namespaces, no QEMU.
unit:
	NOTOS_TIER0_ONLY=1 $(GO) test -count=1 -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Issue 6's end-to-end suite: the not-os-like guest booted under QEMU (TCG)
# once per scenario, each proven by logging in with ssh (-v: each scenario's
# boot-to-SSH time).
E2EFLAGS ?= -count=1 -v -timeout 30m
e2e: build
	NOTOS_E2E=1 $(GO) test $(E2EFLAGS) ./test/e2e

# The first command in README.md: installs what it needs (apt), builds the
# agent, boots a VM provisioned from a mkdrive drive and logs in with ssh.
# INTERACTIVE=1 leaves the VM running (Ctrl-C stops it).
demo:
	INTERACTIVE=$(INTERACTIVE) scripts/demo.sh

fuzz:
	FUZZTIME=$${FUZZTIME:-2m} scripts/fuzz.sh

bench: build
	scripts/bench.sh

clean:
	rm -rf bin
