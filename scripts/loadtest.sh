#!/usr/bin/env bash
# Load test: cached `POST /extract` through riptide's whole middleware stack, beside a plain
# axum hello-world (crates/riptide-api/examples/hello.rs), same run, same cores.
#
#   scripts/loadtest.sh                 # embedded store
#   STORE=redis scripts/loadtest.sh     # a redis-server started here on a free port
#
# Needs wrk, curl and jq (apt-get install -y wrk curl jq; redis-server for STORE=redis).
# Servers are pinned to CPU 0 and wrk to CPU 1 (taskset), so both servers get the same
# single core. Settings: CONNECTIONS (32), DURATION (10s), ROUNDS (3, alternating
# hello / riptide so drift hits both), THREADS (wrk threads, 2).
set -euo pipefail
cd "$(dirname "$0")/.."

STORE=${STORE:-embedded}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

for tool in wrk curl jq taskset; do
    command -v "$tool" >/dev/null || { echo "loadtest: $tool is missing (apt-get install -y wrk curl jq util-linux)" >&2; exit 1; }
done

cargo build --release -q -p riptide-api --bin riptide --example hello --example pages
BIN=target/release
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || shuf -i 20000-60000 -n 1; }
wait_http() {
    for _ in $(seq 1 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "loadtest: $1 did not come up" >&2; exit 1
}

HELLO_PORT=$(free_port); PAGES_PORT=$(free_port); RIPTIDE_PORT=$(free_port)
taskset -c "$SERVER_CPU" "$BIN/examples/hello" "127.0.0.1:$HELLO_PORT" 2>"$work/hello.log" & pids+=($!)
"$BIN/examples/pages" "127.0.0.1:$PAGES_PORT" crates/riptide-api/tests/fixtures 2>"$work/pages.log" & pids+=($!)

redis_url=embedded
if [ "$STORE" = redis ]; then
    REDIS_PORT=$(free_port)
    taskset -c "$CLIENT_CPU" redis-server --port "$REDIS_PORT" --save "" --appendonly no --dir "$work" >"$work/redis.log" & pids+=($!)
    redis_url="redis://127.0.0.1:$REDIS_PORT"
    for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
fi

mkdir -p "$work/config"
# The page server is on loopback, which the SSRF guard refuses unless allowed.
sed -e 's|^  allow_addresses: \[\]|  allow_addresses: ["127.0.0.1/32"]|' config/riptide.yml >"$work/config/riptide.yml"
grep -q '127.0.0.1/32' "$work/config/riptide.yml" || { echo "loadtest: could not allow 127.0.0.1 in the config copy" >&2; exit 1; }
(
    cd "$work"
    REDIS_URL=$redis_url RIPTIDE_LISTEN=127.0.0.1:$RIPTIDE_PORT RIPTIDE_DATA_DIR=$work/data \
        RIPTIDE_LOG_LEVEL=warn \
        exec taskset -c "$SERVER_CPU" "$OLDPWD/$BIN/riptide" serve >"$work/riptide.log" 2>&1
) & pids+=($!)
wait_http "http://127.0.0.1:$HELLO_PORT/"
wait_http "http://127.0.0.1:$RIPTIDE_PORT/readyz"

RIPTIDE=http://127.0.0.1:$RIPTIDE_PORT
for _ in $(seq 1 100); do [ -s "$work/data/admin-token" ] && break; sleep 0.05; done
ADMIN_TOKEN=$(cat "$work/data/admin-token")
curl -fsS -X POST "$RIPTIDE/admin/tenants" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'content-type: application/json' \
    -d '{"tenant_id":"load","name":"Load test","owner_email":"ops@example.test","owner_name":"Ops","billing_plan":"enterprise","quotas":{"operations_per_minute":1000000000,"data_transfer_bytes":1000000000000000}}' >/dev/null
API_KEY=$(curl -fsS -X POST "$RIPTIDE/admin/tenants/load/keys" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'content-type: application/json' -d '{"name":"load"}' | jq -r .secret)
BODY="{\"url\":\"http://127.0.0.1:$PAGES_PORT/article.html\"}"
# Fill the cache once; every measured request is a HIT.
cache=$(curl -fsS -o /dev/null -D - -X POST "$RIPTIDE/extract" -H "Authorization: Bearer $API_KEY" \
    -H 'X-Tenant-ID: load' -H 'content-type: application/json' -d "$BODY" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}')
[ "$cache" = MISS ] || { echo "loadtest: first /extract said X-Cache: $cache" >&2; exit 1; }

# Both servers get the same request; riptide's carries the tenant's credentials too.
cat >"$work/hello.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.0f %.3f %.3f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests))
end
LUA
cat "$work/hello.lua" - >"$work/extract.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $API_KEY"
wrk.headers["X-Tenant-ID"] = "load"
LUA

run() { # name url script
    taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$3" "$2" | awk -v n="$1" '/^RESULT/{print n, $2, $3, $4, $5, $6}'
}
# Warm-up, not recorded.
run warmup "$RIPTIDE/extract" "$work/extract.lua" >/dev/null
run warmup "http://127.0.0.1:$HELLO_PORT/extract" "$work/hello.lua" >/dev/null

echo "store=$STORE connections=$CONNECTIONS duration=$DURATION rounds=$ROUNDS cpus: servers=$SERVER_CPU wrk=$CLIENT_CPU"
printf '%-6s %-8s %10s %9s %9s %7s\n' round server req/s p50_ms p99_ms errors
hello_sum=0; riptide_sum=0
for round in $(seq 1 "$ROUNDS"); do
    read -r _ h_rps h_p50 h_p99 h_err _ < <(run hello "http://127.0.0.1:$HELLO_PORT/extract" "$work/hello.lua")
    read -r _ r_rps r_p50 r_p99 r_err _ < <(run riptide "$RIPTIDE/extract" "$work/extract.lua")
    printf '%-6s %-8s %10s %9s %9s %7s\n' "$round" hello "$h_rps" "$h_p50" "$h_p99" "$h_err"
    printf '%-6s %-8s %10s %9s %9s %7s\n' "$round" riptide "$r_rps" "$r_p50" "$r_p99" "$r_err"
    hello_sum=$((hello_sum + h_rps)); riptide_sum=$((riptide_sum + r_rps))
done
awk -v r="$riptide_sum" -v h="$hello_sum" 'BEGIN { printf "ratio riptide/hello req/s: %.3f (budget >= 0.5)\n", r / h }'
# What riptide answered and what its cache did: every measured request is a hit (the
# errors column counts any non-2xx answer).
curl -fsS "$RIPTIDE/metrics" | grep -E '^(http_requests_total\{.*route="/extract"|cache_operations_total\{.*tenant_id="load")' || true
