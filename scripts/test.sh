#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
#
# It installs what the tests need (a Kafka-protocol broker, a Kinesis API
# server, a DynamoDB API server, Prometheus/promtool, kubectl,
# kubernetes-validate, cargo-deny, cargo-fuzz), then runs formatting, lints,
# every test, the deployment checks, the supply-chain checks and a short
# fuzzing pass. Installed tools are cached (~/.cargo/bin, .tools/), so
# later runs skip the installs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test"
cargo test --locked --no-fail-fast

step "built-in rule tests (trailwatch rules test)"
cargo run --locked --quiet -- rules test

step "replay of the shipped samples"
cargo run --locked --quiet -- replay --quiet samples/ > /dev/null

step "deployment manifests"
scripts/check-manifests.sh

step "local dev script (deploy/local-dev.sh) against tansu, ferrokinesis, moto and Prometheus"
scripts/local-dev-smoke.sh

step "supply chain (cargo deny; advisories when the database is reachable)"
scripts/supply-chain.sh

step "fuzzing, short budget"
scripts/fuzz.sh --ci

step "all checks passed"
