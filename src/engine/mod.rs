//! The engine: wires sources, decode workers, shards and sinks together.
//!
//! ```text
//! source threads ──RawBatch──▶ decode workers ──MatchBatch──▶ shards ──alerts──▶ sink thread
//!        ▲        (by partition)               (hash(rule,key))                      │
//!        └──────────────── commit safe positions ◀── CommitTracker ◀── acks ─────────┘
//! ```
//!
//! Every arrow is a bounded channel carrying batches, so a slow or failed
//! sink pauses intake instead of growing memory. See [`commit`] for the
//! delivery contract and [`watermark`] for event time.

pub mod alarm;
pub mod commit;
pub mod merge;
pub mod partial;
pub mod preagg;
pub mod shard;
pub mod shutdown;
pub mod sliding;
pub mod watermark;
pub mod window;
pub mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use self::commit::CommitTracker;
use self::merge::{MergeConfig, PartialWorker, RemoteWatermarks};
use self::preagg::{FlushedMarks, PartialFlush, PreaggConfig, Preaggregator};
use self::shard::{Emitted, Shard, ShardConfig, ShardMsg};
use self::watermark::{WatermarkConfig, WatermarkTracker};
use self::window::EvidenceLimits;
use self::worker::{DeadLetterBatch, DecodeWorker};
use crate::alert::Alert;
use crate::decode::DecodeConfig;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, SinkCounters};
use crate::rules::RuleSet;
use crate::sink::{AlertSink, DeadLetter, DeadLetterSink, PartialSink};
use crate::source::{PartitionEvent, PartitionRegistry, Poll, RawBatch, Source};

/// Most alerts the sink thread hands to the sink in one call.
const MAX_ALERTS_PER_SEND: usize = 4096;

/// Which part of the pipeline an engine runs (README, "Scaling out").
#[derive(Debug, Clone, Default)]
pub enum Stage {
    /// Everything in one process: input to alerts (no repartition topic).
    #[default]
    Direct,
    /// Stage 1: decode, match, pre-aggregate; partials go to the
    /// repartition topic ([`Engine::run_partials`]).
    Partials(PreaggConfig),
    /// Stage 2: the repartition topic is the input; partials are merged
    /// into windows, evaluated and alerted on ([`Engine::run`]).
    Merge(MergeConfig),
}

/// What the engine's shards feed.
enum Output {
    Alerts(Box<dyn AlertSink>),
    Partials(Box<dyn PartialSink>),
}

/// The intake worker of one decode thread.
enum Intake {
    Events(Box<DecodeWorker>),
    Partials(Box<PartialWorker>),
}

impl Intake {
    /// Takes one raw batch; its output may wait for [`Intake::flush`].
    fn absorb(&mut self, batch: RawBatch) -> bool {
        match self {
            Intake::Events(worker) => worker.absorb(batch),
            Intake::Partials(worker) => worker.process(batch),
        }
    }

    /// Sends whatever [`Intake::absorb`] held back.
    fn flush(&mut self) -> bool {
        match self {
            Intake::Events(worker) => worker.flush(),
            Intake::Partials(_) => true,
        }
    }

    fn tick(&mut self) -> bool {
        match self {
            Intake::Events(worker) => worker.tick(),
            Intake::Partials(worker) => worker.tick(),
        }
    }
}

/// Default cap on window state bytes, over all shards: 1 GiB. Open
/// windows alone may reach `max_open_windows` (4,000,000) times a few
/// KiB when they keep evidence (about 2.5 KB per CloudTrail window with
/// its samples), so without a byte cap a key flood would outgrow the
/// shipped pod's 2 GiB memory limit long before the window cap sheds.
/// The accounted bytes track resident memory closely (BENCHMARKS.md,
/// "State cap against resident memory").
pub const DEFAULT_MAX_STATE_BYTES: usize = 1 << 30;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Shard workers (default: available cores).
    pub shards: usize,
    /// Decode workers (default: available cores).
    pub decoders: usize,
    /// Capacity, in batches, of every channel.
    pub channel_batches: usize,
    pub watermark: WatermarkConfig,
    /// Cap on open window aggregates, over all shards.
    pub max_open_windows: usize,
    /// Cap on the approximate bytes of window state, over all shards
    /// (default [`DEFAULT_MAX_STATE_BYTES`]). Each shard gets an equal
    /// share. Beyond it the oldest windows close early: they are still
    /// evaluated, so eager alerts already sent stand
    /// and window-close alerts fire early; each shed window is counted in
    /// the `shed` counter (`trailwatch_windows_shed_total` on `/metrics`).
    pub max_state_bytes: usize,
    pub evidence: EvidenceLimits,
    pub decode: DecodeConfig,
    /// Close all windows when every source is exhausted (finite input:
    /// replay, or `run` over files without follow). A stop request never
    /// flushes: open windows are rebuilt from uncommitted input on restart.
    pub flush_on_end: bool,
    /// How often sources commit safe positions.
    pub commit_interval: Duration,
    /// How long to wait for the pipeline to drain on shutdown.
    pub shutdown_deadline: Duration,
    /// Direct (default), stage 1 or stage 2 of a scaled-out deployment.
    pub stage: Stage,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        EngineConfig {
            shards: cores,
            decoders: cores,
            channel_batches: 64,
            watermark: WatermarkConfig::default(),
            max_open_windows: 4_000_000,
            max_state_bytes: DEFAULT_MAX_STATE_BYTES,
            evidence: EvidenceLimits::default(),
            decode: DecodeConfig::default(),
            flush_on_end: true,
            commit_interval: Duration::from_secs(5),
            shutdown_deadline: Duration::from_secs(30),
            stage: Stage::Direct,
        }
    }
}

/// What a run did, for the replay summary and tests.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub elapsed: Duration,
    pub alerts_delivered: u64,
}

/// A configured engine, ready to run sources into sinks.
pub struct Engine {
    config: EngineConfig,
    rules: Arc<RuleSet>,
    metrics: Arc<Metrics>,
    tracker: CommitTracker,
    watermark: Arc<WatermarkTracker>,
    registry: Arc<PartitionRegistry>,
    stop: Arc<AtomicBool>,
    /// The shutdown deadline, fixed when a stop request is first seen.
    shutdown: shutdown::ShutdownClock,
    /// Set when a source ended with an error (no end-of-input flush then).
    source_failed: AtomicBool,
    /// Stage 2 only: the producers' watermarks.
    remote_watermarks: Option<Arc<RemoteWatermarks>>,
}

impl Engine {
    /// An engine running `rules` with `config`.
    pub fn new(config: EngineConfig, rules: Arc<RuleSet>) -> Engine {
        // Stage 1 runs one pre-aggregator: all its partials flush at once,
        // so input commits land on flush boundaries (`partial` module docs).
        let shards = match config.stage {
            Stage::Partials(_) => 1,
            Stage::Direct | Stage::Merge(_) => config.shards.max(1),
        };
        let decoders = config.decoders.max(1);
        let rule_ids = rules.rules().iter().map(|r| r.id.clone()).collect();
        let tracker = CommitTracker::new(shards);
        let remote_watermarks = match &config.stage {
            Stage::Merge(merge) => Some(Arc::new(RemoteWatermarks::new(*merge, tracker.clone()))),
            Stage::Direct | Stage::Partials(_) => None,
        };
        Engine {
            metrics: Metrics::new(decoders, shards, rule_ids),
            tracker,
            remote_watermarks,
            watermark: Arc::new(WatermarkTracker::new(config.watermark)),
            registry: Arc::new(PartitionRegistry::default()),
            stop: Arc::new(AtomicBool::new(false)),
            shutdown: shutdown::ShutdownClock::default(),
            source_failed: AtomicBool::new(false),
            config: EngineConfig {
                shards,
                decoders,
                ..config
            },
            rules,
        }
    }

    /// The engine's metrics (shared with the metrics endpoint).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The partition registry (names for metrics and dead letters).
    pub fn registry(&self) -> Arc<PartitionRegistry> {
        Arc::clone(&self.registry)
    }

    /// Whether this engine is a stage of a scaled-out deployment.
    pub fn is_scaled_out(&self) -> bool {
        !matches!(self.config.stage, Stage::Direct)
    }

    /// The commit tracker.
    pub fn tracker(&self) -> CommitTracker {
        self.tracker.clone()
    }

    /// A flag that, once set, makes sources stop and the pipeline drain.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Runs until every source ends (or stop is requested) and the
    /// pipeline has drained. For the direct path and stage 2.
    pub fn run(
        &self,
        sources: Vec<Box<dyn Source>>,
        alert_sink: Box<dyn AlertSink>,
        dead_letter_sink: Box<dyn DeadLetterSink>,
    ) -> Result<RunSummary> {
        if matches!(self.config.stage, Stage::Partials(_)) {
            return Err(Error::Internal(
                "a stage-1 engine writes partials: use run_partials".into(),
            ));
        }
        self.run_inner(sources, Output::Alerts(alert_sink), dead_letter_sink)
    }

    /// Runs stage 1: like [`Engine::run`], with partials written to
    /// `partial_sink` instead of alerts (`alerts_delivered` then counts
    /// partials).
    pub fn run_partials(
        &self,
        sources: Vec<Box<dyn Source>>,
        partial_sink: Box<dyn PartialSink>,
        dead_letter_sink: Box<dyn DeadLetterSink>,
    ) -> Result<RunSummary> {
        if !matches!(self.config.stage, Stage::Partials(_)) {
            return Err(Error::Internal(
                "only a stage-1 engine writes partials".into(),
            ));
        }
        self.run_inner(sources, Output::Partials(partial_sink), dead_letter_sink)
    }

    fn run_inner(
        &self,
        sources: Vec<Box<dyn Source>>,
        output: Output,
        dead_letter_sink: Box<dyn DeadLetterSink>,
    ) -> Result<RunSummary> {
        let started = Instant::now();
        let capacity = self.config.channel_batches.max(1);
        let (shard_txs, shard_rxs): (Vec<Sender<ShardMsg>>, Vec<Receiver<ShardMsg>>) =
            (0..self.config.shards).map(|_| bounded(capacity)).unzip();
        let (decode_txs, decode_rxs): (Vec<Sender<RawBatch>>, Vec<Receiver<RawBatch>>) =
            (0..self.config.decoders).map(|_| bounded(capacity)).unzip();
        let (alert_tx, alert_rx) = bounded::<Vec<Emitted>>(capacity);
        let (partial_tx, partial_rx) = bounded::<PartialFlush>(capacity);
        let (dead_tx, dead_rx) = bounded::<DeadLetterBatch>(capacity);
        let (done_tx, done_rx) = bounded::<()>(0);
        let per_shard_cap = (self.config.max_open_windows / self.config.shards).max(1);
        // Readiness (`/readyz`): every source ready and a batch consumed.
        self.metrics.health.begin(sources.len());
        let per_shard_bytes = match self.config.max_state_bytes {
            usize::MAX => usize::MAX,
            total => (total / self.config.shards).max(1),
        };

        // Stage 1: what each pre-aggregator has flushed, per input partition.
        let flushed = Arc::new(FlushedMarks::new(self.config.shards));
        std::thread::scope(|scope| -> Result<RunSummary> {
            let sink_builder = std::thread::Builder::new().name("tw-sink".into());
            let sink_handle = match output {
                Output::Alerts(sink) => sink_builder
                    .spawn_scoped(scope, || self.run_alert_sink(alert_rx, sink, done_tx)),
                Output::Partials(sink) => sink_builder
                    .spawn_scoped(scope, || self.run_partial_sink(partial_rx, sink, done_tx)),
            }
            .map_err(|e| Error::Internal(format!("cannot spawn sink thread: {e}")))?;
            let dlq_handle = std::thread::Builder::new()
                .name("tw-dead-letter".into())
                .spawn_scoped(scope, || {
                    self.run_dead_letter_sink(dead_rx, dead_letter_sink)
                })
                .map_err(|e| Error::Internal(format!("cannot spawn dead-letter thread: {e}")))?;
            for (index, rx) in shard_rxs.into_iter().enumerate() {
                if let Stage::Partials(preagg) = &self.config.stage {
                    let preaggregator = Preaggregator::new(
                        index,
                        Arc::clone(&self.rules),
                        PreaggConfig {
                            evidence: self.config.evidence,
                            ..preagg.clone()
                        },
                        self.tracker.clone(),
                        Arc::clone(&self.metrics.shards[index]),
                        Arc::clone(&self.registry),
                        Arc::clone(&self.watermark),
                    )
                    .with_siblings(Arc::clone(&flushed));
                    let out = partial_tx.clone();
                    std::thread::Builder::new()
                        .name(format!("tw-preagg-{index}"))
                        .spawn_scoped(scope, move || {
                            let _span = tracing::info_span!("preagg", index).entered();
                            preaggregator.run(rx, out)
                        })
                        .map_err(|e| Error::Internal(format!("cannot spawn shard thread: {e}")))?;
                    continue;
                }
                let shard = Shard::new(
                    index,
                    Arc::clone(&self.rules),
                    ShardConfig {
                        max_open_windows: per_shard_cap,
                        max_state_bytes: per_shard_bytes,
                        evidence: self.config.evidence,
                        eager_sliding: !self.config.watermark.replay,
                        drop_revoked: matches!(self.config.stage, Stage::Merge(_)),
                    },
                    self.tracker.clone(),
                    Arc::clone(&self.metrics.shards[index]),
                )
                .with_repartition_counters(Arc::clone(&self.metrics.repartition));
                let out = alert_tx.clone();
                std::thread::Builder::new()
                    .name(format!("tw-shard-{index}"))
                    .spawn_scoped(scope, move || {
                        let _span = tracing::info_span!("shard", index).entered();
                        shard.run(rx, out)
                    })
                    .map_err(|e| Error::Internal(format!("cannot spawn shard thread: {e}")))?;
            }
            drop(alert_tx);
            drop(partial_tx);
            let mut decode_handles = Vec::new();
            for (index, rx) in decode_rxs.into_iter().enumerate() {
                let mut worker = self.intake_worker(index, &shard_txs, &dead_tx);
                let handle = std::thread::Builder::new()
                    .name(format!("tw-decode-{index}"))
                    .spawn_scoped(scope, move || {
                        let _span = tracing::info_span!("decode", index).entered();
                        loop {
                            match rx.recv_timeout(Duration::from_millis(500)) {
                                Ok(batch) => {
                                    // Matches wait for more input only
                                    // while more is queued (a backlog).
                                    if !worker.absorb(batch) || (rx.is_empty() && !worker.flush()) {
                                        return;
                                    }
                                }
                                Err(RecvTimeoutError::Timeout) => {
                                    if !worker.tick() {
                                        return;
                                    }
                                }
                                Err(RecvTimeoutError::Disconnected) => {
                                    worker.flush();
                                    return;
                                }
                            }
                        }
                    })
                    .map_err(|e| Error::Internal(format!("cannot spawn decode thread: {e}")))?;
                decode_handles.push(handle);
            }
            drop(dead_tx);
            let mut source_handles = Vec::new();
            for source in sources {
                let txs = decode_txs.clone();
                let done = done_rx.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("tw-source-{}", source.name()))
                    .spawn_scoped(scope, move || self.run_source(source, txs, done))
                    .map_err(|e| Error::Internal(format!("cannot spawn source thread: {e}")))?;
                source_handles.push(handle);
            }
            drop(decode_txs);
            drop(done_rx);
            let mut first_error = None;
            // Decode workers drain their channels and exit once every source
            // thread has dropped its senders (sources then wait for the
            // drain to finish before their final commit).
            for handle in decode_handles {
                if handle.join().is_err() {
                    first_error.get_or_insert(Error::Internal("decode thread panicked".into()));
                }
            }
            let sources_failed = self.source_failed.load(Ordering::Relaxed);
            let exhausted =
                !self.stop.load(Ordering::Relaxed) && !sources_failed && first_error.is_none();
            if exhausted && self.config.flush_on_end {
                // Every period up to the last event time has passed: each
                // shard evaluates its alarm keys up to there alike (a
                // watermark at that time), then closes every window.
                let end = match self.config.stage {
                    Stage::Direct => self.watermark.max_event_ms(),
                    _ => None,
                };
                for shard in &shard_txs {
                    let _ = shard.send(ShardMsg::FlushAll { until: end });
                }
            }
            drop(shard_txs);
            for handle in source_handles {
                match handle.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        first_error.get_or_insert(e);
                    }
                    Err(_) => {
                        first_error.get_or_insert(Error::Internal("source thread panicked".into()));
                    }
                }
            }
            let delivered = match sink_handle.join() {
                Ok(result) => result?,
                Err(_) => return Err(Error::Internal("sink thread panicked".into())),
            };
            match dlq_handle.join() {
                Ok(result) => result?,
                Err(_) => return Err(Error::Internal("dead-letter thread panicked".into())),
            }
            if let Some(error) = first_error {
                return Err(error);
            }
            Ok(RunSummary {
                elapsed: started.elapsed(),
                alerts_delivered: delivered,
            })
        })
    }

    /// The intake worker of decode thread `index`: the event decoder, or
    /// in stage 2 the partial reader.
    fn intake_worker(
        &self,
        index: usize,
        shard_txs: &[Sender<ShardMsg>],
        dead_tx: &Sender<DeadLetterBatch>,
    ) -> Intake {
        if let Some(watermarks) = &self.remote_watermarks {
            return Intake::Partials(Box::new(PartialWorker::new(
                Arc::clone(&self.rules),
                self.tracker.clone(),
                shard_txs.to_vec(),
                Arc::clone(watermarks),
                Arc::clone(&self.metrics.decoders[index]),
                Arc::clone(&self.metrics),
                Arc::clone(&self.registry),
                dead_tx.clone(),
            )));
        }
        let worker = DecodeWorker::new(
            Arc::clone(&self.rules),
            self.config.decode.clone(),
            Arc::clone(&self.watermark),
            self.tracker.clone(),
            shard_txs.to_vec(),
            Arc::clone(&self.metrics.decoders[index]),
            Arc::clone(&self.metrics),
            Arc::clone(&self.registry),
            dead_tx.clone(),
            self.config.evidence.max_sample_bytes,
        );
        Intake::Events(Box::new(match self.config.stage {
            Stage::Partials(_) => worker.with_partition_reports(),
            Stage::Direct | Stage::Merge(_) => worker,
        }))
    }

    /// Stage 1's sink thread: writes each flush to the repartition topic,
    /// retrying like the alert sink, then releases its input holds.
    fn run_partial_sink(
        &self,
        rx: Receiver<PartialFlush>,
        mut sink: Box<dyn PartialSink>,
        _done: Sender<()>,
    ) -> Result<u64> {
        let span = tracing::info_span!("sink", component = sink.name());
        let _entered = span.enter();
        sink.watch_shutdown(&self.shutdown);
        let counters = &self.metrics.repartition;
        let mut delivered = 0u64;
        for flush in rx.iter() {
            let partials = flush.partials.len() as u64;
            let bytes = self.send_retrying("partials", &counters.sink, partials, || {
                sink.send(&flush.partials, flush.watermark.as_ref())
            })?;
            counters.produced.fetch_add(partials, Ordering::Relaxed);
            counters.produced_bytes.fetch_add(bytes, Ordering::Relaxed);
            if flush.watermark.is_some() {
                counters.watermarks_produced.fetch_add(1, Ordering::Relaxed);
            }
            delivered += partials;
            // Dropping `flush` releases the input holds (acknowledged).
        }
        Ok(delivered)
    }

    fn run_source(
        &self,
        mut source: Box<dyn Source>,
        decoders: Vec<Sender<RawBatch>>,
        done: Receiver<()>,
    ) -> Result<()> {
        let span = tracing::info_span!("source", component = source.name());
        let _entered = span.enter();
        let mut last_commit = Instant::now();
        let mut was_ready = false;
        let result = loop {
            if self.stop.load(Ordering::Relaxed) {
                self.shutdown.start(self.config.shutdown_deadline);
                tracing::info!("stop requested, intake stopped");
                break Ok(());
            }
            let polled = match source.poll(&self.registry) {
                Ok(polled) => polled,
                Err(e) => break Err(e),
            };
            // Once per poll, never per event. A source that reports ready
            // has consumed its input as far as it goes (a quiet topic at its
            // end counts), so the pod becomes ready without traffic.
            let source_ready = source.is_ready();
            self.metrics
                .health
                .observe_source(&mut was_ready, source_ready);
            if source_ready {
                self.metrics.health.consumed();
            }
            // Before the batch goes out: an assigned partition must hold
            // the watermark before any record can advance it.
            for event in source.take_partition_events(&self.registry) {
                match event {
                    PartitionEvent::Assigned(partition) => {
                        self.watermark.hold(partition, crate::source::now_ms());
                        if let Some(lateness_ms) = source.allowed_lateness_ms() {
                            self.watermark.set_lateness(partition, lateness_ms);
                        }
                    }
                    PartitionEvent::Revoked(partition) => self.watermark.remove(partition),
                    PartitionEvent::Exists(partition) => self.watermark.exists(partition),
                }
            }
            match polled {
                Poll::Batch(mut batch) => {
                    // Stamped here, on the thread whose polls run the
                    // rebalance callbacks: no revocation can come between.
                    batch.generation = self.tracker.generation(batch.partition);
                    let target = batch.partition as usize % decoders.len();
                    if decoders[target].send(batch).is_err() {
                        break Ok(());
                    }
                    self.metrics.health.consumed();
                }
                Poll::Idle => {}
                Poll::End => break Ok(()),
            }
            if last_commit.elapsed() >= self.config.commit_interval {
                last_commit = Instant::now();
                if let Err(e) = source.commit(&self.tracker.safe_positions()) {
                    tracing::warn!(error = %e, "commit failed, will retry");
                }
            }
        };
        if result.is_err() {
            self.source_failed.store(true, Ordering::Relaxed);
        }
        drop(decoders);
        // Wait for the pipeline to drain (the sink thread drops `done`),
        // then commit what is now safe.
        let _ = done.recv_timeout(self.config.shutdown_deadline);
        if let Err(e) = source.commit(&self.tracker.safe_positions()) {
            tracing::warn!(error = %e, "final commit failed");
        }
        result
    }

    fn run_alert_sink(
        &self,
        rx: Receiver<Vec<Emitted>>,
        mut sink: Box<dyn AlertSink>,
        _done: Sender<()>,
    ) -> Result<u64> {
        let span = tracing::info_span!("sink", component = sink.name());
        let _entered = span.enter();
        sink.watch_shutdown(&self.shutdown);
        sink.count_into(&self.metrics);
        let mut delivered = 0u64;
        while let Ok(mut emitted) = rx.recv() {
            // Coalesce what is already queued: every shard batch sends its
            // own (often one-alert) vector, and a sink that waits for the
            // broker's acknowledgement would otherwise pay one round trip
            // per vector.
            while emitted.len() < MAX_ALERTS_PER_SEND {
                match rx.try_recv() {
                    Ok(more) => emitted.extend(more),
                    Err(_) => break,
                }
            }
            let alerts: Vec<Alert> = emitted.iter().map(|e| e.alert.clone()).collect();
            let count = alerts.len() as u64;
            self.send_retrying("alerts", &self.metrics.sink, count, || sink.send(&alerts))?;
            let now = crate::source::now_ms();
            for e in &emitted {
                self.metrics
                    .alerts
                    .inc(usize::from(e.rule), e.alert.activity);
                let lag = now.saturating_sub(e.alert.time_ms()).max(0) as u64;
                Metrics::record(&self.metrics.event_time_lag_ms, lag);
            }
            delivered += alerts.len() as u64;
            // Dropping `emitted` releases the alerts' commit holds.
        }
        Ok(delivered)
    }

    /// Sends with the output retry policy (`sink` module docs): a retryable
    /// error is retried with capped exponential backoff while intake pauses
    /// (backpressure); once a stop is requested, only until the shutdown
    /// deadline. A non-retryable error, or that deadline, abandons the
    /// output ([`Engine::abandon_output`]). Counts `items` as sent once
    /// `send` succeeds, and each failure and retry.
    fn send_retrying<T>(
        &self,
        output: &'static str,
        counters: &SinkCounters,
        items: u64,
        mut send: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let error = match send() {
                Ok(sent) => {
                    counters.sent.fetch_add(items, Ordering::Relaxed);
                    return Ok(sent);
                }
                Err(error) => error,
            };
            counters.errors.fetch_add(1, Ordering::Relaxed);
            if !error.class().is_retryable() {
                return Err(self.abandon_output(output, error));
            }
            if self.stop.load(Ordering::Relaxed) {
                let deadline = self.shutdown.start(self.config.shutdown_deadline);
                if Instant::now() >= deadline {
                    let error = Error::Sink(format!("{output}: giving up at shutdown: {error}"));
                    return Err(self.abandon_output(output, error));
                }
            }
            tracing::warn!(output, error = %error, retry_in_ms = backoff.as_millis() as u64, "output failed, retrying");
            counters.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// An output gives up: what it still holds will not be delivered.
    /// Freezes the commit tracker *before* those holds drop, so nothing is
    /// committed past them (a restart replays them), and stops intake, so
    /// the pipeline drains and the run ends with `error`.
    fn abandon_output(&self, output: &'static str, error: Error) -> Error {
        self.tracker.freeze();
        self.stop.store(true, Ordering::Relaxed);
        tracing::error!(output, error = %error, "output gave up: intake stopped, nothing more is committed");
        error
    }

    fn run_dead_letter_sink(
        &self,
        rx: Receiver<DeadLetterBatch>,
        mut sink: Box<dyn DeadLetterSink>,
    ) -> Result<()> {
        sink.watch_shutdown(&self.shutdown);
        // Dropping `_hold` after the send acknowledges the batch.
        for (mut records, _hold) in rx.iter() {
            for record in &mut records {
                self.fit_dead_letter(sink.as_ref(), record);
            }
            let count = records.len() as u64;
            self.send_retrying("dead letters", &self.metrics.dead_letter, count, || {
                sink.send(&records)
            })?;
        }
        Ok(())
    }

    /// Cuts a dead letter too large for `sink` (`sink` module docs, "Dead
    /// letters that do not fit"), counting and logging each cut.
    fn fit_dead_letter(&self, sink: &dyn DeadLetterSink, record: &mut DeadLetter) {
        let original_bytes = record.bytes.len();
        if !sink.fit(record) {
            return;
        }
        self.metrics
            .dead_letters_truncated
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            sink = sink.name(),
            source = %record.partition,
            offset = record.offset,
            reason = record.reason,
            original_bytes,
            kept_bytes = record.bytes.len(),
            "dead letter too large for its output, truncated: read the whole record at its source"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory limit of the shipped pod, in bytes.
    fn pod_memory_limit() -> usize {
        let manifest = include_str!("../../k8s/base/deployment.yaml");
        let limits = manifest.split("limits:").nth(1).expect("a limits block");
        let memory = limits
            .lines()
            .find_map(|l| l.trim().strip_prefix("memory:"))
            .expect("a memory limit")
            .trim();
        let gib: usize = memory.strip_suffix("Gi").expect("in Gi").parse().unwrap();
        gib << 30
    }

    /// A key flood sheds by bytes before the pod is killed for memory: the
    /// default state cap leaves half the pod's limit for everything else
    /// (raw batches in flight, channels, the allocator's slack).
    #[test]
    fn the_default_state_cap_fits_the_shipped_pod() {
        let cap = EngineConfig::default().max_state_bytes;
        let limit = pod_memory_limit();
        assert!(
            cap <= limit / 2,
            "max_state_bytes defaults to {cap} B, the pod may use {limit} B"
        );
    }
}
