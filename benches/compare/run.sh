#!/usr/bin/env bash
# trailwatch vs Apache Flink on the same generated CloudTrail file; see
# README.md. Not part of CI (downloads several hundred MB).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
events="${1:-300000}"
work="${WORK:-$(mktemp -d)}"
echo "work dir: $work"

cargo build --release --manifest-path "$root/Cargo.toml"
tw="${CARGO_TARGET_DIR:-$root/target}/release/trailwatch"
"$tw" gen cloudtrail "$events" --seed 42 --out "$work/cloudtrail.jsonl"

if [ ! -x "$work/venv/bin/python" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install --quiet apache-flink
fi

echo "== trailwatch"
start=$(date +%s.%N)
"$tw" replay --no-builtin --rules "$here/compare-rules" --shards 1 --quiet \
  --output "$work/trailwatch-alerts.jsonl" "$work/cloudtrail.jsonl"
end=$(date +%s.%N)
tw_secs=$(echo "$end - $start" | bc -l)
python3 - "$work/trailwatch-alerts.jsonl" > "$work/trailwatch.tsv" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    a = json.loads(line)
    if a.get("activity_id") != 1:
        continue
    rule = a["finding_info"]["analytic"]["uid"]
    key = "|".join(o.get("value", "") for o in a.get("observables", []))
    print(f"{rule}\t{key}\t{a['start_time']}")
PY

echo "== flink"
start=$(date +%s.%N)
"$work/venv/bin/python" "$here/flink_job.py" "$work/cloudtrail.jsonl" "$work/flink.tsv"
end=$(date +%s.%N)
flink_secs=$(echo "$end - $start" | bc -l)

sort -u "$work/trailwatch.tsv" > "$work/a.tsv"
sort -u "$work/flink.tsv" > "$work/b.tsv"
if diff -q "$work/a.tsv" "$work/b.tsv" > /dev/null; then
  echo "alert sets: identical ($(wc -l < "$work/a.tsv") alerts)"
else
  echo "alert sets DIFFER:"; diff "$work/a.tsv" "$work/b.tsv" | head -20
fi
python3 - "$events" "$tw_secs" "$flink_secs" <<'PY'
import sys
n, tw, fl = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"trailwatch: {n/tw:,.0f} events/s ({tw:.2f}s, includes process start)")
print(f"flink:      {n/fl:,.0f} events/s ({fl:.2f}s, includes JVM start)")
print(f"ratio:      {fl/tw:.1f}x")
PY
