//! The service configuration file (`trailwatch run --config FILE`).
//!
//! YAML, every key optional except `sources`. Unknown keys are errors, so
//! a misspelt setting fails loudly at start-up (and in `--check`) instead
//! of silently falling back to a default. Sources and sinks are closed
//! enums tagged by `type`; adding a backend means adding a variant and a
//! `match` arm where they are built (see `crate::cli::run`). A source's
//! own checks (`SourceConfig::validate`) run while it is read, so their
//! errors name the file, the source (`sources[1]`) and its line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use crate::decode::flow::FlowFormat;
use crate::decode::DecoderKind;
use crate::engine::watermark::WatermarkConfig;
use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::rules::duration::HumanDuration;
use crate::source::SourceDecoding;

mod tagged;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub rules: RulesConfig,
    #[serde(default)]
    pub engine: EngineSection,
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub sinks: SinksConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Two-stage scale-out over a Kafka repartition topic; absent: the
    /// direct single-stage path.
    #[serde(default)]
    pub scaleout: Option<ScaleoutConfig>,
}

/// Which stages a replica runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleoutRole {
    /// Stage 1 and stage 2 in every replica (the default).
    #[default]
    Both,
    /// Only stage 1 (a dedicated pre-aggregation pool).
    Stage1,
    /// Only stage 2 (a dedicated window pool).
    Stage2,
}

/// The `scaleout` section: the keyed repartition stage (README, "Scaling
/// out"). Stage 1 reads `sources`, pre-aggregates and writes partials to
/// `topic`; stage 2 reads `topic` as `group_id` and writes `sinks.alerts`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleoutConfig {
    #[serde(default)]
    pub role: ScaleoutRole,
    /// Brokers holding the repartition topic.
    #[serde(deserialize_with = "broker_list")]
    pub brokers: String,
    /// The repartition topic (create it first; its partition count caps
    /// the useful stage-2 replicas).
    pub topic: String,
    /// Stage 2's consumer group (must differ from the input's).
    pub group_id: String,
    /// How long stage 1 folds matches before sending them (default 200ms).
    #[serde(default)]
    pub flush_interval: Option<HumanDuration>,
    /// Longest gap between an idle producer's watermarks (default 1s).
    #[serde(default)]
    pub heartbeat: Option<HumanDuration>,
    /// Fold matches per key and bucket (default true; false sends one
    /// partial per match).
    #[serde(default = "yes")]
    pub preaggregate: bool,
    /// Producer send time a repartition partition must span before stage 2
    /// lets it advance the watermark (default 5 heartbeats).
    #[serde(default)]
    pub warm_up: Option<HumanDuration>,
    /// Producer send time after which an input partition nobody reports
    /// stops holding stage 2's watermark (default: 5 minutes, or
    /// `engine.idle_timeout` when longer). It must outlast a dead replica's
    /// session timeout plus a rebalance, or stage 2 drops its partitions'
    /// replayed partials as late; it only delays stage 2 when an input
    /// partition is gone for good.
    #[serde(default)]
    pub producer_idle_timeout: Option<HumanDuration>,
    /// librdkafka properties for the repartition producer and consumer.
    #[serde(default)]
    pub properties: KafkaProperties,
}

/// Default `scaleout.producer_idle_timeout` (see the field).
const DEFAULT_PRODUCER_IDLE_TIMEOUT_MS: i64 = 5 * 60_000;

impl ScaleoutConfig {
    /// Rejects settings that cannot work.
    pub fn validate(&self, sources: &[SourceConfig]) -> Result<()> {
        if self.topic.trim().is_empty() || self.group_id.trim().is_empty() {
            return Err(Error::Config(
                "scaleout: topic and group_id must be set".into(),
            ));
        }
        for source in sources {
            // Stage 2 recognises a stage-1 replay by input offsets, which
            // must mean the same in every process; a Kinesis source
            // numbers records per process.
            if matches!(source, SourceConfig::Kinesis { .. }) && self.role != ScaleoutRole::Stage2 {
                return Err(Error::Config(
                    "scaleout: a kinesis source cannot feed stage 1 (its record positions \
                     are per process, so a replay after a restart or a lease move would \
                     not be recognised); read Kinesis on the direct path, without a \
                     scaleout section"
                        .into(),
                ));
            }
            if let SourceConfig::Kafka(kafka) = source {
                if kafka.group_id == self.group_id {
                    return Err(Error::Config(
                        "scaleout.group_id must differ from the input's consumer group".into(),
                    ));
                }
                if kafka.topics.contains(&self.topic) {
                    return Err(Error::Config(
                        "scaleout.topic must not be one of the input topics".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The heartbeat in force.
    pub fn heartbeat(&self) -> std::time::Duration {
        self.heartbeat
            .map_or(std::time::Duration::from_secs(1), |d| d.0)
    }

    /// The flush interval in force.
    pub fn flush_interval(&self) -> std::time::Duration {
        self.flush_interval
            .map_or(std::time::Duration::from_millis(200), |d| d.0)
    }

    /// The producer idle timeout in force, milliseconds, given
    /// `engine.idle_timeout` (see the field).
    pub fn producer_idle_timeout_ms(&self, engine_idle_timeout_ms: i64) -> i64 {
        self.producer_idle_timeout.map_or(
            engine_idle_timeout_ms.max(DEFAULT_PRODUCER_IDLE_TIMEOUT_MS),
            |d| d.as_millis_i64(),
        )
    }

    /// The warm-up in force, milliseconds.
    pub fn warm_up_ms(&self) -> i64 {
        self.warm_up.map_or(
            5 * i64::try_from(self.heartbeat().as_millis()).unwrap_or(i64::MAX / 8),
            |d| d.as_millis_i64(),
        )
    }
}

/// Where rules come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Load the built-in pack first.
    #[serde(default = "yes")]
    pub builtin: bool,
    /// Extra rule directories; same id overrides, `enabled: false` disables.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            builtin: true,
            dirs: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// Engine tuning; every field has a safe default. A value that would make
/// the service unsafe rather than tuned is refused where it is written:
/// a zero that turns a cap into "refuse everything" (every record
/// dead-lettered, every window shed), no worker at all, or no time to
/// commit, drain or wait for a quiet partition.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    #[serde(default, deserialize_with = "count_in::<_, 1, MAX_WORKERS>")]
    pub shards: Option<usize>,
    #[serde(default, deserialize_with = "count_in::<_, 1, MAX_WORKERS>")]
    pub decoders: Option<usize>,
    #[serde(default, deserialize_with = "count_in::<_, 1, MAX_CHANNEL_BATCHES>")]
    pub channel_batches: Option<usize>,
    pub allowed_lateness: Option<HumanDuration>,
    #[serde(default, deserialize_with = "more_than_zero")]
    pub idle_timeout: Option<HumanDuration>,
    pub max_skew: Option<HumanDuration>,
    #[serde(default, deserialize_with = "at_least::<_, 1>")]
    pub max_open_windows: Option<usize>,
    /// Cap on window state bytes (see `EngineConfig::max_state_bytes`).
    #[serde(default, deserialize_with = "at_least::<_, { 1 << 20 }>")]
    pub max_state_bytes: Option<usize>,
    pub max_samples: Option<usize>,
    pub max_sample_bytes: Option<usize>,
    #[serde(default, deserialize_with = "at_least::<_, { 1 << 10 }>")]
    pub max_record_bytes: Option<usize>,
    #[serde(default, deserialize_with = "at_least::<_, { 1 << 10 }>")]
    pub max_decompressed_bytes: Option<usize>,
    #[serde(default, deserialize_with = "more_than_zero")]
    pub commit_interval: Option<HumanDuration>,
    #[serde(default, deserialize_with = "more_than_zero")]
    pub shutdown_deadline: Option<HumanDuration>,
}

/// Most shard or decode workers. Each is a thread, a scale-out replica
/// running both stages has two engines, and the tracing registry
/// (sharded-slab) panics past 4096 threads in one process: 2 x (512 + 512)
/// leaves room for the sources', sinks' and clients' threads.
const MAX_WORKERS: usize = 512;

/// Most batches per channel. Every channel (one per shard and per decoder,
/// and three more) allocates its slots up front, about 136 bytes each, so
/// a larger value is memory gone at start-up (or an abort); 4096 is 64
/// times the default and 0.5 MiB per channel.
const MAX_CHANNEL_BATCHES: usize = 4096;

/// An optional count of at least `LEAST`, refused where it is written.
fn at_least<'de, D: Deserializer<'de>, const LEAST: usize>(
    deserializer: D,
) -> Result<Option<usize>, D::Error> {
    count_in::<D, LEAST, { usize::MAX }>(deserializer)
}

/// An optional count from `LEAST` to `MOST`, refused where it is written.
fn count_in<'de, D: Deserializer<'de>, const LEAST: usize, const MOST: usize>(
    deserializer: D,
) -> Result<Option<usize>, D::Error> {
    struct InRange<const LEAST: usize, const MOST: usize>;
    impl<'de, const LEAST: usize, const MOST: usize> serde::de::Visitor<'de> for InRange<LEAST, MOST> {
        type Value = Option<usize>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if MOST == usize::MAX {
                write!(f, "a count of at least {LEAST}")
            } else {
                write!(f, "a count from {LEAST} to {MOST}")
            }
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Option<usize>, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<usize>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Option<usize>, D::Error> {
            deserializer.deserialize_u64(self)
        }
        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Option<usize>, E> {
            match usize::try_from(value) {
                Ok(value) if (LEAST..=MOST).contains(&value) => Ok(Some(value)),
                _ if value < LEAST as u64 => {
                    Err(E::custom(format!("must be at least {LEAST} (got {value})")))
                }
                _ => Err(E::custom(format!("must be at most {MOST} (got {value})"))),
            }
        }
    }
    deserializer.deserialize_option(InRange::<LEAST, MOST>)
}

/// An optional duration of more than zero, refused where it is written.
fn more_than_zero<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<HumanDuration>, D::Error> {
    struct MoreThanZero;
    impl<'de> serde::de::Visitor<'de> for MoreThanZero {
        type Value = Option<HumanDuration>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration of more than 0, such as 30s, 5m or 1h")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_str(self)
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            match HumanDuration::parse(text).map_err(E::custom)? {
                duration if duration.0.is_zero() => Err(E::custom("must be more than 0")),
                duration => Ok(Some(duration)),
            }
        }
        fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<Self::Value, E> {
            self.visit_str(&number.to_string())
        }
    }
    deserializer.deserialize_option(MoreThanZero)
}

impl EngineSection {
    /// The engine configuration for service (`replay = false`) or replay mode.
    pub fn to_engine_config(&self, replay: bool) -> EngineConfig {
        let defaults = EngineConfig::default();
        let wm_defaults = WatermarkConfig::default();
        let mut decode = defaults.decode.clone();
        if let Some(n) = self.max_record_bytes {
            decode.max_record_bytes = n;
        }
        if let Some(n) = self.max_decompressed_bytes {
            decode.max_decompressed_bytes = n;
        }
        EngineConfig {
            shards: self.shards.unwrap_or(defaults.shards),
            decoders: self.decoders.unwrap_or(defaults.decoders),
            channel_batches: self.channel_batches.unwrap_or(defaults.channel_batches),
            watermark: WatermarkConfig {
                allowed_lateness_ms: self
                    .allowed_lateness
                    .map_or(wm_defaults.allowed_lateness_ms, |d| d.as_millis_i64()),
                idle_timeout_ms: self
                    .idle_timeout
                    .map_or(wm_defaults.idle_timeout_ms, |d| d.as_millis_i64()),
                max_skew_ms: self
                    .max_skew
                    .map_or(wm_defaults.max_skew_ms, |d| d.as_millis_i64()),
                replay,
            },
            max_open_windows: self.max_open_windows.unwrap_or(defaults.max_open_windows),
            max_state_bytes: self.max_state_bytes.unwrap_or(defaults.max_state_bytes),
            evidence: crate::engine::window::EvidenceLimits {
                max_samples: self.max_samples.unwrap_or(defaults.evidence.max_samples),
                max_sample_bytes: self
                    .max_sample_bytes
                    .unwrap_or(defaults.evidence.max_sample_bytes),
            },
            decode,
            flush_on_end: true,
            commit_interval: self
                .commit_interval
                .map_or(defaults.commit_interval, |d| d.0),
            shutdown_deadline: self
                .shutdown_deadline
                .map_or(defaults.shutdown_deadline, |d| d.0),
            stage: crate::engine::Stage::Direct,
        }
    }
}

/// One input, tagged by `type` (read by [`tagged`], so that an error
/// inside a source keeps its line and key path).
#[derive(Debug, Clone, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// Files or directories (`-` for stdin).
    File {
        #[serde(deserialize_with = "file_paths")]
        paths: Vec<String>,
        #[serde(default)]
        follow: bool,
        /// Force a decoder instead of detecting the envelope per record.
        #[serde(default)]
        decoder: Option<DecoderKind>,
        /// Custom VPC flow log format (`${version} ${srcaddr} ...`).
        #[serde(default)]
        flow_format: Option<String>,
        /// This source's allowed lateness, when not the engine's (flow
        /// logs arrive later than CloudTrail).
        #[serde(default)]
        allowed_lateness: Option<HumanDuration>,
    },
    /// A Kafka consumer group (see `crate::source::kafka`).
    Kafka(KafkaSourceConfig),
    /// A Kinesis data stream, shards shared across replicas by DynamoDB leases.
    Kinesis {
        stream: String,
        #[serde(default)]
        region: Option<String>,
        #[serde(default)]
        endpoint_url: Option<String>,
        /// DynamoDB endpoint override (defaults to `endpoint_url`).
        #[serde(default)]
        dynamodb_endpoint_url: Option<String>,
        /// Default `trailwatch-<stream>`.
        #[serde(default)]
        lease_table: Option<String>,
        /// Default `POD_NAME`, else `HOSTNAME`.
        #[serde(default)]
        worker_id: Option<String>,
        /// Default 10s.
        #[serde(default)]
        lease_duration: Option<HumanDuration>,
        /// GetRecords limit, default 10000.
        #[serde(default)]
        max_records: Option<i32>,
        /// Delay between GetRecords on a caught-up shard, default 1s.
        #[serde(default)]
        poll_interval: Option<HumanDuration>,
        /// ListShards refresh period, default 60s.
        #[serde(default)]
        shard_sync_interval: Option<HumanDuration>,
        /// Read through enhanced fan-out (SubscribeToShard) instead of
        /// GetRecords polling; absent means polling.
        #[serde(default)]
        enhanced_fan_out: Option<EnhancedFanOutConfig>,
        /// Force a decoder instead of detecting the envelope per record.
        #[serde(default)]
        decoder: Option<DecoderKind>,
        /// Custom VPC flow log format (`${version} ${srcaddr} ...`).
        #[serde(default)]
        flow_format: Option<String>,
        /// This source's allowed lateness, when not the engine's (flow
        /// logs arrive later than CloudTrail).
        #[serde(default)]
        allowed_lateness: Option<HumanDuration>,
    },
}

impl SourceConfig {
    /// The source's own allowed lateness, if it sets one.
    pub fn allowed_lateness(&self) -> Option<HumanDuration> {
        match self {
            SourceConfig::File {
                allowed_lateness, ..
            }
            | SourceConfig::Kinesis {
                allowed_lateness, ..
            } => *allowed_lateness,
            SourceConfig::Kafka(kafka) => kafka.allowed_lateness,
        }
    }

    /// Checks what serde cannot: the decoding settings, a Kafka source's
    /// topics and group, a Kinesis consumer name. Run while the source is
    /// read (see [`tagged::Tagged::check`]), so an error carries the
    /// source's line and index.
    pub fn validate(&self) -> Result<()> {
        let (decoder, flow_format) = match self {
            SourceConfig::File {
                decoder,
                flow_format,
                ..
            }
            | SourceConfig::Kinesis {
                decoder,
                flow_format,
                ..
            } => (*decoder, flow_format.as_deref()),
            SourceConfig::Kafka(kafka) => (kafka.decoder, kafka.flow_format.as_deref()),
        };
        source_decoding(decoder, flow_format)?;
        match self {
            SourceConfig::Kafka(kafka) => kafka.validate(),
            SourceConfig::Kinesis {
                stream,
                max_records,
                lease_duration,
                enhanced_fan_out,
                ..
            } => {
                check_kinesis_source(
                    stream,
                    max_records.unwrap_or(10_000),
                    lease_duration.map_or(std::time::Duration::from_secs(10), |d| d.0),
                )?;
                enhanced_fan_out
                    .as_ref()
                    .map_or(Ok(()), EnhancedFanOutConfig::validate)
            }
            SourceConfig::File { .. } => Ok(()),
        }
    }
}

/// The limits of a Kinesis source's settings (the source checks them too).
pub fn check_kinesis_source(
    stream: &str,
    max_records: i32,
    lease_duration: std::time::Duration,
) -> Result<()> {
    if stream.is_empty() {
        return Err(Error::Config("kinesis source: stream is empty".into()));
    }
    if !(1..=10_000).contains(&max_records) {
        return Err(Error::Config(
            "kinesis source: max_records must be 1 to 10000".into(),
        ));
    }
    if lease_duration < std::time::Duration::from_millis(300) {
        return Err(Error::Config(
            "kinesis source: lease_duration must be at least 300ms".into(),
        ));
    }
    Ok(())
}

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        tagged::deserialize(deserializer)
    }
}

impl tagged::Tagged for SourceConfig {
    const WHAT: &'static str = "a source";
    const TYPES: &'static [&'static str] = &["file", "kafka", "kinesis"];

    fn derived<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SourceConfig::deserialize(deserializer)
    }

    fn check(&self) -> std::result::Result<(), String> {
        self.validate().map_err(message)
    }
}

/// Enhanced fan-out of a Kinesis source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnhancedFanOutConfig {
    /// Stream consumer name, shared by every replica; registered on start
    /// unless it exists (1 to 128 of `[a-zA-Z0-9_.-]`).
    pub consumer_name: String,
}

impl EnhancedFanOutConfig {
    /// Checks the consumer name against the AWS pattern (1 to 128 of
    /// `[a-zA-Z0-9_.-]`).
    pub fn validate(&self) -> Result<()> {
        let name = &self.consumer_name;
        let valid = (1..=128).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if valid {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "kinesis source: enhanced_fan_out.consumer_name {name:?} must be 1 to 128 of [a-zA-Z0-9_.-]"
            )))
        }
    }
}

/// A Kafka consumer-group input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// `bootstrap.servers`, e.g. `10.0.0.1:9092,10.0.0.2:9092`.
    #[serde(deserialize_with = "broker_list")]
    pub brokers: String,
    /// Topics to subscribe to (exclusive with `topic_pattern`).
    #[serde(default)]
    pub topics: Vec<String>,
    /// A regex of topics to subscribe to (exclusive with `topics`); a
    /// leading `^` is added when missing (librdkafka's regex marker).
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// Consumer group id.
    pub group_id: String,
    /// Forced decoder; absent means auto-detection per record.
    #[serde(default)]
    pub decoder: Option<DecoderKind>,
    /// Custom VPC flow log format (`${version} ${srcaddr} ...`).
    #[serde(default)]
    pub flow_format: Option<String>,
    /// librdkafka properties, applied after trailwatch's defaults.
    #[serde(default)]
    pub properties: KafkaProperties,
    /// Static membership: `group.instance.id` from `POD_NAME` (or `HOSTNAME`).
    #[serde(default)]
    pub static_membership: bool,
    /// Most records handed to the engine per poll.
    #[serde(default = "default_poll_batch")]
    pub poll_batch: usize,
    /// This source's allowed lateness, when not the engine's.
    #[serde(default)]
    pub allowed_lateness: Option<HumanDuration>,
}

fn default_poll_batch() -> usize {
    2048
}

/// librdkafka properties (`key: value`), passed through as-is.
///
/// A value may name a secret instead of holding it: `${env:NAME}` reads an
/// environment variable and `${file:PATH}` a file's content (trimmed), so
/// that credentials live in a Kubernetes secret, not the config file.
/// `Debug` redacts the values of secret-looking keys (passwords, keys,
/// tokens), so the config dump and logs never show a credential.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct KafkaProperties(pub BTreeMap<String, String>);

/// Key fragments whose values are secrets, never printed or logged: one
/// list for `Debug` of properties and for `run --check`'s printout.
/// `key.pem` is librdkafka's `ssl.key.pem` (a private key in PEM).
const SECRET_KEY_PARTS: [&str; 8] = [
    "password",
    "secret",
    "token",
    "credential",
    "sasl",
    "private",
    "key.pem",
    "jaas",
];

/// Whether a configuration key (any depth, any section) holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|part| key.contains(part))
}

impl KafkaProperties {
    /// Whether `key` holds a secret and must never be logged.
    pub fn is_secret(key: &str) -> bool {
        is_secret_key(key)
    }

    /// The properties with `${env:..}` / `${file:..}` references resolved.
    pub fn resolve(&self) -> Result<BTreeMap<String, String>> {
        self.0
            .iter()
            .map(|(key, value)| resolve_value(key, value).map(|v| (key.clone(), v)))
            .collect()
    }
}

fn resolve_value(key: &str, value: &str) -> Result<String> {
    let Some(reference) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) else {
        return Ok(value.to_string());
    };
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| {
            Error::Config(format!(
                "kafka property {key}: environment variable {name} is not set"
            ))
        });
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|text| text.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| Error::Config(format!("kafka property {key}: cannot read {path}: {e}")));
    }
    Ok(value.to_string())
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in &self.0 {
            if KafkaProperties::is_secret(key) {
                map.entry(key, &"<redacted>");
            } else {
                map.entry(key, value);
            }
        }
        map.finish()
    }
}

impl KafkaSourceConfig {
    /// Checks the settings that serde cannot.
    pub fn validate(&self) -> Result<()> {
        match (&self.topic_pattern, self.topics.is_empty()) {
            (Some(_), false) => {
                return Err(Error::Config(
                    "kafka source: set either topics or topic_pattern, not both".into(),
                ))
            }
            (None, true) => {
                return Err(Error::Config(
                    "kafka source: one of topics or topic_pattern is required".into(),
                ))
            }
            (Some(pattern), true) => {
                regex::Regex::new(pattern).map_err(|e| {
                    Error::Config(format!("kafka source: invalid topic_pattern: {e}"))
                })?;
            }
            (None, false) => {}
        }
        if self.poll_batch == 0 {
            return Err(Error::Config("kafka source: poll_batch must be > 0".into()));
        }
        if self.group_id.is_empty() {
            return Err(Error::Config("kafka source: group_id is empty".into()));
        }
        Ok(())
    }
}

/// Outputs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    #[serde(default = "stdout_sink")]
    pub alerts: SinkConfig,
    #[serde(default = "stderr_sink")]
    pub dead_letter: SinkConfig,
}

impl Default for SinksConfig {
    fn default() -> Self {
        SinksConfig {
            alerts: stdout_sink(),
            dead_letter: stderr_sink(),
        }
    }
}

fn stdout_sink() -> SinkConfig {
    SinkConfig::Stdout
}

fn stderr_sink() -> SinkConfig {
    SinkConfig::Stderr
}

/// One output, tagged by `type` (see [`SourceConfig`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    Stdout,
    Stderr,
    File {
        path: PathBuf,
    },
    /// A Kafka topic (see `crate::sink::kafka`).
    Kafka {
        /// `bootstrap.servers`.
        #[serde(deserialize_with = "broker_list")]
        brokers: String,
        topic: String,
        /// librdkafka properties, applied after trailwatch's defaults.
        #[serde(default)]
        properties: KafkaProperties,
    },
    /// A Kinesis stream (alerts only).
    Kinesis {
        stream: String,
        #[serde(default)]
        region: Option<String>,
        #[serde(default)]
        endpoint_url: Option<String>,
    },
}

impl<'de> Deserialize<'de> for SinkConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        tagged::deserialize(deserializer)
    }
}

impl tagged::Tagged for SinkConfig {
    const WHAT: &'static str = "a sink";
    const TYPES: &'static [&'static str] = &["stdout", "stderr", "file", "kafka", "kinesis"];

    fn derived<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SinkConfig::deserialize(deserializer)
    }

    fn check(&self) -> std::result::Result<(), String> {
        match self {
            SinkConfig::Kinesis { stream, .. } if stream.is_empty() => {
                Err("kinesis sink: stream is empty".into())
            }
            _ => Ok(()),
        }
    }
}

/// The metrics and health listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Bind address, `HOST:PORT`; empty disables the listener. Parsed as it
    /// is read ([`check_listen`]); bound only by `run`.
    #[serde(default = "default_listen", deserialize_with = "listen_address")]
    pub listen: String,
}

/// Checks a listener address the way the listener reads it, without
/// binding it: empty (disabled), an IP socket address (`127.0.0.1:9464`,
/// `[::]:9464`), or a host name and a port (`localhost:9464`, resolved
/// when bound).
pub fn check_listen(listen: &str) -> std::result::Result<(), String> {
    let listen = listen.trim();
    if listen.is_empty() || listen.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let host_and_port = listen.rsplit_once(':').filter(|(host, port)| {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            && port.parse::<u16>().is_ok()
    });
    match host_and_port {
        Some(_) => Ok(()),
        None => Err(format!(
            "{listen:?} is not an address to listen on: write HOST:PORT \
             (127.0.0.1:9464, [::]:9464), or \"\" to disable the listener"
        )),
    }
}

/// Reads `metrics.listen`, refusing it where it is written.
fn listen_address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_str(CheckedString {
        check: check_listen,
        expecting: "an address such as 127.0.0.1:9464",
    })
}

/// Checks a Kafka broker list (`bootstrap.servers`): at least one
/// `HOST:PORT`. With none, librdkafka waits for ever without a word, and
/// the service is never ready.
pub fn check_brokers(brokers: &str) -> std::result::Result<(), String> {
    if brokers.split(',').all(|broker| broker.trim().is_empty()) {
        return Err("no broker: write HOST:PORT, or several separated by commas".into());
    }
    Ok(())
}

/// Reads a Kafka `brokers` list, refusing it where it is written.
fn broker_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_str(CheckedString {
        check: check_brokers,
        expecting: "brokers such as kafka-0:9092,kafka-1:9092",
    })
}

/// Reads a file source's `paths`, refusing an empty list where it is
/// written: with no input, `run` would stop at once with exit 0 (or, with
/// `follow`, wait on nothing), and a Deployment would restart it without
/// saying why.
fn file_paths<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct Paths;
    impl<'de> serde::de::Visitor<'de> for Paths {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of files or directories, or \"-\" for stdin")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut paths = Vec::new();
            while let Some(path) = seq.next_element()? {
                paths.push(path);
            }
            if paths.is_empty() {
                // Refused inside the visitor, so the error is placed at the list.
                return Err(serde::de::Error::custom(
                    "no path: list at least one file or directory, or \"-\" for stdin",
                ));
            }
            Ok(paths)
        }
    }
    deserializer.deserialize_seq(Paths)
}

/// A string checked inside the visitor, so that a YAML deserializer
/// places the error at the value (its line, its key path).
struct CheckedString {
    check: fn(&str) -> std::result::Result<(), String>,
    expecting: &'static str,
}

impl serde::de::Visitor<'_> for CheckedString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<String, E> {
        (self.check)(text)
            .map(|()| text.to_string())
            .map_err(E::custom)
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_listen(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:9464".to_string()
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` env-filter directives (overridden by `RUST_LOG`), checked
    /// as they are read ([`check_log_level`]).
    #[serde(default = "default_level", deserialize_with = "log_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_level(),
            format: LogFormat::Human,
        }
    }
}

fn default_level() -> String {
    "info".to_string()
}

/// Checks `log.level` with tracing-subscriber's own directive parser,
/// directive by directive as its env-filter splits them. A bare word must
/// also be a level: env-filter reads any other (`verbose`) as a target
/// enabled at every level, which leaves every trailwatch message, warnings
/// included, filtered out. An empty level enables nothing either.
pub fn check_log_level(level: &str) -> std::result::Result<(), String> {
    if level
        .split(',')
        .all(|directive| directive.trim().is_empty())
    {
        return Err("no directive: write a level such as info, or off".into());
    }
    for directive in level.split(',').map(str::trim) {
        if directive.is_empty() {
            continue;
        }
        if let Err(e) = directive.parse::<tracing_subscriber::filter::Directive>() {
            return Err(format!("invalid directive {directive:?}: {e}"));
        }
        let bare = directive
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':'));
        if bare
            && directive
                .parse::<tracing_subscriber::filter::LevelFilter>()
                .is_err()
        {
            return Err(format!(
                "invalid directive {directive:?}: not a level (trace, debug, info, warn, \
                 error, off), and a target takes one as TARGET=LEVEL"
            ));
        }
    }
    Ok(())
}

/// Reads `log.level`, refusing it where it is written (see
/// [`check_log_level`]).
fn log_level<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_str(CheckedString {
        check: check_log_level,
        expecting: "env-filter directives such as info or trailwatch=debug,rdkafka=warn",
    })
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Builds a source's decoding settings from its config fields.
pub fn source_decoding(
    decoder: Option<DecoderKind>,
    flow_format: Option<&str>,
) -> Result<Option<SourceDecoding>> {
    let flow_format = match flow_format {
        Some(text) => Some(
            FlowFormat::parse(text)
                .map_err(|e| Error::Config(format!("invalid flow_format {text:?}: {e}")))?,
        ),
        None => None,
    };
    if decoder.is_none() && flow_format.is_none() {
        return Ok(None);
    }
    Ok(Some(SourceDecoding {
        forced: decoder.unwrap_or_default(),
        flow_format,
    }))
}

/// A YAML error's message without the ` at line L column C` of its
/// position, which callers put first, as `file:L:C:` (serde_yaml_ng
/// appends it, or for a syntax error puts it before the context: `did not
/// find expected ',' or '}' at line 4 column 1, while parsing a flow
/// mapping at line 3 column 9`; the context keeps its own), and without
/// any string value it quotes (see [`hide_refused_strings`]).
pub fn yaml_message(error: &serde_yaml_ng::Error) -> String {
    let text = error.to_string();
    let text = match error.location() {
        Some(at) => {
            let position = format!(" at line {} column {}", at.line(), at.column());
            without_first(&text, &position)
        }
        None => text,
    };
    hide_refused_strings(&text)
}

/// `text` without the first `position` (` at line L column C`) that is
/// not the start of a longer number (` ... column 12` for ` ... column 1`).
fn without_first(text: &str, position: &str) -> String {
    let found = text.match_indices(position).find(|(start, _)| {
        !text[start + position.len()..].starts_with(|c: char| c.is_ascii_digit())
    });
    match found {
        Some((start, _)) => format!("{}{}", &text[..start], &text[start + position.len()..]),
        None => text.to_string(),
    }
}

/// What replaces a refused string value in a message.
const VALUE_NOT_SHOWN: &str = "(value not shown)";

/// `text` with the string values that serde's type and value errors quote
/// (`invalid type: string "sasl.password=...", expected a map`) replaced
/// by [`VALUE_NOT_SHOWN`]. Any config value may be a secret (a Kafka
/// property list written as one string, a password under the wrong key),
/// and such an error goes to the log; its position already points at the
/// value. Numbers and other kinds are left as they are.
fn hide_refused_strings(text: &str) -> String {
    const MARKERS: [&str; 2] = ["invalid type: string \"", "invalid value: string \""];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((start, marker)) = MARKERS
        .iter()
        .filter_map(|marker| rest.find(marker).map(|start| (start, marker)))
        .min()
    {
        // Keep `invalid type: string `, drop the quoted value.
        let opening = start + marker.len() - 1;
        out.push_str(&rest[..opening]);
        out.push_str(VALUE_NOT_SHOWN);
        rest = after_quoted(&rest[opening + 1..]);
    }
    out.push_str(rest);
    out
}

/// The text after the closing quote of a `Debug`-escaped string whose
/// opening quote precedes `text` (all of it is the string if none closes).
fn after_quoted(text: &str) -> &str {
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => return &text[index + 1..],
            _ => {}
        }
    }
    ""
}

/// `error` with its message prefixed by `origin` (the file): a config
/// error keeps its one "config error:" prefix instead of gaining another.
fn in_file(origin: &str, error: Error) -> Error {
    match error {
        Error::Config(message) => Error::Config(format!("{origin}: {message}")),
        other => other,
    }
}

/// Bytes one evidence sample can take in an alert beyond 6 bytes for
/// each of its bytes: its `{"data":{"message":...}}` frame and event id.
const SAMPLE_FRAME_BYTES: usize = 512;
/// Bytes an alert can take besides its evidence: rule, key, times, ids.
const ALERT_REST_BYTES: usize = 64 * 1024;
/// Kinesis's record limit (data plus partition key).
const KINESIS_RECORD_BYTES: usize = 1024 * 1024;

/// Refuses evidence limits under which one alert could exceed a Kinesis
/// record (1 MiB): such an alert would end the run on every restart, as
/// its deterministic id replays into it again. A sample is cut at
/// `max_sample_bytes`, but a log line is written as a JSON string, where
/// a control character takes 6 bytes (`\u0001`).
fn check_kinesis_alert_size(engine: &EngineSection) -> Result<()> {
    let defaults = crate::engine::window::EvidenceLimits::default();
    let samples = engine.max_samples.unwrap_or(defaults.max_samples);
    let sample_bytes = engine.max_sample_bytes.unwrap_or(defaults.max_sample_bytes);
    let worst = sample_bytes
        .saturating_mul(6)
        .saturating_add(SAMPLE_FRAME_BYTES)
        .saturating_mul(samples)
        .saturating_add(ALERT_REST_BYTES);
    if worst > KINESIS_RECORD_BYTES {
        return Err(Error::Config(format!(
            "sinks.alerts: kinesis records hold at most {KINESIS_RECORD_BYTES} bytes, but engine.max_samples \
             ({samples}) x engine.max_sample_bytes ({sample_bytes}) allow an alert of up to {worst} bytes \
             (6 bytes per sample byte once escaped, {SAMPLE_FRAME_BYTES} per sample and {ALERT_REST_BYTES} \
             for the rest); lower engine.max_samples or engine.max_sample_bytes"
        )));
    }
    Ok(())
}

/// A config error's message without its "config error:" prefix (to be
/// placed in a longer one); any other error as it displays.
fn message(error: Error) -> String {
    match error {
        Error::Config(message) => message,
        other => other.to_string(),
    }
}

impl Config {
    /// Parses a config file's text; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Config> {
        let config: Config = serde_yaml_ng::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            Error::Config(format!("{origin}{at}: {}", yaml_message(&e)))
        })?;
        if config.sources.is_empty() {
            return Err(Error::Config(format!(
                "{origin}: at least one source is required"
            )));
        }
        if matches!(config.sinks.dead_letter, SinkConfig::Kinesis { .. }) {
            return Err(Error::Config(format!(
                "{origin}: sinks.dead_letter: kinesis is only supported for alerts"
            )));
        }
        if matches!(config.sinks.alerts, SinkConfig::Kinesis { .. }) {
            check_kinesis_alert_size(&config.engine).map_err(|e| in_file(origin, e))?;
        }
        if let Some(scaleout) = &config.scaleout {
            scaleout
                .validate(&config.sources)
                .map_err(|e| in_file(origin, e))?;
        }
        Ok(config)
    }

    /// Reads and parses `path`. A config file that cannot be read
    /// (missing, a directory, not readable) is a configuration error
    /// (exit 2) like one that cannot be parsed, not an input error: the
    /// fix is in the command line or the mount.
    pub fn load(path: &std::path::Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "{}: cannot read the config file: {e}",
                path.display()
            ))
        })?;
        Config::parse(&path.display().to_string(), &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_safe_defaults() {
        let config =
            Config::parse("t", "sources:\n  - type: file\n    paths: [samples]\n").unwrap();
        assert!(config.rules.builtin);
        assert_eq!(config.metrics.listen, "127.0.0.1:9464");
        let engine = config.engine.to_engine_config(false);
        assert_eq!(engine.watermark.allowed_lateness_ms, 15 * 60_000);
        assert!(engine.flush_on_end);
        assert!(!engine.watermark.replay);
    }

    #[test]
    fn engine_caps_of_zero_are_configuration_errors() {
        let base = "sources:\n  - type: file\n    paths: [samples]\nengine:\n";
        for (line, field) in [
            ("  max_record_bytes: 0", "max_record_bytes"),
            ("  max_open_windows: 0", "max_open_windows"),
            ("  max_state_bytes: 0", "max_state_bytes"),
            ("  shards: 0", "shards"),
            ("  decoders: 0", "decoders"),
            ("  channel_batches: 0", "channel_batches"),
            ("  max_decompressed_bytes: 1023", "max_decompressed_bytes"),
            ("  shutdown_deadline: 0s", "shutdown_deadline"),
            ("  idle_timeout: 0m", "idle_timeout"),
            ("  commit_interval: 0ms", "commit_interval"),
        ] {
            // A second, valid key first: the error is at the bad one's line.
            let text = format!("{base}  max_skew: 5m\n{line}\n");
            let error = Config::parse("t", &text).unwrap_err();
            assert!(matches!(error, Error::Config(_)), "{line}: {error}");
            assert!(
                error
                    .to_string()
                    .contains(&format!("t:6:{}: engine.{field}: must be", field.len() + 5)),
                "{line}: {error}"
            );
        }
        let ok = "  max_record_bytes: 65536\n  max_open_windows: 1000\n  allowed_lateness: 0s\n  shards: ~\n  idle_timeout: 2m\n";
        let config = Config::parse("t", &format!("{base}{ok}")).unwrap();
        assert_eq!(config.engine.shards, None);
        assert_eq!(config.engine.max_open_windows, Some(1000));
        assert_eq!(
            config.engine.idle_timeout,
            Some(HumanDuration(std::time::Duration::from_secs(120)))
        );
    }

    /// Past these the service panics (too many threads for the tracing
    /// registry) or aborts (channel slots allocated up front).
    #[test]
    fn worker_counts_and_channel_capacity_have_an_upper_bound() {
        let base = "sources:\n  - type: file\n    paths: [samples]\nengine:\n";
        for (line, expected) in [
            (
                "  shards: 5000",
                "t:5:11: engine.shards: must be at most 512 (got 5000)",
            ),
            (
                "  decoders: 100000",
                "t:5:13: engine.decoders: must be at most 512 (got 100000)",
            ),
            (
                "  channel_batches: 1000000000000",
                "t:5:20: engine.channel_batches: must be at most 4096 (got 1000000000000)",
            ),
        ] {
            let error = Config::parse("t", &format!("{base}{line}\n")).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("config error: {expected}"),
                "{line}"
            );
        }
        let most = "  shards: 512\n  decoders: 512\n  channel_batches: 4096\n";
        let config = Config::parse("t", &format!("{base}{most}")).unwrap();
        assert_eq!(config.engine.shards, Some(512));
        assert_eq!(config.engine.channel_batches, Some(4096));
    }

    #[test]
    fn a_validation_error_names_the_file_once_and_says_config_error_once() {
        let text = "sources:\n  - type: file\n    paths: [samples]\nengine:\n  shards: 0\n";
        let error = Config::parse("zero_shards.yaml", text).unwrap_err();
        assert_eq!(
            error.to_string(),
            "config error: zero_shards.yaml:5:11: engine.shards: must be at least 1 (got 0)"
        );
    }

    #[test]
    fn a_bad_duration_names_its_key_and_line() {
        let text = "engine:\n  shards: 2\n  allowed_lateness: 15\nsources:\n  - type: file\n    paths: [samples]\n";
        let error = Config::parse("blk.yaml", text).unwrap_err().to_string();
        assert!(error.contains("blk.yaml:3:"), "{error}");
        assert!(error.contains("engine.allowed_lateness"), "{error}");
    }

    /// The position is given once, in front.
    #[test]
    fn a_yaml_error_gives_its_position_once() {
        let text = "engine:\n  shards: 2\n  allowed_lateness: 15\nsources:\n  - type: file\n    paths: [samples]\n";
        let error = Config::parse("blk.yaml", text).unwrap_err().to_string();
        assert_eq!(
            error,
            "config error: blk.yaml:3:21: engine.allowed_lateness: invalid duration unit \"\" in \"15\": use ms, s, m, h or d"
        );
        // A syntax error: once in front, the context's own position kept.
        let text = "sources:\n  - {type: file, paths: [x]}\nengine: {shards: 2\n";
        let error = Config::parse("b.yaml", text).unwrap_err().to_string();
        assert_eq!(
            error,
            "config error: b.yaml:4:1: did not find expected ',' or '}', while parsing a flow mapping at line 3 column 9"
        );
        let text = "engine:\n\tshards: 2\n";
        let error = Config::parse("t.yaml", text).unwrap_err().to_string();
        assert_eq!(
            error,
            "config error: t.yaml:2:1: found character that cannot start any token, while scanning for the next token"
        );
        assert_eq!(
            without_first(
                "x at line 1 column 12, y at line 1 column 1",
                " at line 1 column 1"
            ),
            "x at line 1 column 12, y"
        );
        let problems = crate::rules::parse_rule_text("y.yaml", "id: [\n").unwrap_err();
        assert!(
            !problems[0].message.contains(" at line "),
            "{}",
            problems[0]
        );
    }

    /// Only the quoted string goes, escaped quotes included; the rest of
    /// the message stays.
    #[test]
    fn refused_strings_are_not_shown() {
        assert_eq!(
            hide_refused_strings(
                r#"a: invalid type: string "pw=\"x\\\", y", expected a map; b: invalid value: string "s", expected c"#
            ),
            "a: invalid type: string (value not shown), expected a map; b: invalid value: string (value not shown), expected c"
        );
        assert_eq!(
            hide_refused_strings("invalid type: integer `-1`, expected a count"),
            "invalid type: integer `-1`, expected a count"
        );
        assert_eq!(
            hide_refused_strings("invalid type: string \"unclosed"),
            "invalid type: string (value not shown)"
        );
        let text =
            "sources:\n  - type: file\n    paths: [samples]\nengine:\n  shards: secret-two\n";
        let error = Config::parse("c.yaml", text).unwrap_err().to_string();
        assert_eq!(
            error,
            "config error: c.yaml:5:11: engine.shards: invalid type: string (value not shown), expected a count from 1 to 512"
        );
    }

    #[test]
    fn an_error_inside_a_source_names_its_key_and_line() {
        let text = "sources:\n  - type: file\n    paths: [samples]\n    decoder: json\n";
        let error = Config::parse("dec.yaml", text).unwrap_err().to_string();
        assert!(
            error.contains("dec.yaml:4:14: sources[0].decoder"),
            "{error}"
        );
        assert!(
            error.contains("`cloud_trail`"),
            "the accepted values: {error}"
        );
        let text = "sources:\n  - type: kinesis\n    stream: trail\n    lease_duration: 5x\n";
        let error = Config::parse("k.yaml", text).unwrap_err().to_string();
        assert!(
            error.contains("k.yaml:4:21: sources[0].lease_duration"),
            "{error}"
        );
        let text = "sources:\n  - type: file\n";
        let error = Config::parse("s.yaml", text).unwrap_err().to_string();
        assert!(
            error.contains("s.yaml:2:5: sources[0]: missing field `paths`"),
            "{error}"
        );
    }

    #[test]
    fn a_decoder_takes_the_rule_kind_spellings_too() {
        for (spelling, kind) in [
            ("cloudtrail", DecoderKind::CloudTrail),
            ("cloud_trail", DecoderKind::CloudTrail),
            ("vpcflow", DecoderKind::VpcFlow),
            ("vpc_flow", DecoderKind::VpcFlow),
            ("hostlog", DecoderKind::HostLog),
            ("host_log", DecoderKind::HostLog),
        ] {
            let text =
                format!("sources:\n  - {{type: file, paths: [samples], decoder: {spelling}}}\n");
            let config = Config::parse("t", &text).unwrap_or_else(|e| panic!("{spelling}: {e}"));
            assert!(
                matches!(config.sources[0], SourceConfig::File { decoder: Some(d), .. } if d == kind),
                "{spelling}"
            );
        }
    }

    /// `type` need not come first; a unit sink takes no other key.
    #[test]
    fn tagged_blocks_read_in_any_key_order() {
        let text = "sources:\n  - paths: [samples]\n    decoder: vpc_flow\n    type: file\nsinks:\n  alerts: {path: a.jsonl, type: file}\n  dead_letter: {type: stdout}\n";
        let config = Config::parse("t", text).unwrap();
        assert!(matches!(
            &config.sources[0],
            SourceConfig::File { decoder: Some(DecoderKind::VpcFlow), paths, .. } if paths == &["samples"]
        ));
        assert!(
            matches!(&config.sinks.alerts, SinkConfig::File { path } if path.ends_with("a.jsonl"))
        );
        assert!(matches!(config.sinks.dead_letter, SinkConfig::Stdout));
        let error = Config::parse("t", "sources:\n  - paths: [samples]\n    type: filez\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`filez`, expected one of `file`, `kafka`, `kinesis`"),
            "{error}"
        );
        let error = Config::parse("t", "sources:\n  - paths: [samples]\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("missing field `type`"), "{error}");
        let text = "sources:\n  - {type: file, paths: [samples]}\nsinks:\n  alerts: {type: stdout, path: x}\n";
        let error = Config::parse("t", text).unwrap_err().to_string();
        assert!(
            error.contains("t:4:26: sinks.alerts: unknown field `path`"),
            "{error}"
        );
    }

    #[test]
    fn a_log_level_that_would_filter_out_every_message_is_refused() {
        let parse = |level: &str| {
            let text = format!(
                "sources:\n  - type: file\n    paths: [samples]\nlog:\n  level: {level:?}\n"
            );
            Config::parse("l.yaml", &text).map(|config| config.log.level)
        };
        for good in [
            "info",
            "trailwatch=debug,rdkafka=warn",
            "warn,trailwatch::engine=trace",
            "OFF",
            "[http]=debug",
        ] {
            assert_eq!(parse(good).unwrap(), good);
        }
        for (bad, why) in [
            ("verbose", "invalid directive \"verbose\": not a level"),
            (
                "trailwatch=verbose",
                "invalid directive \"trailwatch=verbose\"",
            ),
            ("info,trailwatch=[", "invalid directive \"trailwatch=[\""),
            ("", "no directive"),
        ] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(error.contains("l.yaml:5:10: log.level: "), "{bad}: {error}");
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn scaleout_refuses_a_kinesis_input() {
        let text = "sources:\n  - type: kinesis\n    stream: trail\n\
                    scaleout:\n  brokers: k:9092\n  topic: rp\n  group_id: s2\n";
        let error = Config::parse("k", text).unwrap_err().to_string();
        assert!(
            error.contains("kinesis source cannot feed stage 1"),
            "{error}"
        );
        let config = Config::parse("k", &format!("{text}  role: stage2\n")).unwrap();
        assert_eq!(
            config.scaleout.map(|s| s.role),
            Some(ScaleoutRole::Stage2),
            "stage 2 reads no source"
        );
    }

    /// What `run` refuses at start-up without binding or connecting is
    /// refused when the file is read, so `run --check` refuses it too.
    #[test]
    fn start_up_refusals_are_config_errors() {
        let file = "sources:\n  - type: file\n    paths: [samples]\n";
        for (extra, expected) in [
            (
                "metrics:\n  listen: notanaddr\n",
                "c.yaml:5:11: metrics.listen: \"notanaddr\" is not an address",
            ),
            ("metrics:\n  listen: 127.0.0.1:99999\n", "metrics.listen"),
            (
                "sinks:\n  dead_letter: {type: kinesis, stream: dl}\n",
                "c.yaml: sinks.dead_letter: kinesis is only supported for alerts",
            ),
            (
                "sinks:\n  alerts: {type: kinesis, stream: \"\"}\n",
                "c.yaml:5:11: sinks.alerts: kinesis sink: stream is empty",
            ),
            (
                "scaleout: {brokers: k, topic: rp, group_id: g}\n",
                "c.yaml: scaleout.group_id must differ from the input's consumer group",
            ),
        ] {
            let sources = if extra.starts_with("scaleout") {
                "sources:\n  - {type: kafka, brokers: k, topics: [ct], group_id: g}\n"
            } else {
                file
            };
            let error = Config::parse("c.yaml", &format!("{sources}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{extra}: {error}");
        }
        let kinesis = "sources:\n  - type: kinesis\n    stream: trail\n    max_records: 0\n";
        let error = Config::parse("c.yaml", kinesis).unwrap_err().to_string();
        assert!(
            error
                .contains("c.yaml:2:5: sources[0]: kinesis source: max_records must be 1 to 10000"),
            "{error}"
        );
        for listen in [
            "",
            "127.0.0.1:9464",
            "[::]:9464",
            "0.0.0.0:0",
            "localhost:9464",
        ] {
            let text = format!("{file}metrics:\n  listen: {listen:?}\n");
            assert_eq!(
                Config::parse("c.yaml", &text).unwrap().metrics.listen,
                listen
            );
        }
    }

    /// Stage 2 must outlast a dead replica's session timeout (45 s by
    /// default) before it lets the replica's input partitions go.
    #[test]
    fn producer_idle_timeout_defaults_to_five_minutes_or_the_engines() {
        let base = "sources:\n  - type: file\n    paths: [samples]\n\
                    scaleout:\n  brokers: k:9092\n  topic: rp\n  group_id: s2\n";
        let scaleout = |extra: &str| {
            Config::parse("s", &format!("{base}{extra}"))
                .unwrap()
                .scaleout
                .expect("scaleout")
        };
        assert_eq!(scaleout("").producer_idle_timeout_ms(60_000), 300_000);
        assert_eq!(scaleout("").producer_idle_timeout_ms(600_000), 600_000);
        let set = scaleout("  producer_idle_timeout: 90s\n");
        assert_eq!(set.producer_idle_timeout_ms(600_000), 90_000);
    }

    #[test]
    fn a_kinesis_alert_sink_refuses_evidence_limits_that_overflow_a_record() {
        let sink = "sinks:\n  alerts: {type: kinesis, stream: alerts}\n";
        let with = |engine: &str, sink: &str| {
            format!("sources:\n  - type: file\n    paths: [x]\n{engine}{sink}")
        };
        let large = "engine:\n  max_samples: 20\n  max_sample_bytes: 65536\n";
        let error = Config::parse("c.yaml", &with(large, sink))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("config error: c.yaml: sinks.alerts: kinesis records hold at most 1048576 bytes, but engine.max_samples (20) x engine.max_sample_bytes (65536)"),
            "{error}"
        );
        // The defaults fit; so do the same limits with another sink.
        Config::parse("c.yaml", &with("", sink)).unwrap();
        Config::parse("c.yaml", &with(large, "")).unwrap();
        let fits = "engine:\n  max_samples: 10\n  max_sample_bytes: 16000\n";
        Config::parse("c.yaml", &with(fits, sink)).unwrap();
    }

    #[test]
    fn kinesis_source_and_sink_parse() {
        let text = "sources:\n  - type: kinesis\n    stream: trail\n    lease_duration: 5s\nsinks:\n  alerts:\n    type: kinesis\n    stream: alerts\n";
        let config = Config::parse("k", text).unwrap();
        assert!(matches!(
            &config.sources[0],
            SourceConfig::Kinesis { stream, lease_duration: Some(d), .. }
                if stream == "trail" && d.0 == std::time::Duration::from_secs(5)
        ));
        assert!(
            matches!(&config.sinks.alerts, SinkConfig::Kinesis { stream, .. } if stream == "alerts")
        );
    }

    #[test]
    fn kinesis_enhanced_fan_out_parses_and_is_off_by_default() {
        let fan_out = |config: &Config| match &config.sources[0] {
            SourceConfig::Kinesis {
                enhanced_fan_out, ..
            } => enhanced_fan_out.clone(),
            other => panic!("not a kinesis source: {other:?}"),
        };
        let polling =
            Config::parse("k", "sources:\n  - type: kinesis\n    stream: trail\n").unwrap();
        assert_eq!(fan_out(&polling), None);
        let text = "sources:\n  - type: kinesis\n    stream: trail\n    enhanced_fan_out:\n      consumer_name: trailwatch-prod\n";
        let config = Config::parse("k", text).unwrap();
        assert_eq!(
            fan_out(&config),
            Some(EnhancedFanOutConfig {
                consumer_name: "trailwatch-prod".into()
            })
        );
        let typo = "sources:\n  - type: kinesis\n    stream: trail\n    enhanced_fan_out:\n      consumer: trailwatch\n";
        let error = Config::parse("k.yaml", typo).unwrap_err().to_string();
        assert!(error.contains("consumer"), "{error}");
        let missing = "sources:\n  - type: kinesis\n    stream: trail\n    enhanced_fan_out: {}\n";
        let error = Config::parse("k.yaml", missing).unwrap_err().to_string();
        assert!(error.contains("consumer_name"), "{error}");
        let invalid = "sources:\n  - type: kinesis\n    stream: trail\n    enhanced_fan_out:\n      consumer_name: has space\n";
        let error = Config::parse("k.yaml", invalid).unwrap_err().to_string();
        assert!(error.contains("[a-zA-Z0-9_.-]"), "{error}");
    }

    #[test]
    fn kinesis_consumer_names_follow_the_aws_pattern() {
        let check = |name: &str| {
            EnhancedFanOutConfig {
                consumer_name: name.into(),
            }
            .validate()
            .is_ok()
        };
        assert!(check("trailwatch-prod_1.a"));
        assert!(check(&"x".repeat(128)));
        assert!(!check(""));
        assert!(!check("has space"));
        assert!(!check("slash/no"));
        assert!(!check(&"x".repeat(129)));
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let err = Config::parse("cfg.yaml", "sources: []\nengine:\n  shardz: 3\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("cfg.yaml:3"), "{text}");
        assert!(text.contains("shardz"), "{text}");
        assert!(Config::parse("c", "sources: []\n").is_err());
    }

    #[test]
    fn kafka_blocks_parse_and_redact_secrets() {
        let text = "sources:\n  - type: kafka\n    brokers: 127.0.0.1:9092\n    topics: [ct]\n    group_id: g\n    properties:\n      sasl.password: hunter2\n      security.protocol: SASL_SSL\nsinks:\n  alerts:\n    type: kafka\n    brokers: 127.0.0.1:9092\n    topic: alerts\n    properties:\n      sasl.password: hunter3\n";
        let config = Config::parse("t", text).unwrap();
        let dump = format!("{config:?}");
        assert!(
            !dump.contains("hunter2") && !dump.contains("hunter3"),
            "{dump}"
        );
        assert!(dump.contains("SASL_SSL"), "{dump}");
        let SourceConfig::Kafka(kafka) = &config.sources[0] else {
            panic!("not kafka: {dump}");
        };
        kafka.validate().unwrap();
        assert_eq!(kafka.poll_batch, 2048);
        assert_eq!(
            kafka.properties.resolve().unwrap()["sasl.password"],
            "hunter2"
        );
    }

    #[test]
    fn example_kafka_config_parses() {
        let text = include_str!("../deploy/config/kafka.yaml");
        let config = Config::parse("deploy/config/kafka.yaml", text).unwrap();
        let SourceConfig::Kafka(kafka) = &config.sources[0] else {
            panic!("not kafka");
        };
        kafka.validate().unwrap();
        assert!(matches!(config.sinks.alerts, SinkConfig::Kafka { .. }));
    }

    #[test]
    fn kafka_source_needs_exactly_one_topic_selector() {
        let both = "sources:\n  - type: kafka\n    brokers: b\n    topics: [a]\n    topic_pattern: 'ct-.*'\n    group_id: g\n";
        let error = Config::parse("t", both).unwrap_err().to_string();
        assert!(error.contains("not both"), "{error}");
        let none = "sources:\n  - type: kafka\n    brokers: b\n    group_id: g\n";
        assert!(Config::parse("t", none).is_err());
    }

    /// A source with nothing to read is refused at its list: the service
    /// would stop at once (no file) or wait without a word (no broker).
    #[test]
    fn a_source_or_sink_without_input_paths_or_brokers_is_refused() {
        let kafka = |brokers: &str| {
            format!("sources:\n  - type: kafka\n    brokers: {brokers}\n    topics: [a]\n    group_id: g\n")
        };
        for (text, expected) in [
            (
                "sources:\n  - type: file\n    paths: []\n    follow: true\n".to_string(),
                "e.yaml:3:12: sources[0].paths: no path: list at least one file or directory",
            ),
            (kafka("''"), "e.yaml:3:14: sources[0].brokers: no broker"),
            (kafka("' , ,'"), "e.yaml:3:14: sources[0].brokers: no broker"),
            (
                "sources:\n  - {type: file, paths: [x]}\nsinks:\n  alerts: {type: kafka, brokers: ' ', topic: a}\n".to_string(),
                "sinks.alerts.brokers: no broker",
            ),
            (
                format!("{}scaleout: {{brokers: '', topic: rp, group_id: s2}}\n", kafka("k:9092")),
                "scaleout.brokers: no broker",
            ),
        ] {
            let error = Config::parse("e.yaml", &text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
        let config = Config::parse("e.yaml", &kafka("'k-0:9092, k-1:9092'")).unwrap();
        assert!(
            matches!(&config.sources[0], SourceConfig::Kafka(k) if k.brokers == "k-0:9092, k-1:9092")
        );
    }

    /// A check of a source's settings names the file, the source and its line.
    #[test]
    fn a_source_validation_error_names_the_file_the_source_and_its_line() {
        let text = "sources:\n  - type: file\n    paths: [samples]\n  - type: kafka\n    brokers: b:9092\n    group_id: g\n";
        let error = Config::parse("k.yaml", text).unwrap_err().to_string();
        assert!(
            error.starts_with("config error: k.yaml:4:5: sources[1]: kafka source: one of topics or topic_pattern is required"),
            "{error}"
        );
        let text =
            "sources:\n  - type: file\n    paths: [samples]\n    flow_format: '${nosuchfield}'\n";
        let error = Config::parse("f.yaml", text).unwrap_err().to_string();
        assert!(
            error.contains("f.yaml:2:5: sources[0]: invalid flow_format"),
            "{error}"
        );
    }

    #[test]
    fn kafka_property_references_resolve_from_env_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "from-file\n").unwrap();
        let properties = KafkaProperties(BTreeMap::from([
            ("a".to_string(), format!("${{file:{}}}", path.display())),
            (
                "b".to_string(),
                "${env:TRAILWATCH_TEST_UNSET_VARIABLE}".to_string(),
            ),
        ]));
        let err = properties.resolve().unwrap_err().to_string();
        assert!(err.contains("TRAILWATCH_TEST_UNSET_VARIABLE"), "{err}");
        let only_file = KafkaProperties(BTreeMap::from([(
            "a".to_string(),
            format!("${{file:{}}}", path.display()),
        )]));
        assert_eq!(only_file.resolve().unwrap()["a"], "from-file");
    }
}
