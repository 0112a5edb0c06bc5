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
# BENCH_RESULTS (file), NGINX (default nginx).
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

pids=() troupe_pid="" mock_pid=""
tmp=$(mktemp -d)
cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  stop_pid "$troupe_pid" troupe
  stop_pid "$mock_pid" mock-upstream
  stop_pid "$nginx_pid" nginx
  for pid in "${pids[@]}"; do stop_pid "$pid" child; done
  stop_database
  rm -rf -- "$tmp"
  exit "$status"
}
on_exit cleanup

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

# ---- the fixed parts: PostgreSQL, the mock upstream, nginx ------------------------------------------------------
ensure_database
"$MOCK_BIN" --threads 2 --max-connections 4096 --port-file "$tmp/mock.port" </dev/null >"$out/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 100); do [[ -s $tmp/mock.port ]] && break; sleep 0.1; done
[[ -s $tmp/mock.port ]] || die "the mock upstream did not start"
mock_base=http://127.0.0.1:$(tr -d '\n' <"$tmp/mock.port")
wait_ready "$mock_base/health" "$mock_pid" mock-upstream || die "the mock upstream did not answer"
nginx_port=$(scripts/pg free-port)
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
  port=$(scripts/pg free-port)
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
declare -A series
to_ms() { awk -v v="$1" 'BEGIN { if (!match(v, /^[0-9.]+/)) exit 1; n = substr(v, 1, RLENGTH); u = substr(v, RLENGTH + 1)
  f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : -1; if (f < 0) exit 1; printf "%.3f\n", n * f }'; }
measure() {
  local key=$1 connections=$2 url=$3 file
  shift 3
  file=$out/$key-$round.txt
  wrk -t"$THREADS" -c"$connections" -d"$DURATION" --latency "$@" "$url" >"$file" 2>&1 || die "wrk failed: $file"
  local rps p50 p99 non2xx
  rps=$(awk '$1 == "Requests/sec:" { print $2 }' "$file")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$file")") || die "unparsable: $file"
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$file")") || die "unparsable: $file"
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$file")
  [[ -z $non2xx ]] || die "$key: $non2xx responses were not 2xx ($file)"
  series[$key]+="$rps $p50 $p99;"
  log "round $round $key: $rps req/s, p50 $p50 ms, p99 $p99 ms"
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

# med KEY FIELD (1 rps, 2 p50, 3 p99) -> the median over rounds
med() { tr ';' '\n' <<<"${series[$1]}" | awk -v f="$2" 'NF { print $f }' | median; }
# added KEY FIELD -> the median over rounds of (troupe - direct), paired within a round
added() {
  paste <(tr ';' '\n' <<<"${series[$1]}" | awk -v f="$2" 'NF { print $f }') \
    <(tr ';' '\n' <<<"${series[direct4]}" | awk -v f="$2" 'NF { print $f }') | awk '{ printf "%.3f\n", $1 - $2 }' | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { ok = (dir == "ge") ? v >= t : v <= t; print ok ? "PASS" : "MISS" }'; }

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
  echo "| /api/me >= 0.7x /health | ${r[baseline.me]}x | ${r[current.me]}x | $(verdict "${r[current.me]}" 0.7 ge) |"
  echo "| cache hit >= 0.3x nginx | ${r[baseline.hit]}x | ${r[current.hit]}x | $(verdict "${r[current.hit]}" 0.3 ge) |"
  echo "| added p50 <= 0.5 ms (-c4) | ${r[baseline.p50]} | ${r[current.p50]} | $(verdict "${r[current.p50]}" 0.5 le) |"
  echo "| added p99 <= 1.2 ms (-c4) | ${r[baseline.p99]} | ${r[current.p99]} | $(verdict "${r[current.p99]}" 1.2 le) |"
  echo
  echo "Thread hand-offs per answered request (current build, last round, routes with >= 100 requests):"
  echo
  echo '```'
  cat "$out/handoffs-current-$ROUNDS.txt" 2>/dev/null || echo "(none recorded)"
  echo '```'
} | tee -a "$RESULTS"
