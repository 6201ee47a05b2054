//! The service configuration file (`trailwatch run --config FILE`).
//!
//! YAML, every key optional except `sources`. Unknown keys are errors, so
//! a misspelt setting fails loudly at start-up (and in `--check`) instead
//! of silently falling back to a default. Sources and sinks are closed
//! enums tagged by `type`; adding a backend means adding a variant and a
//! `match` arm where they are built (see `crate::cli::run`).

use std::path::PathBuf;

use serde::Deserialize;

use crate::decode::DecoderKind;
use crate::engine::watermark::WatermarkConfig;
use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::rules::duration::HumanDuration;

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

/// Engine tuning; every field has a safe default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    pub shards: Option<usize>,
    pub decoders: Option<usize>,
    pub channel_batches: Option<usize>,
    pub allowed_lateness: Option<HumanDuration>,
    pub idle_timeout: Option<HumanDuration>,
    pub max_skew: Option<HumanDuration>,
    pub max_open_windows: Option<usize>,
    pub max_samples: Option<usize>,
    pub max_sample_bytes: Option<usize>,
    pub max_record_bytes: Option<usize>,
    pub max_decompressed_bytes: Option<usize>,
    pub commit_interval: Option<HumanDuration>,
    pub shutdown_deadline: Option<HumanDuration>,
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
            evidence: crate::engine::window::EvidenceLimits {
                max_samples: self.max_samples.unwrap_or(defaults.evidence.max_samples),
                max_sample_bytes: self
                    .max_sample_bytes
                    .unwrap_or(defaults.evidence.max_sample_bytes),
            },
            decode,
            flush_on_end: replay,
            commit_interval: self
                .commit_interval
                .map_or(defaults.commit_interval, |d| d.0),
            shutdown_deadline: self
                .shutdown_deadline
                .map_or(defaults.shutdown_deadline, |d| d.0),
        }
    }
}

/// One input.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// Files or directories (`-` for stdin).
    File {
        paths: Vec<String>,
        #[serde(default)]
        follow: bool,
        #[serde(default)]
        decoder: Option<DecoderKind>,
    },
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
        #[serde(default)]
        decoder: Option<DecoderKind>,
    },
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

/// One output.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    Stdout,
    Stderr,
    File {
        path: PathBuf,
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

/// The metrics and health listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Bind address; empty disables the listener.
    #[serde(default = "default_listen")]
    pub listen: String,
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
    /// `tracing` env-filter directive (overridden by `RUST_LOG`).
    #[serde(default = "default_level")]
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

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl Config {
    /// Parses a config file's text; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Config> {
        let config: Config = serde_yaml_ng::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            Error::Config(format!("{origin}{at}: {e}"))
        })?;
        if config.sources.is_empty() {
            return Err(Error::Config(format!(
                "{origin}: at least one source is required"
            )));
        }
        Ok(config)
    }

    /// Reads and parses `path`.
    pub fn load(path: &std::path::Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io(path.display().to_string(), e))?;
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
        assert!(!engine.flush_on_end);
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
    fn unknown_keys_are_errors_with_position() {
        let err = Config::parse("cfg.yaml", "sources: []\nengine:\n  shardz: 3\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("cfg.yaml:3"), "{text}");
        assert!(text.contains("shardz"), "{text}");
        assert!(Config::parse("c", "sources: []\n").is_err());
    }
}
