//! What the Kafka integration tests (`tests/kafka.rs`, `tests/scaleout.rs`)
//! share: the skip switch, a tansu broker on a free loopback port, and the
//! producer that feeds it.
//!
//! Each test binary that declares `mod support;` compiles this module on its
//! own, and not every binary uses every item.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::BaseProducer;

/// Whether `TRAILWATCH_SKIP_KAFKA=1` asks to skip `test` (for a machine
/// without tansu and without the time to build it).
pub fn skip(test: &str) -> bool {
    if std::env::var("TRAILWATCH_SKIP_KAFKA").as_deref() == Ok("1") {
        eprintln!("{test}: skipped because TRAILWATCH_SKIP_KAFKA=1");
        return true;
    }
    false
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tansu broker on a free loopback port, killed on drop.
pub struct Broker {
    child: Child,
    /// The listener URL, as tansu's own commands take it.
    pub url: String,
    /// `host:port`, as Kafka clients take it.
    pub brokers: String,
    tansu: PathBuf,
}

impl Broker {
    /// Starts tansu (built by `scripts/kafka-broker.sh` when missing) and
    /// creates `topics` with their partition counts.
    pub fn start(topics: &[(&str, i32)]) -> Broker {
        let output = Command::new(repo().join("scripts/kafka-broker.sh"))
            .arg("install")
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/kafka-broker.sh install");
        assert!(output.status.success(), "cannot install tansu");
        let tansu = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&tansu)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let broker = Broker {
            child,
            url,
            brokers: format!("127.0.0.1:{port}"),
            tansu,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&broker.brokers).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        for (topic, partitions) in topics {
            broker.create_topic(topic, *partitions);
        }
        broker
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let status = Command::new(&self.tansu)
            .args(["topic", "create", topic, "--broker", &self.url])
            .args(["--partitions", &partitions.to_string()])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "cannot create topic {topic}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An idempotent producer for `brokers`. Unless `batched`, it sends one
/// record per batch: tansu 0.6 serves a fetch at offset `o` from the first
/// stored batch whose *base* offset is `>= o` (`dynostore.rs`, `fetch`:
/// `offsets.split_off(&offset)`), so a consumer that resumes in the middle
/// of a batch silently skips the rest of it, where Kafka returns the batch
/// containing `o`. trailwatch commits exact safe positions, which often lie
/// mid-batch, so the restart, rebalance and churn tests need every offset
/// to be a batch base (RELIABILITY.md, scale-out row). Throughput benches
/// that resume nowhere may batch.
pub fn producer(brokers: &str, batched: bool) -> BaseProducer {
    let per_batch = if batched { "10000" } else { "1" };
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.num.messages", per_batch)
        .create()
        .unwrap()
}
