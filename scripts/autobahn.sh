#!/usr/bin/env bash
# Runs the Autobahn|Testsuite (all 517 cases, compression included) against
# the server's dedicated echo route, and fails on any grade other than OK,
# NON-STRICT or INFORMATIONAL. Needs the server binary built
# (`cargo build -p server` or `cargo leptos build`).
#   scripts/autobahn.sh [kosoku options, e.g. -i '1.*']
# It also fails, with a message saying why, when the server never answers
# /healthz, and when fewer cases ran than expected: all 517 when no options
# are given; with options (a filter such as -i '1.*' or -x '12.*'), the
# expected count depends on the filter, so then at least one case must run.
# The count comes from the report the runner writes (target/autobahn-report/:
# index.json, plus one JSON per case).
set -euo pipefail
cd "$(dirname "$0")/.."

expected_all=517

fail() {
  echo "autobahn: FAILED: $*" >&2
  exit 1
}

venv=target/autobahn-venv
if [[ ! -x $venv/bin/kosoku ]]; then
  echo "==> installing the kosoku Autobahn runner into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kosoku==0.1.0"
fi

bin="${AUTOBAHN_SERVER_BIN:-target/debug/pulseboard}"
command -v "$bin" >/dev/null || fail "no server binary at $bin (build it: cargo build -p server, or cargo leptos build)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
data="$(mktemp -d)"
out=target/autobahn-report
# The conformance client opens hundreds of sockets a second from one
# address: the per-address handshake rate is not what it tests.
"$bin" --addr "127.0.0.1:$port" --data-dir "$data" --autobahn-echo \
  --ws-ping-interval-secs 0 --ws-handshakes-per-sec 0 --log warn &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
healthy=
for _ in $(seq 100); do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
    healthy=1
    break
  fi
  kill -0 "$pid" 2>/dev/null || fail "the server ($bin) exited before it answered /healthz"
  sleep 0.1
done
[[ -n $healthy ]] ||
  fail "the server ($bin) never answered http://127.0.0.1:$port/healthz (100 tries, 10 s)"
rm -rf "$out"
status=0
"$venv/bin/kosoku" -m fuzzingclient -p 2 -o "$out" "$@" "ws://127.0.0.1:$port/autobahn" || status=$?
((status == 0)) || fail "the runner exited with status $status (failed cases above; report in $out/)"

# How many cases the report holds: entries in index.json, which must match
# the per-case JSON files next to it.
ran="$(python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
index = out / "index.json"
if not index.is_file():
    print(0)
    sys.exit()
cases = [c for agent in json.loads(index.read_text()).values() for c in agent.values()]
files = list(out.glob("*_case_*.json"))
missing = [c["reportfile"] for c in cases if not (out / c["reportfile"]).is_file()]
if missing or len(files) != len(cases):
    sys.exit(f"index.json lists {len(cases)} cases but {len(files)} case reports exist"
             f" (missing: {', '.join(missing[:5]) or 'none'})")
print(len(cases))
PY
)" || fail "the report in $out/ is inconsistent"
if (($# == 0)); then
  ((ran >= expected_all)) ||
    fail "only $ran of the $expected_all Autobahn cases ran (report in $out/)"
else
  ((ran >= 1)) || fail "no Autobahn case ran (does the filter '$*' select any?)"
fi
echo "autobahn: all $ran cases ran and passed"
