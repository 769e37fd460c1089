# imgctl — see README.md. `make run` and `make test` install what they need.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export CGO_ENABLED := 1
# buildah's chroot isolation needs cgo; these tags drop drivers and libraries we do not use.
GOTAGS := containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper,libsqlite3
export GOFLAGS := -tags=$(GOTAGS)
BIN := bin/imgctl
STATE ?= /var/lib/imgctl

.PHONY: all deps build test test-unit test-e2e run bench lint clean

all: build

deps:
	@scripts/install-deps.sh
	@go mod download

build: deps
	go build -o $(BIN) ./cmd/imgctl
	CGO_ENABLED=0 GOFLAGS= go build -trimpath -ldflags='-s -w' -o bin/imgctl-agent ./cmd/imgctl-agent

# Unit tests, then the end-to-end tests under test/ (namespaces, registry, QEMU).
test: build
	go vet ./...
	go test -count=1 -timeout 30m $$(go list ./... | grep -v 'imgctl/test')
	@pkgs=$$(go list ./test/... 2>/dev/null); if [ -n "$$pkgs" ]; then go test -count=1 -timeout 60m -v $$pkgs; fi

run: build
	@scripts/run.sh

bench: build
	@mkdir -p bench/results
	@scripts/bench.sh

clean:
	rm -rf bin
