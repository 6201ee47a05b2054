//! `trailwatch run --config FILE`: the long-lived service.
//!
//! Builds sources and sinks from the config's closed enums, starts the
//! engine, and on SIGTERM/SIGINT stops intake, drains in-flight batches,
//! flushes alerts, commits what is safe, and exits 0 within the deadline.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, SinkConfig, SourceConfig};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::sink::writer::{DeadLetterFormat, JsonLinesAlertSink, LineDeadLetterSink, LineTarget};
use crate::sink::{AlertSink, DeadLetterSink};
use crate::source::file::{FileInput, FileSource};
use crate::source::Source;

use super::replay::load_rules;
use super::RuleArgs;

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Service configuration (YAML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Validate the config and rules, print the effective settings, exit.
    #[arg(long)]
    pub check: bool,
}

/// Builds the configured sources.
pub fn build_sources(config: &Config) -> Result<Vec<Box<dyn Source>>> {
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    for source in &config.sources {
        match source {
            SourceConfig::File { paths, follow, .. } => {
                let inputs: Vec<FileInput> = paths
                    .iter()
                    .map(|p| {
                        if p == "-" {
                            FileInput::Stdin
                        } else {
                            FileInput::Path(PathBuf::from(p))
                        }
                    })
                    .collect();
                sources.push(Box::new(FileSource::new(&inputs, *follow)?));
            }
            SourceConfig::Kinesis {
                stream,
                region,
                endpoint_url,
                dynamodb_endpoint_url,
                lease_table,
                worker_id,
                lease_duration,
                max_records,
                poll_interval,
                shard_sync_interval,
                ..
            } => {
                let mut kinesis = crate::source::kinesis::KinesisSourceConfig::new(stream);
                kinesis.region.clone_from(region);
                kinesis.endpoint_url.clone_from(endpoint_url);
                kinesis
                    .dynamodb_endpoint_url
                    .clone_from(dynamodb_endpoint_url);
                if let Some(table) = lease_table {
                    kinesis.lease_table.clone_from(table);
                }
                if let Some(worker) = worker_id {
                    kinesis.worker_id.clone_from(worker);
                }
                if let Some(duration) = lease_duration {
                    kinesis.lease_duration = duration.0;
                }
                if let Some(limit) = max_records {
                    kinesis.max_records = *limit;
                }
                if let Some(interval) = poll_interval {
                    kinesis.poll_interval = interval.0;
                }
                if let Some(interval) = shard_sync_interval {
                    kinesis.shard_sync_interval = interval.0;
                }
                sources.push(Box::new(crate::source::kinesis::KinesisSource::new(
                    kinesis,
                )?));
            }
        }
    }
    Ok(sources)
}

/// Builds the configured alert sink.
pub fn build_alert_sink(config: &SinkConfig) -> Result<Box<dyn AlertSink>> {
    Ok(match config {
        SinkConfig::Stdout => Box::new(JsonLinesAlertSink::new(LineTarget::Stdout)),
        SinkConfig::Stderr => Box::new(JsonLinesAlertSink::new(LineTarget::Stderr)),
        SinkConfig::File { path } => Box::new(JsonLinesAlertSink::new(LineTarget::append(path)?)),
        SinkConfig::Kinesis {
            stream,
            region,
            endpoint_url,
        } => Box::new(crate::sink::kinesis::KinesisAlertSink::new(
            &crate::sink::kinesis::KinesisSinkConfig {
                stream: stream.clone(),
                region: region.clone(),
                endpoint_url: endpoint_url.clone(),
            },
        )?),
    })
}

/// Builds the configured dead-letter sink.
pub fn build_dead_letter_sink(config: &SinkConfig) -> Result<Box<dyn DeadLetterSink>> {
    Ok(match config {
        SinkConfig::Stdout => Box::new(LineDeadLetterSink::new(
            LineTarget::Stdout,
            DeadLetterFormat::Json,
        )),
        SinkConfig::Stderr => Box::new(LineDeadLetterSink::new(
            LineTarget::Stderr,
            DeadLetterFormat::Json,
        )),
        SinkConfig::File { path } => Box::new(LineDeadLetterSink::new(
            LineTarget::append(path)?,
            DeadLetterFormat::Json,
        )),
        SinkConfig::Kinesis { .. } => {
            return Err(Error::Config(
                "sinks.dead_letter: kinesis is only supported for alerts".into(),
            ))
        }
    })
}

/// Runs `run`.
pub fn execute(args: RunArgs) -> Result<i32> {
    let config = Config::load(&args.config)?;
    crate::logging::init(&config.log.level, config.log.format);
    let rule_args = RuleArgs {
        rules: config.rules.dirs.clone(),
        no_builtin: !config.rules.builtin,
    };
    let rules = load_rules(&rule_args)?;
    let engine_config = config.engine.to_engine_config(false);
    if args.check {
        println!("config ok: {}", args.config.display());
        println!("rules: {} enabled", rules.len());
        println!("sources: {}", config.sources.len());
        println!(
            "engine: shards={} decoders={} allowed_lateness_ms={} max_open_windows={}",
            engine_config.shards,
            engine_config.decoders,
            engine_config.watermark.allowed_lateness_ms,
            engine_config.max_open_windows
        );
        println!("metrics listen: {}", config.metrics.listen);
        return Ok(0);
    }
    let sources = build_sources(&config)?;
    let alert_sink = build_alert_sink(&config.sinks.alerts)?;
    let dead_letter_sink = build_dead_letter_sink(&config.sinks.dead_letter)?;
    let engine = Engine::new(engine_config, Arc::clone(&rules));
    let stop = engine.stop_handle();
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Error::Internal(format!("cannot install signal handler: {e}")))?;
    }
    tracing::info!(
        rules = rules.len(),
        sources = sources.len(),
        "trailwatch starting"
    );
    let summary = engine.run(sources, alert_sink, dead_letter_sink)?;
    tracing::info!(
        alerts = summary.alerts_delivered,
        elapsed_ms = summary.elapsed.as_millis() as u64,
        "trailwatch stopped"
    );
    Ok(0)
}
