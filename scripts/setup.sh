#!/usr/bin/env bash
# Installs what building and testing Pulseboard needs, skipping every step
# that is already done. Usage: scripts/setup.sh build|test
#
#   build: the wasm32 target, cargo-leptos, wasm-bindgen-cli (at exactly the
#          wasm-bindgen version in Cargo.lock), and end2end's npm packages
#          (they provide wasm-opt for release builds).
#   test:  all of the above plus Debian's chromium for the browser tests and
#          the PyPI Autobahn runner for protocol conformance.
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-build}"
CARGO_LEPTOS_VERSION="0.3.11"
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)"
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [[ "$(cargo leptos --version 2>/dev/null || true)" != *"$CARGO_LEPTOS_VERSION"* ]]; then
  step "installing cargo-leptos $CARGO_LEPTOS_VERSION (takes a while: it is built from source)"
  # no_downloads: it must not fetch tools from outside the package registries.
  # --ignore-rust-version: its lockfile names a crate that declares a newer
  # rustc than it needs.
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked \
    --features no_downloads --ignore-rust-version
fi

if [[ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]]; then
  step "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # Not --locked: its lockfile pins a crate version the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if ! command -v npm >/dev/null; then
  echo "npm is required (Node.js 20 or newer)" >&2
  exit 1
fi
if [[ ! -x end2end/node_modules/.bin/playwright || end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]]; then
  step "installing end2end's npm packages"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi

if [[ "$what" == "test" ]]; then
  if [[ ! -x /usr/bin/chromium ]]; then
    step "installing Debian's chromium"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
  fi
  # The scale-out tests start redis-server processes of their own; the
  # browser test of the cluster puts nginx in front of two instances.
  missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  if ((${#missing[@]})); then
    step "installing Debian's ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  fi
fi
