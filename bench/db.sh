#!/usr/bin/env bash
# `make bench-db`: durable writes through POST /api/events, measured in the database, in one run:
#   group  single-event requests (wrk -c64, bench/wrk/post_event.lua), Troupe with its defaults (group commit);
#   alone  the same load on Troupe with --set db.batch_max_rows=1 (every request commits alone);
#   batch  1000-event requests (wrk -c8, bench/wrk/post_batch.lua), Troupe with its defaults;
#   copy   build/bench/bench_copy: the same rows COPYed straight into PostgreSQL over one connection, in
#          transactions of 1000 rows (the reference of the batch path).
# Each run gets a fresh Troupe process on a free port (stopped with SIGTERM afterwards), started with
# --set log.request_sample=0 so access logging does not weigh on the comparison. Writes need a credential: a user is
# registered for the run (left in the database), and wrk sends an access token (JWT) from a login on each Troupe
# process; bench_copy stamps that user's id on its rows as Troupe does. One user sends everything, so a binary with
# a rate limiter runs with --set limits.enabled=false. Durable events/s are the rows
# funnel_events gained during the run (count(*) before and after) divided by the run's measured duration; wrk's
# req/s, p50, p99 and non-2xx are recorded too. Rounds run group, alone, batch, copy in turn, ROUNDS times; the
# medians, the ratios group/alone and batch/copy and the targets (group >= 5x alone and >= 20000 events/s;
# batch >= 0.5x copy; every response 2xx; every acknowledged event in the table) are printed and appended to
# bench/RESULTS.md. Raw outputs and server logs go to bench/out/db-<time>/.
#
# Knobs (environment): ROUNDS=3 DURATION=10s THREADS=2 CONNECTIONS=64 (single events) BATCH_CONNECTIONS=8
# BATCH_EVENTS=1000 (events per batch request and rows per COPY transaction, 1 to 1000) WARMUP=2s (wrk on each
# fresh Troupe before its measured run, not recorded; 0 to skip), TROUPE_DATABASE_URL (else a throw-away
# PostgreSQL under var/; funnel_events is never truncated, only counted), BENCH_STRICT=1 (exit 1 on a MISS),
# TROUPE_ARGS (extra troupe arguments for every Troupe run; recorded with the result).
# For testing this harness: TROUPE_BIN (default build/troupe), COPY_BIN (default build/bench/bench_copy),
# BENCH_SKIP_BUILD=1, BENCH_RESULTS (file).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
BATCH_CONNECTIONS=${BATCH_CONNECTIONS:-8}
BATCH_EVENTS=${BATCH_EVENTS:-1000}
WARMUP=${WARMUP:-2s}
TROUPE_BIN=${TROUPE_BIN:-build/troupe}
COPY_BIN=${COPY_BIN:-build/bench/bench_copy}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
TROUPE_ARGS=${TROUPE_ARGS:-}
TARGET_GROUP_RATIO=5
TARGET_GROUP_EPS=20000
TARGET_BATCH_RATIO=0.5
# Arguments of every Troupe run. The grace time is short because wrk closes its connections with requests still
# in flight at the end of a run; it only bounds how long a stop takes, never what is measured.
BASE_ARGS=(--set log.request_sample=0 --set shutdown.grace_ms=2000)
ALONE_ARGS=(--set db.batch_max_rows=1)

BENCH_NAME=bench-db
# shellcheck source=bench/lib.sh
source bench/lib.sh

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ $THREADS =~ ^[1-9][0-9]*$ && $CONNECTIONS =~ ^[1-9][0-9]*$ && $BATCH_CONNECTIONS =~ ^[1-9][0-9]*$ ]] ||
  die "THREADS, CONNECTIONS and BATCH_CONNECTIONS must be positive integers"
((THREADS <= CONNECTIONS && THREADS <= BATCH_CONNECTIONS)) ||
  die "THREADS ($THREADS) must not exceed CONNECTIONS or BATCH_CONNECTIONS (wrk needs a connection per thread)"
if ! [[ $BATCH_EVENTS =~ ^[1-9][0-9]*$ ]] || ((BATCH_EVENTS > 1000)); then
  die "BATCH_EVENTS must be an integer from 1 to 1000 (the API's limit per request), not '$BATCH_EVENTS'"
fi
[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "DURATION must look like 10s, not '$DURATION'"
[[ $WARMUP =~ ^[0-9]+[smh]?$ ]] || die "WARMUP must look like 2s or 0, not '$WARMUP'"

# "10s" / "2m" / "1h" / "10" -> seconds
to_seconds() {
  local n=${1%[smh]}
  case $1 in
    *m) echo $((n * 60)) ;;
    *h) echo $((n * 3600)) ;;
    *) echo "$n" ;;
  esac
}
duration_s=$(to_seconds "$DURATION")

# ---- processes and cleanup ----------------------------------------------------------------------------
troupe_pid=""
client_pid="" # wrk or bench_copy, run in the background so a signal is handled at once

stop_at_exit=(client_pid troupe_pid)
on_exit bench_cleanup

# ---- build ----------------------------------------------------------------------------------------------
scripts/install-deps
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  if grep -Eq '^TROUPE_SANITIZE:STRING=.+' build/CMakeCache.txt; then
    die "build/ is a sanitizer build (TROUPE_SANITIZE in build/CMakeCache.txt): benchmark a plain Release build"
  fi
  if grep -Eq '^TROUPE_BUILD_BENCH:BOOL=(OFF|0|FALSE|NO)$' build/CMakeCache.txt; then
    die "build/ was configured with -DTROUPE_BUILD_BENCH=OFF: bench_copy is not built there"
  fi
  cmake --build build -j2 --target troupe bench_copy
fi
[[ -x $TROUPE_BIN ]] || die "$TROUPE_BIN is missing or not executable"
# One bench user sends every request, far beyond any per-user rate limit: a binary with a rate limiter runs without
# it here (the comparisons are about the database path; both sides of each ratio run the same way).
if "$TROUPE_BIN" --help 2>/dev/null | grep -q '^ *limits\.enabled '; then
  BASE_ARGS+=(--set limits.enabled=false)
fi
[[ -x $COPY_BIN ]] || die "$COPY_BIN is missing or not executable"
for tool in wrk curl psql; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps installs it)"
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/out/db-$stamp
mkdir -p "$out"

# ---- PostgreSQL -------------------------------------------------------------------------------------------
ensure_database
database="TROUPE_DATABASE_URL (given)"
[[ -z $pg_dir ]] || database="a throw-away cluster under var/ (scripts/pg)"

sql() { # one value from one query; the URL stays out of every message
  PGCONNECT_TIMEOUT=10 psql -X -q -tA -v ON_ERROR_STOP=1 -d "$TROUPE_DATABASE_URL" -c "$1"
}
if ! "$TROUPE_BIN" migrate >"$out/migrate.log" 2>&1; then
  cat "$out/migrate.log" >&2
  die "troupe migrate failed"
fi
count_rows() {
  sql 'select count(*) from funnel_events' || die "could not count the rows of funnel_events"
}
pg_version=$(sql 'show server_version' | awk '{ print $1 }')
pg_settings=$(sql "select string_agg(name || '=' || current_setting(name), ', ' order by name) from pg_settings
                   where name in ('fsync', 'synchronous_commit', 'shared_buffers', 'wal_level', 'max_wal_size',
                                  'commit_delay', 'full_page_writes')")
rows_at_start=$(count_rows)
log "PostgreSQL $pg_version, $database; funnel_events holds $rows_at_start rows"

# ---- measurements -----------------------------------------------------------------------------------------
# Poll Troupe's readiness until it says healthy (database included), while PID lives; at most 15 s.
wait_healthy() {
  local url=$1 pid=$2 i
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if curl -s --max-time 1 "$url" 2>/dev/null | grep -q '^{"status":"healthy"'; then return 0; fi
    sleep 0.1
  done
  log "troupe did not report healthy at $url within 15 s"
  return 1
}

# post_json PATH JSON -> sets HTTP_STATUS and HTTP_BODY (the JSON goes through stdin, off the command line)
post_json() {
  local response
  response=$(curl -s --max-time 30 -X POST -H 'Content-Type: application/json' --data-binary @- \
    -w '\n%{http_code}' "http://127.0.0.1:$troupe_port$1" <<<"$2") || response=$'\n000'
  HTTP_STATUS=${response##*$'\n'}
  HTTP_BODY=${response%$'\n'*}
}
json_field() { sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" <<<"$1"; } # BODY NAME -> a string field

# Registers the bench user on the first call (its id goes to bench_copy); logs in on each call and keeps the access
# token for wrk (the scripts read it from BENCH_ACCESS_TOKEN).
bench_user_id=""
bench_email=""
bench_password=""
access_token=""
sign_in() {
  local credentials
  if [[ -z $bench_user_id ]]; then
    bench_email="bench-${stamp,,}-$RANDOM$RANDOM@example.com"
    bench_password=$(head -c 24 /dev/urandom | base64 -w0 | tr -d '/+=')
    credentials="{\"email\":\"$bench_email\",\"password\":\"$bench_password\"}"
    post_json /api/auth/register "$credentials"
    [[ $HTTP_STATUS == 201 ]] || die "registering the bench user failed: HTTP $HTTP_STATUS $HTTP_BODY"
    bench_user_id=$(json_field "$HTTP_BODY" user_id)
    [[ -n $bench_user_id ]] || die "no user_id in the registration answer: $HTTP_BODY"
    log "registered the bench user $bench_email ($bench_user_id)"
  fi
  credentials="{\"email\":\"$bench_email\",\"password\":\"$bench_password\"}"
  post_json /api/auth/login "$credentials"
  [[ $HTTP_STATUS == 200 ]] || die "logging in as the bench user failed: HTTP $HTTP_STATUS $HTTP_BODY"
  access_token=$(json_field "$HTTP_BODY" access_token)
  [[ -n $access_token ]] || die "no access_token in the login answer"
}

# start_db_troupe NAME ARGS... -> sets troupe_pid, troupe_port, troupe_log
start_db_troupe() {
  local name=$1
  shift
  troupe_log=$out/$name-troupe.log
  troupe_port=$(free_port)
  # Keep the first MiB of troupe's log (startup, errors) and discard the rest; the reader exits with troupe.
  # shellcheck disable=SC2086 # TROUPE_ARGS is a list of arguments
  "$TROUPE_BIN" --set "http.port=$troupe_port" "${BASE_ARGS[@]}" "$@" $TROUPE_ARGS </dev/null \
    2>"$out/$name-troupe.stderr" > >(head -c 1048576 >"$out/$name-troupe.log"; cat >/dev/null) &
  troupe_pid=$!
  if ! wait_healthy "http://127.0.0.1:$troupe_port/api/health" "$troupe_pid"; then
    tail -n 20 "$out/$name-troupe.log" "$out/$name-troupe.stderr" >&2 || true
    die "troupe did not start ($name)"
  fi
}

stop_troupe() {
  local name=$1
  stop_pid "$troupe_pid" troupe 15
  troupe_pid=""
  ((STOP_STATUS == 0)) || log "troupe ($name) exited with status $STOP_STATUS after SIGTERM (see $out/$name-troupe.log)"
}

# run_wrk NAME SCRIPT CONNECTIONS DURATION FILE [SCRIPT-ARGS...]
#   -> sets RPS, P50_MS, P99_MS, REQUESTS, NON2XX, SOCKET_ERRORS, RUN_SECONDS (wrk_run, bench/lib.sh)
run_wrk() {
  local name=$1 script=$2 connections=$3 duration=$4 file=$5
  shift 5
  local extra=()
  (($# == 0)) || extra=(-- "$@")
  BENCH_ACCESS_TOKEN=$access_token wrk_run "$name" "$file" -t"$THREADS" -c"$connections" -d"$duration" -s "$script" \
    "http://127.0.0.1:$troupe_port/api/events" "${extra[@]}"
  kill -0 "$troupe_pid" 2>/dev/null ||
    die "troupe died during the run ($name; see $troupe_log and ${troupe_log%.log}.stderr)"
}

# The machine may be shared: note the runs during which a compiler, linker, test runner or another benchmark's wrk
# was seen (sampled just before and just after each measured run, when no wrk of ours runs), as their figures may be
# low.
disturbed=()
others_running() { pgrep -x 'cc1plus|cc1|ld|ld.gold|collect2|ctest|wrk' >/dev/null 2>&1; }
note_others() { # TAG STARTED-BUSY
  if (($2)) || others_running; then
    disturbed+=("$1")
    log "$1: a compiler, linker, test runner or other wrk was running: this run's figures may be low"
  fi
}

warmup_on=0
if [[ $WARMUP != 0 && $WARMUP != 0[smh] ]]; then warmup_on=1; fi
# Rows written by in-flight requests after wrk stops are committed within milliseconds; wait for them, so the
# count taken before a measured run only moves because of that run.
settle() { sleep 0.5; }

# measure_troupe ROUND NAME SCRIPT CONNECTIONS EVENTS-PER-REQUEST [troupe args...] -> appends to the arrays
measure_troupe() {
  local round=$1 name=$2 script=$3 connections=$4 per_request=$5
  shift 5
  local tag="round$round-$name" before after delta eps acked busy
  start_db_troupe "$tag" "$@"
  sign_in
  local script_args=()
  [[ $name != batch ]] || script_args=("$per_request")
  if ((warmup_on)); then
    run_wrk "$name warm-up" "$script" "$connections" "$WARMUP" "$out/$tag-warmup.txt" "${script_args[@]}"
    settle
  fi
  before=$(count_rows)
  busy=0
  ! others_running || busy=1
  run_wrk "$name" "$script" "$connections" "$DURATION" "$out/$tag.txt" "${script_args[@]}"
  after=$(count_rows)
  note_others "round $round $name" "$busy"
  stop_troupe "$tag"
  delta=$((after - before))
  eps=$(awk -v d="$delta" -v s="$RUN_SECONDS" 'BEGIN { printf "%.0f\n", (s > 0) ? d / s : 0 }')
  acked=$(((REQUESTS - NON2XX) * per_request))
  if ((delta < acked)); then
    log "round $round $name: only $delta rows were added but $acked events were acknowledged"
    lost_acked=$((lost_acked + acked - delta))
  fi
  non2xx_total=$((non2xx_total + NON2XX))
  EPS[$name]+=" $eps" RPS_OF[$name]+=" $RPS" P50_OF[$name]+=" $P50_MS" P99_OF[$name]+=" $P99_MS"
  rows+=("$(printf '| %s | %s | %s | %s | %.2f | %s | %.0f | %.2f | %.2f | %s | %s |' "$round" "$name" "$eps" \
    "$delta" "$RUN_SECONDS" "$acked" "$RPS" "$P50_MS" "$P99_MS" "$NON2XX" "$SOCKET_ERRORS")")
  log "round $round/$ROUNDS: $name: $eps events/s durable ($delta rows in ${RUN_SECONDS}s); wrk $(printf '%.0f' "$RPS") req/s, p99 $(printf '%.2f' "$P99_MS") ms, $NON2XX non-2xx"
}

measure_copy() {
  local round=$1 tag="round$1-copy" before after delta eps status=0 copy_rows copy_seconds copy_rps busy=0
  before=$(count_rows)
  ! others_running || busy=1
  "$COPY_BIN" --url "$TROUPE_DATABASE_URL" --seconds "$duration_s" --batch "$BATCH_EVENTS" --user-id "$bench_user_id" \
    >"$out/$tag.txt" 2>"$out/$tag.stderr" &
  client_pid=$!
  wait "$client_pid" || status=$?
  client_pid=""
  if ((status != 0)); then
    cat "$out/$tag.stderr" >&2
    die "bench_copy failed (round $round)"
  fi
  after=$(count_rows)
  note_others "round $round copy" "$busy"
  copy_rows="" copy_seconds="" copy_rps=""
  read -r copy_rows copy_seconds copy_rps < <(sed -n 's/^rows=\([0-9]*\) seconds=\([0-9.]*\) rows_per_second=\([0-9.]*\)$/\1 \2 \3/p' "$out/$tag.txt") || true
  [[ -n ${copy_rps:-} ]] || { cat "$out/$tag.txt" >&2; die "could not parse the bench_copy output (round $round)"; }
  delta=$((after - before))
  ((delta == copy_rows)) || log "round $round copy: bench_copy reports $copy_rows rows but funnel_events gained $delta"
  eps=$(awk -v d="$delta" -v s="$copy_seconds" 'BEGIN { printf "%.0f\n", (s > 0) ? d / s : 0 }')
  EPS[copy]+=" $eps"
  rows+=("$(printf '| %s | copy | %s | %s | %.2f | %s | | | | | |' "$round" "$eps" "$delta" "$copy_seconds" "$copy_rows")")
  log "round $round/$ROUNDS: copy: $eps rows/s durable ($delta rows in ${copy_seconds}s)"
}

# Per configuration (group, alone, batch, copy): the values of every round, space-separated.
declare -A EPS=() RPS_OF=() P50_OF=() P99_OF=()
rows=()
non2xx_total=0
lost_acked=0
for ((round = 1; round <= ROUNDS; round++)); do
  log "round $round/$ROUNDS: group, alone, batch, copy ($DURATION each)"
  measure_troupe "$round" group bench/wrk/post_event.lua "$CONNECTIONS" 1
  measure_troupe "$round" alone bench/wrk/post_event.lua "$CONNECTIONS" 1 "${ALONE_ARGS[@]}"
  measure_troupe "$round" batch bench/wrk/post_batch.lua "$BATCH_CONNECTIONS" "$BATCH_EVENTS"
  measure_copy "$round"
done
rows_at_end=$(count_rows)

# shellcheck disable=SC2086 # the lists are meant to be split into words
med() { median $1 | awk '{ printf "%.0f\n", $1 }'; }
# shellcheck disable=SC2086
med2() { median $1 | awk '{ printf "%.2f\n", $1 }'; }
group_eps_med=$(med "${EPS[group]}")
alone_eps_med=$(med "${EPS[alone]}")
batch_eps_med=$(med "${EPS[batch]}")
copy_eps_med=$(med "${EPS[copy]}")
group_ratio=$(ratio "$group_eps_med" "$alone_eps_med")
batch_ratio=$(ratio "$batch_eps_med" "$copy_eps_med")
verdict_group_ratio=$(at_least "$group_ratio" "$TARGET_GROUP_RATIO")
verdict_group_eps=$(at_least "$group_eps_med" "$TARGET_GROUP_EPS")
verdict_batch_ratio=$(at_least "$batch_ratio" "$TARGET_BATCH_RATIO")
verdict_2xx=PASS
((non2xx_total == 0)) || verdict_2xx=MISS
verdict_durable=PASS
((lost_acked == 0)) || verdict_durable=MISS

# ---- report -----------------------------------------------------------------------------------------------
machine_facts
if [[ -n $(git status --porcelain 2>/dev/null | head -n 1) ]]; then commit+=" + uncommitted changes"; fi
wrk_version=$( (wrk -v 2>&1 || true) | awk 'NR == 1 { print $2 }')
pqxx_version=$(pkg-config --modversion libpqxx 2>/dev/null || echo unknown)

command="make bench-db"
overrides=""
[[ $ROUNDS == 3 ]] || overrides+="ROUNDS=$ROUNDS "
[[ $DURATION == 10s ]] || overrides+="DURATION=$DURATION "
[[ $THREADS == 2 ]] || overrides+="THREADS=$THREADS "
[[ $CONNECTIONS == 64 ]] || overrides+="CONNECTIONS=$CONNECTIONS "
[[ $BATCH_CONNECTIONS == 8 ]] || overrides+="BATCH_CONNECTIONS=$BATCH_CONNECTIONS "
[[ $BATCH_EVENTS == 1000 ]] || overrides+="BATCH_EVENTS=$BATCH_EVENTS "
[[ $WARMUP == 2s ]] || overrides+="WARMUP=$WARMUP "
[[ -z $TROUPE_ARGS ]] || overrides+="TROUPE_ARGS='$TROUPE_ARGS' "
command="$overrides$command"
troupe_args="${BASE_ARGS[*]}${TROUPE_ARGS:+ $TROUPE_ARGS}"

summary=$(
  cat <<EOF
Single events, group commit/alone: ${group_ratio}x (medians: group $group_eps_med events/s, alone $alone_eps_med events/s)
$BATCH_EVENTS-event batches/direct COPY: ${batch_ratio}x (medians: batch $batch_eps_med events/s, copy $copy_eps_med rows/s)

| target | measured | verdict |
|---|---|---|
| single events: group commit >= ${TARGET_GROUP_RATIO}x commit alone | ${group_ratio}x | $verdict_group_ratio |
| single events: group commit >= $TARGET_GROUP_EPS durable events/s | $group_eps_med events/s | $verdict_group_eps |
| $BATCH_EVENTS-event batches >= ${TARGET_BATCH_RATIO}x direct COPY | ${batch_ratio}x | $verdict_batch_ratio |
| every Troupe response 2xx | $non2xx_total non-2xx | $verdict_2xx |
| every acknowledged event is in funnel_events | $lost_acked missing | $verdict_durable |
EOF
)

ensure_results_file "$RESULTS"

{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): durable POST /api/events, group commit vs commit alone, batches vs direct COPY"
  echo
  echo "- command: \`$command\` ($ROUNDS round$( ((ROUNDS == 1)) || echo s) of $DURATION, each running group, alone, batch, copy in turn; a fresh Troupe process per run, warmed up with $WARMUP of the same wrk load first, not recorded)"
  echo "- group: Troupe defaults (group commit), wrk -t$THREADS -c$CONNECTIONS --latency -s bench/wrk/post_event.lua (one event per request); alone: the same with \`${ALONE_ARGS[*]}\`; batch: Troupe defaults, wrk -t$THREADS -c$BATCH_CONNECTIONS --latency -s bench/wrk/post_batch.lua ($BATCH_EVENTS events per request); copy: \`build/bench/bench_copy --seconds $duration_s --batch $BATCH_EVENTS --user-id <the bench user>\` (one connection, COPY, $BATCH_EVENTS rows per transaction)"
  echo "- every Troupe run: \`$troupe_args\` (access log off so it does not weigh on the comparison; short grace so each stop is quick; rate limiting, if the binary has it, off because one user sends everything); requests carry an access token (JWT) of a user registered for the run, whose id bench_copy puts in user_id as Troupe does"
  echo "- events/s = rows funnel_events gained during the run (count(*) before and after) / the run's measured duration; acked = 2xx responses x events per request; funnel_events held $rows_at_start rows at the start and $rows_at_end at the end (never truncated)"
  echo "- machine: ${cpu:-$(uname -m)}, $(nproc) CPUs (nproc), $mem RAM, kernel $(uname -r); wrk, Troupe and PostgreSQL share the CPUs"
  if ((${#disturbed[@]})); then
    list=$(printf ', %s' "${disturbed[@]}")
    echo "- caution: a compiler, linker, test runner or another benchmark's wrk was running during: ${list#, } (those figures may be low)"
  fi
  echo "- software: commit $commit; PostgreSQL $pg_version, $database ($pg_settings); libpqxx $pqxx_version; wrk $wrk_version"
  echo
  echo "| round | configuration | events/s (durable) | rows added | seconds | acked | req/s (wrk) | p50 (ms) | p99 (ms) | non-2xx | socket errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  for name in group alone batch; do
    printf '| median | %s | %s | | | | %s | %s | %s | | |\n' "$name" "$(med "${EPS[$name]}")" \
      "$(med "${RPS_OF[$name]}")" "$(med2 "${P50_OF[$name]}")" "$(med2 "${P99_OF[$name]}")"
  done
  printf '| median | copy | %s | | | | | | | | |\n' "$copy_eps_med"
  echo
  echo "$summary"
} >>"$RESULTS"

echo
echo "Durable POST /api/events ($command; raw output in $out)"
echo "$summary"
echo
log "appended to $RESULTS"

if [[ ${BENCH_STRICT:-0} == 1 && "$verdict_group_ratio$verdict_group_eps$verdict_batch_ratio$verdict_2xx$verdict_durable" != PASSPASSPASSPASSPASS ]]; then
  exit 1
fi
