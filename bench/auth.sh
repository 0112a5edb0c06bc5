#!/usr/bin/env bash
# `make bench-auth`: the cost of authentication and of rate limiting, in one run on one machine.
#   A. authenticated GET /api/me (JWT verified, session actor asked, rate limiter asked) vs GET /health on the same
#      troupe process. Target (auth issue): >= 0.8x req/s.
#   B. GET /api/me on a troupe with limiting on (a policy high enough that nothing is refused, so every request pays
#      for its limiter hop) vs the same route on a troupe with limits.enabled=false. Target (traffic issue): >= 0.85x
#      req/s and <= +0.2 ms p50.
# wrk -t2 -c64 on loopback, ROUNDS rounds of DURATION, alternating; medians recorded in bench/RESULTS.md.
# Knobs: ROUNDS=3 DURATION=10s CONNECTIONS=64 THREADS=2; TROUPE_DATABASE_URL (else a throw-away PostgreSQL).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
BENCH_NAME=bench-auth
# shellcheck source=bench/lib.sh
source bench/lib.sh

on_exit bench_cleanup # stops the troupes of start_troupe and the throw-away PostgreSQL

build_release troupe
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/out/auth-$stamp
mkdir -p "$out"

ensure_database

# A policy no benchmark can exhaust: every request is counted, none is refused.
high_limits=(--set limits.default_per_minute=1000000 --set limits.default_burst=1000000)
limited="" unlimited=""
start_troupe limited limited "${high_limits[@]}"
start_troupe unlimited unlimited --set limits.enabled=false

# One account; its access token (15 minutes) outlives the run.
account='{"email":"bench@example.com","password":"correct horse battery"}'
curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$account" "http://127.0.0.1:$limited/api/auth/register" || true
token=$(curl -sf -H 'Content-Type: application/json' -d "$account" "http://127.0.0.1:$limited/api/auth/login" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ -n $token ]] || die "could not log in"

# run NAME URL [wrk args...] -> sets RPS, P50_MS, P99_MS, NON2XX (wrk_run, bench/lib.sh)
run() {
  local name=$1 url=$2
  shift 2
  wrk_run "$name" "$out/$name-$round.txt" -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$@" "$url"
}

declare -A rps p50 p99 bad
rows=()
auth=(-H "Authorization: Bearer $token")
for ((round = 1; round <= ROUNDS; round++)); do
  for config in health me unlimited_me; do
    case $config in
      health) run health "http://127.0.0.1:$limited/health" ;;
      me) run me "http://127.0.0.1:$limited/api/me" "${auth[@]}" ;;
      unlimited_me) run unlimited_me "http://127.0.0.1:$unlimited/api/me" "${auth[@]}" ;;
    esac
    r=$RPS a=$P50_MS b=$P99_MS n=$NON2XX
    log "round $round: $config $r req/s, p50 $a ms, p99 $b ms, non-2xx $n"
    rps[$config]+="$r " p50[$config]+="$a " p99[$config]+="$b " bad[$config]=$((${bad[$config]:-0} + n))
    rows+=("| $round | $config | $r | $a | $b | $n |")
  done
done

health_rps=$(median_list "${rps[health]}") me_rps=$(median_list "${rps[me]}") free_rps=$(median_list "${rps[unlimited_me]}")
me_p50=$(median_list "${p50[me]}") free_p50=$(median_list "${p50[unlimited_me]}")
ratio_auth=$(awk -v a="$me_rps" -v b="$health_rps" 'BEGIN { printf "%.2f", a / b }')
ratio_limit=$(awk -v a="$me_rps" -v b="$free_rps" 'BEGIN { printf "%.2f", a / b }')
added_p50=$(awk -v a="$me_p50" -v b="$free_p50" 'BEGIN { printf "%.3f", a - b }')
v_auth=$(verdict "$(awk -v r="$ratio_auth" 'BEGIN { print (r >= 0.8) }')")
v_limit=$(verdict "$(awk -v r="$ratio_limit" 'BEGIN { print (r >= 0.85) }')")
v_p50=$(verdict "$(awk -v d="$added_p50" 'BEGIN { print (d <= 0.2) }')")
v_2xx=$(verdict "$(( ${bad[me]} + ${bad[unlimited_me]} + ${bad[health]} == 0 ))")

machine_facts
{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): authentication and rate limiting cost"
  echo
  echo "- command: \`make bench-auth\` (wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds, alternating; access log off)"
  echo "- machine: $cpu, $(nproc) CPUs, kernel $(uname -r); commit $commit"
  echo "- \`me\`: GET /api/me with a JWT on a troupe whose default policy is 1e6/min with a burst of 1e6 (every request asks its limiter shard, none is refused); \`unlimited_me\`: the same on a troupe with limits.enabled=false; \`health\`: GET /health on the limited troupe"
  echo
  echo "| round | route | req/s | p50 (ms) | p99 (ms) | non-2xx |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "| target | measured | verdict |"
  echo "|---|---|---|"
  echo "| /api/me >= 0.8x /health (auth issue) | ${ratio_auth}x ($me_rps vs $health_rps req/s) | $v_auth |"
  echo "| limited >= 0.85x unlimited (traffic issue) | ${ratio_limit}x ($me_rps vs $free_rps req/s) | $v_limit |"
  echo "| limited p50 <= unlimited + 0.2 ms | +$added_p50 ms ($me_p50 vs $free_p50 ms) | $v_p50 |"
  echo "| every response 2xx | ${bad[me]} + ${bad[unlimited_me]} + ${bad[health]} non-2xx | $v_2xx |"
} | tee -a "$RESULTS"
