#!/usr/bin/env bash
# Runs scripts/chaos.sh over a range of seeds in each journal mode, one run after another,
# and prints each run's JSON line, then a Markdown table of all runs (for docs/testing.md).
#
# Usage: chaos-campaign.sh [--seeds FIRST-LAST] [--modes idempotent,transactional]
#                          [--minutes M] [--out FILE] [chaos.sh options...]
#   default: seeds 1-20, both modes, 0.5 minutes each; --out keeps the JSON lines in FILE.
# Exit status: 0 when every run held, 1 when any run found a violation or could not run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
seeds=1-20
modes=idempotent,transactional
minutes=0.5
out=
extra=()
while (($#)); do
  case $1 in
    --seeds) seeds=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) extra+=("$1"); shift ;;
  esac
done
if [[ ! $seeds =~ ^([0-9]+)-([0-9]+)$ ]] || ((BASH_REMATCH[1] > BASH_REMATCH[2])); then
  echo "chaos-campaign: --seeds takes FIRST-LAST, for example 1-20" >&2
  exit 2
fi
first=${BASH_REMATCH[1]}
last=${BASH_REMATCH[2]}
lines=$(mktemp "${TMPDIR:-/tmp}/cafes-campaign.XXXXXX")
trap 'rm -f "$lines"' EXIT

bash "$here/build.sh" >&2
failed=0
IFS=, read -r -a mode_list <<<"$modes"
for mode in "${mode_list[@]}"; do
  for ((seed = first; seed <= last; ++seed)); do
    echo "chaos-campaign: seed $seed, $mode" >&2
    if line=$(bash "$here/chaos.sh" --seed "$seed" --mode "$mode" --minutes "$minutes" --no-build "${extra[@]}"); then
      :
    else
      failed=1
    fi
    [[ -n $line ]] || line="{\"seed\":$seed,\"mode\":\"$mode\",\"ok\":false,\"error\":\"no result\"}"
    echo "$line" | tee -a "$lines"
  done
done
[[ -z $out ]] || cp "$lines" "$out"

python3 - "$lines" <<'EOF'
import json, sys
print("\n| seed | mode | nodes | sent | acked | rejected | unknown (resolved) | node kills | node pauses | broker kills | broker stops | violations |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for raw in open(sys.argv[1]):
    r = json.loads(raw)
    o, f = r.get("operations", {}), r.get("faults", {})
    print(f"| {r.get('seed')} | {r.get('mode')} | {r.get('nodes', 1)} | {o.get('sent', '-')} | {o.get('acked', '-')} | "
          f"{o.get('rejected', '-')} | {o.get('unknown', '-')} ({o.get('unknown_then_resolved', '-')}) | "
          f"{f.get('node_kill', '-')} | {f.get('node_pause', 0)} | "
          f"{f.get('broker_kill', '-')} | {f.get('broker_stop', '-')} | "
          f"{r.get('violations_total', r.get('error', '-'))} |")
EOF
exit "$failed"
