//! Kinesis source and alert sink against real local API servers:
//! ferrokinesis (Kinesis) and moto (DynamoDB lease table), installed and
//! started by `scripts/kinesis-servers.sh install` (each test starts its
//! own pair on free loopback ports and stops it when done).
//!
//! Set `TRAILWATCH_SKIP_KINESIS=1` to skip these tests (they then print
//! why). Waits are bounded polling loops; assertions are on content only.

#![cfg(feature = "kinesis")]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use serde_json::{json, Value};
use trailwatch::alert::Alert;
use trailwatch::engine::shutdown::ShutdownClock;
use trailwatch::engine::{Engine, EngineConfig, RunSummary};
use trailwatch::error::Result as TwResult;
use trailwatch::metrics::Metrics;
use trailwatch::rules::RuleSet;
use trailwatch::sink::kinesis::{KinesisAlertSink, KinesisSinkConfig};
use trailwatch::sink::writer::MemoryDeadLetters;
use trailwatch::sink::{AlertSink, DeadLetter};
use trailwatch::source::kinesis::{FanOutConfig, KinesisSource, KinesisSourceConfig, ReadMode};
use trailwatch::source::{PartitionRegistry, Poll, RawBatch, Source};

const RULE: &str = r#"
id: test-console-failures
title: Console sign-in failures per user
severity: medium
kind: cloudtrail
filter: '{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }'
group_by: [userIdentity.userName]
window: 5m
threshold: ">= 3"
"#;

/// A ferrokinesis + moto pair, killed on drop.
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
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("server on port {port} did not start");
}

/// Installs the servers once per test process and sets dummy credentials.
fn prepare() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        if std::env::var("TRAILWATCH_SKIP_KINESIS").as_deref() == Ok("1") {
            return false;
        }
        let root = env!("CARGO_MANIFEST_DIR");
        let status = Command::new(format!("{root}/scripts/kinesis-servers.sh"))
            .arg("install")
            .status()
            .expect("run scripts/kinesis-servers.sh install");
        assert!(
            status.success(),
            "installing the kinesis test servers failed"
        );
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        // Set before any SDK client exists (the OnceLock serialises this).
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        true
    })
}

fn start_servers() -> Option<Servers> {
    start_servers_with(&[])
}

/// As [`start_servers`], with extra ferrokinesis arguments.
fn start_servers_with(extra: &[&str]) -> Option<Servers> {
    if !prepare() {
        eprintln!("skipping: TRAILWATCH_SKIP_KINESIS=1");
        return None;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let kinesis_port = free_port();
    let dynamodb_port = free_port();
    let kinesis = Command::new(format!("{root}/.tools/bin/ferrokinesis"))
        .args([
            "--port",
            &kinesis_port.to_string(),
            "--create-stream-ms",
            "10",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ferrokinesis");
    let moto = Command::new(format!("{root}/.tools/moto/bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &dynamodb_port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let servers = Servers {
        children: vec![kinesis, moto],
        kinesis_url: format!("http://127.0.0.1:{kinesis_port}"),
        dynamodb_url: format!("http://127.0.0.1:{dynamodb_port}"),
    };
    wait_port(kinesis_port);
    wait_port(dynamodb_port);
    Some(servers)
}

/// Admin client for the test (its own runtime).
struct Admin {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_kinesis::Client,
}

impl Admin {
    fn new(servers: &Servers) -> Admin {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sdk = runtime.block_on(trailwatch::source::kinesis::load_aws_config(
            Some("us-east-1"),
            Some(&servers.kinesis_url),
        ));
        Admin {
            runtime,
            client: aws_sdk_kinesis::Client::new(&sdk),
        }
    }

    fn create_stream(&self, name: &str, shards: i32) {
        self.runtime.block_on(async {
            self.client
                .create_stream()
                .stream_name(name)
                .shard_count(shards)
                .send()
                .await
                .unwrap();
            for _ in 0..200 {
                let described = self
                    .client
                    .describe_stream_summary()
                    .stream_name(name)
                    .send()
                    .await
                    .unwrap();
                let status = described
                    .stream_description_summary()
                    .map(|d| d.stream_status().clone());
                if status == Some(aws_sdk_kinesis::types::StreamStatus::Active) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("stream {name} did not become active");
        });
    }

    fn wait_active(&self, name: &str) {
        self.runtime.block_on(async {
            for _ in 0..500 {
                let described = self
                    .client
                    .describe_stream_summary()
                    .stream_name(name)
                    .send()
                    .await
                    .unwrap();
                let status = described
                    .stream_description_summary()
                    .map(|d| d.stream_status().clone());
                if status == Some(aws_sdk_kinesis::types::StreamStatus::Active) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("stream {name} did not become active again");
        });
    }

    /// Puts `(partition key, data)` records, in order, one call per record
    /// so that per-key order is the put order.
    /// Puts `records` one by one; returns their sequence numbers.
    fn put(&self, stream: &str, records: &[(String, Vec<u8>)]) -> Vec<String> {
        self.runtime.block_on(async {
            let mut sequence_numbers = Vec::new();
            for (key, data) in records {
                let put = self
                    .client
                    .put_record()
                    .stream_name(stream)
                    .partition_key(key)
                    .data(Blob::new(data.clone()))
                    .send()
                    .await
                    .unwrap();
                sequence_numbers.push(put.sequence_number().to_string());
            }
            sequence_numbers
        })
    }

    /// Open shards: (id, starting hash key, ending hash key).
    fn open_shards(&self, stream: &str) -> Vec<(String, u128, u128)> {
        self.runtime.block_on(async {
            let listed = self
                .client
                .list_shards()
                .stream_name(stream)
                .send()
                .await
                .unwrap();
            listed
                .shards()
                .iter()
                .filter(|s| {
                    s.sequence_number_range()
                        .and_then(|r| r.ending_sequence_number())
                        .is_none()
                })
                .map(|s| {
                    let range = s.hash_key_range().unwrap();
                    (
                        s.shard_id().to_string(),
                        range.starting_hash_key().parse().unwrap(),
                        range.ending_hash_key().parse().unwrap(),
                    )
                })
                .collect()
        })
    }

    fn split(&self, stream: &str, shard: &str, at: u128) {
        self.runtime.block_on(async {
            self.client
                .split_shard()
                .stream_name(stream)
                .shard_to_split(shard)
                .new_starting_hash_key(at.to_string())
                .send()
                .await
                .unwrap();
        });
        self.wait_active(stream);
    }

    /// Merges two adjacent shards; `Err` if the server does not support it.
    fn merge(&self, stream: &str, shard: &str, adjacent: &str) -> Result<(), String> {
        let merged = self.runtime.block_on(async {
            self.client
                .merge_shards()
                .stream_name(stream)
                .shard_to_merge(shard)
                .adjacent_shard_to_merge(adjacent)
                .send()
                .await
        });
        merged.map_err(|e| aws_sdk_kinesis::error::DisplayErrorContext(e).to_string())?;
        self.wait_active(stream);
        Ok(())
    }

    /// Every record of every shard of `stream`, as JSON.
    fn read_all(&self, stream: &str) -> Vec<Value> {
        self.runtime.block_on(async {
            let mut out = Vec::new();
            let listed = self
                .client
                .list_shards()
                .stream_name(stream)
                .send()
                .await
                .unwrap();
            for shard in listed.shards() {
                let mut iterator = self
                    .client
                    .get_shard_iterator()
                    .stream_name(stream)
                    .shard_id(shard.shard_id())
                    .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
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
                        .send()
                        .await
                        .unwrap();
                    for record in got.records() {
                        out.push(serde_json::from_slice(record.data().as_ref()).unwrap());
                    }
                    if !got.records().is_empty() {
                        iterator = got.next_shard_iterator().map(str::to_string);
                    }
                }
            }
            out
        })
    }
}

fn rules() -> Arc<RuleSet> {
    let spec = trailwatch::rules::parse_rule_text("test", RULE).unwrap();
    Arc::new(RuleSet::compile(&[spec]).unwrap())
}

fn cloudtrail(user: &str, index: usize) -> Value {
    // Three events a user per five-minute window, windows ten minutes
    // apart: all within the allowed lateness (15 minutes), so no event is
    // late whichever shard the engine hears from first.
    let minute = (index / 3) * 10 + index % 3;
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "userName": user, "accountId": "111122223333"},
        "eventTime": format!("2024-03-01T08:{minute:02}:01Z"),
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "errorMessage": "Failed authentication",
        "awsRegion": "us-east-1",
        "eventID": format!("{user}-{index}"),
        "recipientAccountId": "111122223333",
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn cloudwatch_envelope(events: &[Value]) -> Vec<u8> {
    let log_events: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"id": i.to_string(), "timestamp": 1709280000000i64 + i as i64, "message": e.to_string()}))
        .collect();
    let envelope = json!({
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": "aws-cloudtrail-logs",
        "logStream": "111122223333_CloudTrail_us-east-1",
        "subscriptionFilters": ["trailwatch"],
        "logEvents": log_events,
    });
    gzip(envelope.to_string().as_bytes())
}

/// `(partition key, data)` records.
type Keyed = Vec<(String, Vec<u8>)>;

/// The fixture: per user, `events` CloudTrail records (three a window),
/// written as raw records, CloudWatch Logs envelopes or KPL aggregates by
/// user index. Window-major order, so event time only moves forward and
/// nothing is late. Returns (kinesis records, plain events for the reference).
fn fixture(users: usize, events: usize, offset: usize) -> (Keyed, Vec<Vec<u8>>) {
    let mut records = Vec::new();
    let mut plain = Vec::new();
    for window in 0..events.div_ceil(3) {
        for u in offset..offset + users {
            let user = format!("user{u:03}");
            let values: Vec<Value> = (window * 3..(window * 3 + 3).min(events))
                .map(|i| cloudtrail(&user, i))
                .collect();
            let payloads: Vec<Vec<u8>> =
                values.iter().map(|v| v.to_string().into_bytes()).collect();
            plain.extend(payloads.iter().cloned());
            match u % 3 {
                0 => records.extend(payloads.into_iter().map(|p| (user.clone(), p))),
                1 => records.push((user.clone(), cloudwatch_envelope(&values))),
                _ => {
                    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                    records.push((user.clone(), trailwatch::decode::kpl::aggregate(&refs)));
                }
            }
        }
    }
    (records, plain)
}

/// The Create alert ids the engine gives for `plain` (replay, in memory).
fn reference_ids(plain: Vec<Vec<u8>>) -> BTreeSet<String> {
    let spec = trailwatch::rules::parse_rule_text("test", RULE).unwrap();
    let alerts = trailwatch::rules::testing::run_rule(&spec, plain).unwrap();
    alerts
        .iter()
        .filter(|a| a.activity == trailwatch::alert::Activity::Create)
        .map(|a| a.id.clone())
        .collect()
}

fn create_ids(alerts: &[Value]) -> BTreeSet<String> {
    alerts
        .iter()
        .filter(|a| a["activity_id"] == 1)
        .map(|a| a["finding_info"]["uid"].as_str().unwrap().to_string())
        .collect()
}

fn source_config(servers: &Servers, stream: &str, worker: &str) -> KinesisSourceConfig {
    let mut config = KinesisSourceConfig::new(stream);
    config.region = Some("us-east-1".into());
    config.endpoint_url = Some(servers.kinesis_url.clone());
    config.dynamodb_endpoint_url = Some(servers.dynamodb_url.clone());
    config.worker_id = worker.to_string();
    config.lease_duration = Duration::from_millis(1500);
    config.poll_interval = Duration::from_millis(100);
    config.shard_sync_interval = Duration::from_secs(1);
    config
}

/// Like [`source_config`], reading through enhanced fan-out with short
/// subscriptions, so that readers resubscribe several times a test.
fn fan_out_config(servers: &Servers, stream: &str, worker: &str) -> KinesisSourceConfig {
    let mut config = source_config(servers, stream, worker);
    let mut fan_out = FanOutConfig::new("trailwatch-test");
    fan_out.subscription_limit = Duration::from_secs(2);
    config.read_mode = ReadMode::FanOut(fan_out);
    config
}

struct Running {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: JoinHandle<TwResult<RunSummary>>,
    /// What the engine dead-lettered.
    dead: Arc<std::sync::Mutex<Vec<DeadLetter>>>,
}

impl Running {
    fn stop(self) -> RunSummary {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap().unwrap()
    }
}

fn start_engine(servers: &Servers, source: KinesisSource, alerts: &str) -> Running {
    let mut config = EngineConfig {
        shards: 2,
        decoders: 2,
        flush_on_end: false,
        commit_interval: Duration::from_millis(200),
        shutdown_deadline: Duration::from_secs(10),
        ..EngineConfig::default()
    };
    config.watermark.replay = false;
    let engine = Engine::new(config, rules());
    let stop = engine.stop_handle();
    let sink = KinesisAlertSink::new(&KinesisSinkConfig {
        stream: alerts.to_string(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(servers.kinesis_url.clone()),
    })
    .unwrap();
    let dead_letters = MemoryDeadLetters::default();
    let dead = Arc::clone(&dead_letters.records);
    let handle = std::thread::spawn(move || {
        engine.run(
            vec![Box::new(source)],
            Box::new(sink),
            Box::new(dead_letters),
        )
    });
    Running { stop, handle, dead }
}

/// Polls `read` until `done` holds or two minutes pass; returns the last read.
fn wait_for<T>(mut read: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let value = read();
        if done(&value) || Instant::now() >= deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every alert event id's payloads are identical.
fn assert_repeats_identical(alerts: &[Value]) {
    let mut by_event: HashMap<String, &Value> = HashMap::new();
    for alert in alerts {
        let id = alert["metadata"]["uid"].as_str().unwrap().to_string();
        if let Some(previous) = by_event.insert(id.clone(), alert) {
            assert_eq!(previous, alert, "repeat of {id} differs");
        }
    }
}

#[test]
fn end_to_end_raw_envelope_and_kpl_records_give_the_exact_alert_set() {
    end_to_end_gives_the_exact_alert_set(source_config);
}

#[test]
fn fan_out_end_to_end_raw_envelope_and_kpl_records_give_the_exact_alert_set() {
    end_to_end_gives_the_exact_alert_set(fan_out_config);
}

/// Raw records, CloudWatch Logs envelopes and KPL aggregates on two shards
/// give exactly the reference alert set, read as `config` says.
fn end_to_end_gives_the_exact_alert_set(config: fn(&Servers, &str, &str) -> KinesisSourceConfig) {
    let Some(servers) = start_servers() else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("trail", 2);
    admin.create_stream("alerts", 1);
    let (records, plain) = fixture(12, 6, 0);
    let expected = reference_ids(plain);
    assert_eq!(expected.len(), 24, "two windows for each of twelve users");
    admin.put("trail", &records);
    // A corrupt KPL aggregate goes to the dead-letter output, not an alert.
    let mut bad = trailwatch::decode::kpl::aggregate(&[b"{}"]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let bad_sequence = admin.put("trail", &[("bad".to_string(), bad.clone())]);

    let source = KinesisSource::new(config(&servers, "trail", "w1")).unwrap();
    let lag = source.lag();
    let running = start_engine(&servers, source, "alerts");
    let alerts = wait_for(
        || admin.read_all("alerts"),
        |alerts| create_ids(alerts).len() >= expected.len(),
    );
    let dead = Arc::clone(&running.dead);
    running.stop();
    assert_eq!(create_ids(&alerts), expected);
    // Its dead letter names the record's sequence number, where it can
    // be read again (its offset is a per-process ordinal).
    let dead: Vec<(String, Option<String>, Vec<u8>)> = dead
        .lock()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d.partition.clone(),
                d.sequence_number.clone(),
                d.bytes.clone(),
            )
        })
        .collect();
    assert_eq!(dead.len(), 1, "one dead letter: {dead:?}");
    assert!(dead[0].0.starts_with("kinesis:trail/shardId-"), "{dead:?}");
    assert_eq!(
        dead[0].1.as_ref(),
        bad_sequence.first(),
        "its sequence number"
    );
    assert_eq!(dead[0].2, bad, "its bytes");
    assert_repeats_identical(&alerts);
    let lag = lag.lock().unwrap().clone();
    assert_eq!(lag.len(), 2, "millis behind for both shards: {lag:?}");
}

/// Polls a bare source (as the engine would, committing everything read)
/// until `want` records arrived or two minutes pass.
fn drain_source(
    source: &mut KinesisSource,
    registry: &PartitionRegistry,
    seen: &mut BTreeMap<String, Vec<u64>>,
    want: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut read_end: BTreeMap<u32, u64> = BTreeMap::new();
    while seen.values().map(Vec::len).sum::<usize>() < want && Instant::now() < deadline {
        match source.poll(registry).unwrap() {
            Poll::Batch(batch) => {
                note_keyed(&batch, seen);
                if let Some((_, last)) = batch.records.last() {
                    read_end.insert(batch.partition, last + 1);
                }
            }
            Poll::Idle => {}
            Poll::End => break,
        }
        let positions: Vec<(u32, u64)> = read_end.iter().map(|(p, o)| (*p, *o)).collect();
        source.commit(&positions).unwrap();
    }
}

/// Appends the index `i` of every [`keyed`] record of `batch` to its key's
/// list in `seen`.
fn note_keyed(batch: &RawBatch, seen: &mut BTreeMap<String, Vec<u64>>) {
    for index in 0..batch.len() {
        let value: Value = serde_json::from_slice(batch.record(index)).unwrap();
        let key = value["key"].as_str().unwrap().to_string();
        seen.entry(key)
            .or_default()
            .push(value["i"].as_u64().unwrap());
    }
}

fn keyed(keys: usize, from: u64, to: u64) -> Vec<(String, Vec<u8>)> {
    let mut records = Vec::new();
    for i in from..to {
        for k in 0..keys {
            let key = format!("key{k:02}");
            records.push((
                key.clone(),
                json!({"key": key, "i": i}).to_string().into_bytes(),
            ));
        }
    }
    records
}

#[test]
fn split_and_merge_mid_stream_lose_nothing_and_keep_key_order() {
    let Some(servers) = start_servers() else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("reshard", 2);
    let keys = 16;
    let registry = PartitionRegistry::default();
    let mut source = KinesisSource::new(source_config(&servers, "reshard", "w1")).unwrap();
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();

    admin.put("reshard", &keyed(keys, 0, 5));
    // Split the first shard while its records are being read.
    let (first, start, end) = admin.open_shards("reshard")[0].clone();
    admin.split("reshard", &first, start + (end - start) / 2);
    admin.put("reshard", &keyed(keys, 5, 10));
    drain_source(&mut source, &registry, &mut seen, keys * 10);

    // Merge the two children of the split back together.
    let mut open = admin.open_shards("reshard");
    open.sort_by_key(|s| s.1);
    let merge = admin.merge("reshard", &open[0].0, &open[1].0);
    match &merge {
        Ok(()) => {}
        Err(error) => eprintln!("merge not supported by the local server: {error}"),
    }
    admin.put("reshard", &keyed(keys, 10, 15));
    drain_source(&mut source, &registry, &mut seen, keys * 15);

    let expected: Vec<u64> = (0..15).collect();
    assert_eq!(seen.len(), keys);
    for (key, order) in &seen {
        assert_eq!(
            order, &expected,
            "records of {key} lost, repeated or out of order"
        );
    }
    assert!(merge.is_ok(), "MergeShards failed: {merge:?}");
}

/// Resharding under the running engine: a split and then a merge while
/// alerts are being produced; the alert stream ends with exactly the
/// reference set (children are read only after their parents end, so no
/// window sees a key's records out of order and none is counted twice).
#[test]
fn split_and_merge_under_the_engine_give_the_exact_alert_set() {
    let Some(servers) = start_servers() else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("reshard", 2);
    admin.create_stream("alerts", 1);
    let (records, plain) = fixture(12, 9, 0);
    let expected = reference_ids(plain);
    assert_eq!(expected.len(), 36, "three windows for each of twelve users");
    let (first, rest) = records.split_at(records.len() / 3);
    let (second, third) = rest.split_at(rest.len() / 2);

    let source = KinesisSource::new(source_config(&servers, "reshard", "w1")).unwrap();
    let running = start_engine(&servers, source, "alerts");
    admin.put("reshard", first);
    let (shard, start, end) = admin.open_shards("reshard")[0].clone();
    admin.split("reshard", &shard, start + (end - start) / 2);
    admin.put("reshard", second);
    let mut open = admin.open_shards("reshard");
    open.sort_by_key(|s| s.1);
    let merge = admin.merge("reshard", &open[0].0, &open[1].0);
    admin.put("reshard", third);
    let alerts = wait_for(
        || admin.read_all("alerts"),
        |alerts| create_ids(alerts).len() >= expected.len(),
    );
    running.stop();
    assert!(merge.is_ok(), "MergeShards failed: {merge:?}");
    assert_eq!(create_ids(&alerts), expected);
    assert_repeats_identical(&alerts);
}

#[test]
fn two_replicas_share_leases_and_the_survivor_takes_over_without_loss() {
    two_replicas_share_leases_and_the_survivor_takes_over(source_config);
}

/// Both replicas read through one shared fan-out consumer.
#[test]
fn fan_out_two_replicas_share_leases_and_the_survivor_takes_over_without_loss() {
    two_replicas_share_leases_and_the_survivor_takes_over(fan_out_config);
}

/// Two replicas split four shards; one is killed without releasing its
/// leases, and the survivor takes them over with no alert lost, read as
/// `config` says.
fn two_replicas_share_leases_and_the_survivor_takes_over(
    config: fn(&Servers, &str, &str) -> KinesisSourceConfig,
) {
    let Some(servers) = start_servers() else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("shared", 4);
    admin.create_stream("alerts", 1);
    let (first_half, mut plain) = fixture(8, 3, 0);
    let (second_half, plain_second) = fixture(8, 3, 8);
    plain.extend(plain_second);
    let expected = reference_ids(plain);
    assert_eq!(expected.len(), 16);

    let mut source_a = KinesisSource::new(config(&servers, "shared", "a")).unwrap();
    source_a.set_release_on_drop(false);
    let held_a = source_a.held_shards_handle();
    let source_b = KinesisSource::new(config(&servers, "shared", "b")).unwrap();
    let held_b = source_b.held_shards_handle();
    let running_a = start_engine(&servers, source_a, "alerts");
    let running_b = start_engine(&servers, source_b, "alerts");
    let split = wait_for(
        || (held_a.shards(), held_b.shards()),
        |(a, b)| !a.is_empty() && !b.is_empty() && a.len() + b.len() == 4,
    );
    assert_eq!(split.0.len() + split.1.len(), 4, "leases: {split:?}");
    assert!(
        !split.0.is_empty() && !split.1.is_empty(),
        "leases: {split:?}"
    );

    admin.put("shared", &first_half);
    // Kill A: it stops without releasing its leases.
    running_a.stop();
    admin.put("shared", &second_half);
    let (alerts, held) = wait_for(
        || (admin.read_all("alerts"), held_b.shards()),
        |(alerts, held)| create_ids(alerts).len() >= expected.len() && held.len() == 4,
    );
    running_b.stop();
    assert_eq!(held.len(), 4, "the survivor holds every shard: {held:?}");
    assert_eq!(create_ids(&alerts), expected);
    assert_repeats_identical(&alerts);
}

#[test]
fn crash_recovery_rebuilds_the_same_alert_ids_and_repeats_are_identical() {
    crash_recovery_rebuilds_the_same_alert_ids(source_config);
}

/// The crash-recovery scenario, read through fan-out.
#[test]
fn fan_out_crash_recovery_rebuilds_the_same_alert_ids_and_repeats_are_identical() {
    crash_recovery_rebuilds_the_same_alert_ids(fan_out_config);
}

/// A replica crashes (leases kept) after some alerts; a new replica takes
/// the expired leases over, and the alert set is exact, read as `config`
/// says.
fn crash_recovery_rebuilds_the_same_alert_ids(
    config: fn(&Servers, &str, &str) -> KinesisSourceConfig,
) {
    let Some(servers) = start_servers() else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("trail", 2);
    admin.create_stream("alerts", 1);
    let (records, plain) = fixture(9, 6, 0);
    let expected = reference_ids(plain);
    assert_eq!(expected.len(), 18);
    let (first, second) = records.split_at(records.len() / 2);
    admin.put("trail", first);

    let mut source = KinesisSource::new(config(&servers, "trail", "w1")).unwrap();
    source.set_release_on_drop(false);
    let running = start_engine(&servers, source, "alerts");
    wait_for(
        || admin.read_all("alerts"),
        |alerts| !create_ids(alerts).is_empty(),
    );
    // Crash: stop without releasing leases; open windows keep their input
    // uncommitted.
    running.stop();
    admin.put("trail", second);

    let source = KinesisSource::new(config(&servers, "trail", "w2")).unwrap();
    let running = start_engine(&servers, source, "alerts");
    let alerts = wait_for(
        || admin.read_all("alerts"),
        |alerts| create_ids(alerts).len() >= expected.len(),
    );
    running.stop();
    assert_eq!(create_ids(&alerts), expected);
    assert_repeats_identical(&alerts);
}

/// Polls a bare source without committing (open windows would still need
/// every record) until `done` holds or two minutes pass; returns the
/// records it skipped as already handed.
fn poll_without_commit(
    source: &mut KinesisSource,
    registry: &PartitionRegistry,
    seen: &mut BTreeMap<String, Vec<u64>>,
    mut done: impl FnMut(&BTreeMap<String, Vec<u64>>) -> bool,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut skipped = 0;
    while !done(seen) && Instant::now() < deadline {
        if let Poll::Batch(batch) = source.poll(registry).unwrap() {
            skipped += batch.replayed_skipped;
            note_keyed(&batch, seen);
        }
    }
    skipped
}

/// A lease that leaves for another replica and comes back resumes from the
/// last checkpoint. Nothing was checkpointed (open windows still need every
/// record), so the resumed reader meets records this process already handed
/// to its windows: they are skipped, not counted twice.
#[test]
fn a_lease_that_comes_back_is_not_counted_twice() {
    let Some(servers) = start_servers() else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("comeback", 2);
    let keys = 8;
    let registry = PartitionRegistry::default();
    let mut source_a = KinesisSource::new(source_config(&servers, "comeback", "a")).unwrap();
    let held_a = source_a.held_shards_handle();
    admin.put("comeback", &keyed(keys, 0, 10));
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let total = |seen: &BTreeMap<String, Vec<u64>>| seen.values().map(Vec::len).sum::<usize>();
    poll_without_commit(&mut source_a, &registry, &mut seen, |s| {
        total(s) >= keys * 10
    });
    assert_eq!(total(&seen), keys * 10, "first read");

    // B takes one lease, then leaves (releasing it), and A takes it back.
    let source_b = KinesisSource::new(source_config(&servers, "comeback", "b")).unwrap();
    let held_b = source_b.held_shards_handle();
    poll_without_commit(&mut source_a, &registry, &mut seen, |_| {
        held_b.shards().len() == 1 && held_a.shards().len() == 1
    });
    assert_eq!(held_b.shards().len(), 1, "B took a lease");
    drop(source_b);
    let mut skipped = poll_without_commit(&mut source_a, &registry, &mut seen, |_| {
        held_a.shards().len() == 2
    });
    assert_eq!(held_a.shards().len(), 2, "A took the lease back");
    // The resumed reader replays the shard from its start; give it time
    // to arrive.
    let until = Instant::now() + Duration::from_secs(5);
    skipped += poll_without_commit(&mut source_a, &registry, &mut seen, |_| {
        Instant::now() >= until
    });
    let expected: Vec<u64> = (0..10).collect();
    assert_eq!(seen.len(), keys);
    for (key, order) in &seen {
        assert_eq!(order, &expected, "records of {key} handed twice or lost");
    }
    assert!(
        skipped > 0,
        "the returned lease replayed records and skipped them"
    );
}

#[test]
fn a_late_replica_steals_its_share_of_leases() {
    let Some(servers) = start_servers() else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("balance", 4);
    let source_a = KinesisSource::new(source_config(&servers, "balance", "a")).unwrap();
    let held_a = source_a.held_shards_handle();
    let all = wait_for(|| held_a.shards(), |held| held.len() == 4);
    assert_eq!(all.len(), 4, "the only replica holds every shard: {all:?}");
    let source_b = KinesisSource::new(source_config(&servers, "balance", "b")).unwrap();
    let held_b = source_b.held_shards_handle();
    let (a, b) = wait_for(
        || (held_a.shards(), held_b.shards()),
        |(a, b)| a.len() == 2 && b.len() == 2,
    );
    assert_eq!((a.len(), b.len()), (2, 2), "balanced: {a:?} {b:?}");
    assert!(
        a.iter().all(|shard| !b.contains(shard)),
        "disjoint: {a:?} {b:?}"
    );
    drop(source_a);
    drop(source_b);
}

#[test]
fn a_worker_holding_no_lease_is_a_ready_standby() {
    a_worker_holding_no_lease_is_ready(source_config);
}

/// The standby scenario, with both workers reading through fan-out.
#[test]
fn fan_out_a_worker_holding_no_lease_is_a_ready_standby() {
    a_worker_holding_no_lease_is_ready(fan_out_config);
}

/// Two workers share a one-shard stream: one holds the lease and reads it,
/// the other holds nothing and is a ready standby (a surge pod of a rolling
/// update must not hold the rollout up), read as `config` says.
fn a_worker_holding_no_lease_is_ready(config: fn(&Servers, &str, &str) -> KinesisSourceConfig) {
    let Some(servers) = start_servers() else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("standby", 1);
    let registry = PartitionRegistry::default();
    let mut sources = [
        KinesisSource::new(config(&servers, "standby", "a")).unwrap(),
        KinesisSource::new(config(&servers, "standby", "b")).unwrap(),
    ];
    let held: Vec<_> = sources.iter().map(|s| s.held_shards_handle()).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !sources.iter().all(|s| s.is_ready()) {
        for source in &mut sources {
            source.poll(&registry).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "not both ready: {:?}, leases: {:?}",
            sources.iter().map(|s| s.is_ready()).collect::<Vec<_>>(),
            held.iter().map(|h| h.shards()).collect::<Vec<_>>()
        );
    }
    let mut counts: Vec<usize> = held.iter().map(|h| h.shards().len()).collect();
    counts.sort();
    assert_eq!(
        counts,
        [0, 1],
        "one worker holds the lease, the other none: {:?}",
        held.iter().map(|h| h.shards()).collect::<Vec<_>>()
    );
}

#[test]
fn fan_out_restart_split_and_merge_under_live_subscriptions_lose_nothing_and_keep_key_order() {
    let Some(servers) = start_servers() else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("fanout", 2);
    let keys = 16;
    let registry = PartitionRegistry::default();
    let config = fan_out_config(&servers, "fanout", "w1");
    let ReadMode::FanOut(fan_out) = &config.read_mode else {
        panic!("fan_out_config reads through fan-out");
    };
    let limit = fan_out.subscription_limit;
    let mut source = KinesisSource::new(config).unwrap();
    let consumers = admin.runtime.block_on(async {
        let arn = admin
            .client
            .describe_stream_summary()
            .stream_name("fanout")
            .send()
            .await
            .unwrap()
            .stream_description_summary()
            .unwrap()
            .stream_arn()
            .to_string();
        admin
            .client
            .list_stream_consumers()
            .stream_arn(arn)
            .send()
            .await
            .unwrap()
    });
    let consumer = consumers
        .consumers()
        .iter()
        .find(|c| c.consumer_name() == "trailwatch-test")
        .expect("the source registered its consumer");
    assert_eq!(
        consumer.consumer_status(),
        &aws_sdk_kinesis::types::ConsumerStatus::Active
    );
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();

    // Read through live subscriptions, and let them expire and renew.
    admin.put("fanout", &keyed(keys, 0, 3));
    drain_source(&mut source, &registry, &mut seen, keys * 3);
    // Restart: the next source subscribes after the checkpoints.
    drop(source);
    let mut source = KinesisSource::new(fan_out_config(&servers, "fanout", "w2")).unwrap();
    admin.put("fanout", &keyed(keys, 3, 5));
    drain_source(&mut source, &registry, &mut seen, keys * 5);
    let pause = Instant::now() + limit * 2;
    while Instant::now() < pause {
        if let Poll::Batch(batch) = source.poll(&registry).unwrap() {
            panic!("{} records repeated by a new subscription", batch.len());
        }
    }
    admin.put("fanout", &keyed(keys, 5, 10));
    // Split the first shard while it is subscribed to.
    let (first, start, end) = admin.open_shards("fanout")[0].clone();
    admin.split("fanout", &first, start + (end - start) / 2);
    admin.put("fanout", &keyed(keys, 10, 15));
    drain_source(&mut source, &registry, &mut seen, keys * 15);

    // Merge the two children back together, also under subscriptions.
    let mut open = admin.open_shards("fanout");
    open.sort_by_key(|s| s.1);
    let merge = admin.merge("fanout", &open[0].0, &open[1].0);
    admin.put("fanout", &keyed(keys, 15, 20));
    drain_source(&mut source, &registry, &mut seen, keys * 20);

    let expected: Vec<u64> = (0..20).collect();
    assert_eq!(seen.len(), keys);
    for (key, order) in &seen {
        assert_eq!(
            order, &expected,
            "records of {key} lost, repeated or out of order"
        );
    }
    assert!(merge.is_ok(), "MergeShards failed: {merge:?}");
}

#[test]
fn a_fan_out_reader_stops_mid_subscription_when_its_lease_runs_out() {
    use trailwatch::source::kinesis::fanout::{Consumer, FanOutReader};
    use trailwatch::source::kinesis::shards::{new_lag_snapshot, LeaseClock, ReaderMsg};

    let Some(servers) = start_servers() else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("expiry", 1);
    let shard = admin.open_shards("expiry")[0].0.clone();
    admin.put("expiry", &keyed(1, 0, 3));
    let base = Instant::now();
    let clock = Arc::new(LeaseClock::new(base, base + Duration::from_secs(2)));
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let reader = admin.runtime.block_on(async {
        let counters = Arc::new(trailwatch::metrics::KinesisSourceCounters::default());
        let consumer = Consumer::register(
            &admin.client,
            "expiry",
            "trailwatch-test",
            Arc::clone(&counters),
        )
        .await
        .unwrap();
        FanOutReader {
            client: admin.client.clone(),
            consumer: Arc::new(consumer),
            shard,
            generation: 1,
            start: "TRIM_HORIZON".into(),
            subscription_limit: Duration::from_secs(600),
            clock: Arc::clone(&clock),
            tx,
            lag: new_lag_snapshot(),
            polled: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            counters,
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    });
    let running = admin.runtime.spawn(reader.run());
    let first = admin.runtime.block_on(rx.recv());
    let Some(ReaderMsg::Records { records, .. }) = first else {
        panic!("expected the first records, got {first:?}");
    };
    assert_eq!(records.len(), 3);
    // The reader ends by itself once the validity runs out (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(running.is_finished(), "the reader outlived its lease");
    assert!(!clock.is_valid());
    admin.put("expiry", &keyed(1, 3, 6));
    let after = admin.runtime.block_on(rx.recv());
    assert!(
        after.is_none(),
        "handed over after the lease ran out: {after:?}"
    );
}

/// The alert the test rule raises for three failed sign-ins of alice.
fn base_alert() -> Alert {
    let spec = trailwatch::rules::parse_rule_text("test", RULE).unwrap();
    let plain = (0..3)
        .map(|i| cloudtrail("alice", i).to_string().into_bytes())
        .collect();
    let alerts = trailwatch::rules::testing::run_rule(&spec, plain).unwrap();
    alerts.into_iter().next().unwrap()
}

/// Alert `i` of `alerts` (its `count`), of group key `key`, with a padded
/// evidence sample of `pad` bytes.
fn padded_alert(base: &Alert, key: &str, i: u64, pad: usize) -> Alert {
    let mut alert = base.clone();
    alert.key = vec![key.to_string()];
    alert.count = i;
    alert.evidences = vec![format!("{{\"pad\":\"{}\"}}", "x".repeat(pad))];
    alert
}

fn alert_sink(servers: &Servers, stream: &str) -> KinesisAlertSink {
    KinesisAlertSink::new(&KinesisSinkConfig {
        stream: stream.to_string(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(servers.kinesis_url.clone()),
    })
    .unwrap()
}

/// The alert counts (`i`) of `stored` in stream order, by `i % keys`
/// (the key index these tests give alert `i`).
fn counts_by_key(stored: &[Value], keys: u64) -> BTreeMap<u64, Vec<u64>> {
    let mut by_key: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for alert in stored {
        let count = alert["finding_info"]["related_events_count"]
            .as_u64()
            .unwrap();
        by_key.entry(count % keys).or_default().push(count);
    }
    by_key
}

#[test]
fn a_throttled_sink_delivers_a_large_batch_once_in_key_order_and_counts_its_retries() {
    // 1200 alerts of ~11 KB (13 MB) to one shard that takes 1 MiB/s: the
    // sink must get through at the shard's rate, sending again only what
    // was refused, within one send.
    let Some(servers) = start_servers_with(&["--enforce-limits", "true"]) else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("alerts", 1);
    let base = base_alert();
    let keys = ["alice", "bob", "carol"];
    let alerts: Vec<Alert> = (0..1200u64)
        .map(|i| padded_alert(&base, keys[i as usize % 3], i, 10_000))
        .collect();
    let mut sink = alert_sink(&servers, "alerts");
    let metrics = Metrics::new(1, 1, Vec::new());
    sink.count_into(&metrics);
    let result = sink.send(&alerts);
    assert!(result.is_ok(), "{:?}", result.err().map(|e| e.to_string()));
    let stored = admin.read_all("alerts");
    assert_eq!(stored.len(), 1200, "every alert once");
    let by_key = counts_by_key(&stored, 3);
    assert_eq!(by_key.len(), 3);
    for (key, counts) in &by_key {
        assert_eq!(counts.len(), 400, "{key}");
        assert!(
            counts.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {counts:?}"
        );
    }
    let retries = metrics.sink.retries.load(Ordering::Relaxed);
    assert!(retries > 0, "records sent again are counted");
}

#[test]
fn one_keys_alerts_stay_in_order_when_some_of_its_records_are_refused() {
    // Alternating 300 KB and 100 B alerts of one key: under the shard's
    // 1 MiB/s limit a large one is refused while a small one after it
    // would be accepted.
    let Some(servers) = start_servers_with(&["--enforce-limits", "true"]) else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("alerts", 1);
    let base = base_alert();
    let alerts: Vec<Alert> = (0..12u64)
        .map(|i| padded_alert(&base, "alice", i, if i % 2 == 0 { 300_000 } else { 100 }))
        .collect();
    let result = alert_sink(&servers, "alerts").send(&alerts);
    assert!(result.is_ok(), "{:?}", result.err().map(|e| e.to_string()));
    let order: Vec<u64> = counts_by_key(&admin.read_all("alerts"), 1)
        .into_values()
        .flatten()
        .collect();
    assert_eq!(order, (0..12).collect::<Vec<u64>>());
}

#[test]
fn a_send_to_an_endpoint_that_never_answers_gives_up_at_the_shutdown_deadline() {
    if !prepare() {
        return;
    }
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().collect();
        drop(held);
    });
    let mut sink = KinesisAlertSink::new(&KinesisSinkConfig {
        stream: "alerts".into(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
    })
    .unwrap();
    let clock = ShutdownClock::default();
    sink.watch_shutdown(&clock);
    clock.start(Duration::from_secs(1));
    let base = base_alert();
    let alerts: Vec<Alert> = (0..1200u64)
        .map(|i| padded_alert(&base, "alice", i, 100))
        .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(sink.send(&alerts).map_err(|e| e.to_string()));
    });
    // A guard, not a timing: without the deadline this send waits out the
    // SDK's 10 s attempts, call after call (92 s here); the deadline is 1 s.
    let result = rx
        .recv_timeout(Duration::from_secs(45))
        .expect("the send gave up at the shutdown deadline");
    let error = result.unwrap_err();
    assert!(error.contains("shutdown deadline passed"), "{error}");
}

// ---- Source failure paths: gone shards, a deleted consumer, failing reads.

/// A DynamoDB client for the lease table (on the admin's runtime).
fn lease_table_client(admin: &Admin, servers: &Servers) -> aws_sdk_dynamodb::Client {
    let sdk = admin
        .runtime
        .block_on(trailwatch::source::kinesis::load_aws_config(
            Some("us-east-1"),
            Some(&servers.dynamodb_url),
        ));
    aws_sdk_dynamodb::Client::new(&sdk)
}

/// The `checkpoint` attribute of `key`'s lease row.
fn lease_checkpoint(
    admin: &Admin,
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> String {
    use aws_sdk_dynamodb::types::AttributeValue;
    admin.runtime.block_on(async {
        let item = dynamo
            .get_item()
            .table_name(table)
            .key("leaseKey", AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        item.item().unwrap()["checkpoint"].as_s().unwrap().clone()
    })
}

#[test]
fn a_free_parent_row_of_a_shard_gone_from_the_stream_does_not_block_its_child() {
    a_parent_gone_from_the_stream_does_not_block_its_child(source_config, None);
}

#[test]
fn a_held_parent_row_of_a_shard_gone_from_the_stream_does_not_block_its_child() {
    a_parent_gone_from_the_stream_does_not_block_its_child(source_config, Some("w-crashed"));
}

#[test]
fn fan_out_a_held_parent_row_of_a_shard_gone_from_the_stream_does_not_block_its_child() {
    a_parent_gone_from_the_stream_does_not_block_its_child(fan_out_config, Some("w-crashed"));
}

/// trailwatch was down longer than the retention after a reshard: the
/// parent's lease row still holds a sequence-number checkpoint (and maybe
/// the crashed owner), the parent shard is gone from the stream, and the
/// real shard names it as its parent. The child must still be read.
fn a_parent_gone_from_the_stream_does_not_block_its_child(
    config: fn(&Servers, &str, &str) -> KinesisSourceConfig,
    owner: Option<&str>,
) {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    const GONE: &str = "shardId-000000000099";
    let Some(servers) = start_servers() else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("gone", 1);
    let child = admin.open_shards("gone")[0].0.clone();
    admin.put("gone", &keyed(1, 0, 10));
    let table = config(&servers, "gone", "w0").lease_table;
    // The table and the child's row, as a previous run left them.
    drop(KinesisSource::new(config(&servers, "gone", "w0")).unwrap());
    let dynamo = lease_table_client(&admin, &servers);
    admin.runtime.block_on(async {
        let mut put = dynamo
            .put_item()
            .table_name(&table)
            .item("leaseKey", A::S(GONE.into()))
            .item("leaseCounter", A::N("7".into()))
            .item(
                "checkpoint",
                A::S("49650000000000000000000000000000000000000000000000000001".into()),
            )
            .item("parentShardIds", A::L(vec![]));
        if let Some(owner) = owner {
            put = put.item("leaseOwner", A::S(owner.into()));
        }
        put.send().await.unwrap();
        dynamo
            .update_item()
            .table_name(&table)
            .key("leaseKey", A::S(child.clone()))
            .update_expression("SET parentShardIds = :p")
            .expression_attribute_values(":p", A::L(vec![A::S(GONE.into())]))
            .send()
            .await
            .unwrap();
    });
    let mut source = KinesisSource::new(config(&servers, "gone", "w1")).unwrap();
    let counters = source.counters();
    let registry = PartitionRegistry::default();
    let mut seen = BTreeMap::new();
    drain_source(&mut source, &registry, &mut seen, 10);
    let read: Vec<u64> = seen.values().flatten().copied().collect();
    assert_eq!(read, (0..10).collect::<Vec<u64>>(), "the child's records");
    assert_eq!(lease_checkpoint(&admin, &dynamo, &table, GONE), "SHARD_END");
    assert_eq!(
        counters
            .shards_gone
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(source.held_shards_handle().shards(), vec![child]);
}

#[test]
fn fan_out_a_consumer_deleted_under_a_running_reader_is_registered_again() {
    let Some(servers) = start_servers() else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("dereg", 1);
    admin.put("dereg", &keyed(1, 0, 10));
    let mut source = KinesisSource::new(fan_out_config(&servers, "dereg", "w1")).unwrap();
    let counters = source.counters();
    let registry = PartitionRegistry::default();
    let mut seen = BTreeMap::new();
    drain_source(&mut source, &registry, &mut seen, 10);
    admin.runtime.block_on(async {
        let summary = admin
            .client
            .describe_stream_summary()
            .stream_name("dereg")
            .send()
            .await
            .unwrap();
        let arn = summary
            .stream_description_summary()
            .unwrap()
            .stream_arn()
            .to_string();
        admin
            .client
            .deregister_stream_consumer()
            .stream_arn(arn)
            .consumer_name("trailwatch-test")
            .send()
            .await
            .unwrap();
    });
    // Wait until a resubscribe found the consumer gone (the live
    // subscription may outlast the deregistration).
    let not_found = || {
        counters.read_errors[trailwatch::metrics::KinesisReadError::NotFound as usize]
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while not_found() == 0 && Instant::now() < deadline {
        let _ = source.poll(&registry).unwrap();
    }
    assert!(not_found() >= 1, "the failed subscribe is counted");
    admin.put("dereg", &keyed(1, 10, 20));
    drain_source(&mut source, &registry, &mut seen, 20);
    let read: Vec<u64> = seen.values().flatten().copied().collect();
    assert_eq!(
        read,
        (0..20).collect::<Vec<u64>>(),
        "records after the consumer was deleted"
    );
}

#[test]
fn a_reader_that_cannot_read_counts_its_errors_and_its_lag_grows() {
    let Some(mut servers) = start_servers() else {
        return;
    };
    let admin = Admin::new(&servers);
    admin.create_stream("down", 1);
    let shard = admin.open_shards("down")[0].0.clone();
    admin.put("down", &keyed(1, 0, 10));
    let mut source = KinesisSource::new(source_config(&servers, "down", "w1")).unwrap();
    let counters = source.counters();
    let lag = source.lag();
    let registry = PartitionRegistry::default();
    let mut seen = BTreeMap::new();
    drain_source(&mut source, &registry, &mut seen, 10);
    let lag_of = || lag.lock().unwrap().get(&shard).copied();
    assert!(lag_of().is_some(), "lag published while reading");
    // Kinesis goes away; DynamoDB stays, so the lease is kept. Failing
    // ListShards calls (with the SDK's retries) slow the coordinator down,
    // so renews come late and the reader's validity lapses now and then:
    // ten seconds of growing lag also need the reader to come back then.
    let kinesis = &mut servers.children[0];
    kinesis.kill().unwrap();
    kinesis.wait().unwrap();
    let other = || {
        counters.read_errors[trailwatch::metrics::KinesisReadError::Other as usize]
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while (other() == 0 || lag_of().unwrap_or(0) < 10_000) && Instant::now() < deadline {
        let _ = source.poll(&registry).unwrap();
    }
    assert!(other() > 0, "failed reads are counted");
    assert!(
        lag_of().unwrap_or(0) >= 10_000,
        "the lag grows while reads fail: {:?}",
        lag_of()
    );
    assert_eq!(source.held_shards_handle().shards(), vec![shard]);
}
