#!/usr/bin/env bash
# The README's second command: installs what is missing, builds, starts a real Kafka broker,
# runs every test (unit, integration, fault), stops the broker, and exits non-zero on failure.
#
# Usage: test-all.sh [ctest arguments...]     e.g. test-all.sh -L unit
# Environment: CAFES_TIMEOUT_SCALE (scales every timeout), CAFES_BUILD_DIR, CAFES_JOBS
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
start=$(date +%s)

bash "$here/build.sh"
build_dir=${CAFES_BUILD_DIR:-$root/build/default}
libs=$(bash "$here/kafka-fetch.sh" | tail -n 1)

run=$(mktemp -d "${TMPDIR:-/tmp}/cafes-test.XXXXXX")
broker_dir=$run/broker
cleanup() {
  local rc=$?
  if ((rc != 0)) && [[ -f $broker_dir/pids ]]; then
    echo "test-all: failed; the broker log's tail follows" >&2
    bash "$here/broker.sh" logs --dir "$broker_dir" --lines 40 >&2 2>/dev/null || true
  fi
  bash "$here/broker.sh" stop --dir "$broker_dir" >/dev/null 2>&1 || true
  rm -rf "$run"
  exit "$rc"
}
trap cleanup EXIT

# --secure: SSL and SASL_SSL listeners beside PLAINTEXT, for the security tests.
CAFES_KAFKA_LIBS=$libs bash "$here/broker.sh" start --dir "$broker_dir" --nodes 1 --secure >/dev/null
export CAFES_BOOTSTRAP_FILE=$broker_dir/bootstrap
export CAFES_BROKER_DIR=$broker_dir
export CAFES_KAFKA_LIBS=$libs
echo "test-all: broker at $(cat "$CAFES_BOOTSTRAP_FILE")"

for label in unit integration fault; do
  n=$(ctest --test-dir "$build_dir" -N -L "^$label\$" | sed -n 's/^Total Tests: //p')
  echo "test-all: $label tests: ${n:-0}"
done
ctest --test-dir "$build_dir" --output-on-failure -j "${CAFES_JOBS:-2}" "$@"
echo "test-all: passed in $(($(date +%s) - start)) s"
