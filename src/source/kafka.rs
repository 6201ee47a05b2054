//! Kafka consumer-group source.
//!
//! # Contract
//!
//! * **Polling.** A `BaseConsumer` is polled on the engine's source thread:
//!   the first poll waits up to [`IDLE_WAIT`] (then the source reports
//!   [`Poll::Idle`]), later ones take only what librdkafka has already
//!   prefetched, up to `poll_batch` records. The records are split into one
//!   [`RawBatch`] per partition, handed out over consecutive polls. Each
//!   `(topic, partition)` is the engine partition `kafka` / `topic/partition`.
//! * **Commits.** `enable.auto.offset.store=false`: the source stores only
//!   the engine's safe positions ([`Source::commit`]) and then commits the
//!   stored state asynchronously; librdkafka's auto-commit (every
//!   `auto.commit.interval.ms`, on revoke and on close) ships the same
//!   stored positions. Storing first means *every* commit, ours or one
//!   librdkafka makes on its own, can only carry a safe position, and no
//!   commit blocks the source thread. The explicit commit is there because
//!   the timer alone was seen never to fire for a static member on tansu
//!   (the crash test then replayed the whole topic on every restart).
//!   Commit metadata is not used (tansu drops it).
//! * **Rebalances** (`cooperative-sticky` by default). On revoke, the
//!   source first waits (at most [`REVOKE_ACK_WAIT`]) until the sink has
//!   acknowledged the alerts and stage-1 flushes it already took from the
//!   revoked partitions. Then the safe
//!   positions of the revoked partitions are computed fresh from the
//!   engine's [`CommitTracker`] (when [`KafkaSource::set_tracker`] was
//!   called), stored and committed synchronously before librdkafka gives the
//!   partitions up; then the tracker forgets them and batches not yet
//!   handed to the engine are dropped (also when the partition comes back
//!   to this process in the same poll: the new assignment reads them again
//!   from the committed offset). Windows the engine still holds for
//!   them are not committed past, so the new owner rebuilds them by
//!   replaying from the committed offsets. On assign, librdkafka resumes
//!   from the committed offsets.
//! * **A partition that comes back.** The engine keeps the windows a
//!   revoked partition fed (they may mix its records with other
//!   partitions'; they close as usual). When the partition is assigned to
//!   this process again, the replay from its committed offset starts
//!   before the last record this process handed over, and those records
//!   already count in the kept windows. So the source skips every record at
//!   or below the last offset it handed to the engine for that partition
//!   (`trailwatch_records_replay_skipped_total`); counting them again would
//!   double counts and raise false alerts. The tracker is told where the
//!   new assignment started reading ([`CommitTracker::assigned_at`]), so
//!   no commit moves the group's offset back below it while a kept window
//!   holds less, and the partition names no position to commit until the
//!   new assignment hands over a record.
//! * **Watermark.** The engine's watermark must not run ahead of a
//!   partition whose backlog has not arrived yet. So every assignment is
//!   announced to the engine ([`Source::take_partition_events`]) before any
//!   record is handed out, and the partition then holds the watermark until
//!   it sends records or reaches its end. Every batch carries whether its
//!   partition was at its end afterwards (`enable.partition.eof`, which
//!   must stay on); an end reached with nothing new is an empty batch.
//!   librdkafka names only the partition *number* at an end, so with
//!   several topics the source compares its position with the cached high
//!   watermark of each candidate (see [`KafkaSource::ends_at`]).
//! * **The whole topic.** Feeding stage 1 of a scale-out
//!   ([`KafkaSource::announce_all_partitions`]), the source also announces
//!   every partition of the subscribed topics, its own or not
//!   ([`PartitionEvent::Exists`], from the topic metadata after each
//!   assignment and every 30 s; see [`universe`]), for stage 2.
//! * **Lag.** librdkafka statistics (`statistics.interval.ms`, 5 s unless
//!   configured) update a per-partition consumer-lag map, readable through
//!   [`KafkaSource::lag`] for the metrics endpoint.
//! * **Readiness.** Ready once at least one partition is assigned and a
//!   message or a partition end was consumed.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, FromClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;

use super::{
    PartitionEvent, PartitionId, PartitionRegistry, Poll, RawBatch, Source, SourceDecoding,
};
use crate::config::KafkaSourceConfig;
use crate::engine::commit::CommitTracker;
use crate::error::{Error, Result};

mod universe;
use universe::{Subscription, Universe};

/// How long a poll waits for the first message before reporting idleness.
pub const IDLE_WAIT: Duration = Duration::from_millis(100);

/// Source name used in the partition registry.
const SOURCE: &str = "kafka";

/// Longest a revocation waits for the sink to acknowledge what it already
/// took from the revoked partitions ([`CommitTracker::wait_for_alert_acks`]).
/// Past it, the next owner replays those offsets, as it would after a crash.
const REVOKE_ACK_WAIT: Duration = Duration::from_secs(2);

/// Consumer lag per partition, from librdkafka statistics.
#[derive(Debug, Clone, Default)]
pub struct KafkaLag {
    inner: Arc<Mutex<BTreeMap<(String, i32), i64>>>,
}

impl KafkaLag {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, i32), i64>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `(topic, partition, lag in messages)` of every assigned partition
    /// whose lag librdkafka knows.
    pub fn lag_snapshot(&self) -> Vec<(String, i32, i64)> {
        self.lock()
            .iter()
            .map(|((topic, partition), lag)| (topic.clone(), *partition, *lag))
            .collect()
    }
}

/// Group state shared between the source and its rebalance callbacks.
#[derive(Debug, Default)]
struct GroupState {
    /// Engine ids of every partition this source has read.
    ids: HashMap<(String, i32), PartitionId>,
    /// Reverse of `ids`, for commits.
    names: HashMap<PartitionId, (String, i32)>,
    /// Currently assigned partitions.
    assigned: HashSet<(String, i32)>,
    /// The group gave this member an assignment (maybe empty) at least once.
    joined: bool,
    /// Last position stored per partition (fallback when no tracker).
    stored: HashMap<PartitionId, u64>,
    /// Assignments and revocations not yet reported to the engine.
    events: Vec<GroupEvent>,
    /// Per assigned partition: its end when this assignment first read
    /// it ([`RawBatch::replay_end`]). Forgotten on revocation.
    replay_ends: HashMap<(String, i32), u64>,
    /// Assigned partitions whose first record of this assignment was read
    /// (and its offset told to the tracker). Forgotten on revocation.
    started: HashSet<(String, i32)>,
    /// Per partition: the [`KafkaContext::revocations`] count of its last
    /// revocation.
    revoked_at: HashMap<(String, i32), u64>,
}

/// An assignment change seen by the rebalance callbacks.
#[derive(Debug)]
enum GroupEvent {
    Assigned((String, i32)),
    Revoked(PartitionId),
}

/// The consumer context: rebalance, statistics and log callbacks.
pub struct KafkaContext {
    state: Mutex<GroupState>,
    /// Revocation callbacks so far. A batch read before its partition's
    /// revocation is dropped: the next assignment, in this process or
    /// another, reads it again from the committed offset.
    revocations: AtomicU64,
    tracker: Mutex<Option<CommitTracker>>,
    lag: KafkaLag,
    consumed: AtomicBool,
}

impl KafkaContext {
    fn state(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tracker(&self) -> Option<CommitTracker> {
        self.tracker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn on_revoke(&self, consumer: &BaseConsumer<KafkaContext>, revoked: &TopicPartitionList) {
        let lost = consumer.assignment_lost();
        let tracker = self.tracker();
        if let (false, Some(tracker)) = (lost, &tracker) {
            // Let the sink acknowledge what it already took from these
            // partitions, so the commit below passes it: a stage-1 flush
            // acknowledged only after the next owner's replay reached stage
            // 2 would be merged twice (an overlap).
            let ids: Vec<PartitionId> = {
                let state = self.state();
                revoked
                    .elements()
                    .iter()
                    .filter_map(|e| {
                        state
                            .ids
                            .get(&(e.topic().to_string(), e.partition()))
                            .copied()
                    })
                    .collect()
            };
            let started = Instant::now();
            if tracker.wait_for_alert_acks(&ids, REVOKE_ACK_WAIT) {
                tracing::debug!(
                    waited_ms = started.elapsed().as_millis() as u64,
                    "revoked partitions' alerts and flushes acknowledged"
                );
            } else {
                tracing::warn!(
                    waited_ms = started.elapsed().as_millis() as u64,
                    "revoking partitions with alerts or flushes still unacknowledged; \
                     their next owner replays them"
                );
            }
        }
        let mut positions = TopicPartitionList::new();
        let revocation = self.revocations.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut state = self.state();
            for element in revoked.elements() {
                let key = (element.topic().to_string(), element.partition());
                state.assigned.remove(&key);
                state.replay_ends.remove(&key);
                state.started.remove(&key);
                state.revoked_at.insert(key.clone(), revocation);
                self.lag.lock().remove(&key);
                let Some(&id) = state.ids.get(&key) else {
                    continue;
                };
                let safe = tracker
                    .as_ref()
                    .and_then(|t| t.safe_position(id))
                    .or_else(|| state.stored.get(&id).copied());
                if let Some(offset) = safe {
                    if let Err(e) =
                        positions.add_partition_offset(&key.0, key.1, Offset::Offset(offset as i64))
                    {
                        tracing::warn!(topic = %key.0, partition = key.1, error = %e, "cannot list revoked partition offset");
                    }
                }
                state.stored.remove(&id);
                state.events.push(GroupEvent::Revoked(id));
                if let Some(tracker) = &tracker {
                    tracker.forget_partition(id);
                }
            }
        }
        tracing::info!(
            partitions = revoked.count(),
            committing = positions.count(),
            lost,
            "kafka partitions revoked"
        );
        if lost || positions.count() == 0 {
            return;
        }
        // Store first, so that librdkafka's own commit on unassign carries
        // the same (fresh, safe) positions; then commit synchronously.
        if let Err(e) = consumer.store_offsets(&positions) {
            tracing::warn!(error = %e, "cannot store offsets of revoked partitions");
        }
        if let Err(e) = consumer.commit(&positions, CommitMode::Sync) {
            tracing::warn!(error = %e, "cannot commit offsets of revoked partitions");
        }
    }
}

impl ClientContext for KafkaContext {
    fn stats(&self, statistics: Statistics) {
        let assigned = self.state().assigned.clone();
        let mut lag = self.lag.lock();
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                let key = (topic.clone(), *partition);
                if *partition >= 0 && p.consumer_lag >= 0 && assigned.contains(&key) {
                    lag.insert(key, p.consumer_lag);
                }
            }
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::sink::kafka::log_librdkafka(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Reaching a partition's end is reported here too (tansu), not a fault.
        if matches!(error, KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            tracing::debug!(reason, "kafka partition end");
            return;
        }
        tracing::warn!(error = %error, reason, "kafka consumer error");
    }
}

impl ConsumerContext for KafkaContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            self.on_revoke(consumer, revoked);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                let mut state = self.state();
                // Cooperative rebalancing calls this on every completed
                // rebalance, with an empty list for a member given nothing.
                state.joined = true;
                for element in assigned.elements() {
                    let key = (element.topic().to_string(), element.partition());
                    state.replay_ends.remove(&key);
                    state.started.remove(&key);
                    state.assigned.insert(key.clone());
                    state.events.push(GroupEvent::Assigned(key));
                }
                tracing::info!(
                    partitions = assigned.count(),
                    total = state.assigned.len(),
                    "kafka partitions assigned"
                );
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "kafka rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(partitions = offsets.count(), "kafka offsets committed"),
            // No offset to commit is the normal idle case.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(error = %e, "kafka offset commit failed"),
        }
    }
}

/// A Kafka consumer-group source (module contract).
pub struct KafkaSource {
    consumer: BaseConsumer<KafkaContext>,
    poll_batch: usize,
    pending: VecDeque<RawBatch>,
    group_id: String,
    /// Partitions whose end was reached since their last message.
    at_end: HashSet<(String, i32)>,
    /// Offset after the last message read, per partition.
    next_offset: HashMap<(String, i32), i64>,
    /// Offset of the last record handed to the engine, per partition,
    /// kept across revocations (see [`KafkaSource::already_processed`]).
    handed: HashMap<PartitionId, i64>,
    /// Skip what was handed before when a partition comes back (the
    /// direct path); off for scale-out, whose stages drop the state of
    /// revoked partitions and rebuild it from the replay.
    skip_replayed: bool,
    /// The source's decoding settings, attached to every batch.
    decoding: Option<Arc<SourceDecoding>>,
    /// Every partition of the subscribed topics, announced once.
    universe: Universe,
    /// Whether to announce them (stage 1 of a scale-out only).
    announce_all: bool,
}

impl KafkaSource {
    /// A consumer subscribed per `config`.
    pub fn new(config: &KafkaSourceConfig) -> Result<Self> {
        config.validate()?;
        let client_config = consumer_config(config)?;
        let context = KafkaContext {
            state: Mutex::new(GroupState::default()),
            tracker: Mutex::new(None),
            lag: KafkaLag::default(),
            consumed: AtomicBool::new(false),
            revocations: AtomicU64::new(0),
        };
        let consumer: BaseConsumer<KafkaContext> = client_config
            .create_with_context(context)
            .map_err(|e| client_config_error("kafka consumer", &e))?;
        let subscription: Vec<String> = match &config.topic_pattern {
            Some(pattern) if pattern.starts_with('^') => vec![pattern.clone()],
            Some(pattern) => vec![format!("^{pattern}")],
            None => config.topics.clone(),
        };
        let topics: Vec<&str> = subscription.iter().map(String::as_str).collect();
        let universe = Universe::new(Subscription::new(
            &config.topics,
            config
                .topic_pattern
                .as_ref()
                .map(|_| subscription[0].as_str()),
        )?);
        consumer
            .subscribe(&topics)
            .map_err(|e| Error::Source(format!("kafka subscribe to {topics:?}: {e}")))?;
        tracing::info!(
            group_id = %config.group_id,
            topics = ?topics,
            brokers = %config.brokers,
            "kafka consumer subscribed"
        );
        Ok(KafkaSource {
            consumer,
            poll_batch: config.poll_batch.max(1),
            pending: VecDeque::new(),
            group_id: config.group_id.clone(),
            at_end: HashSet::new(),
            next_offset: HashMap::new(),
            handed: HashMap::new(),
            skip_replayed: true,
            decoding: crate::config::source_decoding(
                config.decoder,
                config.flow_format.as_deref(),
            )?
            .map(Arc::new),
            universe,
            announce_all: false,
        })
    }

    /// Announces every partition of the subscribed topics, not only the
    /// assigned ones (stage 1 of a scale-out; see the module contract).
    pub fn announce_all_partitions(&mut self) {
        self.announce_all = true;
    }

    /// The subscribed topics' `(name, partition count)`, from the brokers.
    fn topic_metadata(&self) -> Result<Vec<(String, i32)>> {
        let metadata = self
            .consumer
            .fetch_metadata(self.universe.single_topic(), universe::FETCH_TIMEOUT)
            .map_err(|e| Error::Source(format!("kafka metadata: {e}")))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|topic| topic.error().is_none())
            .map(|topic| {
                let count = i32::try_from(topic.partitions().len()).unwrap_or(i32::MAX);
                (topic.name().to_string(), count)
            })
            .collect())
    }

    /// Lets rebalances compute fresh safe positions for revoked partitions
    /// (and forget them) instead of using the last committed ones.
    pub fn set_tracker(&mut self, tracker: CommitTracker) {
        *self
            .consumer
            .context()
            .tracker
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(tracker);
    }

    /// A shared handle on the per-partition consumer lag.
    pub fn lag(&self) -> KafkaLag {
        self.consumer.context().lag.clone()
    }

    fn is_assigned(&self, partition: PartitionId) -> bool {
        let state = self.consumer.context().state();
        state
            .names
            .get(&partition)
            .is_some_and(|key| state.assigned.contains(key))
    }

    fn partition_id(
        &self,
        registry: &PartitionRegistry,
        topic: &str,
        partition: i32,
    ) -> PartitionId {
        let mut state = self.consumer.context().state();
        let key = (topic.to_string(), partition);
        if let Some(id) = state.ids.get(&key) {
            return *id;
        }
        let id = registry.id(SOURCE, &format!("{topic}/{partition}"));
        state.ids.insert(key.clone(), id);
        state.names.insert(id, key);
        id
    }

    /// Polls librdkafka into `self.pending`, one batch per partition, each
    /// marked with whether its partition was at its end afterwards.
    fn fill(&mut self, registry: &PartitionRegistry) -> Result<()> {
        // Each batch with the revocation count when it began: a partition
        // revoked (and perhaps assigned back) meanwhile starts a new one.
        let mut batches: Vec<((String, i32), u64, RawBatch)> = Vec::new();
        // Records skipped as already processed, per partition.
        let mut skipped: HashMap<(String, i32), (PartitionId, u64)> = HashMap::new();
        let mut total = 0usize;
        let mut wait = IDLE_WAIT;
        while total < self.poll_batch {
            match self.consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => {
                    let key = (message.topic().to_string(), message.partition());
                    self.next_offset.insert(key.clone(), message.offset() + 1);
                    self.at_end.remove(&key);
                    wait = Duration::ZERO;
                    self.consumer
                        .context()
                        .consumed
                        .store(true, Ordering::Relaxed);
                    let id = self.partition_id(registry, &key.0, key.1);
                    self.note_start(&key, id, message.offset());
                    if self.already_processed(id, message.offset()) {
                        skipped.entry(key).or_insert((id, 0)).1 += 1;
                        continue;
                    }
                    let revision = self.consumer.context().revocations.load(Ordering::SeqCst);
                    let index = match batches
                        .iter()
                        .position(|(k, r, _)| *k == key && *r == revision)
                    {
                        Some(index) => index,
                        None => {
                            let mut batch = RawBatch::new(id);
                            batch.decoding.clone_from(&self.decoding);
                            batch.replay_end = self.replay_end(&key);
                            batches.push((key.clone(), revision, batch));
                            batches.len() - 1
                        }
                    };
                    batches[index]
                        .2
                        .push(message.payload().unwrap_or(&[]), message.offset() as u64);
                    total += 1;
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    for key in self.ends_at(partition) {
                        if self.at_end.insert(key.clone())
                            && !batches.iter().any(|(k, _, _)| *k == key)
                        {
                            // Nothing new from it in this poll: an empty
                            // batch carries the news, in partition order.
                            let id = self.partition_id(registry, &key.0, key.1);
                            let revision =
                                self.consumer.context().revocations.load(Ordering::SeqCst);
                            batches.push((key, revision, RawBatch::new(id)));
                        }
                    }
                    self.consumer
                        .context()
                        .consumed
                        .store(true, Ordering::Relaxed);
                    wait = Duration::ZERO;
                }
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    return Err(Error::Source(format!("kafka consumer fatal error: {code}")));
                }
                Some(Err(e)) => {
                    if let Some((code, reason)) = self.consumer.client().fatal_error() {
                        return Err(Error::Source(format!(
                            "kafka consumer fatal error: {code}: {reason}"
                        )));
                    }
                    // librdkafka retries transient errors itself.
                    tracing::warn!(group_id = %self.group_id, error = %e, "kafka consume error");
                    break;
                }
            }
        }
        let revoked_at = self.consumer.context().state().revoked_at.clone();
        for (key, revision, mut batch) in batches {
            if revoked_at.get(&key).is_some_and(|at| *at > revision) {
                // Read before a revocation: whoever owns the partition now
                // reads it again from the committed offset.
                continue;
            }
            batch.caught_up = self.at_end.contains(&key);
            if let Some((_, count)) = skipped.remove(&key) {
                batch.replayed_skipped = count;
            }
            self.pending.push_back(batch);
        }
        // Partitions whose records were all skipped still report the count.
        for (key, (id, count)) in skipped {
            let mut batch = RawBatch::new(id);
            batch.replayed_skipped = count;
            batch.caught_up = self.at_end.contains(&key);
            self.pending.push_back(batch);
        }
        Ok(())
    }

    /// How far a previous owner of `key` may have read (and sent on): the
    /// partition's end when this assignment first read it. A previous owner
    /// stopped before this assignment began, so it read nothing past that
    /// end. librdkafka caches the end from the fetch that brought the
    /// first record; until it is known, every offset counts as replayed.
    fn replay_end(&self, key: &(String, i32)) -> u64 {
        if let Some(end) = self.consumer.context().state().replay_ends.get(key) {
            return *end;
        }
        let Some((_, high)) = self.cached_watermarks(key) else {
            return u64::MAX;
        };
        let end = high.max(0) as u64;
        self.consumer
            .context()
            .state()
            .replay_ends
            .insert(key.clone(), end);
        end
    }

    /// Tells the tracker where this assignment of `key` started reading,
    /// at its first record (skipped or not): the group's committed offset.
    fn note_start(&self, key: &(String, i32), id: PartitionId, offset: i64) {
        let context = self.consumer.context();
        {
            let mut state = context.state();
            // Per record: only the first of an assignment clones its key.
            if state.started.contains(key) {
                return;
            }
            state.started.insert(key.clone());
        }
        if let Some(tracker) = context.tracker() {
            tracker.assigned_at(id, offset.max(0) as u64);
        }
    }

    /// Replays a partition that comes back in full (scale-out stages, which
    /// drop the state of revoked partitions and rebuild it).
    pub fn keep_replays(&mut self) {
        self.skip_replayed = false;
    }

    /// Whether the record at `offset` of `partition` was handed to the
    /// engine before. That happens only when a revoked partition comes back
    /// to this process and is replayed from its committed offset: the
    /// windows it fed are still here (the engine keeps them; the commit
    /// never passed them), so counting it again would count it twice.
    fn already_processed(&self, partition: PartitionId, offset: i64) -> bool {
        self.skip_replayed
            && self
                .handed
                .get(&partition)
                .is_some_and(|last| offset <= *last)
    }

    /// The assigned partitions numbered `partition` that are at their end.
    /// librdkafka's end-of-partition event names no topic: with one
    /// candidate it is that one; with several, each is at its end when its
    /// position (the offset after its last message read, or its committed
    /// offset) has reached its cached high watermark.
    fn ends_at(&self, partition: i32) -> Vec<(String, i32)> {
        let candidates: Vec<(String, i32)> = {
            let state = self.consumer.context().state();
            state
                .assigned
                .iter()
                .filter(|(_, p)| *p == partition)
                .cloned()
                .collect()
        };
        if candidates.len() <= 1 {
            return candidates;
        }
        candidates
            .into_iter()
            .filter(|key| {
                let Some((low, high)) = self.cached_watermarks(key) else {
                    return false;
                };
                let position = match self.next_offset.get(key) {
                    Some(next) => *next,
                    None => self.committed(key).unwrap_or(low.max(0)),
                };
                position >= high
            })
            .collect()
    }

    /// The low and high watermarks of `key` from librdkafka's cache (as of
    /// the last fetch), without a broker call. rdkafka wraps only the
    /// querying variant, so this calls librdkafka directly.
    fn cached_watermarks(&self, key: &(String, i32)) -> Option<(i64, i64)> {
        let topic = std::ffi::CString::new(key.0.as_str()).ok()?;
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the client handle lives as long as `self.consumer`;
        // librdkafka reads the NUL-terminated `topic` and writes only the two
        // out-parameters, which outlive the call.
        let error = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                key.1,
                &mut low,
                &mut high,
            )
        };
        (error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
            .then_some((low, high))
    }

    /// The group's committed offset of `key`, if it has one (a broker call,
    /// made only for a partition not read yet in an ambiguous end event).
    fn committed(&self, key: &(String, i32)) -> Option<i64> {
        let mut list = TopicPartitionList::new();
        list.add_partition(&key.0, key.1);
        let committed = self
            .consumer
            .committed_offsets(list, Duration::from_secs(2))
            .ok()?;
        match committed.find_partition(&key.0, key.1)?.offset() {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        }
    }
}

impl Source for KafkaSource {
    fn name(&self) -> &str {
        SOURCE
    }

    fn poll(&mut self, registry: &PartitionRegistry) -> Result<Poll> {
        if self.pending.is_empty() {
            self.fill(registry)?;
        }
        while let Some(batch) = self.pending.pop_front() {
            // A rebalance during `fill` may have revoked the partition: its
            // new owner replays these records (`fill` already dropped the
            // records of a partition revoked and assigned back).
            if self.is_assigned(batch.partition) {
                if let Some((_, last)) = batch.records.last() {
                    self.handed.insert(batch.partition, *last as i64);
                }
                return Ok(Poll::Batch(batch));
            }
        }
        Ok(Poll::Idle)
    }

    fn take_partition_events(&mut self, registry: &PartitionRegistry) -> Vec<PartitionEvent> {
        let events = std::mem::take(&mut self.consumer.context().state().events);
        let assigned = events
            .iter()
            .any(|event| matches!(event, GroupEvent::Assigned(_)));
        let mut out: Vec<PartitionEvent> = events
            .into_iter()
            .map(|event| match event {
                GroupEvent::Assigned(key) => {
                    PartitionEvent::Assigned(self.partition_id(registry, &key.0, key.1))
                }
                GroupEvent::Revoked(id) => PartitionEvent::Revoked(id),
            })
            .collect();
        let now = Instant::now();
        if self.announce_all && self.universe.due(now, assigned) {
            let looked = self.topic_metadata();
            for (topic, partition) in self.universe.update(now, looked) {
                out.push(PartitionEvent::Exists(
                    self.partition_id(registry, &topic, partition),
                ));
            }
        }
        out
    }

    fn commit(&mut self, positions: &[(PartitionId, u64)]) -> Result<()> {
        let mut list = TopicPartitionList::new();
        {
            let mut state = self.consumer.context().state();
            for (id, offset) in positions {
                let Some(key) = state.names.get(id).cloned() else {
                    continue;
                };
                if !state.assigned.contains(&key) || state.stored.get(id) == Some(offset) {
                    continue;
                }
                list.add_partition_offset(&key.0, key.1, Offset::Offset(*offset as i64))
                    .map_err(|e| Error::Source(format!("kafka offset list: {e}")))?;
                state.stored.insert(*id, *offset);
            }
        }
        if list.count() == 0 {
            return Ok(());
        }
        tracing::debug!(partitions = list.count(), "kafka offsets stored");
        self.consumer
            .store_offsets(&list)
            .map_err(|e| Error::Source(format!("kafka store offsets: {e}")))?;
        // Ship them now rather than on librdkafka's timer, which does not
        // fire for a static member on some brokers (tansu): the stored,
        // safe positions are all an asynchronous commit can carry.
        match self.consumer.commit_consumer_state(CommitMode::Async) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(e) => Err(Error::Source(format!("kafka commit: {e}"))),
        }
    }

    /// Ready once it has consumed what it is assigned; a member the group
    /// assigned nothing (more replicas than partitions, or a surge pod in a
    /// rolling update) is a standby and ready, or the rollout would stall.
    fn is_ready(&self) -> bool {
        let context = self.consumer.context();
        let state = context.state();
        state.joined && (state.assigned.is_empty() || context.consumed.load(Ordering::Relaxed))
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        // Ship the last stored (safe) positions before leaving the group.
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!(group_id = %self.group_id, error = %e, "final kafka commit failed")
            }
        }
    }
}

/// Checks `config` as [`KafkaSource::new`] does, without reaching a
/// broker: its settings, its secret references (resolved, never shown) and
/// librdkafka's acceptance of every property ([`check_client`]).
pub fn check_config(config: &KafkaSourceConfig) -> Result<()> {
    config.validate()?;
    check_client::<BaseConsumer>(consumer_config(config)?, "kafka consumer")
}

/// Whether librdkafka accepts `config`: each property, then the client
/// they make, since some settings are checked only when a client is
/// created (an unsupported `sasl.mechanism`, an unreadable
/// `ssl.ca.location`). The client is made without bootstrap servers, so
/// it connects to nothing, and dropped at once.
pub(crate) fn check_client<C: FromClientConfig>(
    mut config: ClientConfig,
    what: &str,
) -> Result<()> {
    let error = |e: KafkaError| client_config_error(what, &e);
    config.create_native_config().map_err(error)?;
    config.remove("bootstrap.servers");
    config.create::<C>().map(drop).map_err(error)
}

/// A librdkafka client error as a config error. librdkafka's message for
/// a refused value quotes the value, so a secret property's is not shown.
pub(crate) fn client_config_error(what: &str, error: &KafkaError) -> Error {
    match error {
        KafkaError::ClientConfig(_, _, key, _)
            if crate::config::KafkaProperties::is_secret(key) =>
        {
            Error::Config(format!(
                "{what}: librdkafka refused property {key} (its value, a secret, is not shown)"
            ))
        }
        KafkaError::ClientConfig(_, description, _, _) => {
            Error::Config(format!("{what}: {description}"))
        }
        other => Error::Config(format!("{what}: {other}")),
    }
}

/// The consumer's librdkafka configuration: defaults, then the user's.
fn consumer_config(config: &KafkaSourceConfig) -> Result<ClientConfig> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("statistics.interval.ms", "5000");
    if config.static_membership {
        let instance = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .map_err(|_| {
                Error::Config("kafka source: static_membership needs POD_NAME or HOSTNAME".into())
            })?;
        client.set("group.instance.id", instance);
    }
    for (key, value) in config.properties.resolve()? {
        if key == "enable.auto.offset.store" && value != "false" {
            return Err(Error::Config(
                "kafka source: enable.auto.offset.store must stay false (offsets are stored only when safe)".into(),
            ));
        }
        if key == "enable.partition.eof" && value != "true" {
            return Err(Error::Config(
                "kafka source: enable.partition.eof must stay true (a partition at its end stops holding the watermark)".into(),
            ));
        }
        if key == "group.id" || key == "bootstrap.servers" {
            return Err(Error::Config(format!(
                "kafka source: set {key} with the block's own field, not properties"
            )));
        }
        client.set(key, value);
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KafkaProperties;

    /// librdkafka quotes a refused value in its message; a secret's is
    /// not passed on.
    #[test]
    fn a_refused_secret_property_is_reported_without_its_value() {
        let refused = |key: &str| {
            KafkaError::ClientConfig(
                rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
                format!("Invalid value \"hunter2\" for configuration property \"{key}\""),
                key.to_string(),
                "hunter2".to_string(),
            )
        };
        let error = client_config_error("kafka consumer", &refused("ssl.key.password")).to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("ssl.key.password"), "{error}");
        let error =
            client_config_error("kafka consumer", &refused("auto.offset.reset")).to_string();
        assert_eq!(
            error,
            "config error: kafka consumer: Invalid value \"hunter2\" for configuration property \"auto.offset.reset\""
        );
    }

    fn config(properties: &[(&str, &str)]) -> KafkaSourceConfig {
        KafkaSourceConfig {
            brokers: "127.0.0.1:1".into(),
            topics: vec!["ct".into()],
            topic_pattern: None,
            group_id: "g".into(),
            decoder: None,
            flow_format: None,
            properties: KafkaProperties(
                properties
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            static_membership: false,
            poll_batch: 10,
            allowed_lateness: None,
        }
    }

    #[test]
    fn offsets_are_stored_explicitly_with_cooperative_sticky_by_default() {
        let client = consumer_config(&config(&[("fetch.min.bytes", "1")])).unwrap();
        assert_eq!(client.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(
            client.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        assert_eq!(client.get("fetch.min.bytes"), Some("1"));
    }

    #[test]
    fn automatic_offset_store_is_refused() {
        assert!(consumer_config(&config(&[("enable.auto.offset.store", "true")])).is_err());
        assert!(consumer_config(&config(&[("group.id", "other")])).is_err());
        assert!(consumer_config(&config(&[("enable.partition.eof", "false")])).is_err());
    }
}
