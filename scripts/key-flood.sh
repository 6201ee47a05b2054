#!/usr/bin/env bash
# Key flood (issue 8): 10,000,000 unique source addresses through a VPC
# flow rule grouped by srcaddr, with a cap on open windows, in a release
# build; prints the peak RSS of the engine with and without the cap.
# Too long for CI (minutes); tests/hostile.rs runs 1,000,000 keys.
#
#   scripts/key-flood.sh [KEYS] [MAX_OPEN_WINDOWS]   # 10000000 100000
#
# Input is generated on the fly and piped into `trailwatch replay -`, so
# no 1 GB file is written. Pass: the capped run's peak RSS stays under
# BOUND_MIB (default 512) and the summary reports shed windows.
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-10000000}
cap=${2:-100000}
bound_mib=${BOUND_MIB:-512}

cargo build --release --locked --quiet
bin=target/release/trailwatch
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/rules"
cat >"$work/rules/flow.yaml" <<'RULE'
id: flow-by-source
title: flows by source address
kind: vpcflow
filter: '[version, account, eni, src, dst, sport, dport, proto, pkts, bytes, start, end, action="REJECT", status]'
group_by: [srcaddr]
window: 5m
threshold: ">= 3"
RULE

generate() {
  # Unique addresses over 10.0.0.0/8 and then 11.0.0.0/8 ...; one minute
  # of event time per 100,000 records, so there are windows to shed.
  awk -v n="$keys" 'BEGIN {
    for (i = 0; i < n; i++) {
      a = 10 + int(i / 16777216); r = i % 16777216
      start = 1709294400 + int(i / 100000) * 60
      printf "2 123456789012 eni-1 %d.%d.%d.%d 10.0.0.5 40000 22 6 1 40 %d %d REJECT OK\n",
        a, int(r / 65536), int(r / 256) % 256, r % 256, start, start + 60
    }
  }'
}

run() {
  local label=$1; shift
  generate | /usr/bin/time -v "$bin" replay --no-builtin --rules "$work/rules" \
      --output /dev/null "$@" - 2>"$work/$label.err"
  local rss
  rss=$(grep 'Maximum resident set size' "$work/$label.err" | grep -o '[0-9]*$')
  echo "$label: peak RSS $((rss / 1024)) MiB; $(grep 'windows shed early' "$work/$label.err")"
  echo "$rss" >"$work/$label.rss"
}

echo "==> $keys unique keys, max_open_windows=$cap"
run capped --max-open-windows "$cap"
if [ "${SKIP_UNCAPPED:-0}" != 1 ]; then
  echo "==> same input, default cap (4,000,000 windows)"
  run uncapped
fi
capped_mib=$(( $(cat "$work/capped.rss") / 1024 ))
if [ "$capped_mib" -ge "$bound_mib" ]; then
  echo "FAIL: capped peak RSS $capped_mib MiB >= bound $bound_mib MiB"
  exit 1
fi
grep -q 'windows shed early *[1-9]' "$work/capped.err" || { echo "FAIL: nothing shed"; exit 1; }
echo "ok: capped peak RSS $capped_mib MiB < $bound_mib MiB"
