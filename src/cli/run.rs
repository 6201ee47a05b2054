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

use super::backends;
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

/// Builds the configured sources; `tracker` is the engine's, which
/// consumer-group sources consult when partitions are revoked.
pub fn build_sources(config: &Config, engine: &Engine) -> Result<Vec<Box<dyn Source>>> {
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    for source in &config.sources {
        match source {
            SourceConfig::File {
                paths,
                follow,
                decoder,
                flow_format,
            } => {
                let inputs: Vec<FileInput> = paths.iter().map(|p| FileInput::from_arg(p)).collect();
                let decoding = crate::config::source_decoding(*decoder, flow_format.as_deref())?;
                let source = FileSource::with_decoding(&inputs, *follow, decoding)?
                    .with_max_record_bytes(
                        config
                            .engine
                            .max_record_bytes
                            .unwrap_or(crate::decode::DecodeConfig::default().max_record_bytes),
                    );
                sources.push(Box::new(source));
            }
            SourceConfig::Kafka(kafka) => sources.push(backends::kafka_source(kafka, engine)?),
            kinesis @ SourceConfig::Kinesis { .. } => {
                sources.push(backends::kinesis_source(kinesis, engine)?)
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
        SinkConfig::Kafka {
            brokers,
            topic,
            properties,
        } => backends::kafka_alert_sink(brokers, topic, properties)?,
        kinesis @ SinkConfig::Kinesis { .. } => backends::kinesis_alert_sink(kinesis)?,
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
        SinkConfig::Kafka {
            brokers,
            topic,
            properties,
        } => backends::kafka_dead_letter_sink(brokers, topic, properties)?,
        SinkConfig::Kinesis { .. } => {
            return Err(Error::Config(
                "sinks.dead_letter: kinesis is only supported for alerts".into(),
            ))
        }
    })
}

/// Replaces the value of every secret-looking key (at any depth).
pub fn redact(value: &mut serde_yaml_ng::Value) {
    use serde_yaml_ng::Value;
    match value {
        Value::Mapping(map) => {
            for (key, child) in map.iter_mut() {
                let secret = key.as_str().is_some_and(crate::config::is_secret_key);
                if secret && !matches!(child, Value::Mapping(_) | Value::Sequence(_)) {
                    *child = Value::String("<redacted>".into());
                } else {
                    redact(child);
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(redact),
        Value::Tagged(tagged) => redact(&mut tagged.value),
        _ => {}
    }
}

/// The config file as YAML with secrets redacted (for `--check`).
fn redacted_config(path: &std::path::Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    redact(&mut value);
    let yaml = serde_yaml_ng::to_string(&value)
        .map_err(|e| Error::Internal(format!("cannot print config: {e}")))?;
    Ok(yaml
        .lines()
        .map(|line| format!("  {line}\n"))
        .collect::<String>())
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
        // Every check passed: print nothing that can fail after "config ok".
        let dump = redacted_config(&args.config)?;
        outln!("config ok: {}", args.config.display())?;
        outln!("effective config (secrets redacted):")?;
        out!("{dump}")?;
        outln!("rules: {} enabled", rules.len())?;
        outln!("sources: {}", config.sources.len())?;
        outln!(
            "engine: shards={} decoders={} allowed_lateness_ms={} max_open_windows={}",
            engine_config.shards,
            engine_config.decoders,
            engine_config.watermark.allowed_lateness_ms,
            engine_config.max_open_windows
        )?;
        if config.metrics.listen.trim().is_empty() {
            outln!("metrics listen: disabled")?;
        } else {
            outln!(
                "metrics listen: {} (parsed, not bound: a running replica may hold the port)",
                config.metrics.listen
            )?;
        }
        let format = match config.log.format {
            crate::config::LogFormat::Human => "human",
            crate::config::LogFormat::Json => "json",
        };
        outln!("log: level={} format={format}", config.log.level)?;
        match &config.scaleout {
            Some(scaleout) => {
                outln!(
                    "scaleout: role={:?} topic={} group_id={}",
                    scaleout.role,
                    scaleout.topic,
                    scaleout.group_id
                )?;
            }
            None => outln!("scaleout: none (direct path)")?,
        }
        return Ok(0);
    }
    if let Some(scaleout) = &config.scaleout {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, Arc::clone(&stop))
                .map_err(|e| Error::Internal(format!("cannot install signal handler: {e}")))?;
        }
        return super::scaleout::execute(&config, scaleout, rules, stop);
    }
    let engine = Engine::new(engine_config, Arc::clone(&rules));
    let sources = build_sources(&config, &engine)?;
    let alert_sink = build_alert_sink(&config.sinks.alerts)?;
    let dead_letter_sink = build_dead_letter_sink(&config.sinks.dead_letter)?;
    let _http = crate::http::HttpServer::start(
        &config.metrics.listen,
        engine.metrics(),
        engine.registry(),
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_secret_values_at_any_depth() {
        let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            "sources:\n  - type: kafka\n    properties:\n      sasl.password: hunter2\n      sasl.username: svc\n      bootstrap.servers: b:9092\n      ssl.key.pem: \"-----BEGIN PRIVATE KEY-----MIIE\"\n    api_token: t0k\n",
        )
        .unwrap();
        redact(&mut value);
        let text = serde_yaml_ng::to_string(&value).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("t0k"), "{text}");
        assert!(!text.contains("MIIE"), "a TLS private key: {text}");
        assert!(text.contains("bootstrap.servers: b:9092"), "{text}");
        assert_eq!(text.matches("<redacted>").count(), 4, "{text}");
    }
}
