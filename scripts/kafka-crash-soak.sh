#!/usr/bin/env bash
# Kafka crash soak: the SIGKILL recovery test with more kill points.
#
#   scripts/kafka-crash-soak.sh [KILLS]     # default 40
#
# Runs `kafka::sigkill_mid_stream_then_restart_loses_no_alert` with
# TRAILWATCH_CRASH_KILLS=KILLS over a stream 33 keys per kill long (about
# 300 records per kill). Each kill lands only after the process has replayed
# what its predecessors read and read fresh records; at the end a restart
# runs to the end and the alert topic must hold exactly the reference alert
# ids, repeats byte-identical. Starts its own tansu (scripts/kafka-broker.sh).
# Not part of .ci/run: it takes about 10 seconds per kill.
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-40}"
TRAILWATCH_CRASH_KILLS="$kills" cargo test --test kafka \
  sigkill_mid_stream_then_restart_loses_no_alert -- --nocapture
