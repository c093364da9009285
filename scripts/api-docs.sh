#!/usr/bin/env bash
# Builds the API reference (HTML) from the public headers of cafes with Doxygen
# (docs/api/Doxyfile): persistence/include, actors/include and runtime/include, without the
# detail namespaces. Any Doxygen warning (an undocumented public member, a broken comment)
# fails the build: the warnings are printed and the script exits 1.
#
# Usage: api-docs.sh [--out DIR]
#   --out  where the reference goes (default: build/api-docs); open DIR/index.html. A
#          directory that exists must be empty or an earlier reference: it is replaced.
# Environment: DOXYGEN (default: doxygen; scripts/deps.sh installs it)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
out=$root/build/api-docs
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "api-docs: unknown argument: $1" >&2; exit 2 ;;
  esac
done
doxygen=${DOXYGEN:-doxygen}
command -v "$doxygen" >/dev/null 2>&1 || { echo "api-docs: no $doxygen; bash scripts/deps.sh installs it" >&2; exit 2; }

mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
marker=.cafes-api-docs
if [[ -d $out && -n $(ls -A "$out") && ! -f $out/$marker ]]; then
  echo "api-docs: $out is neither empty nor an earlier API reference; not replacing it" >&2
  exit 2
fi

# Built beside the target, then swapped in: a failed build leaves the previous one in place.
work=$(mktemp -d "$(dirname "$out")/.api-docs.XXXXXX")
trap 'rm -rf "$work"' EXIT
version=$(sed -n 's/^project(cafes VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
set +e
(
  cat "$root/docs/api/Doxyfile"
  echo "PROJECT_NUMBER = $version"
  echo "OUTPUT_DIRECTORY = \"$work\""
  echo "HTML_OUTPUT = \"$work/html\""
  echo "WARN_LOGFILE = \"$work/warnings.log\""
) | (cd "$root" && "$doxygen" -) >"$work/doxygen.out" 2>&1
rc=$?
set -e

# Warnings go to the log; anything else Doxygen prints (a bad setting, a missing tool) counts too.
warnings=$(cat "$work/warnings.log" "$work/doxygen.out" 2>/dev/null | grep -v '^[[:space:]]*$' | sed "s|$root/||" || true)
if [[ -n $warnings || $rc -ne 0 ]]; then
  printf '%s\n' "$warnings" >&2
  echo "api-docs: $(printf '%s\n' "$warnings" | grep -c .) warning(s), doxygen exit status $rc: the reference is not built" >&2
  exit 1
fi

touch "$work/html/$marker"
rm -rf "$out"
mv "$work/html" "$out"
echo "api-docs: $out/index.html ($("$doxygen" --version | cut -d' ' -f1), no warnings)"
