#!/usr/bin/env bash
# Installs what is missing, then configures and builds cafes (Ninja, 2 jobs).
#
# Usage: build.sh [--preset NAME]      default: release-like build in build/default
# Environment: CAFES_BUILD_DIR (build directory), CAFES_JOBS (parallel jobs, default 2)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

bash "$here/deps.sh"
build_dir=${CAFES_BUILD_DIR:-$root/build/default}
jobs=${CAFES_JOBS:-2}
if [[ ${1:-} == --preset ]]; then
  cmake --preset "$2" -S "$root"
  cmake --build --preset "$2" -j "$jobs"
  exit 0
fi
if [[ ! -f $build_dir/CMakeCache.txt ]]; then
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build_dir" -j "$jobs"
