#!/usr/bin/env bash
# Resolves the Apache Kafka broker jars and a log4j backend from Maven Central into a cache
# outside the build tree, and prints the directory that holds them as the last line of stdout.
#
#   libs=$(scripts/kafka-fetch.sh | tail -1)
#   java -cp "$libs/*" kafka.Kafka server.properties
#
# Usage: kafka-fetch.sh [--version V] [--force] [--help]
#   --version V   Kafka version (default: kafka.version in scripts/kafka/pom.xml,
#                 or $CAFES_KAFKA_VERSION when set)
#   --force       resolve again even if the cache is complete
#
# Cache: ${CAFES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cafes}/kafka-<version>/libs
# The libs directory appears only once complete (resolved into a temporary directory, then
# renamed), so a second run finds it and resolves nothing. Concurrent runs serialise on a lock.
# Progress goes to stderr; stdout carries only the libs directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pom="$here/kafka/pom.xml"
dependency_plugin=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

say() { printf 'kafka-fetch: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

version=${CAFES_KAFKA_VERSION:-}
force=0
while (($#)); do
  case $1 in
    --version) (($# >= 2)) || die "--version needs a value"; version=$2; shift 2 ;;
    --version=*) version=${1#*=}; shift ;;
    --force) force=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[[ -f $pom ]] || die "missing $pom"
if [[ -z $version ]]; then
  version=$(sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' "$pom" | head -1)
  [[ -n $version ]] || die "no <kafka.version> in $pom"
fi
[[ $version =~ ^[0-9A-Za-z._-]+$ ]] || die "bad version: $version"

cache_root=${CAFES_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cafes}
base="$cache_root/kafka-$version"
libs="$base/libs"
marker="$libs/.cafes-complete"

# The marker records what was resolved: a changed pom (say, a new log4j) resolves again.
fingerprint="kafka=$version pom-sha256=$(sha256sum "$pom" | cut -d' ' -f1)"

is_complete() { [[ -f $marker && $(cat "$marker") == "$fingerprint" ]]; }

if ((!force)) && is_complete; then
  printf '%s\n' "$libs"
  exit 0
fi

mkdir -p "$base"
# Serialise concurrent fetches (parallel test fixtures) on one lock per version.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$base/.lock"
  flock 9
  if ((!force)) && is_complete; then # another run finished it while we waited
    printf '%s\n' "$libs"
    exit 0
  fi
fi

command -v mvn >/dev/null 2>&1 || die "mvn not found (run scripts/deps.sh)"

tmp=$(mktemp -d "$base/.tmp.XXXXXX")
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

# Run Maven in a scratch copy of the pom so that nothing is written next to the sources.
cp "$pom" "$tmp/pom.xml"
say "resolving Kafka $version from Maven Central into $libs"
start=$SECONDS
# Debian's Maven 3.8 prints colour resets even with -B, so its output is kept in a file and
# shown (without escape sequences) only when it fails.
if ! (cd "$tmp" && mvn -B -q -Dstyle.color=never -Dkafka.version="$version" \
  "$dependency_plugin:copy-dependencies" \
  -DoutputDirectory="$tmp/libs" -DincludeScope=runtime >"$tmp/mvn.log" 2>&1); then
  sed 's/\x1b\[[0-9;]*m//g' "$tmp/mvn.log" >&2
  die "mvn could not resolve the Kafka $version jars (see above)"
fi

for jar in "kafka_2.13-$version.jar" "kafka-clients-$version.jar"; do
  [[ -f $tmp/libs/$jar ]] || die "resolved set lacks $jar"
done
compgen -G "$tmp/libs/log4j-core-*.jar" >/dev/null || die "resolved set lacks log4j-core"
compgen -G "$tmp/libs/log4j-slf4j-impl-*.jar" >/dev/null || die "resolved set lacks log4j-slf4j-impl"
printf '%s\n' "$fingerprint" >"$tmp/libs/.cafes-complete"

# Swap the complete directory in; an older one (different fingerprint) is moved aside first.
if [[ -e $libs ]]; then
  mv "$libs" "$tmp/old-libs"
fi
mv "$tmp/libs" "$libs"
say "resolved $(find "$libs" -name '*.jar' | wc -l) jars in $((SECONDS - start)) s"
printf '%s\n' "$libs"
