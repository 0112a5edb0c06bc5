# shellcheck shell=bash
# What `make run` and `make run-cluster` share, sourced by scripts/run and scripts/run-cluster (from the repository
# root): dependencies and the Release build, the private PostgreSQL under var/pg, the development JWT secret and the
# mock upstream. Each sets variables the caller's cleanup reads: pg_started, mock_pid.

pg_dir=$root/var/pg
pg_started=0
mock_pid=""

log() { echo "$log_prefix: $*" >&2; }

# Installs the dependencies and builds troupe and the mock upstream (Release).
build_release() {
  scripts/install-deps
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j2 --target troupe mock-upstream
  mkdir -p var
}

# TROUPE_DATABASE_URL: as given, else the private PostgreSQL in var/pg (started if needed: pg_started=1).
start_database() {
  if [[ -z ${TROUPE_DATABASE_URL:-} ]]; then
    if ! scripts/pg status "$pg_dir" >/dev/null; then pg_started=1; fi
    TROUPE_DATABASE_URL=$(scripts/pg start "$pg_dir" "${TROUPE_PG_PORT:-55432}")
    export TROUPE_DATABASE_URL
    log "PostgreSQL: $TROUPE_DATABASE_URL (data in var/pg)"
  fi
}

# TROUPE_JWT_SECRET: as given, else a development secret kept in var/jwt-secret.
ensure_jwt_secret() {
  if [[ -z ${TROUPE_JWT_SECRET:-} ]]; then
    if [[ ! -s var/jwt-secret ]]; then
      (umask 077 && head -c 48 /dev/urandom | base64 -w0 >var/jwt-secret)
      log "generated a development JWT secret in var/jwt-secret"
    fi
    TROUPE_JWT_SECRET=$(<var/jwt-secret)
    export TROUPE_JWT_SECRET
  fi
}

# No upstream configured (in the troupe arguments "$@", or TROUPE_UPSTREAMS): the mock upstream stands in, so the AI
# routes work. Sets upstream_note (and mock_pid).
start_mock_upstream_if_needed() {
  upstream_note="upstreams: as configured"
  if build/troupe print-config "$@" 2>/dev/null | grep -q '"upstreams": \[\]'; then
    rm -f var/mock-upstream.port
    build/mock-upstream --port 0 --port-file var/mock-upstream.port >var/mock-upstream.log 2>&1 &
    mock_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
      [[ -s var/mock-upstream.port ]] && break
      kill -0 "$mock_pid" 2>/dev/null || { log "mock-upstream failed to start: $(cat var/mock-upstream.log)"; exit 1; }
      sleep 0.05
    done
    local mock_port
    mock_port=$(<var/mock-upstream.port)
    TROUPE_UPSTREAMS='[{"name":"mock","base_url":"http://127.0.0.1:'$mock_port'/v1","models":["mock-1","mock-2","mock-embed"]}]'
    export TROUPE_UPSTREAMS
    # The mock's models priced like small and large hosted models, so /api/usage shows costs.
    if [[ -z ${TROUPE_PRICES:-} ]]; then
      TROUPE_PRICES='{"mock-1":{"input_per_mtok":0.15,"output_per_mtok":0.6},"mock-2":{"input_per_mtok":2.5,"output_per_mtok":10},"mock-embed":{"input_per_mtok":0.02,"output_per_mtok":0}}'
      export TROUPE_PRICES
    fi
    # Plans are asked of a model the mock serves (it answers plan prompts with a plan built from them).
    export TROUPE_PLANS_MODEL=${TROUPE_PLANS_MODEL:-mock-1}
    upstream_note="no upstream configured: using the mock upstream on 127.0.0.1:$mock_port (models mock-1, mock-2, mock-embed)"
    log "$upstream_note"
  fi
}

# Whether process $1 runs (an exited child not yet reaped is a zombie: it does not).
running() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $stat != Z* ]]
}

# Stops process $1 (SIGTERM; SIGKILL after 30 s) and reaps it.
stop_process() {
  local pid=$1 name=$2 i
  [[ -n $pid ]] && running "$pid" || { [[ -n $pid ]] && wait "$pid" 2>/dev/null; return 0; }
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    log "$name did not stop within 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# Stops the mock upstream and the PostgreSQL this script started.
stop_shared() {
  if [[ -n $mock_pid ]] && kill -0 "$mock_pid" 2>/dev/null; then
    kill -TERM "$mock_pid" 2>/dev/null || true
    wait "$mock_pid" 2>/dev/null || true
  fi
  if ((pg_started)); then
    log "stopping PostgreSQL in var/pg"
    scripts/pg stop "$pg_dir" || true
  fi
}
