#!/usr/bin/env bash
# A real Prometheus scrapes a bank node on the real broker while commands flow; a query through
# Prometheus' HTTP API returns the rate of the node's command counter. promtool checks the
# node's exposition taken under load, the read side's projection metrics included.
#
# Usage: prometheus_scrape.sh BANK_BINARY
# Environment: CAFES_BOOTSTRAP_FILE (the broker), CAFES_TIMEOUT_SCALE (scales every wait)
set -euo pipefail
bank=$1
scale=${CAFES_TIMEOUT_SCALE:-1}
bootstrap=$(cat "${CAFES_BOOTSTRAP_FILE:?the bootstrap file of the broker}")
for tool in prometheus promtool curl; do
  command -v "$tool" >/dev/null || { echo "prometheus_scrape: $tool is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done

run=$(mktemp -d "${TMPDIR:-/tmp}/cafes-prometheus.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if ((rc != 0)); then
    echo "--- node log" >&2; tail -n 30 "$run/node.log" >&2 || true
    echo "--- prometheus log" >&2; tail -n 30 "$run/prometheus.log" >&2 || true
  fi
  rm -rf "$run"
  exit "$rc"
}
trap cleanup EXIT

deadline() { echo $(($(date +%s) + $(awk -v s="$scale" -v b="$1" 'BEGIN { printf "%d", b * s }'))); }
fail() { echo "prometheus_scrape: $*" >&2; exit 1; }

ns="prom$$x$RANDOM"
"$bank" node --bootstrap "$bootstrap" --namespace "$ns" --node-name "prom-node" --partitions 2 --port 0 \
  --port-file "$run/port" > "$run/node.log" 2>&1 &
pids+=($!)
end=$(deadline 90)
until [[ -s $run/port ]] && [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat "$run/port")/ready") == 200 ]]; do
  (($(date +%s) < end)) || fail "the bank node was not ready in time"
  kill -0 "${pids[0]}" 2>/dev/null || fail "the bank node exited"
  sleep 0.2
done
port=$(cat "$run/port")
node_url="http://127.0.0.1:$port"

# Load: accounts opened, then deposits, until the script ends.
(
  i=0
  while :; do
    curl -s -o /dev/null -d "" "$node_url/accounts/open?id=acc-$i&owner=o$i" || true
    curl -s -o /dev/null -d "" "$node_url/accounts/deposit?id=acc-$i&amount=5&ref=d$i" || true
    i=$((i + 1))
  done
) &
pids+=($!)

# Prometheus on a free loopback port: a bind that loses a race is tried again elsewhere.
cat > "$run/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: bank
    static_configs:
      - targets: ['127.0.0.1:$port']
YML
prom_port=
for attempt in 1 2 3 4 5; do
  candidate=$((20000 + RANDOM % 40000))
  (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null && continue # taken
  prometheus --config.file="$run/prometheus.yml" --storage.tsdb.path="$run/data" \
    --web.listen-address="127.0.0.1:$candidate" --log.level=warn > "$run/prometheus.log" 2>&1 &
  ppid=$!
  end=$(deadline 30)
  while kill -0 "$ppid" 2>/dev/null && (($(date +%s) < end)); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$candidate/-/ready") == 200 ]]; then
      prom_port=$candidate
      break
    fi
    sleep 0.2
  done
  if [[ -n $prom_port ]]; then
    pids+=("$ppid")
    break
  fi
  kill "$ppid" 2>/dev/null || true
  wait "$ppid" 2>/dev/null || true
done
[[ -n $prom_port ]] || fail "Prometheus did not start"

# The rate of commands that succeeded, through Prometheus' query API.
query="sum(rate(cafes_commands_total{namespace=\"$ns\",outcome=\"ok\"}[10s]))"
end=$(deadline 60)
rate=0
while :; do
  answer=$(curl -s "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$query" || true)
  rate=$(sed -n 's/.*"value":\[[0-9.]*,"\([0-9.e+-]*\)"\].*/\1/p' <<<"$answer")
  if [[ -n $rate ]] && awk -v r="$rate" 'BEGIN { exit !(r > 0) }'; then
    break
  fi
  (($(date +%s) < end)) || fail "no positive command rate from Prometheus; last answer: $answer"
  sleep 0.5
done
up=$(curl -s "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode 'query=up{job="bank"}')
grep -q '"value":\[[0-9.]*,"1"\]' <<<"$up" || fail "the target is not up: $up"
echo "prometheus_scrape: Prometheus reports $rate commands/s succeeding on the bank node"

# The exposition under load, with the read side's projections, passes promtool.
curl -s "$node_url/metrics" > "$run/metrics.txt"
grep -q '^cafes_projection_events_total{projection=' "$run/metrics.txt" || fail "no projection metrics in /metrics"
grep -q '^cafes_commands_total{namespace="'"$ns"'",type="account",outcome="ok"}' "$run/metrics.txt" ||
  fail "no command counter in /metrics"
if ! lint=$(promtool check metrics < "$run/metrics.txt" 2>&1) || [[ -n $lint ]]; then
  fail "promtool check metrics: $lint"
fi
echo "prometheus_scrape: promtool check metrics passes ($(grep -vc '^#' "$run/metrics.txt") samples)"
