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
//! Each stage-1 producer writes its watermark to every repartition
//! partition after the partials it covers, so per partition the watermark
//! is the minimum over the producers heard on it. Producers die and are
//! replaced (their input partitions move to another stage-1 instance,
//! which replays them from the committed offsets), so a producer whose
//! last watermark is older, *in producers' send time* (`at`), than
//! `idle_timeout` behind the freshest producer of that partition stops
//! holding it back; send time rather than local arrival keeps a replay of
//! old repartition records from expiring everybody. A partition holds the
//! watermark at its floor until it has heard `warm_up` of send time, so
//! that the first producer read after an assignment cannot close windows
//! that slower producers still feed. Stage 2's watermark is the minimum
//! over its assigned partitions and never moves backwards; partitions
//! revoked from this instance are forgotten.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use compact_str::CompactString;
use crossbeam_channel::Sender;

use super::commit::CommitTracker;
use super::partial::{self, PartialError, RepartitionRecord};
use super::shard::{MergePartial, PartialBatch, ShardMsg};
use super::worker::{route, DeadLetterBatch};
use crate::error::ErrorClass;
use crate::metrics::{Metrics, Tally, WorkerCounters};
use crate::rules::compile::RuleIdx;
use crate::rules::RuleSet;
use crate::sink::DeadLetter;
use crate::source::{PartitionId, PartitionRegistry, RawBatch};

/// Stage-2 watermark settings.
#[derive(Debug, Clone, Copy)]
pub struct MergeConfig {
    /// A producer this far (send time) behind its partition's freshest
    /// producer no longer holds the partition back.
    pub idle_timeout_ms: i64,
    /// Send time a partition must have heard before it lets the
    /// watermark advance.
    pub warm_up_ms: i64,
}

#[derive(Debug, Default)]
struct PartitionMarks {
    generation: u64,
    /// Producer -> (watermark, send time).
    producers: HashMap<String, (i64, i64)>,
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
        self.producers
            .values()
            .filter(|(_, at)| self.latest_at - at < config.idle_timeout_ms)
            .map(|(wm, _)| *wm)
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
    pub fn observe(&self, partition: PartitionId, marks: &[partial::ProducerWatermark]) -> i64 {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.tracker.generation(partition);
        let entry = partitions.entry(partition).or_default();
        if entry.generation != generation {
            *entry = PartitionMarks {
                generation,
                ..PartitionMarks::default()
            };
        }
        for mark in marks {
            let slot = entry
                .producers
                .entry(mark.src.clone())
                .or_insert((mark.wm, mark.at));
            slot.0 = slot.0.max(mark.wm);
            slot.1 = slot.1.max(mark.at);
            entry.first_at = Some(entry.first_at.map_or(mark.at, |f| f.min(mark.at)));
            entry.latest_at = entry.latest_at.max(mark.at);
        }
        self.recompute(&mut partitions)
    }

    /// Re-evaluates (revocations) and returns the watermark.
    pub fn tick(&self) -> i64 {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        self.recompute(&mut partitions)
    }

    /// The current stage-2 watermark.
    pub fn current(&self) -> i64 {
        self.current.load(Ordering::Relaxed)
    }

    fn recompute(&self, partitions: &mut HashMap<PartitionId, PartitionMarks>) -> i64 {
        partitions.retain(|p, marks| self.tracker.generation(*p) == marks.generation);
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
    last_watermark_sent: Vec<i64>,
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
        let shard_count = shards.len();
        PartialWorker {
            rules,
            rule_index,
            tracker,
            shards,
            watermarks,
            last_watermark_sent: vec![i64::MIN; shard_count],
            counters,
            metrics,
            registry,
            dead_letters,
        }
    }

    /// Decodes and routes one repartition batch. Returns false when the
    /// shards have gone away (shutdown).
    pub fn process(&mut self, batch: RawBatch) -> bool {
        let first = batch
            .records
            .first()
            .map(|(_, o)| *o)
            .into_iter()
            .chain(batch.rejected.first().map(|r| r.offset))
            .min()
            .unwrap_or(0);
        let end = batch
            .records
            .last()
            .map(|(_, o)| o + 1)
            .into_iter()
            .chain(batch.rejected.last().map(|r| r.offset + 1))
            .max()
            .unwrap_or(first);
        let token = self.tracker.begin_batch(batch.partition, first, end);
        let generation = self.tracker.generation(batch.partition);
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
        for rejected in &batch.rejected {
            tally.records += 1;
            tally.bytes += rejected.bytes.len() as u64;
            dead.push(DeadLetter {
                partition: partition_name.clone(),
                offset: rejected.offset,
                class: ErrorClass::User,
                reason: rejected.reason.as_str(),
                detail: rejected.detail.clone(),
                bytes: rejected.bytes.clone(),
            });
        }
        for (range, offset) in &batch.records {
            let bytes = &batch.data[range.clone()];
            tally.records += 1;
            tally.bytes += bytes.len() as u64;
            counters
                .consumed_bytes
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            let record = partial::decode(bytes).and_then(|record| match record {
                RepartitionRecord::Partial { agg, .. } => {
                    let Some(&rule_idx) = self.rule_index.get(&agg.r) else {
                        return Err(PartialError::UnknownRule(agg.r));
                    };
                    let aggregate = self.rules.rule(rule_idx).aggregate;
                    let window = agg.to_window(aggregate, (batch.partition, *offset));
                    let shard = route(rule_idx, &agg.k, self.shards.len());
                    outputs[shard].partials.push(MergePartial {
                        rule: rule_idx,
                        key: CompactString::from(agg.k),
                        agg: window,
                        input: CompactString::from(agg.p),
                        first_offset: agg.o0,
                        last_offset: agg.o1,
                    });
                    counters.consumed.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                RepartitionRecord::Watermark { mark, .. } => {
                    marks.push(mark);
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
                });
            }
        }
        self.counters.add(&tally);
        let dead_hold = dead.iter().map(|d| d.offset).min().map(|first| {
            self.tracker
                .hold_alert(&super::commit::Holds::from_slice(&[(
                    batch.partition,
                    first,
                )]))
        });
        if let Some(hold) = dead_hold {
            if self.dead_letters.send((dead, hold)).is_err() {
                return false;
            }
        }
        // Partials go out under the watermark from before this batch's
        // watermark records: those follow the partials they cover.
        let before = self.watermarks.current();
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
        let watermark = self.watermarks.observe(batch.partition, &marks);
        self.metrics
            .watermark_ms
            .fetch_max(watermark, Ordering::Relaxed);
        drop(token);
        self.send_watermark(watermark)
    }

    /// Re-evaluates the watermark and tells the shards.
    pub fn tick(&mut self) -> bool {
        let watermark = self.watermarks.tick();
        self.send_watermark(watermark)
    }

    fn send_watermark(&mut self, watermark: i64) -> bool {
        for (index, shard) in self.shards.iter().enumerate() {
            if self.last_watermark_sent[index] >= watermark {
                continue;
            }
            self.last_watermark_sent[index] = watermark;
            let batch = PartialBatch {
                watermark_ms: watermark,
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

    fn mark(src: &str, wm: i64, at: i64) -> ProducerWatermark {
        ProducerWatermark {
            src: src.into(),
            wm,
            at,
        }
    }

    fn marks() -> (CommitTracker, RemoteWatermarks) {
        let tracker = CommitTracker::new(1);
        let config = MergeConfig {
            idle_timeout_ms: 10_000,
            warm_up_ms: 1_000,
        };
        (tracker.clone(), RemoteWatermarks::new(config, tracker))
    }

    #[test]
    fn minimum_over_producers_after_warm_up() {
        let (_, wm) = marks();
        assert_eq!(wm.observe(0, &[mark("a", 500, 0)]), i64::MIN, "warming up");
        assert_eq!(wm.observe(0, &[mark("b", 300, 100)]), i64::MIN);
        assert_eq!(wm.observe(0, &[mark("a", 900, 1_000)]), 300, "b holds it");
        assert_eq!(wm.observe(0, &[mark("b", 800, 1_200)]), 800);
    }

    #[test]
    fn a_silent_producer_expires_by_send_time() {
        let (_, wm) = marks();
        wm.observe(0, &[mark("dead", 100, 0), mark("a", 500, 0)]);
        assert_eq!(wm.observe(0, &[mark("a", 600, 5_000)]), 100);
        assert_eq!(
            wm.observe(0, &[mark("a", 700, 10_000)]),
            700,
            "dead is 10 s behind"
        );
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
