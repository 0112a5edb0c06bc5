#!/usr/bin/env bash
# Runs one libFuzzer target of tests/fuzz: its checked-in seed corpus first, then new inputs for SECONDS.
#   tests/fuzz/run_fuzzer.sh BINARY FUZZ_SOURCE_DIR NAME WORK_DIR SECONDS
# Inputs libFuzzer finds interesting go to WORK_DIR/NAME (never into the checked-in corpus/NAME); a crash, leak,
# timeout or out-of-memory input is saved under WORK_DIR/NAME-artifacts/ and the exit status is non-zero.
# libFuzzer's final statistics (executions, executions per second, new units, peak RSS) end the output; the last
# status line before them gives the coverage ("cov:" edges, "ft:" features).
set -euo pipefail

if [[ $# -ne 5 ]]; then
  sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
binary=$1 source=$2 name=$3 work=$4 seconds=$5
[[ -x $binary ]] || { echo "run_fuzzer: $binary is not built (cmake --build build --target troupe_fuzzers)" >&2; exit 1; }
[[ -d $source/corpus/$name ]] || { echo "run_fuzzer: no seed corpus $source/corpus/$name" >&2; exit 1; }

# Sanitizer reports abort (libFuzzer keeps the input), with a stack; see ubsan.supp for the one suppression.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$source/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}

corpus=$work/$name
artifacts=$work/$name-artifacts
mkdir -p "$corpus" "$artifacts"
args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048
      -artifact_prefix="$artifacts/")
if [[ -f $source/dict/$name.dict ]]; then
  args+=(-dict="$source/dict/$name.dict")
fi
exec "$binary" "${args[@]}" "$corpus" "$source/corpus/$name"
