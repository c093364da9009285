#!/usr/bin/env bash
# Runs every benchmark against a private real broker and writes the results.
#
# Usage: bench.sh [--smoke] [--seconds S] [--only NAME] [--out DIR]
#   --only NAME one benchmark (persist, recovery, memory, hot, embedded, handoff, routed, startup)
#   --out DIR   where results.jsonl, table.txt, persist.dat and the plots go (default build/bench-results)
# Installs gnuplot (for the persist plots) if it is missing, like deps.sh does for the rest.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
out=$root/build/bench-results
args=()
only=all
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --smoke) args+=(--smoke); shift ;;
    --seconds) args+=(--seconds "$2"); shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
  esac
done

bash "$here/build.sh"
plots=false
[[ $only == all || $only == persist ]] && plots=true
if $plots && ! command -v gnuplot >/dev/null 2>&1; then
  sudo_cmd=(); [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null
fi
build_dir=${CAFES_BUILD_DIR:-$root/build/default}
libs=$(bash "$here/kafka-fetch.sh" | tail -n 1)
run=$(mktemp -d "${TMPDIR:-/tmp}/cafes-bench.XXXXXX")
trap 'bash "$here/broker.sh" stop --dir "$run/broker" >/dev/null 2>&1 || true; rm -rf "$run"' EXIT
CAFES_KAFKA_LIBS=$libs bash "$here/broker.sh" start --dir "$run/broker" >/dev/null
mkdir -p "$out"
"$build_dir/bench/cafes_bench" --bootstrap "$(cat "$run/broker/bootstrap")" --plot-data "$out/persist.dat" \
  --only "$only" "${args[@]}" \
  > "$out/results.jsonl" 2> >(grep -v '^\[20\|^%' | tee "$out/table.txt" >&2)
if $plots && [[ -s $out/persist.dat ]]; then
  gnuplot <<GP
set terminal pngcairo size 1100,420 font ",10"
set output "$out/persist.png"
set multiplot layout 1,2 title "cafes persist (idempotent, 100 aggregates, events of about 100 B) vs raw librdkafka, same broker, same run"
set xlabel "concurrent commands (closed loop)"
set logscale x 2
set ylabel "events/s"
set key left top
plot "$out/persist.dat" using 1:2 with linespoints title "cafes", "" using 1:3 with linespoints title "raw producer"
set ylabel "latency (ms)"
set logscale y 10
plot "$out/persist.dat" using 1:4 with linespoints title "cafes p50", "" using 1:5 with linespoints title "cafes p99", \
     "" using 1:6 with linespoints title "cafes p999", "" using 1:7 with lines dt 2 title "raw p50", \
     "" using 1:8 with lines dt 2 title "raw p99", "" using 1:9 with lines dt 2 title "raw p999"
unset multiplot
GP
fi
echo "bench: results in $out (results.jsonl, table.txt, persist.png)"
