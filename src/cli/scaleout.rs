//! `trailwatch run` with a `scaleout` section: the two-stage topology.
//!
//! Stage 1 is an engine in [`Stage::Partials`] mode reading the configured
//! sources into the repartition topic; stage 2 is an engine in
//! [`Stage::Merge`] mode reading the repartition topic (its own consumer
//! group) into the alert sink. `role` picks both (each on its own threads,
//! the default) or one of them. A stop request (SIGTERM/SIGINT) stops
//! both; each drains and commits what is safe, as on the direct path.
//!
//! The metrics endpoint serves every stage that runs, each series
//! labelled `stage="1"` (input, decoding, pre-aggregation, repartition
//! production) or `stage="2"` (repartition consumption and lag, windows,
//! alerts); `/readyz` wants every stage ready.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::{Config, ScaleoutConfig, ScaleoutRole};
use crate::engine::merge::MergeConfig;
use crate::engine::preagg::PreaggConfig;
use crate::engine::{Engine, EngineConfig, RunSummary, Stage};
use crate::error::{Error, Result};
use crate::metrics::exposition::Served;
use crate::rules::RuleSet;

use super::backends;
use super::run::{build_alert_sink, build_dead_letter_sink, build_sources};

/// A name unique to this process, for stage 1's watermark records.
fn producer_name() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "trailwatch".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}.{}.{nanos:x}", std::process::id())
}

/// The stage-1 engine configuration.
pub fn stage1_config(base: &EngineConfig, scaleout: &ScaleoutConfig) -> EngineConfig {
    EngineConfig {
        flush_on_end: false,
        stage: Stage::Partials(PreaggConfig {
            flush_interval: scaleout.flush_interval(),
            heartbeat: scaleout.heartbeat(),
            preaggregate: scaleout.preaggregate,
            max_buffered: 100_000,
            producer: producer_name(),
            evidence: base.evidence,
        }),
        ..base.clone()
    }
}

/// The stage-2 engine configuration.
pub fn stage2_config(base: &EngineConfig, scaleout: &ScaleoutConfig) -> EngineConfig {
    EngineConfig {
        flush_on_end: false,
        stage: Stage::Merge(MergeConfig {
            idle_timeout_ms: scaleout.producer_idle_timeout_ms(base.watermark.idle_timeout_ms),
            warm_up_ms: scaleout.warm_up_ms(),
        }),
        ..base.clone()
    }
}

/// Runs the configured stages until stopped; returns 0 on a clean stop.
pub fn execute(
    config: &Config,
    scaleout: &ScaleoutConfig,
    rules: Arc<RuleSet>,
    stop: Arc<AtomicBool>,
) -> Result<i32> {
    scaleout.validate(&config.sources)?;
    let base = config.engine.to_engine_config(false);
    let stage1 = (scaleout.role != ScaleoutRole::Stage2)
        .then(|| Engine::new(stage1_config(&base, scaleout), Arc::clone(&rules)));
    let stage2 = (scaleout.role != ScaleoutRole::Stage1)
        .then(|| Engine::new(stage2_config(&base, scaleout), Arc::clone(&rules)));
    let served: Vec<Served> = [("1", &stage1), ("2", &stage2)]
        .into_iter()
        .filter_map(|(stage, engine)| {
            engine.as_ref().map(|engine| Served {
                stage: Some(stage),
                metrics: engine.metrics(),
                registry: engine.registry(),
            })
        })
        .collect();
    if served.is_empty() {
        return Err(Error::Internal("scaleout runs no stage".into()));
    }
    let _http = crate::http::HttpServer::start_all(&config.metrics.listen, served)?;
    tracing::info!(role = ?scaleout.role, topic = %scaleout.topic, "trailwatch scale-out starting");
    let results: Vec<Result<RunSummary>> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        if let Some(engine) = &stage1 {
            let sources = build_sources(config, engine)?;
            let sink = backends::kafka_partial_sink(scaleout)?;
            let dead = build_dead_letter_sink(&config.sinks.dead_letter)?;
            handles.push(scope.spawn(move || engine.run_partials(sources, sink, dead)));
        }
        if let Some(engine) = &stage2 {
            let source = backends::kafka_repartition_source(scaleout, engine)?;
            let sink = build_alert_sink(&config.sinks.alerts)?;
            let dead = build_dead_letter_sink(&config.sinks.dead_letter)?;
            handles.push(scope.spawn(move || engine.run(vec![source], sink, dead)));
        }
        // One stop flag for the process: copy it to every engine.
        let engines: Vec<&Engine> = stage1.iter().chain(stage2.iter()).collect();
        loop {
            let finished = handles.iter().any(|h| h.is_finished());
            if finished || stop.load(std::sync::atomic::Ordering::Relaxed) {
                for engine in &engines {
                    engine
                        .stop_handle()
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok::<_, Error>(
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Internal("stage thread panicked".into())))
                })
                .collect(),
        )
    })?;
    for result in results {
        let summary = result?;
        tracing::info!(
            delivered = summary.alerts_delivered,
            elapsed_ms = summary.elapsed.as_millis() as u64,
            "stage stopped"
        );
    }
    Ok(0)
}
