//! Builds the Kafka and Kinesis sources and sinks named in a config.
//!
//! They are compiled only with the `kafka` and `kinesis` features (both on
//! by default). A build without one still parses configs that name it and
//! answers with a clear configuration error, so `--check` tells the
//! operator what is missing instead of a parse failure. The `check_*`
//! functions make the builders' checks that need no network (settings,
//! secret references, librdkafka's reading of the properties), for `run`
//! and `run --check` alike.

#[cfg(any(feature = "kafka", feature = "kinesis"))]
use std::sync::Arc;

use crate::config::{KafkaProperties, KafkaSourceConfig, SinkConfig, SourceConfig};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::sink::{AlertSink, DeadLetterSink, PartialSink};
use crate::source::Source;

#[cfg(not(all(feature = "kafka", feature = "kinesis")))]
fn not_built(feature: &str) -> Error {
    Error::Config(format!(
        "this trailwatch was built without {feature} support (cargo feature `{feature}`)"
    ))
}

/// A Kafka consumer-group source, wired to the engine's commit tracker and
/// exporting its consumer lag.
#[cfg(feature = "kafka")]
pub fn kafka_source(config: &KafkaSourceConfig, engine: &Engine) -> Result<Box<dyn Source>> {
    let mut source = crate::source::kafka::KafkaSource::new(config)?;
    source.set_tracker(engine.tracker());
    if engine.is_scaled_out() {
        // Stage 1 drops batches of revoked partitions: a comeback replays.
        source.keep_replays();
        // Stage 2 must know the input partitions whose owners have not
        // reported yet.
        source.announce_all_partitions();
    }
    let lag = source.lag();
    engine
        .metrics()
        .register_kafka_consumer_lag(Arc::new(move || {
            lag.lag_snapshot()
                .into_iter()
                .map(|(topic, partition, lag)| (format!("{topic}/{partition}"), lag))
                .collect()
        }));
    Ok(Box::new(source))
}

/// Stage 2's consumer of the repartition topic.
fn repartition_source_config(scaleout: &crate::config::ScaleoutConfig) -> KafkaSourceConfig {
    KafkaSourceConfig {
        brokers: scaleout.brokers.clone(),
        topics: vec![scaleout.topic.clone()],
        topic_pattern: None,
        group_id: scaleout.group_id.clone(),
        decoder: None,
        flow_format: None,
        properties: scaleout.properties.clone(),
        static_membership: false,
        poll_batch: 2048,
        allowed_lateness: None,
    }
}

/// Checks a Kafka source as [`kafka_source`] builds it, offline (see
/// [`crate::source::kafka::check_config`]).
#[cfg(feature = "kafka")]
pub fn check_kafka_source(config: &KafkaSourceConfig) -> Result<()> {
    crate::source::kafka::check_config(config)
}

/// Checks a Kafka source (not built).
#[cfg(not(feature = "kafka"))]
pub fn check_kafka_source(_config: &KafkaSourceConfig) -> Result<()> {
    Err(not_built("kafka"))
}

/// Checks a Kafka producer (alert, dead-letter or repartition sink)
/// offline (see [`crate::sink::kafka::check_config`]).
#[cfg(feature = "kafka")]
pub fn check_kafka_sink(brokers: &str, properties: &KafkaProperties) -> Result<()> {
    crate::sink::kafka::check_config(brokers, properties)
}

/// Checks a Kafka producer (not built).
#[cfg(not(feature = "kafka"))]
pub fn check_kafka_sink(_brokers: &str, _properties: &KafkaProperties) -> Result<()> {
    Err(not_built("kafka"))
}

/// Checks stage 2's repartition consumer offline.
pub fn check_repartition_source(scaleout: &crate::config::ScaleoutConfig) -> Result<()> {
    check_kafka_source(&repartition_source_config(scaleout))
}

/// Whether Kinesis sources and sinks can be built.
#[cfg(feature = "kinesis")]
pub fn check_kinesis() -> Result<()> {
    Ok(())
}

/// Whether Kinesis sources and sinks can be built (not built).
#[cfg(not(feature = "kinesis"))]
pub fn check_kinesis() -> Result<()> {
    Err(not_built("kinesis"))
}

/// Stage 2's source: the repartition topic as its own consumer group,
/// exporting its lag as `trailwatch_repartition_lag`.
#[cfg(feature = "kafka")]
pub fn kafka_repartition_source(
    scaleout: &crate::config::ScaleoutConfig,
    engine: &Engine,
) -> Result<Box<dyn Source>> {
    let config = repartition_source_config(scaleout);
    let mut source = crate::source::kafka::KafkaSource::new(&config)?;
    source.set_tracker(engine.tracker());
    // Stage 2 drops the windows of revoked partitions: a comeback replays.
    source.keep_replays();
    let lag = source.lag();
    engine.metrics().register_lag(
        crate::metrics::REPARTITION_LAG,
        "Repartition-topic messages stage 2 has not consumed yet, per partition.",
        "partition",
        Arc::new(move || {
            lag.lag_snapshot()
                .into_iter()
                .map(|(_, partition, lag)| (partition.to_string(), lag))
                .collect()
        }),
    );
    Ok(Box::new(source))
}

/// Stage 2's source (not built).
#[cfg(not(feature = "kafka"))]
pub fn kafka_repartition_source(
    _scaleout: &crate::config::ScaleoutConfig,
    _engine: &Engine,
) -> Result<Box<dyn Source>> {
    Err(not_built("kafka"))
}

/// Stage 1's sink: the repartition topic.
#[cfg(feature = "kafka")]
pub fn kafka_partial_sink(
    scaleout: &crate::config::ScaleoutConfig,
) -> Result<Box<dyn PartialSink>> {
    Ok(Box::new(crate::sink::kafka::KafkaPartialSink::new(
        &scaleout.brokers,
        &scaleout.topic,
        &scaleout.properties,
    )?))
}

/// Stage 1's sink (not built).
#[cfg(not(feature = "kafka"))]
pub fn kafka_partial_sink(
    _scaleout: &crate::config::ScaleoutConfig,
) -> Result<Box<dyn PartialSink>> {
    Err(not_built("kafka"))
}

/// A Kafka consumer-group source (not built).
#[cfg(not(feature = "kafka"))]
pub fn kafka_source(_config: &KafkaSourceConfig, _engine: &Engine) -> Result<Box<dyn Source>> {
    Err(not_built("kafka"))
}

/// The Kafka alert sink (idempotent producer, CloudEvents headers).
#[cfg(feature = "kafka")]
pub fn kafka_alert_sink(
    brokers: &str,
    topic: &str,
    properties: &KafkaProperties,
) -> Result<Box<dyn AlertSink>> {
    Ok(Box::new(crate::sink::kafka::KafkaAlertSink::new(
        brokers, topic, properties,
    )?))
}

/// The Kafka alert sink (not built).
#[cfg(not(feature = "kafka"))]
pub fn kafka_alert_sink(
    _brokers: &str,
    _topic: &str,
    _properties: &KafkaProperties,
) -> Result<Box<dyn AlertSink>> {
    Err(not_built("kafka"))
}

/// The Kafka dead-letter sink (original bytes plus reason headers).
#[cfg(feature = "kafka")]
pub fn kafka_dead_letter_sink(
    brokers: &str,
    topic: &str,
    properties: &KafkaProperties,
) -> Result<Box<dyn DeadLetterSink>> {
    Ok(Box::new(crate::sink::kafka::KafkaDeadLetterSink::new(
        brokers, topic, properties,
    )?))
}

/// The Kafka dead-letter sink (not built).
#[cfg(not(feature = "kafka"))]
pub fn kafka_dead_letter_sink(
    _brokers: &str,
    _topic: &str,
    _properties: &KafkaProperties,
) -> Result<Box<dyn DeadLetterSink>> {
    Err(not_built("kafka"))
}

/// A Kinesis source with DynamoDB leases, exporting `MillisBehindLatest`.
#[cfg(feature = "kinesis")]
pub fn kinesis_source(config: &SourceConfig, engine: &Engine) -> Result<Box<dyn Source>> {
    let SourceConfig::Kinesis {
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
        enhanced_fan_out,
        decoder,
        flow_format,
        ..
    } = config
    else {
        return Err(Error::Internal(
            "kinesis_source called with another source".into(),
        ));
    };
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
    if let Some(fan_out) = enhanced_fan_out {
        kinesis.read_mode = crate::source::kinesis::ReadMode::FanOut(
            crate::source::kinesis::FanOutConfig::new(&fan_out.consumer_name),
        );
    }
    let mut source = crate::source::kinesis::KinesisSource::new(kinesis)?;
    source.set_decoding(crate::config::source_decoding(
        *decoder,
        flow_format.as_deref(),
    )?);
    engine.metrics().register_kinesis_source(source.counters());
    let lag = source.lag();
    engine
        .metrics()
        .register_kinesis_millis_behind_latest(Arc::new(move || {
            let lag = lag.lock().unwrap_or_else(|p| p.into_inner());
            lag.iter().map(|(shard, ms)| (shard.clone(), *ms)).collect()
        }));
    Ok(Box::new(source))
}

/// A Kinesis source (not built).
#[cfg(not(feature = "kinesis"))]
pub fn kinesis_source(_config: &SourceConfig, _engine: &Engine) -> Result<Box<dyn Source>> {
    Err(not_built("kinesis"))
}

/// The Kinesis alert sink (PutRecords with per-record retries).
#[cfg(feature = "kinesis")]
pub fn kinesis_alert_sink(config: &SinkConfig) -> Result<Box<dyn AlertSink>> {
    let SinkConfig::Kinesis {
        stream,
        region,
        endpoint_url,
    } = config
    else {
        return Err(Error::Internal(
            "kinesis_alert_sink called with another sink".into(),
        ));
    };
    Ok(Box::new(crate::sink::kinesis::KinesisAlertSink::new(
        &crate::sink::kinesis::KinesisSinkConfig {
            stream: stream.clone(),
            region: region.clone(),
            endpoint_url: endpoint_url.clone(),
        },
    )?))
}

/// The Kinesis alert sink (not built).
#[cfg(not(feature = "kinesis"))]
pub fn kinesis_alert_sink(_config: &SinkConfig) -> Result<Box<dyn AlertSink>> {
    Err(not_built("kinesis"))
}
