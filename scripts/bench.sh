#!/usr/bin/env bash
# `make bench`: builds the release server and the load generator, installs
# the seed's FastAPI app into a virtualenv, and runs every scenario against
# the seed, the floor and Pulseboard on this machine. Writes
# docs/bench/results.{json,md} and docs/bench/fanout.svg.
#   scripts/bench.sh [pulseboard-bench suite options, e.g. --quick]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

step "building the release server and the load generator"
# The same environment as `make run`'s release build, so both share it.
LEPTOS_OUTPUT_NAME=pulseboard cargo build --release -p server --bin pulseboard
cargo build --release -p pulseboard-bench

venv=target/bench/venv
stamp="$venv/.requirements"
if [[ ! -x $venv/bin/python ]] || ! cmp -s bench/seed/requirements.txt "$stamp"; then
  step "installing the seed's FastAPI app into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/seed/requirements.txt
  cp bench/seed/requirements.txt "$stamp"
fi

step "running the scenarios (progress below; about 10 minutes)"
target/release/pulseboard-bench suite "$@"
