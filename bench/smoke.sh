#!/usr/bin/env bash
# `make bench-smoke`, and the last step of `make test`: a performance check short enough for every CI run (about 40 s)
# that fails on a gross regression and not on noise. It measures, in one run on this machine, ratios of req/s between
# paths that share everything but the work under test, and compares each with a floor far below what the full
# benchmarks record (bench/RESULTS.md), so a 2-core CI machine's noise cannot fail it but a path gone 3x slower does:
#
#   me/health   GET /api/me with a JWT (verified, the session actor asked, the rate limiter asked) vs GET /health on
#               the same troupe                                      floor 0.10 (bench-auth and bench-cache: ~0.35)
#   chat/direct non-streamed POST /v1/chat/completions through Troupe (never cached: temperature 0.7, a new message per
#               request) vs the same straight to the mock upstream   floor 0.02 (bench-gateway at -c64: ~0.07)
#   hit/health  a chat completion answered from Troupe's cache vs GET /health      floor 0.08 (bench-gateway: ~0.3)
#
# and that every response was 2xx. wrk -t1 -c16, ROUNDS rounds (2) of DURATION (3s) per path, alternating; the
# verdicts use the medians. Exit 1 when a ratio is under its floor (or a response was not 2xx).
#
# Knobs: ROUNDS=2 DURATION=3s CONNECTIONS=16, TROUPE_DATABASE_URL (make test passes its own; else a throw-away
# PostgreSQL under var/), BENCH_RECORD=1 (also append the run to bench/RESULTS.md; make test never does),
# BENCH_SKIP_BUILD=1 (make test has just built).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-3s}
CONNECTIONS=${CONNECTIONS:-16}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
FLOOR_ME=0.10
FLOOR_CHAT=0.02
FLOOR_HIT=0.08

BENCH_NAME=bench-smoke
# shellcheck source=bench/lib.sh
source bench/lib.sh

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "DURATION must look like 3s, not '$DURATION'"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer"

mock_pid=""
stop_at_exit=(mock_pid)
on_exit bench_cleanup

build_release troupe mock-upstream
command -v wrk >/dev/null || die "wrk is not installed (scripts/install-deps installs it)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/troupe-bench-smoke.XXXXXX")
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/out/smoke-$stamp
mkdir -p "$out"

# ---- the mock upstream and troupe ------------------------------------------------------------------------------
build/mock-upstream --threads 1 --max-connections 1024 --port-file "$tmp/mock.port" </dev/null >"$out/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 100); do
  [[ -s $tmp/mock.port ]] && break
  kill -0 "$mock_pid" 2>/dev/null || break
  sleep 0.05
done
[[ -s $tmp/mock.port ]] || { cat "$out/mock.log" >&2; die "the mock upstream did not start"; }
mock_base=http://127.0.0.1:$(tr -d '\n' <"$tmp/mock.port")
wait_ready "$mock_base/health" "$mock_pid" mock-upstream || die "the mock upstream did not answer"

ensure_database
TROUPE_UPSTREAMS=$(printf '[{"name":"mock","base_url":"%s/v1","models":["mock-1"],"max_inflight":1024}]' "$mock_base")
export TROUPE_UPSTREAMS
# One user drives everything: its limits and quota are lifted (limits.enabled=false would skip the limiter, which
# the me/health ratio is meant to include).
start_troupe troupe troupe_port --set limits.default_per_minute=1000000 --set limits.default_burst=1000000 \
  --set limits.generate_per_minute=1000000 --set limits.generate_burst=1000000 \
  --set quota.free_per_day=100000000 --set limits.generate_max_inflight=1024
base=http://127.0.0.1:$troupe_port
account='{"email":"bench-smoke@example.com","password":"correct horse battery staple"}'
curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$account" "$base/api/auth/register" || true
token=$(curl -sf -H 'Content-Type: application/json' -d "$account" "$base/api/auth/login" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ -n $token ]] || die "could not sign in (see $out/troupe.log)"
# The cache-hit request, answered once before the runs (gateway_chat.lua's fixed mode sends exactly this).
hit_body='{"model":"mock-1","temperature":0,"messages":[{"role":"system","content":"You are a terse benchmark assistant."},{"role":"user","content":"Summarise the benefits of keep-alive connections in one sentence."}]}'
for _ in 1 2; do
  curl -sf -o /dev/null -H 'Content-Type: application/json' -H "Authorization: Bearer $token" -d "$hit_body" \
    "$base/v1/chat/completions" || die "the gateway did not answer the cache-hit request (see $out/troupe.log)"
done

# ---- rounds ------------------------------------------------------------------------------------------------------
# run PATH FILE -> RPS, NON2XX (wrk_run)
run() {
  local path=$1 file=$2
  case $path in
    health) wrk_run health "$file" -t1 -c"$CONNECTIONS" -d"$DURATION" "$base/health" ;;
    me) wrk_run me "$file" -t1 -c"$CONNECTIONS" -d"$DURATION" -H "Authorization: Bearer $token" "$base/api/me" ;;
    direct) BENCH_CHAT=vary BENCH_NONCE="$stamp-$file" BENCH_ACCESS_TOKEN="" \
      wrk_run direct "$file" -t1 -c"$CONNECTIONS" -d"$DURATION" -s bench/wrk/gateway_chat.lua "$mock_base/v1/chat/completions" ;;
    chat) BENCH_CHAT=vary BENCH_NONCE="$stamp-$file" BENCH_ACCESS_TOKEN=$token \
      wrk_run chat "$file" -t1 -c"$CONNECTIONS" -d"$DURATION" -s bench/wrk/gateway_chat.lua "$base/v1/chat/completions" ;;
    hit) BENCH_CHAT=fixed BENCH_ACCESS_TOKEN=$token \
      wrk_run hit "$file" -t1 -c"$CONNECTIONS" -d"$DURATION" -s bench/wrk/gateway_chat.lua "$base/v1/chat/completions" ;;
  esac
  kill -0 "${pids[0]}" 2>/dev/null || die "troupe died during the run (see $out/troupe.log)"
  kill -0 "$mock_pid" 2>/dev/null || die "the mock upstream died during the run (see $out/mock.log)"
}

paths=(health me direct chat hit)
declare -A rps
non2xx=0
for ((round = 1; round <= ROUNDS; round++)); do
  for path in "${paths[@]}"; do
    run "$path" "$out/$path-$round.txt"
    rps[$path]+="$RPS "
    non2xx=$((non2xx + NON2XX))
    log "round $round: $path $RPS req/s"
  done
done

declare -A med
for path in "${paths[@]}"; do med[$path]=$(median_list "${rps[$path]}"); done
ratio_me=$(ratio "${med[me]}" "${med[health]}")
ratio_chat=$(ratio "${med[chat]}" "${med[direct]}")
ratio_hit=$(ratio "${med[hit]}" "${med[health]}")
v_me=$(at_least "$ratio_me" "$FLOOR_ME")
v_chat=$(at_least "$ratio_chat" "$FLOOR_CHAT")
v_hit=$(at_least "$ratio_hit" "$FLOOR_HIT")
v_2xx=$(verdict "$((non2xx == 0))")

machine_facts
report=$(
  echo "## bench-smoke, $(date -u '+%Y-%m-%d %H:%M') UTC ($commit)"
  echo
  echo "- command: \`make bench-smoke\` (wrk -t1 -c$CONNECTIONS -d$DURATION, $ROUNDS rounds alternating health, me, direct, chat, hit; medians)"
  echo "- machine: $cpu, $(nproc) CPUs (nproc), $mem RAM; wrk, the mock, troupe and PostgreSQL share the CPUs"
  echo
  echo "| path | req/s (median) | rounds |"
  echo "|---|---|---|"
  for path in "${paths[@]}"; do echo "| $path | ${med[$path]} | ${rps[$path]}|"; done
  echo
  echo "| check | measured | floor | verdict |"
  echo "|---|---|---|---|"
  echo "| /api/me vs /health | ${ratio_me}x | ${FLOOR_ME}x | $v_me |"
  echo "| chat through Troupe vs the mock direct | ${ratio_chat}x | ${FLOOR_CHAT}x | $v_chat |"
  echo "| cached chat vs /health | ${ratio_hit}x | ${FLOOR_HIT}x | $v_hit |"
  echo "| every response 2xx | $non2xx non-2xx | 0 | $v_2xx |"
)
echo "$report" | tee "$out/report.md"
if [[ ${BENCH_RECORD:-0} == 1 ]]; then
  ensure_results_file "$RESULTS"
  printf '\n%s\n' "$report" >>"$RESULTS"
  log "appended to $RESULTS"
fi
if [[ "$v_me$v_chat$v_hit$v_2xx" != PASSPASSPASSPASS ]]; then
  die "a ratio is under its floor: a gross performance regression (or a broken path); see $out/"
fi
log "every ratio is above its floor"
