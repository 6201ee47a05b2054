//! Engine telemetry: cheap per-worker counters, aggregated when read.
//!
//! Hot-path workers never touch shared atomics per event. Each worker
//! counts into a plain [`Tally`] while it processes a batch, then adds the
//! tally into its own [`WorkerCounters`] (one set of relaxed atomics per
//! worker, so no cache line is shared between workers). Readers (the
//! `/metrics` endpoint, the replay summary) sum all workers at read time.
//!
//! [`exposition`] renders all of it in the Prometheus text format;
//! [`Health`] backs `/readyz`; [`Metrics::register_lag`] lets a source
//! publish its backlog (Kafka consumer lag, Kinesis milliseconds behind
//! latest) as a gauge read at scrape time.

pub mod exposition;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

use crate::alert::Activity;
use crate::decode::DecodeErrorReason;

/// Number of decode failure reasons.
pub const REASONS: usize = DecodeErrorReason::ALL.len();

/// Per-batch counts a worker accumulates without synchronisation.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub records: u64,
    pub bytes: u64,
    pub events: u64,
    pub ruled_out: u64,
    pub failed: [u64; REASONS],
    pub control_messages: u64,
    pub digest_files: u64,
    pub replayed_skipped: u64,
    pub clamped: u64,
    pub late: u64,
    pub shed: u64,
    pub matches: u64,
    pub dead_lettered: u64,
}

impl Tally {
    /// Whether nothing was counted.
    pub fn is_zero(&self) -> bool {
        self.records == 0
            && self.bytes == 0
            && self.events == 0
            && self.ruled_out == 0
            && self.failed.iter().all(|n| *n == 0)
            && self.control_messages == 0
            && self.digest_files == 0
            && self.replayed_skipped == 0
            && self.clamped == 0
            && self.late == 0
            && self.shed == 0
            && self.matches == 0
            && self.dead_lettered == 0
    }
}

/// One worker's counters. Written by that worker only, read by anyone.
#[derive(Debug)]
pub struct WorkerCounters {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub events: AtomicU64,
    pub ruled_out: AtomicU64,
    pub failed: [AtomicU64; REASONS],
    pub control_messages: AtomicU64,
    pub digest_files: AtomicU64,
    pub replayed_skipped: AtomicU64,
    pub clamped: AtomicU64,
    pub late: AtomicU64,
    pub shed: AtomicU64,
    pub matches: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Shard workers: open window aggregates now.
    pub open_windows: AtomicU64,
    /// Shard workers: approximate bytes of window state now.
    pub state_bytes: AtomicU64,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            events: AtomicU64::new(0),
            ruled_out: AtomicU64::new(0),
            failed: std::array::from_fn(|_| AtomicU64::new(0)),
            control_messages: AtomicU64::new(0),
            digest_files: AtomicU64::new(0),
            replayed_skipped: AtomicU64::new(0),
            clamped: AtomicU64::new(0),
            late: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            matches: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            open_windows: AtomicU64::new(0),
            state_bytes: AtomicU64::new(0),
        }
    }
}

impl WorkerCounters {
    /// Adds a tally (relaxed: counters need no ordering).
    pub fn add(&self, tally: &Tally) {
        let add = |counter: &AtomicU64, n: u64| {
            if n != 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.records, tally.records);
        add(&self.bytes, tally.bytes);
        add(&self.events, tally.events);
        add(&self.ruled_out, tally.ruled_out);
        for (counter, n) in self.failed.iter().zip(tally.failed.iter()) {
            add(counter, *n);
        }
        add(&self.control_messages, tally.control_messages);
        add(&self.digest_files, tally.digest_files);
        add(&self.replayed_skipped, tally.replayed_skipped);
        add(&self.clamped, tally.clamped);
        add(&self.late, tally.late);
        add(&self.shed, tally.shed);
        add(&self.matches, tally.matches);
        add(&self.dead_lettered, tally.dead_lettered);
    }
}

/// Counts per (rule, activity), written by the sink stage.
#[derive(Debug)]
pub struct AlertCounters {
    pub rule_ids: Vec<String>,
    counts: Vec<[AtomicU64; 3]>,
}

impl AlertCounters {
    fn new(rule_ids: Vec<String>) -> Self {
        let counts = rule_ids
            .iter()
            .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
            .collect();
        AlertCounters { rule_ids, counts }
    }

    /// Counts one alert.
    pub fn inc(&self, rule: usize, activity: Activity) {
        if let Some(row) = self.counts.get(rule) {
            row[activity as usize - 1].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Alerts of `rule` with `activity` so far.
    pub fn get(&self, rule: usize, activity: Activity) -> u64 {
        self.counts
            .get(rule)
            .map(|row| row[activity as usize - 1].load(Ordering::Relaxed))
            .unwrap_or(0)
    }
}

/// Sink-side counters.
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub sent: AtomicU64,
    pub errors: AtomicU64,
    pub retries: AtomicU64,
}

/// Repartition-topic counters of a scaled-out deployment (zero on the
/// direct path): partials stage 1 produced, stage 2 consumed, and stage-2
/// records that were not valid partials (dead-lettered).
#[derive(Debug, Default)]
pub struct RepartitionCounters {
    pub produced: AtomicU64,
    pub produced_bytes: AtomicU64,
    pub watermarks_produced: AtomicU64,
    pub consumed: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub invalid: AtomicU64,
    /// Stage 2: partials skipped as replays of merged input.
    pub replayed: AtomicU64,
    /// Stage 2: replayed partials that straddled merged input and listed
    /// their offsets: only their matches past it were merged.
    pub trimmed: AtomicU64,
    /// Stage 2: partials of a previous stage-1 owner of their input that
    /// straddled what its successor had already sent (skipped: the
    /// successor sends all of it).
    pub superseded: AtomicU64,
    /// Stage 2: partials that straddled merged input without listing their
    /// offsets (merged whole, possibly over-counted).
    pub overlaps: AtomicU64,
    /// Stage 2 (a gauge): input partitions holding its watermark at the
    /// floor, named or assigned but not yet reported with a watermark.
    pub inputs_at_floor: AtomicU64,
    /// Deliveries of the stage-1 repartition sink.
    pub sink: SinkCounters,
}

/// Why a Kinesis read failed: the bounded `kind` label of
/// `trailwatch_kinesis_read_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KinesisReadError {
    /// `ProvisionedThroughputExceededException`, `LimitExceededException`
    /// (subscribe rate) or `ResourceInUseException` (a previous
    /// subscription of the shard is still live).
    Throttled = 0,
    /// `ExpiredIteratorException`: the iterator is fetched again.
    ExpiredIterator = 1,
    /// `ResourceNotFoundException`: the shard (trimmed past retention) or
    /// the fan-out consumer (deregistered) is gone.
    NotFound = 2,
    /// Anything else: transport errors, timeouts, other service errors.
    Other = 3,
}

impl KinesisReadError {
    pub const ALL: [KinesisReadError; 4] = [
        KinesisReadError::Throttled,
        KinesisReadError::ExpiredIterator,
        KinesisReadError::NotFound,
        KinesisReadError::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            KinesisReadError::Throttled => "throttled",
            KinesisReadError::ExpiredIterator => "expired_iterator",
            KinesisReadError::NotFound => "not_found",
            KinesisReadError::Other => "other",
        }
    }
}

/// Why a Kinesis lease was lost: the bounded `reason` label of
/// `trailwatch_kinesis_lease_lost_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KinesisLeaseLoss {
    /// A renew failed its condition: another worker took the lease.
    TakenOver = 0,
    /// Renews kept failing (DynamoDB unreachable) until the lease expired.
    Expired = 1,
    /// A checkpoint failed its condition (the lease was taken meanwhile).
    Fenced = 2,
}

impl KinesisLeaseLoss {
    pub const ALL: [KinesisLeaseLoss; 3] = [
        KinesisLeaseLoss::TakenOver,
        KinesisLeaseLoss::Expired,
        KinesisLeaseLoss::Fenced,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            KinesisLeaseLoss::TakenOver => "taken_over",
            KinesisLeaseLoss::Expired => "expired",
            KinesisLeaseLoss::Fenced => "fenced",
        }
    }
}

/// Failure counters of a Kinesis source (none of them per shard: shard ids
/// change with every split and merge, and a counter series never goes
/// away). Each failure is also logged with its shard.
#[derive(Debug, Default)]
pub struct KinesisSourceCounters {
    /// Failed GetShardIterator/GetRecords calls and SubscribeToShard
    /// subscribes or event streams, by [`KinesisReadError`].
    pub read_errors: [AtomicU64; KinesisReadError::ALL.len()],
    /// Leases lost, by [`KinesisLeaseLoss`].
    pub lease_lost: [AtomicU64; KinesisLeaseLoss::ALL.len()],
    /// Lease renews that failed for another reason than a lost lease.
    pub lease_renew_errors: AtomicU64,
    /// Checkpoint writes that failed (the shard is checkpointed again at
    /// the next commit).
    pub checkpoint_errors: AtomicU64,
    /// Shards the stream no longer lists (trimmed past retention), ended
    /// with `SHARD_END` so that their children are read.
    pub shards_gone: AtomicU64,
    /// Failed attempts to register or describe the fan-out consumer again
    /// after it was found deleted.
    pub consumer_errors: AtomicU64,
}

impl KinesisSourceCounters {
    /// Counts a failed read.
    pub fn read_error(&self, kind: KinesisReadError) {
        self.read_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a lost lease.
    pub fn lease_lost(&self, why: KinesisLeaseLoss) {
        self.lease_lost[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Readiness as `/readyz` reports it: every source assigned input and
/// consuming, and at least one batch consumed.
///
/// The engine's source threads update it once per poll (never per event):
/// [`Health::begin`] when a run starts, [`Health::observe_source`] with each
/// source's `is_ready()`, [`Health::consumed`] after a batch is handed on.
#[derive(Debug, Default)]
pub struct Health {
    started: AtomicBool,
    not_ready: AtomicUsize,
    consumed: AtomicBool,
}

impl Health {
    /// A run starts with `sources` sources, none of them ready yet.
    pub fn begin(&self, sources: usize) {
        self.not_ready.store(sources, Ordering::Relaxed);
        self.started.store(true, Ordering::Release);
    }

    /// Records one source's readiness; `was_ready` is that source thread's
    /// own memory of its last report (start with `false`).
    pub fn observe_source(&self, was_ready: &mut bool, ready: bool) {
        if ready == *was_ready {
            return;
        }
        *was_ready = ready;
        if ready {
            self.not_ready.fetch_sub(1, Ordering::AcqRel);
        } else {
            self.not_ready.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// A batch was consumed and handed to the decoders.
    pub fn consumed(&self) {
        if !self.consumed.load(Ordering::Relaxed) {
            self.consumed.store(true, Ordering::Release);
        }
    }

    /// Whether the engine runs, every source is ready and input was consumed.
    pub fn is_ready(&self) -> bool {
        self.started.load(Ordering::Acquire)
            && self.not_ready.load(Ordering::Acquire) == 0
            && self.consumed.load(Ordering::Acquire)
    }
}

/// Reads a source's backlog per partition or shard at scrape time.
pub type LagReader = Arc<dyn Fn() -> Vec<(String, i64)> + Send + Sync>;

/// A backlog gauge a source registered (see [`Metrics::register_lag`]).
#[derive(Clone)]
pub struct LagGauge {
    /// Full metric name, `trailwatch_` prefixed.
    pub name: &'static str,
    pub help: &'static str,
    /// Label naming the partition (`partition`, `shard`).
    pub label: &'static str,
    pub read: LagReader,
}

impl std::fmt::Debug for LagGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LagGauge")
            .field("name", &self.name)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Metric name of the Kafka consumer lag gauge (messages, per partition).
pub const KAFKA_CONSUMER_LAG: &str = "trailwatch_kafka_consumer_lag";

/// Stage 2's consumer lag on the repartition topic, per partition.
pub const REPARTITION_LAG: &str = "trailwatch_repartition_lag";
/// Metric name of the Kinesis backlog gauge (milliseconds, per shard).
pub const KINESIS_MILLIS_BEHIND_LATEST: &str = "trailwatch_kinesis_millis_behind_latest";

/// All engine metrics.
#[derive(Debug)]
pub struct Metrics {
    pub decoders: Vec<Arc<WorkerCounters>>,
    pub shards: Vec<Arc<WorkerCounters>>,
    pub alerts: AlertCounters,
    pub sink: SinkCounters,
    pub dead_letter: SinkCounters,
    /// Dead letters cut to fit their output's record size limit.
    pub dead_letters_truncated: AtomicU64,
    /// Records received per partition id (index), summed over workers.
    pub partition_records: Mutex<Vec<u64>>,
    /// Alert time minus event time, milliseconds.
    pub event_time_lag_ms: Mutex<Histogram<u64>>,
    /// Record arrival to alert emission / batch processed, microseconds.
    pub processing_latency_us: Mutex<Histogram<u64>>,
    /// Current global watermark (epoch ms), `i64::MIN` before the first.
    pub watermark_ms: AtomicI64,
    pub started_at: std::time::Instant,
    /// Wall-clock start, epoch seconds (for `trailwatch_start_time_seconds`).
    pub started_unix_s: f64,
    /// Readiness for `/readyz`.
    pub health: Health,
    /// Backlog gauges registered by sources.
    pub lag: Mutex<Vec<LagGauge>>,
    /// Repartition-topic traffic (two-stage deployments).
    pub repartition: Arc<RepartitionCounters>,
    /// Failure counters of the Kinesis source, once one registered them
    /// (absent otherwise, so other inputs expose no Kinesis series).
    pub kinesis_source: Mutex<Option<Arc<KinesisSourceCounters>>>,
}

impl Metrics {
    /// Metrics for `decoders` decode workers, `shards` shard workers and rules.
    pub fn new(decoders: usize, shards: usize, rule_ids: Vec<String>) -> Arc<Metrics> {
        let histogram =
            |high: u64| {
                Mutex::new(Histogram::new_with_bounds(1, high, 2).unwrap_or_else(|_| {
                    Histogram::new(2).unwrap_or_else(|_| unreachable_histogram())
                }))
            };
        Arc::new(Metrics {
            decoders: (0..decoders).map(|_| Arc::default()).collect(),
            shards: (0..shards).map(|_| Arc::default()).collect(),
            alerts: AlertCounters::new(rule_ids),
            sink: SinkCounters::default(),
            dead_letter: SinkCounters::default(),
            dead_letters_truncated: AtomicU64::new(0),
            partition_records: Mutex::new(Vec::new()),
            // Up to 100 years: a replayed archive's lag is its age, and a
            // value past the bound is recorded as the bound (with the
            // latency's bound, an hour in µs, every lag past 41.7 days was).
            event_time_lag_ms: histogram(100 * 365 * 86_400_000),
            processing_latency_us: histogram(3_600_000_000),
            watermark_ms: AtomicI64::new(i64::MIN),
            started_at: std::time::Instant::now(),
            started_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            health: Health::default(),
            lag: Mutex::new(Vec::new()),
            repartition: Arc::default(),
            kinesis_source: Mutex::new(None),
        })
    }

    /// Sums one counter over every decode and shard worker.
    pub fn sum(&self, pick: impl Fn(&WorkerCounters) -> &AtomicU64) -> u64 {
        self.decoders
            .iter()
            .chain(self.shards.iter())
            .map(|w| pick(w).load(Ordering::Relaxed))
            .sum()
    }

    /// Failures per reason, summed over workers.
    pub fn failed_by_reason(&self) -> Vec<(DecodeErrorReason, u64)> {
        DecodeErrorReason::ALL
            .iter()
            .enumerate()
            .map(|(i, reason)| (*reason, self.sum(|w| &w.failed[i])))
            .collect()
    }

    /// Adds `n` records received on partition `id`.
    pub fn add_partition_records(&self, id: u32, n: u64) {
        let mut counts = self
            .partition_records
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let index = id as usize;
        if counts.len() <= index {
            counts.resize(index + 1, 0);
        }
        counts[index] += n;
    }

    /// Registers a backlog gauge read at every scrape. `read` returns
    /// `(partition or shard, backlog)` pairs; it must be cheap and must not
    /// block (return the source's last known values). Registering a name
    /// again replaces the earlier reader (a source restarted).
    ///
    /// The Kafka source registers [`KAFKA_CONSUMER_LAG`] with label
    /// `partition`; the Kinesis source [`KINESIS_MILLIS_BEHIND_LATEST`] with
    /// label `shard`. Names must start with `trailwatch_`.
    pub fn register_lag(
        &self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        read: LagReader,
    ) {
        let mut lag = self.lag.lock().unwrap_or_else(|p| p.into_inner());
        lag.retain(|g| g.name != name);
        lag.push(LagGauge {
            name,
            help,
            label,
            read,
        });
    }

    /// Registers the Kafka consumer lag (messages behind the high
    /// watermark, per partition).
    pub fn register_kafka_consumer_lag(&self, read: LagReader) {
        self.register_lag(
            KAFKA_CONSUMER_LAG,
            "Messages between the committed position and the partition's high watermark.",
            "partition",
            read,
        );
    }

    /// Registers the Kinesis `MillisBehindLatest` per shard.
    pub fn register_kinesis_millis_behind_latest(&self, read: LagReader) {
        self.register_lag(
            KINESIS_MILLIS_BEHIND_LATEST,
            "Milliseconds the last GetRecords response or SubscribeToShard event was behind the tip of the shard; while reads fail, that value plus the time since the last successful read.",
            "shard",
            read,
        );
    }

    /// Exposes a Kinesis source's failure counters (a source restarted
    /// replaces the earlier ones).
    pub fn register_kinesis_source(&self, counters: Arc<KinesisSourceCounters>) {
        *self
            .kinesis_source
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(counters);
    }

    /// Records a value in a histogram, saturating.
    pub fn record(histogram: &Mutex<Histogram<u64>>, value: u64) {
        let mut h = histogram.lock().unwrap_or_else(|p| p.into_inner());
        h.saturating_record(value.max(1));
    }
}

fn unreachable_histogram() -> Histogram<u64> {
    // `Histogram::new(2)` only fails for sigfig > 5; this path never runs.
    Histogram::new_with_max(2, 1).unwrap_or_else(|_| std::process::abort())
}
