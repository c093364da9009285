#!/usr/bin/env bash
# `bank node --config FILE` and `bank demo --config FILE` read FILE: a bad value in it is
# refused, naming the option, instead of the file being ignored.
# Usage: bank_config_check.sh BANK_BINARY
set -uo pipefail
bank=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/cafes-bank-config.XXXXXX")
trap 'rm -rf "$dir"' EXIT
printf 'log-level = "bogus"\n' > "$dir/bad.toml"
printf 'storage = "memory"\ncommands = 20\naccounts = 4\njson = true\nlog-level = "warn"\n' > "$dir/demo.toml"
for sub in node demo; do
  out=$(timeout 60 "$bank" "$sub" --config "$dir/bad.toml" 2>&1)
  rc=$?
  if ((rc == 0 || rc == 124)) || ! grep -q -- "--log-level" <<<"$out"; then
    echo "bank $sub --config: a bad log level in the file was not refused (exit $rc): $out" >&2
    exit 1
  fi
done
# A good file is applied: the demo runs the file's 20 commands on memory storage.
out=$(timeout 120 "$bank" demo --config "$dir/demo.toml" 2>&1) || { echo "bank demo --config failed: $out" >&2; exit 1; }
grep -q '"commands":20,' <<<"$out" && grep -q '"invariant_ok":true' <<<"$out" ||
  { echo "bank demo --config: the file's settings were not applied: $out" >&2; exit 1; }
echo "bank_config_check: both subcommands read their config file"
