#!/usr/bin/env bash
# Measures how long the getting-started example (samples/getting_started/main.cpp) takes to
# compile against the cafes headers, and how big the program it links into is.
#
# It compiles the file directly with the compiler (no cache, no build system), once per flag
# set and run, and reports the median: the front end alone, -O0 (what an edit-compile loop
# costs), -O0 with a precompiled header of the cafes headers the file includes (built once,
# outside the measurement, as a build system keeps it between edits), and the flags the build
# uses for the sample. Each object is linked against the build's libraries, and the program's
# size is given unstripped and stripped.
#
# Usage: compile-time.sh [--build-dir DIR] [--runs N] [--file SRC]
#   --build-dir  a configured and built cafes build directory (default: build/default); its
#                compile_commands.json gives the include directories, definitions and flags,
#                its build.ninja the libraries to link
#   --runs       compilations per flag set (default 5; the median is reported)
#   --file       the source to measure (default: samples/getting_started/main.cpp)
# Environment: CXX (default: the compiler the build directory uses, else g++)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build_dir=$root/build/default
runs=5
src=$root/samples/getting_started/main.cpp
while (($#)); do
  case $1 in
    --build-dir) build_dir=$(cd "$2" && pwd); shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --file) src=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "compile-time: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ -f $src ]] || { echo "compile-time: no such file: $src" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The sample's compile command, from the build directory; else the source tree's own
# include directories and the definitions the cafes targets carry.
rel=${src#"$root"/}
cmd=""
if [[ -f $build_dir/compile_commands.json ]]; then
  cmd=$(python3 - "$build_dir/compile_commands.json" "$rel" <<'EOF'
import json, sys
for e in json.load(open(sys.argv[1])):
    if e["file"].endswith(sys.argv[2]):
        print(e["command"])
        break
EOF
)
fi
defs=() incs=() build_flags=() cxx=${CXX:-}
if [[ -n $cmd ]]; then
  read -r -a words <<<"$cmd"
  [[ -z $cxx ]] && cxx=${words[0]}
  skip=0
  for w in "${words[@]:1}"; do
    if ((skip)); then skip=0; continue; fi
    case $w in
      -o | -c | -MF | -MT | -MQ) skip=1 ;;
      -D*) defs+=("$w") ;;
      -I* | -isystem*) incs+=("$w") ;;
      -std=*) build_flags+=("$w") ;;
      -O* | -g*) build_flags+=("$w") ;;
      -W* | -f* | -m* | -pthread) build_flags+=("$w") ;;
      "$src") ;;
      *) ;;
    esac
  done
else
  [[ -z $cxx ]] && cxx=g++
  defs=(-DMSGPACK_NO_BOOST -DMSGPACK_DEFAULT_API_VERSION=3 -DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL -DFMT_SHARED
    -DSPDLOG_SHARED_LIB)
  incs=(-I"$root/runtime/include" -I"$root/actors/include" -I"$root/persistence/include")
  build_flags=(-std=c++20 -O2 -g -DNDEBUG)
fi
std=-std=c++20
for f in "${build_flags[@]}"; do [[ $f == -std=* ]] && std=$f; done
# The flags of the build without its warnings-as-errors: only the code generation matters here.
gen_flags=()
for f in "${build_flags[@]}"; do [[ $f == -W* ]] || gen_flags+=("$f"); done

# The libraries the build links the sample with (from build.ninja), if there is one.
libs=()
if [[ -f $build_dir/build.ninja ]]; then
  target=$(basename "$(dirname "$src")")
  line=$(awk -v t="$target" '
    $1 == "build" && index($0, "/" t ":") { found = 1; next }
    found && /LINK_LIBRARIES/ { sub(/^[ \t]*LINK_LIBRARIES = /, ""); print; exit }
    found && $1 == "build" { found = 0 }' "$build_dir/build.ninja")
  for l in $line; do
    [[ $l == /* || $l == -* ]] && libs+=("$l") || libs+=("$build_dir/$l")
  done
fi

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
now() { date +%s.%N; }
size_of() { stat -c %s "$1"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1048576 }'; }

# A precompiled header of the cafes headers the file includes (and what it includes before them).
pch_dir=$work/pch
mkdir -p "$pch_dir"
grep -E '^#include <' "$src" >"$pch_dir/cafes_pch.hpp"
pch_ok=0
if grep -q '<cafes/' "$pch_dir/cafes_pch.hpp" &&
  "$cxx" "$std" -O0 "${defs[@]}" "${incs[@]}" -x c++-header "$pch_dir/cafes_pch.hpp" -o "$pch_dir/cafes_pch.hpp.gch"; then
  pch_ok=1
fi

# measure NAME LINK FLAGS...: compiles `runs` times, links once (LINK=1), prints one table row.
measure() {
  local name=$1 link=$2; shift 2
  local times=() t0 t1 i
  for ((i = 0; i < runs; i++)); do
    t0=$(now)
    "$cxx" "$std" "$@" "${defs[@]}" "${incs[@]}" -c "$src" -o "$work/main.o"
    t1=$(now)
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
  done
  local med unstripped="-" stripped="-"
  med=$(printf '%s\n' "${times[@]}" | median)
  if ((link && ${#libs[@]})); then
    "$cxx" "$@" "$work/main.o" -o "$work/prog" "${libs[@]}" -pthread
    unstripped=$(mb "$(size_of "$work/prog")")
    strip -o "$work/prog.stripped" "$work/prog"
    stripped=$(mb "$(size_of "$work/prog.stripped")")
  fi
  printf '%-34s %10s s %18s %16s\n' "$name" "$med" "$unstripped" "$stripped"
}

echo "file:      ${src#"$root"/}"
echo "compiler:  $("$cxx" --version | head -n1)"
echo "libraries: ${build_dir#"$root"/} ($(grep -s '^CMAKE_BUILD_TYPE:' "$build_dir/CMakeCache.txt" | cut -d= -f2 || echo '?'))"
echo "runs:      $runs (median)"
echo
printf '%-34s %12s %18s %16s\n' "flags" "compile" "binary" "stripped"
measure "-O0 -fsyntax-only (front end)" 0 -O0 -fsyntax-only
measure "-O0" 1 -O0
((pch_ok)) && measure "-O0, precompiled cafes headers" 0 -O0 -include "$pch_dir/cafes_pch.hpp" -Winvalid-pch
measure "build: ${gen_flags[*]}" 1 "${gen_flags[@]}"
