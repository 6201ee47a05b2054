#!/usr/bin/env bash
# Scaling across cores (issue 7): wall-clock events/s and efficiency of the
# engine at 1, 2, 4, ... cores, as in BENCHMARKS.md "Scaling across cores".
#
#   scripts/scaling.sh [--bin PATH] [--cores "1 2 4 8 16"] [--rounds R]
#                      [--cloudtrail N] [--flows N] [--data DIR]
#                      [--variant NAME=ENV ...]
#
# Each core count n runs pinned to cores 0..n-1 (`taskset`): n shards and n
# decode workers, the input dealt over n lanes (one source thread each),
# raw batches of at most 4,096 records or 384 KiB. Input is generated once
# into DIR (default /dev/shm/trailwatch-scaling) and loaded by `--input`.
# Efficiency = rate(n) / (n x rate(1)) of the same variant. Each cell is
# the best of R rounds (default 2); variants alternate within a round so
# that they see the same machine. A variant runs the same binary with extra
# environment, for example:
#
#   --variant 'glibc-thresholds=GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864'
#
# Needs: a release build (`cargo build --release`), taskset, awk. Record the
# device, the date, the commit and this command with the table it prints.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/trailwatch
cores=""
rounds=2
cloudtrail=2000000
flows=12000000
data=/dev/shm/trailwatch-scaling
variants=("default=")
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=$2; shift 2 ;;
        --cores) cores=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --cloudtrail) cloudtrail=$2; shift 2 ;;
        --flows) flows=$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        --variant) variants+=("$2"); shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [ -z "$cores" ]; then
    max=$(nproc)
    cores=1
    n=2
    while [ "$n" -le "$max" ]; do cores="$cores $n"; n=$((n * 2)); done
fi
if [ ! -x "$bin" ]; then
    echo "no binary at $bin: run cargo build --release first" >&2
    exit 2
fi

mkdir -p "$data"
ct="$data/ct-$cloudtrail.jsonl"
fl="$data/fl-$flows.txt"
[ -s "$ct" ] || "$bin" gen cloudtrail "$cloudtrail" > "$ct"
[ -s "$fl" ] || "$bin" gen flows "$flows" > "$fl"

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq "$rounds"); do
    for n in $cores; do
        for variant in "${variants[@]}"; do
            name=${variant%%=*}
            env_setting=${variant#*=}
            for kind in cloudtrail flows; do
                input=$ct
                [ "$kind" = flows ] && input=$fl
                # shellcheck disable=SC2086
                rate=$(env $env_setting taskset -c "0-$((n - 1))" "$bin" bench --input "$input" \
                    --shards "$n" --repeat 1 --no-inline --no-baseline \
                    --batch 4096 --batch-bytes 393216 |
                    awk '$1 == "engine" { print $6 }')
                echo "$name $kind $n ${rate:-0}" >> "$results"
                echo "round $round: $name $kind $n cores: ${rate:-0} ev/s" >&2
            done
        done
    done
done

echo "# scaling: $(nproc) cores, $(date -u +%F), $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "# $cloudtrail CloudTrail records, $flows flow records; best of $rounds; wall-clock events/s"
echo
echo "| variant | cores | CloudTrail ev/s | efficiency | flows rec/s | efficiency |"
echo "|---|---:|---:|---:|---:|---:|"
awk '
    { key = $1 " " $2 " " $3; if ($4 > best[key]) best[key] = $4; seen[$1] = 1; ns[$3] = 1 }
    END {
        for (v in seen) for (n in ns) {
            c = best[v " cloudtrail " n]; f = best[v " flows " n]
            c1 = best[v " cloudtrail 1"]; f1 = best[v " flows 1"]
            ce = (c1 > 0) ? sprintf("%.0f%%", 100 * c / (n * c1)) : "-"
            fe = (f1 > 0) ? sprintf("%.0f%%", 100 * f / (n * f1)) : "-"
            printf "| %s | %d | %.0f | %s | %.0f | %s |\n", v, n, c, ce, f, fe
        }
    }' "$results" | sort -t'|' -k2,2 -k3,3n
