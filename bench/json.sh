#!/usr/bin/env bash
# `make bench-json`: what reading JSON bodies safely costs (issue 13), recorded in bench/RESULTS.md.
#   build/bench/json_bench (Google Benchmark), BENCH_REPETITIONS repetitions of each case, medians compared:
#   - json::parse (iterative, depth limit, duplicate keys refused, UTF-8 checked) against RapidJSON's
#     Document::Parse as Troupe called it before (recursive, nothing checked), on a 2 KiB chat completion request
#     and on a batch of 1000 funnel events;
#   - the gateway's whole reading of a chat request, before (parse, validate, cache key over a key-sorted copy,
#     the client's bytes copied) and now (parse, allow-list validation writing the canonical body and its hash);
#   - what refusing a body nested a million levels deep costs now (before: the process died).
# Target: now <= 1.05x before on each typical body (the parser is not slower; 5% is the noise of this machine).
# Knobs: BENCH_REPETITIONS=9, BENCH_MIN_TIME=0.5 (seconds per repetition), BENCH_SKIP_BUILD=1, BENCH_RESULTS (file).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"
REPETITIONS=${BENCH_REPETITIONS:-9}
MIN_TIME=${BENCH_MIN_TIME:-0.5}
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
BENCH_NAME=bench-json
# shellcheck source=bench/lib.sh
source bench/lib.sh

build_release json_bench
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/out/json-$stamp
mkdir -p "$out"

build/bench/json_bench --benchmark_repetitions="$REPETITIONS" --benchmark_min_time="$MIN_TIME" \
  --benchmark_report_aggregates_only=true --benchmark_format=csv >"$out/json_bench.csv" 2>"$out/json_bench.log" ||
  die "json_bench failed; see $out/json_bench.log"
# The median of a case: the "name_median" row; column 4 is cpu_time (ns; CPU time, since the machine is shared),
# column 6 bytes_per_second.
median_ns() { awk -F, -v n="\"$1_median\"" '$1 == n { printf "%.0f", $4 }' "$out/json_bench.csv"; }
mbps() { awk -F, -v n="\"$1_median\"" '$1 == n && $6 != "" { printf "%.0f", $6 / 1048576 }' "$out/json_bench.csv"; }
for c in Parse_ChatRequest Parse_EventBatch1000 ChatRequest; do
  [[ -n $(median_ns "${c}_Before") && -n $(median_ns "${c}_Now") ]] || die "no median for $c in $out/json_bench.csv"
done
ratio() { awk -v a="$(median_ns "$1_Now")" -v b="$(median_ns "$1_Before")" 'BEGIN { printf "%.3f", a / b }'; }
verdict() { awk -v r="$1" 'BEGIN { print (r <= 1.05) ? "PASS" : "MISS" }'; }
row() {
  local c=$1 what=$2 r
  r=$(ratio "$c")
  echo "| $what | $(median_ns "${c}_Before") ns ($(mbps "${c}_Before") MiB/s) | $(median_ns "${c}_Now") ns ($(mbps "${c}_Now") MiB/s) | ${r}x | $(verdict "$r") |"
}

machine_facts
{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC'): safe JSON parsing (depth limit, duplicate keys, UTF-8) vs RapidJSON's default parse"
  echo
  echo "- command: \`make bench-json\` (build/bench/json_bench --benchmark_repetitions=$REPETITIONS --benchmark_min_time=$MIN_TIME; medians of CPU time per body)"
  echo "- machine: $cpu, $(nproc) CPUs shared with other work (noisy), $mem, kernel $(uname -r); commit $commit"
  echo "- bodies: a 2 KiB chat completion request (4 messages, non-ASCII text); {\"events\":[...]} of 1000 events (~190 KB)"
  echo
  echo "| case | before | now | now/before | now <= 1.05x before |"
  echo "|---|---|---|---|---|"
  row Parse_ChatRequest "parse a 2 KiB chat request"
  row Parse_EventBatch1000 "parse a 1000-event batch"
  row ChatRequest "gateway: parse + validate + cache key + body to forward (2 KiB chat request)"
  echo "| refuse a body nested 1,000,000 levels (1 MB of \`[\`) | the process died (stack overflow) | $(median_ns Refuse_MillionLevelsDeep_Now) ns | - | - |"
} | tee -a "$RESULTS"
