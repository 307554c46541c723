#!/usr/bin/env bash
# `make soak`: three release instances on a redis-server of their own (a
# free loopback port, no persistence) and a fresh PostgreSQL database, then
# 1,000 subscribers spread over them and 100 task changes a second for 60 s
# sent to the instances in turn. Prints and writes docs/bench/soak.json.
#   SOAK_DATABASE  PostgreSQL server URL without a database name
#                  (default postgres://postgres@127.0.0.1:5432)
#   extra arguments go to `pulseboard-bench soak` (e.g. --duration 10)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
pg="${SOAK_DATABASE:-postgres://postgres@127.0.0.1:5432}"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

step "building the release server and the load generator"
LEPTOS_OUTPUT_NAME=pulseboard cargo build --release -p server --bin pulseboard
cargo build --release -p pulseboard-bench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work="$(mktemp -d)"
db="pb_soak_$(date +%s)_$$"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
psql "$pg/postgres" -qc "CREATE DATABASE $db"

addrs=()
for n in 1 2 3; do
  port="$(free_port)"
  PULSEBOARD_JWT_SECRET="soak secret shared by every instance of this run" \
    target/release/pulseboard --addr "127.0.0.1:$port" --data-dir "$work/i$n" \
    --redis-url "redis://127.0.0.1:$redis_port/" --database-url "$pg/$db" \
    --open-writes --max-connections-per-address 0 --publish-rate-per-sec 0 --ws-handshakes-per-sec 0 --log warn >"$work/i$n.log" 2>&1 &
  pids+=($!)
  addrs+=("127.0.0.1:$port")
done
for a in "${addrs[@]}"; do
  for _ in $(seq 100); do curl -fsS "http://$a/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fsS "http://$a/readyz" >/dev/null
done

step "soak: 3 instances, one redis-server, $(nproc) cores"
mkdir -p docs/bench
ulimit -n 20000 2>/dev/null || true
target/release/pulseboard-bench soak --addrs "$(IFS=,; echo "${addrs[*]}")" "$@" \
  | tee docs/bench/soak.json
