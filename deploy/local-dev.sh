#!/usr/bin/env bash
# Runs trailwatch locally against local backends, no Docker:
#   - tansu (Kafka protocol) on 127.0.0.1:9092 with topic `cloudtrail`,
#   - ferrokinesis (Kinesis API) on 127.0.0.1:4567 with stream `cloudtrail`,
#     and moto for the DynamoDB lease table on 127.0.0.1:5000,
#   - Prometheus on 127.0.0.1:9090 scraping trailwatch on 127.0.0.1:9464
#     with deploy/prometheus/alerts.yaml loaded,
# then trailwatch itself in the foreground (Ctrl-C stops everything).
#
#   deploy/local-dev.sh [kafka|kinesis|file]     (default: file)
#
# Best effort: each backend starts only when its binary is installed
# (`cargo install tansu --locked --features dynostore`,
# `cargo install ferrokinesis --locked`, `pip install 'moto[server]'`,
# `apt-get install prometheus`, see shared GUIDE §9). State lives in
# .tools/local-dev (gitignored) and is thrown away on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-file}
state=.tools/local-dev
rm -rf "$state"
mkdir -p "$state"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_port() { # host port name
    for _ in $(seq 1 60); do
        if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
        sleep 0.5
    done
    echo "local-dev: $3 did not open $1:$2" >&2
    return 1
}

# TRAILWATCH_BIN=path skips the release build (e.g. a debug binary).
if [ -n "${TRAILWATCH_BIN:-}" ]; then
    bin=$TRAILWATCH_BIN
else
    cargo build --release --bin trailwatch
    bin=${CARGO_TARGET_DIR:-target}/release/trailwatch
fi

config=$state/config.yaml
case $mode in
kafka)
    command -v tansu >/dev/null || { echo "local-dev: tansu not installed" >&2; exit 2; }
    tansu broker --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
        --storage-engine memory://tansu/ > "$state/tansu.log" 2>&1 &
    pids+=($!)
    wait_port 127.0.0.1 9092 tansu
    tansu topic create cloudtrail --broker tcp://127.0.0.1:9092 --partitions 3 || true
    # The overlay scales out: its repartition topic lives on the same broker.
    tansu topic create trailwatch-repartition --broker tcp://127.0.0.1:9092 --partitions 3 || true
    sed -e 's#^\(    brokers:\).*#\1 127.0.0.1:9092#' -e 's#^\(  brokers:\).*#\1 127.0.0.1:9092#' \
        -e '/security.protocol/d' -e '/sasl\./d' -e '/Read from the environment/d' -e '/^    properties:$/d' \
        -e 's#/etc/trailwatch/rules#k8s/base/rules#' \
        -e 's#0.0.0.0:9464#127.0.0.1:9464#' -e 's#format: json#format: human#' \
        k8s/overlays/kafka/config.yaml > "$config"
    ;;
kinesis)
    command -v ferrokinesis >/dev/null || { echo "local-dev: ferrokinesis not installed" >&2; exit 2; }
    ferrokinesis --port 4567 --create-stream-ms 10 > "$state/ferrokinesis.log" 2>&1 &
    pids+=($!)
    wait_port 127.0.0.1 4567 ferrokinesis
    if command -v moto_server >/dev/null; then
        moto_server -p 5000 > "$state/moto.log" 2>&1 &
        pids+=($!)
        wait_port 127.0.0.1 5000 moto
    fi
    export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1
    # Create the input and alert streams (ferrokinesis checks only that a
    # SigV4 header is present, not its signature).
    for stream in cloudtrail security-findings; do
        curl -sf -X POST http://127.0.0.1:4567/ \
            -H 'Authorization: AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0' \
            -H 'X-Amz-Date: 20260101T000000Z' -H 'Content-Type: application/x-amz-json-1.1' \
            -H 'X-Amz-Target: Kinesis_20131202.CreateStream' \
            -d "{\"StreamName\":\"$stream\",\"ShardCount\":2}" > /dev/null
    done
    sleep 1
    # Endpoint overrides go on the source only (the first `region:` line);
    # the alert sink gets the Kinesis endpoint.
    sed -e '0,/^    region:/s#^\(    region:.*\)#\1\n    endpoint_url: http://127.0.0.1:4567\n    dynamodb_endpoint_url: http://127.0.0.1:5000#' \
        -e 's#^\(    stream: security-findings\)#\1\n    endpoint_url: http://127.0.0.1:4567#' \
        -e 's#/etc/trailwatch/rules#k8s/base/rules#' \
        -e 's#0.0.0.0:9464#127.0.0.1:9464#' -e 's#format: json#format: human#' \
        deploy/config/kinesis.yaml > "$config"
    ;;
file)
    # Reads CloudTrail JSON lines from stdin; pipe a file in, or type.
    cat > "$config" <<'YAML'
rules:
  dirs: [k8s/base/rules]
sources:
  - type: file
    paths: ["-"]
metrics:
  listen: 127.0.0.1:9464
YAML
    ;;
*)
    echo "usage: $0 [kafka|kinesis|file]" >&2
    exit 2
    ;;
esac

if command -v prometheus >/dev/null; then
    cp deploy/prometheus/prometheus.yml deploy/prometheus/alerts.yaml "$state/"
    prometheus --config.file="$state/prometheus.yml" --storage.tsdb.path="$state/tsdb" \
        --web.listen-address=127.0.0.1:9090 > "$state/prometheus.log" 2>&1 &
    pids+=($!)
    echo "local-dev: Prometheus on http://127.0.0.1:9090 (alerts: /alerts)"
else
    echo "local-dev: prometheus not installed; /metrics still on http://127.0.0.1:9464/metrics"
fi

"$bin" run --config "$config" --check
echo "local-dev: trailwatch ($mode) on http://127.0.0.1:9464/{metrics,livez,readyz}"
"$bin" run --config "$config"
