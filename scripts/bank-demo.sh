#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and runs the demo on the
# embedded mock cluster (no broker needed; nothing is durable).
#
# Usage: bank-demo.sh [demo arguments...]      e.g. --commands 100000 --json; --help lists them
# Environment: CAFES_BUILD_DIR, CAFES_JOBS
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
bash "$here/build.sh"
build_dir=${CAFES_BUILD_DIR:-$root/build/default}
exec "$build_dir/samples/bank/bank" demo "$@"
