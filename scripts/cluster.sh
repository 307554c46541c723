#!/usr/bin/env bash
# Two Pulseboard instances on one Redis and one PostgreSQL, behind nginx on
# one port, in the foreground; Ctrl-C stops all of them.
#
#   CLUSTER_PORT        where nginx listens (default 3000)
#   REDIS_URL           default redis://127.0.0.1:6379/
#   CLUSTER_DATABASE    PostgreSQL server URL without the database name
#                       (default postgres://postgres@127.0.0.1:5432); the
#                       database `pulseboard_cluster` is created on it if
#                       missing
#   CLUSTER_BIN         the server binary (default: the release build)
#
# No sticky sessions: nginx spreads connections round-robin, and a client
# that reconnects to the other instance resumes from the shared stream.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${CLUSTER_PORT:-3000}"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379/}"
pg="${CLUSTER_DATABASE:-postgres://postgres@127.0.0.1:5432}"
bin="${CLUSTER_BIN:-target/release/pulseboard}"
work="target/cluster"
mkdir -p "$work/logs" "$work/tmp"

if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
  echo "==> installing Debian's nginx"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx
fi
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"

if ! pg_isready -q -d "$pg/postgres"; then
  echo "PostgreSQL does not answer at $pg" >&2
  exit 1
fi
if [[ "$(psql "$pg/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = 'pulseboard_cluster'")" != 1 ]]; then
  psql "$pg/postgres" -qc "CREATE DATABASE pulseboard_cluster"
fi
if ! redis-cli -u "$redis_url" ping >/dev/null 2>&1; then
  echo "Redis does not answer at $redis_url" >&2
  exit 1
fi

# One token secret for every instance, kept across runs.
if [[ ! -s "$work/jwt-secret" ]]; then
  head -c 48 /dev/urandom | base64 | tr -d '\n' > "$work/jwt-secret"
  chmod 600 "$work/jwt-secret"
fi

cat > "$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $PWD/$work/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $PWD/$work/tmp/body;
  proxy_temp_path $PWD/$work/tmp/proxy;
  fastcgi_temp_path $PWD/$work/tmp/fastcgi;
  uwsgi_temp_path $PWD/$work/tmp/uwsgi;
  scgi_temp_path $PWD/$work/tmp/scgi;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  upstream pulseboard {
    server 127.0.0.1:3101 max_fails=1 fail_timeout=2s;
    server 127.0.0.1:3102 max_fails=1 fail_timeout=2s;
  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://pulseboard;
      proxy_http_version 1.1;
      proxy_set_header Host \$host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_read_timeout 1h;
      proxy_buffering off;
    }
  }
}
EOF

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

for n in 1 2; do
  PULSEBOARD_JWT_SECRET="$(cat "$work/jwt-secret")" LEPTOS_ENV=PROD \
    "$bin" --addr "127.0.0.1:310$n" --data-dir "$work/instance-$n" \
    --redis-url "$redis_url" --database-url "$pg/pulseboard_cluster" \
    --allowed-origins "http://127.0.0.1:$port,http://localhost:$port" \
    >"$work/logs/instance-$n.log" 2>&1 &
  pids+=($!)
done
for n in 1 2; do
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:310$n/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:310$n/readyz" >/dev/null || {
    echo "instance $n did not become ready; see $work/logs/instance-$n.log" >&2
    exit 1
  }
done
"$nginx_bin" -p "$PWD/$work" -c "$PWD/$work/nginx.conf" &
pids+=($!)
echo "Pulseboard cluster: http://127.0.0.1:$port (instances on 3101 and 3102, logs in $work/logs). Ctrl-C stops it."
wait -n "${pids[@]}" || true
echo "a process of the cluster exited; stopping the rest" >&2
