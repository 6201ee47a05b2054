//! `trailwatch run --config FILE`: the long-lived service.
//!
//! Builds sources and sinks from the config's closed enums, starts the
//! engine, and on SIGTERM/SIGINT stops intake, drains in-flight batches,
//! flushes alerts, commits what is safe, and exits 0 within the deadline.
//! Before it builds anything it makes every start-up check that needs no
//! network (`preflight`); `--check` stops there, so it refuses what `run`
//! would, and says what it could not check.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, ScaleoutRole, SinkConfig, SourceConfig};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::sink::writer::{DeadLetterFormat, JsonLinesAlertSink, LineDeadLetterSink, LineTarget};
use crate::sink::{AlertSink, DeadLetterSink};
use crate::source::file::{FileInput, FileSource};
use crate::source::{Source, WithLateness};

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
                ..
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
        if let Some(lateness) = source.allowed_lateness() {
            if let Some(built) = sources.pop() {
                sources.push(Box::new(WithLateness {
                    inner: built,
                    lateness_ms: lateness.as_millis_i64(),
                }));
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

/// What `run` checks before it starts anything, short of binding the
/// metrics port or reaching a broker or AWS, in the order it builds its
/// inputs and outputs: file inputs are listed; a file output's directory
/// exists (the file is not created); every Kafka client's settings pass
/// its builder's checks and librdkafka's, with `${env:..}` and `${file:..}`
/// references resolved (their values never shown); Kinesis was built in.
/// `run` and `--check` both call it, so `--check` refuses what `run`
/// would. Returns what it could not check, for `--check` to say.
fn preflight(path: &Path, config: &Config) -> Result<Vec<String>> {
    let at = |place: String| {
        move |error: Error| match error {
            Error::Config(message) => {
                Error::Config(format!("{}: {place}: {message}", path.display()))
            }
            other => other,
        }
    };
    let role = config.scaleout.as_ref().map(|scaleout| scaleout.role);
    let mut unchecked = Vec::new();
    if role != Some(ScaleoutRole::Stage2) {
        for (index, source) in config.sources.iter().enumerate() {
            let place = format!("sources[{index}]");
            match source {
                SourceConfig::File {
                    paths,
                    follow,
                    decoder,
                    flow_format,
                    ..
                } => {
                    let inputs: Vec<FileInput> =
                        paths.iter().map(|p| FileInput::from_arg(p)).collect();
                    let decoding = crate::config::source_decoding(*decoder, flow_format.as_deref())
                        .map_err(at(place))?;
                    FileSource::with_decoding(&inputs, *follow, decoding)?;
                }
                SourceConfig::Kafka(kafka) => {
                    backends::check_kafka_source(kafka).map_err(at(place.clone()))?;
                    unchecked.push(format!(
                        "{place} (kafka): brokers {}, its topics and group {}",
                        kafka.brokers, kafka.group_id
                    ));
                }
                SourceConfig::Kinesis { stream, .. } => {
                    backends::check_kinesis().map_err(at(place.clone()))?;
                    unchecked.push(format!(
                        "{place} (kinesis): stream {stream}, its lease table and the AWS credentials"
                    ));
                }
            }
        }
    }
    let mut sinks = vec![("sinks.dead_letter", &config.sinks.dead_letter)];
    if role != Some(ScaleoutRole::Stage1) {
        sinks.insert(0, ("sinks.alerts", &config.sinks.alerts));
    }
    for (place, sink) in sinks {
        match sink {
            SinkConfig::Stdout | SinkConfig::Stderr => {}
            SinkConfig::File { path } => check_output_file(path)?,
            SinkConfig::Kafka {
                brokers,
                topic,
                properties,
            } => {
                backends::check_kafka_sink(brokers, properties).map_err(at(place.into()))?;
                unchecked.push(format!(
                    "{place} (kafka): brokers {brokers} and topic {topic}"
                ));
            }
            SinkConfig::Kinesis { stream, .. } => {
                backends::check_kinesis().map_err(at(place.into()))?;
                unchecked.push(format!(
                    "{place} (kinesis): stream {stream} and the AWS credentials"
                ));
            }
        }
    }
    if let Some(scaleout) = &config.scaleout {
        if scaleout.role != ScaleoutRole::Stage2 {
            backends::check_kafka_sink(&scaleout.brokers, &scaleout.properties)
                .map_err(at("scaleout".into()))?;
        }
        if scaleout.role != ScaleoutRole::Stage1 {
            backends::check_repartition_source(scaleout).map_err(at("scaleout".into()))?;
        }
        unchecked.push(format!(
            "scaleout: brokers {} and topic {} (its partition count)",
            scaleout.brokers, scaleout.topic
        ));
    }
    Ok(unchecked)
}

/// Checks that `run` can open `path` for appending, without creating it:
/// an existing file opens for appending (nothing is written), a new one
/// needs a directory it can create files in (a read-only root filesystem
/// refuses): a probe file is created there and removed at once.
fn check_output_file(path: &Path) -> Result<()> {
    let io = |e| Error::io(path.display().to_string(), e);
    if path.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(io);
    }
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match std::fs::metadata(directory) {
        Ok(meta) if meta.is_dir() => {
            let probe = directory.join(format!(".trailwatch-check-{}", std::process::id()));
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe)
                .map_err(|e| {
                    Error::io(
                        path.display().to_string(),
                        std::io::Error::new(
                            e.kind(),
                            format!("cannot create files in {}: {e}", directory.display()),
                        ),
                    )
                })?;
            std::fs::remove_file(&probe).map_err(io)
        }
        Ok(_) => Err(io(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!("{} is not a directory", directory.display()),
        ))),
        Err(e) => Err(io(e)),
    }
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
    let unchecked = preflight(&args.config, &config)?;
    let engine_config = config.engine.to_engine_config(false);
    if args.check {
        // Every check passed: print nothing that can fail after "config ok".
        let dump = redacted_config(&args.config)?;
        outln!("config ok: {}", args.config.display())?;
        outln!("effective config (secrets redacted):")?;
        out!("{dump}")?;
        outln!("rules: {} enabled", rules.len())?;
        outln!("sources: {}", config.sources.len())?;
        outln!("{}", engine_summary(&engine_config))?;
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
        if !unchecked.is_empty() {
            outln!("not checked (needs the network of the running service):")?;
            for line in &unchecked {
                outln!("  {line}")?;
            }
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

/// Every engine setting as the run will use it, defaults filled in (the
/// dump above shows only what the file sets).
fn engine_summary(engine: &crate::engine::EngineConfig) -> String {
    let ms = |ms: i64| match u64::try_from(ms) {
        Ok(ms) if ms % 1000 == 0 => crate::import::format_duration(ms / 1000),
        _ => format!("{ms}ms"),
    };
    let duration = |d: std::time::Duration| crate::import::format_duration(d.as_secs());
    let watermark = &engine.watermark;
    format!(
        "engine (defaults filled in): shards={} decoders={} channel_batches={} \
         allowed_lateness={} idle_timeout={} max_skew={} max_open_windows={} \
         max_state_bytes={} max_samples={} max_sample_bytes={} max_record_bytes={} \
         max_decompressed_bytes={} commit_interval={} shutdown_deadline={}",
        engine.shards,
        engine.decoders,
        engine.channel_batches,
        ms(watermark.allowed_lateness_ms),
        ms(watermark.idle_timeout_ms),
        ms(watermark.max_skew_ms),
        engine.max_open_windows,
        engine.max_state_bytes,
        engine.evidence.max_samples,
        engine.evidence.max_sample_bytes,
        engine.decode.max_record_bytes,
        engine.decode.max_decompressed_bytes,
        duration(engine.commit_interval),
        duration(engine.shutdown_deadline),
    )
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
