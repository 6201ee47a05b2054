//! Kafka end-to-end benchmark against tansu on loopback (`harness = false`).
//!
//! `cargo bench --bench kafka_e2e [-- RECORDS [SECONDS]]` starts its own
//! tansu with `scripts/kafka-broker.sh`, then measures:
//!
//! 1. **Broker ceiling:** a bare consumer draining the input topic (no
//!    decoding), to show how far tansu itself limits the figures.
//! 2. **Throughput:** the engine (Kafka source → decode → rules → Kafka
//!    alert sink) consuming RECORDS pre-produced records; events/s.
//! 3. **Latency at 50% load:** records produced at half the measured
//!    throughput for SECONDS; one record in ten is a probe that an eager
//!    rule (`count >= 1`, grouped by `eventID`) turns into an alert at
//!    once. Latency = from the probe's hand-off to the producer (which
//!    includes the broker append) to the moment the alert sink returned
//!    (broker acknowledged the alert); p50/p99/p999 via hdrhistogram.
//!
//! 4. **Broker latency at the same rate:** the same paced stream read by a
//!    bare consumer (no engine), so the broker's own share of the latency
//!    shows beside the engine's.
//! 5. **Engine latency at the same rate, no broker:** the same paced
//!    stream from an in-memory source into an in-memory sink, from the
//!    record's hand-off to the engine to the sink's return.
//!
//! `TW_RATE=N` paces the latency phases at N records/s instead (to
//! compare brokers at one rate). `TW_POLL_BATCH=N` sets the source's `poll_batch` (default 2048, the
//! config default). `TW_BROKER=mock` runs every phase against librdkafka's
//! mock cluster instead of tansu: the same protocol over loopback TCP from a
//! broker whose fetch cost does not grow with the partition's history. Results go to stdout; BENCHMARKS.md records them with
//! the machine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use trailwatch::alert::Alert;
use trailwatch::config::{KafkaProperties, KafkaSourceConfig};
use trailwatch::engine::{Engine, EngineConfig};
use trailwatch::rules::RuleSet;
use trailwatch::sink::kafka::{KafkaAlertSink, KafkaDeadLetterSink};
use trailwatch::sink::writer::{MemoryDeadLetters, MemorySink};
use trailwatch::sink::AlertSink;
use trailwatch::source::kafka::KafkaSource;
use trailwatch::source::{PartitionId, PartitionRegistry, Poll, RawBatch, Source};

const PARTITIONS: i32 = 3;

const RULE: &str = r#"id: probe
title: Probe
description: Every probe event alerts at once (eager).
severity: low
kind: cloudtrail
filter: '{ $.eventName = ProbeEvent }'
group_by: [eventID]
window: 1m
threshold: ">= 1"
"#;

fn epoch_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn record(index: u64, probe: bool) -> Vec<u8> {
    let name = if probe {
        "ProbeEvent"
    } else {
        "DescribeInstances"
    };
    // Event time = now keeps windows closing as the stream goes.
    let now = chrono::Utc::now();
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","accountId":"111122223333","arn":"arn:aws:iam::111122223333:user/bench"}},"eventTime":"{}","eventSource":"ec2.amazonaws.com","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.{}","recipientAccountId":"111122223333","eventID":"p-{}-{index}"}}"#,
        now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        index % 250,
        epoch_us(),
    )
    .into_bytes()
}

fn producer(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer")
}

fn send(producer: &BaseProducer, topic: &str, index: u64, bytes: &[u8]) {
    let partition = (index % PARTITIONS as u64) as i32;
    loop {
        match producer.send(
            BaseRecord::<(), [u8]>::to(topic)
                .partition(partition)
                .payload(bytes),
        ) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(_), _)) => producer.poll(Duration::from_millis(1)),
            Err((e, _)) => panic!("produce: {e}"),
        }
    }
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        flush_on_end: false,
        commit_interval: Duration::from_millis(500),
        ..EngineConfig::default()
    }
}

/// The source's `poll_batch`: `TW_POLL_BATCH`, or the config default.
fn poll_batch() -> usize {
    std::env::var("TW_POLL_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048)
}

fn source(brokers: &str, topic: &str, group: &str) -> KafkaSource {
    KafkaSource::new(&KafkaSourceConfig {
        brokers: brokers.to_string(),
        topics: vec![topic.to_string()],
        topic_pattern: None,
        group_id: group.to_string(),
        decoder: None,
        flow_format: None,
        properties: KafkaProperties(BTreeMap::from([(
            "fetch.wait.max.ms".to_string(),
            "10".to_string(),
        )])),
        static_membership: false,
        poll_batch: poll_batch(),
        allowed_lateness: None,
    })
    .expect("source")
}

/// Wraps an alert sink to time probe alerts once acknowledged.
struct Timed {
    inner: Box<dyn AlertSink>,
    latency_us: Arc<Mutex<Histogram<u64>>>,
    measuring: Arc<AtomicBool>,
}

impl AlertSink for Timed {
    fn name(&self) -> &str {
        "kafka-timed"
    }

    fn send(&mut self, alerts: &[Alert]) -> trailwatch::error::Result<()> {
        self.inner.send(alerts)?;
        if self.measuring.load(Ordering::Relaxed) {
            let now = epoch_us();
            let mut histogram = self.latency_us.lock().unwrap_or_else(|p| p.into_inner());
            for alert in alerts {
                let sent = alert
                    .key
                    .first()
                    .and_then(|id| id.split('-').nth(1))
                    .and_then(|us| us.parse::<i64>().ok());
                if let Some(sent) = sent {
                    let _ = histogram.record((now - sent).max(1) as u64);
                }
            }
        }
        Ok(())
    }
}

fn processed(engine: &Engine) -> u64 {
    engine
        .metrics()
        .decoders
        .iter()
        .map(|d| d.records.load(Ordering::Relaxed))
        .sum()
}

/// A consumer outside any engine, assigned every partition of `topic` from
/// the beginning, with `extra` librdkafka properties.
fn bare_consumer(brokers: &str, topic: &str, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .expect("offset");
    }
    consumer.assign(&list).expect("assign");
    consumer
}

/// An empty latency histogram: 1 µs to 60 s, three significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram")
}

fn broker_ceiling(brokers: &str, topic: &str, records: u64) -> f64 {
    let consumer = bare_consumer(brokers, topic, "bench-ceiling", &[]);
    let started = Instant::now();
    let mut seen = 0u64;
    while seen < records {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            seen += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "ceiling read stuck"
        );
    }
    records as f64 / started.elapsed().as_secs_f64()
}

/// Sends `seconds` of paced records (`rate` per second, one probe in ten)
/// to `topic`, starting at `index`; returns the next index.
fn paced_stream(producer: &BaseProducer, topic: &str, rate: f64, seconds: u64, index: u64) -> u64 {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let total = (rate * seconds as f64) as u64;
    let mut index = index;
    for n in 0..total {
        let due = started + interval.mul_f64(n as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        send(producer, topic, index, &record(index, index % 10 == 0));
        index += 1;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    index
}

/// The microsecond stamp of `p-<us>-<index>` in a record's `eventID`.
fn sent_us(payload: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(payload).ok()?;
    let start = text.find("\"eventID\":\"p-")? + "\"eventID\":\"p-".len();
    let rest = &text[start..];
    rest[..rest.find('-')?].parse().ok()
}

/// Probe latency of a bare consumer (no engine) reading a paced stream.
fn broker_latency(brokers: &str, topic: &str, rate: f64, seconds: u64) -> Histogram<u64> {
    let consumer = bare_consumer(brokers, topic, "bench-bare", &[("fetch.wait.max.ms", "10")]);
    // Warm up (metadata, fetch sessions) on a few records before the
    // measured stream starts, as the engine run does.
    let warm = producer(brokers);
    for i in 0..PARTITIONS as u64 {
        send(&warm, topic, i, &record(i, false));
    }
    warm.flush(Duration::from_secs(30)).expect("flush");
    let mut warmed = 0;
    let warm_deadline = Instant::now() + Duration::from_secs(60);
    while warmed < PARTITIONS && Instant::now() < warm_deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            warmed += 1;
        }
    }
    let done = Arc::new(AtomicBool::new(false));
    let finished = Arc::clone(&done);
    let topic_name = topic.to_string();
    // The warmed producer sends the stream: a fresh one would hold its
    // first records while it fetches metadata and its producer id, which
    // read as about 0.5 s of broker latency on any broker.
    let producing = std::thread::spawn(move || {
        paced_stream(&warm, &topic_name, rate, seconds, PARTITIONS as u64);
        std::thread::sleep(Duration::from_secs(2));
        finished.store(true, Ordering::Relaxed);
    });
    let mut histogram = latency_histogram();
    while !done.load(Ordering::Relaxed) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            use rdkafka::message::Message;
            if let Some(sent) = message.payload().and_then(sent_us) {
                let _ = histogram.record((epoch_us() - sent).max(1) as u64);
            }
        }
    }
    producing.join().expect("producer thread");
    histogram
}

/// A source handing the paced stream straight to the engine, one batch
/// per poll with every record due by then (no broker).
struct PacedSource {
    interval: Duration,
    total: u64,
    sent: u64,
    started: Instant,
}

impl Source for PacedSource {
    fn name(&self) -> &str {
        "paced"
    }

    fn poll(&mut self, registry: &PartitionRegistry) -> trailwatch::error::Result<Poll> {
        if self.sent >= self.total {
            return Ok(Poll::End);
        }
        let due = self.started + self.interval.mul_f64(self.sent as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep((due - now).min(Duration::from_millis(10)));
            return Ok(Poll::Idle);
        }
        let mut batch = RawBatch::new(registry.id("paced", "0"));
        while self.sent < self.total
            && self.started + self.interval.mul_f64(self.sent as f64) <= Instant::now()
        {
            let index = self.sent;
            batch.push(&record(index, index % 10 == 0), index);
            self.sent += 1;
        }
        Ok(Poll::Batch(batch))
    }

    fn commit(&mut self, _positions: &[(PartitionId, u64)]) -> trailwatch::error::Result<()> {
        Ok(())
    }
}

/// Probe latency of the engine alone: paced in-memory source, in-memory sink.
fn engine_only_latency(rules: &Arc<RuleSet>, rate: f64, seconds: u64) -> Histogram<u64> {
    let latency = Arc::new(Mutex::new(latency_histogram()));
    let engine = Engine::new(engine_config(), Arc::clone(rules));
    let source = PacedSource {
        interval: Duration::from_secs_f64(1.0 / rate),
        total: (rate * seconds as f64) as u64,
        sent: 0,
        started: Instant::now(),
    };
    let sink = Timed {
        inner: Box::new(MemorySink::default()),
        latency_us: Arc::clone(&latency),
        measuring: Arc::new(AtomicBool::new(true)),
    };
    engine
        .run(
            vec![Box::new(source)],
            Box::new(sink),
            Box::new(MemoryDeadLetters::default()),
        )
        .expect("engine");
    let histogram = latency.lock().unwrap_or_else(|p| p.into_inner()).clone();
    histogram
}

fn print_latency(what: &str, rate: f64, h: &Histogram<u64>) {
    println!(
        "{what} at {rate:.0} records/s ({} samples): p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms",
        h.len(),
        h.value_at_quantile(0.50) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let records: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-broker.sh");
    let topics = ["tput:3", "paced:3", "bare:3", "alerts:1", "dlq:1"];
    // TW_BROKER=mock: librdkafka's mock cluster instead of tansu (the real
    // protocol over loopback TCP, served from memory in this process).
    let mock = std::env::var("TW_BROKER").is_ok_and(|b| b == "mock");
    let (brokers, port, _cluster) = if mock {
        let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
        for spec in topics {
            let (name, parts) = spec.split_once(':').expect("topic spec");
            cluster
                .create_topic(name, parts.parse().expect("partitions"), 1)
                .expect("mock topic");
        }
        println!("broker: librdkafka mock cluster (TW_BROKER=mock)");
        (cluster.bootstrap_servers(), None, Some(cluster))
    } else {
        let out = Command::new(&script)
            .arg("start")
            .args(topics)
            .output()
            .expect("start tansu");
        assert!(out.status.success(), "tansu did not start");
        let port = String::from_utf8_lossy(&out.stdout).trim().to_string();
        println!("broker: tansu (memory storage)");
        (format!("127.0.0.1:{port}"), Some(port), None)
    };
    let spec = trailwatch::rules::parse_rule_text("bench", RULE).expect("rule");
    let rules = Arc::new(RuleSet::compile(&[spec]).expect("rules"));
    let none = KafkaProperties::default();

    // Produce the throughput input (one probe in ten).
    let p = producer(&brokers);
    let started = Instant::now();
    for i in 0..records {
        send(&p, "tput", i, &record(i, i % 10 == 0));
        if i % 1000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    let produce_rate = records as f64 / started.elapsed().as_secs_f64();
    println!("poll_batch: {}", poll_batch());
    println!("produce (idempotent, acks=all): {produce_rate:.0} records/s");
    let ceiling = broker_ceiling(&brokers, "tput", records);
    println!("broker ceiling (bare consumer, no decoding): {ceiling:.0} records/s");

    // Throughput: engine drains the pre-produced topic.
    let engine = Arc::new(Engine::new(engine_config(), Arc::clone(&rules)));
    let mut src = source(&brokers, "tput", "bench-tput");
    src.set_tracker(engine.tracker());
    let sink = KafkaAlertSink::new(&brokers, "alerts", &none).expect("sink");
    let dead = KafkaDeadLetterSink::new(&brokers, "dlq", &none).expect("dlq");
    let stop = engine.stop_handle();
    let runner = Arc::clone(&engine);
    let handle =
        std::thread::spawn(move || runner.run(vec![Box::new(src)], Box::new(sink), Box::new(dead)));
    // Time from the first record processed (excludes the group join).
    while processed(&engine) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let started = Instant::now();
    let first = processed(&engine);
    while processed(&engine) < records {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let summary = handle.join().expect("engine thread").expect("engine");
    let throughput = (records - first) as f64 / elapsed.as_secs_f64();
    println!(
        "engine throughput: {throughput:.0} events/s ({} records, {} alerts)",
        records - first,
        summary.alerts_delivered
    );

    // Latency at 50% of the sustainable throughput: the engine figure above
    // starts after the group join, when librdkafka has already prefetched
    // a large part of the topic, so the broker ceiling bounds it.
    let rate = std::env::var("TW_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or((throughput.min(ceiling) / 2.0).max(100.0));
    let latency = Arc::new(Mutex::new(latency_histogram()));
    let measuring = Arc::new(AtomicBool::new(false));
    let engine = Arc::new(Engine::new(engine_config(), Arc::clone(&rules)));
    let mut src = source(&brokers, "paced", "bench-paced");
    src.set_tracker(engine.tracker());
    let sink = Timed {
        inner: Box::new(KafkaAlertSink::new(&brokers, "alerts", &none).expect("sink")),
        latency_us: Arc::clone(&latency),
        measuring: Arc::clone(&measuring),
    };
    let dead = KafkaDeadLetterSink::new(&brokers, "dlq", &none).expect("dlq");
    let stop = engine.stop_handle();
    let runner = Arc::clone(&engine);
    let handle =
        std::thread::spawn(move || runner.run(vec![Box::new(src)], Box::new(sink), Box::new(dead)));
    // Warm up (group join, first fetches) before measuring.
    let paced = producer(&brokers);
    let mut index = 0u64;
    let warmup = Instant::now();
    while processed(&engine) == 0 && warmup.elapsed() < Duration::from_secs(60) {
        send(&paced, "paced", index, &record(index, true));
        index += 1;
        paced.poll(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    measuring.store(true, Ordering::Relaxed);
    paced_stream(&paced, "paced", rate, seconds, index);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    handle.join().expect("engine thread").expect("engine");
    let h = latency.lock().unwrap_or_else(|p| p.into_inner());
    print_latency("engine probe-to-alert latency", rate, &h);
    let bare = broker_latency(&brokers, "bare", rate, seconds);
    print_latency("broker only (bare consumer, same stream)", rate, &bare);
    let alone = engine_only_latency(&rules, rate, seconds);
    print_latency("engine only (in-memory source and sink)", rate, &alone);
    if let Some(port) = port {
        let _ = Command::new(&script).args(["stop", &port]).status();
    }
}
