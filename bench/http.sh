#!/usr/bin/env bash
# `make bench-http`: GET /health on Troupe against nginx answering `return 200` on the same machine, in the
# same run. Both listen on 127.0.0.1 only. wrk runs alternate nginx/troupe, ROUNDS rounds each; the medians,
# their ratio and the targets (Troupe >= 0.6x nginx req/s, Troupe p99 <= 5 ms, every response 2xx) are
# printed and appended to bench/RESULTS.md. Raw wrk outputs and server logs go to bench/out/http-<time>/.
#
# Knobs (environment): ROUNDS=3 DURATION=10s THREADS=2 CONNECTIONS=64 WARMUP=2s (0 to skip),
# TROUPE_DATABASE_URL (else a throw-away PostgreSQL under var/), BENCH_STRICT=1 (exit 1 on a MISS),
# NGINX_WORKERS=1 (one worker is the reference, ~120k req/s here: wrk takes the other core),
# TROUPE_ARGS (extra troupe arguments, e.g. "--set log.request_sample=0.01"; recorded with the result).
# For testing this harness: TROUPE_BIN (default build/troupe), BENCH_SKIP_BUILD=1, BENCH_RESULTS (file).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
WARMUP=${WARMUP:-2s}
TROUPE_BIN=${TROUPE_BIN:-build/troupe}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
NGINX=${NGINX:-/usr/sbin/nginx}
NGINX_WORKERS=${NGINX_WORKERS:-1}
TROUPE_ARGS=${TROUPE_ARGS:-}
TARGET_RATIO=0.6
TARGET_P99_MS=5

BENCH_NAME=bench-http
# shellcheck source=bench/lib.sh
source bench/lib.sh

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ $THREADS =~ ^[1-9][0-9]*$ && $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "THREADS and CONNECTIONS must be positive integers"
[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "DURATION must look like 10s, not '$DURATION'"
[[ $WARMUP =~ ^[0-9]+[smh]?$ ]] || die "WARMUP must look like 2s or 0, not '$WARMUP'"

# ---- processes and cleanup ----------------------------------------------------------------------------
troupe_pid=""
stop_at_exit=(troupe_pid nginx_pid)
on_exit bench_cleanup

# ---- build ----------------------------------------------------------------------------------------------
build_release troupe
[[ -x $TROUPE_BIN ]] || die "$TROUPE_BIN is missing or not executable"
for tool in wrk curl "$NGINX"; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps installs it)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/troupe-bench-http.XXXXXX")
chmod 755 "$tmp" # nginx workers may run as nobody
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/out/http-$stamp
mkdir -p "$out"

# ---- nginx ------------------------------------------------------------------------------------------------
nginx_port=$(free_port)
start_nginx "$NGINX" "$tmp" "$nginx_port" "$NGINX_WORKERS" "$out/nginx.log"
nginx_url="http://127.0.0.1:$nginx_port/"
log "nginx $nginx_url (pid $nginx_pid)"

# ---- troupe -----------------------------------------------------------------------------------------------
ensure_database
troupe_port=$(free_port)
# Keep the first MiB of troupe's log (startup, errors) and discard the rest, so per-request logging cannot
# fill the disk; the reader exits when troupe does.
# shellcheck disable=SC2086 # TROUPE_ARGS is a list of arguments
"$TROUPE_BIN" --set "http.port=$troupe_port" $TROUPE_ARGS </dev/null 2>"$out/troupe.stderr" \
  > >(head -c 1048576 >"$out/troupe.log"; cat >/dev/null) &
troupe_pid=$!
troupe_url="http://127.0.0.1:$troupe_port/health"
if ! wait_ready "$troupe_url" "$troupe_pid" troupe; then
  tail -n 20 "$out/troupe.log" "$out/troupe.stderr" >&2 || true
  die "troupe did not start"
fi
log "troupe $troupe_url (pid $troupe_pid)"

# ---- measurements -----------------------------------------------------------------------------------------
# run_wrk NAME URL FILE DURATION -> sets RPS, P99_MS, NON2XX, SOCKET_ERRORS (and the rest of wrk_parse's figures)
run_wrk() {
  local name=$1 url=$2 file=$3 duration=$4
  wrk_run "$name" "$file" -t"$THREADS" -c"$CONNECTIONS" -d"$duration" "$url"
  kill -0 "$nginx_pid" 2>/dev/null || die "nginx died during the run"
  kill -0 "$troupe_pid" 2>/dev/null || die "troupe died during the run (see $out/troupe.log)"
}

if [[ $WARMUP != 0 && $WARMUP != 0[smh] ]]; then
  log "warm-up: $WARMUP each (not recorded)"
  run_wrk nginx "$nginx_url" "$out/warmup-nginx.txt" "$WARMUP"
  run_wrk troupe "$troupe_url" "$out/warmup-troupe.txt" "$WARMUP"
fi

nginx_rps=() nginx_p99=() troupe_rps=() troupe_p99=() rows=()
troupe_non2xx=0
for ((round = 1; round <= ROUNDS; round++)); do
  for name in nginx troupe; do
    if [[ $name == nginx ]]; then url=$nginx_url; else url=$troupe_url; fi
    log "round $round/$ROUNDS: $name ($DURATION)"
    run_wrk "$name" "$url" "$out/round$round-$name.txt" "$DURATION"
    if [[ $name == nginx ]]; then
      nginx_rps+=("$RPS") nginx_p99+=("$P99_MS")
    else
      troupe_rps+=("$RPS") troupe_p99+=("$P99_MS")
      troupe_non2xx=$((troupe_non2xx + NON2XX))
    fi
    rows+=("$(printf '| %s | %s | %.0f | %.2f | %s | %s |' "$round" "$name" "$RPS" "$P99_MS" "$NON2XX" "$SOCKET_ERRORS")")
  done
done

nginx_rps_med=$(median "${nginx_rps[@]}")
nginx_p99_med=$(median "${nginx_p99[@]}")
troupe_rps_med=$(median "${troupe_rps[@]}")
troupe_p99_med=$(median "${troupe_p99[@]}")
ratio=$(awk -v t="$troupe_rps_med" -v n="$nginx_rps_med" 'BEGIN { printf "%.2f\n", (n > 0) ? t / n : 0 }')
verdict_ratio=$(awk -v r="$ratio" -v g="$TARGET_RATIO" 'BEGIN { print (r >= g) ? "PASS" : "MISS" }')
verdict_p99=$(awk -v p="$troupe_p99_med" -v g="$TARGET_P99_MS" 'BEGIN { print (p <= g) ? "PASS" : "MISS" }')
verdict_2xx=PASS
((troupe_non2xx == 0)) || verdict_2xx=MISS

# ---- report -----------------------------------------------------------------------------------------------
machine_facts
if [[ -n $(git status --porcelain 2>/dev/null | head -n 1) ]]; then commit+=" + uncommitted changes"; fi
nginx_version=$("$NGINX" -v 2>&1 | sed 's/^nginx version: nginx\///')
wrk_version=$( (wrk -v 2>&1 || true) | awk 'NR == 1 { print $2 }')

command="make bench-http"
overrides=""
[[ $ROUNDS == 3 ]] || overrides+="ROUNDS=$ROUNDS "
[[ $DURATION == 10s ]] || overrides+="DURATION=$DURATION "
[[ $THREADS == 2 ]] || overrides+="THREADS=$THREADS "
[[ $CONNECTIONS == 64 ]] || overrides+="CONNECTIONS=$CONNECTIONS "
[[ $WARMUP == 2s ]] || overrides+="WARMUP=$WARMUP "
[[ $NGINX_WORKERS == 1 ]] || overrides+="NGINX_WORKERS=$NGINX_WORKERS "
[[ -z $TROUPE_ARGS ]] || overrides+="TROUPE_ARGS='$TROUPE_ARGS' "
command="$overrides$command"

summary=$(
  cat <<EOF
Troupe/nginx req/s: $ratio (medians: troupe $(printf '%.0f' "$troupe_rps_med"), nginx $(printf '%.0f' "$nginx_rps_med"))
Troupe p99: $(printf '%.2f' "$troupe_p99_med") ms (nginx $(printf '%.2f' "$nginx_p99_med") ms)

| target | measured | verdict |
|---|---|---|
| Troupe req/s >= ${TARGET_RATIO}x nginx | ${ratio}x | $verdict_ratio |
| Troupe p99 <= $TARGET_P99_MS ms | $(printf '%.2f' "$troupe_p99_med") ms | $verdict_p99 |
| every Troupe response 2xx | $troupe_non2xx non-2xx | $verdict_2xx |
EOF
)

ensure_results_file "$RESULTS"

{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): HTTP GET /health, Troupe vs nginx"
  echo
  echo "- command: \`$command\` (wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency; $ROUNDS rounds each, alternating nginx/troupe; warm-up $WARMUP)"
  echo "- machine: ${cpu:-$(uname -m)}, $(nproc) CPUs (nproc), $mem RAM, kernel $(uname -r)"
  echo "- software: commit $commit; nginx $nginx_version (\`return 200\`, keep-alive, worker_processes $NGINX_WORKERS); wrk $wrk_version; troupe arguments: \`${TROUPE_ARGS:-(defaults)}\`"
  echo
  echo "| round | server | req/s | p99 (ms) | non-2xx | socket errors |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  printf '| median | nginx | %.0f | %.2f | | |\n' "$nginx_rps_med" "$nginx_p99_med"
  printf '| median | troupe | %.0f | %.2f | | |\n' "$troupe_rps_med" "$troupe_p99_med"
  echo
  echo "$summary"
} >>"$RESULTS"

echo
echo "HTTP GET /health, Troupe vs nginx ($command; raw output in $out)"
echo "$summary"
echo
log "appended to $RESULTS"

if [[ ${BENCH_STRICT:-0} == 1 && "$verdict_ratio$verdict_p99$verdict_2xx" != PASSPASSPASS ]]; then
  exit 1
fi
