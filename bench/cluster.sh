#!/usr/bin/env bash
# `make bench-cluster`: what being a cluster costs (issue 15), on this machine, in one run.
#
#   1. Remote hop: authenticated GET /api/me on node A for a user node A owns against a user node B owns (A asks B
#      over BASP), two nodes, at -c64; rounds alternate which goes first. Target: remote >= 0.5x local; the added
#      p50 of the remote hop is reported.
#   2. Failover: FAILOVERS times, kill -9 the owner of a user (of three nodes, a different one each time) and time
#      until a survivor reports it down (/metrics) and until the first request of that user on a survivor is served
#      (200 or 429, not 503); the killed node is restarted and rejoins before the next. Targets: worst served <= 10 s,
#      worst detection <= cluster.failure_ms (5 s) + 1 s.
#   3. The gateway route (a chat completion cache hit) on one node without a cluster against node A of a three-node
#      cluster for a user node B owns and whose cached answer another node than A holds: the cost of being a cluster
#      at all, with the near tier (cache.near_ttl_ms, A reads its own copy) and without it (every hit asks the
#      holder over BASP).
# Every node shares the machine's cores with the others, wrk and PostgreSQL: the ratios are what this machine shows.
# Admission control is off: it sheds (503) when a route's latency rises, and alternating local and remote runs on
# one route is exactly that (measured: 53k of 223k remote requests refused right after a local run); what is
# measured here is the cost of the hop.
#
# Run it under the build lock on a shared machine:  flock -o /tmp/troupe-build.lock make bench-cluster
# Knobs: ROUNDS=3 DURATION=10s THREADS=2 FAILOVERS=5 BENCH_SKIP_BUILD=1 BENCH_RESULTS (file).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
FAILOVERS=${FAILOVERS:-5}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
BENCH_NAME=bench-cluster
WRK_SCRIPT=bench/wrk/gateway_chat.lua
# shellcheck source=bench/lib.sh
source bench/lib.sh

pids=()
mock_pid=""
stop_at_exit=(mock_pid)
tmp=$(mktemp -d)
on_exit bench_cleanup

build_release troupe mock-upstream
command -v wrk >/dev/null || die "wrk is not installed (scripts/install-deps)"
machine_facts
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/out/cluster-$stamp
mkdir -p "$out"
ensure_database
# Each part gets a fresh schema of its own: nodes of an earlier part must not linger in the membership table.
psql -q "$TROUPE_DATABASE_URL" -c 'DELETE FROM cluster_members' >/dev/null 2>&1 || true

build/mock-upstream --threads 1 --port-file "$tmp/mock.port" </dev/null >"$out/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 100); do [[ -s $tmp/mock.port ]] && break; sleep 0.1; done
[[ -s $tmp/mock.port ]] || die "the mock upstream did not start"
mock_base=http://127.0.0.1:$(tr -d '\n' <"$tmp/mock.port")
TROUPE_UPSTREAMS=$(printf '[{"name":"mock","base_url":"%s/v1","models":["mock-1"],"max_inflight":4096}]' "$mock_base")
export TROUPE_UPSTREAMS
generous=(--set limits.default_per_minute=1000000 --set limits.default_burst=1000000 --set limits.auth_burst=1000
  --set limits.generate_per_minute=1000000 --set limits.generate_burst=1000000 --set quota.free_per_day=100000000
  --set limits.generate_max_inflight=1024 --set http.threads=1 --set actors.threads=2
  --set http.admission_control=false)
cluster_args=(--set cluster.enabled=true --set cluster.heartbeat_ms=1000 --set cluster.failure_ms=5000)
password="correct horse battery staple"
declare -A node_port node_pid
node_extra=() # more arguments for the nodes started from now on

# node ID: starts (or restarts, on the same port) cluster node ID; waits until it joined.
node() {
  local id=$1 port=${node_port[$1]:-} before
  [[ -n $port ]] || port=$(free_port)
  node_port[$id]=$port
  before=$(grep -c '"msg":"cluster joined"' "$out/$id.log" 2>/dev/null || true)
  build/troupe --set "http.port=$port" --set log.request_sample=0 --set "cluster.node_id=$id" "${cluster_args[@]}" \
    "${generous[@]}" "${node_extra[@]}" </dev/null >>"$out/$id.log" 2>&1 &
  node_pid[$id]=$!
  pids+=($!)
  wait_ready "http://127.0.0.1:$port/health" "$!" "troupe ($id)" || die "$id did not start; see $out/$id.log"
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(grep -c '"msg":"cluster joined"' "$out/$id.log") -gt ${before:-0} ]] && return 0
    sleep 0.1
  done
  die "$id did not join; see $out/$id.log"
}

# placed PORT: the members a node places (troupe_cluster_placed_members).
placed() { curl -sf "http://127.0.0.1:$1/metrics" | awk '$1 == "troupe_cluster_placed_members" { print $2 }'; }
down_members() { curl -sf "http://127.0.0.1:$1/metrics" | awk '$1 == "troupe_cluster_members{state=\"down\"}" { print $2 }'; }
await_placed() {
  local port=$1 want=$2 i
  for ((i = 0; i < 300; i++)); do
    [[ $(placed "$port") == "$want" ]] && return 0
    sleep 0.1
  done
  die "node on $port does not place $want members"
}

# login PORT EMAIL: registers (if needed) and logs in; prints "user_id token".
login() {
  local body id token
  body=$(printf '{"email":"%s","password":"%s"}' "$2" "$password")
  id=$(curl -s -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$1/api/auth/register" |
    sed -n 's/.*"user_id":"\([^"]*\)".*/\1/p')
  token=$(curl -sf -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$1/api/auth/login" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  [[ -n $token ]] || die "could not log in $2"
  [[ -n $id ]] || id=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$1/api/me" |
    sed -n 's/.*"user_id":"\([^"]*\)".*/\1/p')
  echo "$id $token"
}

# owner PORT USER_ID: the owner node of a user, as the node on PORT sees it (the admin's token in admin_token).
owner() {
  curl -sf -H "Authorization: Bearer $admin_token" "http://127.0.0.1:$1/api/cluster/owner/$2" |
    sed -n 's/.*"owner":"\([^"]*\)".*/\1/p'
}

# user_owned_by PORT NODE PREFIX: a user NODE owns (registered through PORT); prints "user_id token".
user_owned_by() {
  local i pair
  for ((i = 0; i < 60; i++)); do
    pair=$(login "$1" "$3$i@example.com")
    [[ $(owner "$1" "${pair%% *}") == "$2" ]] && { echo "$pair"; return 0; }
  done
  die "no user owned by $2 among 60"
}

# make_admin PORT: an admin token in admin_token (granted before its first authenticated request, which loads its
# session with the role).
make_admin() {
  read -r _ admin_token < <(login "$1" admin@example.com)
  build/troupe admin grant admin@example.com >/dev/null
  curl -sf -o /dev/null -H "Authorization: Bearer $admin_token" "http://127.0.0.1:$1/api/cluster" ||
    die "the admin cannot read /api/cluster"
}

stop_all() {
  local id
  for id in "${!node_pid[@]}"; do stop_pid "${node_pid[$id]}" "$id" 30; done
  node_pid=()
  node_port=()
  psql -q "$TROUPE_DATABASE_URL" -c 'DELETE FROM cluster_members' >/dev/null 2>&1 || true
}

measure() {
  local key=$1 connections=$2 url=$3
  shift 3
  wrk_run "$key" "$out/$key-$round.txt" -t"$THREADS" -c"$connections" -d"$DURATION" "$@" "$url"
  ((NON2XX == 0 && SOCKET_ERRORS == 0)) ||
    die "$key: $NON2XX non-2xx responses ($(grep '^statuses:' "$out/$key-$round.txt")), $SOCKET_ERRORS socket errors"
  series[$key]+="$RPS $P50_MS $P99_MS;"
  log "round $round $key: $RPS req/s, p50 $P50_MS ms, p99 $P99_MS ms"
}
declare -A series
field() { tr ';' '\n' <<<"${series[$1]}" | awk -v f="$2" 'NF { print $f }'; }
# shellcheck disable=SC2046 # one figure per word
med() { median $(field "$1" "$2"); }

# ---- 1. the remote hop --------------------------------------------------------------------------------------------
node node-a
node node-b
a=${node_port[node-a]}
await_placed "$a" 2
make_admin "$a"
read -r _ local_token < <(user_owned_by "$a" node-a local)
read -r _ remote_token < <(user_owned_by "$a" node-b remote)
for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then order=(local remote); else order=(remote local); fi
  for kind in "${order[@]}"; do
    token_var=${kind}_token
    BENCH_ACCESS_TOKEN=${!token_var} measure "$kind" 64 "http://127.0.0.1:$a/api/me" -s bench/wrk/status_count.lua
  done
done
hop_ratio=$(ratio "$(med remote 1)" "$(med local 1)")
hop_p50=$(awk -v r="$(med remote 2)" -v l="$(med local 2)" 'BEGIN { printf "%.3f\n", r - l }')

# ---- 3. the gateway route: one node against a cluster of three (before the failovers, which leave restarts) -----
hit_body='{"model":"mock-1","temperature":0,"messages":[{"role":"user","content":"cluster bench"}]}'
warm() {
  curl -sf -o /dev/null -H 'Content-Type: application/json' -H "Authorization: Bearer $2" -d "$hit_body" \
    "http://127.0.0.1:$1/v1/chat/completions" || die "the chat completion failed on $1"
}
# cache_asked: how many cache requests nodes B and C took from other nodes.
cache_asked() {
  local id sum=0 n
  for id in node-b node-c; do
    n=$(curl -sf "http://127.0.0.1:${node_port[$id]}/metrics" |
      awk '$1 == "troupe_cluster_remote_requests_total{kind=\"cache\"}" { print $2 }')
    sum=$((sum + ${n:-0}))
  done
  echo "$sum"
}
# gateway_user: a user node B owns whose cached answer node A asks another node for ("user_id token" in gw_user).
gateway_user() {
  local i pair before
  for ((i = 0; i < 60; i++)); do
    pair=$(user_owned_by "$a" node-b "gateway$i-")
    before=$(cache_asked)
    warm "$a" "${pair#* }"
    if (($(cache_asked) > before)); then gw_user=$pair; return 0; fi
  done
  die "no user among 60 whose cached answer another node holds"
}
# three_nodes: starts nodes A, B and C, waits until A places all three, and makes the admin (node A's port in a).
three_nodes() {
  node node-a
  node node-b
  node node-c
  a=${node_port[node-a]}
  await_placed "$a" 3
  make_admin "$a"
}
# cluster3 NAME NEAR_TTL_MS: starts the three nodes with that near tier, measures node A, stops them.
cluster3() {
  node_extra=(--set "cache.near_ttl_ms=$2")
  three_nodes
  gateway_user
  export BENCH_ACCESS_TOKEN=${gw_user#* } BENCH_CHAT=fixed
  warm "$a" "$BENCH_ACCESS_TOKEN"
  measure "$1" 64 "http://127.0.0.1:$a/v1/chat/completions" -s "$WRK_SCRIPT"
  stop_all
  node_extra=()
}
# The single node (no cluster) runs alone.
single_rounds() {
  local port
  port=$(free_port)
  build/troupe --set "http.port=$port" --set log.request_sample=0 "${generous[@]}" </dev/null >>"$out/single.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  wait_ready "http://127.0.0.1:$port/health" "$pid" "troupe (single)" || die "the single node did not start"
  read -r _ single_token < <(login "$port" gateway-single@example.com)
  export BENCH_ACCESS_TOKEN=$single_token BENCH_CHAT=fixed
  warm "$port" "$single_token"
  warm "$port" "$single_token"
  measure single 64 "http://127.0.0.1:$port/v1/chat/completions" -s "$WRK_SCRIPT"
  stop_pid "$pid" single 30
}
stop_all
for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then
    cluster3 cluster3 1000
    cluster3 cluster3far 0
  else
    cluster3 cluster3far 0
    cluster3 cluster3 1000
  fi
  single_rounds
done
three_nodes
gw_ratio=$(ratio "$(med cluster3 1)" "$(med single 1)")
gw_far_ratio=$(ratio "$(med cluster3far 1)" "$(med single 1)")

# ---- 2. failover ---------------------------------------------------------------------------------------------------
ids=(node-a node-b node-c)
detections=() served=()
for ((k = 0; k < FAILOVERS; k++)); do
  victim=${ids[k % 3]}
  survivor=${ids[(k + 1) % 3]}
  sp=${node_port[$survivor]}
  await_placed "$sp" 3
  read -r victim_user victim_token < <(user_owned_by "$sp" "$victim" "failover$k-")
  curl -sf -o /dev/null -H "Authorization: Bearer $victim_token" "http://127.0.0.1:$sp/api/me" ||
    die "the victim's user was not served before the kill"
  kill -KILL "${node_pid[$victim]}"
  t0=$(date +%s%N)
  detected="" first=""
  while [[ -z $detected || -z $first ]]; do
    now=$(date +%s%N)
    ((now - t0 < 30000000000)) || die "failover $k: not recovered within 30 s"
    if [[ -z $detected && $(down_members "$sp") == 1 ]]; then detected=$(((now - t0) / 1000000)); fi
    if [[ -z $first ]]; then
      code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $victim_token" "http://127.0.0.1:$sp/api/me")
      if [[ $code == 200 || $code == 429 ]]; then first=$((($(date +%s%N) - t0) / 1000000)); fi
    fi
    sleep 0.05
  done
  detections+=("$detected")
  served+=("$first")
  log "failover $k ($victim, user $victim_user): detected after $detected ms, served after $first ms"
  wait "${node_pid[$victim]}" 2>/dev/null || true
  node "$victim"
done
worst() { printf '%s\n' "$@" | sort -n | tail -1; }

# ---- report ----------------------------------------------------------------------------------------------------------
ensure_results_file "$RESULTS"
{
  echo
  echo "## bench-cluster, $stamp"
  echo
  echo "- command: \`flock -o /tmp/troupe-build.lock make bench-cluster\` (ROUNDS=$ROUNDS DURATION=$DURATION THREADS=$THREADS FAILOVERS=$FAILOVERS)"
  echo "- machine: $cpu, $(nproc) cores, $mem; every node, wrk, the mock and PostgreSQL share the cores; commit \`$commit\`"
  echo "- raw: $out"
  echo
  echo "| measurement | figure (median of $ROUNDS rounds) | target | verdict |"
  echo "|---|---|---|---|"
  echo "| GET /api/me on node A, user owned by A | $(med local 1) req/s, p50 $(med local 2) ms, p99 $(med local 3) ms | | |"
  echo "| GET /api/me on node A, user owned by B | $(med remote 1) req/s, p50 $(med remote 2) ms, p99 $(med remote 3) ms | | |"
  echo "| remote / local throughput | ${hop_ratio}x | >= 0.5x | $(at_least "$hop_ratio" 0.5) |"
  echo "| added p50 of the remote hop | $hop_p50 ms | (reported) | |"
  echo "| chat cache hit, one node, no cluster | $(med single 1) req/s, p50 $(med single 2) ms | | |"
  echo "| chat cache hit, node A of three, user owned by B, answer held by B or C, near tier (1 s) | $(med cluster3 1) req/s, p50 $(med cluster3 2) ms | | |"
  echo "| the same without the near tier (each hit asks the holder) | $(med cluster3far 1) req/s, p50 $(med cluster3far 2) ms | | |"
  echo "| cluster of three / one node (gateway route), near tier | ${gw_ratio}x | (reported: the cost of a cluster) | |"
  echo "| cluster of three / one node (gateway route), no near tier | ${gw_far_ratio}x | (reported) | |"
  echo "| failover: detection (ms, each kill) | ${detections[*]}; median $(median "${detections[@]}"), worst $(worst "${detections[@]}") | <= 6000 | $(at_most "$(worst "${detections[@]}")" 6000) |"
  echo "| failover: first request served (ms) | ${served[*]}; median $(median "${served[@]}"), worst $(worst "${served[@]}") | <= 10000 | $(at_most "$(worst "${served[@]}")" 10000) |"
} | tee -a "$RESULTS"
