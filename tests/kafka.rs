//! Kafka source and sinks against a real broker (tansu, started per test on
//! its own loopback port) and against librdkafka's mock cluster for faults.
//!
//! Every test checks the delivery contract end to end: the alert topic must
//! hold exactly the expected alert ids (computed independently from the
//! generated input), repeated ids must be byte-identical messages, and
//! undecodable records must be on the dead-letter topic. Waits are bounded
//! by generous deadlines that only turn a hang into a failure; no assertion
//! is about timing. Set `TRAILWATCH_SKIP_KAFKA=1` to skip them (for a
//! machine without tansu and without the time to build it).

#![cfg(feature = "kafka")]

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use support::{producer, skip, Broker};
use trailwatch::alert::alert_id;
use trailwatch::config::{KafkaProperties, KafkaSourceConfig};
use trailwatch::engine::{Engine, EngineConfig, RunSummary};
use trailwatch::error::Result as TwResult;
use trailwatch::rules::RuleSet;
use trailwatch::sink::kafka::{KafkaAlertSink, KafkaDeadLetterSink};
use trailwatch::source::kafka::KafkaSource;
use trailwatch::source::memory::MemorySource;

const RULE_ID: &str = "console-burst";
const RULE: &str = r#"id: console-burst
title: Console sign-in failure burst
description: Five or more failed console sign-ins from one IP within five minutes.
severity: high
attack: [T1110]
kind: cloudtrail
filter: '{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }'
group_by: [sourceIPAddress]
window: 5m
threshold: ">= 5"
"#;

/// 2024-03-01T12:00:00Z.
const T0_MS: i64 = 1_709_294_400_000;

fn rules() -> Arc<RuleSet> {
    let spec = trailwatch::rules::parse_rule_text("test", RULE).unwrap();
    Arc::new(RuleSet::compile(&[spec]).unwrap())
}

fn expected_id(ip: &str, event_ms: i64) -> String {
    let window = 5 * 60_000;
    alert_id(RULE_ID, 1, &[ip], event_ms - event_ms.rem_euclid(window))
}

// -------------------------------------------------------------- clients --

/// One input record and the partition it goes to.
#[derive(Clone)]
struct Input {
    partition: i32,
    bytes: Vec<u8>,
}

fn produce(producer: &BaseProducer, topic: &str, records: &[Input]) {
    for record in records {
        loop {
            match producer.send(
                BaseRecord::<(), [u8]>::to(topic)
                    .partition(record.partition)
                    .payload(&record.bytes[..]),
            ) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(_), _)) => {
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// A message read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: BTreeMap<String, String>,
}

impl Out {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// Every message of `topic`, from the beginning to the current end.
fn read_all(brokers: &str, topic: &str, partitions: i32) -> Vec<Out> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "trailwatch-test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut at_end = BTreeSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while at_end.len() < partitions as usize {
        assert!(Instant::now() < deadline, "cannot read {topic} to its end");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Out {
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => eprintln!("reader: {e}"),
            None => {}
        }
    }
    out
}

/// Polls `topic` until `done` holds for its messages; panics after `limit`.
fn wait_for(
    brokers: &str,
    topic: &str,
    partitions: i32,
    limit: Duration,
    done: impl Fn(&[Out]) -> bool,
) -> Vec<Out> {
    let deadline = Instant::now() + limit;
    loop {
        let messages = read_all(brokers, topic, partitions);
        if done(&messages) {
            return messages;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: condition not reached, {} messages",
            messages.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn creates(messages: &[Out]) -> BTreeSet<String> {
    messages
        .iter()
        .filter(|m| m.header("ce_type") == "com.trailwatch.detection_finding.create")
        .map(|m| m.header("ce_id").to_string())
        .collect()
}

/// Asserts that messages sharing a `ce_id` are identical; returns repeats.
fn assert_repeats_identical(messages: &[Out]) -> usize {
    let mut by_id: HashMap<&str, &Out> = HashMap::new();
    let mut repeats = 0;
    for m in messages {
        match by_id.get(m.header("ce_id")) {
            Some(first) => {
                assert_eq!(*first, m, "repeated alert {} differs", m.header("ce_id"));
                repeats += 1;
            }
            None => {
                by_id.insert(m.header("ce_id"), m);
            }
        }
    }
    repeats
}

/// Produces `records` in chunks on a thread, slowly enough that engines
/// are stopped, killed and joined mid-stream; counts what was produced.
fn feed(
    brokers: &str,
    records: Vec<Input>,
    chunk: usize,
    pause: Duration,
) -> (Arc<AtomicUsize>, std::thread::JoinHandle<()>) {
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&produced);
    let brokers = brokers.to_string();
    let handle = std::thread::spawn(move || {
        let producer = producer(&brokers, false);
        for part in records.chunks(chunk) {
            produce(&producer, "ct", part);
            counter.fetch_add(part.len(), Ordering::SeqCst);
            std::thread::sleep(pause);
        }
    });
    (produced, handle)
}

fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ----------------------------------------------------------------- input --

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn cloudtrail(name: &str, failed: bool, ip: &str, ms: i64, id: &str) -> String {
    let error = if failed {
        r#","errorMessage":"Failed authentication""#
    } else {
        ""
    };
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","accountId":"111122223333"}},"eventTime":"{}","eventSource":"signin.amazonaws.com","eventName":"{name}"{error},"awsRegion":"us-east-1","sourceIPAddress":"{ip}","recipientAccountId":"111122223333","eventID":"{id}"}}"#,
        iso(ms)
    )
}

fn cloudwatch_envelope(messages: &[(i64, String)]) -> Vec<u8> {
    let events: Vec<serde_json::Value> = messages
        .iter()
        .enumerate()
        .map(|(i, (ms, m))| serde_json::json!({"id": i.to_string(), "timestamp": ms, "message": m}))
        .collect();
    let envelope = serde_json::json!({
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": "aws-cloudtrail-logs",
        "logStream": "111122223333_CloudTrail_us-east-1",
        "subscriptionFilters": ["to-kafka"],
        "logEvents": events,
    });
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(envelope.to_string().as_bytes()).unwrap();
    encoder.finish().unwrap()
}

/// A stream of `ips` keys, each a burst of 5 failures (an alert) or 4
/// (no alert, every third key) plus noise, spread over event time so that
/// windows open and close along the stream. Keys stay on one partition.
fn bursts(ips: usize, partitions: i32) -> (Vec<Input>, BTreeSet<String>) {
    let mut records = Vec::new();
    let mut expected = BTreeSet::new();
    for k in 0..ips {
        let ip = format!("198.51.{}.{}", k / 250, k % 250);
        let partition = (k as i32) % partitions;
        let start = T0_MS + (k as i64) * 20_000;
        let failures = if k % 3 == 2 { 4 } else { 5 };
        for i in 0..failures {
            let ms = start + i as i64 * 1_000;
            let id = format!("f-{k}-{i}");
            records.push(Input {
                partition,
                bytes: cloudtrail("ConsoleLogin", true, &ip, ms, &id).into_bytes(),
            });
            records.push(Input {
                partition,
                bytes: cloudtrail("DescribeInstances", false, &ip, ms, &format!("n-{k}-{i}"))
                    .into_bytes(),
            });
        }
        if failures == 5 {
            expected.insert(expected_id(&ip, start + 4_000));
        }
    }
    (records, expected)
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        shards: 2,
        decoders: 2,
        flush_on_end: false,
        commit_interval: Duration::from_millis(100),
        shutdown_deadline: Duration::from_secs(20),
        ..EngineConfig::default()
    }
}

fn source_config(brokers: &str, topic: &str, group: &str) -> KafkaSourceConfig {
    source_config_batched(brokers, topic, group, 64)
}

fn source_config_batched(
    brokers: &str,
    topic: &str,
    group: &str,
    poll_batch: usize,
) -> KafkaSourceConfig {
    KafkaSourceConfig {
        brokers: brokers.to_string(),
        topics: vec![topic.to_string()],
        topic_pattern: None,
        group_id: group.to_string(),
        decoder: None,
        flow_format: None,
        properties: KafkaProperties(BTreeMap::from([
            ("session.timeout.ms".to_string(), "6000".to_string()),
            ("heartbeat.interval.ms".to_string(), "500".to_string()),
            ("auto.commit.interval.ms".to_string(), "200".to_string()),
        ])),
        static_membership: false,
        poll_batch,
        allowed_lateness: None,
    }
}

/// An engine reading `topic` as `group` into `alerts` / `dlq`, on a thread.
struct Running {
    stop: Arc<std::sync::atomic::AtomicBool>,
    engine: Arc<Engine>,
    handle: std::thread::JoinHandle<TwResult<RunSummary>>,
}

fn start_engine(brokers: &str, topic: &str, group: &str, alerts: &str, dlq: &str) -> Running {
    start_engine_with(source_config(brokers, topic, group), alerts, dlq)
}

fn start_engine_with(config: KafkaSourceConfig, alerts: &str, dlq: &str) -> Running {
    let brokers = config.brokers.clone();
    let brokers = brokers.as_str();
    let engine = Arc::new(Engine::new(engine_config(), rules()));
    let mut source = KafkaSource::new(&config).unwrap();
    source.set_tracker(engine.tracker());
    let none = KafkaProperties::default();
    let alert_sink = KafkaAlertSink::new(brokers, alerts, &none).unwrap();
    let dead_sink = KafkaDeadLetterSink::new(brokers, dlq, &none).unwrap();
    let stop = engine.stop_handle();
    let runner = Arc::clone(&engine);
    let handle = std::thread::spawn(move || {
        runner.run(
            vec![Box::new(source)],
            Box::new(alert_sink),
            Box::new(dead_sink),
        )
    });
    Running {
        stop,
        engine,
        handle,
    }
}

impl Running {
    fn stop(self) -> RunSummary {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .expect("engine thread")
            .expect("engine run")
    }

    fn records_processed(&self) -> u64 {
        self.engine
            .metrics()
            .decoders
            .iter()
            .map(|d| d.records.load(Ordering::Relaxed))
            .sum()
    }
}

// ----------------------------------------------------------------- tests --

#[test]
fn end_to_end_alerts_with_cloudevents_headers_and_dead_letters() {
    if skip("end_to_end") {
        return;
    }
    let broker = Broker::start(&[("ct", 3), ("alerts", 1), ("dlq", 1)]);
    let a = "203.0.113.7";
    let b = "203.0.113.8";
    let mut records = Vec::new();
    // Six raw CloudTrail failures from `a` on partition 0: one alert.
    for i in 0..6 {
        let ms = T0_MS + 1_000 + i * 10_000;
        records.push(Input {
            partition: 0,
            bytes: cloudtrail("ConsoleLogin", true, a, ms, &format!("a{i}")).into_bytes(),
        });
    }
    // Five failures from `b` in two CloudWatch Logs gzip envelopes on
    // partition 1: one alert.
    let b_events: Vec<(i64, String)> = (0..5)
        .map(|i| {
            let ms = T0_MS + 2_000 + i * 10_000;
            (
                ms,
                cloudtrail("ConsoleLogin", true, b, ms, &format!("b{i}")),
            )
        })
        .collect();
    records.push(Input {
        partition: 1,
        bytes: cloudwatch_envelope(&b_events[..2]),
    });
    records.push(Input {
        partition: 1,
        bytes: cloudwatch_envelope(&b_events[2..]),
    });
    // Noise on partition 2: four failures from `c` (one short), successes.
    for i in 0..4 {
        let ms = T0_MS + 3_000 + i * 1_000;
        records.push(Input {
            partition: 2,
            bytes: cloudtrail("ConsoleLogin", true, "192.0.2.1", ms, &format!("c{i}")).into_bytes(),
        });
        records.push(Input {
            partition: 2,
            bytes: cloudtrail("ConsoleLogin", false, a, ms, &format!("s{i}")).into_bytes(),
        });
    }
    // Two malformed records.
    let malformed: Vec<Vec<u8>> = vec![
        b"{\"eventVersion\": broken".to_vec(),
        vec![0x1f, 0x8b, 0, 1],
    ];
    for bytes in &malformed {
        records.push(Input {
            partition: 2,
            bytes: bytes.clone(),
        });
    }
    produce(&producer(&broker.brokers, false), "ct", &records);

    let running = start_engine(&broker.brokers, "ct", "e2e", "alerts", "dlq");
    wait_for(&broker.brokers, "alerts", 1, Duration::from_secs(90), |m| {
        m.len() >= 2
    });
    wait_for(&broker.brokers, "dlq", 1, Duration::from_secs(60), |m| {
        m.len() >= 2
    });
    let summary = running.stop();
    assert_eq!(summary.alerts_delivered, 2);

    let alerts = read_all(&broker.brokers, "alerts", 1);
    let a_id = expected_id(a, T0_MS + 41_000);
    let b_id = expected_id(b, T0_MS + 42_000);
    let ids: BTreeSet<String> = alerts
        .iter()
        .map(|m| m.header("ce_id").to_string())
        .collect();
    assert_eq!(ids, BTreeSet::from([a_id.clone(), b_id.clone()]));
    assert_eq!(alerts.len(), 2, "no alert repeated in a clean run");
    for m in &alerts {
        let ip = if m.header("ce_id") == a_id { a } else { b };
        // The fifth failure crosses the threshold.
        let crossing = if ip == a {
            T0_MS + 41_000
        } else {
            T0_MS + 42_000
        };
        assert_eq!(m.key.as_deref(), Some(format!("{RULE_ID}|{ip}").as_bytes()));
        assert_eq!(m.header("ce_specversion"), "1.0");
        assert_eq!(
            m.header("ce_type"),
            "com.trailwatch.detection_finding.create"
        );
        assert_eq!(m.header("ce_source"), format!("trailwatch/{RULE_ID}"));
        assert_eq!(
            m.header("ce_time"),
            chrono::DateTime::from_timestamp_millis(crossing)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        assert_eq!(m.header("content-type"), "application/json");
        let ocsf: serde_json::Value = serde_json::from_slice(&m.value).unwrap();
        assert_eq!(ocsf["finding_info"]["uid"], m.header("ce_id"));
        assert_eq!(ocsf["class_uid"], 2004);
    }

    let dead = read_all(&broker.brokers, "dlq", 1);
    assert_eq!(dead.len(), 2, "{dead:?}");
    let values: BTreeSet<Vec<u8>> = dead.iter().map(|m| m.value.clone()).collect();
    assert_eq!(values, malformed.into_iter().collect());
    for m in &dead {
        assert_eq!(m.header("tw_source"), "kafka:ct/2");
        assert_eq!(m.header("tw_topic"), "ct");
        assert_eq!(m.header("tw_partition"), "2");
        assert!(m.header("tw_offset").parse::<u64>().unwrap() >= 8);
        assert_eq!(m.header("tw_error_class"), "user");
        assert!(!m.header("tw_reason").is_empty());
    }
}

#[test]
fn graceful_stop_commits_only_up_to_open_windows() {
    if skip("graceful_stop") {
        return;
    }
    let broker = Broker::start(&[("ct", 2), ("alerts", 1), ("dlq", 1)]);
    let noise = |i: i64| cloudtrail("DescribeInstances", false, "192.0.2.9", T0_MS + i, "n");
    let mut records = Vec::new();
    // Partition 0: offsets 0-4 noise, 5-6 two failures of one key (an open
    // window below threshold), 7-9 noise.
    for i in 0..5 {
        records.push(Input {
            partition: 0,
            bytes: noise(i).into_bytes(),
        });
    }
    for i in 0..2 {
        let bytes = cloudtrail("ConsoleLogin", true, "192.0.2.50", T0_MS + 10 + i, "w");
        records.push(Input {
            partition: 0,
            bytes: bytes.into_bytes(),
        });
    }
    for i in 0..3 {
        records.push(Input {
            partition: 0,
            bytes: noise(20 + i).into_bytes(),
        });
    }
    // Partition 1: four noise records and nothing open.
    for i in 0..4 {
        records.push(Input {
            partition: 1,
            bytes: noise(30 + i).into_bytes(),
        });
    }
    produce(&producer(&broker.brokers, false), "ct", &records);

    let running = start_engine(&broker.brokers, "ct", "graceful", "alerts", "dlq");
    let deadline = Instant::now() + Duration::from_secs(90);
    while running.records_processed() < records.len() as u64 {
        assert!(Instant::now() < deadline, "input not consumed");
        std::thread::sleep(Duration::from_millis(50));
    }
    running.stop();

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.brokers)
        .set("group.id", "graceful")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition("ct", 0);
    list.add_partition("ct", 1);
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    let offset = |p: i32| committed.find_partition("ct", p).unwrap().offset();
    assert_eq!(offset(0), Offset::Offset(5), "the open window starts at 5");
    assert_eq!(offset(1), Offset::Offset(4), "nothing holds partition 1");
}

/// A backlog far larger than one poll, spread over many partitions: the
/// first partitions librdkafka hands over must not push the watermark past
/// records of partitions not yet heard from (they would count as late).
#[test]
fn backlog_over_many_partitions_loses_no_alert() {
    if skip("backlog") {
        return;
    }
    let broker = Broker::start(&[("ct", 8), ("alerts", 1), ("dlq", 1)]);
    // 400 keys 20 s apart: over two hours of event time, far past the
    // 15 minutes of allowed lateness.
    let (records, expected) = bursts(400, 8);
    produce(&producer(&broker.brokers, false), "ct", &records);
    let running = start_engine_with(
        source_config_batched(&broker.brokers, "ct", "backlog", 8),
        "alerts",
        "dlq",
    );
    wait_until("the backlog consumed", Duration::from_secs(120), || {
        running.records_processed() >= records.len() as u64
    });
    // Lost alerts would never come: wait a bounded time, then compare.
    let deadline = Instant::now() + Duration::from_secs(30);
    while creates(&read_all(&broker.brokers, "alerts", 1)).len() < expected.len()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = running.engine.metrics();
    let late: u64 = metrics
        .shards
        .iter()
        .chain(&metrics.decoders)
        .map(|w| w.late.load(Ordering::Relaxed))
        .sum();
    running.stop();
    let alerts = read_all(&broker.brokers, "alerts", 1);
    assert_eq!(late, 0, "no record of the backlog is late");
    assert_eq!(creates(&alerts), expected);
    assert_repeats_identical(&alerts);
}

#[test]
fn rebalance_between_two_engines_loses_no_alert() {
    if skip("rebalance") {
        return;
    }
    let broker = Broker::start(&[("ct", 4), ("alerts", 1), ("dlq", 1)]);
    let (records, expected) = bursts(240, 4);
    let total = records.len();
    let first = start_engine(&broker.brokers, "ct", "rebalance", "alerts", "dlq");
    let (produced, feeder) = feed(&broker.brokers, records, 20, Duration::from_millis(100));
    wait_until("first engine consuming", Duration::from_secs(60), || {
        first.records_processed() > 0
    });
    wait_until("a third of the input", Duration::from_secs(120), || {
        produced.load(Ordering::SeqCst) >= total / 3
    });
    let second = start_engine(&broker.brokers, "ct", "rebalance", "alerts", "dlq");
    wait_until("second engine consuming", Duration::from_secs(120), || {
        second.records_processed() > 0
    });
    wait_until("two thirds of the input", Duration::from_secs(120), || {
        produced.load(Ordering::SeqCst) >= 2 * total / 3
    });
    let by_first = first.stop().alerts_delivered;
    feeder.join().unwrap();
    wait_for(
        &broker.brokers,
        "alerts",
        1,
        Duration::from_secs(120),
        |m| creates(m).len() >= expected.len(),
    );
    let by_second = second.stop().alerts_delivered;
    assert!(
        by_first > 0 && by_second > 0,
        "both engines own partitions: {by_first} and {by_second} alerts"
    );
    let alerts = read_all(&broker.brokers, "alerts", 1);
    assert_eq!(creates(&alerts), expected);
    let repeats = assert_repeats_identical(&alerts);
    eprintln!(
        "rebalance: {} alerts ({by_first} by the first engine, {by_second} by the second), {repeats} repeats",
        expected.len()
    );
}

/// A partition revoked from the first engine comes back to it when the
/// second engine leaves. It is replayed from the second engine's committed
/// offsets, but the first engine still holds the windows those records fed
/// before the revoke: counting them again would turn near-misses (four
/// failures) into false alerts.
#[test]
fn a_partition_that_comes_back_is_not_counted_twice() {
    if skip("comes_back") {
        return;
    }
    let broker = Broker::start(&[("ct", 4), ("alerts", 1), ("dlq", 1)]);
    let (records, expected) = bursts(240, 4);
    let total = records.len();
    let first = start_engine(&broker.brokers, "ct", "comes-back", "alerts", "dlq");
    let (produced, feeder) = feed(&broker.brokers, records, 20, Duration::from_millis(100));
    wait_until("a third of the input", Duration::from_secs(120), || {
        produced.load(Ordering::SeqCst) >= total / 3 && first.records_processed() > 0
    });
    let second = start_engine(&broker.brokers, "ct", "comes-back", "alerts", "dlq");
    wait_until("second engine consuming", Duration::from_secs(120), || {
        second.records_processed() > 0
    });
    second.stop();
    feeder.join().unwrap();
    // False alerts would come on top of the expected ones: wait for the
    // expected set, then for the input to be fully processed.
    wait_until("the expected alerts", Duration::from_secs(120), || {
        creates(&read_all(&broker.brokers, "alerts", 1)).len() >= expected.len()
    });
    std::thread::sleep(Duration::from_secs(2));
    let skipped: u64 = first
        .engine
        .metrics()
        .decoders
        .iter()
        .map(|d| d.replayed_skipped.load(Ordering::Relaxed))
        .sum();
    first.stop();
    let alerts = read_all(&broker.brokers, "alerts", 1);
    let got = creates(&alerts);
    let extra: Vec<&String> = got.difference(&expected).collect();
    let missing: Vec<&String> = expected.difference(&got).collect();
    assert!(
        extra.is_empty(),
        "{} false alerts (double counts)",
        extra.len()
    );
    assert!(missing.is_empty(), "{} alerts missing", missing.len());
    let repeats = assert_repeats_identical(&alerts);
    eprintln!("comes back: {repeats} repeats, {skipped} replayed records skipped");
}

/// The `trailwatch run` configuration for `brokers`; `listen` is the
/// metrics listener.
fn service_config(dir: &Path, brokers: &str, group: &str, listen: &str) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("console-burst.yaml"), RULE).unwrap();
    let config = format!(
        r#"rules:
  builtin: false
  dirs: ["{rules}"]
engine:
  shards: 2
  decoders: 2
  commit_interval: 100ms
  shutdown_deadline: 20s
sources:
  - type: kafka
    brokers: "{brokers}"
    topics: [ct]
    group_id: {group}
    # Dynamic membership: with static membership tansu 0.6 lost the
    # assignment of a restarted member half a second after granting it,
    # and the next member was never assigned.
    static_membership: false
    poll_batch: 64
    properties:
      session.timeout.ms: "6000"
      heartbeat.interval.ms: "500"
      auto.commit.interval.ms: "200"
sinks:
  alerts: {{type: kafka, brokers: "{brokers}", topic: alerts}}
  dead_letter: {{type: kafka, brokers: "{brokers}", topic: dlq}}
metrics:
  listen: "{listen}"
log:
  level: warn
"#,
        rules = rules.display()
    );
    let path = dir.join("trailwatch.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

/// A `trailwatch run` process, SIGKILLed on drop (so a failing test leaves
/// no process behind); its log is appended to `service.log` next to the
/// config.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Records a running service has read since it started (its
/// `trailwatch_records_received_total`, summed), or `None` while its
/// listener is not up.
fn records_received(listen: &str) -> Option<u64> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(listen).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let total = response
        .lines()
        .filter(|l| l.starts_with("trailwatch_records_received_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    Some(total as u64)
}

/// The sum of `group`'s committed offsets on `ct` partitions `0..partitions`.
fn committed_total(brokers: &str, group: &str, partitions: i32) -> u64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition("ct", p);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) if o > 0 => o as u64,
            _ => 0,
        })
        .sum()
}

fn spawn_service(config: &Path) -> Service {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("service.log"))
        .unwrap();
    Service(
        Command::new(env!("CARGO_BIN_EXE_trailwatch"))
            .args(["run", "--config"])
            .arg(config)
            .env("POD_NAME", "trailwatch-0")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// Ten kill points by default; `scripts/kafka-crash-soak.sh` runs it with
/// more (`TRAILWATCH_CRASH_KILLS`), over a proportionally longer stream.
#[test]
fn sigkill_mid_stream_then_restart_loses_no_alert() {
    if skip("crash_recovery") {
        return;
    }
    let broker = Broker::start(&[("ct", 3), ("alerts", 1), ("dlq", 1)]);
    // Kept after the test (under the target dir) for post-mortems.
    let dir = tempfile::Builder::new()
        .prefix("kafka-crash-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    let listen = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let config = service_config(&dir, &broker.brokers, "crash", &listen);
    eprintln!("service log: {}", dir.join("service.log").display());
    let kills: usize = std::env::var("TRAILWATCH_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let (records, expected) = bursts(33 * kills, 3);
    let total = records.len();
    let (produced, feeder) = feed(&broker.brokers, records, 30, Duration::from_millis(800));
    let mut jitter: u64 = 0x9e37_79b9;
    // Records the killed processes may have read: all produced so far.
    let mut read_before = 0usize;
    for k in 1..=kills {
        // A kill lands mid-stream only once the process has replayed what
        // its predecessors read (from the committed offsets on) and read
        // fresh records beyond it; a kill during the replay would test
        // the replay, not the stream.
        let committed = committed_total(&broker.brokers, "crash", 3) as usize;
        let replay = read_before.saturating_sub(committed);
        let fresh_target = (replay + 20).min(total - committed);
        let mut child = spawn_service(&config);
        wait_until("the kill point", Duration::from_secs(120), || {
            produced.load(Ordering::SeqCst) >= total * k / (kills + 1)
        });
        wait_until("fresh records read", Duration::from_secs(60), || {
            records_received(&listen).is_some_and(|n| n as usize >= fresh_target)
        });
        jitter = jitter
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        std::thread::sleep(Duration::from_millis((jitter >> 33) % 300));
        let read = records_received(&listen).unwrap_or(0);
        child.0.kill().unwrap(); // SIGKILL: no drain, no final commit.
        child.0.wait().unwrap();
        read_before = produced.load(Ordering::SeqCst);
        eprintln!(
            "kill {k}: {read_before} of {total} records produced, {committed} committed at start, {read} read by this process ({replay} of them replayed), {} messages on the alert topic",
            read_all(&broker.brokers, "alerts", 1).len()
        );
    }
    feeder.join().unwrap();
    let mut child = spawn_service(&config);
    wait_for(
        &broker.brokers,
        "alerts",
        1,
        Duration::from_secs(180),
        |m| creates(m).len() >= expected.len(),
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.0.wait().unwrap();
    assert!(exit.success(), "graceful stop exits 0, got {exit}");
    let alerts = read_all(&broker.brokers, "alerts", 1);
    assert_eq!(creates(&alerts), expected, "distinct alert ids");
    let repeats = assert_repeats_identical(&alerts);
    eprintln!(
        "crash recovery: {kills} kills, {} alerts, {} messages, {repeats} repeated messages",
        expected.len(),
        alerts.len()
    );
}

#[test]
fn broker_down_backpressures_the_sink_without_loss() {
    if skip("broker_down") {
        return;
    }
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    cluster.create_topic("alerts", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.broker_down(1).unwrap();

    let mut records = Vec::new();
    let mut expected = BTreeSet::new();
    for k in 0..3 {
        let ip = format!("203.0.113.{k}");
        for i in 0..5 {
            let ms = T0_MS + k * 60_000 + i * 1_000;
            records.push(cloudtrail("ConsoleLogin", true, &ip, ms, "x").into_bytes());
        }
        expected.insert(expected_id(&ip, T0_MS + k * 60_000 + 4_000));
    }
    let engine = Arc::new(Engine::new(engine_config(), rules()));
    let properties = KafkaProperties(BTreeMap::from([(
        "message.timeout.ms".to_string(),
        "1000".to_string(),
    )]));
    let sink = KafkaAlertSink::new(&brokers, "alerts", &properties).unwrap();
    let dead = trailwatch::sink::writer::LineDeadLetterSink::new(
        trailwatch::sink::writer::LineTarget::Stderr,
        trailwatch::sink::writer::DeadLetterFormat::Json,
    );
    let runner = Arc::clone(&engine);
    let handle = std::thread::spawn(move || {
        runner.run(
            vec![Box::new(MemorySource::new("mem", records, 4))],
            Box::new(sink),
            Box::new(dead),
        )
    });
    let metrics = engine.metrics();
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.sink.retries.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "the sink never failed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        metrics.sink.sent.load(Ordering::Relaxed),
        0,
        "nothing is acknowledged while the broker is down"
    );
    assert!(!handle.is_finished(), "the pipeline waits for the sink");
    cluster.broker_up(1).unwrap();
    let summary = handle.join().unwrap().unwrap();
    assert_eq!(summary.alerts_delivered, expected.len() as u64);

    let alerts = read_all(&brokers, "alerts", 1);
    assert_eq!(creates(&alerts), expected);
    assert_repeats_identical(&alerts);
}

/// Stage 2 of a scale-out must know every input partition, not only the
/// ones whose owners have reported (a replica still starting holds its
/// share back). So each consumer announces every partition of the topic
/// (`PartitionEvent::Exists`), read by itself or by the other.
#[test]
fn each_consumer_announces_every_partition_of_the_topic() {
    use trailwatch::source::{PartitionEvent, PartitionRegistry, Source};
    if skip("universe") {
        return;
    }
    let broker = Broker::start(&[("ct", 4)]);
    let registry = PartitionRegistry::default();
    let all: BTreeSet<_> = (0..4)
        .map(|p| registry.id("kafka", &format!("ct/{p}")))
        .collect();
    let mut sources = [
        KafkaSource::new(&source_config(&broker.brokers, "ct", "universe")).unwrap(),
        KafkaSource::new(&source_config(&broker.brokers, "ct", "universe")).unwrap(),
    ];
    for source in &mut sources {
        source.announce_all_partitions();
    }
    let mut assigned = [BTreeSet::new(), BTreeSet::new()];
    let mut known = [BTreeSet::new(), BTreeSet::new()];
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        for (i, source) in sources.iter_mut().enumerate() {
            source.poll(&registry).unwrap();
            for event in source.take_partition_events(&registry) {
                match event {
                    PartitionEvent::Assigned(p) => assigned[i].insert(p),
                    PartitionEvent::Revoked(p) => assigned[i].remove(&p),
                    PartitionEvent::Exists(p) => {
                        assert!(known[i].insert(p), "announced once: {p}");
                        true
                    }
                };
            }
        }
        let split = !assigned[0].is_empty()
            && !assigned[1].is_empty()
            && assigned[0].union(&assigned[1]).count() == all.len();
        if split && known.iter().all(|k| k.len() == all.len()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no split assignment with full announcements: assigned {assigned:?}, known {known:?}"
        );
    }
    assert_eq!(known[0], all);
    assert_eq!(known[1], all);
    assert!(
        assigned.iter().all(|a| a.len() < all.len()),
        "each reads a part: {assigned:?}"
    );
}

/// Two members of one group on a one-partition topic: the member given the
/// partition is ready once it has consumed it, and the member given nothing
/// is a ready standby. (It used to stay unready, and a rolling update whose
/// surge pod got no partition never finished: new rules never deployed.)
#[test]
fn a_member_assigned_nothing_is_a_ready_standby() {
    use trailwatch::source::{PartitionRegistry, Source};
    if skip("standby") {
        return;
    }
    let broker = Broker::start(&[("ct", 1)]);
    let registry = PartitionRegistry::default();
    let mut sources = [
        KafkaSource::new(&source_config(&broker.brokers, "ct", "standby")).unwrap(),
        KafkaSource::new(&source_config(&broker.brokers, "ct", "standby")).unwrap(),
    ];
    let deadline = Instant::now() + Duration::from_secs(90);
    while !sources.iter().all(|s| s.is_ready()) {
        for source in &mut sources {
            source.poll(&registry).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "not both ready: {:?}",
            sources.iter().map(|s| s.is_ready()).collect::<Vec<_>>()
        );
    }
}
