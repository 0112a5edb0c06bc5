#!/usr/bin/env bash
# `make bench-connections`: thousands of connections held open at once (issue 18, item 6). IDLE idle keep-alive
# connections (one GET /health answered, then silence), SSE server-sent event streams (GET /api/jobs/{id}/events
# of a job that stays running: heartbeats every 15 s) and WS WebSocket connections (GET /ws, authenticated by the
# handshake, then only the server's pings) are opened by bench/hold_connections and held while
# `GET /health` is measured (wrk -t1 -c4, ROUNDS rounds of ROUND_SECONDS) before, during and after.
# Figures: the server's RSS per idle connection, per stream and per WebSocket (the RSS they add, divided by their
# number), the
# CPU troupe spends holding them, and /health's p50/p99 with them held against without them in the same run.
# Targets: every connection held for the whole hold (none dropped); /health p99 while held <= 2x its p99 without
# them; the RSS they add bounded (reported per connection). The hold fits in http.keepalive_timeout_ms (60 s), so
# the server runs with its defaults apart from rate limits (off: one user opens every stream, far past the
# default policy of 120 a minute), the job event stream caps (jobs.max_event_streams[_per_user], 1000
# and 8 by default) and the WebSocket cap per user (ws.max_connections_per_user, 32): here one user holds them all.
# PIN=1 (default on 2+ CPUs): troupe on CPU 0, the clients, wrk and PostgreSQL on CPU 1.
# Knobs: IDLE=2000 SSE=1500 WS=1500 ROUNDS=3 ROUND_SECONDS=5; TROUPE_DATABASE_URL (else a throw-away PostgreSQL).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"
IDLE=${IDLE:-2000}
SSE=${SSE:-1500}
WS=${WS:-1500}
ROUNDS=${ROUNDS:-3}
ROUND_SECONDS=${ROUND_SECONDS:-5}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
BENCH_NAME=bench-connections
# shellcheck source=bench/lib.sh
source bench/lib.sh

command -v wrk >/dev/null || die "wrk is missing (scripts/install-deps installs it)"
idle_pid=""
sse_pid=""
ws_pid=""
stop_at_exit=(idle_pid sse_pid ws_pid)
on_exit bench_cleanup

build_release troupe hold_connections
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/out/connections-$stamp
mkdir -p "$out"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
ensure_database
pin_generators

total=$((IDLE + SSE + WS))
tport=""
start_troupe troupe tport --set limits.enabled=false --set "jobs.max_event_streams=$((SSE + 100))" \
  --set "jobs.max_event_streams_per_user=$((SSE + 100))" --set "ws.max_connections_per_user=$((WS + 100))"
troupe_pid=${pids[-1]}
[[ $PIN == 1 ]] && taskset -a -p -c 0 "$troupe_pid" >/dev/null
base=http://127.0.0.1:$tport
account='{"email":"connections@example.com","password":"correct horse battery"}'
curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$account" "$base/api/auth/register" || true
token=$(curl -sf -H 'Content-Type: application/json' -d "$account" "$base/api/auth/login" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ -n $token ]] || die "could not log in"
user_id=$(curl -sf -H "Authorization: Bearer $token" "$base/api/me" | sed -n 's/.*"user_id":"\([^"]*\)".*/\1/p')
# A job that stays running on "another node" (a live lease this node's queue leaves alone): its streams only get
# heartbeats while the run lasts.
job=$(psql -qtA "$TROUPE_DATABASE_URL" -c "INSERT INTO jobs (user_id, kind, state, attempts, lease_owner, lease_until)
  VALUES ('$user_id', 'upload', 'running', 1, 'elsewhere', now() + interval '1 hour') RETURNING id" | head -1)
[[ -n $job ]] || die "could not create the job to watch"

rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$troupe_pid/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
tick_hz=$(getconf CLK_TCK)
# health_rounds NAME: ROUNDS wrk runs against /health; sets p50s and p99s (space-separated, one per round)
health_rounds() {
  local name=$1 r
  p50s="" p99s=""
  for ((r = 1; r <= ROUNDS; r++)); do
    "${gen[@]}" wrk --latency -t1 -c4 -d"${ROUND_SECONDS}s" "$base/health" >"$out/health-$name-$r.txt" 2>&1 ||
      die "wrk failed ($name)"
    wrk_parse "health-$name-$r" "$out/health-$name-$r.txt"
    ((SOCKET_ERRORS == 0 && NON2XX == 0)) || die "/health failed under $name: $out/health-$name-$r.txt"
    p50s+="$P50_MS " p99s+="$P99_MS "
  done
}
# wait_holder FILE PID NAME: waits for a holder's ready file; echoes "<idle held> <sse held> <failed> <ws held>"
wait_holder() {
  local file=$1 pid=$2 name=$3 i
  for ((i = 0; i < 900; i++)); do
    [[ -s $file ]] && { cat "$file"; return 0; }
    kill -0 "$pid" 2>/dev/null || die "the $name holder exited early; see $out/$name.json"
    sleep 0.1
  done
  die "the $name holder did not get its connections within 90 s"
}

"${gen[@]}" wrk -t1 -c4 -d2s "$base/health" >/dev/null 2>&1 || true # warm-up
health_rounds before
before_p50=$p50s before_p99=$p99s
sleep 1
rss0=$(rss_kib)

# Idle keep-alive connections, then the streams; each holder keeps its connections for long enough to cover the
# measurement below (well under the 60 s keep-alive timeout).
hold=$((ROUNDS * ROUND_SECONDS + 25))
# start_holder NAME SECONDS ARGS...: a holder in the background, its output in $out/NAME.*; sets holder_pid
start_holder() {
  local name=$1 seconds=$2
  shift 2
  "${gen[@]}" build/bench/hold_connections --port "$tport" --idle 0 --sse 0 "$@" --seconds "$seconds" \
    --ready-file "$out/$name.ready" >"$out/$name.json" 2>"$out/$name.err" &
  holder_pid=$!
}
start_holder idle "$hold" --idle "$IDLE"
idle_pid=$holder_pid
read -r idle_held _ idle_failed _ < <(wait_holder "$out/idle.ready" "$idle_pid" idle)
sleep 1
rss1=$(rss_kib)
start_holder sse "$((hold - 5))" --sse "$SSE" --sse-path "/api/jobs/$job/events" --header "Authorization: Bearer $token"
sse_pid=$holder_pid
read -r _ sse_held sse_failed _ < <(wait_holder "$out/sse.ready" "$sse_pid" sse)
sleep 1
rss2=$(rss_kib)
start_holder ws "$((hold - 10))" --ws "$WS" --header "Authorization: Bearer $token"
ws_pid=$holder_pid
read -r _ _ ws_failed ws_held < <(wait_holder "$out/ws.ready" "$ws_pid" ws)
sleep 1
rss2w=$(rss_kib)
log "held $idle_held idle ($idle_failed failed), $sse_held streams ($sse_failed failed) and $ws_held WebSockets ($ws_failed failed); RSS $rss0 -> $rss1 -> $rss2 -> $rss2w KiB"

t0=$(cpu_ticks "$troupe_pid")
sleep 5
holding_cpu=$(awk -v a="$t0" -v b="$(cpu_ticks "$troupe_pid")" -v hz="$tick_hz" 'BEGIN { printf "%.1f", (b - a) * 100 / hz / 5 }')
health_rounds held
held_p50=$p50s held_p99=$p99s
rss3=$(rss_kib)

wait "$idle_pid" || die "the idle holder failed; see $out/idle.err"
idle_pid=""
wait "$sse_pid" || die "the stream holder failed; see $out/sse.err"
sse_pid=""
wait "$ws_pid" || die "the WebSocket holder failed; see $out/ws.err"
ws_pid=""
read -r dropped_idle dropped_sse dropped_ws < <(cat "$out/idle.json" "$out/sse.json" "$out/ws.json" |
  awk -F'[:,}]' '{ for (i = 1; i < NF; i++) { if ($i ~ /"dropped_idle"/) di += $(i + 1); if ($i ~ /"dropped_sse"/) ds += $(i + 1); if ($i ~ /"dropped_ws"/) dw += $(i + 1) } } END { print di + 0, ds + 0, dw + 0 }')
sleep 2
health_rounds after
after_p50=$p50s after_p99=$p99s
rss4=$(rss_kib)
kill -0 "$troupe_pid" 2>/dev/null || die "troupe died"

# Without them: the rounds before and after; with them: the rounds while they were held.
without_p50=$(median $before_p50 $after_p50)
without_p99=$(median $before_p99 $after_p99)
with_p50=$(median_list "$held_p50")
with_p99=$(median_list "$held_p99")
p99_ratio=$(ratio "$with_p99" "$without_p99")
idle_kib=$(awk -v a="$rss0" -v b="$rss1" -v n="$idle_held" 'BEGIN { printf "%.1f", (n > 0) ? (b - a) / n : 0 }')
sse_kib=$(awk -v a="$rss1" -v b="$rss2" -v n="$sse_held" 'BEGIN { printf "%.1f", (n > 0) ? (b - a) / n : 0 }')
ws_kib=$(awk -v a="$rss2" -v b="$rss2w" -v n="$ws_held" 'BEGIN { printf "%.1f", (n > 0) ? (b - a) / n : 0 }')
held_all=$((idle_held + sse_held + ws_held))
held_verdict=$(verdict "$((held_all == total && dropped_idle == 0 && dropped_sse == 0 && dropped_ws == 0))")
p99_verdict=$(at_most "$p99_ratio" 2)
log "/health p99 $with_p99 ms held vs $without_p99 ms without ($p99_ratio x): $p99_verdict; held all: $held_verdict"

machine_facts
ensure_results_file "$RESULTS"
cat >>"$RESULTS" <<EOF

## bench-connections, $(date -u +%Y-%m-%d) ($commit)

Command: \`make bench-connections\` (IDLE=$IDLE SSE=$SSE WS=$WS ROUNDS=$ROUNDS ROUND_SECONDS=$ROUND_SECONDS PIN=$PIN).
Machine: $cpu, $(nproc) cores, $mem. troupe with its defaults but the job event stream caps and rate limits;
${IDLE} idle keep-alive connections (one \`GET /health\` each, then silence), ${SSE} SSE streams
(\`GET /api/jobs/{id}/events\` of a job that stays running: a heartbeat every 15 s) and ${WS} WebSocket connections
(\`GET /ws\` with a bearer token: a session actor each, then only the server's pings) held by
\`bench/hold_connections\`; \`GET /health\` measured with wrk -t1 -c4 before, while and after they are held.

| measurement | value | target |
|---|---|---|
| connections held for the whole hold | $held_all of $total (dropped: $dropped_idle idle, $dropped_sse streams, $dropped_ws WebSockets; failed to open: $idle_failed, $sse_failed, $ws_failed) | all: $held_verdict |
| RSS | $((rss0 / 1024)) MiB -> $((rss1 / 1024)) with the idle ones -> $((rss2 / 1024)) with the streams -> $((rss2w / 1024)) with the WebSockets -> $((rss3 / 1024)) after the rounds -> $((rss4 / 1024)) MiB after they closed | bounded |
| RSS per idle keep-alive connection | $idle_kib KiB | reported |
| RSS per event stream | $sse_kib KiB | reported |
| RSS per WebSocket (connection, channel, session actor) | $ws_kib KiB | reported |
| troupe CPU while holding them (nothing asked) | $holding_cpu% of one core | reported |
| /health p50 without / with them (rounds: $before_p50/ $after_p50/ $held_p50 ms) | $without_p50 / $with_p50 ms | reported |
| /health p99 without / with them (rounds: $before_p99/ $after_p99/ $held_p99 ms) | $without_p99 / $with_p99 ms ($p99_ratio x) | <= 2x: $p99_verdict |

Raw outputs: \`$out/\`.
EOF
log "recorded in $RESULTS"
