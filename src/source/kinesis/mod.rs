//! Kinesis Data Streams source with DynamoDB lease coordination.
//!
//! # Contract
//!
//! Each Kinesis record's data bytes become one engine record; the decoder
//! handles KPL aggregates and CloudWatch Logs envelopes per record (a bad
//! aggregate is dead-lettered by the engine). Shard `S` of stream `T` is
//! partition `registry.id("kinesis", "T/S")`.
//!
//! **Offsets.** Sequence numbers are big decimal strings, so the engine
//! offset of a record is a per-shard ordinal and the source keeps ordinal
//! → sequence number for checkpoints ([`checkpoint`]). A checkpoint is the
//! sequence number of the last record at or below the engine's safe
//! position (GUIDE §2), written to the shard's lease row under the lease's
//! fencing counter; reading resumes after it. A closed shard read to its
//! end and fully safe is checkpointed `SHARD_END`, which frees its
//! children.
//!
//! **Leases** ([`lease`], [`coordinator`]): several replicas share a
//! stream; each reads only shards whose lease it holds, stops reading a
//! shard before another worker may take it, and never checkpoints a shard
//! it no longer holds. Input stays at-least-once across takeovers: the new
//! owner re-reads from the last checkpoint.
//!
//! **Threads.** [`Source::poll`] is synchronous; the source runs a small
//! tokio runtime of its own where the coordinator and one reader task per
//! held shard run, feeding a bounded channel that `poll` drains.
//!
//! **Readers.** [`ReadMode`] picks how a held shard is read: GetRecords
//! polling ([`shards::Reader`], the default) or enhanced fan-out
//! (SubscribeToShard through a registered stream consumer,
//! [`fanout::FanOutReader`]). Both send the same [`ReaderMsg`]s under the
//! same lease rules, so checkpoints, leases and resharding do not depend
//! on the mode.
//!
//! **Lag.** `MillisBehindLatest` per shard is published in
//! [`KinesisSource::lag`] for the metrics endpoint; while a shard's reads
//! fail, its lag keeps growing from the last successful read
//! ([`shards::Staleness`]). Failed reads, lost leases, renew and
//! checkpoint failures, ended gone shards and fan-out consumer
//! re-registration failures are counted in [`KinesisSource::counters`].
//!
//! **Watermark.** Every newly held lease is announced to the engine
//! ([`Source::take_partition_events`]) before the next batch goes out, so
//! the shard holds the watermark until its records arrive; readers report
//! when they reach the shard's tip (`MillisBehindLatest` 0, sent with no
//! record when only that changed) and when a closed shard ends, which is
//! when a shard may stop holding it (see [`crate::engine::watermark`]).

pub mod checkpoint;
pub mod coordinator;
pub mod fanout;
pub mod lease;
pub mod pacing;
pub mod shards;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use self::checkpoint::{ShardProgress, SHARD_END};
use self::coordinator::{ReaderKind, Shared};
use self::lease::LeaseTable;
use self::shards::ReaderMsg;
use super::{PartitionEvent, PartitionId, PartitionRegistry, Poll, RawBatch, Source};
use crate::error::{Error, Result};
use crate::metrics::KinesisSourceCounters;

/// Shard id → `MillisBehindLatest` of its last GetRecords.
pub type LagSnapshot = Arc<Mutex<BTreeMap<String, i64>>>;

/// How long one `poll` waits for a batch before reporting idleness.
const POLL_WAIT: Duration = Duration::from_millis(200);
/// Reader → source channel capacity, in GetRecords responses.
const CHANNEL_BATCHES: usize = 16;

/// How held shards are read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// GetRecords polling within the per-shard limits.
    #[default]
    Polling,
    /// Enhanced fan-out: SubscribeToShard through a stream consumer.
    FanOut(FanOutConfig),
}

/// Settings of enhanced fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOutConfig {
    /// Stream consumer shared by every replica; registered on start
    /// unless it exists.
    pub consumer_name: String,
    /// A reader ends a subscription itself after this long (the service
    /// ends them after five minutes); default 5 min 10 s.
    pub subscription_limit: Duration,
}

impl FanOutConfig {
    /// Fan-out through consumer `consumer_name`, with the default limit.
    pub fn new(consumer_name: &str) -> FanOutConfig {
        FanOutConfig {
            consumer_name: consumer_name.to_string(),
            subscription_limit: Duration::from_secs(310),
        }
    }
}

/// Settings of the Kinesis source.
#[derive(Debug, Clone)]
pub struct KinesisSourceConfig {
    pub stream: String,
    /// AWS region; the standard chain decides when absent.
    pub region: Option<String>,
    /// Endpoint override (local servers), used for Kinesis and DynamoDB.
    pub endpoint_url: Option<String>,
    /// Override for DynamoDB only (defaults to `endpoint_url`).
    pub dynamodb_endpoint_url: Option<String>,
    pub lease_table: String,
    pub worker_id: String,
    pub lease_duration: Duration,
    /// GetRecords `Limit` (at most 10,000).
    pub max_records: i32,
    /// Delay between GetRecords calls on a caught-up shard.
    pub poll_interval: Duration,
    /// Period of ListShards refreshes.
    pub shard_sync_interval: Duration,
    /// Polling (default) or enhanced fan-out.
    pub read_mode: ReadMode,
}

impl KinesisSourceConfig {
    /// Defaults for `stream`: lease table `trailwatch-<stream>`, worker id
    /// from `POD_NAME`/`HOSTNAME`, 10 s leases, 10,000 records a call.
    pub fn new(stream: &str) -> KinesisSourceConfig {
        KinesisSourceConfig {
            stream: stream.to_string(),
            region: None,
            endpoint_url: None,
            dynamodb_endpoint_url: None,
            lease_table: format!("trailwatch-{stream}"),
            worker_id: default_worker_id(),
            lease_duration: Duration::from_secs(10),
            max_records: 10_000,
            poll_interval: Duration::from_secs(1),
            shard_sync_interval: Duration::from_secs(60),
            read_mode: ReadMode::Polling,
        }
    }
}

/// `POD_NAME`, else `HOSTNAME`, else `trailwatch-<pid>`.
pub fn default_worker_id() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.is_empty())
        .unwrap_or_else(|| format!("trailwatch-{}", std::process::id()))
}

/// Loads the standard AWS configuration (env, profile, IRSA web identity)
/// with optional region and endpoint overrides.
pub async fn load_aws_config(
    region: Option<&str>,
    endpoint_url: Option<&str>,
) -> aws_config::SdkConfig {
    // A hung connection must not stall a reader or a lease renew forever.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_secs(10))
        .build();
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts);
    match region {
        Some(region) => loader = loader.region(aws_config::Region::new(region.to_string())),
        // Local servers accept any region; the SDK needs one.
        None if endpoint_url.is_some() => {
            loader = loader.region(aws_config::Region::new("us-east-1"))
        }
        None => {}
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Builds a small runtime for a source or sink thread.
pub fn runtime(threads: usize) -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("tw-kinesis")
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot build tokio runtime: {e}")))
}

/// Per-shard state kept by the polling thread.
#[derive(Default)]
struct ShardState {
    partition: Option<PartitionId>,
    generation: Option<u64>,
    progress: ShardProgress,
}

/// The Kinesis source (see the module docs).
pub struct KinesisSource {
    runtime: Runtime,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<ReaderMsg>,
    coordinator: tokio::task::JoinHandle<()>,
    shards: HashMap<String, ShardState>,
    release_on_drop: bool,
    /// The source's decoding settings, attached to every batch.
    decoding: Option<Arc<super::SourceDecoding>>,
    /// Held shards (and lease generation) announced to the engine.
    announced: HashMap<String, u64>,
}

impl KinesisSource {
    /// Connects, creates the lease table if needed, discovers shards and
    /// starts the lease coordinator.
    pub fn new(config: KinesisSourceConfig) -> Result<KinesisSource> {
        crate::config::check_kinesis_source(
            &config.stream,
            config.max_records,
            config.lease_duration,
        )?;
        if let ReadMode::FanOut(fan_out) = &config.read_mode {
            crate::config::EnhancedFanOutConfig {
                consumer_name: fan_out.consumer_name.clone(),
            }
            .validate()?;
            if fan_out.subscription_limit < Duration::from_secs(1) {
                return Err(Error::Config(
                    "kinesis source: the fan-out subscription limit must be at least 1s".into(),
                ));
            }
        }
        let runtime = runtime(2)?;
        let (kinesis, dynamodb) = runtime.block_on(async {
            let sdk =
                load_aws_config(config.region.as_deref(), config.endpoint_url.as_deref()).await;
            let dynamo_sdk = match &config.dynamodb_endpoint_url {
                Some(url) => load_aws_config(config.region.as_deref(), Some(url)).await,
                None => sdk.clone(),
            };
            (
                aws_sdk_kinesis::Client::new(&sdk),
                aws_sdk_dynamodb::Client::new(&dynamo_sdk),
            )
        });
        let counters = Arc::new(KinesisSourceCounters::default());
        let reader_kind = match &config.read_mode {
            ReadMode::Polling => ReaderKind::Polling,
            ReadMode::FanOut(fan_out) => {
                let consumer = runtime.block_on(fanout::Consumer::register(
                    &kinesis,
                    &config.stream,
                    &fan_out.consumer_name,
                    Arc::clone(&counters),
                ))?;
                tracing::info!(consumer = %consumer.arn(), "kinesis source reads through enhanced fan-out");
                ReaderKind::FanOut {
                    consumer: Arc::new(consumer),
                    subscription_limit: fan_out.subscription_limit,
                }
            }
        };
        let table = LeaseTable::new(dynamodb, &config.lease_table, &config.worker_id);
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        tracing::info!(stream = %config.stream, worker = %config.worker_id, table = %config.lease_table, "kinesis source starting");
        let shared = Arc::new(Shared {
            config,
            kinesis,
            reader_kind,
            table,
            held: Mutex::new(HashMap::new()),
            write_lock: tokio::sync::Mutex::new(()),
            read_to_end: Mutex::new(HashSet::new()),
            lag: shards::new_lag_snapshot(),
            polled: Arc::new(AtomicBool::new(false)),
            balanced: AtomicBool::new(false),
            wake: Arc::new(tokio::sync::Notify::new()),
            counters,
            base: Instant::now(),
            next_generation: AtomicU64::new(1),
            tx,
        });
        runtime.block_on(async {
            shared.table.ensure_table().await?;
            coordinator::sync_shards(&shared).await
        })?;
        let coordinator = runtime.spawn(coordinator::run(Arc::clone(&shared)));
        Ok(KinesisSource {
            runtime,
            shared,
            rx,
            coordinator,
            shards: HashMap::new(),
            release_on_drop: true,
            decoding: None,
            announced: HashMap::new(),
        })
    }

    /// Attaches the source's decoding settings (forced decoder, flow
    /// format) to every batch it hands out.
    pub fn set_decoding(&mut self, decoding: Option<super::SourceDecoding>) {
        self.decoding = decoding.map(Arc::new);
    }

    /// Per-shard `MillisBehindLatest`, shared with the metrics endpoint.
    pub fn lag(&self) -> LagSnapshot {
        Arc::clone(&self.shared.lag)
    }

    /// The source's failure counters, for the metrics endpoint.
    pub fn counters(&self) -> Arc<KinesisSourceCounters> {
        Arc::clone(&self.shared.counters)
    }

    /// A handle listing the shards this worker holds leases for.
    pub fn held_shards_handle(&self) -> HeldShards {
        HeldShards(Arc::clone(&self.shared))
    }

    /// Whether leases are released when the source is dropped (default
    /// yes, for a graceful hand-over). Tests turn it off to simulate a
    /// crashed replica, whose leases must expire instead.
    pub fn set_release_on_drop(&mut self, release: bool) {
        self.release_on_drop = release;
    }

    fn partition_name(&self, shard: &str) -> String {
        format!("{}/{}", self.shared.config.stream, shard)
    }

    /// Whether batches of `generation` for `shard` may still be used.
    fn session_is_current(&self, shard: &str, generation: u64) -> bool {
        self.shared
            .held()
            .get(shard)
            .is_some_and(|h| h.generation == generation && h.clock.is_valid())
    }

    fn state_for(&mut self, shard: &str, generation: u64) -> &mut ShardState {
        let state = self.shards.entry(shard.to_string()).or_default();
        if state.generation != Some(generation) {
            state.generation = Some(generation);
            state.progress.start_session();
        }
        state
    }

    fn write_checkpoint(&self, shard: &str, generation: u64, checkpoint: &str) -> Result<bool> {
        let shared = &self.shared;
        self.runtime.block_on(async {
            let _writing = shared.write_lock.lock().await;
            let counter = match shared.held().get(shard) {
                // An ended shard keeps its `SHARD_END` (a gone shard is
                // ended by the coordinator, not by the engine's progress).
                Some(held) if held.generation == generation && !held.ended => held.counter,
                _ => return Ok(false),
            };
            match shared.table.checkpoint(shard, counter, checkpoint).await? {
                Some(()) => {
                    if let Some(held) = shared.held().get_mut(shard) {
                        held.checkpoint = checkpoint.to_string();
                    }
                    Ok(true)
                }
                None => {
                    shared.lose(shard, crate::metrics::KinesisLeaseLoss::Fenced);
                    Ok(false)
                }
            }
        })
    }
}

/// Read-only view of a source's held leases.
#[derive(Clone)]
pub struct HeldShards(Arc<Shared>);

impl HeldShards {
    /// Shard ids currently held.
    pub fn shards(&self) -> Vec<String> {
        self.0.held_shards()
    }
}

impl Source for KinesisSource {
    fn name(&self) -> &str {
        "kinesis"
    }

    fn poll(&mut self, registry: &PartitionRegistry) -> Result<Poll> {
        let rx = &mut self.rx;
        let received = self
            .runtime
            .block_on(async { tokio::time::timeout(POLL_WAIT, rx.recv()).await });
        let message = match received {
            Err(_elapsed) => return Ok(Poll::Idle),
            // The shared state keeps a sender, so this does not happen.
            Ok(None) => return Ok(Poll::End),
            Ok(Some(message)) => message,
        };
        match message {
            ReaderMsg::Records {
                shard,
                generation,
                records,
                caught_up,
            } => {
                if !self.session_is_current(&shard, generation) {
                    tracing::debug!(shard = %shard, "dropping records of a lost lease");
                    return Ok(Poll::Idle);
                }
                let name = self.partition_name(&shard);
                let decoding = self.decoding.clone();
                let state = self.state_for(&shard, generation);
                let partition = *state
                    .partition
                    .get_or_insert_with(|| registry.id("kinesis", &name));
                let mut batch = RawBatch::new(partition);
                batch.decoding = decoding;
                batch.caught_up = caught_up;
                for (data, sequence) in records {
                    // A lease back from another session: its first records
                    // may already be counted by this process's windows.
                    if state.progress.was_handed(&sequence) {
                        batch.replayed_skipped += 1;
                        continue;
                    }
                    let ordinal = state.progress.push(sequence.clone());
                    batch.push_sequenced(&data, ordinal, &sequence);
                }
                Ok(Poll::Batch(batch))
            }
            ReaderMsg::End { shard, generation } => {
                if !self.session_is_current(&shard, generation) {
                    return Ok(Poll::Idle);
                }
                let name = self.partition_name(&shard);
                let state = self.state_for(&shard, generation);
                state.progress.mark_end();
                let partition = *state
                    .partition
                    .get_or_insert_with(|| registry.id("kinesis", &name));
                self.shared
                    .read_to_end
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(shard);
                self.shared.wake.notify_one();
                // A closed shard read to its end holds the watermark no more.
                let mut batch = RawBatch::new(partition);
                batch.caught_up = true;
                Ok(Poll::Batch(batch))
            }
        }
    }

    fn take_partition_events(&mut self, registry: &PartitionRegistry) -> Vec<PartitionEvent> {
        let held: HashMap<String, u64> = self
            .shared
            .held()
            .iter()
            .filter(|(_, h)| h.clock.is_valid())
            .map(|(shard, h)| (shard.clone(), h.generation))
            .collect();
        let mut events = Vec::new();
        for (shard, generation) in &held {
            if self.announced.insert(shard.clone(), *generation) != Some(*generation) {
                let id = registry.id("kinesis", &self.partition_name(shard));
                events.push(PartitionEvent::Assigned(id));
            }
        }
        let gone: Vec<String> = self
            .announced
            .keys()
            .filter(|shard| !held.contains_key(*shard))
            .cloned()
            .collect();
        for shard in gone {
            self.announced.remove(&shard);
            let id = registry.id("kinesis", &self.partition_name(&shard));
            events.push(PartitionEvent::Revoked(id));
        }
        events
    }

    fn commit(&mut self, positions: &[(PartitionId, u64)]) -> Result<()> {
        let safe: HashMap<PartitionId, u64> = positions.iter().copied().collect();
        let mut due = Vec::new();
        for (shard, state) in &mut self.shards {
            let Some(generation) = state.generation else {
                continue;
            };
            let position = state.partition.and_then(|p| safe.get(&p).copied());
            if let Some(checkpoint) = state.progress.checkpoint_for(position) {
                due.push((shard.clone(), generation, checkpoint));
            }
        }
        let mut first_error = None;
        for (shard, generation, checkpoint) in due {
            match self.write_checkpoint(&shard, generation, &checkpoint) {
                Ok(true) => {
                    tracing::debug!(shard = %shard, checkpoint = %checkpoint, "checkpointed");
                    if checkpoint == SHARD_END {
                        if let Some(held) = self.shared.held().get_mut(&shard) {
                            held.ended = true;
                        }
                        self.shared.wake.notify_one();
                    }
                    if let Some(state) = self.shards.get_mut(&shard) {
                        state.progress.checkpointed(checkpoint);
                    }
                }
                Ok(false) => {}
                Err(error) => {
                    KinesisSourceCounters::inc(&self.shared.counters.checkpoint_errors);
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Ready once it reads what it holds; a worker holding no lease once
    /// the leases are balanced (a standby: more replicas than shards, or a
    /// surge pod in a rolling update, must not hold the rollout up).
    fn is_ready(&self) -> bool {
        if self.shared.held().is_empty() {
            return self.shared.balanced.load(Ordering::Acquire);
        }
        self.shared.polled.load(Ordering::Acquire)
    }
}

impl Drop for KinesisSource {
    fn drop(&mut self) {
        self.coordinator.abort();
        let held: Vec<(String, u64)> = {
            let mut held = self.shared.held();
            for lease in held.values_mut() {
                lease.clock.revoke();
                if let Some(reader) = lease.reader.take() {
                    reader.abort();
                }
            }
            held.iter().map(|(k, h)| (k.clone(), h.counter)).collect()
        };
        if !self.release_on_drop {
            tracing::info!(
                leases = held.len(),
                "kinesis source stopped without releasing leases"
            );
            return;
        }
        let table = &self.shared.table;
        self.runtime.block_on(async {
            for (shard, counter) in held {
                match table.release(&shard, counter).await {
                    Ok(_) => tracing::info!(shard = %shard, "lease released"),
                    Err(error) => {
                        tracing::warn!(shard = %shard, error = %error, "lease release failed")
                    }
                }
            }
        });
    }
}
