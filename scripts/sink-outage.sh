#!/usr/bin/env bash
# Sink down for 60 seconds (issue 8), wall clock: runs the ignored
# variant of tests/backpressure.rs, whose alert sink fails every send for
# TRAILWATCH_OUTAGE_SECS seconds (default 60), then recovers. It checks
# that intake paused (the source handed out no more than the bounded
# pipeline holds), that no safe commit position passed an unacknowledged
# alert, and that every alert was delivered exactly once afterwards.
# CI runs the count-based variant (five failed sends) instead.
#
#   scripts/sink-outage.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export TRAILWATCH_OUTAGE_SECS=${1:-60}
cargo test --locked --release --test backpressure -- --ignored --nocapture \
  sink_down_for_a_wall_clock_outage
