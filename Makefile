# Pulseboard: `make run` to serve, `make test` to test. Both install what is
# missing first (scripts/setup.sh).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# wasm-opt for release builds comes from end2end's npm packages (Debian's
# older one breaks hydration), so that directory goes first on PATH.
export PATH := $(CURDIR)/end2end/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
# cargo-leptos builds debug binaries with this flag and this variable;
# plain cargo commands get them too, so tests and builds share compiled
# dependencies (leptos reads the output name at compile time: a build
# without it would name the WASM bundle differently and the page would not
# hydrate).
CARGO_FLAGS_ENV := RUSTFLAGS="--cfg erase_components" LEPTOS_OUTPUT_NAME=pulseboard

.PHONY: run cluster dev build test test-unit test-e2e test-autobahn test-release setup setup-test lint bench soak clean

setup:
	scripts/setup.sh build

setup-test:
	scripts/setup.sh test

## Build in release mode and serve on http://127.0.0.1:3000 with the defaults.
run: setup
	cargo leptos build --release
	LEPTOS_ENV=PROD target/release/pulseboard

## Two instances on one Redis and one PostgreSQL behind nginx on
## http://127.0.0.1:3000 (see the README's scale-out section).
cluster: setup
	cargo leptos build --release
	scripts/cluster.sh

## Rebuild and reload on every change.
dev: setup
	cargo leptos watch

build: setup
	cargo leptos build

## Every test: unit and black-box Rust tests, the browser tests, and the
## Autobahn protocol conformance suite.
test: setup-test test-unit lint test-e2e test-autobahn test-release

# The store tests run on SQLite and, when a server answers locally, on
# PostgreSQL too (each in a schema of its own, dropped afterwards); override
# or empty the URL to choose. Without a server the PostgreSQL half is skipped,
# except with CI=true (passed through from the environment or the command
# line), where it fails instead.
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test

test-unit:
	$(CARGO_FLAGS_ENV) cargo test -p app --features ssr
	if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && [ -n "$(PG_TEST_URL)" ]; then \
	  export PULSEBOARD_TEST_POSTGRES="$(PG_TEST_URL)"; \
	elif [ -n "$${PULSEBOARD_TEST_POSTGRES:-}" ]; then \
	  echo "store tests use PostgreSQL from PULSEBOARD_TEST_POSTGRES"; \
	elif [ "$${CI:-}" = true ]; then \
	  echo "no PostgreSQL (none on 127.0.0.1:5432, or PG_TEST_URL empty) and CI=true: its store tests will fail" >&2; \
	else echo "no PostgreSQL (none on 127.0.0.1:5432, or PG_TEST_URL empty): its store tests are skipped"; fi; \
	$(CARGO_FLAGS_ENV) cargo test -p server
	cargo test -p pulseboard-bench

test-e2e:
	cargo leptos build
	scripts/e2e.sh

test-autobahn:
	cargo leptos build
	scripts/autobahn.sh

## What `make run` serves: the release build (optimised WASM, no erased
## components), with the browser tests run against it too.
test-release:
	cargo leptos build --release
	E2E_SERVER_BIN=target/release/pulseboard scripts/e2e.sh

lint:
	cargo fmt --all -- --check
	$(CARGO_FLAGS_ENV) cargo clippy -p server --all-targets -- -D warnings
	cargo clippy -p pulseboard-bench --all-targets -- -D warnings
	$(CARGO_FLAGS_ENV) cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

## Pulseboard side by side with the seed's FastAPI design and a minimal
## axum server, on this machine: docs/bench/results.md and fanout.svg.
bench:
	scripts/bench.sh

## Three instances on one Redis: 1,000 subscribers, 100 task changes a
## second for 60 s, every delivery checked: docs/bench/soak.json.
soak:
	scripts/soak.sh

clean:
	cargo clean
	rm -rf end2end/test-results end2end/playwright-report
