#!/usr/bin/env bash
# `make bench-cache`: the cache's throughput, in two parts recorded together in bench/RESULTS.md.
#
# 1. build/bench/cache_bench (Google Benchmark): get and put through cache_client across 1 and 4 shards from 1, 16
#    and 128 concurrent caller actors, and the single-threaded store as a reference.
# 2. HTTP, in one run of one Troupe: GET /api/users/{id} served from the cache (a cache hit after the first
#    request) against GET /health, with wrk (alternating, ROUNDS rounds each); GET /api/me, which goes through the
#    same authentication without the cache, is measured alongside to separate the cost of the cache from the cost of
#    authenticating. The profile route needs a bearer token: the script registers and logs in a throw-away user with
#    curl against a throw-away PostgreSQL under var/ (or TROUPE_DATABASE_URL), and wrk sends the token.
#
# Target (the cache issue): the cached route >= 0.7x GET /health req/s; every response 2xx.
#
# Knobs (environment): ROUNDS=3 DURATION=10s THREADS=2 CONNECTIONS=64 WARMUP=2s (0 to skip), TROUPE_ARGS (extra troupe
# arguments, recorded), BENCH_MIN_TIME=0.5 (Google Benchmark seconds per case), BENCH_STRICT=1 (exit 1 on a MISS),
# TROUPE_BIN, BENCH_SKIP_BUILD=1, BENCH_RESULTS (file). The rate limiter is switched off for the run when the binary
# has `limits.enabled` (wrk would otherwise measure 429s); that is recorded with the arguments.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
WARMUP=${WARMUP:-2s}
TROUPE_BIN=${TROUPE_BIN:-build/troupe}
CACHE_BENCH_BIN=${CACHE_BENCH_BIN:-build/bench/cache_bench}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
TROUPE_ARGS=${TROUPE_ARGS:-}
BENCH_MIN_TIME=${BENCH_MIN_TIME:-0.5}
TARGET_RATIO=0.7

BENCH_NAME=bench-cache
# shellcheck source=bench/lib.sh
source bench/lib.sh

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ $THREADS =~ ^[1-9][0-9]*$ && $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "THREADS and CONNECTIONS must be positive integers"
[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "DURATION must look like 10s, not '$DURATION'"
[[ $WARMUP =~ ^[0-9]+[smh]?$ ]] || die "WARMUP must look like 2s or 0, not '$WARMUP'"

# ---- processes and cleanup ----------------------------------------------------------------------------
troupe_pid=""
stop_at_exit=(troupe_pid)
on_exit bench_cleanup

# ---- build ----------------------------------------------------------------------------------------------
build_release troupe cache_bench
[[ -x $TROUPE_BIN ]] || die "$TROUPE_BIN is missing or not executable"
[[ -x $CACHE_BENCH_BIN ]] || die "$CACHE_BENCH_BIN is missing or not executable"
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
out=bench/out/cache-$stamp
mkdir -p "$out"

# ---- 1. Google Benchmark ----------------------------------------------------------------------------------
log "cache_bench (Google Benchmark, min time ${BENCH_MIN_TIME}s per case)"
"$CACHE_BENCH_BIN" --benchmark_min_time="$BENCH_MIN_TIME" --benchmark_format=json \
  --benchmark_out="$out/cache_bench.json" --benchmark_out_format=json >"$out/cache_bench.stdout" 2>"$out/cache_bench.stderr" ||
  { cat "$out/cache_bench.stderr" >&2; die "cache_bench failed"; }
gbench_table=$(python3 - "$out/cache_bench.json" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
print("| benchmark | shards | callers | ops/s |")
print("|---|---|---|---|")
for b in data["benchmarks"]:
    name = b["name"].replace("/real_time", "")
    parts = name.split("/")
    shards, callers = (parts[1], parts[2]) if len(parts) >= 3 else ("-", "1 (no actor)")
    print(f"| {parts[0]} | {shards} | {callers} | {b.get('items_per_second', 0) / 1000:.0f}k |")
EOF
)

# ---- 2. HTTP: troupe, a user and a token -------------------------------------------------------------------
ensure_database
run_args=()
if "$TROUPE_BIN" --help 2>/dev/null | grep -q 'limits\.enabled'; then
  run_args+=(--set limits.enabled=false)
fi
# shellcheck disable=SC2206 # TROUPE_ARGS is a list of arguments
run_args+=($TROUPE_ARGS)
troupe_port=$(free_port)
"$TROUPE_BIN" --set "http.port=$troupe_port" "${run_args[@]}" </dev/null 2>"$out/troupe.stderr" \
  > >(head -c 1048576 >"$out/troupe.log"; cat >/dev/null) &
troupe_pid=$!
base="http://127.0.0.1:$troupe_port"
for ((i = 0; i < 100; i++)); do
  kill -0 "$troupe_pid" 2>/dev/null || break
  curl -sf -o /dev/null --max-time 1 "$base/health" && break
  sleep 0.1
done
curl -sf -o /dev/null --max-time 1 "$base/health" || { tail -n 20 "$out/troupe.log" "$out/troupe.stderr" >&2; die "troupe did not start"; }
log "troupe $base (pid $troupe_pid), arguments: ${run_args[*]:-(defaults)}"

json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
email="bench-$stamp-$RANDOM@example.com"
credentials="{\"email\":\"$email\",\"password\":\"bench password $RANDOM$RANDOM\"}"
user_id=$(curl -sf -H 'Content-Type: application/json' -d "$credentials" "$base/api/auth/register" | json_field user_id) ||
  die "could not register a user"
token=$(curl -sf -H 'Content-Type: application/json' -d "$credentials" "$base/api/auth/login" | json_field access_token) ||
  die "could not log in"
auth="Authorization: Bearer $token"
profile_url="$base/api/users/$user_id"
curl -sf -o /dev/null -H "$auth" "$profile_url" || die "GET /api/users/{id} failed"
log "user $user_id; cached route $profile_url"

# ---- measurements -----------------------------------------------------------------------------------------
# run_wrk NAME URL FILE DURATION [HEADER] -> sets RPS, P99_MS, NON2XX, SOCKET_ERRORS (and the rest of wrk_parse's)
run_wrk() {
  local name=$1 url=$2 file=$3 duration=$4 header=${5:-}
  local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$duration")
  [[ -z $header ]] || args+=(-H "$header")
  wrk_run "$name" "$file" "${args[@]}" "$url"
  kill -0 "$troupe_pid" 2>/dev/null || die "troupe died during the run (see $out/troupe.log)"
}

routes=(health cached me)
declare -A url=([health]="$base/health" [cached]="$profile_url" [me]="$base/api/me")
declare -A header=([health]="" [cached]="$auth" [me]="$auth")
declare -A label=([health]="GET /health" [cached]="GET /api/users/{id} (cache)" [me]="GET /api/me (auth, no cache)")
declare -A rps_list=() p99_list=()
non2xx=0
rows=()

if [[ $WARMUP != 0 && $WARMUP != 0[smh] ]]; then
  log "warm-up: $WARMUP each (not recorded)"
  for r in "${routes[@]}"; do run_wrk "$r" "${url[$r]}" "$out/warmup-$r.txt" "$WARMUP" "${header[$r]}"; done
fi
stats_before=$(curl -sf -H "$auth" "$base/api/cache/stats")
for ((round = 1; round <= ROUNDS; round++)); do
  for r in "${routes[@]}"; do
    log "round $round/$ROUNDS: ${label[$r]} ($DURATION)"
    run_wrk "$r" "${url[$r]}" "$out/round$round-$r.txt" "$DURATION" "${header[$r]}"
    rps_list[$r]+="$RPS "
    p99_list[$r]+="$P99_MS "
    non2xx=$((non2xx + NON2XX))
    rows+=("$(printf '| %s | %s | %.0f | %.2f | %s | %s |' "$round" "${label[$r]}" "$RPS" "$P99_MS" "$NON2XX" "$SOCKET_ERRORS")")
  done
done
stats_after=$(curl -sf -H "$auth" "$base/api/cache/stats")
cache_delta=$(python3 - "$stats_before" "$stats_after" <<'EOF'
import json, sys
a, b = (json.loads(x)["total"] for x in sys.argv[1:3])
print(f"cache hits +{b['hits'] - a['hits']}, misses +{b['misses'] - a['misses']} during the measured rounds")
EOF
)

declare -A rps_med=() p99_med=()
for r in "${routes[@]}"; do
  # shellcheck disable=SC2086 # word splitting of the collected values is intended
  rps_med[$r]=$(median ${rps_list[$r]})
  # shellcheck disable=SC2086
  p99_med[$r]=$(median ${p99_list[$r]})
done
ratio=$(awk -v c="${rps_med[cached]}" -v h="${rps_med[health]}" 'BEGIN { printf "%.2f\n", (h > 0) ? c / h : 0 }')
ratio_me=$(awk -v c="${rps_med[cached]}" -v m="${rps_med[me]}" 'BEGIN { printf "%.2f\n", (m > 0) ? c / m : 0 }')
ratio_me_health=$(awk -v m="${rps_med[me]}" -v h="${rps_med[health]}" 'BEGIN { printf "%.2f\n", (h > 0) ? m / h : 0 }')
verdict_ratio=$(awk -v r="$ratio" -v g="$TARGET_RATIO" 'BEGIN { print (r >= g) ? "PASS" : "MISS" }')
verdict_2xx=PASS
((non2xx == 0)) || verdict_2xx=MISS

# ---- report -----------------------------------------------------------------------------------------------
machine_facts
if [[ -n $(git status --porcelain 2>/dev/null | head -n 1) ]]; then commit+=" + uncommitted changes"; fi
wrk_version=$( (wrk -v 2>&1 || true) | awk 'NR == 1 { print $2 }')
command="make bench-cache"
overrides=""
[[ $ROUNDS == 3 ]] || overrides+="ROUNDS=$ROUNDS "
[[ $DURATION == 10s ]] || overrides+="DURATION=$DURATION "
[[ $THREADS == 2 ]] || overrides+="THREADS=$THREADS "
[[ $CONNECTIONS == 64 ]] || overrides+="CONNECTIONS=$CONNECTIONS "
[[ $WARMUP == 2s ]] || overrides+="WARMUP=$WARMUP "
[[ $BENCH_MIN_TIME == 0.5 ]] || overrides+="BENCH_MIN_TIME=$BENCH_MIN_TIME "
[[ -z $TROUPE_ARGS ]] || overrides+="TROUPE_ARGS='$TROUPE_ARGS' "
command="$overrides$command"

summary=$(
  cat <<EOF
Cached route / GET /health req/s: $ratio (medians: cached $(printf '%.0f' "${rps_med[cached]}"), health $(printf '%.0f' "${rps_med[health]}"))
Cached route / GET /api/me req/s: $ratio_me (the same authentication without the cache: $(printf '%.0f' "${rps_med[me]}"); /api/me / health: $ratio_me_health)
$cache_delta

| target | measured | verdict |
|---|---|---|
| cached route req/s >= ${TARGET_RATIO}x GET /health | ${ratio}x | $verdict_ratio |
| every response 2xx | $non2xx non-2xx | $verdict_2xx |
EOF
)

{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): cache throughput, and a cached HTTP route vs GET /health"
  echo
  echo "- command: \`$command\` (cache_bench --benchmark_min_time=$BENCH_MIN_TIME; wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds each, alternating routes; warm-up $WARMUP)"
  echo "- machine: ${cpu:-$(uname -m)}, $(nproc) CPUs (nproc), $mem RAM, kernel $(uname -r); load average at start $load_at_start, at end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- software: commit $commit; wrk $wrk_version; troupe arguments: \`${run_args[*]:-(defaults)}\`"
  echo
  echo "Google Benchmark (cache_client from caller actors; each caller keeps 8 requests in flight):"
  echo
  echo "$gbench_table"
  echo
  echo "HTTP (one troupe process; the cached route is \`GET /api/users/{id}\` with a bearer token):"
  echo
  echo "| round | route | req/s | p99 (ms) | non-2xx | socket errors |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  for r in "${routes[@]}"; do
    printf '| median | %s | %.0f | %.2f | | |\n' "${label[$r]}" "${rps_med[$r]}" "${p99_med[$r]}"
  done
  echo
  echo "$summary"
} >>"$RESULTS"

echo
echo "Cache benchmark ($command; raw output in $out)"
echo "$gbench_table"
echo
echo "$summary"
echo
log "appended to $RESULTS"

if [[ ${BENCH_STRICT:-0} == 1 && "$verdict_ratio$verdict_2xx" != PASSPASS ]]; then
  exit 1
fi
