#!/usr/bin/env bash
# `make bench-gateway`: the cost of Troupe's AI gateway, in one run against one mock upstream (build/mock-upstream).
#
#   1. Added latency: non-streamed POST /v1/chat/completions straight to the mock ("direct") and through Troupe
#      ("troupe"), at CONNECTIONS_LOW (4) and CONNECTIONS_HIGH (64) connections. Added = troupe - direct, for p50 and
#      p99 of wrk --latency, paired within a round; the median over rounds is recorded.
#      Targets (issue 7): added p50 <= 0.3 ms and added p99 <= 1 ms at -c4.
#   2. Throughput: the same requests through Portkey's open-source gateway (npm @portkey-ai/gateway, pinned in
#      bench/package.json, installed into bench/node_modules; one Node process on 127.0.0.1, headers
#      x-portkey-provider: openai and x-portkey-custom-host: the mock), at both concurrencies.
#      Target: Troupe >= 5x Portkey req/s at -c64. When npm cannot install it the part is SKIPPED, with the reason.
#   2b. Metering: the same -c64 requests through a second Troupe whose plan has a daily and a monthly budget and a
#      tokens-per-minute limit, all far above what the run uses ("troupe_metered": every call reserves its estimate
#      in the user's session and settles it), against the first one without limits ("troupe": no reservation).
#      Both price mock-1 and write the usage ledger. Target: metered >= 0.9x req/s.
#   3. Cache hit: one deterministic chat completion (temperature 0), answered once to fill the cache, then sent again
#      and again through Troupe (X-Cache: HIT) against nginx answering `return 200` (bench/http.sh's reference).
#      Target: Troupe >= 0.4x nginx req/s at -c64.
#   4. Embeddings: POST /v1/embeddings through Troupe at CONNECTIONS_LOW, a batch of 8 inputs of 256 dimensions in
#      base64 (bench/wrk/gateway_embed.lua): "embed_miss" sends new inputs in every request (each batch is one
#      upstream call), "embed_hit" one batch answered once before the run (every input from the cache, no upstream
#      call). Reported: p50 and p99 of each and hit/miss; the mock answers at once, so a miss here costs only the
#      upstream round trip through the gateway, a lower bound of what a real provider's latency adds.
# Requests of parts 1 and 2 never hit the cache nor share an upstream call (bench/wrk/gateway_chat.lua: temperature
# 0.7, a different user message per request in flight); the script checks it: each Troupe or Portkey run must reach
# the mock at least once per response (GET /mock/stats before and after), the cache-hit runs never.
# wrk runs alternate within each round (direct, troupe, portkey at -c4, then at -c64, then nginx, troupe cache hit);
# ROUNDS rounds; medians, ratios and verdicts are printed and appended to bench/RESULTS.md, raw wrk outputs and
# server logs go to bench/out/gateway-<time>/.
#
# On a shared machine run it under the build lock, so that no build competes for the cores; -o keeps the lock in
# flock itself, so that a server the run starts (PostgreSQL daemonizes) can never inherit it and outlive the run:
#   flock -o /tmp/troupe-build.lock make bench-gateway
#
# Knobs (environment): ROUNDS=3 DURATION=10s THREADS=2 CONNECTIONS_LOW=4 CONNECTIONS_HIGH=64 WARMUP=2s (0 to skip),
# MOCK_THREADS=2 (the mock's event loops), NGINX_WORKERS=1, PORTKEY=1 (0 skips Portkey), TROUPE_DATABASE_URL (else a
# throw-away PostgreSQL under var/), TROUPE_ARGS (extra troupe arguments, recorded), BENCH_STRICT=1 (exit 1 on a MISS).
# For testing this harness: TROUPE_BIN, MOCK_BIN, BENCH_SKIP_BUILD=1, BENCH_RESULTS (file).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS_LOW=${CONNECTIONS_LOW:-4}
CONNECTIONS_HIGH=${CONNECTIONS_HIGH:-64}
WARMUP=${WARMUP:-2s}
MOCK_THREADS=${MOCK_THREADS:-2}
NGINX_WORKERS=${NGINX_WORKERS:-1}
PORTKEY=${PORTKEY:-1}
TROUPE_BIN=${TROUPE_BIN:-build/troupe}
MOCK_BIN=${MOCK_BIN:-build/mock-upstream}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
NGINX=${NGINX:-/usr/sbin/nginx}
TROUPE_ARGS=${TROUPE_ARGS:-}
TARGET_ADDED_P50_MS=0.3
TARGET_ADDED_P99_MS=1
TARGET_PORTKEY_RATIO=5
TARGET_HIT_RATIO=0.4
TARGET_METERED_RATIO=0.9
WRK_SCRIPT=bench/wrk/gateway_chat.lua
PORTKEY_DIR=bench/node_modules/@portkey-ai/gateway

BENCH_NAME=bench-gateway
# shellcheck source=bench/lib.sh
source bench/lib.sh

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
for knob in THREADS CONNECTIONS_LOW CONNECTIONS_HIGH MOCK_THREADS NGINX_WORKERS; do
  [[ ${!knob} =~ ^[1-9][0-9]*$ ]] || die "$knob must be a positive integer, not '${!knob}'"
done
[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "DURATION must look like 10s, not '$DURATION'"
[[ $WARMUP =~ ^[0-9]+[smh]?$ ]] || die "WARMUP must look like 2s or 0, not '$WARMUP'"
[[ $PORTKEY == 0 || $PORTKEY == 1 ]] || die "PORTKEY must be 0 or 1, not '$PORTKEY'"

# ---- processes and cleanup ----------------------------------------------------------------------------
mock_pid=""
troupe_pid=""
metered_pid=""
started_pid=""
portkey_pid=""
stop_at_exit=(troupe_pid metered_pid started_pid portkey_pid nginx_pid mock_pid)
on_exit bench_cleanup

# ---- build ----------------------------------------------------------------------------------------------
build_release troupe mock-upstream
[[ -x $TROUPE_BIN ]] || die "$TROUPE_BIN is missing or not executable"
[[ -x $MOCK_BIN ]] || die "$MOCK_BIN is missing or not executable"
for tool in wrk curl "$NGINX"; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps installs it)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/troupe-bench-gateway.XXXXXX")
chmod 755 "$tmp" # nginx workers may run as nobody
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/out/gateway-$stamp
mkdir -p "$out"

# ---- Portkey (npm) --------------------------------------------------------------------------------------
# Sets portkey_skip to the reason when Portkey cannot take part.
portkey_skip=""
portkey_version=""
install_portkey() {
  local want have
  want=$(sed -n 's/.*"@portkey-ai\/gateway": *"\([^"]*\)".*/\1/p' bench/package.json)
  have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$PORTKEY_DIR/package.json" 2>/dev/null | head -n 1)
  if [[ -n $have && $have == "$want" && -f $PORTKEY_DIR/build/start-server.js ]]; then
    portkey_version=$have
    return 0
  fi
  command -v node >/dev/null || { portkey_skip="node is not installed"; return 1; }
  command -v npm >/dev/null || { portkey_skip="npm is not installed"; return 1; }
  log "installing @portkey-ai/gateway@$want into bench/node_modules (npm ci, lifecycle scripts off)"
  # Lifecycle scripts are not needed (its only one, patch-package, finds no patches in the published package).
  if ! timeout 300 npm ci --prefix bench --ignore-scripts --no-audit --no-fund >"$out/npm.log" 2>&1; then
    portkey_skip="npm could not install @portkey-ai/gateway@$want (offline?); see $out/npm.log: $(grep -m1 -i 'err' "$out/npm.log" || tail -n 1 "$out/npm.log")"
    return 1
  fi
  [[ -f $PORTKEY_DIR/build/start-server.js ]] || { portkey_skip="npm installed no $PORTKEY_DIR/build/start-server.js"; return 1; }
  portkey_version=$want
}
if [[ $PORTKEY == 0 ]]; then
  portkey_skip="PORTKEY=0"
else
  install_portkey || log "Portkey is SKIPPED: $portkey_skip"
fi

# ---- mock upstream --------------------------------------------------------------------------------------
"$MOCK_BIN" --threads "$MOCK_THREADS" --max-connections 4096 --port-file "$tmp/mock.port" </dev/null \
  >"$out/mock.log" 2>&1 &
mock_pid=$!
for ((i = 0; i < 100; i++)); do
  [[ -s $tmp/mock.port ]] && break
  kill -0 "$mock_pid" 2>/dev/null || break
  sleep 0.1
done
[[ -s $tmp/mock.port ]] || { cat "$out/mock.log" >&2; die "the mock upstream did not start"; }
mock_port=$(tr -d '\n' <"$tmp/mock.port")
used_ports+="$mock_port "
mock_base=http://127.0.0.1:$mock_port
wait_ready "$mock_base/health" "$mock_pid" mock-upstream || die "the mock upstream did not answer"
log "mock upstream $mock_base (pid $mock_pid, $MOCK_THREADS threads)"

# The chat requests the mock has answered so far.
mock_requests() {
  curl -sf --max-time 5 "$mock_base/mock/stats" | sed -n 's/^{"requests":\([0-9]*\).*/\1/p'
}

# ---- nginx ------------------------------------------------------------------------------------------------
nginx_port=$(free_port)
start_nginx "$NGINX" "$tmp" "$nginx_port" "$NGINX_WORKERS" "$out/nginx.log"
# wrk POSTs the cache-hit request's body to nginx too: `return 200` answers any method without reading a file.
nginx_url="http://127.0.0.1:$nginx_port/v1/chat/completions"
log "nginx http://127.0.0.1:$nginx_port/ (pid $nginx_pid)"

# ---- troupe -----------------------------------------------------------------------------------------------
ensure_database
# One upstream, the mock; its in-flight cap above any concurrency of the run.
TROUPE_UPSTREAMS=$(printf '[{"name":"mock","base_url":"%s/v1","models":["mock-1","mock-emb"],"max_inflight":4096}]' "$mock_base")
export TROUPE_UPSTREAMS
TROUPE_PRICES='{"mock-1":{"input_per_mtok":0.15,"output_per_mtok":0.6},"mock-emb":{"input_per_mtok":0.02,"output_per_mtok":0}}'
export TROUPE_PRICES
# Production settings except what a benchmark by one user must lift: the generate policy (1e6/min, burst 1e6: every
# request asks its limiter shard, none is refused), the daily quota (every request reserves one), the generate
# in-flight cap (kept, above the run's concurrency); the access log is off (log.request_sample=0).
bench_args=(--set log.request_sample=0 --set limits.generate_per_minute=1000000 --set limits.generate_burst=1000000
  --set quota.free_per_day=100000000 --set limits.generate_max_inflight=1024)
# start_troupe NAME ARGS...: a troupe on a free port with bench_args, ARGS and TROUPE_ARGS; sets started_pid and
# started_base. The first MiB of its log (startup, errors) is kept, the rest discarded (the reader exits with it).
start_troupe() {
  local name=$1 port
  shift
  port=$(free_port)
  # shellcheck disable=SC2086 # TROUPE_ARGS is a list of arguments
  "$TROUPE_BIN" --set "http.port=$port" "${bench_args[@]}" "$@" $TROUPE_ARGS </dev/null 2>"$out/$name.stderr" \
    > >(head -c 1048576 >"$out/$name.log"; cat >/dev/null) &
  started_pid=$!
  started_base=http://127.0.0.1:$port
  if ! wait_ready "$started_base/health" "$started_pid" "$name"; then
    tail -n 20 "$out/$name.log" "$out/$name.stderr" >&2 || true
    die "$name did not start"
  fi
  log "$name $started_base (pid $started_pid)"
}
start_troupe troupe
troupe_pid=$started_pid troupe_base=$started_base
# The metered one: the same, with limits no request of the run reaches.
metered_args=(--set quota.free_usd_per_day=1000000 --set quota.free_usd_per_month=1000000
  --set quota.free_tokens_per_minute=1000000000000)
start_troupe troupe_metered "${metered_args[@]}"
metered_pid=$started_pid metered_base=$started_base

# One account; its access token (15 minutes) outlives the run.
account='{"email":"bench-gateway@example.com","password":"correct horse battery staple"}'
curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$account" "$troupe_base/api/auth/register" || true
access_token() { # BASE: the account's access token from the troupe at BASE
  curl -sf -H 'Content-Type: application/json' -d "$account" "$1/api/auth/login" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}
BENCH_ACCESS_TOKEN=$(access_token "$troupe_base")
[[ -n $BENCH_ACCESS_TOKEN ]] || die "could not log in to troupe"
METERED_ACCESS_TOKEN=$(access_token "$metered_base")
[[ -n $METERED_ACCESS_TOKEN ]] || die "could not log in to the metered troupe"

# ---- Portkey ----------------------------------------------------------------------------------------------
portkey_headers=(-H 'x-portkey-provider: openai' -H "x-portkey-custom-host: $mock_base/v1" -H 'Authorization: Bearer dummy')
if [[ -z $portkey_skip ]]; then
  portkey_port=$(free_port)
  # Its start-up banner and any per-request output: the first MiB is kept.
  NODE_ENV=production node --import ./bench/portkey-loopback.mjs "$PORTKEY_DIR/build/start-server.js" \
    "--port=$portkey_port" --headless </dev/null > >(head -c 1048576 >"$out/portkey.log"; cat >/dev/null) 2>&1 &
  portkey_pid=$!
  if wait_ready "http://127.0.0.1:$portkey_port/" "$portkey_pid" portkey 300; then
    log "portkey http://127.0.0.1:$portkey_port/ (pid $portkey_pid, @portkey-ai/gateway $portkey_version, node $(node --version))"
  else
    portkey_skip="the Portkey gateway did not start (see $out/portkey.log)"
    log "Portkey is SKIPPED: $portkey_skip"
    stop_pid "$portkey_pid" portkey
    portkey_pid=""
  fi
fi

# ---- checks: each path reaches the mock --------------------------------------------------------------------
chat_body() { # temperature content
  printf '{"model":"mock-1","temperature":%s,"messages":[{"role":"user","content":"%s"}]}' "$1" "$2"
}
# check_path NAME URL EXPECTED_CALLS curl-args... : one chat completion answers 200 and reaches the mock that often
check_path() {
  local name=$1 url=$2 expected=$3 before after status
  shift 3
  before=$(mock_requests)
  status=$(curl -s -o "$out/check-$name.json" -D "$out/check-$name.headers" -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' "$@" "$url") || true
  after=$(mock_requests)
  [[ $status == 200 ]] || { cat "$out/check-$name.json" >&2; die "$name: a chat completion answered $status, not 200"; }
  grep -q '"object":"chat.completion"' "$out/check-$name.json" || die "$name: the answer is not a chat.completion"
  (( after - before == expected )) ||
    die "$name: the request reached the mock $((after - before)) times, not $expected (GET /mock/stats)"
}
check_path direct "$mock_base/v1/chat/completions" 1 -d "$(chat_body 0.7 'check direct')"
check_path troupe "$troupe_base/v1/chat/completions" 1 -H "Authorization: Bearer $BENCH_ACCESS_TOKEN" \
  -d "$(chat_body 0.7 'check troupe')"
grep -qi '^x-troupe-upstream: mock' "$out/check-troupe.headers" || die "troupe: no X-Troupe-Upstream: mock header"
check_path troupe_metered "$metered_base/v1/chat/completions" 1 -H "Authorization: Bearer $METERED_ACCESS_TOKEN" \
  -d "$(chat_body 0.7 'check metered')"
if [[ -z $portkey_skip ]]; then
  check_path portkey "http://127.0.0.1:$portkey_port/v1/chat/completions" 1 "${portkey_headers[@]}" \
    -d "$(chat_body 0.7 'check portkey')"
fi
# The cache-hit request, exactly as gateway_chat.lua's fixed mode sends it: answered once (a miss), then a hit.
hit_body='{"model":"mock-1","temperature":0,"messages":[{"role":"system","content":"You are a terse benchmark assistant."},{"role":"user","content":"Summarise the benefits of keep-alive connections in one sentence."}]}'
check_path troupe-miss "$troupe_base/v1/chat/completions" 1 -H "Authorization: Bearer $BENCH_ACCESS_TOKEN" -d "$hit_body"
check_path troupe-hit "$troupe_base/v1/chat/completions" 0 -H "Authorization: Bearer $BENCH_ACCESS_TOKEN" -d "$hit_body"
grep -qi '^x-cache: hit' "$out/check-troupe-hit.headers" || die "troupe: the repeated deterministic request was no cache hit"
# Embeddings: new inputs reach the mock once per request; the fixed batch is answered once, then from the cache.
embed_body() { # prefix: the batch gateway_embed.lua sends (8 inputs, 256 dimensions, base64)
  local inputs="" k
  for ((k = 1; k <= 8; k++)); do
    inputs+="${inputs:+,}\"$1 i$k: a paragraph of a document to embed for retrieval\""
  done
  printf '{"model":"mock-emb","input":[%s],"dimensions":256,"encoding_format":"base64"}' "$inputs"
}
check_embed() { # name body expected-calls expected-x-cache
  local before after status
  before=$(mock_requests)
  status=$(curl -s -o "$out/check-$1.json" -D "$out/check-$1.headers" -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $BENCH_ACCESS_TOKEN" -d "$2" \
    "$troupe_base/v1/embeddings") || true
  after=$(mock_requests)
  [[ $status == 200 ]] || { cat "$out/check-$1.json" >&2; die "$1: embeddings answered $status, not 200"; }
  grep -q '"object":"embedding"' "$out/check-$1.json" || die "$1: the answer holds no embedding"
  (( after - before == $3 )) || die "$1: the request reached the mock $((after - before)) times, not $3"
  grep -qi "^x-cache: $4" "$out/check-$1.headers" || die "$1: not X-Cache: $4"
}
check_embed embed-miss "$(embed_body "check $$")" 1 miss
check_embed embed-fill "$(embed_body fixed)" 1 miss
check_embed embed-hit "$(embed_body fixed)" 0 hit
log "checked: direct, troupe${portkey_skip:+ (portkey skipped)}${portkey_skip:- and portkey} reach the mock; the deterministic request and the fixed embeddings batch are cache hits"
export BENCH_ACCESS_TOKEN

# ---- measurements -----------------------------------------------------------------------------------------
# run_wrk SERVER CONNECTIONS FILE DURATION -> sets RPS P50_MS P99_MS REQUESTS NON2XX SOCKET_ERRORS CALLS (mock calls)
run_wrk() {
  local server=$1 connections=$2 file=$3 duration=$4 url mode=vary before after script=$WRK_SCRIPT embed=""
  local token=""
  case $server in
    embed_miss | embed_hit)
      url=$troupe_base/v1/embeddings token=$BENCH_ACCESS_TOKEN script=bench/wrk/gateway_embed.lua embed=${server#embed_} ;;
    direct) url=$mock_base/v1/chat/completions ;;
    troupe) url=$troupe_base/v1/chat/completions token=$BENCH_ACCESS_TOKEN ;;
    troupe_hit) url=$troupe_base/v1/chat/completions token=$BENCH_ACCESS_TOKEN mode=fixed ;;
    troupe_metered) url=$metered_base/v1/chat/completions token=$METERED_ACCESS_TOKEN ;;
    portkey) url=http://127.0.0.1:$portkey_port/v1/chat/completions ;;
    nginx) url=$nginx_url mode=fixed ;;
    *) die "run_wrk: unknown server $server" ;;
  esac
  local args=(-t"$THREADS" -c"$connections" -d"$duration" -s "$script")
  [[ $server != portkey ]] || args+=("${portkey_headers[@]}")
  before=$(mock_requests)
  BENCH_CHAT=$mode BENCH_EMBED=$embed BENCH_NONCE="$stamp-$file" BENCH_ACCESS_TOKEN=$token \
    wrk_run "$server" "$file" "${args[@]}" "$url"
  after=$(mock_requests)
  kill -0 "$mock_pid" 2>/dev/null || die "the mock upstream died during the run (see $out/mock.log)"
  kill -0 "$nginx_pid" 2>/dev/null || die "nginx died during the run"
  kill -0 "$troupe_pid" 2>/dev/null || die "troupe died during the run (see $out/troupe.log)"
  kill -0 "$metered_pid" 2>/dev/null || die "the metered troupe died during the run (see $out/troupe_metered.log)"
  [[ -z $portkey_pid ]] || kill -0 "$portkey_pid" 2>/dev/null || die "portkey died during the run (see $out/portkey.log)"
  CALLS=$((after - before))
}

# The runs of one round, in order: "server connections".
plan=("direct $CONNECTIONS_LOW" "troupe $CONNECTIONS_LOW")
[[ -n $portkey_skip ]] || plan+=("portkey $CONNECTIONS_LOW")
plan+=("embed_miss $CONNECTIONS_LOW" "embed_hit $CONNECTIONS_LOW")
plan+=("direct $CONNECTIONS_HIGH" "troupe $CONNECTIONS_HIGH" "troupe_metered $CONNECTIONS_HIGH")
[[ -n $portkey_skip ]] || plan+=("portkey $CONNECTIONS_HIGH")
plan+=("nginx $CONNECTIONS_HIGH" "troupe_hit $CONNECTIONS_HIGH")

if [[ $WARMUP != 0 && $WARMUP != 0[smh] ]]; then
  log "warm-up: $WARMUP of each run at -c$CONNECTIONS_HIGH (not recorded)"
  for entry in "${plan[@]}"; do
    read -r server connections <<<"$entry"
    [[ $connections == "$CONNECTIONS_HIGH" ]] || continue
    run_wrk "$server" "$CONNECTIONS_HIGH" "$out/warmup-$server.txt" "$WARMUP"
  done
fi

declare -A rps p50 p99 # key "server c": space-separated values, one per round
declare -A added_p50 added_p99 # key connections: per-round troupe - direct
rows=()
troupe_non2xx=0 other_non2xx=0 merged=0 hit_calls=0 socket_errors=0
for ((round = 1; round <= ROUNDS; round++)); do
  declare -A this_p50=() this_p99=()
  for entry in "${plan[@]}"; do
    read -r server connections <<<"$entry"
    log "round $round/$ROUNDS: $server -c$connections ($DURATION)"
    run_wrk "$server" "$connections" "$out/round$round-$server-c$connections.txt" "$DURATION"
    key="$server $connections"
    rps[$key]+="$RPS " p50[$key]+="$P50_MS " p99[$key]+="$P99_MS "
    this_p50[$key]=$P50_MS this_p99[$key]=$P99_MS
    case $server in
      troupe | troupe_hit | troupe_metered | embed_*) troupe_non2xx=$((troupe_non2xx + NON2XX)) ;;
      *) other_non2xx=$((other_non2xx + NON2XX)) ;;
    esac
    socket_errors=$((socket_errors + SOCKET_ERRORS))
    # Every answered request of a varying run needs its own upstream call (in-flight ones at the end may add a few).
    if [[ $server == troupe || $server == troupe_metered || $server == portkey || $server == embed_miss ]] &&
      ((CALLS < REQUESTS)); then
      log "$server -c$connections: $REQUESTS responses but only $CALLS mock calls: requests were merged or cached"
      merged=$((merged + REQUESTS - CALLS))
    fi
    [[ $server != troupe_hit && $server != embed_hit ]] || hit_calls=$((hit_calls + CALLS))
    calls_cell=$CALLS
    [[ $server != nginx ]] || calls_cell=""
    rows+=("$(printf '| %s | %s | %s | %.0f | %.3f | %.3f | %s | %s | %s | %s |' "$round" "$server" "$connections" \
      "$RPS" "$P50_MS" "$P99_MS" "$REQUESTS" "$calls_cell" "$NON2XX" "$SOCKET_ERRORS")")
  done
  for c in "$CONNECTIONS_LOW" "$CONNECTIONS_HIGH"; do
    added_p50[$c]+="$(awk -v t="${this_p50[troupe $c]}" -v d="${this_p50[direct $c]}" 'BEGIN { printf "%.3f", t - d }') "
    added_p99[$c]+="$(awk -v t="${this_p99[troupe $c]}" -v d="${this_p99[direct $c]}" 'BEGIN { printf "%.3f", t - d }') "
  done
  unset this_p50 this_p99
done

m() { # median of the values under KEY of array NAME
  local -n values=$1
  # shellcheck disable=SC2086 # the values are a space-separated list of numbers
  median ${values[$2]}
}
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }

lo=$CONNECTIONS_LOW hi=$CONNECTIONS_HIGH
added_p50_lo=$(m added_p50 "$lo") added_p99_lo=$(m added_p99 "$lo")
added_p50_hi=$(m added_p50 "$hi") added_p99_hi=$(m added_p99 "$hi")
v_p50=$(at_most "$added_p50_lo" "$TARGET_ADDED_P50_MS")
v_p99=$(at_most "$added_p99_lo" "$TARGET_ADDED_P99_MS")
troupe_rps_hi=$(m rps "troupe $hi") direct_rps_hi=$(m rps "direct $hi")
if [[ -z $portkey_skip ]]; then
  portkey_rps_hi=$(m rps "portkey $hi")
  portkey_ratio=$(ratio "$troupe_rps_hi" "$portkey_rps_hi")
  v_portkey=$(at_least "$portkey_ratio" "$TARGET_PORTKEY_RATIO")
  portkey_cell="${portkey_ratio}x ($(fmt "$troupe_rps_hi" %.0f) vs $(fmt "$portkey_rps_hi" %.0f) req/s)"
else
  v_portkey=SKIPPED portkey_cell="skipped: $portkey_skip"
fi
hit_rps=$(m rps "troupe_hit $hi") nginx_rps=$(m rps "nginx $hi")
hit_ratio=$(ratio "$hit_rps" "$nginx_rps")
v_hit=$(at_least "$hit_ratio" "$TARGET_HIT_RATIO")
metered_rps_hi=$(m rps "troupe_metered $hi")
metered_ratio=$(ratio "$metered_rps_hi" "$troupe_rps_hi")
v_metered=$(at_least "$metered_ratio" "$TARGET_METERED_RATIO")
v_2xx=PASS
((troupe_non2xx == 0)) || v_2xx=MISS
v_honest=PASS
((merged == 0 && hit_calls == 0)) || v_honest=MISS
mock_headroom=$(ratio "$direct_rps_hi" "$troupe_rps_hi")
embed_hit_p50=$(m p50 "embed_hit $lo") embed_miss_p50=$(m p50 "embed_miss $lo")
embed_hit_p99=$(m p99 "embed_hit $lo") embed_miss_p99=$(m p99 "embed_miss $lo")
embed_p50_ratio=$(ratio "$embed_hit_p50" "$embed_miss_p50")
embed_rps_ratio=$(ratio "$(m rps "embed_hit $lo")" "$(m rps "embed_miss $lo")")

# ---- report -----------------------------------------------------------------------------------------------
machine_facts
if [[ -n $(git status --porcelain 2>/dev/null | head -n 1) ]]; then commit+=" + uncommitted changes"; fi
nginx_version=$("$NGINX" -v 2>&1 | sed 's/^nginx version: nginx\///')
wrk_version=$( (wrk -v 2>&1 || true) | awk 'NR == 1 { print $2 }')
portkey_software="Portkey skipped ($portkey_skip)"
[[ -n $portkey_skip ]] || portkey_software="@portkey-ai/gateway $portkey_version on node $(node --version) (one process, NODE_ENV=production, --headless)"

command="make bench-gateway"
overrides=""
[[ $ROUNDS == 3 ]] || overrides+="ROUNDS=$ROUNDS "
[[ $DURATION == 10s ]] || overrides+="DURATION=$DURATION "
[[ $THREADS == 2 ]] || overrides+="THREADS=$THREADS "
[[ $CONNECTIONS_LOW == 4 ]] || overrides+="CONNECTIONS_LOW=$CONNECTIONS_LOW "
[[ $CONNECTIONS_HIGH == 64 ]] || overrides+="CONNECTIONS_HIGH=$CONNECTIONS_HIGH "
[[ $WARMUP == 2s ]] || overrides+="WARMUP=$WARMUP "
[[ $MOCK_THREADS == 2 ]] || overrides+="MOCK_THREADS=$MOCK_THREADS "
[[ $NGINX_WORKERS == 1 ]] || overrides+="NGINX_WORKERS=$NGINX_WORKERS "
[[ $PORTKEY == 1 ]] || overrides+="PORTKEY=$PORTKEY "
[[ -z $TROUPE_ARGS ]] || overrides+="TROUPE_ARGS='$TROUPE_ARGS' "
command="$overrides$command"

median_row() { # server connections
  local key="$1 $2"
  [[ -n ${rps[$key]:-} ]] || return 0
  printf '| median | %s | %s | %.0f | %.3f | %.3f | | | | |\n' "$1" "$2" "$(m rps "$key")" "$(m p50 "$key")" "$(m p99 "$key")"
}

summary=$(
  cat <<EOF
Added latency of Troupe over the mock (median over rounds of troupe - direct in the same round):
-c$lo p50 +$(fmt "$added_p50_lo" %.3f) ms, p99 +$(fmt "$added_p99_lo" %.3f) ms; -c$hi p50 +$(fmt "$added_p50_hi" %.3f) ms, p99 +$(fmt "$added_p99_hi" %.3f) ms
Throughput at -c$hi: direct $(fmt "$direct_rps_hi" %.0f), troupe $(fmt "$troupe_rps_hi" %.0f)${portkey_skip:+, portkey skipped}${portkey_skip:-, portkey $(fmt "${portkey_rps_hi:-0}" %.0f)} req/s (mock headroom: direct/troupe ${mock_headroom}x)
Cache hit at -c$hi: troupe $(fmt "$hit_rps" %.0f) req/s, nginx $(fmt "$nginx_rps" %.0f) req/s: ${hit_ratio}x
Embeddings at -c$lo (8 inputs x 256 dimensions, base64): hit p50 $(fmt "$embed_hit_p50" %.3f) ms, p99 $(fmt "$embed_hit_p99" %.3f) ms; miss p50 $(fmt "$embed_miss_p50" %.3f) ms, p99 $(fmt "$embed_miss_p99" %.3f) ms; hit/miss p50 ${embed_p50_ratio}x, req/s ${embed_rps_ratio}x

| target | measured | verdict |
|---|---|---|
| added p50 at -c$lo <= $TARGET_ADDED_P50_MS ms | +$(fmt "$added_p50_lo" %.3f) ms | $v_p50 |
| added p99 at -c$lo <= $TARGET_ADDED_P99_MS ms | +$(fmt "$added_p99_lo" %.3f) ms | $v_p99 |
| Troupe >= ${TARGET_PORTKEY_RATIO}x Portkey req/s at -c$hi | $portkey_cell | $v_portkey |
| cache-hit chat completion >= ${TARGET_HIT_RATIO}x nginx \`return 200\` req/s at -c$hi | ${hit_ratio}x | $v_hit |
| metering with budgets and tokens per minute >= ${TARGET_METERED_RATIO}x without, req/s at -c$hi | ${metered_ratio}x ($(fmt "$metered_rps_hi" %.0f) vs $(fmt "$troupe_rps_hi" %.0f) req/s) | $v_metered |
| embeddings cache hit vs miss at -c$lo (no target in the issue: reported) | p50 $(fmt "$embed_hit_p50" %.3f) vs $(fmt "$embed_miss_p50" %.3f) ms (${embed_p50_ratio}x), p99 $(fmt "$embed_hit_p99" %.3f) vs $(fmt "$embed_miss_p99" %.3f) ms | reported |
| every Troupe response 2xx | $troupe_non2xx non-2xx | $v_2xx |
| no request merged or cached in the latency and throughput runs; no cache-hit run reaches the mock | $merged missing upstream calls, $hit_calls cache-hit calls | $v_honest |
EOF
)

ensure_results_file "$RESULTS"

{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): AI gateway, Troupe vs the mock upstream direct, Portkey, nginx"
  echo
  echo "- command: \`$command\` (wrk -t$THREADS -d$DURATION --latency -s $WRK_SCRIPT; $ROUNDS rounds, each running in turn: direct, troupe${portkey_skip:+,}${portkey_skip:-, portkey}, embed_miss, embed_hit at -c$lo, the same and troupe_metered at -c$hi, nginx and troupe_hit at -c$hi; warm-up $WARMUP of each -c$hi run)"
  echo "- requests: non-streamed POST /v1/chat/completions; direct, troupe, portkey: temperature 0.7 and a user message numbered per request in flight (never cached, never merged by single flight; checked: each run reaches the mock at least once per response, column \"mock calls\"); troupe_hit: one deterministic request (temperature 0) answered once before the run, so every response is an X-Cache: HIT; nginx: the same POST answered by \`return 200\`; embed_miss, embed_hit: POST /v1/embeddings, 8 inputs of 256 dimensions, base64 (bench/wrk/gateway_embed.lua), new inputs in every request or one batch from the cache"
  echo "- troupe: a bearer token (JWT) of one user; arguments \`${bench_args[*]}${TROUPE_ARGS:+ $TROUPE_ARGS}\`, TROUPE_PRICES mock-1; troupe_metered: the same plus \`${metered_args[*]}\`; upstream mock with max_inflight 4096; portkey: headers x-portkey-provider: openai, x-portkey-custom-host: the mock's /v1, Authorization: Bearer dummy"
  echo "- machine: ${cpu:-$(uname -m)}, $(nproc) CPUs (nproc), $mem RAM, kernel $(uname -r); wrk, the mock, the gateways and PostgreSQL share the CPUs"
  echo "- software: commit $commit; mock-upstream --threads $MOCK_THREADS; $portkey_software; nginx $nginx_version (worker_processes $NGINX_WORKERS); wrk $wrk_version"
  echo
  echo "| round | server | connections | req/s | p50 (ms) | p99 (ms) | responses | mock calls | non-2xx | socket errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  for entry in "direct $lo" "troupe $lo" "portkey $lo" "embed_miss $lo" "embed_hit $lo" "direct $hi" "troupe $hi" "troupe_metered $hi" "portkey $hi" \
    "nginx $hi" "troupe_hit $hi"; do
    # shellcheck disable=SC2086 # two words
    median_row $entry
  done
  echo
  echo "$summary"
} >>"$RESULTS"

echo
echo "AI gateway: Troupe vs the mock direct, Portkey, nginx ($command; raw output in $out)"
echo "$summary"
((socket_errors == 0 && other_non2xx == 0)) ||
  echo "note: $socket_errors socket errors and $other_non2xx non-2xx answers of the other servers (see $out)"
echo
log "appended to $RESULTS"

if [[ ${BENCH_STRICT:-0} == 1 && "$v_p50$v_p99$v_hit$v_2xx$v_honest" != PASSPASSPASSPASSPASS ]]; then
  exit 1
fi
if [[ ${BENCH_STRICT:-0} == 1 && $v_portkey == MISS ]]; then
  exit 1
fi
