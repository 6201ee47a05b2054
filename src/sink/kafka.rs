//! Kafka sinks: the alert topic, the dead-letter topic and the repartition
//! topic (stage 1's partials).
//!
//! # Contract
//!
//! Both sinks share one [`TopicProducer`]: an idempotent librdkafka producer
//! (`enable.idempotence=true`, `acks=all`) whose `send` enqueues a whole
//! batch and then waits for the delivery report of every message. `send`
//! returns `Ok` only when the broker acknowledged all of them (the
//! acknowledgement contract of [`crate::sink`]); any failed or missing
//! report is an `Err`, the engine retries the batch with backoff, and the
//! bounded channels behind it pause intake (backpressure). The wait is
//! bounded by `message.timeout.ms` (30 s unless configured), after which
//! librdkafka reports every outstanding message as failed.
//!
//! A retried batch may re-send alerts that were in fact written: they are
//! byte-identical (same key, value and headers, all derived from the alert,
//! whose `time` is event time), and consumers dedup them by `ce_id`.
//!
//! * **Alerts:** key = [`Alert::routing_key`] (so one rule and group key stay
//!   in one partition, in order), value = the OCSF JSON, and CloudEvents
//!   binary-mode headers: `ce_specversion`, `ce_id` ([`Alert::event_id`]),
//!   `ce_type` (`com.trailwatch.detection_finding.<activity>`), `ce_source`
//!   (`trailwatch/<rule id>`), `ce_time` (RFC 3339 of the alert's event
//!   time) and `content-type: application/json`.
//! * **Dead letters:** value = the original bytes, key = the input partition
//!   name, headers `tw_source` (`kafka:topic/partition`), `tw_topic` and
//!   `tw_partition` (when the input is a Kafka partition), `tw_offset`,
//!   `tw_error_class`, `tw_reason` and `tw_detail`.
//!
//! # Record size
//!
//! librdkafka refuses, at produce time, a message whose key, value and
//! headers exceed the producer's `message.max.bytes` (1,000,000 unless
//! configured), and a broker refuses one larger than the topic's
//! `max.message.bytes`. A dead letter too large for
//! [`KafkaDeadLetterSink::record_limit`] (`message.max.bytes` less
//! [`FRAMING_RESERVE`]) is cut by [`DeadLetterSink::fit`]: its value keeps
//! the first bytes of the record, and the headers `tw_truncated: true` and
//! `tw_original_bytes` mark it; `tw_source`/`tw_offset` say where the whole
//! record is. A message still refused as too large (a topic whose
//! `max.message.bytes` is below the producer's `message.max.bytes`) is
//! [`Error::TooLarge`], not retried: set `message.max.bytes` in the sink's
//! properties to the topic's limit. Stage 1 keeps every repartition
//! partial well under the default limit (`engine::preagg`, "Partial
//! size"); one still refused (a repartition producer or topic set lower,
//! or a group key of hundreds of kilobytes) is [`Error::TooLarge`] naming
//! the rule and group key of the flush's largest partial and the settings
//! to raise. Nothing past it is committed: after the settings are raised,
//! a restart sends it again.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::{AlertSink, DeadLetter, DeadLetterSink, PartialSink};
use crate::alert::Alert;
use crate::config::KafkaProperties;
use crate::engine::preagg::PartialRecord;
use crate::engine::shutdown::ShutdownClock;
use crate::error::{Error, Result};

/// How long one wait for delivery reports blocks before the reports are
/// checked again; it bounds the latency a send adds after the broker acks.
const REPORT_POLL: Duration = Duration::from_millis(1);

/// Default `message.timeout.ms`: how long one `send` may wait for reports.
const DEFAULT_MESSAGE_TIMEOUT_MS: u64 = 30_000;

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Bytes of `message.max.bytes` a dead letter leaves for framing that its
/// key, value and header bytes do not count: librdkafka's per-message
/// overhead (at most 36 bytes), the length varints of each header (at most
/// 10 bytes each) and the record batch header (61 bytes) a broker counts
/// against the topic's `max.message.bytes`.
pub const FRAMING_RESERVE: usize = 1024;

/// Delivery reports of the batch being sent.
#[derive(Default)]
struct Reports {
    /// Batch generation; reports of older (abandoned) batches are ignored.
    generation: u32,
    /// One slot per message: `None` until its report arrives.
    results: Vec<Option<std::result::Result<(), KafkaError>>>,
    received: usize,
}

/// Producer context: collects delivery reports, logs through `tracing`.
#[derive(Default)]
pub struct DeliveryContext {
    reports: Mutex<Reports>,
}

impl DeliveryContext {
    fn lock(&self) -> std::sync::MutexGuard<'_, Reports> {
        self.reports.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_librdkafka(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "kafka producer error");
    }
}

impl ProducerContext for DeliveryContext {
    /// `generation << 32 | index` of the message in its batch.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let generation = (opaque >> 32) as u32;
        let index = opaque & 0xffff_ffff;
        let mut reports = self.lock();
        if reports.generation != generation {
            return;
        }
        if let Some(slot) = reports.results.get_mut(index) {
            if slot.is_none() {
                *slot = Some(match result {
                    Ok(_) => Ok(()),
                    Err((error, _)) => Err(error.clone()),
                });
                reports.received += 1;
            }
        }
    }
}

/// Forwards librdkafka's log lines to `tracing`.
pub(crate) fn log_librdkafka(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(facility, message, "librdkafka"),
        RDKafkaLogLevel::Warning => tracing::warn!(facility, message, "librdkafka"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(facility, message, "librdkafka")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(facility, message, "librdkafka"),
    }
}

/// One message of a batch.
pub struct OutMessage {
    /// Explicit partition; `None`: librdkafka's partitioner on the key.
    pub partition: Option<i32>,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// An idempotent producer to one topic that sends batches synchronously.
pub struct TopicProducer {
    producer: BaseProducer<DeliveryContext>,
    config: ClientConfig,
    topic: String,
    report_deadline: Duration,
    generation: u32,
    /// The producer's effective `message.max.bytes`.
    max_message_bytes: usize,
    /// The engine's shutdown clock: a send waiting for reports gives up
    /// once it has passed (`engine::shutdown`).
    shutdown: ShutdownClock,
}

impl TopicProducer {
    /// A producer for `topic` on `brokers`; `properties` override defaults.
    pub fn new(brokers: &str, topic: &str, properties: &KafkaProperties) -> Result<Self> {
        let resolved = properties.resolve()?;
        let config = producer_config(brokers, &resolved)?;
        let timeout_ms = config
            .get("message.timeout.ms")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(DEFAULT_MESSAGE_TIMEOUT_MS);
        let max_message_bytes = config
            .get("message.max.bytes")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        let producer = create_producer(&config)?;
        tracing::info!(topic, brokers, "kafka producer created");
        Ok(TopicProducer {
            producer,
            config,
            topic: topic.to_string(),
            report_deadline: Duration::from_millis(timeout_ms) + Duration::from_secs(5),
            generation: 0,
            max_message_bytes,
            shutdown: ShutdownClock::default(),
        })
    }

    /// The topic written to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Gives up waiting inside a send once `clock` has passed.
    pub fn watch_shutdown(&mut self, clock: &ShutdownClock) {
        self.shutdown = clock.clone();
    }

    /// Whether a send must stop waiting now: its own deadline, or the
    /// engine's shutdown deadline, has passed.
    fn must_give_up(&self, deadline: Instant) -> bool {
        Instant::now() >= deadline || self.shutdown.passed()
    }

    /// The producer's effective `message.max.bytes`: the most bytes of key,
    /// value and headers (plus framing) one message may have.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// The topic's partition count, from broker metadata (the topic must
    /// exist: repartition topics are created by the operator).
    pub fn partition_count(&self) -> Result<i32> {
        let metadata = self
            .producer
            .client()
            .fetch_metadata(Some(&self.topic), Duration::from_secs(30))
            .map_err(|e| Error::Sink(format!("kafka topic {}: metadata: {e}", self.topic)))?;
        let count = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .map_or(0, |t| t.partitions().len());
        if count == 0 {
            return Err(Error::Config(format!(
                "kafka topic {} has no partitions (create it first)",
                self.topic
            )));
        }
        i32::try_from(count).map_err(|_| Error::Internal("partition count overflows".into()))
    }

    /// Sends `messages` and waits until the broker acknowledged all of them.
    pub fn send_all(&mut self, messages: &[OutMessage]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let result = self.try_send_all(messages);
        if result.is_err() {
            if let Some((code, reason)) = self.producer.client().fatal_error() {
                // An idempotent producer that hit a fatal error cannot
                // produce again: start a new one (new producer id).
                tracing::warn!(topic = %self.topic, code = %code, reason = %reason, "kafka producer fatal error, recreating it");
                self.producer = create_producer(&self.config)?;
            }
        }
        result
    }

    fn try_send_all(&mut self, messages: &[OutMessage]) -> Result<()> {
        self.generation = self.generation.wrapping_add(1);
        {
            let mut reports = self.producer.context().lock();
            reports.generation = self.generation;
            reports.results = vec![None; messages.len()];
            reports.received = 0;
        }
        let started = Instant::now();
        let deadline = started + self.report_deadline;
        for (index, message) in messages.iter().enumerate() {
            let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
            for (key, value) in &message.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            let opaque = ((self.generation as usize) << 32) | index;
            let mut record = BaseRecord::with_opaque_to(&self.topic, opaque)
                .key(&message.key[..])
                .payload(&message.value[..])
                .headers(headers);
            if let Some(partition) = message.partition {
                record = record.partition(partition);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        if self.must_give_up(deadline) {
                            return Err(Error::Sink(format!(
                                "kafka topic {}: local queue full until the deadline",
                                self.topic
                            )));
                        }
                        record = back;
                        self.producer.poll(REPORT_POLL);
                    }
                    Err((error, _)) if is_too_large(&error) => {
                        return Err(Error::TooLarge(format!(
                            "kafka topic {}: message {index} of {} bytes (key {}, value {}, headers) exceeds message.max.bytes {}: {error}",
                            self.topic,
                            message.key.len() + message.value.len() + headers_bytes(&message.headers),
                            message.key.len(),
                            message.value.len(),
                            self.max_message_bytes
                        )));
                    }
                    Err((error, _)) => {
                        return Err(Error::Sink(format!(
                            "kafka topic {}: cannot enqueue: {error}",
                            self.topic
                        )));
                    }
                }
            }
        }
        loop {
            {
                let reports = self.producer.context().lock();
                if reports.received == messages.len() {
                    let failed: Vec<&KafkaError> = reports
                        .results
                        .iter()
                        .filter_map(|r| r.as_ref().and_then(|r| r.as_ref().err()))
                        .collect();
                    if let Some(too_large) = failed.iter().find(|e| is_too_large(e)) {
                        // The broker refused it (the topic's limit is below
                        // the producer's): the same bytes fail again.
                        return Err(Error::TooLarge(format!(
                            "kafka topic {}: {} of {} messages not delivered: {too_large} (set message.max.bytes in the sink's properties to at most the topic's max.message.bytes)",
                            self.topic,
                            failed.len(),
                            messages.len()
                        )));
                    }
                    if let Some(first) = failed.first() {
                        return Err(Error::Sink(format!(
                            "kafka topic {}: {} of {} messages not delivered: {first}",
                            self.topic,
                            failed.len(),
                            messages.len()
                        )));
                    }
                    return Ok(());
                }
            }
            if self.must_give_up(deadline) {
                return Err(Error::Sink(format!(
                    "kafka topic {}: delivery reports missing after {} ms{}",
                    self.topic,
                    started.elapsed().as_millis(),
                    if self.shutdown.passed() {
                        " (shutdown deadline passed)"
                    } else {
                        ""
                    }
                )));
            }
            // rdkafka's `BaseProducer::poll` serves events until its whole
            // timeout has passed, even when the last report came at once,
            // so a long timeout here is a floor on every send's latency.
            self.producer.poll(REPORT_POLL);
        }
    }
}

impl Drop for TopicProducer {
    fn drop(&mut self) {
        if let Err(e) = self.producer.flush(Duration::from_secs(5)) {
            tracing::warn!(topic = %self.topic, error = %e, "kafka producer flush at close failed");
        }
    }
}

/// Whether librdkafka or the broker refused a message as too large.
fn is_too_large(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge)
    )
}

/// Name and value bytes of message headers.
fn headers_bytes(headers: &[(&'static str, String)]) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum()
}

fn producer_config(brokers: &str, properties: &BTreeMap<String, String>) -> Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", DEFAULT_MESSAGE_TIMEOUT_MS.to_string())
        .set("compression.type", "none");
    for (key, value) in properties {
        if key == "enable.idempotence" && value != "true" {
            return Err(Error::Config(
                "kafka sink: enable.idempotence cannot be turned off".into(),
            ));
        }
        config.set(key, value);
    }
    Ok(config)
}

fn create_producer(config: &ClientConfig) -> Result<BaseProducer<DeliveryContext>> {
    config
        .create_with_context(DeliveryContext::default())
        .map_err(|e| crate::source::kafka::client_config_error("kafka producer", &e))
}

/// Checks a producer's settings as [`TopicProducer::new`] does, without
/// reaching a broker: secret references resolve (never shown), and
/// librdkafka accepts every property and the client they make
/// ([`crate::source::kafka::check_client`]).
pub fn check_config(brokers: &str, properties: &KafkaProperties) -> Result<()> {
    let config = producer_config(brokers, &properties.resolve()?)?;
    crate::source::kafka::check_client::<BaseProducer>(config, "kafka producer")
}

/// The repartition topic of a two-stage deployment (stage 1's output).
///
/// A partial goes to partition `xxh3(key) % partitions` (key = `rule|group
/// key`, so each window lives in exactly one partition); a watermark record
/// goes to every partition. The partition count is read once at start:
/// adding partitions to a running repartition topic moves keys between
/// partitions, so do it with every replica stopped and stage 2 drained.
pub struct KafkaPartialSink {
    producer: TopicProducer,
    partitions: i32,
}

impl KafkaPartialSink {
    /// A sink writing to the existing `topic`.
    pub fn new(brokers: &str, topic: &str, properties: &KafkaProperties) -> Result<Self> {
        let producer = TopicProducer::new(brokers, topic, properties)?;
        let partitions = producer.partition_count()?;
        Ok(KafkaPartialSink {
            producer,
            partitions,
        })
    }

    /// The repartition partition of a record key.
    pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
        let hash = xxhash_rust::xxh3::xxh3_64(key);
        (hash % partitions.max(1) as u64) as i32
    }
}

impl PartialSink for KafkaPartialSink {
    fn name(&self) -> &str {
        "kafka-repartition"
    }

    fn send(
        &mut self,
        partials: &[PartialRecord],
        watermark: Option<&PartialRecord>,
    ) -> Result<u64> {
        let mut messages = Vec::with_capacity(partials.len() + self.partitions as usize);
        let mut bytes = 0u64;
        for partial in partials {
            bytes += (partial.key.len() + partial.value.len()) as u64;
            messages.push(OutMessage {
                partition: Some(Self::partition_of(&partial.key, self.partitions)),
                key: partial.key.clone(),
                value: partial.value.clone(),
                headers: Vec::new(),
            });
        }
        if let Some(mark) = watermark {
            for partition in 0..self.partitions {
                bytes += (mark.key.len() + mark.value.len()) as u64;
                messages.push(OutMessage {
                    partition: Some(partition),
                    key: mark.key.clone(),
                    value: mark.value.clone(),
                    headers: Vec::new(),
                });
            }
        }
        self.producer
            .send_all(&messages)
            .map_err(|error| match error {
                Error::TooLarge(detail) => Error::TooLarge(refused_partial(partials, &detail)),
                other => other,
            })?;
        Ok(bytes)
    }

    fn watch_shutdown(&mut self, clock: &ShutdownClock) {
        self.producer.watch_shutdown(clock);
    }
}

/// What to tell the operator when the repartition topic refuses a flush as
/// too large: the largest partial's rule and group key, and what to raise.
fn refused_partial(partials: &[PartialRecord], detail: &str) -> String {
    let largest = partials
        .iter()
        .max_by_key(|partial| partial.key.len() + partial.value.len())
        .map(describe_partial)
        .unwrap_or_default();
    format!(
        "repartition: {detail}{largest}. Stage 1 keeps a partial under about 620 KB plus its \
         group key: raise message.max.bytes in scaleout.properties and the repartition \
         topic's max.message.bytes to at least 1000000 (more for a group key that long), \
         then restart; the input is not committed past this flush, so it is sent again"
    )
}

/// `; the flush's largest partial, N bytes, is rule R, group key K` (the
/// key cut to 200 bytes).
fn describe_partial(partial: &PartialRecord) -> String {
    let key = String::from_utf8_lossy(&partial.key);
    let (rule, group) = key
        .split_once(crate::engine::partial::KEY_RULE_SEPARATOR)
        .unwrap_or((&key, ""));
    let shown = &group[..crate::engine::window::floor_char_boundary(group, 200)];
    let cut = if shown.len() < group.len() {
        " (cut)"
    } else {
        ""
    };
    format!(
        "; the flush's largest partial, {} bytes, is rule {rule:?}, group key {shown:?}{cut}",
        partial.key.len() + partial.value.len()
    )
}

/// RFC 3339 (UTC, milliseconds) of an epoch-ms timestamp.
fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Alerts as OCSF JSON with CloudEvents headers (module contract).
pub struct KafkaAlertSink {
    producer: TopicProducer,
}

impl KafkaAlertSink {
    /// A sink writing to `topic`.
    pub fn new(brokers: &str, topic: &str, properties: &KafkaProperties) -> Result<Self> {
        Ok(KafkaAlertSink {
            producer: TopicProducer::new(brokers, topic, properties)?,
        })
    }

    /// The Kafka message for `alert`.
    pub fn message(alert: &Alert) -> Result<OutMessage> {
        let value = alert
            .ocsf_json()
            .map_err(|e| Error::Internal(format!("cannot encode alert: {e}")))?;
        Ok(OutMessage {
            partition: None,
            key: alert.routing_key().into_bytes(),
            value,
            headers: vec![
                ("ce_specversion", "1.0".to_string()),
                ("ce_id", alert.event_id()),
                (
                    "ce_type",
                    format!(
                        "com.trailwatch.detection_finding.{}",
                        alert.activity.as_str()
                    ),
                ),
                ("ce_source", format!("trailwatch/{}", alert.rule.id)),
                ("ce_time", rfc3339_ms(alert.time_ms())),
                ("content-type", "application/json".to_string()),
            ],
        })
    }
}

impl AlertSink for KafkaAlertSink {
    fn name(&self) -> &str {
        "kafka"
    }

    fn send(&mut self, alerts: &[Alert]) -> Result<()> {
        let messages = alerts
            .iter()
            .map(KafkaAlertSink::message)
            .collect::<Result<Vec<_>>>()?;
        self.producer.send_all(&messages)
    }

    fn watch_shutdown(&mut self, clock: &ShutdownClock) {
        self.producer.watch_shutdown(clock);
    }
}

/// Dead letters with their original bytes (module contract).
pub struct KafkaDeadLetterSink {
    producer: TopicProducer,
}

impl KafkaDeadLetterSink {
    /// A sink writing to `topic`.
    pub fn new(brokers: &str, topic: &str, properties: &KafkaProperties) -> Result<Self> {
        Ok(KafkaDeadLetterSink {
            producer: TopicProducer::new(brokers, topic, properties)?,
        })
    }

    /// The most bytes of key, value and headers one dead letter may take:
    /// `message.max.bytes` less [`FRAMING_RESERVE`] (module docs).
    pub fn record_limit(&self) -> usize {
        self.producer
            .max_message_bytes()
            .saturating_sub(FRAMING_RESERVE)
    }

    /// Key, value and header bytes of `record`'s message.
    fn encoded_len(record: &DeadLetter) -> usize {
        record.partition.len() + record.bytes.len() + headers_bytes(&Self::headers(record))
    }

    /// Cuts `record` to `limit` bytes of key, value and headers, if it must;
    /// returns whether it cut.
    fn fit_to(record: &mut DeadLetter, limit: usize) -> bool {
        if Self::encoded_len(record) <= limit {
            return false;
        }
        // The cut adds the truncation headers and caps the detail: measure
        // the rest of the message in that form.
        record.truncate(record.bytes.len());
        let rest = Self::encoded_len(record) - record.bytes.len();
        record.truncate(limit.saturating_sub(rest));
        true
    }

    /// The headers of `record` (module contract).
    fn headers(record: &DeadLetter) -> Vec<(&'static str, String)> {
        let mut headers = vec![("tw_source", record.partition.clone())];
        if let Some((topic, partition)) = record
            .partition
            .strip_prefix("kafka:")
            .and_then(|rest| rest.rsplit_once('/'))
        {
            headers.push(("tw_topic", topic.to_string()));
            headers.push(("tw_partition", partition.to_string()));
        }
        headers.extend([
            ("tw_offset", record.offset.to_string()),
            ("tw_error_class", record.class.as_str().to_string()),
            ("tw_reason", record.reason.to_string()),
            ("tw_detail", record.detail.clone()),
        ]);
        if let Some(sequence_number) = &record.sequence_number {
            headers.push(("tw_sequence_number", sequence_number.clone()));
        }
        if let Some(original_len) = record.original_len {
            headers.push(("tw_truncated", "true".to_string()));
            headers.push(("tw_original_bytes", original_len.to_string()));
        }
        headers
    }

    /// The Kafka message for `record`.
    pub fn message(record: &DeadLetter) -> OutMessage {
        let headers = Self::headers(record);
        OutMessage {
            partition: None,
            key: record.partition.clone().into_bytes(),
            value: record.bytes.clone(),
            headers,
        }
    }
}

impl DeadLetterSink for KafkaDeadLetterSink {
    fn name(&self) -> &str {
        "kafka"
    }

    fn fit(&self, record: &mut DeadLetter) -> bool {
        Self::fit_to(record, self.record_limit())
    }

    /// Sends `records`, each cut to fit first if the caller did not (the
    /// engine fits, counts and logs before it sends).
    fn send(&mut self, records: &[DeadLetter]) -> Result<()> {
        let limit = self.record_limit();
        let messages: Vec<OutMessage> = records
            .iter()
            .map(|record| {
                if Self::encoded_len(record) <= limit {
                    return KafkaDeadLetterSink::message(record);
                }
                let mut cut = record.clone();
                Self::fit_to(&mut cut, limit);
                KafkaDeadLetterSink::message(&cut)
            })
            .collect();
        self.producer.send_all(&messages)
    }

    fn watch_shutdown(&mut self, clock: &ShutdownClock) {
        self.producer.watch_shutdown(clock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;

    #[test]
    fn dead_letter_headers_name_topic_partition_and_reason() {
        let message = KafkaDeadLetterSink::message(&DeadLetter {
            partition: "kafka:ct/in/2".into(),
            offset: 41,
            sequence_number: None,
            class: ErrorClass::User,
            reason: "invalid_json",
            detail: "expected value".into(),
            bytes: b"{oops".to_vec(),
            original_len: None,
        });
        let get = |k: &str| {
            message
                .headers
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("tw_topic"), Some("ct/in"));
        assert_eq!(get("tw_partition"), Some("2"));
        assert_eq!(get("tw_offset"), Some("41"));
        assert_eq!(get("tw_error_class"), Some("user"));
        assert_eq!(get("tw_reason"), Some("invalid_json"));
        assert_eq!(get("tw_sequence_number"), None);
        assert_eq!(message.value, b"{oops");
    }

    /// A Kinesis record's offset is a per-process ordinal: its dead letter
    /// names the shard and the sequence number to read it again at.
    #[test]
    fn a_kinesis_records_dead_letter_names_its_sequence_number() {
        let message = KafkaDeadLetterSink::message(&DeadLetter {
            partition: "kinesis:trail/shardId-000000000001".into(),
            offset: 3,
            sequence_number: Some(
                "49680552936004758450556355132699260484853495439107817490".into(),
            ),
            class: ErrorClass::User,
            reason: "invalid_json",
            detail: "expected value".into(),
            bytes: b"{oops".to_vec(),
            original_len: None,
        });
        let get = |k: &str| header(&message, k);
        assert_eq!(get("tw_source"), Some("kinesis:trail/shardId-000000000001"));
        assert_eq!(
            get("tw_sequence_number"),
            Some("49680552936004758450556355132699260484853495439107817490")
        );
        assert_eq!(get("tw_topic"), None);
    }

    /// A dead letter of `len` bytes of `x` (not JSON: undecodable).
    fn big_dead_letter(len: usize) -> DeadLetter {
        DeadLetter {
            partition: "kafka:ct/in/2".into(),
            offset: 7,
            sequence_number: None,
            class: ErrorClass::User,
            reason: "too_large",
            detail: "d".repeat(5000),
            bytes: vec![b'x'; len],
            original_len: None,
        }
    }

    fn header<'m>(message: &'m OutMessage, name: &str) -> Option<&'m str> {
        message
            .headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn an_oversized_dead_letter_is_cut_to_the_limit_keeping_its_position() {
        let limit = DEFAULT_MESSAGE_MAX_BYTES - FRAMING_RESERVE;
        let mut small = big_dead_letter(100);
        assert!(!KafkaDeadLetterSink::fit_to(&mut small, limit));
        assert!(header(&KafkaDeadLetterSink::message(&small), "tw_truncated").is_none());

        let mut record = big_dead_letter(1_100_000);
        assert!(KafkaDeadLetterSink::fit_to(&mut record, limit));
        let message = KafkaDeadLetterSink::message(&record);
        let size = message.key.len() + message.value.len() + headers_bytes(&message.headers);
        assert!(size <= limit, "{size} > {limit}");
        assert!(size > limit - 64, "the cut keeps as much as fits: {size}");
        assert!(message.value.iter().all(|b| *b == b'x'));
        assert_eq!(header(&message, "tw_truncated"), Some("true"));
        assert_eq!(header(&message, "tw_original_bytes"), Some("1100000"));
        assert_eq!(header(&message, "tw_offset"), Some("7"));
        assert_eq!(header(&message, "tw_partition"), Some("2"));
        assert_eq!(header(&message, "tw_reason"), Some("too_large"));
        assert_eq!(
            header(&message, "tw_detail").map(str::len),
            Some(crate::sink::MAX_TRUNCATED_DETAIL_BYTES)
        );
        // Fitting again changes nothing and keeps the original length.
        assert!(!KafkaDeadLetterSink::fit_to(&mut record, limit));
        assert!(KafkaDeadLetterSink::fit_to(&mut record, 10_000));
        assert_eq!(record.original_len, Some(1_100_000));
    }

    /// Every message of partition 0 of `topic`, with its headers.
    fn read_back(
        brokers: &str,
        topic: &str,
        count: usize,
    ) -> Vec<(Vec<u8>, BTreeMap<String, String>)> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::{Headers, Message};
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "trailwatch-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut list = rdkafka::TopicPartitionList::new();
        list.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
            .unwrap();
        consumer.assign(&list).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut out = Vec::new();
        while out.len() < count {
            assert!(Instant::now() < deadline, "read {} of {count}", out.len());
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.unwrap();
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let value = h.value.unwrap_or_default();
                                (h.key.to_string(), String::from_utf8_lossy(value).into())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((message.payload().unwrap_or_default().to_vec(), headers));
            }
        }
        out
    }

    #[test]
    fn an_oversized_dead_letter_is_delivered_cut_and_marked() {
        let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
        cluster.create_topic("dead", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let mut sink =
            KafkaDeadLetterSink::new(&brokers, "dead", &KafkaProperties::default()).unwrap();
        let mut small = big_dead_letter(10);
        small.offset = 8;
        sink.send(&[big_dead_letter(1_100_000), small])
            .expect("an oversized dead letter is sent, cut");
        let messages = read_back(&brokers, "dead", 2);
        let (value, headers) = &messages[0];
        assert!(
            value.len() < 1_000_000 && value.len() > 990_000,
            "{}",
            value.len()
        );
        assert_eq!(
            headers.get("tw_truncated").map(String::as_str),
            Some("true")
        );
        assert_eq!(
            headers.get("tw_original_bytes").map(String::as_str),
            Some("1100000")
        );
        assert_eq!(headers.get("tw_offset").map(String::as_str), Some("7"));
        let (value, headers) = &messages[1];
        assert_eq!(value, &vec![b'x'; 10]);
        assert!(!headers.contains_key("tw_truncated"));
        assert_eq!(headers.get("tw_offset").map(String::as_str), Some("8"));
    }

    /// A repartition producer set below the size stage 1 keeps partials
    /// under: the error says which rule and key, and what to raise.
    #[test]
    fn a_refused_partial_names_its_rule_key_and_the_settings_to_raise() {
        let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
        cluster.create_topic("repart", 2, 1).unwrap();
        let properties = KafkaProperties(BTreeMap::from([(
            "message.max.bytes".to_string(),
            "100000".to_string(),
        )]));
        let mut sink =
            KafkaPartialSink::new(&cluster.bootstrap_servers(), "repart", &properties).unwrap();
        let partial = |key: &str, len: usize| PartialRecord {
            key: key.as_bytes().to_vec(),
            value: vec![b'x'; len],
        };
        let error = sink
            .send(
                &[
                    partial("console-burst|111122223333", 10),
                    partial("vpc-port-scan|203.0.113.50", 200_000),
                ],
                None,
            )
            .unwrap_err();
        assert!(matches!(error, Error::TooLarge(_)), "{error}");
        let text = error.to_string();
        for named in [
            "rule \"vpc-port-scan\", group key \"203.0.113.50\"",
            "message.max.bytes in scaleout.properties",
            "max.message.bytes",
        ] {
            assert!(text.contains(named), "{named:?} not in {text}");
        }
    }

    #[test]
    fn a_message_refused_as_too_large_is_not_retryable() {
        let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
        cluster.create_topic("alerts", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let mut producer =
            TopicProducer::new(&brokers, "alerts", &KafkaProperties::default()).unwrap();
        let message = |len: usize| OutMessage {
            partition: None,
            key: b"k".to_vec(),
            value: vec![b'x'; len],
            headers: Vec::new(),
        };
        // librdkafka refuses it at produce time ...
        let error = producer.send_all(&[message(1_100_000)]).unwrap_err();
        assert!(matches!(error, Error::TooLarge(_)), "{error}");
        assert!(!error.class().is_retryable());
        // ... or the broker does (a topic limit below message.max.bytes).
        cluster.request_errors(
            rdkafka::types::RDKafkaApiKey::Produce,
            &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; 20],
        );
        let error = producer.send_all(&[message(10)]).unwrap_err();
        assert!(matches!(error, Error::TooLarge(_)), "{error}");
        assert!(!error.class().is_retryable());
    }

    #[test]
    fn a_send_waiting_on_a_down_broker_gives_up_at_the_shutdown_deadline() {
        // Nothing listens there: delivery reports never come, and without
        // the clock this send would wait for them 305 s.
        let properties = KafkaProperties(BTreeMap::from([(
            "message.timeout.ms".to_string(),
            "300000".to_string(),
        )]));
        let mut producer = TopicProducer::new("127.0.0.1:9", "alerts", &properties).unwrap();
        let clock = ShutdownClock::default();
        producer.watch_shutdown(&clock);
        clock.start(Duration::from_millis(200));
        let message = OutMessage {
            partition: None,
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            headers: Vec::new(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(producer.send_all(&[message]).map_err(|e| e.to_string()));
        });
        // A guard against the 305 s wait, not a timing: it must be far
        // shorter than that, and far longer than the deadline.
        let result = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the send gave up at the shutdown deadline");
        let error = result.unwrap_err();
        assert!(error.contains("shutdown deadline passed"), "{error}");
    }

    /// A failed console sign-in from `ip` at second `second` of 2024-03-01T12:00.
    fn failed_sign_in(ip: &str, second: u32) -> Vec<u8> {
        format!(
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","accountId":"111122223333"}},"eventTime":"2024-03-01T12:00:{second:02}Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","errorMessage":"Failed authentication","awsRegion":"us-east-1","sourceIPAddress":"{ip}","recipientAccountId":"111122223333","eventID":"{ip}-{second}"}}"#
        )
        .into_bytes()
    }

    #[test]
    fn the_engine_runs_past_an_oversized_dead_letter() {
        use crate::engine::{Engine, EngineConfig};
        use crate::rules::{parse_rule_text, RuleSet};
        use crate::sink::writer::MemorySink;
        use crate::source::memory::MemorySource;
        use std::sync::atomic::Ordering;
        use std::sync::Arc;

        let rule = parse_rule_text(
            "test",
            r#"id: console-burst
title: Console sign-in failure burst
description: Five failed console sign-ins from one IP.
severity: high
kind: cloudtrail
filter: '{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }'
group_by: [sourceIPAddress]
window: 5m
threshold: ">= 5"
"#,
        )
        .unwrap();
        let rules = Arc::new(RuleSet::compile(&[rule]).unwrap());
        let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
        cluster.create_topic("dead", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let dead = KafkaDeadLetterSink::new(&brokers, "dead", &KafkaProperties::default()).unwrap();

        let mut records: Vec<Vec<u8>> = (0..5).map(|i| failed_sign_in("203.0.113.1", i)).collect();
        let mut oversized = b"{\"eventVersion\":".to_vec();
        oversized.resize(1_100_000, b'x');
        records.push(oversized); // offset 5
        records.push(b"{oops".to_vec()); // offset 6
        records.extend((10..15).map(|i| failed_sign_in("203.0.113.2", i)));

        let mut config = EngineConfig::default();
        config.watermark.replay = true;
        config.shards = 1;
        config.decoders = 1;
        config.shutdown_deadline = Duration::from_secs(2);
        let engine = Arc::new(Engine::new(config, rules));
        let alerts = MemorySink::default();
        let delivered = Arc::clone(&alerts.alerts);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let runner = Arc::clone(&engine);
        let handle = std::thread::spawn(move || {
            let result = runner.run(
                vec![Box::new(MemorySource::new("mem", records, 4))],
                Box::new(alerts),
                Box::new(dead),
            );
            let _ = done_tx.send(());
            result
        });
        let finished = done_rx.recv_timeout(Duration::from_secs(30)).is_ok();
        if !finished {
            engine.stop_handle().store(true, Ordering::Relaxed);
        }
        let result = handle.join().unwrap();
        assert!(
            finished,
            "the pipeline stalled on the dead letter: {result:?}"
        );
        result.expect("the run ends cleanly");

        let metrics = engine.metrics();
        assert_eq!(metrics.dead_letters_truncated.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.dead_letter.sent.load(Ordering::Relaxed), 2);
        let alerts = delivered.lock().unwrap();
        let ips: std::collections::BTreeSet<String> =
            alerts.iter().map(|a| a.routing_key()).collect();
        assert_eq!(ips.len(), 2, "both bursts alerted: {ips:?}");
        let messages = read_back(&brokers, "dead", 2);
        let offset = |m: &(Vec<u8>, BTreeMap<String, String>)| m.1.get("tw_offset").cloned();
        let cut = messages
            .iter()
            .find(|m| offset(m).as_deref() == Some("5"))
            .expect("the oversized record's dead letter");
        assert_eq!(
            cut.1.get("tw_original_bytes").map(String::as_str),
            Some("1100000")
        );
        assert!(cut.0.starts_with(b"{\"eventVersion\":"));
        let whole = messages
            .iter()
            .find(|m| offset(m).as_deref() == Some("6"))
            .expect("the small record's dead letter");
        assert_eq!(whole.0, b"{oops");
        assert!(!whole.1.contains_key("tw_truncated"));
    }

    #[test]
    fn idempotence_cannot_be_disabled() {
        let properties = BTreeMap::from([("enable.idempotence".to_string(), "false".to_string())]);
        assert!(producer_config("127.0.0.1:1", &properties).is_err());
    }

    #[test]
    fn rfc3339_has_millisecond_precision() {
        assert_eq!(rfc3339_ms(1_709_294_401_500), "2024-03-01T12:00:01.500Z");
    }
}
