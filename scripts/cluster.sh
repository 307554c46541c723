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
#   CLUSTER_DB_NAME     the database's name (default pulseboard_cluster)
#   CLUSTER_PORTS       the two instances' ports (default 3101,3102)
#   CLUSTER_WORK        logs, secret and nginx files (default target/cluster)
#   CLUSTER_BIN         the server binary (default: the release build)
#
# No sticky sessions: nginx spreads requests and sockets round-robin, and a
# client that reconnects to the other instance resumes from the shared
# stream. A browser can pin itself to one instance with the cookie
# `pulseboard_instance=1` (or 2), to watch two instances side by side.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${CLUSTER_PORT:-3000}"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379/}"
pg="${CLUSTER_DATABASE:-postgres://postgres@127.0.0.1:5432}"
bin="${CLUSTER_BIN:-target/release/pulseboard}"
work="${CLUSTER_WORK:-target/cluster}"
db_name="${CLUSTER_DB_NAME:-pulseboard_cluster}"
IFS=, read -r port1 port2 <<<"${CLUSTER_PORTS:-3101,3102}"
[[ "$work" = /* ]] || work="$PWD/$work"
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
if [[ ! "$db_name" =~ ^[a-z_][a-z0-9_]*$ ]]; then
  echo "CLUSTER_DB_NAME must be a plain lowercase name" >&2
  exit 1
fi
if [[ "$(psql "$pg/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db_name'")" != 1 ]]; then
  psql "$pg/postgres" -qc "CREATE DATABASE $db_name"
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
pid $work/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/tmp/body;
  proxy_temp_path $work/tmp/proxy;
  fastcgi_temp_path $work/tmp/fastcgi;
  uwsgi_temp_path $work/tmp/uwsgi;
  scgi_temp_path $work/tmp/scgi;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  map \$cookie_pulseboard_instance \$backend { default pulseboard; 1 instance1; 2 instance2; }
  upstream pulseboard {
    server 127.0.0.1:$port1 max_fails=1 fail_timeout=2s;
    server 127.0.0.1:$port2 max_fails=1 fail_timeout=2s;
  }
  upstream instance1 { server 127.0.0.1:$port1; }
  upstream instance2 { server 127.0.0.1:$port2; }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://\$backend;
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

ports=("$port1" "$port2")
for n in 1 2; do
  PULSEBOARD_JWT_SECRET="$(cat "$work/jwt-secret")" LEPTOS_ENV="${LEPTOS_ENV:-PROD}" \
    "$bin" --addr "127.0.0.1:${ports[$((n - 1))]}" --data-dir "$work/instance-$n" \
    --redis-url "$redis_url" --database-url "$pg/$db_name" \
    --allowed-origins "http://127.0.0.1:$port,http://localhost:$port" \
    --max-connections-per-address 4096 --trusted-proxies 127.0.0.1 \
    >"$work/logs/instance-$n.log" 2>&1 &
  pids+=($!)
done
for n in 1 2; do
  url="http://127.0.0.1:${ports[$((n - 1))]}/readyz"
  for _ in $(seq 100); do
    curl -fsS "$url" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "$url" >/dev/null || {
    echo "instance $n did not become ready; see $work/logs/instance-$n.log" >&2
    exit 1
  }
done
"$nginx_bin" -p "$work" -c "$work/nginx.conf" &
pids+=($!)
echo "Pulseboard cluster: http://127.0.0.1:$port (instances on $port1 and $port2, logs in $work/logs). Ctrl-C stops it."
wait -n "${pids[@]}" || true
echo "a process of the cluster exited; stopping the rest" >&2
