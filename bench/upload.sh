#!/usr/bin/env bash
# `make bench-upload`: resumable uploads and background processing, in one run, appended to bench/RESULTS.md.
#
#   1. Upload throughput and memory: a 1 GiB file uploaded with tus in 8 MiB PATCHes (one keep-alive connection,
#      each PATCH after the previous answer: bench/peers/tus_put.mjs, the same client for both servers) through
#      Troupe and through @tus/server with its file store (npm, bench/peers/tus_server.mjs) on the same machine.
#      ROUNDS rounds, alternating; MB/s and the peak RSS of each server during the upload (VmHWM, reset with
#      /proc/PID/clear_refs just before). Targets (issue 8): Troupe >= 1x @tus/server's MB/s, <= 0.5x its peak RSS.
#      Troupe fsyncs every chunk before answering and commits the offset in PostgreSQL; @tus/server does neither.
#   2. Memory bound: one 2 GiB upload through Troupe; its RSS may grow by about http threads x 3 x max_chunk_bytes.
#   3. Processing: a synthetic source tree of 20k files as a .tar.gz, uploaded to Troupe; the time of its job (from
#      its attempt's start to its end: expansion, SHA-256, chunk analysis, segments committed) as MB/s and files/s.
#
# Knobs (environment): ROUNDS=3 UPLOAD_BYTES=1073741824 CHUNK_BYTES=8388608 MEMORY_BYTES=2147483648 (0 skips 2)
# ARCHIVE_FILES=20000 (0 skips 3), TROUPE_ARGS (extra troupe arguments, recorded), TROUPE_DATABASE_URL (else a
# throw-away PostgreSQL under var/), BENCH_STRICT=1 (exit 1 on a MISS), BENCH_SKIP_BUILD=1, BENCH_RESULTS (file).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"

ROUNDS=${ROUNDS:-3}
UPLOAD_BYTES=${UPLOAD_BYTES:-1073741824}
CHUNK_BYTES=${CHUNK_BYTES:-8388608}
MEMORY_BYTES=${MEMORY_BYTES:-2147483648}
ARCHIVE_FILES=${ARCHIVE_FILES:-20000}
TROUPE_BIN=${TROUPE_BIN:-build/troupe}
TROUPE_ARGS=${TROUPE_ARGS:-}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
TARGET_RATIO=1
TARGET_RSS_RATIO=0.5
peers=bench/peers

BENCH_NAME=bench-upload
# shellcheck source=bench/lib.sh
source bench/lib.sh

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
for knob in UPLOAD_BYTES CHUNK_BYTES MEMORY_BYTES ARCHIVE_FILES; do
  [[ ${!knob} =~ ^[0-9]+$ ]] || die "$knob must be a number of bytes (or files), not '${!knob}'"
done
((UPLOAD_BYTES % 1048576 == 0 && UPLOAD_BYTES > 0)) || die "UPLOAD_BYTES must be a positive multiple of 1 MiB"

# ---- processes and cleanup ----------------------------------------------------------------------------
troupe_pid=""
tus_pid=""
stop_at_exit=(troupe_pid tus_pid)
on_exit bench_cleanup

# ---- build and peers ----------------------------------------------------------------------------------
build_release troupe
[[ -x $TROUPE_BIN ]] || die "$TROUPE_BIN is missing or not executable"
for tool in node npm curl tar; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps installs it)"
done
if [[ ! -f $peers/node_modules/@tus/server/package.json || ! -f $peers/node_modules/@tus/file-store/package.json ]]; then
  log "installing @tus/server and @tus/file-store into $peers/node_modules"
  flock /tmp/troupe-bench-npm.lock timeout 180 npm install --no-audit --no-fund --prefix "$peers" >&2 ||
    die "npm install --prefix $peers failed: the reference server is needed"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/troupe-bench-upload.XXXXXX")
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/out/upload-$stamp
mkdir -p "$out"

json() { # json FIELD_EXPRESSION < document: prints the field (a JavaScript expression on `d`)
  node -e "let s='';process.stdin.on('data',c=>s+=c).on('end',()=>{const d=JSON.parse(s);console.log($1)})"
}

kib() { awk -v k="$1" '$1 == k ":" { print $2 }' "/proc/$2/status"; }
reset_peak() { echo 5 >"/proc/$1/clear_refs"; }

# ---- servers ------------------------------------------------------------------------------------------
ensure_database
troupe_port=$(free_port)
# Rate limits off: the rounds send more PATCHes in a minute than the default upload policy's burst.
# shellcheck disable=SC2086 # TROUPE_ARGS is a list of arguments
"$TROUPE_BIN" --set "http.port=$troupe_port" --set "uploads.dir=$tmp/troupe" --set limits.enabled=false \
  --set log.request_sample=0 --set "uploads.max_chunk_bytes=$CHUNK_BYTES" $TROUPE_ARGS </dev/null \
  >"$out/troupe.log" 2>&1 &
troupe_pid=$!
wait_ready "http://127.0.0.1:$troupe_port/health" "$troupe_pid" troupe 200 || die "troupe did not start (see $out/troupe.log)"

tus_port=$(free_port)
mkdir -p "$tmp/tus"
node "$peers/tus_server.mjs" "$tmp/tus" "$tus_port" </dev/null >"$out/tus-server.log" 2>&1 &
tus_pid=$!
wait_ready "http://127.0.0.1:$tus_port/files" "$tus_pid" "@tus/server" 200 any || die "@tus/server did not start"
log "troupe on $troupe_port (pid $troupe_pid), @tus/server on $tus_port (pid $tus_pid)"

# A user and a repository on Troupe.
api=http://127.0.0.1:$troupe_port
credentials='{"email":"bench@example.com","password":"correct horse battery"}'
curl -sf -o /dev/null -X POST "$api/api/auth/register" -H 'Content-Type: application/json' -d "$credentials"
token=$(curl -sf -X POST "$api/api/auth/login" -H 'Content-Type: application/json' -d "$credentials" | json d.access_token)
auth="Authorization: Bearer $token"
repo=$(curl -sf -X POST "$api/api/repositories" -H "$auth" -H 'Content-Type: application/json' -d '{"name":"bench"}' |
  json d.id)
b64() { printf '%s' "$1" | base64 -w0; }
troupe_meta() { echo "filename $(b64 "$1"),repository_id $(b64 "$repo")"; }

# Waits until the Troupe job of the upload at LOCATION is done; prints the job document.
wait_job() {
  local location=$1 job_id doc state i
  job_id=$(curl -sf "$api$location" -H "$auth" | json d.job_id)
  for ((i = 0; i < 36000; i++)); do
    doc=$(curl -sf "$api/api/jobs/$job_id" -H "$auth")
    state=$(json d.state <<<"$doc")
    [[ $state == "done" || $state == failed ]] && { echo "$doc"; return 0; }
    sleep 0.1
  done
  die "job $job_id did not finish within an hour"
}

# ---- 1. upload throughput and memory -------------------------------------------------------------------
log "writing a $((UPLOAD_BYTES / 1048576)) MiB random payload"
head -c "$UPLOAD_BYTES" /dev/urandom >"$tmp/payload"

# upload NAME -> sets MBPS, PEAK_KIB, BASE_KIB
upload() {
  local name=$1 pid result
  if [[ $name == troupe ]]; then pid=$troupe_pid; else pid=$tus_pid; fi
  BASE_KIB=$(kib VmRSS "$pid")
  reset_peak "$pid"
  if [[ $name == troupe ]]; then
    result=$(node "$peers/tus_put.mjs" "$api/api/uploads/" "$tmp/payload" "$CHUNK_BYTES" "$(troupe_meta bench.bin)" "$auth")
  else
    result=$(node "$peers/tus_put.mjs" "http://127.0.0.1:$tus_port/files" "$tmp/payload" "$CHUNK_BYTES" \
      "filename $(b64 bench.bin)")
  fi
  PEAK_KIB=$(kib VmHWM "$pid")
  MBPS=$(json d.mb_per_s <<<"$result")
  kill -0 "$pid" 2>/dev/null || die "$name died during the upload"
  # Between rounds: Troupe's job processes the file (off the clock); both servers' files are removed.
  if [[ $name == troupe ]]; then
    wait_job "$(json "new URL(d.location).pathname" <<<"$result")" >/dev/null
    rm -rf -- "$tmp/troupe/repositories/$repo"
  else
    rm -f -- "$tmp/tus"/*
  fi
}

rows=()
troupe_mbps=() tus_mbps=() troupe_peak=() tus_peak=()
for ((round = 1; round <= ROUNDS; round++)); do
  for name in tus troupe; do
    log "round $round/$ROUNDS: $name"
    upload "$name"
    label=$([[ $name == troupe ]] && echo troupe || echo "@tus/server")
    rows+=("$(awk -v r="$round" -v n="$label" -v m="$MBPS" -v p="$PEAK_KIB" -v b="$BASE_KIB" \
      'BEGIN { printf "| %s | %s | %.1f | %.1f | %.1f |", r, n, m, p / 1024, b / 1024 }')")
    if [[ $name == troupe ]]; then
      troupe_mbps+=("$MBPS") troupe_peak+=("$PEAK_KIB")
    else
      tus_mbps+=("$MBPS") tus_peak+=("$PEAK_KIB")
    fi
  done
done
troupe_mbps_med=$(median "${troupe_mbps[@]}")
tus_mbps_med=$(median "${tus_mbps[@]}")
troupe_peak_med=$(median "${troupe_peak[@]}")
tus_peak_med=$(median "${tus_peak[@]}")
ratio=$(awk -v t="$troupe_mbps_med" -v n="$tus_mbps_med" 'BEGIN { printf "%.2f\n", (n > 0) ? t / n : 0 }')
rss_ratio=$(awk -v t="$troupe_peak_med" -v n="$tus_peak_med" 'BEGIN { printf "%.2f\n", (n > 0) ? t / n : 0 }')
verdict_ratio=$(awk -v r="$ratio" -v g="$TARGET_RATIO" 'BEGIN { print (r >= g) ? "PASS" : "MISS" }')
verdict_rss=$(awk -v r="$rss_ratio" -v g="$TARGET_RSS_RATIO" 'BEGIN { print (r <= g) ? "PASS" : "MISS" }')

# ---- 2. memory bound ------------------------------------------------------------------------------------
memory_line="(skipped: MEMORY_BYTES=0)"
verdict_memory=""
if ((MEMORY_BYTES > 0)); then
  log "memory: one $((MEMORY_BYTES / 1048576)) MiB upload through troupe"
  truncate -s "$MEMORY_BYTES" "$tmp/big" # sparse: costs no disk to read from
  base=$(kib VmRSS "$troupe_pid")
  reset_peak "$troupe_pid"
  result=$(node "$peers/tus_put.mjs" "$api/api/uploads/" "$tmp/big" "$CHUNK_BYTES" "$(troupe_meta big.bin)" "$auth")
  peak=$(kib VmHWM "$troupe_pid")
  wait_job "$(json "new URL(d.location).pathname" <<<"$result")" >/dev/null
  rm -rf -- "$tmp/big" "$tmp/troupe/repositories/$repo"
  threads=$(nproc) # http.threads = 0 means one per core
  for arg in $TROUPE_ARGS; do [[ $arg == http.threads=* && ${arg#http.threads=} != 0 ]] && threads=${arg#http.threads=}; done
  bound=$((threads * 3 * CHUNK_BYTES / 1024))
  growth=$((peak - base))
  verdict_memory=$( ((growth <= bound + 16384)) && echo PASS || echo MISS)
  memory_line=$(printf 'RSS %.1f MiB before, peak %.1f MiB during: grew by %.1f MiB; bound %d threads x 3 x %d MiB = %.0f MiB (+16 MiB slack); %.1f MB/s' \
    "$(awk -v k="$base" 'BEGIN{print k/1024}')" "$(awk -v k="$peak" 'BEGIN{print k/1024}')" \
    "$(awk -v k="$growth" 'BEGIN{print k/1024}')" "$threads" "$((CHUNK_BYTES / 1048576))" \
    "$(awk -v k="$bound" 'BEGIN{print k/1024}')" "$(json d.mb_per_s <<<"$result")")
fi

# ---- 3. processing --------------------------------------------------------------------------------------
processing_line="(skipped: ARCHIVE_FILES=0)"
if ((ARCHIVE_FILES > 0)); then
  log "processing: writing a tree of $ARCHIVE_FILES files"
  node "$peers/make_tree.mjs" "$tmp/tree" "$ARCHIVE_FILES" 42 >/dev/null # prints the bytes written; the job reports them too
  tar -C "$tmp/tree" -czf "$tmp/tree.tar.gz" .
  archive_bytes=$(stat -c %s "$tmp/tree.tar.gz")
  rm -rf -- "$tmp/tree"
  result=$(node "$peers/tus_put.mjs" "$api/api/uploads/" "$tmp/tree.tar.gz" "$CHUNK_BYTES" "$(troupe_meta tree.tar.gz)" "$auth")
  job=$(wait_job "$(json "new URL(d.location).pathname" <<<"$result")")
  echo "$job" >"$out/processing-job.json"
  [[ $(json d.state <<<"$job") == "done" ]] || die "the processing job failed: $(json d.error <<<"$job")"
  seconds=$(json "(Date.parse(d.attempt_log.at(-1).finished_at) - Date.parse(d.attempt_log.at(-1).started_at)) / 1000" <<<"$job")
  files=$(json d.result.files <<<"$job")
  bytes=$(json d.result.bytes <<<"$job")
  processing_line=$(awk -v f="$files" -v b="$bytes" -v s="$seconds" -v a="$archive_bytes" -v p="$(nproc)" 'BEGIN {
    printf "%d files, %.1f MB expanded from a %.1f MB .tar.gz, in %.2f s: %.1f MB/s, %.0f files/s (%d processors)",
      f, b / 1e6, a / 1e6, s, b / 1e6 / s, f / s, p }')
fi

# ---- report -----------------------------------------------------------------------------------------------
machine_facts
if [[ -n $(git status --porcelain 2>/dev/null | head -n 1) ]]; then commit+=" + uncommitted changes"; fi
tus_version=$(node -e "console.log(require('./$peers/node_modules/@tus/server/package.json').version)")
store_version=$(node -e "console.log(require('./$peers/node_modules/@tus/file-store/package.json').version)")

command="make bench-upload"
overrides=""
[[ $ROUNDS == 3 ]] || overrides+="ROUNDS=$ROUNDS "
[[ $UPLOAD_BYTES == 1073741824 ]] || overrides+="UPLOAD_BYTES=$UPLOAD_BYTES "
[[ $CHUNK_BYTES == 8388608 ]] || overrides+="CHUNK_BYTES=$CHUNK_BYTES "
[[ $MEMORY_BYTES == 2147483648 ]] || overrides+="MEMORY_BYTES=$MEMORY_BYTES "
[[ $ARCHIVE_FILES == 20000 ]] || overrides+="ARCHIVE_FILES=$ARCHIVE_FILES "
[[ -z $TROUPE_ARGS ]] || overrides+="TROUPE_ARGS='$TROUPE_ARGS' "
command="$overrides$command"

summary=$(
  cat <<EOF
Troupe/@tus/server MB/s: $ratio (medians: troupe $(printf '%.1f' "$troupe_mbps_med"), @tus/server $(printf '%.1f' "$tus_mbps_med"))
Troupe/@tus/server peak RSS: $rss_ratio (medians: troupe $(awk -v k="$troupe_peak_med" 'BEGIN{printf "%.1f", k/1024}') MiB, @tus/server $(awk -v k="$tus_peak_med" 'BEGIN{printf "%.1f", k/1024}') MiB)
Memory, $((MEMORY_BYTES / 1048576)) MiB upload: $memory_line
Processing: $processing_line

| target | measured | verdict |
|---|---|---|
| Troupe MB/s >= ${TARGET_RATIO}x @tus/server | ${ratio}x | $verdict_ratio |
| Troupe peak RSS <= ${TARGET_RSS_RATIO}x @tus/server | ${rss_ratio}x | $verdict_rss |
EOF
)
if [[ -n $verdict_memory ]]; then
  summary+=$'\n'"| RSS growth of a $((MEMORY_BYTES / 1048576)) MiB upload <= threads x 3 x max_chunk_bytes | see above | $verdict_memory |"
fi

{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): tus uploads, Troupe vs @tus/server; processing of a ${ARCHIVE_FILES}-file archive"
  echo
  echo "- command: \`$command\` ($((UPLOAD_BYTES / 1048576)) MiB in $((CHUNK_BYTES / 1048576)) MiB PATCHes, one connection, bench/peers/tus_put.mjs; $ROUNDS rounds, alternating; peak RSS = VmHWM during the upload, reset just before it)"
  echo "- machine: ${cpu:-$(uname -m)}, $(nproc) CPUs (nproc), $mem RAM, kernel $(uname -r)"
  echo "- software: commit $commit; @tus/server $tus_version + @tus/file-store $store_version on Node $(node --version); troupe arguments: \`--set limits.enabled=false --set uploads.max_chunk_bytes=$CHUNK_BYTES ${TROUPE_ARGS}\`"
  echo "- Troupe fsyncs each chunk and commits its offset in PostgreSQL before answering; @tus/server's file store does neither"
  echo
  echo "| round | server | MB/s | peak RSS (MiB) | RSS before (MiB) |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "$summary"
} >>"$RESULTS"

echo
echo "tus uploads and processing ($command; raw output in $out)"
echo "$summary"
echo
log "appended to $RESULTS"

if [[ ${BENCH_STRICT:-0} == 1 && "$verdict_ratio$verdict_rss${verdict_memory:-PASS}" != PASSPASSPASS ]]; then
  exit 1
fi
