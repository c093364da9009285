#!/usr/bin/env bash
# Runs the bank on a private real broker under seeded faults and checks that nothing
# acknowledged is lost and nothing is written twice. Prints one JSON line on stdout.
#
# Usage: chaos.sh [--seed N] [--minutes M] [--mode idempotent|transactional] [--nodes N]
#                 [--standby N] [--clients N] [--accounts N] [--no-build] [--keep]
#
#   --seed N       seed of the operations and of the fault plan (default: from the clock)
#   --minutes M    minutes of workload, fractions allowed: 0.5 (default 1)
#   --mode         the node's journal mode (default idempotent)
#   --nodes N      bank nodes (default 1); 2 or more run in cluster mode (transactional only)
#                  and add node pauses past the session timeout to the faults
#   --standby N    with several nodes: hot standby replicas per partition (default 1)
#   --clients N    concurrent clients (default 8)     --accounts N   accounts (default 16)
#   --no-build     use the binaries in the build directory as they are
#   --keep         keep the run directory (logs, operation log); it is kept on failure anyway
#
# The clients send random deposits, withdrawals and transfers over HTTP and retry every
# operation whose outcome is unknown with the same reference. Meanwhile the faults of a plan
# drawn from the seed strike: node SIGKILL and restart, broker SIGKILL and restart, broker
# SIGSTOP for longer than the node's delivery timeout. Every run of two or more faults has
# at least one node kill and one broker fault (with several nodes: one node kill and one node
# pause, each of a random node; clients move to another node after an unknown outcome). At
# the end the nodes restart cleanly (and
# resumes pending transfers), answers every balance, stops, and the journal is read with a
# plain librdkafka consumer and checked: each acknowledged operation is in it exactly once,
# no rejected one is, an unknown one at most once; the answered balances equal the journal's
# fold; money is conserved; no transfer is pending; seqs have no gaps. The read side (the
# projections every bank node runs) has caught up and equals the journal: the account state
# topic holds each account's balance and owner, the enriched transfers topic one record per
# started transfer with both owners.
#
# Exit status: 0 if every check holds, 1 on a violation, 2 if the run could not be set up.
# Environment: CAFES_BUILD_DIR, CAFES_KAFKA_LIBS, CAFES_TIMEOUT_SCALE (scales every wait).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

say() { printf 'chaos: %s\n' "$*" >&2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

seed=$(($(date +%s%N) / 1000 % 1000000000))
minutes=1
mode=idempotent
nodes=1
standby=1
clients=8
accounts=16
build=1
keep=0
while (($#)); do
  case $1 in
    --seed | --minutes | --mode | --nodes | --standby | --clients | --accounts)
      (($# >= 2)) || { say "$1 needs a value"; exit 2; }
      case $1 in
        --seed) seed=$2 ;;
        --minutes) minutes=$2 ;;
        --mode) mode=$2 ;;
        --nodes) nodes=$2 ;;
        --standby) standby=$2 ;;
        --clients) clients=$2 ;;
        --accounts) accounts=$2 ;;
      esac
      shift 2
      ;;
    --no-build) build=0; shift ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) say "unknown argument: $1 (see --help)"; exit 2 ;;
  esac
done
[[ $seed =~ ^[0-9]{1,18}$ ]] || { say "--seed must be a non-negative integer"; exit 2; }
[[ $minutes =~ ^[0-9]*\.?[0-9]+$ ]] && awk -v m="$minutes" 'BEGIN { exit !(m > 0 && m <= 1440) }' ||
  { say "--minutes must be a number above 0 (at most 1440)"; exit 2; }
[[ $mode == idempotent || $mode == transactional ]] || { say "--mode must be idempotent or transactional"; exit 2; }
[[ $nodes =~ ^[0-9]+$ ]] && ((nodes >= 1 && nodes <= 5)) || { say "--nodes must be 1 to 5"; exit 2; }
[[ $standby =~ ^[0-9]+$ ]] && ((standby <= 16)) || { say "--standby must be 0 to 16"; exit 2; }
((nodes == 1)) || [[ $mode == transactional ]] ||
  { say "--nodes $nodes runs a cluster, which needs --mode transactional (idempotent producers cannot fence)"; exit 2; }
[[ $clients =~ ^[0-9]+$ ]] && ((clients >= 1 && clients <= 256)) || { say "--clients must be 1 to 256"; exit 2; }
[[ $accounts =~ ^[0-9]+$ ]] && ((accounts >= 2 && accounts <= 100000)) || { say "--accounts must be 2 to 100000"; exit 2; }
minutes=$(awk -v m="$minutes" 'BEGIN { printf "%g", m }') # 0.5, not .5, in the JSON
scale=${CAFES_TIMEOUT_SCALE:-1}
[[ $scale =~ ^[0-9]*\.?[0-9]+$ ]] || { say "CAFES_TIMEOUT_SCALE must be a positive number"; exit 2; }
scaled() { awk -v b="$1" -v s="$scale" 'BEGIN { t = int(b * s + 0.5); print (t < 1 ? 1 : t) }'; }
say "seed $seed, $minutes minute(s), $mode mode, $nodes node(s)"

# ---------------------------------------------------------------------------------------------
# binaries, run directory, cleanup

build_dir=${CAFES_BUILD_DIR:-$root/build/default}
if ((build)); then bash "$here/build.sh" >&2; fi
bank=$build_dir/samples/bank/bank
driver=$build_dir/samples/bank/chaos/bank_chaos_driver
verifier=$build_dir/samples/bank/chaos/bank_chaos_verify

run=$(mktemp -d "${TMPDIR:-/tmp}/cafes-chaos.XXXXXX")
ns=chaos-$seed-$$
node_pids=()
driver_pid=
result=2
printed=0
cleanup() {
  local rc=$?
  # A run that ends by surprise (a bug of this script) still prints its one JSON line.
  ((printed)) || printf '{"seed":%s,"mode":"%s","minutes":%s,"error":"chaos.sh failed with status %s","ok":false}\n' \
    "$seed" "$mode" "$minutes" "$rc"
  [[ -n $driver_pid ]] && kill -KILL "$driver_pid" 2>/dev/null
  for pid in "${node_pids[@]}"; do [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null; done
  bash "$here/broker.sh" stop --dir "$run/broker" >/dev/null 2>&1 || true
  if ((keep || result != 0)); then say "logs kept in $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ends a run that could not be set up, with its one JSON line.
die() {
  say "error: $*"
  printf '{"seed":%s,"mode":"%s","minutes":%s,"nodes":%s,"error":"%s","ok":false}\n' "$seed" "$mode" "$minutes" \
    "$nodes" "${*//\"/\'}"
  printed=1
  exit 2
}

for b in "$bank" "$driver" "$verifier"; do [[ -x $b ]] || die "$b is not built (run scripts/build.sh)"; done
libs=${CAFES_KAFKA_LIBS:-$(bash "$here/kafka-fetch.sh" | tail -n 1)}
CAFES_KAFKA_LIBS=$libs bash "$here/broker.sh" start --dir "$run/broker" --nodes 1 >/dev/null 2>"$run/broker.out" ||
  die "the broker did not start (see $run/broker.out)"
bootstrap=$(cat "$run/broker/bootstrap")

# ---------------------------------------------------------------------------------------------
# the node

# A free loopback port below the ephemeral range, so that no client connection takes it
# while the node is down between a kill and its restart.
pick_port() {
  local lo=20000 hi=32767 eph p
  read -r eph _ </proc/sys/net/ipv4/ip_local_port_range && ((eph - 1 < hi)) && hi=$((eph - 1))
  while :; do
    p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
    ss -Htan "sport = :$p" 2>/dev/null | grep -q . || { printf '%s\n' "$p"; return; }
  done
}
ports=()
for ((i = 0; i < nodes; i++)); do
  p=$(RANDOM=$(($$ + i * 7919)) pick_port)
  for q in "${ports[@]}"; do [[ $q != "$p" ]] || p=$(RANDOM=$(($$ + i * 7919 + 1)) pick_port); done
  ports+=("$p")
  node_pids+=("")
done
delivery_ms=3000 # broker pauses last longer than this, so appends fail while it is stopped
session_ms=6000  # cluster mode: a node paused longer than this loses its partitions
cluster_args=()

# Whether node I runs (a zombie does not; nor a process this shell has already reaped). A
# paused node runs.
node_alive() {
  local pid=${node_pids[$1]} state
  [[ -n $pid ]] && state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) && [[ -n $state && $state != Z ]]
}

start_node() { # I
  local i=$1
  rm -f "$run/port-$i"
  ((nodes == 1)) || cluster_args=(--cluster --node-name "node-$i" --session-timeout-ms "$session_ms"
    --standby-replicas "$standby")
  "$bank" node --bootstrap "$bootstrap" --namespace "$ns" --mode "$mode" --port "${ports[i]}" --port-file "$run/port-$i" \
    --partitions 4 --snapshot-every 50 --delivery-timeout-ms "$delivery_ms" --threads 2 --log-level warn \
    "${cluster_args[@]}" >>"$run/node-$i.log" 2>&1 &
  node_pids[i]=$!
  local deadline=$((SECONDS + $(scaled 120)))
  until [[ -s $run/port-$i ]]; do
    node_alive "$i" || { wait "${node_pids[i]}" 2>/dev/null; node_pids[i]=; return 1; }
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

stop_node() { # I SIG
  local i=$1
  kill "-$2" "${node_pids[i]}" 2>/dev/null || true
  local deadline=$((SECONDS + $(scaled 30))) rc=0
  while node_alive "$i" && ((SECONDS < deadline)); do sleep 0.1; done
  node_alive "$i" && { kill -KILL "${node_pids[i]}" 2>/dev/null; rc=1; }
  wait "${node_pids[i]}" 2>/dev/null || true
  node_pids[i]=
  return "$rc"
}

violations=()
violation() { say "violation: $*"; violations+=("$*"); }

# A node died on its own: a finding. Restart it so the run goes on.
supervise() {
  local i rc
  for ((i = 0; i < nodes; i++)); do
    node_alive "$i" && continue
    rc=0
    wait "${node_pids[i]}" 2>/dev/null || rc=$?
    violation "node $i exited by itself (status $rc) at +$((SECONDS - t0)) s"
    start_node "$i" || die "node $i did not come back (see $run/node-$i.log)"
  done
}

for ((i = 0; i < nodes; i++)); do start_node "$i" || die "node $i did not start (see $run/node-$i.log)"; done
say "broker at $bootstrap, nodes on 127.0.0.1 ports ${ports[*]}, namespace $ns, run directory $run"

# ---------------------------------------------------------------------------------------------
# the fault plan, from the seed

RANDOM=$seed
work_ms=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60000 }')
faults=$(((work_ms + 7500) / 15000))
((faults >= 2)) || faults=2
broker_faults=(broker_kill broker_stop)
plan=()
if ((nodes == 1)); then
  if ((RANDOM % 2)); then plan=(node_kill "${broker_faults[RANDOM % 2]}"); else plan=("${broker_faults[RANDOM % 2]}" node_kill); fi
  all=(node_kill broker_kill broker_stop)
else
  if ((RANDOM % 2)); then plan=(node_kill node_pause); else plan=(node_pause node_kill); fi
  all=(node_kill node_pause broker_kill broker_stop)
fi
while ((${#plan[@]} < faults)); do plan+=("${all[RANDOM % ${#all[@]}]}"); done
victim=() # the node a node fault strikes
slot=$((work_ms / faults))
at=()   # when each fault strikes, ms after the workload starts
hold=() # how long a broker stays stopped, ms
for ((i = 0; i < faults; i++)); do
  at+=($((i * slot + slot * (20 + RANDOM % 41) / 100)))
  victim+=($((RANDOM % nodes)))
  if [[ ${plan[i]} == node_pause ]]; then
    hold+=($((session_ms + 2000 + RANDOM % 3000)))
  else
    hold+=($((delivery_ms + 1000 + RANDOM % 3000)))
  fi
done
say "fault plan: $(for ((i = 0; i < faults; i++)); do printf '%s@%dms ' "${plan[i]}" "${at[i]}"; done)"
declare -A injected=([node_kill]=0 [node_pause]=0 [broker_kill]=0 [broker_stop]=0)

broker() { bash "$here/broker.sh" "$@" --dir "$run/broker" --node 1 >>"$run/broker.out" 2>&1; }

inject() { # KIND HOLD_MS NODE
  case $1 in
    node_kill)
      stop_node "$3" KILL
      start_node "$3" || die "node $3 did not restart after SIGKILL (see $run/node-$3.log)"
      ;;
    node_pause)
      kill -STOP "${node_pids[$3]}" || die "could not pause node $3"
      sleep "$(awk -v ms="$2" 'BEGIN { printf "%.3f", ms / 1000 }')" # the fault itself lasts this long
      kill -CONT "${node_pids[$3]}" || die "could not resume node $3"
      ;;
    broker_kill)
      broker kill || die "could not kill the broker"
      broker restart || die "the broker did not restart (see $run/broker.out)"
      ;;
    broker_stop)
      broker pause || die "could not stop the broker"
      sleep "$(awk -v ms="$2" 'BEGIN { printf "%.3f", ms / 1000 }')" # the fault itself lasts this long
      broker resume || die "could not resume the broker"
      ;;
  esac
  injected[$1]=$((${injected[$1]} + 1))
}

# ---------------------------------------------------------------------------------------------
# the run

grace=$(scaled 120)
port_args=()
for p in "${ports[@]}"; do port_args+=(--port "$p"); done
"$driver" run "${port_args[@]}" --seed "$seed" --clients "$clients" --accounts "$accounts" \
  --seconds "$(awk -v ms="$work_ms" 'BEGIN { printf "%.3f", ms / 1000 }')" --grace "$grace" \
  --log "$run/ops.jsonl" >"$run/driver.out" 2>&1 &
driver_pid=$!
deadline=$((SECONDS + $(scaled 120)))
until grep -q 'accounts open' "$run/driver.out" 2>/dev/null; do
  kill -0 "$driver_pid" 2>/dev/null || die "the driver failed: $(tail -n 3 "$run/driver.out")"
  ((SECONDS < deadline)) || die "the accounts were not opened in time"
  sleep 0.1
done
t0=$SECONDS
start_ms=$(($(date +%s%N) / 1000000))
for ((i = 0; i < faults; i++)); do
  while (($(date +%s%N) / 1000000 - start_ms < at[i])); do
    supervise
    sleep 0.1
  done
  say "+$((SECONDS - t0)) s: ${plan[i]}$([[ ${plan[i]} == node_* ]] && printf ' (node %s)' "${victim[i]}")"
  inject "${plan[i]}" "${hold[i]}" "${victim[i]}"
done
say "+$((SECONDS - t0)) s: faults done; waiting for the clients"
while kill -0 "$driver_pid" 2>/dev/null; do
  supervise
  sleep 0.2
done
rc=0
wait "$driver_pid" || rc=$?
driver_pid=
((rc == 0)) || violation "the driver failed with status $rc: $(tail -n 3 "$run/driver.out" | tr '\n"' " '")"

say "clean restart of the nodes"
for ((i = 0; i < nodes; i++)); do stop_node "$i" TERM || violation "node $i did not stop on SIGTERM"; done
for ((i = 0; i < nodes; i++)); do
  start_node "$i" || die "node $i did not start cleanly after the run (see $run/node-$i.log)"
done
"$driver" balances "${port_args[@]}" --accounts "$accounts" --grace "$(scaled 60)" --out "$run/balances.json" \
  >>"$run/driver.out" 2>&1 || violation "the nodes did not answer every balance after the clean restart"
# The read side (the account state topic, the enriched transfers) catches up; the verifier
# checks it against the journal.
"$driver" read-side "${port_args[@]}" --partitions 4 --grace "$(scaled 120)" >>"$run/driver.out" 2>&1 ||
  violation "the read side did not catch up after the clean restart"
for ((i = 0; i < nodes; i++)); do stop_node "$i" TERM || violation "node $i did not stop on SIGTERM"; done

faults_json=$(printf '"%s":%s,' node_kill "${injected[node_kill]}" broker_kill "${injected[broker_kill]}" \
  broker_stop "${injected[broker_stop]}")
((nodes == 1)) || faults_json+=$(printf '"node_pause":%s,' "${injected[node_pause]}")
violations_json=$(for v in "${violations[@]+"${violations[@]}"}"; do printf '"%s",' "${v//\"/\'}"; done)
printf '{"seed":%s,"mode":"%s","minutes":%s,"nodes":%s,"faults":{%s},"violations":[%s]}\n' "$seed" "$mode" \
  "$minutes" "$nodes" "${faults_json%,}" "${violations_json%,}" >"$run/report.json"
result=0
printed=1
"$verifier" --bootstrap "$bootstrap" --namespace "$ns" --mode "$mode" --log "$run/ops.jsonl" \
  --balances "$run/balances.json" --report "$run/report.json" --timeout "$(scaled 60)" --read-side || result=$?
exit "$result"
