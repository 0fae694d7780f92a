#!/usr/bin/env bash
# GET /v1/systems/{id} under load from a second process (wrk), against
# `renkei up` (release build) on SQLite and on PostgreSQL, with /healthz
# (no database, no token) as the same-run baseline; on SQLite once more with
# http.metrics off, for what the request histogram costs.
#   bash services/registry/benches/http_get.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../../.."
secs=${1:-15}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
cargo build --release -q -p renkei
exe=target/release/renkei
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() {  # $1 = label, $2 = extra args, $3 = extra environment (VAR=value …)
  local label=$1
  local dir port nport pid
  dir=$(mktemp -d); port=$(free_port); nport=$(free_port)
  # One token at full speed: measure the service, not the rate limit.
  env RENKEI_RATE_LIMIT__PER_SECOND=0 ${3:-} $exe up --listen 127.0.0.1:$port --data-dir "$dir" --nats-url nats://127.0.0.1:$nport $2 >"$dir/up.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && break; sleep 0.2; done
  local base=http://127.0.0.1:$port admin op org plat sys tok
  admin=$($exe token --data-dir "$dir" --role admin)
  org=$(curl -sf -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' -d '{"name":"Ops","kind":"platform_operator"}' $base/v1/organizations | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  op=$($exe token --data-dir "$dir" --role operator --org "$org")
  plat=$(curl -sf -H "Authorization: Bearer $op" -H 'Content-Type: application/json' -d "{\"name\":\"P\",\"kind\":\"platform\",\"owner_org_id\":\"$org\",\"confidentiality\":3,\"integrity\":2,\"availability\":2}" $base/v1/systems | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  sys=$(curl -sf -H "Authorization: Bearer $op" -H 'Content-Type: application/json' -d "{\"name\":\"S\",\"kind\":\"linked\",\"owner_org_id\":\"$org\",\"platform_id\":\"$plat\",\"confidentiality\":1,\"integrity\":1,\"availability\":1}" $base/v1/systems | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  echo "### $label"
  echo "baseline GET /healthz:"
  wrk -t2 -c32 -d${secs}s --latency $base/healthz | grep -E 'Requests/sec|^ +(50|99)%'
  echo "GET /v1/systems/{id}:"
  wrk -t2 -c32 -d${secs}s --latency -H "Authorization: Bearer $op" $base/v1/systems/$sys | grep -E 'Requests/sec|^ +(50|99)%|Non-2xx'
  kill -INT $pid; wait $pid || true
  rm -rf "$dir"
}

run "SQLite (embedded default)" ""
# The same with the request histogram and /metrics off: what measuring costs.
run "SQLite, http.metrics off" "" "RENKEI_HTTP__METRICS=false"
db=renkei_bench_$$
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db" postgres
run "PostgreSQL" "--database-url postgres://postgres@127.0.0.1:5432/$db"
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE $db WITH (FORCE)" postgres
