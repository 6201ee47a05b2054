#!/usr/bin/env bash
# Smoke test of deploy/local-dev.sh: starts it in kafka and then kinesis
# mode against the local backends (tansu; ferrokinesis + moto; Prometheus)
# and waits until trailwatch answers /readyz with 200 and Prometheus
# scrapes it. Uses the debug binary, so no release build is needed.
#
#   scripts/local-dev-smoke.sh [BINARY]     (default: target/debug/trailwatch)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/trailwatch}
[ -x "$bin" ] || cargo build --locked --quiet --bin trailwatch
scripts/kinesis-servers.sh install
export PATH="$PWD/.tools/bin:$PWD/.tools/moto/bin:$PATH"

wait_http() { # url expected-substring seconds
    for _ in $(seq 1 "$3"); do
        if curl -sf "$1" 2>/dev/null | grep -q "$2"; then return 0; fi
        sleep 1
    done
    return 1
}

for mode in kafka kinesis; do
    echo "==> local-dev $mode"
    log=$(mktemp)
    # Its own process group, so one signal reaches the script, trailwatch
    # and the backends it started.
    TRAILWATCH_BIN=$bin setsid deploy/local-dev.sh "$mode" > "$log" 2>&1 &
    pid=$!
    ok=1
    wait_http http://127.0.0.1:9464/readyz ready 90 || ok=0
    if [ "$ok" = 1 ] && command -v prometheus >/dev/null; then
        wait_http 'http://127.0.0.1:9090/api/v1/query?query=up%7Bjob%3D%22trailwatch%22%7D' '"1"\]' 60 || ok=0
    fi
    kill -INT -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ "$ok" != 1 ]; then
        echo "local-dev $mode: trailwatch did not become ready and scraped; log:" >&2
        tail -40 "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
    echo "local-dev $mode: ready, scraped by Prometheus"
done
