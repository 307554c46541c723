#!/usr/bin/env bash
# Runs the Autobahn|Testsuite (all 517 cases, compression included) against
# the server's dedicated echo route, and fails on any grade other than OK,
# NON-STRICT or INFORMATIONAL. Needs the server binary built
# (`cargo build -p server` or `cargo leptos build`).
#   scripts/autobahn.sh [kosoku options, e.g. -i '1.*']
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/autobahn-venv
if [[ ! -x $venv/bin/kosoku ]]; then
  echo "==> installing the kosoku Autobahn runner into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kosoku==0.1.0"
fi

bin="${AUTOBAHN_SERVER_BIN:-target/debug/pulseboard}"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
data="$(mktemp -d)"
out=target/autobahn-report
"$bin" --addr "127.0.0.1:$port" --data-dir "$data" --autobahn-echo \
  --ws-ping-interval-secs 0 --log warn &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
rm -rf "$out"
"$venv/bin/kosoku" -m fuzzingclient -p 2 -o "$out" "$@" "ws://127.0.0.1:$port/autobahn"
