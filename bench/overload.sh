#!/usr/bin/env bash
# `make bench-overload`: what Troupe does with more traffic than it can serve, and with clients that trickle.
#   A. Open-loop overload (h2load --h1 --rps: requests go out on schedule whatever the answers) at OVERLOAD x the
#      measured capacity of two routes:
#        me:      authenticated GET /api/me (JWT, session actor, limiter), capacity measured with wrk -c64;
#        gateway: streamed POST /v1/chat/completions through the mock upstream (a stream is never cached nor merged
#                 with an identical request in flight, so every request is an upstream call even though h2load
#                 sends one body), capacity with wrk -c16 (below limits.generate_max_inflight, the generation gate).
#      Targets (hardening issue, item 9): goodput (2xx/s under overload) >= 0.85x capacity; p99 of the admitted
#      (2xx) requests <= 5x their p99 at 20% of capacity; refusals are 503 with Retry-After, answered in <= 10 ms
#      (p99); RSS stays bounded; no crash.
#   B. Slow clients, 3,000 connections each: slowhttptest -H (heads trickled a few bytes every 10 s), then
#      bench/slow_clients --second (a normal first request, then a second head trickled one byte a second on the
#      kept-alive connection). Meanwhile a control client asks GET /api/me every 50 ms on fresh connections.
#      Target: control traffic 100% served; the server still alive.
# PIN=1 (default on 2+ CPUs): troupe runs on CPU 0, everything else (load generators, the mock, PostgreSQL) on CPU 1,
# for the capacity and the overload runs alike, so the load generator's own CPU (3x the requests) is not taken
# from the server; PIN=0 shares both CPUs.
# Knobs: DURATION=20 (s of each open-loop run) CAP_DURATION=10s ROUNDS=2 OVERLOAD=3 CONNECTIONS=400 (h2load's clients
# under overload) SLOW_CONNECTIONS=3000 SLOW_SECONDS=30; ROUTES="me gateway" (which of part A's routes run); SLOW=1
# (0 skips part B); MOCK_CPU=1 (the mock's CPU with PIN=1); TROUPE_ARGS (more `--set k=v` for troupe, e.g. another
# limits.generate_max_inflight); TROUPE_DATABASE_URL (else a throw-away PostgreSQL).
# Beside each run, the CPU that troupe and the mock used (in % of one core, from /proc/PID/stat): a route whose
# capacity leaves troupe's core idle is limited by something else (the mock, the load generator's core).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"
DURATION=${DURATION:-20}
CAP_DURATION=${CAP_DURATION:-10s}
ROUNDS=${ROUNDS:-2}
OVERLOAD=${OVERLOAD:-3}
CONNECTIONS=${CONNECTIONS:-400}
SLOW_CONNECTIONS=${SLOW_CONNECTIONS:-3000}
SLOW_SECONDS=${SLOW_SECONDS:-30}
ROUTES=${ROUTES:-me gateway}
MOCK_CPU=${MOCK_CPU:-1}
SLOW=${SLOW:-1}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
BENCH_NAME=bench-overload
# shellcheck source=bench/lib.sh
source bench/lib.sh

for tool in h2load wrk slowhttptest; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps installs it)"
done

mock_pid=""
control_pid=""
stop_at_exit=(control_pid mock_pid) # after the troupe of start_troupe (pids)
on_exit bench_cleanup

build_release troupe mock-upstream slow_clients
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/out/overload-$stamp
mkdir -p "$out"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

ensure_database
pin_generators

# ---- the mock upstream and troupe -------------------------------------------------------------------------
mock_pin=()
[[ $PIN == 1 ]] && mock_pin=(taskset -c "$MOCK_CPU")
"${mock_pin[@]}" build/mock-upstream --threads 1 --max-connections 4096 --port-file "$out/mock.port" </dev/null >"$out/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 100); do [[ -s $out/mock.port ]] && break; sleep 0.1; done
[[ -s $out/mock.port ]] || die "the mock upstream did not start; see $out/mock.log"
mock_base=http://127.0.0.1:$(tr -d '\n' <"$out/mock.port")
wait_ready "$mock_base/health" "$mock_pid" mock-upstream || die "the mock upstream did not answer"
TROUPE_UPSTREAMS=$(printf '[{"name":"mock","base_url":"%s/v1","models":["mock-1"],"max_inflight":4096}]' "$mock_base")
export TROUPE_UPSTREAMS

# Rate limits off (their largest settings, 1e6 a minute, are exhausted by a run at 3x capacity: this measures
# overload, not the limiter), a quota no run exhausts; the generation gate (limits.generate_max_inflight) and
# admission control keep their defaults: they are what is measured.
tport=""
# shellcheck disable=SC2086 # TROUPE_ARGS: extra --set pairs, split on spaces
start_troupe troupe tport --set limits.enabled=false --set quota.free_per_day=100000000 ${TROUPE_ARGS:-}
troupe_pid=${pids[-1]}
[[ $PIN == 1 ]] && taskset -a -p -c 0 "$troupe_pid" >/dev/null
base=http://127.0.0.1:$tport
account='{"email":"overload@example.com","password":"correct horse battery"}'
curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$account" "$base/api/auth/register" || true
token=$(curl -sf -H 'Content-Type: application/json' -d "$account" "$base/api/auth/login" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ -n $token ]] || die "could not log in"
auth="Authorization: Bearer $token"
printf '{"model":"mock-1","stream":true,"messages":[{"role":"user","content":"overload"}]}' >"$out/chat.json"

rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$troupe_pid/status"; }
# sample_rss FILE SECONDS: the server's RSS every 0.2 s, into FILE (in the background).
sample_rss() {
  local file=$1 n=$(($2 * 5)) i
  for ((i = 0; i < n; i++)); do
    rss_kib >>"$file" 2>/dev/null || break
    sleep 0.2
  done
}
max_of() { sort -n "$1" | tail -1; }
alive() { kill -0 "$troupe_pid" 2>/dev/null && curl -sf -o /dev/null --max-time 2 "$base/health"; }

# cpu_ticks PID: the user and system clock ticks the process has used so far (all its threads).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
tick_hz=$(getconf CLK_TCK)
# cpu_percent TICKS_BEFORE TICKS_AFTER SECONDS -> % of one core
cpu_percent() { awk -v a="$1" -v b="$2" -v s="$3" -v hz="$tick_hz" 'BEGIN { printf "%.0f", (b - a) * 100 / hz / s }'; }
cap_cpu="" # "troupe% mock%" of the last capacity() round
# capacity NAME URL CONNS [wrk args...] -> req/s (median of ROUNDS closed-loop wrk runs)
capacity() {
  local name=$1 url=$2 conns=$3 r values=() t0 m0 start
  shift 3
  for ((r = 1; r <= ROUNDS; r++)); do
    t0=$(cpu_ticks "$troupe_pid") m0=$(cpu_ticks "$mock_pid") start=$(date +%s.%N)
    "${gen[@]}" wrk -t2 -c"$conns" -d"$CAP_DURATION" "$@" "$url" >"$out/cap-$name-$r.txt" 2>&1 || die "wrk failed"
    local took
    took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
    cap_cpu="$(cpu_percent "$t0" "$(cpu_ticks "$troupe_pid")" "$took")% / $(cpu_percent "$m0" "$(cpu_ticks "$mock_pid")" "$took")%"
    echo "$cap_cpu" >"$out/cap-$name-$r.cpu"
    grep -q "Non-2xx" "$out/cap-$name-$r.txt" && log "capacity run $name-$r had non-2xx answers: $out/cap-$name-$r.txt"
    values+=("$(awk '$1 == "Requests/sec:" { print $2 }' "$out/cap-$name-$r.txt")")
  done
  median "${values[@]}"
}

# open_loop NAME URL RATE CONNS [h2load args...]: RATE req/s in all from CONNS clients for DURATION s; the
# per-request log in $out/NAME.log (start us, status, duration us).
open_loop() {
  local name=$1 url=$2 rate=$3 conns=$4 per_client
  shift 4
  per_client=$(awk -v r="$rate" -v c="$conns" 'BEGIN { v = r / c; printf "%d", (v < 1 ? 1 : v + 0.5) }')
  "${gen[@]}" h2load --h1 -t2 -c"$conns" --rps="$per_client" -D "$DURATION" --warm-up-time=2 --log-file="$out/$name.log" \
    "$@" "$url" >"$out/$name.txt" 2>&1 || die "h2load failed: $out/$name.txt"
}
# stats NAME -> "2xx/s 503/s other": from the h2load log of NAME (status 0: still in flight when the run ended)
stats() {
  awk -v d="$DURATION" -F'\t' '
    $2 >= 200 && $2 < 300 { ok++; print "ok", $3 > "/dev/stderr" }
    $2 == 503 { no++; print "no", $3 > "/dev/stderr" }
    $2 != 0 && !($2 >= 200 && $2 < 300) && $2 != 503 { other++ }
    END { printf "%.0f %.0f %d\n", ok / d, no / d, other }' "$out/$1.log" 2>"$out/$1.lat"
}
p99_of() { # NAME KIND -> ms
  grep "^$2 " "$out/$1.lat" | cut -d' ' -f2 | sort -n |
    awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.2f\n", a[i] / 1000 } }'
}

# retry_after_seen URL [curl args]: during an overload run, whether a 503 carried Retry-After (some tries).
retry_after_probe() {
  local url=$1 i
  shift
  for ((i = 0; i < 200; i++)); do
    curl -s -D - -o /dev/null --max-time 2 "$@" "$url" | tr -d '\r' >"$out/probe.txt" || true
    if grep -q '^HTTP/1.1 503' "$out/probe.txt"; then
      grep -qi '^retry-after: [0-9]' "$out/probe.txt" && echo yes || echo "no (503 without Retry-After)"
      return
    fi
    sleep 0.05
  done
  echo "no 503 seen"
}

rows=()
verdicts=()

measure() { # NAME URL CAP_CONNS [args for wrk and h2load: -H, and for POST the body]
  local name=$1 url=$2 cap_conns=$3 cap base_rate over_rate wrk_args=() h2_args=() curl_args=()
  shift 3
  while (($#)); do
    case $1 in
      -H) wrk_args+=(-H "$2") h2_args+=(-H "$2") curl_args+=(-H "$2"); shift 2 ;;
      --body) wrk_args+=(-s bench/wrk/post_file.lua) h2_args+=(-d "$2") curl_args+=(--data-binary "@$2")
        export WRK_BODY_FILE=$2; shift 2 ;;
      *) die "measure: unknown argument $1" ;;
    esac
  done
  cap=$(capacity "$name" "$url" "$cap_conns" "${wrk_args[@]}")
  local cap_cpu_last
  cap_cpu_last=$(cat "$out/cap-$name-$ROUNDS.cpu")
  log "$name: capacity $cap req/s (wrk -c$cap_conns, median of $ROUNDS); CPU troupe / mock in the last round: $cap_cpu_last"
  base_rate=$(awk -v c="$cap" 'BEGIN { printf "%d", c * 0.2 }')
  open_loop "$name-unloaded" "$url" "$base_rate" 8 "${h2_args[@]}"
  read -r u_ok u_no u_other < <(stats "$name-unloaded")
  local u_p99
  u_p99=$(p99_of "$name-unloaded" ok)
  log "$name: at $base_rate req/s: $u_ok 2xx/s, p99 $u_p99 ms"
  over_rate=$(awk -v c="$cap" -v k="$OVERLOAD" 'BEGIN { printf "%d", c * k }')
  local rss_file="$out/$name-rss.txt" rss_before probe
  rss_before=$(rss_kib)
  sample_rss "$rss_file" "$((DURATION + 3))" &
  local sampler=$!
  (sleep 5 && retry_after_probe "$url" "${curl_args[@]}" >"$out/$name-probe.txt") &
  local prober=$!
  local t0 m0 start took over_cpu
  t0=$(cpu_ticks "$troupe_pid") m0=$(cpu_ticks "$mock_pid") start=$(date +%s.%N)
  open_loop "$name-overload" "$url" "$over_rate" "$CONNECTIONS" "${h2_args[@]}"
  took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  over_cpu="$(cpu_percent "$t0" "$(cpu_ticks "$troupe_pid")" "$took")% / $(cpu_percent "$m0" "$(cpu_ticks "$mock_pid")" "$took")%"
  wait "$sampler" "$prober" || true
  read -r o_ok o_no o_other < <(stats "$name-overload")
  local o_p99 n_p99 rss_max offered
  o_p99=$(p99_of "$name-overload" ok)
  n_p99=$(p99_of "$name-overload" no)
  rss_max=$(max_of "$rss_file")
  offered=$(awk '/requests:/ { print $2; exit }' "$out/$name-overload.txt")
  offered=$(awk -v n="$offered" -v d="$DURATION" 'BEGIN { printf "%.0f", n / d }')
  probe=$(cat "$out/$name-probe.txt")
  log "$name: offered $over_rate req/s (sent $offered/s): $o_ok 2xx/s p99 $o_p99 ms, $o_no 503/s p99 $n_p99 ms, other $o_other; RSS $((rss_before / 1024)) -> max $((rss_max / 1024)) MiB; Retry-After: $probe; CPU troupe / mock $over_cpu"
  alive || die "troupe did not survive the overload of $name; see $out/troupe.log"
  # What one refusal costs, in served requests: the capacity not served went into refusing.
  local refusal_cost
  refusal_cost=$(awk -v c="$cap" -v o="$o_ok" -v n="$o_no" 'BEGIN { if (n == 0) print "-"; else printf "%.2f", (c - o) / n }')
  costs+=("| $name | $refusal_cost | $(awk -v c="$cap" -v h="$health_cap" 'BEGIN { printf "%.2f", c / h }') |")
  rows+=("| $name | $cap | $cap_cpu_last | $u_p99 | $over_rate ($offered sent) | $o_ok | $o_p99 | $o_no | $n_p99 | $o_other | $over_cpu | $((rss_before / 1024)) → $((rss_max / 1024)) | $probe |")
  local good ratio_p99
  good=$(awk -v o="$o_ok" -v c="$cap" 'BEGIN { printf "%.2f", o / c }')
  ratio_p99=$(awk -v o="$o_p99" -v u="$u_p99" 'BEGIN { if (u + 0 == 0) print "-"; else printf "%.1f", o / u }')
  verdicts+=("| $name: goodput >= 0.85x capacity | ${good}x ($o_ok of $cap req/s) | $(verdict "$(awk -v g="$good" 'BEGIN { print (g >= 0.85) }')") |")
  verdicts+=("| $name: admitted p99 <= 5x unloaded p99 | ${ratio_p99}x ($o_p99 vs $u_p99 ms) | $(verdict "$(awk -v r="$ratio_p99" 'BEGIN { print (r != "-" && r <= 5) }')") |")
  verdicts+=("| $name: refusals 503 + Retry-After, p99 <= 10 ms | $o_no/s, p99 $n_p99 ms, Retry-After: $probe, other statuses $o_other | $(verdict "$(awk -v p="$n_p99" -v r="$probe" -v o="$o_other" 'BEGIN { print ((p == "-" || p <= 10) && (r == "yes" || r == "no 503 seen") && o == 0) }')") |")
}

# The cheapest answer there is (parse a request, write a small response, no actor): a refusal cannot cost less.
costs=()
health_cap=$(capacity health "$base/health" 64)
log "health: capacity $health_cap req/s"
for route in $ROUTES; do
  case $route in
    me) measure me "$base/api/me" 64 -H "$auth" ;;
    gateway) measure gateway "$base/v1/chat/completions" 16 -H "$auth" -H 'Content-Type: application/json' \
      --body "$out/chat.json" ;;
    *) die "ROUTES: unknown route $route (me, gateway)" ;;
  esac
done

# ---- B. slow clients ------------------------------------------------------------------------------------------
# control LOGFILE: GET /api/me every 50 ms on a new connection each time; one status per line.
control() {
  while :; do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 -H "$auth" "$base/api/me" >>"$1" || echo 000 >>"$1"
    sleep 0.05
  done
}
slow_rows=()
slow_run() { # NAME COMMAND...
  local name=$1 served total
  shift
  : >"$out/$name-control.txt"
  control "$out/$name-control.txt" &
  control_pid=$!
  "${gen[@]}" "$@" >"$out/$name.txt" 2>&1 || log "$name: exit status $? (see $out/$name.txt)"
  kill "$control_pid" 2>/dev/null
  wait "$control_pid" 2>/dev/null || true
  control_pid=""
  total=$(wc -l <"$out/$name-control.txt")
  served=$(grep -c '^200$' "$out/$name-control.txt" || true)
  alive || die "troupe did not survive $name; see $out/troupe.log"
  log "$name: control traffic $served of $total served"
  slow_rows+=("| $name | $served / $total | $(verdict "$((served == total && total > 0))") | $(tail -c 600 "$out/$name.txt" | tr '\n|' ' /' | sed 's/  */ /g' | tail -c 300) |")
}
if [[ $SLOW == 1 ]]; then
slow_run slowhttptest-heads slowhttptest -H -c "$SLOW_CONNECTIONS" -r 1000 -i 10 -s 8192 -l "$SLOW_SECONDS" -t GET \
  -u "$base/health" -p 3
slow_run slow-second-requests build/bench/slow_clients --port "$tport" --connections "$SLOW_CONNECTIONS" \
  --interval-ms 1000 --seconds "$SLOW_SECONDS" --second
fi

machine_facts
{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): overload and slow clients"
  echo
  echo "- command: \`make bench-overload\` (ROUTES=\"$ROUTES\" SLOW=$SLOW PIN=$PIN DURATION=$DURATION OVERLOAD=$OVERLOAD CONNECTIONS=$CONNECTIONS ROUNDS=$ROUNDS SLOW_CONNECTIONS=$SLOW_CONNECTIONS SLOW_SECONDS=$SLOW_SECONDS)"
  echo "- machine: $cpu, $(nproc) CPUs, kernel $(uname -r); commit $commit; $([[ $PIN == 1 ]] && echo "troupe pinned to CPU 0, load generators, mock and PostgreSQL to CPU 1" || echo "load generators on the same CPUs as the server")"
  echo "- capacity: wrk -t2 closed loop (me -c64, gateway -c16), median of $ROUNDS; unloaded: h2load --h1 -c8 at 0.2x capacity; overload: h2load --h1 -t2 -c$CONNECTIONS --rps at ${OVERLOAD}x capacity for $DURATION s (open loop; 'sent' is what h2load managed to send)"
  echo
  echo "| route | capacity (req/s) | CPU troupe / mock at capacity | unloaded p99 (ms) | offered (req/s) | 2xx/s | 2xx p99 (ms) | 503/s | 503 p99 (ms) | other | CPU troupe / mock under overload | RSS MiB (before → max) | 503 has Retry-After |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  if [[ $SLOW == 1 ]]; then
    echo "| slow clients ($SLOW_CONNECTIONS connections, $SLOW_SECONDS s) | control GET /api/me served | verdict | tool's summary |"
    echo "|---|---|---|---|"
    printf '%s\n' "${slow_rows[@]}"
    echo
  fi
  echo "What a refusal costs, in served requests of its route: (capacity - 2xx/s under overload) / 503/s. Its floor is"
  echo "what the cheapest answer costs (GET /health, $health_cap req/s): route capacity / health capacity. Goodput"
  echo "at k x capacity is at most (1 - k c) / (1 - c) of capacity for a refusal cost c: 0.85 at 3x needs c <= 0.07."
  echo
  echo "| route | refusal cost (measured) | refusal cost floor (capacity / health capacity) |"
  echo "|---|---|---|"
  printf '%s\n' "${costs[@]}"
  echo
  echo "| target | measured | verdict |"
  echo "|---|---|---|"
  printf '%s\n' "${verdicts[@]}"
} | tee -a "$RESULTS"
