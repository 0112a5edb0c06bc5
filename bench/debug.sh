#!/usr/bin/env bash
# `make bench-debug`: what debug mode costs an actor-backed route, in one run on one machine.
#   GET /api/me with a JWT (a bridge worker and the user's session actor handle every request; warm, so no database)
#   on a troupe with debug.enabled=true vs the same route on a troupe with debug mode off, same database, same
#   account. Target (debug issue): debug on >= 0.95x debug off req/s. Both have a default policy no run exhausts.
#   With WATCH=1 a client also reads GET /debug/actors once a second from the debug troupe during its runs (a
#   developer with the page open).
# wrk -t2 -c64 on loopback, ROUNDS rounds of DURATION, alternating on/off; medians recorded in bench/RESULTS.md.
# Knobs: ROUNDS=5 DURATION=10s CONNECTIONS=64 THREADS=2 WATCH=0; TROUPE_DATABASE_URL (else a throw-away PostgreSQL).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"
ROUNDS=${ROUNDS:-5}
WATCH=${WATCH:-0}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
BENCH_NAME=bench-debug
# shellcheck source=bench/lib.sh
source bench/lib.sh

on_exit bench_cleanup # stops the troupes of start_troupe and the throw-away PostgreSQL

build_release troupe debug_bench
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/out/debug-$stamp
mkdir -p "$out"

ensure_database

# The per-message cost of the hooks without HTTP: round trips between two observed actors, debug on vs off.
build/bench/debug_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_format=csv >"$out/debug_bench.csv" 2>/dev/null || die "debug_bench failed"
# ns per round trip = 1e9 / items_per_second of the median rows
round_trip_ns() { awk -F, -v n="\"round_trips/$1/real_time_median\"" '$1 == n { printf "%.0f", 1e9 / $7 }' "$out/debug_bench.csv"; }
rt_off=$(round_trip_ns debug_off) rt_on=$(round_trip_ns debug_on)
log "round trip between two actors: debug off $rt_off ns, on $rt_on ns"

# A policy no benchmark can exhaust: every request is counted, none is refused.
high_limits=(--set limits.default_per_minute=1000000 --set limits.default_burst=1000000)
debug_on="" debug_off=""
start_troupe debug_on debug_on "${high_limits[@]}" --set debug.enabled=true
start_troupe debug_off debug_off "${high_limits[@]}"
curl -sf -o /dev/null "http://127.0.0.1:$debug_on/debug/actors" || die "the debug troupe has no /debug/actors"

# One account; its access token (15 minutes) outlives the run.
account='{"email":"bench-debug@example.com","password":"correct horse battery"}'
curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$account" "http://127.0.0.1:$debug_off/api/auth/register" || true
token=$(curl -sf -H 'Content-Type: application/json' -d "$account" "http://127.0.0.1:$debug_off/api/auth/login" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ -n $token ]] || die "could not log in"

# run NAME URL [wrk args...] -> sets RPS, P50_MS, P99_MS, NON2XX (wrk_run, bench/lib.sh)
run() {
  local name=$1 url=$2
  shift 2
  wrk_run "$name" "$out/$name-$round.txt" -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$@" "$url"
}

# With WATCH=1: read the tree once a second while the debug troupe is measured (bounded by the run's length).
watch_pid=""
stop_at_exit=(watch_pid)
start_watch() {
  [[ $WATCH == 1 ]] || return 0
  (for ((i = 0; i < 600; i++)); do curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$debug_on/debug/actors"; sleep 1; done) &
  watch_pid=$!
}
stop_watch() {
  [[ -n $watch_pid ]] || return 0
  kill "$watch_pid" 2>/dev/null || true
  wait "$watch_pid" 2>/dev/null || true
  watch_pid=""
}

# Warm both sessions before measuring.
for port in "$debug_on" "$debug_off"; do
  curl -sf -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/me" || die "GET /api/me failed on $port"
done

declare -A rps p50 p99 bad
rows=()
pairs=()
auth=(-H "Authorization: Bearer $token")
for ((round = 1; round <= ROUNDS; round++)); do
  # Alternate which goes first, so drift on a noisy machine does not favour one side.
  if ((round % 2)); then order=(off on); else order=(on off); fi
  for config in "${order[@]}"; do
    case $config in
      on)
        start_watch
        run debug_on "http://127.0.0.1:$debug_on/api/me" "${auth[@]}"
        stop_watch
        ;;
      off) run debug_off "http://127.0.0.1:$debug_off/api/me" "${auth[@]}" ;;
    esac
    r=$RPS a=$P50_MS b=$P99_MS n=$NON2XX
    log "round $round: debug $config $r req/s, p50 $a ms, p99 $b ms, non-2xx $n"
    if [[ $config == on ]]; then r_on=$r; else r_off=$r; fi
    rps[$config]+="$r " p50[$config]+="$a " p99[$config]+="$b " bad[$config]=$((${bad[$config]:-0} + n))
    rows+=("| $round | $config | $r | $a | $b | $n |")
  done
  # The same round's pair: drift on a shared machine cancels out of on/off measured back to back.
  pairs+=("$(awk -v a="$r_on" -v b="$r_off" 'BEGIN { printf "%.3f", a / b }')")
done

on_rps=$(median_list "${rps[on]}") off_rps=$(median_list "${rps[off]}")
on_p50=$(median_list "${p50[on]}") off_p50=$(median_list "${p50[off]}")
on_p99=$(median_list "${p99[on]}") off_p99=$(median_list "${p99[off]}")
ratio=$(awk -v a="$on_rps" -v b="$off_rps" 'BEGIN { printf "%.3f", a / b }')
paired=$(median "${pairs[@]}")
hook_ns=$(awk -v a="$rt_on" -v b="$rt_off" 'BEGIN { printf "%.0f", (a - b) / 2 }')
v_ratio=$(verdict "$(awk -v r="$ratio" 'BEGIN { print (r >= 0.95) }')")
v_2xx=$(verdict "$(( ${bad[on]} + ${bad[off]} == 0 ))")

machine_facts
{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): debug mode cost on an actor-backed route"
  echo
  echo "- command: \`make bench-debug\` (WATCH=$WATCH; wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds, alternating on/off; access log off)"
  echo "- machine: $cpu, $(nproc) CPUs shared with other work (noisy), kernel $(uname -r); wrk on the same cores; commit $commit"
  echo "- route: GET /api/me with a JWT (bridge worker + session actor per request, session warm); \`on\`: debug.enabled=true (every actor has a probe)$( [[ $WATCH == 1 ]] && echo ", GET /debug/actors read once a second during its runs"); \`off\`: debug mode off"
  echo
  echo "| round | debug | req/s | p50 (ms) | p99 (ms) | non-2xx |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "| target | measured | verdict |"
  echo "|---|---|---|"
  echo "| debug on >= 0.95x debug off (median req/s) | ${ratio}x ($on_rps vs $off_rps req/s) | $v_ratio |"
  echo "| median of each round's on/off ratio (drift cancels) | ${paired}x (rounds: ${pairs[*]}) | - |"
  echo "| p50 / p99 (median) | on $on_p50 / $on_p99 ms, off $off_p50 / $off_p99 ms | - |"
  echo "| round trip between two actors (debug_bench, median of 5) | on $rt_on ns, off $rt_off ns: ~$hook_ns ns per message | - |"
  echo "| every response 2xx | ${bad[on]} + ${bad[off]} non-2xx | $v_2xx |"
} | tee -a "$RESULTS"
