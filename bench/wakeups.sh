#!/usr/bin/env bash
# `make bench-wakeups`: where a non-cached gateway call's time goes, for the build in build/ (a diagnostic: it
# prints, it records nothing). One troupe, one mock upstream and one throw-away PostgreSQL; wrk sends non-cached
# chat completions (bench/wrk/gateway_chat.lua, BENCH_CHAT=vary) at -c4 for DURATION after a short warm-up. Printed:
#   - calls/s, p50 and p99;
#   - CPU used by troupe, PostgreSQL and the mock, in cores (from /proc/<pid>/stat);
#   - troupe's context switches per call, by thread name (from /proc/<pid>/task/*/status): caf.actor = detached
#     actors (the upstream clients, the DB connections), caf.multiplexer = CAF's scheduler threads (they keep the
#     name of the thread that started them), caf.clock = CAF's timer thread, troupe-http = the connections' reactors;
#   - DB transactions and write requests per call (troupe_db_batches_total, troupe_db_write_requests_total).
# Each context switch is a thread that went to sleep and was woken again: on this 2-core VM a wake-up costs tens
# of µs, so this is the count a change to the request path should lower (docs/ARCHITECTURE.md, "Timers off the hot
# path"). With PERF=1, `perf record -g` samples troupe during the run into $out/perf.data.
#
# Knobs: DURATION=10s CONNECTIONS=4 THREADS=2, TROUPE_ARGS (extra troupe arguments, e.g. "--set db.pool_size=1"),
# BENCH_SKIP_BUILD=1, PERF=1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-4}
THREADS=${THREADS:-2}
BENCH_NAME=bench-wakeups
WRK_SCRIPT=bench/wrk/gateway_chat.lua
# shellcheck source=bench/lib.sh
source bench/lib.sh

troupe_pid="" mock_pid="" perf_pid=""
stop_at_exit=(perf_pid troupe_pid mock_pid)
tmp=$(mktemp -d)
on_exit bench_cleanup

build_release troupe mock-upstream
command -v wrk >/dev/null || die "wrk is not installed (scripts/install-deps)"
out=bench/out/wakeups-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
ensure_database
build/mock-upstream --threads 2 --max-connections 4096 --port-file "$tmp/mock.port" </dev/null >"$out/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 100); do [[ -s $tmp/mock.port ]] && break; sleep 0.1; done
[[ -s $tmp/mock.port ]] || die "the mock upstream did not start"
mock_base=http://127.0.0.1:$(tr -d '\n' <"$tmp/mock.port")
wait_ready "$mock_base/health" "$mock_pid" mock-upstream || die "the mock upstream did not answer"
TROUPE_UPSTREAMS=$(printf '[{"name":"mock","base_url":"%s/v1","models":["mock-1"],"max_inflight":4096}]' "$mock_base")
export TROUPE_UPSTREAMS
port=$(free_port)
# shellcheck disable=SC2086 # TROUPE_ARGS is a list of arguments
build/troupe --set "http.port=$port" --set log.request_sample=0 --set limits.default_per_minute=1000000 \
  --set limits.default_burst=1000000 --set limits.generate_per_minute=1000000 --set limits.generate_burst=1000000 \
  --set quota.free_per_day=100000000 --set limits.generate_max_inflight=1024 ${TROUPE_ARGS:-} </dev/null \
  >"$out/troupe.log" 2>&1 &
troupe_pid=$!
base=http://127.0.0.1:$port
wait_ready "$base/health" "$troupe_pid" troupe || die "troupe did not start; see $out/troupe.log"
account='{"email":"bench-wakeups@example.com","password":"correct horse battery staple"}'
curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$account" "$base/api/auth/register" || true
token=$(curl -sf -H 'Content-Type: application/json' -d "$account" "$base/api/auth/login" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ -n $token ]] || die "could not log in to troupe"
export BENCH_ACCESS_TOKEN=$token BENCH_CHAT=vary

# ticks PID -> utime + stime of the process (clock ticks)
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# postgres_ticks -> the same, summed over every postgres process
postgres_ticks() { cat /proc/[0-9]*/stat 2>/dev/null | awk '$2 ~ /postgres/ { s += $14 + $15 } END { print s + 0 }'; }
# threads FILE: one line per troupe thread: name, context switches (voluntary + not), ticks
threads() {
  local t
  for t in "/proc/$troupe_pid"/task/*; do
    printf '%s %s %s\n' "$(cat "$t/comm")" "$(awk '/ctxt_switches/ { s += $2 } END { print s }' "$t/status")" \
      "$(awk '{ print $14 + $15 }' "$t/stat")"
  done >"$1"
}
# counter NAME -> a counter from troupe's /metrics
counter() { curl -sf "$base/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }

wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$WRK_SCRIPT" "$base/v1/chat/completions" >/dev/null
threads "$out/threads-before.txt"
t0=$(ticks "$troupe_pid") m0=$(ticks "$mock_pid") p0=$(postgres_ticks)
b0=$(counter troupe_db_batches_total) w0=$(counter troupe_db_write_requests_total)
if [[ ${PERF:-0} == 1 ]]; then
  perf record -g -p "$troupe_pid" -o "$out/perf.data" >/dev/null 2>&1 &
  perf_pid=$!
fi
wrk_run chat "$out/wrk.txt" -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$WRK_SCRIPT" "$base/v1/chat/completions"
threads "$out/threads-after.txt"
t1=$(ticks "$troupe_pid") m1=$(ticks "$mock_pid") p1=$(postgres_ticks)
b1=$(counter troupe_db_batches_total) w1=$(counter troupe_db_write_requests_total)
if [[ -n $perf_pid ]]; then
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  perf_pid=""
fi
((NON2XX == 0 && SOCKET_ERRORS == 0)) || die "$NON2XX non-2xx responses, $SOCKET_ERRORS socket errors"

hz=$(getconf CLK_TCK)
cores() { awk -v t="$1" -v hz="$hz" -v s="$RUN_SECONDS" 'BEGIN { printf "%.2f", t / hz / s }'; }
per_call() { awk -v n="$1" -v c="$REQUESTS" 'BEGIN { printf "%.2f", n / c }'; }
echo
echo "bench-wakeups: $(git rev-parse --short HEAD), wrk -t$THREADS -c$CONNECTIONS -d$DURATION, non-cached chat completions"
echo "calls/s $RPS, p50 $P50_MS ms, p99 $P99_MS ms ($REQUESTS calls)"
echo "CPU (cores): troupe $(cores $((t1 - t0))), postgres $(cores $((p1 - p0))), mock $(cores $((m1 - m0)))"
echo "DB per call: $(per_call "$(awk -v a="$b0" -v b="$b1" 'BEGIN { print b - a }')") transactions," \
  "$(per_call "$(awk -v a="$w0" -v b="$w1" 'BEGIN { print b - a }')") write requests"
echo "troupe context switches per call, by thread name (threads, CPU µs per call):"
paste "$out/threads-before.txt" "$out/threads-after.txt" |
  awk -v calls="$REQUESTS" -v hz="$hz" '
    { n[$1]++; cs[$1] += $5 - $2; tk[$1] += $6 - $3; all += $5 - $2 }
    END {
      for (k in n) if (cs[k] > 0) printf "  %-16s %6.2f  (%d, %.1f µs)\n", k, cs[k] / calls, n[k], tk[k] / hz / calls * 1e6
      printf "  %-16s %6.2f\n", "total", all / calls
    }' | sort -k2 -nr
echo "raw: $out"
