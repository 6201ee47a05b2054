#!/usr/bin/env bash
# Installs and runs the local API servers the Kinesis tests and benchmark use:
#   ferrokinesis (Kinesis API, crates.io) and moto server (DynamoDB API, PyPI).
#
#   scripts/kinesis-servers.sh install   install both if missing (into .tools/)
#   scripts/kinesis-servers.sh start     install if needed, start both on free
#                                        127.0.0.1 ports, print
#                                        KINESIS_PORT=P and DYNAMODB_PORT=P2
#   scripts/kinesis-servers.sh stop      stop the servers started by `start`
#
# Binaries live under .tools/ (gitignored); state (pids, logs) under
# .tools/run/. Tests call `install` themselves and start their own servers.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
run_dir="$tools/run"
ferro="$tools/bin/ferrokinesis"
moto="$tools/moto/bin/moto_server"

install() {
  mkdir -p "$tools"
  if [ ! -x "$ferro" ]; then
    if command -v ferrokinesis >/dev/null 2>&1; then
      mkdir -p "$tools/bin" && ln -sf "$(command -v ferrokinesis)" "$ferro"
    else
      echo "installing ferrokinesis (about 3 minutes)" >&2
      cargo install ferrokinesis --locked --root "$tools" >&2
    fi
  fi
  if [ ! -x "$moto" ] && command -v moto_server >/dev/null 2>&1 \
    && moto_server --help >/dev/null 2>&1; then
    mkdir -p "$tools/moto/bin" && ln -sf "$(command -v moto_server)" "$moto"
  fi
  if [ ! -x "$moto" ]; then
    echo "installing moto server into $tools/moto" >&2
    python3 -m venv "$tools/moto" >&2
    "$tools/moto/bin/pip" install --quiet 'moto[server]' >&2
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
  for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2
  return 1
}

start() {
  install
  mkdir -p "$run_dir"
  local kport dport
  kport="$(free_port)"
  dport="$(free_port)"
  nohup "$ferro" --port "$kport" --create-stream-ms 10 >"$run_dir/ferrokinesis.log" 2>&1 &
  echo $! >"$run_dir/ferrokinesis.pid"
  nohup "$moto" -H 127.0.0.1 -p "$dport" >"$run_dir/moto.log" 2>&1 &
  echo $! >"$run_dir/moto.pid"
  wait_port "$kport"
  wait_port "$dport"
  echo "KINESIS_PORT=$kport"
  echo "DYNAMODB_PORT=$dport"
}

stop() {
  for name in ferrokinesis moto; do
    if [ -f "$run_dir/$name.pid" ]; then
      kill "$(cat "$run_dir/$name.pid")" 2>/dev/null || true
      rm -f "$run_dir/$name.pid"
    fi
  done
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
