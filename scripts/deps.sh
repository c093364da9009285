#!/usr/bin/env bash
# Installs the Debian packages that building and testing cafes needs, and only those missing.
# Runs apt-get update only when something is missing; uses sudo only when not root.
# A Java 17+ and a Maven already on PATH (installed some other way) are accepted as they are.
#
# Usage: deps.sh [--check]    --check: only report what is missing (exit 1 if anything is)
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config
  libcaf-dev librdkafka-dev libmsgpack-cxx-dev libspdlog-dev catch2 libcli11-dev
  nlohmann-json3-dev libcpp-httplib-dev libbenchmark-dev libsqlite3-dev libssl-dev openssl
  prometheus-cpp-dev prometheus
  kcat openjdk-17-jre-headless maven doxygen
)

check_only=0
case ${1:-} in
  "") ;;
  --check) check_only=1 ;;
  -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) echo "deps: unknown argument: $1" >&2; exit 2 ;;
esac

java_ok() {
  local v
  command -v java >/dev/null 2>&1 || return 1
  v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  [[ -n $v ]] && ((v >= 17))
}

installed() {
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

missing=()
for p in "${packages[@]}"; do
  case $p in
    openjdk-17-jre-headless) java_ok && continue ;;
    maven) command -v mvn >/dev/null 2>&1 && continue ;;
  esac
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "deps: all ${#packages[@]} packages present, nothing to do"
  exit 0
fi
if ((check_only)); then
  echo "deps: missing: ${missing[*]}"
  exit 1
fi

sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null 2>&1 || { echo "deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { "${sudo[@]}" apt-get update &&
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "deps: apt-get failed installing: ${missing[*]}" >&2
  exit 1
fi
echo "deps: installed ${missing[*]}"
