//! Kinesis path benchmark against the local ferrokinesis + moto servers.
//!
//! Run: `cargo bench --bench kinesis_e2e` (servers installed by
//! `scripts/kinesis-servers.sh install`). Prints, for `BENCHMARKS.md`:
//!
//! 1. put rate into the local server (PutRecords, 500 a call);
//! 2. a bare SDK GetRecords drain of the same stream: the ceiling the
//!    local server sets for any consumer;
//! 3. events/s through the engine with the Kinesis source (raw records,
//!    then CloudWatch Logs envelopes of 50 events each);
//! 4. CPU seconds of this process per GetRecords poll cycle on caught-up
//!    shards polled at the AWS limit (5 calls/s), hence shards per core.
//!
//! Sizes scale with `KINESIS_BENCH_EVENTS` (default 100000).

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use serde_json::json;
use trailwatch::engine::{Engine, EngineConfig};
use trailwatch::rules::RuleSet;
use trailwatch::sink::writer::{MemoryDeadLetters, MemorySink};
use trailwatch::source::kinesis::{KinesisSource, KinesisSourceConfig};
use trailwatch::source::{PartitionRegistry, Poll, Source};

const RULE: &str = r#"
id: bench-console-failures
title: Console sign-in failures per user
severity: medium
kind: cloudtrail
filter: '{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }'
group_by: [userIdentity.userName]
window: 5m
threshold: ">= 3"
"#;

struct Servers {
    children: Vec<Child>,
    kinesis_url: String,
    dynamodb_url: String,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16) {
    for _ in 0..600 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("server on port {port} did not start");
}

fn start_servers() -> Servers {
    let root = env!("CARGO_MANIFEST_DIR");
    let status = Command::new(format!("{root}/scripts/kinesis-servers.sh"))
        .arg("install")
        .status()
        .unwrap();
    assert!(status.success());
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let (kp, dp) = (free_port(), free_port());
    let kinesis = Command::new(format!("{root}/.tools/bin/ferrokinesis"))
        .args([
            "--port",
            &kp.to_string(),
            "--create-stream-ms",
            "10",
            "--shard-limit",
            "1000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let moto = Command::new(format!("{root}/.tools/moto/bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &dp.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(kp);
    wait_port(dp);
    Servers {
        children: vec![kinesis, moto],
        kinesis_url: format!("http://127.0.0.1:{kp}"),
        dynamodb_url: format!("http://127.0.0.1:{dp}"),
    }
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn event(i: usize) -> serde_json::Value {
    let failing = i % 10 == 0;
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "userName": format!("user{}", i % 500), "accountId": "111122223333"},
        "eventTime": format!("2024-03-01T12:{:02}:{:02}Z", (i / 60) % 60, i % 60),
        "eventSource": if failing { "signin.amazonaws.com" } else { "ec2.amazonaws.com" },
        "eventName": if failing { "ConsoleLogin" } else { "DescribeInstances" },
        "errorMessage": if failing { "Failed authentication" } else { "" },
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "eventID": format!("e{i}"),
        "recipientAccountId": "111122223333",
    })
}

fn envelope(events: &[serde_json::Value]) -> Vec<u8> {
    let log_events: Vec<serde_json::Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"id": i.to_string(), "timestamp": 1709294400000i64, "message": e.to_string()}))
        .collect();
    let body = json!({"messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": "ct",
        "logStream": "s", "subscriptionFilters": ["f"], "logEvents": log_events});
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body.to_string().as_bytes()).unwrap();
    encoder.finish().unwrap()
}

struct Admin {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_kinesis::Client,
}

impl Admin {
    fn create(&self, stream: &str, shards: i32) {
        self.runtime.block_on(async {
            self.client
                .create_stream()
                .stream_name(stream)
                .shard_count(shards)
                .send()
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
    }

    fn put(&self, stream: &str, records: Vec<Vec<u8>>) -> Duration {
        let started = Instant::now();
        self.runtime.block_on(async {
            for (chunk_index, chunk) in records.chunks(500).enumerate() {
                let entries: Vec<PutRecordsRequestEntry> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, data)| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(format!("k{}", chunk_index * 500 + i))
                            .data(Blob::new(data.clone()))
                            .build()
                            .unwrap()
                    })
                    .collect();
                let out = self
                    .client
                    .put_records()
                    .stream_name(stream)
                    .set_records(Some(entries))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(out.failed_record_count().unwrap_or(0), 0);
            }
        });
        started.elapsed()
    }

    /// Reads every record with bare GetRecords calls; returns (records, time).
    fn drain(&self, stream: &str) -> (usize, Duration) {
        let started = Instant::now();
        let count = self.runtime.block_on(async {
            let shards = self
                .client
                .list_shards()
                .stream_name(stream)
                .send()
                .await
                .unwrap();
            let mut count = 0;
            for shard in shards.shards() {
                let mut iterator = self
                    .client
                    .get_shard_iterator()
                    .stream_name(stream)
                    .shard_id(shard.shard_id())
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .unwrap()
                    .shard_iterator()
                    .map(str::to_string);
                while let Some(current) = iterator.take() {
                    let got = self
                        .client
                        .get_records()
                        .shard_iterator(current)
                        .limit(10_000)
                        .send()
                        .await
                        .unwrap();
                    count += got.records().len();
                    if !got.records().is_empty() {
                        iterator = got.next_shard_iterator().map(str::to_string);
                    }
                }
            }
            count
        });
        (count, started.elapsed())
    }
}

fn source_config(servers: &Servers, stream: &str) -> KinesisSourceConfig {
    let mut config = KinesisSourceConfig::new(stream);
    config.region = Some("us-east-1".into());
    config.endpoint_url = Some(servers.kinesis_url.clone());
    config.dynamodb_endpoint_url = Some(servers.dynamodb_url.clone());
    config.worker_id = "bench".into();
    config.lease_duration = Duration::from_secs(10);
    config.poll_interval = Duration::from_millis(200);
    config
}

/// Runs the engine until `events` events were decoded; returns the time
/// from the first decoded event to the last (start-up and lease taking
/// excluded) and the total time since the source was built.
fn run_engine(servers: &Servers, stream: &str, events: u64) -> (Duration, Duration) {
    let spec = trailwatch::rules::parse_rule_text("bench", RULE).unwrap();
    let rules = Arc::new(RuleSet::compile(&[spec]).unwrap());
    let mut config = EngineConfig {
        flush_on_end: false,
        ..EngineConfig::default()
    };
    config.watermark.replay = false;
    let engine = Engine::new(config, rules);
    let metrics = engine.metrics();
    let stop = engine.stop_handle();
    let started = Instant::now();
    let source = KinesisSource::new(source_config(servers, stream)).unwrap();
    let handle = std::thread::spawn(move || {
        engine.run(
            vec![Box::new(source)],
            Box::new(MemorySink::default()),
            Box::new(MemoryDeadLetters::default()),
        )
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut first: Option<Instant> = None;
    loop {
        let decoded: u64 = metrics
            .decoders
            .iter()
            .map(|d| d.events.load(Ordering::Relaxed))
            .sum();
        if decoded > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if decoded >= events || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let total = started.elapsed();
    let steady = first.map_or(total, |t| t.elapsed());
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap().unwrap();
    (steady, total)
}

fn main() {
    let events: usize = std::env::var("KINESIS_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let servers = start_servers();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sdk = runtime.block_on(trailwatch::source::kinesis::load_aws_config(
        Some("us-east-1"),
        Some(&servers.kinesis_url),
    ));
    let admin = Admin {
        client: aws_sdk_kinesis::Client::new(&sdk),
        runtime,
    };

    // Raw records: one CloudTrail event per Kinesis record.
    let raw: Vec<Vec<u8>> = (0..events)
        .map(|i| event(i).to_string().into_bytes())
        .collect();
    let bytes: usize = raw.iter().map(Vec::len).sum();
    admin.create("raw", 4);
    let put = admin.put("raw", raw);
    println!(
        "put: {events} records ({:.1} MiB) in {:.2}s = {:.0} records/s",
        bytes as f64 / 1048576.0,
        put.as_secs_f64(),
        events as f64 / put.as_secs_f64()
    );
    let (drained, drain_time) = admin.drain("raw");
    println!(
        "bare GetRecords drain: {drained} records in {:.2}s = {:.0} records/s (server ceiling)",
        drain_time.as_secs_f64(),
        drained as f64 / drain_time.as_secs_f64()
    );
    let (raw_steady, raw_total) = run_engine(&servers, "raw", events as u64);
    println!(
        "engine, raw records, 4 shards: {events} events in {:.2}s after the first = {:.0} events/s ({:.2}s with start-up)",
        raw_steady.as_secs_f64(),
        events as f64 / raw_steady.as_secs_f64(),
        raw_total.as_secs_f64()
    );

    // CloudWatch Logs envelopes of 50 events each.
    let all: Vec<serde_json::Value> = (0..events).map(event).collect();
    let envelopes: Vec<Vec<u8>> = all.chunks(50).map(envelope).collect();
    let envelope_count = envelopes.len();
    admin.create("cwl", 4);
    admin.put("cwl", envelopes);
    let (_, cwl_drain) = admin.drain("cwl");
    let (cwl_steady, cwl_total) = run_engine(&servers, "cwl", events as u64);
    println!(
        "engine, cloudwatch logs envelopes (50 events, gzip), 4 shards: {events} events ({envelope_count} records) in {:.2}s after the first = {:.0} events/s ({:.2}s with start-up; bare drain {:.2}s)",
        cwl_steady.as_secs_f64(),
        events as f64 / cwl_steady.as_secs_f64(),
        cwl_total.as_secs_f64(),
        cwl_drain.as_secs_f64()
    );

    // CPU per poll cycle on caught-up shards at 5 GetRecords calls/s.
    let shards = 32;
    admin.create("idle", shards);
    let mut source = KinesisSource::new(source_config(&servers, "idle")).unwrap();
    let registry = PartitionRegistry::default();
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(5) {
        let _ = source.poll(&registry).unwrap();
    }
    let held = source.held_shards_handle().shards().len();
    let cpu_before = cpu_seconds();
    let measured = Instant::now();
    while measured.elapsed() < Duration::from_secs(10) {
        if let Poll::Batch(_) = source.poll(&registry).unwrap() {
            panic!("idle stream produced records");
        }
    }
    let cpu = cpu_seconds() - cpu_before;
    let wall = measured.elapsed().as_secs_f64();
    let calls = held as f64 * 5.0 * wall;
    let per_call = cpu / calls;
    println!(
        "idle polling: {held} shards at 5 calls/s for {wall:.1}s = {calls:.0} GetRecords, {cpu:.2} cpu s => {:.0} us cpu per call, {:.0} shards per core at 5 calls/s",
        per_call * 1e6,
        1.0 / (per_call * 5.0)
    );
    drop(source);
}
