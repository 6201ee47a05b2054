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
//! partitions heard on it, idle ones aside.
//!
//! An input partition its owner reports idle (quiet for the idle timeout
//! and caught up, by the owner's own
//! [`WatermarkTracker`](super::watermark::WatermarkTracker): `idle` in
//! [`super::partial::ProducerWatermark`]) is left out of the minimum, and
//! when every input is idle the highest of them decides, as on the direct
//! path. Without this, an idle partition that is the only one of its
//! replica would hold stage 2 back for as long as that replica runs: it is
//! reported at the replica's instance watermark, which is its own stale
//! mark, on every heartbeat, so it never expires. The last report read on
//! the repartition partition (the order its producers wrote in) decides
//! whether an input is idle. One that wakes up is reported active again
//! and holds from its new mark (never below what was reported before). Its
//! new events are at or after that mark, lateness aside; one dated before
//! stage 2's watermark, which moved on without it, falls in a window
//! already closed and is dropped as late (`trailwatch_events_late_total`),
//! as on the direct path when an idle partition wakes up. Records of
//! producers that do not write `idle` mark nothing idle.
//!
//! When an input partition moves to another stage-1 instance (rebalance,
//! or a dead replica), its last report keeps holding (at its watermark; not
//! at all if it said idle) until the new owner, replaying from the
//! committed offsets, reports it again: at the floor until it has read it
//! (the input then holds at the highest watermark reported before), then
//! as the new owner's tracker judges it (an input with no event to read is
//! reported idle, without a watermark). An input partition nobody has
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

use std::collections::{HashMap, HashSet};
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

/// What one repartition partition has heard of one input partition.
#[derive(Debug)]
struct InputMark {
    /// The highest watermark reported (`i64::MIN`: none yet).
    watermark: i64,
    /// Send time of its last report (or of the first record naming it).
    at: i64,
    /// Its last report (in the partition's order) said its owner judges it
    /// idle.
    idle: bool,
    /// The hold on that report's offset.
    hold: Option<AlertHold>,
}

impl InputMark {
    /// Not reported yet, named by a record sent at `at`.
    fn named(at: i64) -> Self {
        InputMark {
            watermark: i64::MIN,
            at,
            idle: false,
            hold: None,
        }
    }
}

#[derive(Debug, Default)]
struct PartitionMarks {
    generation: u64,
    /// Input partition -> what was heard of it.
    inputs: HashMap<String, InputMark>,
    first_at: Option<i64>,
    latest_at: i64,
}

impl PartitionMarks {
    /// The minimum over the inputs not expired and not idle; when every
    /// one is idle, the highest (as [`super::watermark::WatermarkTracker`]).
    fn watermark(&self, config: &MergeConfig) -> i64 {
        let Some(first_at) = self.first_at else {
            return i64::MIN;
        };
        if self.latest_at - first_at < config.warm_up_ms {
            return i64::MIN;
        }
        let live = || {
            self.inputs
                .values()
                .filter(|input| self.latest_at - input.at < config.idle_timeout_ms)
        };
        live()
            .filter(|input| !input.idle)
            .map(|input| input.watermark)
            .min()
            .or_else(|| live().map(|input| input.watermark).max())
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
                        .insert(input.clone(), InputMark::named(mark.at));
                }
            }
            let idle: HashSet<&str> = mark.idle.iter().map(String::as_str).collect();
            let reported: HashSet<&str> = mark.inputs.iter().map(|(i, _)| i.as_str()).collect();
            // Every input reported with a watermark, then those reported
            // idle only (no event, so no watermark).
            let reports = mark
                .inputs
                .iter()
                .map(|(input, watermark)| (input, Some(*watermark)))
                .chain(
                    mark.idle
                        .iter()
                        .filter(|input| !reported.contains(input.as_str()))
                        .map(|input| (input, None)),
                );
            for (input, watermark) in reports {
                let slot = entry
                    .inputs
                    .entry(input.clone())
                    .or_insert_with(|| InputMark::named(mark.at));
                // A new owner replaying the partition may report less
                // than the last owner did; the watermark never goes back.
                if let Some(watermark) = watermark {
                    slot.watermark = slot.watermark.max(watermark);
                }
                slot.at = slot.at.max(mark.at);
                // The last report read decides: the partition's order is
                // the order its producers wrote in.
                slot.idle = idle.contains(input.as_str());
                slot.hold = Some(
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
    /// not reported with a watermark yet, not idle, not expired (for
    /// metrics; counted on each call).
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
                    .filter(|(_, input)| {
                        input.watermark == i64::MIN
                            && !input.idle
                            && marks.latest_at - input.at < idle_timeout
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
            for input in marks.inputs.values_mut() {
                if latest - input.at >= idle_timeout.saturating_mul(4) {
                    input.hold = None;
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
                        epoch: agg.ep,
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
                    sequence_number: None,
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
            idle: Vec::new(),
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

    /// A report of `input` at `wm` that says it is idle.
    fn idle_mark(input: &str, wm: i64, at: i64) -> (ProducerWatermark, u64) {
        let (mut mark, offset) = mark(input, wm, at);
        mark.idle = vec![input.into()];
        (mark, offset)
    }

    /// A report naming `input` idle, with no event to report a watermark
    /// for, at repartition offset `offset`.
    fn idle_only(input: &str, at: i64, offset: u64) -> (ProducerWatermark, u64) {
        let (mut mark, _) = mark(input, i64::MIN, at);
        mark.inputs.clear();
        mark.idle = vec![input.into()];
        (mark, offset)
    }

    #[test]
    fn idle_inputs_do_not_hold_and_when_all_are_idle_the_highest_decides() {
        let (_, wm) = marks();
        wm.observe(0, &[idle_mark("a", 100, 0), mark("b", 500, 0)]);
        assert_eq!(wm.observe(0, &[mark("b", 600, 1_000)]), 600, "a is idle");
        assert_eq!(
            wm.observe(0, &[idle_mark("a", 100, 2_000), idle_mark("b", 700, 2_000)]),
            700,
            "both idle: the highest"
        );
        assert_eq!(
            wm.partition_watermark(0),
            700,
            "an idle input at the floor is no lower bound either"
        );
        wm.observe(0, &[idle_only("c", 2_500, 0)]);
        assert_eq!(wm.partition_watermark(0), 700);
        assert_eq!(wm.inputs_at_floor(), 0);
    }

    /// An older producer's record (no `idle`) and an owner that stops
    /// saying idle: the input holds again, from its new mark.
    #[test]
    fn an_input_not_reported_idle_holds_again_from_its_new_mark() {
        let (_, wm) = marks();
        wm.observe(0, &[idle_mark("a", 100, 0), mark("b", 500, 0)]);
        assert_eq!(wm.observe(0, &[mark("b", 900, 1_000)]), 900);
        assert_eq!(
            wm.observe(0, &[mark("a", 950, 1_500), mark("b", 1_200, 1_500)]),
            950,
            "a woke up and holds at its new mark"
        );
        assert_eq!(wm.partition_watermark(0), 950);
    }

    /// Input `a`, idle at its stale mark 100, moves to a new owner, which
    /// reports it at the floor until it has read it, then idle.
    #[test]
    fn an_idle_input_that_moves_holds_until_its_new_owner_judges_it() {
        let (tracker, wm) = marks();
        let all = ["a", "b"];
        wm.observe(0, &[idle_mark("a", 100, 0), mark("b", 500, 0)]);
        assert_eq!(wm.observe(0, &[mark("b", 600, 1_000)]), 600);
        // The new owner's first report: assigned, not read yet.
        wm.observe(0, &[mark_knowing("a", i64::MIN, 2_000, &all)]);
        assert_eq!(wm.partition_watermark(0), 100, "held at its last mark");
        // It has read `a` to its end: nothing came, so no watermark.
        let (b, _) = mark("b", 800, 3_000);
        assert_eq!(wm.observe(0, &[idle_only("a", 3_000, 7), (b, 8)]), 800);
        // The idle report holds its own offset, not an older report's.
        drop(tracker.begin_batch(0, 0, 10));
        assert_eq!(tracker.safe_position(0), Some(7));
    }

    /// Two-stage harness: stage-1 pre-aggregators and an in-process stage
    /// 2 (a partial worker and one shard, wired as the engine wires them).
    mod two_stage {
        use std::time::Duration;

        use crossbeam_channel::{unbounded, Receiver};

        use super::*;
        use crate::alert::Alert;
        use crate::engine::preagg::{PartialFlush, PreaggConfig, Preaggregator};
        use crate::engine::shard::{Match, MatchBatch, Shard, ShardConfig, Span};
        use crate::engine::watermark::WatermarkTracker;
        use crate::engine::window::EvidenceLimits;
        use crate::metrics::RepartitionCounters;

        /// 2024-03-01T12:00:00Z, on a 5-minute boundary.
        pub const T: i64 = 1_709_294_400_000;
        pub const MIN: i64 = 60_000;

        /// One 5-minute count rule `r` on `account`, with `extra` (its
        /// threshold at least).
        pub fn rules(extra: &str) -> Arc<RuleSet> {
            let text = format!(
                "id: r\ntitle: r\nseverity: low\nkind: cloudtrail\n\
                 filter: '{{ $.eventName = \"X\" }}'\ngroup_by: [account]\n\
                 window: 5m\n{extra}"
            );
            let spec = crate::rules::parse_rule_text("test", &text).expect("rule");
            Arc::new(RuleSet::compile(&[spec]).expect("compile"))
        }

        /// Matches of rule 0 for key `key`: (time, offset) each.
        pub fn matches(partition: PartitionId, key: &str, items: &[(i64, u64)]) -> MatchBatch {
            let mut batch = MatchBatch::default();
            let sample = batch.intern("{}");
            let key = batch.intern(key);
            for &(time_ms, offset) in items {
                batch.matches.push(Match {
                    rule: 0,
                    time_ms,
                    value: 1.0,
                    distinct_hash: 0,
                    key,
                    sample,
                    id: Span::NONE,
                    account: Span::NONE,
                    region: Span::NONE,
                    partition,
                    offset,
                });
            }
            batch
        }

        /// Runs one stage-1 pre-aggregator named `producer` over
        /// `messages` and returns the repartition records it writes.
        pub fn stage1(
            rules: &Arc<RuleSet>,
            registry: &Arc<PartitionRegistry>,
            watermarks: &Arc<WatermarkTracker>,
            producer: &str,
            messages: Vec<ShardMsg>,
        ) -> Vec<Vec<u8>> {
            let preaggregator = Preaggregator::new(
                0,
                Arc::clone(rules),
                PreaggConfig {
                    flush_interval: Duration::from_secs(3600),
                    heartbeat: Duration::from_secs(3600),
                    preaggregate: true,
                    max_buffered: usize::MAX,
                    producer: producer.into(),
                    evidence: EvidenceLimits::default(),
                },
                CommitTracker::new(1),
                Arc::new(WorkerCounters::default()),
                Arc::clone(registry),
                Arc::clone(watermarks),
            );
            let (tx, rx) = unbounded();
            let (out_tx, out_rx) = unbounded::<PartialFlush>();
            for message in messages {
                tx.send(message).expect("open channel");
            }
            drop(tx);
            preaggregator.run(rx, out_tx);
            out_rx
                .try_iter()
                .flat_map(|flush| {
                    let mut records: Vec<Vec<u8>> =
                        flush.partials.into_iter().map(|p| p.value).collect();
                    records.extend(flush.watermark.map(|w| w.value));
                    records
                })
                .collect()
        }

        pub struct Stage2 {
            pub tracker: CommitTracker,
            pub registry: Arc<PartitionRegistry>,
            pub watermarks: Arc<RemoteWatermarks>,
            /// The shard's counters.
            pub counters: Arc<WorkerCounters>,
            /// The shard's replay-check counters.
            pub repartition: Arc<RepartitionCounters>,
            worker: PartialWorker,
            pub shard: Shard,
            rx: Receiver<ShardMsg>,
            _dead: Receiver<DeadLetterBatch>,
            next_offsets: HashMap<PartitionId, u64>,
        }

        impl Stage2 {
            pub fn new(rules: &Arc<RuleSet>) -> Self {
                let tracker = CommitTracker::new(1);
                let metrics = Metrics::new(1, 1, Vec::new());
                let registry = Arc::new(PartitionRegistry::default());
                let (tx, rx) = unbounded();
                let (dead_tx, dead_rx) = unbounded();
                let watermarks = Arc::new(RemoteWatermarks::new(
                    MergeConfig {
                        idle_timeout_ms: 300_000,
                        warm_up_ms: 0,
                    },
                    tracker.clone(),
                ));
                let worker = PartialWorker::new(
                    Arc::clone(rules),
                    tracker.clone(),
                    vec![tx],
                    Arc::clone(&watermarks),
                    Arc::clone(&metrics.decoders[0]),
                    Arc::clone(&metrics),
                    Arc::clone(&registry),
                    dead_tx,
                );
                let counters = Arc::new(WorkerCounters::default());
                let repartition = Arc::new(RepartitionCounters::default());
                let shard = Shard::new(
                    0,
                    Arc::clone(rules),
                    ShardConfig {
                        max_open_windows: 1 << 20,
                        max_state_bytes: usize::MAX,
                        evidence: EvidenceLimits::default(),
                        eager_sliding: true,
                        drop_revoked: true,
                    },
                    tracker.clone(),
                    Arc::clone(&counters),
                )
                .with_repartition_counters(Arc::clone(&repartition));
                Stage2 {
                    tracker,
                    registry,
                    watermarks,
                    counters,
                    repartition,
                    worker,
                    shard,
                    rx,
                    _dead: dead_rx,
                    next_offsets: HashMap::new(),
                }
            }

            /// Reads `records` from repartition partition `repart/0` (at
            /// the next offsets) and returns the alerts they led to.
            pub fn feed(&mut self, records: &[Vec<u8>]) -> Vec<Alert> {
                self.feed_on("repart/0", records)
            }

            /// [`Stage2::feed`] from repartition partition `name`.
            pub fn feed_on(&mut self, name: &str, records: &[Vec<u8>]) -> Vec<Alert> {
                let partition = self.registry.id("kafka", name);
                let next_offset = self.next_offsets.entry(partition).or_default();
                let mut raw = RawBatch::new(partition);
                raw.generation = self.tracker.generation(partition);
                for bytes in records {
                    raw.push(bytes, *next_offset);
                    *next_offset += 1;
                }
                assert!(self.worker.process(raw));
                while let Ok(message) = self.rx.try_recv() {
                    // As the shard's own loop does before each message.
                    self.shard.drop_revoked();
                    match message {
                        ShardMsg::Partials(batch) => self.shard.process_partials(batch),
                        other => panic!("stage 2 sent {other:?}"),
                    }
                }
                self.shard
                    .take_output()
                    .into_iter()
                    .map(|e| e.alert)
                    .collect()
            }
        }
    }

    /// A key's alarm state goes with its repartition partition: once that
    /// is revoked, the old owner sends nothing more for the key (the new
    /// owner rebuilds the alarm from the replay), while its other keys go
    /// on.
    #[test]
    fn a_revoked_partitions_alarm_states_leave_the_old_owner() {
        use crate::alert::{Activity, Alert};
        use crate::engine::partial::PartialAgg;
        use crate::engine::window::{window_start, WindowAgg};
        use crate::rules::compile::Aggregate;
        use two_stage::{rules, Stage2, MIN, T};

        let input = "kafka:ct/0";
        let partial = |key: &str, time: i64, n: u64, o0: u64| {
            let mut agg = WindowAgg::new(Aggregate::Count);
            for i in 0..n {
                agg.add(1.0, 0, time, (0, o0 + i));
            }
            let bucket = window_start(time, 5 * MIN);
            PartialAgg::from_window("r", key, bucket, &agg, input, (o0, o0 + n - 1)).encode()
        };
        let mark = |wm: i64| {
            ProducerWatermark {
                src: "x-0".into(),
                wm,
                at: crate::source::now_ms(),
                inputs: vec![(input.into(), wm)],
                all: Vec::new(),
                idle: Vec::new(),
            }
            .encode()
        };
        let rules = rules("threshold: '>= 3'\nevaluation: {periods: 3, datapoints: 2}\n");
        let mut stage2 = Stage2::new(&rules);
        let for_key = |alerts: &[Alert], key: &str| -> Vec<Activity> {
            alerts
                .iter()
                .filter(|a| a.key == [key])
                .map(|a| a.activity)
                .collect()
        };
        // k (repart/0) and j (repart/1) breach two periods: both ALARM.
        let mut alerts = Vec::new();
        for (period, o0) in [(0, 0), (5, 10)] {
            let time = T + (period + 1) * MIN;
            let close = mark(T + (period + 5) * MIN);
            alerts.extend(stage2.feed_on("repart/0", &[partial("k", time, 3, o0), close.clone()]));
            alerts.extend(stage2.feed_on("repart/1", &[partial("j", time, 3, 100 + o0), close]));
        }
        assert_eq!(for_key(&alerts, "k"), [Activity::Create]);
        assert_eq!(for_key(&alerts, "j"), [Activity::Create]);

        let r0 = stage2.registry.id("kafka", "repart/0");
        stage2.tracker.forget_partition(r0);
        // Quiet periods on repart/1: j's alarm clears; k is no longer ours.
        let mut after = Vec::new();
        for end in [15, 20, 25, 30] {
            after.extend(stage2.feed_on("repart/1", &[mark(T + end * MIN)]));
        }
        assert_eq!(for_key(&after, "j"), [Activity::Close], "{after:?}");
        assert_eq!(for_key(&after, "k"), [], "{after:?}");
    }

    /// A late partial of 40 events is 40 late events, and a stage-2 shard
    /// counts the events of the partials it merges as matches (tumbling and
    /// sliding rules).
    #[test]
    fn stage_2_counts_late_and_matched_events_not_partials() {
        use crate::engine::partial::PartialAgg;
        use crate::engine::window::{window_start, WindowAgg};
        use crate::rules::compile::Aggregate;
        use two_stage::{rules, Stage2, MIN, T};

        // `n` matches of key "k" at `time`, input offsets from `o0`.
        let partial = |time: i64, n: u64, o0: u64, width: i64| {
            let mut agg = WindowAgg::new(Aggregate::Count);
            for i in 0..n {
                agg.add(1.0, 0, time, (0, o0 + i));
            }
            let bucket = window_start(time, width);
            PartialAgg::from_window("r", "k", bucket, &agg, "kafka:ct/0", (o0, o0 + n - 1)).encode()
        };
        for (extra, width) in [("", 5 * MIN), ("slide: 1m\n", MIN)] {
            let rules = rules(&format!("threshold: '>= 1000'\n{extra}"));
            let mut stage2 = Stage2::new(&rules);
            let wm = T + 25 * MIN;
            let mark = ProducerWatermark {
                src: "x-0".into(),
                wm,
                at: crate::source::now_ms(),
                inputs: vec![("kafka:ct/0".into(), wm)],
                all: Vec::new(),
                idle: Vec::new(),
            };
            stage2.feed(&[mark.encode()]);
            // The first window (or pane) closed at T+25m.
            stage2.feed(&[
                partial(T + 1_000, 40, 0, width),
                partial(T + 30 * MIN, 3, 40, width),
            ]);
            let counters = &stage2.counters;
            let count = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
            assert_eq!(
                (count(&counters.late), count(&counters.matches)),
                (40, 43),
                "(late, matches) events, {extra:?}"
            );
        }
    }

    /// The audit's case: input partition ct/1, the only one replica Y
    /// reads, has been idle for ten minutes, its last event an hour before
    /// ct/0's (replica X). The direct path leaves ct/1 out of the
    /// watermark and closes the window of X's match. Y's instance
    /// watermark is ct/1's own stale mark, which Y reports on every
    /// heartbeat: stage 2 must leave ct/1 out as well, and not wait an
    /// hour behind for as long as Y runs.
    #[test]
    fn an_idle_input_on_another_replica_does_not_hold_stage_2() {
        use crate::engine::watermark::{Progress, WatermarkConfig, WatermarkTracker};
        use two_stage::{matches, rules, stage1, Stage2, MIN, T};

        let rules = rules("threshold: '< 3'\n");
        let registry = Arc::new(PartitionRegistry::default());
        let (p0, p1) = (registry.id("kafka", "ct/0"), registry.id("kafka", "ct/1"));
        let now = crate::source::now_ms();
        let active = Progress {
            max_event_ms: Some(T + 40 * MIN),
            arrival_ms: Some(now),
            caught_up: false,
        };
        let idle = Progress {
            max_event_ms: Some(T - 60 * MIN),
            arrival_ms: Some(now - 10 * MIN),
            caught_up: true,
        };
        let tracker = |observed: &[(PartitionId, Progress)]| {
            let tracker = Arc::new(WatermarkTracker::new(WatermarkConfig::default()));
            tracker.exists(p0);
            tracker.exists(p1);
            for (partition, progress) in observed {
                tracker.observe(*partition, *progress, now);
            }
            tracker
        };
        // The direct path, reading both.
        let direct = tracker(&[(p1, idle), (p0, active)]).current();
        assert_eq!(direct, T + 25 * MIN);

        let wx = tracker(&[(p0, active)]);
        let mut xb = matches(p0, "k", &[(T + 1_000, 5)]);
        xb.watermark_ms = wx.current();
        xb.input_watermark = wx.partition_watermark(p0).map(|wm| (p0, wm, 0));
        let x = stage1(
            &rules,
            &registry,
            &wx,
            "x",
            vec![ShardMsg::Matches(xb), ShardMsg::FlushAll { until: None }],
        );
        let wy = tracker(&[(p1, idle)]);
        assert_eq!(wy.current(), T - 75 * MIN, "Y's instance watermark");
        let mut yb = matches(p1, "k", &[]);
        yb.watermark_ms = wy.current();
        yb.input_watermark = wy.partition_watermark(p1).map(|wm| (p1, wm, 0));
        // Three heartbeats.
        let flush = || ShardMsg::FlushAll { until: None };
        let y = stage1(
            &rules,
            &registry,
            &wy,
            "y",
            vec![ShardMsg::Matches(yb), flush(), flush(), flush()],
        );

        let mut stage2 = Stage2::new(&rules);
        let mut alerts = Vec::new();
        for records in [&x, &y, &x] {
            alerts.extend(stage2.feed(records));
        }
        assert_eq!(
            (stage2.watermarks.current() - T) / MIN,
            (direct - T) / MIN,
            "stage 2's watermark (minutes past T) is the direct path's"
        );
        let alerts: Vec<(i64, u64)> = alerts
            .iter()
            .map(|a| ((a.window_start_ms - T) / MIN, a.count))
            .collect();
        assert_eq!(alerts, [(0, 1)], "the window of X's match closed");
    }

    /// The scale-out churn test's failure at 8fd4803: stage-1 owner A of
    /// input ct/0 (its epoch 8) read [10, 31] and flushed it, but the
    /// flush reached the repartition topic only after the partition's next
    /// owner B (epoch 32) had replayed and flushed [10, 15] (A's revocation
    /// gave up waiting for it, or A took it just after the wait). B then
    /// sends [20, 40]. Whatever the order, stage 2 counts each of the 8
    /// events once, in a tumbling window or a sliding rule's pane; merged
    /// whole, A's late partial made it 11.
    #[test]
    fn a_previous_owners_late_flush_is_not_counted_twice() {
        for extra in ["", "slide: 1m\n"] {
            late_flush_of_a_previous_owner(extra);
        }
    }

    fn late_flush_of_a_previous_owner(extra: &str) {
        use crate::engine::watermark::{WatermarkConfig, WatermarkTracker};
        use two_stage::{matches, rules, stage1, Stage2, T};

        let rules = rules(&format!("threshold: '>= 8'\n{extra}"));
        let registry = Arc::new(PartitionRegistry::default());
        let input = registry.id("kafka", "ct/0");
        let watermarks = Arc::new(WatermarkTracker::new(WatermarkConfig::default()));
        let owner = |name: &str, epoch: u64, offsets: &[u64]| {
            let items: Vec<(i64, u64)> = offsets.iter().map(|&o| (T + o as i64, o)).collect();
            let mut batch = matches(input, "k", &items);
            batch.replay_end = epoch;
            let flush = ShardMsg::FlushAll { until: None };
            stage1(
                &rules,
                &registry,
                &watermarks,
                name,
                vec![ShardMsg::Matches(batch), flush],
            )
        };
        let a = owner("a", 8, &[10, 12, 15, 20, 25, 25, 31]);
        let b_first = owner("b", 32, &[10, 12, 15]);
        let b_rest = owner("b", 32, &[20, 25, 25, 31, 40]);
        for (order, superseded) in [
            ([&b_first, &a, &b_rest], 1),
            ([&a, &b_first, &b_rest], 0),
            ([&b_first, &b_rest, &a], 0),
        ] {
            let mut stage2 = Stage2::new(&rules);
            let alerts: Vec<u64> = order
                .iter()
                .flat_map(|records| stage2.feed(records))
                .map(|alert| alert.count)
                .collect();
            let counters = &stage2.repartition;
            let count = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
            assert_eq!(
                alerts,
                [8],
                "one Create, every event counted once {extra:?}"
            );
            assert_eq!(
                (count(&counters.superseded), count(&counters.overlaps)),
                (superseded, 0),
                "(superseded, overlaps) {extra:?}"
            );
        }
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
