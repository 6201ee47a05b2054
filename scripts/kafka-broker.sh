#!/usr/bin/env bash
# Starts (or stops) a throwaway Kafka-protocol broker, tansu, for tests and
# benchmarks, on a free 127.0.0.1 port with in-memory storage.
#
#   scripts/kafka-broker.sh install                   # build tansu if missing
#   scripts/kafka-broker.sh start [TOPIC[:PARTS]...]  # prints the port
#   scripts/kafka-broker.sh stop PORT
#
# tansu comes from crates.io (GUIDE §9): about 10 minutes to build on 2
# cores, then cached in ~/.cargo/bin. Set TANSU to use another binary.
# Topics are not auto-created by tansu: name them on `start`.
set -euo pipefail

STATE_DIR="${TANSU_STATE_DIR:-${TMPDIR:-/tmp}/trailwatch-tansu}"
TANSU="${TANSU:-}"

find_tansu() {
    if [[ -n "$TANSU" && -x "$TANSU" ]]; then return 0; fi
    if command -v tansu >/dev/null 2>&1; then TANSU="$(command -v tansu)"; return 0; fi
    if [[ -x "$HOME/.cargo/bin/tansu" ]]; then TANSU="$HOME/.cargo/bin/tansu"; return 0; fi
    return 1
}

install() {
    if find_tansu; then return 0; fi
    echo "building tansu (cargo install, about 10 minutes)..." >&2
    cargo install tansu --locked --features dynostore >&2
    find_tansu || { echo "tansu not found after install" >&2; exit 1; }
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$(( 20000 + RANDOM % 40000 ))
        if ! port_in_use "$port" && [[ ! -e "$STATE_DIR/$port.pid" ]]; then
            echo "$port"; return 0
        fi
    done
    echo "no free port found" >&2; exit 1
}

start() {
    install
    mkdir -p "$STATE_DIR"
    local port url pid
    port="$(free_port)"
    url="tcp://127.0.0.1:$port"
    nohup "$TANSU" broker --listener-url "$url" --advertised-listener-url "$url" \
        --storage-engine memory://tansu/ >"$STATE_DIR/$port.log" 2>&1 &
    pid=$!
    echo "$pid" >"$STATE_DIR/$port.pid"
    for _ in $(seq 1 100); do
        if port_in_use "$port"; then break; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "tansu exited; log: $STATE_DIR/$port.log" >&2; cat "$STATE_DIR/$port.log" >&2; exit 1
        fi
        sleep 0.1
    done
    port_in_use "$port" || { echo "tansu did not listen on $port" >&2; stop "$port"; exit 1; }
    local spec name parts
    for spec in "$@"; do
        name="${spec%%:*}"; parts=3
        [[ "$spec" == *:* ]] && parts="${spec##*:}"
        "$TANSU" topic create "$name" --broker "$url" --partitions "$parts" >&2
    done
    echo "$port"
}

stop() {
    local port="${1:?usage: $0 stop PORT}" pid
    if [[ -f "$STATE_DIR/$port.pid" ]]; then
        pid="$(cat "$STATE_DIR/$port.pid")"
        kill "$pid" 2>/dev/null || true
        rm -f "$STATE_DIR/$port.pid"
    fi
}

cmd="${1:-start}"; shift || true
case "$cmd" in
    install) install; echo "$TANSU" ;;
    start) start "$@" ;;
    stop) stop "$@" ;;
    *) echo "usage: $0 install | start [TOPIC[:PARTITIONS]...] | stop PORT" >&2; exit 2 ;;
esac
