#!/usr/bin/env bash
# The bank cluster: a Kafka cluster (3 brokers, replication 3, min.insync.replicas 2) and bank
# nodes in cluster mode that share the partitions through the namespace's consumer group.
#
# Usage:
#   bank-cluster.sh start  [--nodes N] [--brokers 1|3] [--partitions P] [--standby N] [--dir DIR] [--no-build]
#   bank-cluster.sh stop   [--dir DIR]      SIGTERM the nodes (they release their partitions), then the brokers
#   bank-cluster.sh status [--dir DIR]      one line per node and broker; exit 0 only if all run
#
# start installs what is missing and builds (unless --no-build), starts the brokers, then N
# nodes (default 3) named node-1..node-N with --standby hot standby replicas of each
# partition (default 1), and prints each node's HTTP address. Then run the
# demo's workload across them:
#   build/default/samples/bank/bank demo --nodes 127.0.0.1:PORT1,127.0.0.1:PORT2,...
# DIR (default build/bank-cluster) holds the brokers' data and each node's port, pid and log.
#
# Environment: CAFES_BUILD_DIR, CAFES_KAFKA_LIBS, CAFES_TIMEOUT_SCALE (see scripts/broker.sh)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

say() { printf 'bank-cluster: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

(($#)) || { usage >&2; exit 2; }
cmd=$1
shift
dir=$root/build/bank-cluster
nodes=3
brokers=3
partitions=12
standby=1
build=1
while (($#)); do
  case $1 in
    --dir | --nodes | --brokers | --partitions | --standby)
      (($# >= 2)) || die "$1 needs a value"
      case $1 in
        --dir) dir=$2 ;;
        --nodes) nodes=$2 ;;
        --standby) standby=$2 ;;
        --brokers) brokers=$2 ;;
        --partitions) partitions=$2 ;;
      esac
      shift 2
      ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ $nodes =~ ^[1-9][0-9]?$ ]] || die "--nodes must be 1 to 99"
[[ $brokers == 1 || $brokers == 3 ]] || die "--brokers must be 1 or 3"
[[ $partitions =~ ^[1-9][0-9]*$ ]] || die "--partitions must be a positive number"
build_dir=${CAFES_BUILD_DIR:-$root/build/default}
bank=$build_dir/samples/bank/bank
scale=${CAFES_TIMEOUT_SCALE:-1}

# Prints the PID in FILE if that process still runs a bank node.
running_pid() {
  local pid
  [[ -f $1 ]] || return 1
  pid=$(<"$1")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && grep -q bank "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

start() {
  if ((build)); then bash "$here/build.sh" >&2; fi
  [[ -x $bank ]] || die "no bank binary at $bank (build first)"
  local libs
  libs=${CAFES_KAFKA_LIBS:-$(bash "$here/kafka-fetch.sh" | tail -n1)}
  mkdir -p "$dir"
  CAFES_KAFKA_LIBS=$libs bash "$here/broker.sh" start --dir "$dir/kafka" --nodes "$brokers" >/dev/null
  local bootstrap isr=1
  bootstrap=$(<"$dir/kafka/bootstrap")
  ((brokers == 3)) && isr=2
  local i
  for ((i = 1; i <= nodes; i++)); do
    local nd=$dir/node-$i
    mkdir -p "$nd"
    if running_pid "$nd/pid" >/dev/null; then
      say "node-$i already runs"
      continue
    fi
    rm -f "$nd/port"
    "$bank" node --bootstrap "$bootstrap" --namespace bank --node-name "node-$i" --mode transactional --cluster \
      --partitions "$partitions" --replication "$brokers" --min-insync-replicas "$isr" --standby-replicas "$standby" --port 0 \
      --port-file "$nd/port" >>"$nd/stdout.log" 2>>"$nd/node.log" &
    printf '%s\n' "$!" >"$nd/pid"
  done
  local deadline=$((SECONDS + ${scale%.*} * 120 + 120))
  for ((i = 1; i <= nodes; i++)); do
    local nd=$dir/node-$i
    until [[ -s $nd/port ]]; do
      running_pid "$nd/pid" >/dev/null || die "node-$i stopped; see $nd/node.log"
      ((SECONDS < deadline)) || die "node-$i did not start in time; see $nd/node.log"
      sleep 0.2
    done
  done
  status
}

status() {
  local all=0 i addrs=()
  for ((i = 1; i <= 99; i++)); do
    local nd=$dir/node-$i
    [[ -d $nd ]] || break
    if running_pid "$nd/pid" >/dev/null && [[ -s $nd/port ]]; then
      printf 'node-%d  http://127.0.0.1:%s  (pid %s, log %s)\n' "$i" "$(<"$nd/port")" "$(<"$nd/pid")" "$nd/node.log"
      addrs+=("127.0.0.1:$(<"$nd/port")")
    else
      printf 'node-%d  not running\n' "$i"
      all=1
    fi
  done
  bash "$here/broker.sh" status --dir "$dir/kafka" || all=1
  if ((${#addrs[@]})); then
    local IFS=,
    printf 'demo:    %s demo --nodes %s\n' "$bank" "${addrs[*]}"
  fi
  return $all
}

stop() {
  local i
  for ((i = 1; i <= 99; i++)); do
    local nd=$dir/node-$i pid
    [[ -d $nd ]] || break
    if pid=$(running_pid "$nd/pid"); then
      kill -TERM "$pid"
      local deadline=$((SECONDS + 60))
      while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      say "node-$i stopped"
    fi
    rm -f "$nd/pid" "$nd/port"
  done
  [[ -d $dir/kafka ]] && bash "$here/broker.sh" stop --dir "$dir/kafka" || true
}

case $cmd in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "unknown command: $cmd (see --help)" ;;
esac
