# Shared plumbing of the benchmark scripts (bench/*.sh), sourced after they set BENCH_NAME and cd to the root:
# logging, the one cleanup, starting and stopping servers, free ports, a throw-away PostgreSQL, nginx as the
# reference server, running wrk and reading its output, medians and verdicts, the machine's description and the
# header of bench/RESULTS.md.
# shellcheck shell=bash

log() { echo "$BENCH_NAME: $*" >&2; }
die() { log "$*"; exit 1; }

# on_exit FUNCTION: runs FUNCTION when the script exits, also on SIGHUP, SIGINT and SIGTERM (with status 128+N).
on_exit() {
  # shellcheck disable=SC2064 # the function name is meant to be expanded now
  trap "$1" EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# The one cleanup (installed by `on_exit bench_cleanup`). A script lists the variables holding the pids of what it
# started in stop_at_exit, in the order they are to be stopped (names, not values: a pid set later, or cleared once
# its server was stopped, is read at exit), and keeps its scratch directory in tmp. bench_cleanup stops a running
# wrk, the servers of start_troupe (array pids) and those of stop_at_exit, the throw-away PostgreSQL, removes tmp
# and exits with the script's status.
stop_at_exit=()
pids=()
tmp=""
bench_cleanup() {
  local status=$? var pid
  trap - EXIT HUP INT TERM
  stop_pid "$wrk_pid" wrk
  for pid in "${pids[@]}"; do stop_pid "$pid" troupe; done
  for var in "${stop_at_exit[@]}"; do stop_pid "${!var:-}" "${var%_pid}"; done
  stop_database
  [[ -n $tmp ]] && rm -rf -- "$tmp"
  exit "$status"
}

# build_release TARGETS...: installs the dependencies and builds TARGETS in a Release build/ (refusing a sanitizer
# build, which would measure the sanitizer); BENCH_SKIP_BUILD=1 skips the build.
build_release() {
  scripts/install-deps
  [[ ${BENCH_SKIP_BUILD:-0} == 1 ]] && return 0
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  if grep -Eq '^TROUPE_SANITIZE:STRING=.+' build/CMakeCache.txt; then
    die "build/ is a sanitizer build (TROUPE_SANITIZE in build/CMakeCache.txt): benchmark a plain Release build"
  fi
  cmake --build build -j2 --target "$@"
}

# stop_pid PID NAME [SECONDS=10]: SIGTERM, wait up to SECONDS, then SIGKILL; nothing when PID is empty or gone. Sets
# STOP_STATUS to the process's exit status (0 when there was nothing to stop).
STOP_STATUS=0
# shellcheck disable=SC2034 # STOP_STATUS is read by the scripts that source this file
stop_pid() {
  local pid=$1 name=$2 seconds=${3:-10} i
  STOP_STATUS=0
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < seconds * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) did not stop within $seconds s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || STOP_STATUS=$?
}

# free_port: a free TCP port on 127.0.0.1 that no earlier call of this run returned (two servers started one after
# the other could otherwise be handed the same one before the first binds it).
used_ports=" "
free_port() {
  local port
  port=$(scripts/pg free-port)
  while [[ $used_ports == *" $port "* ]]; do port=$(scripts/pg free-port); done
  used_ports+="$port "
  echo "$port"
}

# wait_ready URL PID NAME [TRIES=100] [any]: polls URL every 0.1 s until it answers 2xx (with "any": any status),
# while PID lives.
wait_ready() {
  local url=$1 pid=$2 name=$3 tries=${4:-100} accept=${5:-} i
  local curl_args=(-s -o /dev/null --max-time 1)
  [[ $accept == any ]] || curl_args+=(-f)
  for ((i = 0; i < tries; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    curl "${curl_args[@]}" "$url" && return 0
    sleep 0.1
  done
  log "$name did not answer $url within $((tries / 10)) s"
  return 1
}

# ensure_database: unless TROUPE_DATABASE_URL is set, starts a throw-away PostgreSQL under var/ (pg_dir names it:
# stop it with stop_database); unless TROUPE_JWT_SECRET is set, makes one. Call it directly, not in $(...).
pg_dir=""
ensure_database() {
  if [[ -z ${TROUPE_DATABASE_URL:-} ]]; then
    mkdir -p var
    pg_dir=$(mktemp -d "$PWD/var/bench-pg.XXXXXX")
    TROUPE_DATABASE_URL=$(scripts/pg start "$pg_dir" "$(free_port)")
    export TROUPE_DATABASE_URL
  fi
  if [[ -z ${TROUPE_JWT_SECRET:-} ]]; then
    TROUPE_JWT_SECRET=$(head -c 48 /dev/urandom | base64 -w0)
    export TROUPE_JWT_SECRET
  fi
}
stop_database() {
  [[ -n $pg_dir ]] || return 0
  scripts/pg stop "$pg_dir" || true
  rm -rf -- "$pg_dir"
  pg_dir=""
}

# pin_generators: with PIN=1 (the default on 2+ CPUs) the load generators run on CPU 1 (prefix commands with
# "${gen[@]}") and so does the throw-away PostgreSQL; the script pins troupe to CPU 0 itself. Sets PIN and gen.
# Call after ensure_database.
pin_generators() {
  PIN=${PIN:-$(($(nproc) >= 2))}
  gen=()
  if [[ $PIN == 1 ]]; then
    gen=(taskset -c 1)
    [[ -n $pg_dir ]] && taskset -a -p -c 1 "$(sed -n 1p "$pg_dir/data/postmaster.pid")" >/dev/null
  fi
  return 0
}

# start_nginx NGINX DIR PORT WORKERS LOG: nginx answering `return 200` with keep-alive on 127.0.0.1:PORT, its
# config and temp files in DIR; sets nginx_pid. The reference server of the HTTP and gateway benchmarks.
nginx_pid=""
start_nginx() {
  local nginx=$1 dir=$2 port=$3 workers=$4 logfile=$5 user_line="" temp_paths module build
  if [[ $(id -u) -eq 0 ]]; then user_line="user nobody $(id -gn nobody);"; fi
  # Debian's nginx has absolute compiled-in temp paths under /var/lib/nginx: point every one of them at DIR.
  temp_paths="client_body_temp_path $dir/client_body;"
  build=$("$nginx" -V 2>&1)
  for module in proxy fastcgi uwsgi scgi; do
    if [[ $build != *"--without-http_${module}_module"* ]]; then
      temp_paths+=$'\n'"  ${module}_temp_path $dir/$module;"
    fi
  done
  cat >"$dir/nginx.conf" <<EOF
# Written by bench/lib.sh for $BENCH_NAME: the reference server, a static 200 with keep-alive.
$user_line
worker_processes $workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  default_type text/plain;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  $temp_paths
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "ok\n"; }
  }
}
EOF
  "$nginx" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/nginx-error.log" </dev/null >"$logfile" 2>&1 &
  nginx_pid=$!
  if ! wait_ready "http://127.0.0.1:$port/" "$nginx_pid" nginx; then
    cat "$logfile" "$dir/nginx-error.log" >&2 2>/dev/null || true
    die "nginx did not start"
  fi
}

# median VALUES...: the middle value, or the mean of the two middle ones (3 decimals).
median() {
  printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# median_list "V1 V2 ...": the median of a space-separated list (as the scripts gather figures per round).
# shellcheck disable=SC2086 # the list is meant to be split
median_list() { median $1; }

# ratio A B: A / B with 2 decimals (0 when B is 0). at_least VALUE GOAL / at_most VALUE GOAL: PASS or MISS.
# verdict CONDITION: PASS when CONDITION (an awk expression, e.g. "$x >= 0.7" already expanded, or 1/0) holds.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", (b > 0) ? a / b : 0 }'; }
at_least() { awk -v v="$1" -v g="$2" 'BEGIN { print (v >= g) ? "PASS" : "MISS" }'; }
at_most() { awk -v v="$1" -v g="$2" 'BEGIN { print (v <= g) ? "PASS" : "MISS" }'; }
verdict() { awk -v c="$1" 'BEGIN { print c ? "PASS" : "MISS" }'; }

# to_ms DURATION: a wrk duration ("850.00us", "1.23ms", "2.50s", "1.00m", "1.00h") in milliseconds, 3 decimals;
# fails (status 1, nothing printed) on anything else.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (!match(v, /^[0-9.]+/)) exit 1
    n = substr(v, 1, RLENGTH); u = substr(v, RLENGTH + 1)
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : (u == "h") ? 3600000 : -1
    if (f < 0) exit 1
    printf "%.3f\n", n * f
  }'
}

# wrk_run NAME FILE WRK-ARGS...: runs `wrk --latency WRK-ARGS...` with its output in FILE, in the background so that
# a signal is handled at once (its pid in wrk_pid, which bench_cleanup stops); dies showing FILE if wrk fails, then
# reads FILE as wrk_parse does. Variables assigned before the call (BENCH_ACCESS_TOKEN=... wrk_run ...) reach wrk's
# Lua script.
wrk_pid=""
wrk_run() {
  local name=$1 file=$2 status=0
  shift 2
  wrk --latency "$@" >"$file" 2>&1 &
  wrk_pid=$!
  wait "$wrk_pid" || status=$?
  wrk_pid=""
  if ((status != 0)); then
    cat "$file" >&2
    die "wrk failed ($name)"
  fi
  wrk_parse "$name" "$file"
}

# wrk_parse NAME FILE: reads a `wrk --latency` output. Sets RPS, P50_MS, P99_MS, REQUESTS, RUN_SECONDS, NON2XX and
# SOCKET_ERRORS (connect + read + write + timeout errors); dies showing FILE if a figure is missing.
# shellcheck disable=SC2034 # the figures are read by the scripts that source this file
wrk_parse() {
  local name=$1 file=$2 p50 p99 elapsed
  RPS=$(awk '$1 == "Requests/sec:" { print $2 }' "$file")
  p50=$(awk '$1 == "50%" { print $2 }' "$file")
  p99=$(awk '$1 == "99%" { print $2 }' "$file")
  REQUESTS=$(awk '$2 == "requests" && $3 == "in" { print $1 }' "$file")
  elapsed=$(awk '$2 == "requests" && $3 == "in" { sub(/,$/, "", $4); print $4 }' "$file")
  [[ -n $RPS && -n $p50 && -n $p99 && -n $REQUESTS && -n $elapsed ]] ||
    { cat "$file" >&2; die "could not parse the wrk output ($name)"; }
  P50_MS=$(to_ms "$p50") || die "could not parse the 50% latency '$p50' ($name)"
  P99_MS=$(to_ms "$p99") || die "could not parse the 99% latency '$p99' ($name)"
  RUN_SECONDS=$(to_ms "$elapsed" | awk '{ printf "%.3f\n", $1 / 1000 }') || die "could not parse '$elapsed' ($name)"
  NON2XX=$(awk '/^ *Non-2xx or 3xx responses:/ { print $NF }' "$file")
  NON2XX=${NON2XX:-0}
  SOCKET_ERRORS=$(awk '/^ *Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$file")
  SOCKET_ERRORS=${SOCKET_ERRORS:-0}
}

# start_troupe NAME VAR ARGS...: starts build/troupe on a free port with the access log off and ARGS, its output in
# $out/NAME.log, appends its pid to the array pids (bench_cleanup stops them) and sets VAR to the port once
# /health answers. Not to be called in $(...): the pid would stay in the subshell, and the server would outlive the
# run.
start_troupe() {
  local name=$1 var=$2 port
  shift 2
  port=$(free_port)
  build/troupe --set "http.port=$port" --set log.request_sample=0 "$@" >"${out:?}/$name.log" 2>&1 &
  pids+=($!)
  wait_ready "http://127.0.0.1:$port/health" "$!" "troupe ($name)" || die "troupe ($name) did not start; see $out/$name.log"
  printf -v "$var" '%s' "$port"
}

# machine_facts: sets cpu (model name), mem (RAM) and commit (short hash) for the record.
# shellcheck disable=SC2034 # read by the scripts that source this file
machine_facts() {
  cpu=$(awk -F': *' '$1 ~ /^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
  mem=$(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")
}

# ensure_results_file FILE: gives a new results file its header.
ensure_results_file() {
  [[ -s $1 ]] && return 0
  cat >"$1" <<'EOF'
# Benchmark results

Each section is appended by a benchmark script (e.g. `make bench-http`) and records one run: the exact command,
the machine, every round and the medians, and the verdict against the target of the issue that set it.
Targets are ratios against a reference server measured in the same run on the same machine, so sections from
different machines stay comparable. Raw outputs of a run are kept (untracked) under `bench/out/`.
EOF
}
