#!/usr/bin/env bash
# Installs everything the test suite needs, idempotently. Each backend has
# its own script; this one just calls them in order.
set -euo pipefail
cd "$(dirname "$0")/.."
# Building trailwatch (the bundled librdkafka with TLS) needs a C toolchain,
# make, pkg-config and the OpenSSL headers besides Rust (README, Quick start).
if ! { command -v cc && command -v make && command -v pkg-config && pkg-config --exists openssl; } >/dev/null 2>&1; then
  echo "install-test-deps: installing build-essential pkg-config libssl-dev"
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential pkg-config libssl-dev >/dev/null 2>&1 \
    || { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential pkg-config libssl-dev; }
fi
for script in scripts/kafka-broker.sh scripts/kinesis-servers.sh; do
  if [ -x "$script" ]; then "$script" install; fi
done
if [ -x scripts/install-ops-tools.sh ]; then scripts/install-ops-tools.sh; fi
