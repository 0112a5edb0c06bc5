#!/usr/bin/env bash
# `make bench-path`: the request path's cost (issue "one typed request path"), this build against a baseline build
# (the previous commit by default), in one run on one machine.
#
#   1. authenticated GET /api/me (JWT, limits on but never refusing, storage read) against GET /health of the same
#      process, at -c64. Target: >= 0.7x.
#   2. gateway cache hit (POST /v1/chat/completions, temperature 0, X-Cache: HIT) against nginx `return 200`, at -c64.
#      Target: >= 0.3x.
#   3. gateway added latency: non-cached chat completions through troupe minus the same straight to the mock
#      upstream, at -c4, p50 and p99 paired within a round. Targets: p50 <= 0.5 ms, p99 <= 1.2 ms.
#   4. every figure of this build against the baseline's in the same round (nothing may be slower), and, for this
#      build, the thread hand-offs per request of each route family (troupe_http_handoffs_total over
#      troupe_http_requests_total from /metrics).
# Each round starts one troupe at a time (baseline and this build alternate which goes first; an idle troupe must
# not share the cores with the measured one), against one PostgreSQL, one mock upstream and one nginx.
#
# Run it under the build lock on a shared machine:  flock -o /tmp/troupe-build.lock make bench-path
# Knobs: ROUNDS=3 DURATION=10s THREADS=2 BASELINE_REV=HEAD~1 (built into var/bench-baseline/, reused while its
# commit is the same) or BASELINE_BIN (a binary), TROUPE_BIN (default build/troupe), BENCH_SKIP_BUILD=1,
# BENCH_RESULTS (file), NGINX (default nginx), REPORT_FROM=bench/out/path-<time> (only the report, from the raw
# files of an earlier run).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
BASELINE_REV=${BASELINE_REV:-HEAD~1}
TROUPE_BIN=${TROUPE_BIN:-build/troupe}
MOCK_BIN=${MOCK_BIN:-build/mock-upstream}
NGINX=${NGINX:-nginx}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
BENCH_NAME=bench-path
WRK_SCRIPT=bench/wrk/gateway_chat.lua
# shellcheck source=bench/lib.sh
source bench/lib.sh

troupe_pid="" mock_pid=""
stop_at_exit=(troupe_pid mock_pid nginx_pid)
tmp=$(mktemp -d)
on_exit bench_cleanup

declare -A series
if [[ -n ${REPORT_FROM:-} ]]; then
  # Only the report, from the raw files of an earlier run (e.g. one cut short after its measurements).
  out=${REPORT_FROM%/}
  # shellcheck source=/dev/null
  source "$out/run.env"
  machine_facts
  for ((round = 1; round <= ROUNDS; round++)); do
    for file in "$out"/*-"$round".txt; do
      key=$(basename "$file" "-$round.txt")
      [[ $key == handoffs* || $key == metrics* ]] && continue
      wrk_parse "$key" "$file"
      series[$key]+="$RPS $P50_MS $P99_MS;"
    done
  done
else
build_release troupe mock-upstream
command -v wrk >/dev/null || die "wrk is not installed (scripts/install-deps)"
command -v "$NGINX" >/dev/null || die "nginx is not installed (scripts/install-deps)"

# ---- the baseline binary ----------------------------------------------------------------------------------------
if [[ -z ${BASELINE_BIN:-} ]]; then
  base_commit=$(git rev-parse --verify "$BASELINE_REV^{commit}") || die "no commit $BASELINE_REV"
  base_dir=$root/var/bench-baseline
  if [[ ! -x $base_dir/build/troupe || $(cat "$base_dir/commit" 2>/dev/null) != "$base_commit" ]]; then
    log "building the baseline $(git rev-parse --short "$base_commit") into $base_dir"
    rm -rf -- "$base_dir"
    mkdir -p "$base_dir/src"
    git archive "$base_commit" | tar -x -C "$base_dir/src"
    cmake -S "$base_dir/src" -B "$base_dir/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$base_dir/build" -j2 --target troupe >"$base_dir/build.log" 2>&1 ||
      die "the baseline did not build (see $base_dir/build.log)"
    cp "$base_dir/build/troupe" "$base_dir/troupe"
    echo "$base_commit" >"$base_dir/commit"
  fi
  BASELINE_BIN=$base_dir/build/troupe
  baseline_label=$(git rev-parse --short "$base_commit")
else
  baseline_label=$BASELINE_BIN
fi
[[ -x $BASELINE_BIN && -x $TROUPE_BIN ]] || die "missing binary: $BASELINE_BIN or $TROUPE_BIN"
machine_facts
current_label="$commit$(git diff --quiet HEAD -- . ':!bench/RESULTS.md' 2>/dev/null || echo '+changes')"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/out/path-$stamp
mkdir -p "$out"
printf 'baseline_label=%q\ncurrent_label=%q\nstamp=%q\nROUNDS=%q\nDURATION=%q\nTHREADS=%q\n' \
  "$baseline_label" "$current_label" "$stamp" "$ROUNDS" "$DURATION" "$THREADS" >"$out/run.env"

# ---- the fixed parts: PostgreSQL, the mock upstream, nginx ------------------------------------------------------
ensure_database
"$MOCK_BIN" --threads 2 --max-connections 4096 --port-file "$tmp/mock.port" </dev/null >"$out/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 100); do [[ -s $tmp/mock.port ]] && break; sleep 0.1; done
[[ -s $tmp/mock.port ]] || die "the mock upstream did not start"
mock_base=http://127.0.0.1:$(tr -d '\n' <"$tmp/mock.port")
wait_ready "$mock_base/health" "$mock_pid" mock-upstream || die "the mock upstream did not answer"
nginx_port=$(free_port)
start_nginx "$NGINX" "$tmp" "$nginx_port" 1 "$out/nginx.log"
TROUPE_UPSTREAMS=$(printf '[{"name":"mock","base_url":"%s/v1","models":["mock-1"],"max_inflight":4096}]' "$mock_base")
export TROUPE_UPSTREAMS
bench_args=(--set log.request_sample=0 --set limits.default_per_minute=1000000 --set limits.default_burst=1000000
  --set limits.generate_per_minute=1000000 --set limits.generate_burst=1000000 --set quota.free_per_day=100000000
  --set limits.generate_max_inflight=1024)
account='{"email":"bench-path@example.com","password":"correct horse battery staple"}'
hit_body='{"model":"mock-1","temperature":0,"messages":[{"role":"system","content":"You are a terse benchmark assistant."},{"role":"user","content":"Summarise the benefits of keep-alive connections in one sentence."}]}'

# start BIN NAME: one troupe on a fresh port; sets base and token, fills the cache entry of the hit runs.
start() {
  local bin=$1 name=$2 port
  port=$(free_port)
  "$bin" --set "http.port=$port" "${bench_args[@]}" </dev/null >"$out/$name.log" 2>&1 &
  troupe_pid=$!
  base=http://127.0.0.1:$port
  wait_ready "$base/health" "$troupe_pid" "troupe ($name)" || die "troupe ($name) did not start; see $out/$name.log"
  curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$account" "$base/api/auth/register" || true
  token=$(curl -sf -H 'Content-Type: application/json' -d "$account" "$base/api/auth/login" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  [[ -n $token ]] || die "could not log in to troupe ($name)"
  local i
  for i in 1 2; do
    curl -sf -D "$tmp/h" -o /dev/null -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
      -d "$hit_body" "$base/v1/chat/completions" || die "troupe ($name): the chat completion failed"
  done
  grep -qi '^x-cache: hit' "$tmp/h" || die "troupe ($name): the repeated deterministic request was no cache hit"
}

# measure KEY CONNECTIONS URL [wrk args]: wrk into $out/KEY-ROUND.txt; appends "rps p50 p99" to the series KEY.
measure() {
  local key=$1 connections=$2 url=$3
  shift 3
  wrk_run "$key" "$out/$key-$round.txt" -t"$THREADS" -c"$connections" -d"$DURATION" "$@" "$url"
  ((NON2XX == 0 && SOCKET_ERRORS == 0)) || die "$key: $NON2XX non-2xx responses, $SOCKET_ERRORS socket errors"
  series[$key]+="$RPS $P50_MS $P99_MS;"
  log "round $round $key: $RPS req/s, p50 $P50_MS ms, p99 $P99_MS ms"
}

# handoffs NAME: per route, thread hand-offs per answered request (this build's /metrics).
handoffs() {
  curl -sf "$base/metrics" >"$out/metrics-$1-$round.txt" || return 0
  awk '
    /^troupe_http_requests_total\{/ { match($0, /route="[^"]*"/); r = substr($0, RSTART + 7, RLENGTH - 8); req[r] += $NF }
    /^troupe_http_handoffs_total\{/ { match($0, /route="[^"]*"/); r = substr($0, RSTART + 7, RLENGTH - 8); hop[r] += $NF }
    END { for (r in req) if (req[r] >= 100) printf "%s %.2f\n", r, hop[r] / req[r] }' "$out/metrics-$1-$round.txt" |
    sort >"$out/handoffs-$1-$round.txt"
}

for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then order=(baseline current); else order=(current baseline); fi
  for name in "${order[@]}"; do
    if [[ $name == baseline ]]; then bin=$BASELINE_BIN; else bin=$TROUPE_BIN; fi
    start "$bin" "$name-$round"
    measure "$name.health" 64 "$base/health"
    measure "$name.me" 64 "$base/api/me" -H "Authorization: Bearer $token"
    export BENCH_ACCESS_TOKEN=$token BENCH_CHAT=fixed
    measure "$name.hit" 64 "$base/v1/chat/completions" -s "$WRK_SCRIPT"
    export BENCH_CHAT=vary
    measure "$name.chat4" 4 "$base/v1/chat/completions" -s "$WRK_SCRIPT"
    [[ $name == current ]] && handoffs "$name"
    stop_pid "$troupe_pid" troupe
    troupe_pid=""
  done
  export BENCH_ACCESS_TOKEN="" BENCH_CHAT=fixed
  measure nginx 64 "http://127.0.0.1:$nginx_port/v1/chat/completions" -s "$WRK_SCRIPT"
  export BENCH_CHAT=vary
  measure direct4 4 "$mock_base/v1/chat/completions" -s "$WRK_SCRIPT"
done
fi

# med KEY FIELD (1 rps, 2 p50, 3 p99) -> the median over rounds
field() { tr ';' '\n' <<<"${series[$1]}" | awk -v f="$2" 'NF { print $f }'; }
# shellcheck disable=SC2046 # one figure per word
med() { median $(field "$1" "$2"); }
# added KEY FIELD -> the median over rounds of (troupe - direct), paired within a round
# shellcheck disable=SC2046
added() { median $(paste <(field "$1" "$2") <(field direct4 "$2") | awk '{ printf "%.3f\n", $1 - $2 }'); }
declare -A r
for name in baseline current; do
  r[$name.me]=$(ratio "$(med "$name.me" 1)" "$(med "$name.health" 1)")
  r[$name.hit]=$(ratio "$(med "$name.hit" 1)" "$(med nginx 1)")
  r[$name.p50]=$(added "$name.chat4" 2)
  r[$name.p99]=$(added "$name.chat4" 3)
done

ensure_results_file "$RESULTS"
{
  echo
  echo "## bench-path, $stamp"
  echo
  echo "- command: \`flock -o /tmp/troupe-build.lock make bench-path\` (ROUNDS=$ROUNDS DURATION=$DURATION THREADS=$THREADS)"
  echo "- machine: $cpu, $(nproc) cores, $mem; troupe, wrk, nginx (1 worker), the mock (2 threads) and PostgreSQL share the cores"
  echo "- builds: baseline \`$baseline_label\`, current \`$current_label\`; one troupe at a time, alternating which goes first"
  echo "- raw: $out"
  echo
  echo "| measurement | baseline | current | current / baseline |"
  echo "|---|---|---|---|"
  for key in health me hit; do
    b=$(med "baseline.$key" 1) c=$(med "current.$key" 1)
    echo "| $key req/s (-c64) | $b | $c | $(ratio "$c" "$b") |"
  done
  for f in 2 3; do
    label=$([[ $f == 2 ]] && echo p50 || echo p99)
    b=$(med baseline.chat4 $f) c=$(med current.chat4 $f)
    echo "| gateway chat $label ms (-c4) | $b | $c | $(ratio "$c" "$b") |"
  done
  echo "| nginx req/s (-c64) | $(med nginx 1) | | |"
  echo "| mock direct p50 / p99 ms (-c4) | $(med direct4 2) / $(med direct4 3) | | |"
  echo
  echo "| target | baseline | current | verdict (current) |"
  echo "|---|---|---|---|"
  echo "| /api/me >= 0.7x /health | ${r[baseline.me]}x | ${r[current.me]}x | $(at_least "${r[current.me]}" 0.7) |"
  echo "| cache hit >= 0.3x nginx | ${r[baseline.hit]}x | ${r[current.hit]}x | $(at_least "${r[current.hit]}" 0.3) |"
  echo "| added p50 <= 0.5 ms (-c4) | ${r[baseline.p50]} | ${r[current.p50]} | $(at_most "${r[current.p50]}" 0.5) |"
  echo "| added p99 <= 1.2 ms (-c4) | ${r[baseline.p99]} | ${r[current.p99]} | $(at_most "${r[current.p99]}" 1.2) |"
  echo
  echo "Thread hand-offs per answered request (current build, last round, routes with >= 100 requests):"
  echo
  echo '```'
  cat "$out/handoffs-current-$ROUNDS.txt" 2>/dev/null || echo "(none recorded)"
  echo '```'
} | tee -a "$RESULTS"
