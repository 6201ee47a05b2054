#!/usr/bin/env bash
# Installs everything the test suite needs, idempotently. Each backend has
# its own script; this one just calls them in order.
set -euo pipefail
cd "$(dirname "$0")/.."
for script in scripts/kafka-broker.sh scripts/kinesis-servers.sh; do
  if [ -x "$script" ]; then "$script" install; fi
done
if [ -x scripts/install-ops-tools.sh ]; then scripts/install-ops-tools.sh; fi
