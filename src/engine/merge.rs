//! Stage-2 intake: repartition-topic batches in, partial batches out.
//!
//! A [`PartialWorker`] takes the place of a decode worker in stage 2. It
//! decodes the records of one repartition partition ([`super::partial`]),
//! routes every partial to the shard owning `hash(rule, key)` (the same
//! routing as the direct path), dead-letters and counts records it cannot
//! read, and feeds watermark records to [`RemoteWatermarks`].
//!
//! # Watermarks
//!
//! Each stage-1 producer writes the watermarks of its input partitions to
//! every repartition partition after the partials they cover, so per
//! repartition partition the watermark is the minimum over the *input*
//! partitions heard on it. When an input partition moves to another
//! stage-1 instance (rebalance, or a dead replica), its last reported
//! watermark keeps holding until the new owner, replaying from the
//! committed offsets, reports it again. An input partition nobody has
//! reported for `idle_timeout` *of producers' send time* (`at`, compared
//! with the freshest report on that repartition partition) stops holding
//! (a partition gone for good); send time rather than local arrival keeps
//! a replay of old repartition records from expiring everything.
//!
//! An input partition whose owner has not reported it *at all* yet (its
//! replica is still starting, or joined the group with it) is known from
//! the other producers' records: each carries every partition its source
//! knows to exist (`all`, [`super::partial::ProducerWatermark`]). Such a
//! partition holds at the floor from the first record that names it, and
//! expires like a silent one, `idle_timeout` of send time later. Without
//! it, the producers heard first would close windows that the late
//! replica's partials feed, and stage 2 would drop those partials as late.
//! A repartition partition also holds the watermark at its floor until it
//! has heard `warm_up` of send time (producers without a source that
//! knows its partitions, such as files, name none).
//! Stage 2's watermark is the minimum over its assigned repartition
//! partitions and never moves backwards; partitions revoked from this
//! instance are forgotten.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use compact_str::CompactString;
use crossbeam_channel::Sender;

use super::commit::{AlertHold, CommitTracker, Holds};
use super::partial::{self, PartialError, RepartitionRecord};
use super::shard::{MergePartial, PartialBatch, ShardMsg};
use super::worker::{route, DeadLetterBatch};
use crate::error::ErrorClass;
use crate::metrics::{Metrics, Tally, WorkerCounters};
use crate::rules::compile::RuleIdx;
use crate::rules::RuleSet;
use crate::sink::DeadLetter;
use crate::source::{PartitionId, PartitionRegistry, RawBatch};

/// How often a stage-2 worker counts the inputs holding it at the floor
/// (a set over every input of every assigned partition: not per batch).
const FLOOR_COUNT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Stage-2 watermark settings.
#[derive(Debug, Clone, Copy)]
pub struct MergeConfig {
    /// An input partition reported this long ago (send time, behind the
    /// freshest report) no longer holds the repartition partition back.
    pub idle_timeout_ms: i64,
    /// Send time a partition must have heard before it lets the
    /// watermark advance.
    pub warm_up_ms: i64,
}

#[derive(Debug, Default)]
struct PartitionMarks {
    generation: u64,
    /// Input partition -> (watermark, send time of its last report, the
    /// hold on that report's offset).
    inputs: HashMap<String, (i64, i64, Option<AlertHold>)>,
    first_at: Option<i64>,
    latest_at: i64,
}

impl PartitionMarks {
    fn watermark(&self, config: &MergeConfig) -> i64 {
        let Some(first_at) = self.first_at else {
            return i64::MIN;
        };
        if self.latest_at - first_at < config.warm_up_ms {
            return i64::MIN;
        }
        self.inputs
            .values()
            .filter(|(_, at, _)| self.latest_at - at < config.idle_timeout_ms)
            .map(|(wm, _, _)| *wm)
            .min()
            .unwrap_or(i64::MIN)
    }
}

/// Producer watermarks per repartition partition (module docs).
#[derive(Debug)]
pub struct RemoteWatermarks {
    config: MergeConfig,
    tracker: CommitTracker,
    partitions: Mutex<HashMap<PartitionId, PartitionMarks>>,
    current: AtomicI64,
}

impl RemoteWatermarks {
    /// No partition heard yet.
    pub fn new(config: MergeConfig, tracker: CommitTracker) -> Self {
        RemoteWatermarks {
            config,
            tracker,
            partitions: Mutex::new(HashMap::new()),
            current: AtomicI64::new(i64::MIN),
        }
    }

    /// Records watermarks read from `partition` and returns the new stage-2
    /// watermark.
    ///
    /// Each input's latest report stays held (uncommitted) until the next
    /// one, so that a new owner of the repartition partition, replaying it
    /// from the committed offset, reads every live input's latest report
    /// and does not take the minimum over only the inputs it happens to
    /// read first.
    pub fn observe(
        &self,
        partition: PartitionId,
        marks: &[(partial::ProducerWatermark, u64)],
    ) -> i64 {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.tracker.generation(partition);
        let entry = partitions.entry(partition).or_default();
        if entry.generation != generation {
            *entry = PartitionMarks {
                generation,
                ..PartitionMarks::default()
            };
        }
        for (mark, offset) in marks {
            // Known to exist, not reported yet: holds at the floor from now
            // (send time) until its owner reports it or it expires.
            for input in &mark.all {
                if !entry.inputs.contains_key(input.as_str()) {
                    entry
                        .inputs
                        .insert(input.clone(), (i64::MIN, mark.at, None));
                }
            }
            for (input, watermark) in &mark.inputs {
                let slot = entry
                    .inputs
                    .entry(input.clone())
                    .or_insert((*watermark, mark.at, None));
                // A new owner replaying the partition may report less
                // than the last owner did; the watermark never goes back.
                slot.0 = slot.0.max(*watermark);
                slot.1 = slot.1.max(mark.at);
                slot.2 = Some(
                    self.tracker
                        .hold_mark(&Holds::from_slice(&[(partition, *offset)])),
                );
            }
            entry.first_at = Some(entry.first_at.map_or(mark.at, |f| f.min(mark.at)));
            entry.latest_at = entry.latest_at.max(mark.at);
        }
        if !marks.is_empty() {
            tracing::trace!(partition, inputs = ?entry.inputs, "producer watermarks");
        }
        self.recompute(&mut partitions)
    }

    /// Re-evaluates (revocations) and returns the watermark.
    pub fn tick(&self) -> i64 {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        self.recompute(&mut partitions)
    }

    /// The watermark of one repartition partition (`i64::MIN` while it
    /// warms up or before it is heard of).
    pub fn partition_watermark(&self, partition: PartitionId) -> i64 {
        let partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        partitions
            .get(&partition)
            .filter(|marks| marks.generation == self.tracker.generation(partition))
            .map_or(i64::MIN, |marks| marks.watermark(&self.config))
    }

    /// The current stage-2 watermark (minimum over partitions, for metrics).
    pub fn current(&self) -> i64 {
        self.current.load(Ordering::Relaxed)
    }

    /// Input partitions that hold stage 2 at the floor: named or assigned,
    /// not reported with a watermark yet, not expired (for metrics; counted
    /// on each call).
    pub fn inputs_at_floor(&self) -> usize {
        let partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        let idle_timeout = self.config.idle_timeout_ms;
        let at_floor: std::collections::HashSet<&str> = partitions
            .iter()
            .filter(|(p, marks)| self.tracker.generation(**p) == marks.generation)
            .flat_map(|(_, marks)| {
                marks
                    .inputs
                    .iter()
                    .filter(|(_, (wm, at, _))| {
                        *wm == i64::MIN && marks.latest_at - at < idle_timeout
                    })
                    .map(|(input, _)| input.as_str())
            })
            .collect();
        at_floor.len()
    }

    fn recompute(&self, partitions: &mut HashMap<PartitionId, PartitionMarks>) -> i64 {
        partitions.retain(|p, marks| self.tracker.generation(*p) == marks.generation);
        let idle_timeout = self.config.idle_timeout_ms;
        for marks in partitions.values_mut() {
            // An expired input no longer holds the partition's commits. It
            // stays listed (the input partitions are a bounded set), so
            // that the next record naming it in `all` does not make it
            // hold again.
            let latest = marks.latest_at;
            for (_, at, hold) in marks.inputs.values_mut() {
                if latest - *at >= idle_timeout.saturating_mul(4) {
                    *hold = None;
                }
            }
        }
        let candidate = partitions
            .values()
            .map(|marks| marks.watermark(&self.config))
            .min();
        let Some(candidate) = candidate else {
            return self.current();
        };
        let previous = self.current.fetch_max(candidate, Ordering::Relaxed);
        previous.max(candidate)
    }
}

/// One stage-2 intake worker.
pub struct PartialWorker {
    rules: Arc<RuleSet>,
    rule_index: HashMap<String, RuleIdx>,
    tracker: CommitTracker,
    shards: Vec<Sender<ShardMsg>>,
    watermarks: Arc<RemoteWatermarks>,
    /// Per repartition partition: the assignment generation and the
    /// watermark last told to the shards.
    last_watermark_sent: HashMap<PartitionId, (u64, i64)>,
    /// When `trailwatch_repartition_inputs_at_floor` was last counted.
    floor_counted: Option<std::time::Instant>,
    counters: Arc<WorkerCounters>,
    metrics: Arc<Metrics>,
    registry: Arc<PartitionRegistry>,
    dead_letters: Sender<DeadLetterBatch>,
}

impl PartialWorker {
    /// A worker sending to `shards`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rules: Arc<RuleSet>,
        tracker: CommitTracker,
        shards: Vec<Sender<ShardMsg>>,
        watermarks: Arc<RemoteWatermarks>,
        counters: Arc<WorkerCounters>,
        metrics: Arc<Metrics>,
        registry: Arc<PartitionRegistry>,
        dead_letters: Sender<DeadLetterBatch>,
    ) -> Self {
        let rule_index = rules
            .rules()
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((r.id.clone(), RuleIdx::try_from(i).ok()?)))
            .collect();
        PartialWorker {
            rules,
            rule_index,
            tracker,
            shards,
            watermarks,
            last_watermark_sent: HashMap::new(),
            floor_counted: None,
            counters,
            metrics,
            registry,
            dead_letters,
        }
    }

    /// Decodes and routes one repartition batch. Returns false when the
    /// shards have gone away (shutdown).
    pub fn process(&mut self, batch: RawBatch) -> bool {
        let generation = batch.generation;
        if generation != self.tracker.generation(batch.partition) {
            // Read before its partition was revoked: the new owner replays it.
            return true;
        }
        if batch.is_empty() && batch.rejected.is_empty() {
            // News only (the partition reached its end): stage 2 judges its
            // inputs by the producers' watermark records, not by this.
            return true;
        }
        let offsets = batch.offset_range();
        let token = self
            .tracker
            .begin_batch(batch.partition, offsets.start, offsets.end);
        let partition_name = self
            .registry
            .name(batch.partition)
            .map(|(s, p)| format!("{s}:{p}"))
            .unwrap_or_default();
        let mut outputs: Vec<PartialBatch> = (0..self.shards.len())
            .map(|_| PartialBatch::default())
            .collect();
        let mut marks = Vec::new();
        let mut dead = Vec::new();
        let mut tally = Tally::default();
        let counters = &self.metrics.repartition;
        // Bytes the source could not frame are unreadable partials, like
        // the records below that do not parse: counted both ways. (Only the
        // file source frames bytes itself today; Kafka rejects none.)
        for rejected in &batch.rejected {
            tally.records += 1;
            tally.bytes += rejected.bytes.len() as u64;
            counters.invalid.fetch_add(1, Ordering::Relaxed);
            tally.dead_lettered += 1;
            dead.push(DeadLetter::of_rejected(partition_name.clone(), rejected));
        }
        for (range, offset) in &batch.records {
            let bytes = &batch.data[range.clone()];
            tally.records += 1;
            tally.bytes += bytes.len() as u64;
            counters
                .consumed_bytes
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            let record = partial::decode(bytes).and_then(|record| match record {
                RepartitionRecord::Partial { mut agg, .. } => {
                    let Some(&rule_idx) = self.rule_index.get(&agg.r) else {
                        return Err(PartialError::UnknownRule(agg.r));
                    };
                    let aggregate = self.rules.rule(rule_idx).aggregate;
                    let window = agg.to_window(aggregate, (batch.partition, *offset));
                    let shard = route(rule_idx, &agg.k, self.shards.len());
                    let replay = agg.take_replay_offsets().map(Box::new);
                    outputs[shard].partials.push(MergePartial {
                        rule: rule_idx,
                        key: CompactString::from(agg.k),
                        agg: window,
                        input: CompactString::from(agg.p),
                        first_offset: agg.o0,
                        last_offset: agg.o1,
                        replay,
                    });
                    counters.consumed.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                RepartitionRecord::Watermark { mark, .. } => {
                    marks.push((mark, *offset));
                    Ok(())
                }
            });
            if let Err(error) = record {
                counters.invalid.fetch_add(1, Ordering::Relaxed);
                tally.dead_lettered += 1;
                dead.push(DeadLetter {
                    partition: partition_name.clone(),
                    offset: *offset,
                    class: ErrorClass::User,
                    reason: error.reason(),
                    detail: error.to_string(),
                    bytes: bytes.to_vec(),
                    original_len: None,
                });
            }
        }
        self.counters.add(&tally);
        if !super::worker::send_dead_letters(
            &self.tracker,
            &self.dead_letters,
            batch.partition,
            dead,
        ) {
            return false;
        }
        // Partials go out under their partition's watermark from before
        // this batch's watermark records: those follow the partials they
        // cover.
        let before = self.watermarks.partition_watermark(batch.partition);
        for (index, mut output) in outputs.into_iter().enumerate() {
            if output.partials.is_empty() {
                continue;
            }
            output.watermark_ms = before;
            output.partition = batch.partition;
            output.generation = generation;
            output.token = Some(token.clone());
            if self.shards[index].send(ShardMsg::Partials(output)).is_err() {
                return false;
            }
        }
        let global = self.watermarks.observe(batch.partition, &marks);
        self.publish_watermark(global);
        drop(token);
        let after = self.watermarks.partition_watermark(batch.partition);
        self.send_watermark(batch.partition, generation, after)
    }

    /// Re-evaluates the watermark (revocations) for the metrics.
    pub fn tick(&mut self) -> bool {
        let global = self.watermarks.tick();
        self.publish_watermark(global);
        true
    }

    /// Exposes the stage-2 watermark, and (at most every
    /// [`FLOOR_COUNT_INTERVAL`]) how many inputs hold it at the floor.
    fn publish_watermark(&mut self, global: i64) {
        self.metrics
            .watermark_ms
            .fetch_max(global, Ordering::Relaxed);
        if self
            .floor_counted
            .is_some_and(|at| at.elapsed() < FLOOR_COUNT_INTERVAL)
        {
            return;
        }
        self.floor_counted = Some(std::time::Instant::now());
        self.metrics
            .repartition
            .inputs_at_floor
            .store(self.watermarks.inputs_at_floor() as u64, Ordering::Relaxed);
    }

    /// Tells every shard the watermark of `partition` when it moved.
    fn send_watermark(&mut self, partition: PartitionId, generation: u64, watermark: i64) -> bool {
        let last = self
            .last_watermark_sent
            .entry(partition)
            .or_insert((generation, i64::MIN));
        if last.0 != generation {
            *last = (generation, i64::MIN);
        }
        if last.1 >= watermark {
            return true;
        }
        last.1 = watermark;
        tracing::debug!(
            partition,
            watermark,
            "repartition partition watermark advanced"
        );
        for shard in &self.shards {
            let batch = PartialBatch {
                watermark_ms: watermark,
                partition,
                generation,
                ..PartialBatch::default()
            };
            if shard.send(ShardMsg::Partials(batch)).is_err() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use partial::ProducerWatermark;

    /// A report of input partition `input` (one per producer here).
    fn mark(input: &str, wm: i64, at: i64) -> (ProducerWatermark, u64) {
        let mark = ProducerWatermark {
            src: "producer".into(),
            wm,
            at,
            inputs: vec![(input.into(), wm)],
            all: Vec::new(),
        };
        (mark, 0)
    }

    fn marks() -> (CommitTracker, RemoteWatermarks) {
        let tracker = CommitTracker::new(1);
        let config = MergeConfig {
            idle_timeout_ms: 10_000,
            warm_up_ms: 1_000,
        };
        (tracker.clone(), RemoteWatermarks::new(config, tracker))
    }

    /// Bytes the repartition source could not frame, and a record that
    /// is not a partial: each becomes a dead letter and is counted as
    /// dead-lettered and as an unreadable partial.
    #[test]
    fn unframed_and_unreadable_partials_are_dead_lettered_and_counted() {
        let (tracker, watermarks) = marks();
        let metrics = Metrics::new(1, 1, Vec::new());
        let (shard_tx, _shard_rx) = crossbeam_channel::unbounded();
        let (dead_tx, dead_rx) = crossbeam_channel::unbounded();
        let registry = Arc::new(PartitionRegistry::default());
        let partition = registry.id("kafka", "repart/0");
        let rules = Arc::new(crate::rules::compile_all(&[]).expect("no rules compile"));
        let mut worker = PartialWorker::new(
            rules,
            tracker.clone(),
            vec![shard_tx],
            Arc::new(watermarks),
            Arc::clone(&metrics.decoders[0]),
            Arc::clone(&metrics),
            registry,
            dead_tx,
        );
        let mut batch = RawBatch::new(partition);
        batch.generation = tracker.generation(partition);
        batch.data = b"not a partial".to_vec();
        batch.records = vec![(0..13, 4)];
        batch.rejected = vec![crate::source::Rejected {
            offset: 3,
            bytes: b"{".to_vec(),
            reason: crate::decode::DecodeErrorReason::InvalidJson,
            detail: "cut short".into(),
        }];
        assert!(worker.process(batch));
        let (dead, _hold) = dead_rx.try_recv().expect("one batch of dead letters");
        let offsets: Vec<u64> = dead.iter().map(|d| d.offset).collect();
        assert_eq!(offsets, [3, 4]);
        assert!(dead.iter().all(|d| d.partition == "kafka:repart/0"));
        assert_eq!(metrics.sum(|w| &w.dead_lettered), 2);
        assert_eq!(metrics.repartition.invalid.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn minimum_over_input_partitions_after_warm_up() {
        let (_, wm) = marks();
        assert_eq!(wm.observe(0, &[mark("a", 500, 0)]), i64::MIN, "warming up");
        assert_eq!(wm.observe(0, &[mark("b", 300, 100)]), i64::MIN);
        assert_eq!(wm.observe(0, &[mark("a", 900, 1_000)]), 300, "b holds it");
        assert_eq!(wm.observe(0, &[mark("b", 800, 1_200)]), 800);
    }

    #[test]
    fn an_unreported_input_partition_expires_by_send_time() {
        let (_, wm) = marks();
        wm.observe(0, &[mark("dead", 100, 0), mark("a", 500, 0)]);
        assert_eq!(wm.observe(0, &[mark("a", 600, 5_000)]), 100);
        assert_eq!(
            wm.observe(0, &[mark("a", 700, 10_000)]),
            700,
            "dead is 10 s behind"
        );
    }

    /// A report that also names every input partition known to exist.
    fn mark_knowing(input: &str, wm: i64, at: i64, all: &[&str]) -> (ProducerWatermark, u64) {
        let (mut mark, offset) = mark(input, wm, at);
        mark.all = all.iter().map(|name| name.to_string()).collect();
        (mark, offset)
    }

    /// The CI failure of the three-replica test: replica B joined the
    /// group with input `b` and was slow to start, while A's `a` ran to
    /// its end. Past the warm-up, `b` must still hold the watermark
    /// because A's records name it, until B reports it or it expires.
    #[test]
    fn an_input_known_but_never_reported_holds_until_its_owner_reports() {
        let (_, wm) = marks();
        let all = ["a", "b"];
        assert_eq!(wm.observe(0, &[mark_knowing("a", 500, 0, &all)]), i64::MIN);
        assert_eq!(
            wm.observe(0, &[mark_knowing("a", 900, 5_000, &all)]),
            i64::MIN,
            "b is named but silent: it holds past the warm-up"
        );
        assert_eq!(wm.inputs_at_floor(), 1, "b");
        assert_eq!(
            wm.observe(0, &[mark_knowing("b", 200, 6_000, &all)]),
            200,
            "b reported"
        );
        assert_eq!(wm.observe(0, &[mark_knowing("b", 950, 7_000, &all)]), 900);
        assert_eq!(wm.inputs_at_floor(), 0);
    }

    #[test]
    fn a_known_input_nobody_reports_expires_and_stays_expired() {
        let (_, wm) = marks();
        let all = ["a", "gone"];
        wm.observe(0, &[mark_knowing("a", 500, 0, &all)]);
        assert_eq!(
            wm.observe(0, &[mark_knowing("a", 600, 9_000, &all)]),
            i64::MIN
        );
        assert_eq!(
            wm.observe(0, &[mark_knowing("a", 700, 10_000, &all)]),
            700,
            "gone was first named 10 s ago"
        );
        // Long after (past the hold's release), naming it again does not
        // make it hold again.
        assert_eq!(wm.observe(0, &[mark_knowing("a", 800, 60_000, &all)]), 800);
        assert_eq!(wm.observe(0, &[mark_knowing("a", 900, 61_000, &all)]), 900);
    }

    #[test]
    fn every_partition_holds_and_revoked_ones_are_forgotten() {
        let (tracker, wm) = marks();
        assert_eq!(wm.observe(1, &[mark("a", 100, 0)]), i64::MIN);
        assert_eq!(
            wm.observe(0, &[mark("a", 500, 0), mark("a", 500, 2_000)]),
            i64::MIN,
            "partition 1 still warming up"
        );
        assert_eq!(wm.observe(1, &[mark("a", 100, 2_000)]), 100);
        tracker.forget_partition(1);
        assert_eq!(wm.tick(), 500);
        assert_eq!(
            wm.observe(0, &[mark("a", 50, 3_000)]),
            500,
            "never backwards"
        );
    }
}
