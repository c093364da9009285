#!/usr/bin/env bash
# Runs a throw-away Apache Kafka cluster (KRaft, 1 or 3 nodes, loopback only) for integration
# and fault tests, in a directory that belongs to one test run.
#
# Usage:
#   broker.sh start   --dir DIR [--nodes 1|3] [--secure]
#                                              start a cluster; prints the bootstrap list last
#   broker.sh stop    --dir DIR [--node N]     SIGTERM (then SIGKILL) the recorded brokers
#   broker.sh kill    --dir DIR --node N       SIGKILL one node (its data stays)
#   broker.sh restart --dir DIR --node N       start one node again, wait until it answers
#   broker.sh pause   --dir DIR --node N       SIGSTOP one node (a hung broker)
#   broker.sh resume  --dir DIR --node N       SIGCONT it
#   broker.sh status  --dir DIR                one line per node; exit 0 only if all run
#   broker.sh logs    --dir DIR [--node N] [--lines N]   tail of each node's broker log
#
# start picks free loopback ports, writes DIR/node-N/server.properties and DIR/log4j2.xml,
# formats the storage, starts each node in the background, waits until every node answers a
# metadata request listing all nodes, and then writes:
#   DIR/bootstrap   host:port[,host:port...]    DIR/pids   one PID per running node
#   DIR/node-N/{pid,port,broker.log,stdout.log,data/}
# start on a DIR whose cluster is stopped starts it again with its data and ports.
#
# --secure adds two listeners to every node, beside PLAINTEXT: SSL (TLS, server certificate only)
# and SASL_SSL (TLS plus user `cafes`, whose password is drawn at random, by mechanism PLAIN or
# SCRAM-SHA-256; librdkafka before 2.6.1 cannot do SCRAM with a Kafka 4 broker, so the client
# settings below use PLAIN). A test CA and the broker's certificate are made with openssl into
# DIR/tls at the first start; nothing secret comes from the repository. start then also writes:
#   DIR/ssl-bootstrap, DIR/sasl-bootstrap   host:port lists of the SSL and SASL_SSL listeners
#   DIR/tls/ca.pem        the CA that signed the broker's certificate (a client's ssl.ca.location)
#   DIR/tls/other-ca.pem  an unrelated CA (tests: a client that trusts the wrong CA)
#   DIR/sasl-user, DIR/sasl-password   the SCRAM user and its password (one line each)
#   DIR/ssl.properties, DIR/sasl.properties   librdkafka client settings (key=value lines)
# Only PIDs recorded in DIR are ever signalled, and only while they still run this DIR's broker.
#
# Environment:
#   CAFES_TIMEOUT_SCALE     multiplies every wait (default 1; start waits 60 s per try)
#   CAFES_KAFKA_LIBS        directory of Kafka jars (default: from scripts/kafka-fetch.sh)
#   CAFES_BROKER_JVM_OPTS   replaces the default heap/GC options of the broker JVMs
#   CAFES_BROKER_LOG_LEVEL  root level of the broker log (default INFO)
#   JAVA_HOME               Java 17+ to run the broker (default: java on PATH)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { printf 'broker: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

# ---------------------------------------------------------------------------------------------
# arguments

(($#)) || { usage >&2; exit 2; }
cmd=$1
shift
dir=
nodes=1
node=
lines=50
secure=0
while (($#)); do
  case $1 in
    --secure) secure=1; shift; continue ;;
    --dir | --nodes | --node | --lines)
      (($# >= 2)) || die "$1 needs a value"
      case $1 in
        --dir) dir=$2 ;;
        --nodes) nodes=$2 ;;
        --node) node=$2 ;;
        --lines) lines=$2 ;;
      esac
      shift 2
      ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
case $cmd in
  -h | --help | help) usage; exit 0 ;;
  start | stop | kill | restart | pause | resume | status | logs) ;;
  *) die "unknown command: $cmd (see --help)" ;;
esac
[[ -n $dir ]] || die "$cmd needs --dir DIR"
[[ $nodes == 1 || $nodes == 3 ]] || die "--nodes must be 1 or 3"
[[ $lines =~ ^[0-9]+$ ]] || die "--lines must be a number"
[[ -z $node || $node =~ ^[1-9][0-9]*$ ]] || die "--node must be a node id (1, 2, 3)"
[[ $secure == 0 || $cmd == start ]] || die "--secure is an option of start"

scale=${CAFES_TIMEOUT_SCALE:-1}
[[ $scale =~ ^[0-9]*\.?[0-9]+$ ]] || die "CAFES_TIMEOUT_SCALE must be a positive number"
# scaled SECONDS -> whole seconds, at least 1
scaled() { awk -v b="$1" -v s="$scale" 'BEGIN { t = int(b * s + 0.5); print (t < 1 ? 1 : t) }'; }

# ---------------------------------------------------------------------------------------------
# the run directory

if [[ $cmd == start ]]; then mkdir -p "$dir"; fi
[[ -d $dir ]] || die "no directory $dir"
dir=$(cd "$dir" && pwd -P)
node_dir() { printf '%s/node-%s' "$dir" "$1"; }

# Node ids (1..n) of the cluster in DIR.
all_nodes() {
  local n
  for ((n = 1; n <= $(cat "$dir/nodes"); n++)); do printf '%s\n' "$n"; done
}

check_node() {
  [[ -f $dir/nodes ]] || die "$dir holds no cluster (run start first)"
  [[ -n $node ]] || die "$cmd needs --node N"
  ((node >= 1 && node <= $(cat "$dir/nodes"))) || die "no node $node in $dir"
}

# The PID recorded for node N, if that process still runs this node's broker. A recorded PID
# that now belongs to another process (or to a zombie, whose cmdline is empty) does not count.
live_pid() {
  local nd pid
  nd=$(node_dir "$1")
  [[ -f $nd/pid ]] || return 1
  pid=$(cat "$nd/pid")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$nd/server.properties" || return 1
  printf '%s\n' "$pid"
}

# Rewrites DIR/pids from the node-N/pid files of the nodes that still run.
write_pids() {
  local n pid tmp
  tmp=$(mktemp "$dir/.pids.XXXXXX")
  for n in $(all_nodes); do
    if pid=$(live_pid "$n"); then printf '%s\n' "$pid" >>"$tmp"; fi
  done
  if [[ -s $tmp ]]; then mv "$tmp" "$dir/pids"; else rm -f "$tmp" "$dir/pids"; fi
}

# ---------------------------------------------------------------------------------------------
# ports

# Local TCP ports in use in any state (LISTEN, ESTABLISHED, TIME_WAIT, ...), in decimal.
used_ports() {
  local f
  for f in /proc/net/tcp /proc/net/tcp6; do
    [[ -r $f ]] || continue
    awk 'NR > 1 { split($2, a, ":"); print a[2] }' "$f"
  done | while read -r hex; do printf '%d\n' "0x$hex"; done | sort -u
}

# Prints COUNT distinct free ports, chosen at random below the kernel's ephemeral range so
# that no client connection takes one of them while a node is down between kill and restart.
pick_ports() {
  local count=$1 lo=20000 hi=32767 eph_lo used p picked=()
  if read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null; then
    ((eph_lo - 1 < hi)) && hi=$((eph_lo - 1))
    ((hi - lo < 2000)) && lo=$((hi - 2000))
    ((lo < 1025)) && lo=1025
  fi
  used=$(used_ports)
  while ((${#picked[@]} < count)); do
    p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
    grep -qx -- "$p" <<<"$used" && continue
    [[ " ${picked[*]} " == *" $p "* ]] && continue
    picked+=("$p")
  done
  printf '%s\n' "${picked[@]}"
}

port_listening() { # PORT
  local hex
  hex=$(printf '%04X' "$1")
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }'
}

# ---------------------------------------------------------------------------------------------
# configuration

write_config() { # writes DIR/node-*/server.properties for $nodes nodes on ports in $dir/ports
  local n nd port cport voters="" rf isr
  local -a ports
  mapfile -t ports <"$dir/ports"
  for ((n = 1; n <= nodes; n++)); do
    voters+="${voters:+,}$n@127.0.0.1:${ports[2 * n - 1]}"
  done
  if ((nodes == 1)); then rf=1 isr=1; else rf=3 isr=2; fi
  for ((n = 1; n <= nodes; n++)); do
    nd=$(node_dir "$n")
    port=${ports[2 * n - 2]}
    cport=${ports[2 * n - 1]}
    mkdir -p "$nd/data"
    printf '%s\n' "$port" >"$nd/port"
    local listeners="PLAINTEXT://127.0.0.1:$port" map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT" tls=""
    if [[ -f $dir/secure ]]; then
      # The secure listeners' ports follow the 2 * nodes plain ones.
      local sport=${ports[2 * nodes + 2 * n - 2]} qport=${ports[2 * nodes + 2 * n - 1]}
      printf '%s\n' "$sport" >"$nd/ssl-port"
      printf '%s\n' "$qport" >"$nd/sasl-port"
      listeners+=",SSL://127.0.0.1:$sport,SASL_SSL://127.0.0.1:$qport"
      map+=",SSL:SSL,SASL_SSL:SASL_SSL"
      tls="
# TLS (DIR/tls, made by broker.sh) on SSL and SASL_SSL; SCRAM users on SASL_SSL. No authorizer:
# an authenticated client may do anything.
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/tls/broker.p12
ssl.keystore.password=$(cat "$dir/tls/keystore-password")
ssl.key.password=$(cat "$dir/tls/keystore-password")
ssl.client.auth=none
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$(cat "$dir/sasl-user")=\"$(cat "$dir/sasl-password")\";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    fi
    cat >"$nd/server.properties" <<EOF
# Test broker $n of $nodes, written by scripts/broker.sh. KRaft, combined broker+controller.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=$listeners,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$listeners
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$map
log.dirs=$nd/data
$tls

# Topics are created by the code under test (admin API), never by a produce or fetch.
auto.create.topics.enable=false
delete.topic.enable=true
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr

# Internal topics: sized for tests (Kafka's defaults of 50 partitions and replication
# factor 3 make a single test broker slow or unusable).
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr

# Groups: no initial rebalance delay, and short session timeouts allowed for failover tests.
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000

# A dead node is fenced (and leaves every ISR) after 3 s instead of 9 s.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000

# Small machine: few threads, and a 2 MiB instead of 128 MiB cleaner buffer on the heap.
num.network.threads=2
num.io.threads=2
background.threads=2
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=2097152

# Flushing stays at Kafka's defaults (log.flush.interval.messages/ms unset: the OS writes
# back the page cache). A SIGKILLed broker loses nothing it acknowledged; only a machine
# crash would, and the tests kill processes, not machines.
EOF
  done
}

# ---------------------------------------------------------------------------------------------
# TLS and SCRAM (--secure)

# A random secret of 24 hexadecimal digits.
secret() { openssl rand -hex 12; }

# Makes DIR/tls once: a test CA, the brokers' certificate signed by it (CN and SAN IP 127.0.0.1,
# which is what clients connect to) in a PKCS12 keystore, an unrelated CA, and the SASL user.
make_tls() {
  local t=$dir/tls
  [[ -f $t/broker.p12 && -f $dir/sasl-password ]] && return 0
  command -v openssl >/dev/null 2>&1 || die "openssl not found (run scripts/deps.sh)"
  rm -rf "$t"
  mkdir -p "$t"
  chmod 700 "$t"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  {
    openssl req -x509 "${ec[@]}" -keyout "$t/ca.key" -out "$t/ca.pem" -days 30 -subj "/CN=cafes test CA" &&
      openssl req -x509 "${ec[@]}" -keyout "$t/other-ca.key" -out "$t/other-ca.pem" -days 30 \
        -subj "/CN=cafes unrelated test CA" &&
      openssl req "${ec[@]}" -keyout "$t/broker.key" -out "$t/broker.csr" -subj "/CN=127.0.0.1" &&
      printf '%s\n' "subjectAltName=IP:127.0.0.1" "basicConstraints=CA:FALSE" \
        "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$t/broker.ext" &&
      openssl x509 -req -in "$t/broker.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
        -out "$t/broker.pem" -days 30 -extfile "$t/broker.ext" &&
      secret >"$t/keystore-password" &&
      openssl pkcs12 -export -in "$t/broker.pem" -inkey "$t/broker.key" -certfile "$t/ca.pem" \
        -name broker -out "$t/broker.p12" -passout "file:$t/keystore-password"
  } >"$t/make.log" 2>&1 || { cat "$t/make.log" >&2; die "could not make the test certificates in $t"; }
  rm -f "$t/broker.csr" "$t/ca.srl"
  printf 'cafes\n' >"$dir/sasl-user"
  (umask 077 && secret >"$dir/sasl-password")
}

# Writes the secure listeners' bootstrap lists and client settings (after the nodes started).
write_secure_files() {
  local n ssl="" sasl=""
  for n in $(all_nodes); do
    ssl+="${ssl:+,}127.0.0.1:$(cat "$(node_dir "$n")/ssl-port")"
    sasl+="${sasl:+,}127.0.0.1:$(cat "$(node_dir "$n")/sasl-port")"
  done
  printf '%s\n' "$ssl" >"$dir/ssl-bootstrap"
  printf '%s\n' "$sasl" >"$dir/sasl-bootstrap"
  printf '%s\n' "security.protocol=ssl" "ssl.ca.location=$dir/tls/ca.pem" >"$dir/ssl.properties"
  (umask 077 && printf '%s\n' "security.protocol=sasl_ssl" "ssl.ca.location=$dir/tls/ca.pem" \
    "sasl.mechanism=PLAIN" "sasl.username=$(cat "$dir/sasl-user")" \
    "sasl.password=$(head -1 "$dir/sasl-password")" >"$dir/sasl.properties")
}

# ---------------------------------------------------------------------------------------------
# java and jars

java_bin() {
  local j
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then j=$JAVA_HOME/bin/java; else j=$(command -v java) || die "java not found (run scripts/deps.sh)"; fi
  printf '%s\n' "$j"
}

check_java() { # JAVA
  local v
  v=$("$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  if [[ -z $v ]] || ((v < 17)); then
    die "Kafka 4 needs Java 17 or newer; $1 reports '${v:-unknown}'"
  fi
}

resolve_libs() {
  local libs=${CAFES_KAFKA_LIBS:-}
  if [[ -z $libs ]]; then
    libs=$("$here/kafka-fetch.sh" | tail -1) || die "could not fetch the Kafka jars"
  fi
  compgen -G "$libs/kafka_2.13-*.jar" >/dev/null || die "no Kafka jars in $libs"
  printf '%s\n' "$libs"
}

jvm_opts() { # NODE_DIR -> one option per line
  local nd=$1 opt
  # shellcheck disable=SC2086 # CAFES_BROKER_JVM_OPTS is a list of words
  for opt in ${CAFES_BROKER_JVM_OPTS:--Xms256m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}; do
    printf '%s\n' "$opt"
  done
  printf '%s\n' -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    "-XX:ErrorFile=$nd/hs_err_pid%p.log" \
    "-Dlog4j2.configurationFile=$dir/log4j2.xml" \
    "-Dkafka.logs.dir=$nd" \
    "-Dcafes.broker.log.level=${CAFES_BROKER_LOG_LEVEL:-INFO}"
}

# Formats every node's storage with the cluster id (in parallel: one JVM each).
format_storage() {
  local java libs cid n nd rc=0
  local -a pids=() opts
  java=$(cat "$dir/java")
  libs=$(cat "$dir/libs")
  cid=$(cat "$dir/cluster-id")
  for n in $(all_nodes); do
    nd=$(node_dir "$n")
    mapfile -t opts < <(jvm_opts "$nd")
    local -a scram=()
    if [[ -f $dir/secure ]]; then
      scram=(--add-scram "SCRAM-SHA-256=[name=$(cat "$dir/sasl-user"),password=$(cat "$dir/sasl-password")]")
    fi
    (cd "$nd" && exec "$java" "${opts[@]}" -cp "$libs/*" kafka.tools.StorageTool \
      format -t "$cid" -c "$nd/server.properties" -g "${scram[@]}" >"$nd/format.log" 2>&1 </dev/null) &
    pids+=($!)
  done
  for n in "${!pids[@]}"; do
    if ! wait "${pids[$n]}"; then
      rc=1
      say "formatting node $((n + 1)) failed:"
      tail -n 20 "$(node_dir $((n + 1)))/format.log" >&2
    fi
  done
  return "$rc"
}

launch_node() { # N
  local n=$1 nd java libs pid
  local -a opts
  nd=$(node_dir "$n")
  java=$(cat "$dir/java")
  libs=$(cat "$dir/libs")
  mapfile -t opts < <(jvm_opts "$nd")
  # The broker runs detached from our stdout/stderr, so callers that capture the output of
  # start (bootstrap=$(broker.sh start ...)) do not wait for the broker to exit.
  (cd "$nd" && exec nohup "$java" "${opts[@]}" -cp "$libs/*" kafka.Kafka \
    "$nd/server.properties" >>"$nd/stdout.log" 2>&1 </dev/null) &
  pid=$!
  disown "$pid" 2>/dev/null || true # no "Killed" notice from this shell when a test kills it
  printf '%s\n' "$pid" >"$nd/pid"
  write_pids
}

# ---------------------------------------------------------------------------------------------
# readiness

# Succeeds when node N answers a metadata request that lists every node in WANT (ids).
node_answers() { # N WANT...
  local n=$1 port out id
  shift
  port=$(cat "$(node_dir "$n")/port")
  port_listening "$port" || return 1
  out=$(kcat -b "127.0.0.1:$port" -L -m 5 -X reconnect.backoff.max.ms=200 2>/dev/null) || return 1
  for id in "$@"; do
    grep -qE "^ +broker $id at " <<<"$out" || return 1
  done
}

# Waits until each node in NODES answers and lists all of WANT; fails early if one dies.
wait_ready() { # "NODES" "WANT" TIMEOUT
  local -a wait_for want
  read -ra wait_for <<<"$1"
  read -ra want <<<"$2"
  local timeout=$3 deadline n pending
  deadline=$((SECONDS + timeout))
  while :; do
    pending=()
    for n in "${wait_for[@]}"; do
      live_pid "$n" >/dev/null || { say "node $n exited while starting"; return 1; }
      node_answers "$n" "${want[@]}" || pending+=("$n")
    done
    ((${#pending[@]} == 0)) && return 0
    ((SECONDS < deadline)) || { say "node(s) ${pending[*]} not ready after ${timeout} s"; return 1; }
    sleep 0.2
  done
}

write_bootstrap() {
  local n list=""
  for n in $(all_nodes); do list+="${list:+,}127.0.0.1:$(cat "$(node_dir "$n")/port")"; done
  printf '%s\n' "$list" >"$dir/bootstrap"
}

# ---------------------------------------------------------------------------------------------
# stopping

# Sends SIG to the given nodes, waits up to TIMEOUT s for them to exit, then SIGKILLs the rest.
stop_nodes() { # SIG TIMEOUT N...
  local sig=$1 timeout=$2 n pid deadline
  shift 2
  local -a left=()
  for n in "$@"; do
    if pid=$(live_pid "$n"); then
      kill -CONT "$pid" 2>/dev/null || true # a paused node cannot shut down
      kill "-$sig" "$pid" 2>/dev/null || true
      left+=("$n")
    fi
  done
  deadline=$((SECONDS + timeout))
  while ((${#left[@]})); do
    local -a still=()
    for n in "${left[@]}"; do live_pid "$n" >/dev/null && still+=("$n"); done
    left=("${still[@]+"${still[@]}"}")
    ((${#left[@]})) || break
    if ((SECONDS >= deadline)); then
      for n in "${left[@]}"; do
        if pid=$(live_pid "$n"); then
          say "node $n did not stop within $timeout s: SIGKILL"
          kill -KILL "$pid" 2>/dev/null || true
        fi
      done
      deadline=$((SECONDS + 10))
      timeout=10
    fi
    sleep 0.1
  done
  for n in "$@"; do rm -f "$(node_dir "$n")/pid"; done
  write_pids
}

print_logs() { # LINES N...
  local count=$1 n nd f
  shift
  for n in "$@"; do
    nd=$(node_dir "$n")
    for f in "$nd/broker.log" "$nd/stdout.log" "$nd"/hs_err_pid*.log; do
      [[ -s $f ]] || continue
      printf '==> node-%s/%s <==\n' "$n" "${f##*/}"
      tail -n "$count" "$f"
    done
  done
}

# ---------------------------------------------------------------------------------------------
# commands

cmd_start() {
  local t0 java libs n attempt timeout cid running=()
  t0=$(date +%s%N)
  command -v kcat >/dev/null 2>&1 || die "kcat not found (run scripts/deps.sh)"
  if [[ -f $dir/nodes ]]; then
    for n in $(all_nodes); do live_pid "$n" >/dev/null && running+=("$n"); done
    ((${#running[@]} == 0)) || die "node(s) ${running[*]} in $dir already run (stop first)"
    if [[ $(cat "$dir/nodes") != "$nodes" ]]; then
      nodes=$(cat "$dir/nodes")
      say "$dir holds a cluster of $nodes node(s): starting that"
    fi
  fi
  java=$(java_bin)
  check_java "$java"
  libs=$(resolve_libs)
  printf '%s\n' "$java" >"$dir/java"
  printf '%s\n' "$libs" >"$dir/libs"
  cp "$here/kafka/log4j2.xml" "$dir/log4j2.xml"
  timeout=$(scaled 60)

  # A cluster that exists already (stopped) starts again on its data and ports.
  local fresh=1
  [[ -f $dir/formatted && -f $dir/nodes ]] && fresh=0

  trap 'say "interrupted"; stop_nodes KILL 5 $(all_nodes); exit 130' INT TERM
  for attempt in 1 2 3; do
    if ((fresh)); then
      rm -rf "$dir"/node-* "$dir/formatted"
      printf '%s\n' "$nodes" >"$dir/nodes"
      if ((secure)); then
        : >"$dir/secure"
        make_tls
        pick_ports $((4 * nodes)) >"$dir/ports"
      else
        rm -f "$dir/secure"
        pick_ports $((2 * nodes)) >"$dir/ports"
      fi
      write_config
      if [[ ! -f $dir/cluster-id ]]; then
        cid=$("$java" -Xshare:auto -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$libs/*" \
          -Dlog4j2.configurationFile="$dir/log4j2.xml" -Dkafka.logs.dir="$(node_dir 1)" \
          kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
        [[ $cid =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid gave '$cid'"
        printf '%s\n' "$cid" >"$dir/cluster-id"
      fi
      format_storage || die "could not format the storage in $dir"
      : >"$dir/formatted"
    fi
    say "starting $nodes node(s) in $dir"
    for n in $(all_nodes); do launch_node "$n"; done
    if wait_ready "$(all_nodes | xargs)" "$(all_nodes | xargs)" "$timeout"; then
      trap - INT TERM
      write_bootstrap
      [[ -f $dir/secure ]] && write_secure_files
      say "$nodes node(s) ready at $(cat "$dir/bootstrap") in $(elapsed "$t0") s"
      cat "$dir/bootstrap"
      return 0
    fi
    # shellcheck disable=SC2046
    stop_nodes KILL 5 $(all_nodes)
    # A port taken between picking and binding (a parallel run): pick again.
    if ((fresh)) && ((attempt < 3)) && cat "$dir"/node-*/broker.log "$dir"/node-*/stdout.log 2>/dev/null | grep -q 'Address already in use'; then
      say "a port was taken; retrying with new ports"
      continue
    fi
    break
  done
  trap - INT TERM
  # shellcheck disable=SC2046
  print_logs 40 $(all_nodes) >&2
  die "the cluster in $dir did not start"
}

elapsed() { # T0_NS -> seconds with one decimal
  awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'
}

cmd_stop() {
  [[ -f $dir/nodes ]] || { say "nothing to stop in $dir"; return 0; }
  local -a which
  if [[ -n $node ]]; then check_node; which=("$node"); else mapfile -t which < <(all_nodes); fi
  stop_nodes TERM "$(scaled 30)" "${which[@]}"
  say "stopped node(s) ${which[*]}"
}

cmd_kill() {
  check_node
  local pid
  pid=$(live_pid "$node") || die "node $node is not running"
  stop_nodes KILL "$(scaled 10)" "$node"
  say "killed node $node (pid $pid)"
}

cmd_restart() {
  check_node
  local t0
  t0=$(date +%s%N)
  if live_pid "$node" >/dev/null; then stop_nodes TERM "$(scaled 30)" "$node"; fi
  launch_node "$node"
  if wait_ready "$node" "$node" "$(scaled 60)"; then
    say "node $node ready at 127.0.0.1:$(cat "$(node_dir "$node")/port") in $(elapsed "$t0") s"
    return 0
  fi
  stop_nodes KILL 5 "$node"
  print_logs 40 "$node" >&2
  die "node $node did not come back"
}

cmd_signal() { # SIG
  check_node
  local pid
  pid=$(live_pid "$node") || die "node $node is not running"
  kill "-$1" "$pid"
  say "sent SIG$1 to node $node (pid $pid)"
}

cmd_status() {
  [[ -f $dir/nodes ]] || { say "no cluster in $dir"; return 1; }
  local n pid state rc=0
  for n in $(all_nodes); do
    if pid=$(live_pid "$n"); then
      state=running
      [[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) == T ]] && state=paused
    else
      state=stopped pid=- rc=1
    fi
    printf 'node %s %-8s pid %-8s 127.0.0.1:%s\n' "$n" "$state" "$pid" "$(cat "$(node_dir "$n")/port")"
  done
  return "$rc"
}

cmd_logs() {
  [[ -f $dir/nodes ]] || die "no cluster in $dir"
  if [[ -n $node ]]; then check_node; print_logs "$lines" "$node"; else
    # shellcheck disable=SC2046
    print_logs "$lines" $(all_nodes)
  fi
}

case $cmd in
  start) cmd_start ;;
  stop) cmd_stop ;;
  kill) cmd_kill ;;
  restart) cmd_restart ;;
  pause) cmd_signal STOP ;;
  resume) cmd_signal CONT ;;
  status) cmd_status ;;
  logs) cmd_logs ;;
esac
