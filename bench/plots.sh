#!/usr/bin/env bash
# `make bench-plots`: draws the series recorded in bench/RESULTS.md as PNGs under bench/plots/ (gnuplot, pngcairo),
# one point per recorded run in the order of the file, labelled with the run's date. Rerun it after a benchmark
# appends a section; the PNGs are committed with the results they show.
#
#   http.png         GET /health: Troupe/nginx req/s (bench-http)                          target 0.6x
#   auth.png         GET /api/me vs GET /health req/s (bench-auth, bench-cache, bench-path)  target 0.8x (0.7x path)
#   gateway.png      AI gateway at -c64: Troupe, Portkey req/s; cache hit vs nginx (bench-gateway)
#   latency.png      AI gateway: added p50 and p99 over the mock at -c4 (bench-gateway)   target p50 <= 0.3 ms
#   overload.png     admitted p99 / unloaded p99 under 3x overload, /api/me and gateway (bench-overload)  target 5x
#   connections.png  RSS per held connection (idle, SSE, WebSocket) and the /health p99 multiple (bench-connections)
#   smoke.png        the bench-smoke ratios, when runs were recorded with BENCH_RECORD=1 (make test never does)
#
# Knobs: BENCH_RESULTS (default bench/RESULTS.md), PLOTS_DIR (default bench/plots).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"
RESULTS=${BENCH_RESULTS:-bench/RESULTS.md}
PLOTS=${PLOTS_DIR:-bench/plots}
BENCH_NAME=bench-plots
log() { echo "$BENCH_NAME: $*" >&2; }

TROUPE_DEPS=test scripts/install-deps
command -v gnuplot >/dev/null || { log "gnuplot is not installed (scripts/install-deps installs gnuplot-nox)"; exit 1; }
[[ -s $RESULTS ]] || { log "$RESULTS is missing or empty"; exit 1; }
mkdir -p "$PLOTS"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/troupe-plots.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

# extract KIND: one line per recorded run of that kind, "n label value..." (n counts the runs; label is the section's
# date, e.g. 11-21; a figure the section does not have is NaN, a gap in the plot).
extract() {
  awk -v kind="$1" '
    function date_of(h,   m) {
      if (match(h, /20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]/)) return substr(h, RSTART + 5, 5)
      if (match(h, /20[0-9][0-9][0-9][0-9][0-9][0-9]T/)) return substr(h, RSTART + 4, 2) "-" substr(h, RSTART + 6, 2)
      return "?"
    }
    function flush() {
      if (section != kind) return
      n++
      printf "%d %s", n, label
      for (i = 1; i <= fields; i++) printf " %s", (i in v) ? v[i] : "NaN"
      printf "\n"
    }
    function num(s) { gsub(/[^0-9.+-]/, "", s); return s + 0 }
    /^## / {
      flush(); delete v; label = date_of($0); section = ""
      if ($0 ~ /HTTP GET \/health, Troupe vs nginx/) { section = "http"; fields = 1 }
      else if ($0 ~ /authentication and rate limiting cost|cached HTTP route vs GET \/health|^## bench-path/) { section = "auth"; fields = 1 }
      else if ($0 ~ /AI gateway, Troupe vs the mock/) { section = "gateway"; fields = 5 }
      else if ($0 ~ /overload and slow clients/) { section = "overload"; fields = 2 }
      else if ($0 ~ /^## bench-connections/) { section = "connections"; fields = 4 }
      else if ($0 ~ /^## bench-smoke/) { section = "smoke"; fields = 3 }
      next
    }
    section == "http" && /^Troupe\/nginx req\/s:/ { v[1] = num($3) }
    section == "auth" && /\/api\/me >= 0\.[78]x \/health/ { split($0, c, "|"); v[1] = num(c[3]) }
    section == "auth" && /\/api\/me \/ health:/ { match($0, /\/api\/me \/ health: [0-9.]+/); s = substr($0, RSTART, RLENGTH); sub(/.*: /, "", s); v[1] = s + 0 }
    section == "gateway" && /^Throughput at -c64:/ {
      match($0, /troupe [0-9]+/); v[1] = num(substr($0, RSTART, RLENGTH))
      match($0, /portkey [0-9]+/); v[2] = num(substr($0, RSTART, RLENGTH))
    }
    section == "gateway" && /^Cache hit at -c64:/ { match($0, /: [0-9.]+x$/); v[3] = num(substr($0, RSTART, RLENGTH)) }
    section == "gateway" && /^-c4 p50 \+/ {
      match($0, /-c4 p50 \+[0-9.]+/); s = substr($0, RSTART, RLENGTH); sub(/.*\+/, "", s); v[4] = s + 0
      match($0, /p99 \+[0-9.]+/); s = substr($0, RSTART, RLENGTH); sub(/.*\+/, "", s); v[5] = s + 0
    }
    section == "overload" && /^\| me: admitted p99 <= 5x/ { split($0, c, "|"); split(c[3], w, "x"); v[1] = num(w[1]) }
    section == "overload" && /^\| gateway: admitted p99 <= 5x/ { split($0, c, "|"); split(c[3], w, "x"); v[2] = num(w[1]) }
    section == "connections" && /^\| RSS per idle keep-alive connection/ { split($0, c, "|"); v[1] = num(c[3]) }
    section == "connections" && /^\| RSS per event stream/ { split($0, c, "|"); v[2] = num(c[3]) }
    section == "connections" && /^\| RSS per WebSocket/ { split($0, c, "|"); v[3] = num(c[3]) }
    section == "connections" && /^\| \/health p99 without \/ with them/ { match($0, /\([0-9.]+ x\)/); v[4] = num(substr($0, RSTART, RLENGTH)) }
    section == "smoke" && /^\| \/api\/me vs \/health/ { split($0, c, "|"); v[1] = num(c[3]) }
    section == "smoke" && /^\| chat through Troupe vs the mock direct/ { split($0, c, "|"); v[2] = num(c[3]) }
    section == "smoke" && /^\| cached chat vs \/health/ { split($0, c, "|"); v[3] = num(c[3]) }
    END { flush() }
  ' "$RESULTS"
}

# plot NAME TITLE YLABEL "column:title[:style]"... [-- extra gnuplot lines]: one PNG from $tmp/NAME.dat.
plot() {
  local name=$1 title=$2 ylabel=$3 series=() extra=() seen_dashes=0
  shift 3
  for a in "$@"; do
    if [[ $a == -- ]]; then seen_dashes=1; continue; fi
    if ((seen_dashes)); then extra+=("$a"); else series+=("$a"); fi
  done
  local dat=$tmp/$name.dat
  if [[ ! -s $dat ]]; then
    log "no recorded run for $name.png; skipped"
    return 0
  fi
  local plot_cmd="plot "
  local first=1
  for s in "${series[@]}"; do
    IFS=: read -r column label <<<"$s"
    ((first)) || plot_cmd+=", "
    plot_cmd+="'$dat' using 1:$column:xtic(2) with linespoints title '$label'"
    first=0
  done
  {
    echo "set terminal pngcairo size 1000,420 font 'sans,10'"
    echo "set output '$PLOTS/$name.png'"
    echo "set title '$title'"
    echo "set ylabel '$ylabel'"
    echo "set xlabel 'recorded runs (date, MM-DD)'"
    echo "set grid ytics"
    echo "set key outside right top"
    echo "set xtics rotate by -45 font ',8'"
    echo "set datafile missing 'NaN'"
    echo "set yrange [0:*]"
    printf '%s\n' "${extra[@]}"
    echo "$plot_cmd"
  } >"$tmp/$name.gp"
  gnuplot "$tmp/$name.gp"
  log "$PLOTS/$name.png ($(wc -l <"$dat") runs)"
}

for kind in http auth gateway overload connections smoke; do extract "$kind" >"$tmp/$kind.dat"; done
cp "$tmp/gateway.dat" "$tmp/latency.dat"
cp "$tmp/gateway.dat" "$tmp/gateway_hit.dat"

plot http "GET /health: Troupe req/s over nginx (bench-http)" "ratio" "3:Troupe/nginx" -- "set arrow from graph 0, first 0.6 to graph 1, first 0.6 nohead dt 2 lc rgb '#c0262d'" "set label 'target 0.6x' at graph 0.01, first 0.62"
plot auth "GET /api/me over GET /health req/s (bench-auth, bench-cache, bench-path)" "ratio" "3:/api/me / health" -- "set arrow from graph 0, first 0.8 to graph 1, first 0.8 nohead dt 2 lc rgb '#c0262d'" "set label 'target 0.8x' at graph 0.01, first 0.82"
plot gateway "AI gateway at -c64: req/s (bench-gateway)" "req/s" "3:Troupe (never cached)" "4:Portkey"
plot gateway_hit "AI gateway: cache-hit chat completion over nginx return 200 at -c64 (bench-gateway)" "ratio" "5:cache hit / nginx" -- "set arrow from graph 0, first 0.4 to graph 1, first 0.4 nohead dt 2 lc rgb '#c0262d'" "set label 'target 0.4x' at graph 0.01, first 0.42"
plot latency "AI gateway: latency added over the mock at -c4 (bench-gateway)" "ms" "6:added p50" "7:added p99" -- "set arrow from graph 0, first 0.3 to graph 1, first 0.3 nohead dt 2 lc rgb '#c0262d'" "set label 'target p50 0.3 ms' at graph 0.01, first 0.45"
plot overload "Admitted p99 under 3x overload, as a multiple of the unloaded p99 (bench-overload)" "x unloaded p99" "3:/api/me" "4:gateway" -- "set arrow from graph 0, first 5 to graph 1, first 5 nohead dt 2 lc rgb '#c0262d'" "set label 'target 5x' at graph 0.01, first 6"
plot connections "Held connections: RSS per connection, and /health p99 while held (bench-connections)" "KiB / x" "3:KiB per idle" "4:KiB per SSE" "5:KiB per WebSocket" "6:/health p99 multiple"
plot smoke "bench-smoke ratios (recorded runs)" "ratio" "3:/api/me / health" "4:chat / mock direct" "5:cache hit / health"
