//! Stage-1 pre-aggregators: match batches in, partial aggregates out.
//!
//! In a scaled-out deployment (two stages, see [`super::Stage`]) the shard
//! threads of stage 1 are pre-aggregators. Each folds the matches routed to
//! it into one [`WindowAgg`] per `(rule, group key, bucket)` (the bucket is
//! the rule's tumbling window, or its sliding pane), and every
//! `flush_interval` hands all of them, encoded as [`PartialAgg`] records,
//! to the repartition sink, followed by its watermark ([`ProducerWatermark`]).
//! A hot key thus costs one record per flush instead of one per event.
//!
//! # Delivery contract
//!
//! Until a flush, the pre-aggregator publishes the first offset per input
//! partition of everything it buffers as its shard holds (as a shard does
//! for open windows). A flush turns those into an [`AlertHold`] that
//! travels with the records and is released only when the repartition
//! sink has them acknowledged, so input offsets are committed only past
//! partials that are durably on the repartition topic.
//!
//! # Replays
//!
//! A partial that begins below its batch's `replay_end` (input a previous
//! owner of the partition may already have sent) lists the input offset of
//! every match it folds, and the value for sum and average rules, so that
//! stage 2 merges exactly the matches the previous owner had not sent
//! ([`super::partial`], "Replays"): a few bytes per match during the
//! catch-up after a takeover, nothing afterwards. Every partial names the
//! `replay_end` of the batch that began it as its assignment's epoch, so
//! that stage 2 can tell a previous owner's late flush from the replay
//! that supersedes it. Matches buffered for an
//! assignment that was revoked before the flush are dropped: the
//! partition's new owner replays them from the committed offset, which
//! never passed them.
//!
//! # Partial size
//!
//! A partial must fit one repartition record (librdkafka's default
//! `message.max.bytes` is 1,000,000): one refused as too large would be
//! refused again after every restart, stopping stage 1. Distinct values
//! (up to 21 bytes each) and listed offsets and values (up to 21 and 25)
//! grow with the matches, so:
//!
//! * an entry whose distinct values and listed offsets and values pass
//!   [`ENTRY_BUDGET`] (256 KiB) is cut before its next input record, and
//!   the matches that follow start a new partial (partials of one key
//!   cover consecutive offset ranges, as across flushes);
//! * a partial never takes more than [`RECORD_CHUNK`] (8,192) matches of
//!   one input record: the events of a record share its offset, so a
//!   record is never cut between partials of the same input (stage 2
//!   would take the second for a replay). Matches past that go, 8,192 at
//!   a time, to *continuations* of the record, whose input name names
//!   the chunk ([`super::partial`], "Replays"); the split depends only on
//!   the record, so every owner splits it the same way;
//! * account, region, sample ids and texts are kept while they fit
//!   [`EVIDENCE_BUDGET`] (128 KiB encoded; the default evidence limits
//!   take under 40 KB, and only a long configured `max_samples` or
//!   `max_sample_bytes`, or an id, account or region of hundreds of
//!   kilobytes in the input, is cut: evidence only).
//!
//! So a partial's value takes at most 256 KiB + 21 + 8,192 x 27 (a
//! record's matches: a distinct value, or a listed value, and a listed
//! offset of 0) + 128 KiB, about 615 KB, plus some 300 bytes of fields
//! and its rule id, input name and group key (JSON-escaped); its record
//! key repeats the rule id and group key. A group key is input data,
//! bounded only by `max_record_bytes`: one of hundreds of kilobytes still
//! makes a record too large, and the repartition sink's error names it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::commit::{AlertHold, CommitTracker, Holds, ShardHolds};
use super::partial::{continuation_input, PartialAgg, ProducerWatermark, ReplayOffsets};
use super::shard::{MatchBatch, ShardMsg};
use super::watermark::WatermarkTracker;
use super::window::{window_start, EvidenceLimits, Samples, WindowAgg};
use crate::metrics::{Tally, WorkerCounters};
use crate::rules::compile::{Aggregate, RuleIdx};
use crate::rules::RuleSet;
use crate::source::{now_ms, PartitionId, PartitionRegistry};
pub use marks::FlushedMarks;

mod marks;

/// One encoded repartition record.
#[derive(Debug, Clone)]
pub struct PartialRecord {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// What one flush hands to the repartition sink: partials first, then one
/// watermark record for every repartition partition.
#[derive(Debug)]
pub struct PartialFlush {
    pub partials: Vec<PartialRecord>,
    pub watermark: Option<PartialRecord>,
    /// Dropping this (after the sink's acknowledgement) releases the input.
    pub hold: Option<AlertHold>,
}

/// Stage-1 settings.
#[derive(Debug, Clone)]
pub struct PreaggConfig {
    /// How long matches are folded before they are sent.
    pub flush_interval: Duration,
    /// Longest gap between watermark records of an idle producer.
    pub heartbeat: Duration,
    /// Fold matches of one key and bucket into one partial; `false` sends
    /// one partial per match (measurement baseline).
    pub preaggregate: bool,
    /// Flush early beyond this many buffered partials.
    pub max_buffered: usize,
    /// This producer's name in watermark records (unique per instance).
    pub producer: String,
    pub evidence: EvidenceLimits,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EntryKey {
    rule: RuleIdx,
    key: CompactString,
    bucket: i64,
    /// One partial per input partition, so that each covers one offset
    /// range (stage 2's replay check).
    partition: PartitionId,
    /// 0 when folding, else the input offset plus one (one input record
    /// per partial).
    record: u64,
    /// The partition's assignment generation: matches of a revoked
    /// assignment are dropped at the flush (the new owner replays them).
    generation: u64,
    /// 0 for the entry that folds; `k` for continuation `k` of input
    /// record `record - 1` (module doc, "Partial size").
    chunk: u32,
}

/// One buffered partial.
struct Entry {
    agg: WindowAgg,
    last_offset: u64,
    /// Its matches' offsets (and values, sum and average rules), when it
    /// began below its batch's `replay_end` (module doc, "Replays").
    replay: Option<ReplayOffsets>,
    /// Bytes its distinct values and listed offsets and values take in the
    /// partial (an upper bound; module doc, "Partial size").
    bytes: usize,
    /// The input record it folds last, and how many matches of that
    /// record came to its key (the ones past [`RECORD_CHUNK`] went to
    /// continuations).
    record: u64,
    record_matches: u64,
    /// Its assignment's epoch, the `replay_end` of the batch that began it
    /// (module doc, "Replays").
    epoch: u64,
}

impl Entry {
    fn new(aggregate: Aggregate, offset: u64, listed: bool, epoch: u64) -> Self {
        Entry {
            agg: WindowAgg::new(aggregate),
            last_offset: offset,
            replay: listed.then(|| ReplayOffsets {
                offsets: Vec::new(),
                values: Vec::new(),
            }),
            bytes: 0,
            record: offset,
            record_matches: 0,
            epoch,
        }
    }
}

/// Bytes of distinct values and listed offsets and values past which an
/// entry is cut at its next input record (module doc, "Partial size").
pub const ENTRY_BUDGET: usize = 256 * 1024;

/// Matches of one input record one partial takes, per key and bucket;
/// the rest go to continuations (module doc, "Partial size").
pub const RECORD_CHUNK: u64 = 8192;

/// Encoded bytes of sample ids and texts, account and region one partial
/// carries at most (module doc, "Partial size").
pub const EVIDENCE_BUDGET: usize = 128 * 1024;

/// The most bytes one value listed for a sum or average rule takes in a
/// partial (`-2.2250738585072014e-308` and a comma).
const LISTED_VALUE_BYTES: usize = 25;

/// One pre-aggregator thread's state.
pub struct Preaggregator {
    index: usize,
    rules: Arc<RuleSet>,
    config: PreaggConfig,
    tracker: CommitTracker,
    counters: Arc<WorkerCounters>,
    /// Aggregate and last input offset per entry.
    entries: hashbrown::HashMap<EntryKey, Entry>,
    /// Entries cut at their budget, sent at the next flush.
    sealed: Vec<(EntryKey, Entry)>,
    /// Continuations of input records (module doc, "Partial size").
    continuations: hashbrown::HashMap<EntryKey, Entry>,
    registry: Arc<PartitionRegistry>,
    /// Stage 1's watermark tracker, asked which input partitions are idle.
    watermarks: Arc<WatermarkTracker>,
    /// What this instance's pre-aggregators have flushed (see [`marks`]).
    flushed: Arc<FlushedMarks>,
    /// Partition -> first offsets buffered (multiset).
    holds: ShardHolds,
    watermark_ms: i64,
    /// Watermark and assignment generation per owned input partition
    /// (from the batches received).
    input_marks: HashMap<PartitionId, (i64, u64)>,
    inputs_changed: bool,
    last_watermark_sent: i64,
    last_flush: Instant,
    last_watermark_at: Instant,
    tally: Tally,
}

impl Preaggregator {
    /// A pre-aggregator with nothing buffered.
    pub fn new(
        index: usize,
        rules: Arc<RuleSet>,
        config: PreaggConfig,
        tracker: CommitTracker,
        counters: Arc<WorkerCounters>,
        registry: Arc<PartitionRegistry>,
        watermarks: Arc<WatermarkTracker>,
    ) -> Self {
        Preaggregator {
            registry,
            watermarks,
            flushed: Arc::new(FlushedMarks::new(1)),
            index,
            rules,
            config,
            tracker,
            counters,
            entries: hashbrown::HashMap::new(),
            sealed: Vec::new(),
            continuations: hashbrown::HashMap::new(),
            holds: ShardHolds::default(),
            watermark_ms: i64::MIN,
            input_marks: HashMap::new(),
            inputs_changed: false,
            last_watermark_sent: i64::MIN,
            last_flush: Instant::now(),
            last_watermark_at: Instant::now(),
            tally: Tally::default(),
        }
    }

    /// Shares `flushed` with the other pre-aggregators of this instance (it
    /// reports input marks every one of them has flushed; alone by default).
    pub fn with_siblings(mut self, flushed: Arc<FlushedMarks>) -> Self {
        self.flushed = flushed;
        self
    }

    /// Runs until the input channel closes, flushing on the interval.
    pub fn run(mut self, input: Receiver<ShardMsg>, output: Sender<PartialFlush>) {
        let tick = self.config.flush_interval.max(Duration::from_millis(1));
        loop {
            match input.recv_timeout(tick) {
                Ok(ShardMsg::Matches(batch)) => self.add(batch),
                Ok(ShardMsg::FlushAll { .. }) => {
                    if !self.flush(&output, true) {
                        return;
                    }
                }
                Ok(ShardMsg::Partials(_)) => {
                    tracing::error!(
                        index = self.index,
                        "a stage-1 pre-aggregator received partials, ignored"
                    );
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Shutdown: what is buffered stays uncommitted and is
                    // replayed by the next owner of the input.
                    return;
                }
            }
            let due = self.last_flush.elapsed() >= self.config.flush_interval
                || self.buffered() >= self.config.max_buffered
                || !self.config.preaggregate;
            if due && !self.flush(&output, false) {
                return;
            }
        }
    }

    /// Folds one batch of matches.
    pub fn add(&mut self, batch: MatchBatch) {
        for m in &batch.matches {
            let rule = self.rules.rule(m.rule);
            let width = rule.slide_ms.unwrap_or(rule.window_ms);
            // Without pre-aggregation, one partial per input record (not per
            // match: the events of one record, an S3 log file, share its
            // offset, and stage 2 would take the second for a replay).
            let record = if self.config.preaggregate {
                0
            } else {
                m.offset + 1
            };
            let entry_key = EntryKey {
                rule: m.rule,
                key: CompactString::from(batch.text(m.key)),
                bucket: window_start(m.time_ms, width),
                partition: m.partition,
                record,
                generation: batch.generation,
                chunk: 0,
            };
            // Input a previous owner may have sent: listed.
            let listed = m.offset < batch.replay_end;
            let head = match self.entries.entry(entry_key) {
                hashbrown::hash_map::Entry::Occupied(mut occupied) => {
                    let head = occupied.get_mut();
                    if head.record != m.offset {
                        // Past its budget, an entry is cut before its next
                        // record (never inside one).
                        if m.offset > head.last_offset && head.bytes >= ENTRY_BUDGET {
                            let full = occupied.insert(Entry::new(
                                rule.aggregate,
                                m.offset,
                                listed,
                                batch.replay_end,
                            ));
                            self.sealed.push((occupied.key().clone(), full));
                        } else {
                            head.record = m.offset;
                            head.record_matches = 0;
                        }
                    }
                    occupied.into_mut()
                }
                hashbrown::hash_map::Entry::Vacant(vacant) => vacant.insert(Entry::new(
                    rule.aggregate,
                    m.offset,
                    listed,
                    batch.replay_end,
                )),
            };
            // The match's place among its record's matches of this key:
            // past RECORD_CHUNK, a continuation of the record takes it (the
            // same split on every owner). One record, it never straddles
            // what stage 2 merged: not listed.
            let place = head.record_matches;
            head.record_matches += 1;
            let entry = if place < RECORD_CHUNK {
                head
            } else {
                let continuation = EntryKey {
                    rule: m.rule,
                    key: CompactString::from(batch.text(m.key)),
                    bucket: window_start(m.time_ms, width),
                    partition: m.partition,
                    record: m.offset + 1,
                    generation: batch.generation,
                    chunk: u32::try_from(place / RECORD_CHUNK).unwrap_or(u32::MAX),
                };
                self.continuations.entry(continuation).or_insert_with(|| {
                    Entry::new(rule.aggregate, m.offset, false, batch.replay_end)
                })
            };
            entry.last_offset = entry.last_offset.max(m.offset);
            if let Some(replay) = entry.replay.as_mut() {
                let previous = replay.offsets.last().copied().unwrap_or(m.offset);
                entry.bytes += decimal_len(m.offset.saturating_sub(previous)) + 1;
                replay.offsets.push(m.offset);
                if matches!(rule.aggregate, Aggregate::Sum | Aggregate::Avg) {
                    replay.values.push(m.value);
                    entry.bytes += LISTED_VALUE_BYTES;
                }
            }
            let agg = &mut entry.agg;
            let distinct_before = agg.distinct.as_ref().map_or(0, |set| set.len());
            if agg.add(m.value, m.distinct_hash, m.time_ms, (m.partition, m.offset)) {
                self.holds.hold(m.partition, m.offset);
            }
            if agg.distinct.as_ref().map_or(0, |set| set.len()) > distinct_before {
                entry.bytes += decimal_len(m.distinct_hash) + 1;
            }
            let text = |span: super::shard::Span| (!span.is_none()).then(|| batch.text(span));
            agg.add_sample(
                text(m.id),
                batch.text(m.sample),
                text(m.account),
                text(m.region),
                self.config.evidence,
            );
        }
        self.tally.matches += batch.matches.len() as u64;
        self.watermark_ms = self.watermark_ms.max(batch.watermark_ms);
        if let Some((partition, mark, generation)) = batch.input_watermark {
            // A batch of a since-revoked assignment must not resurrect it.
            if generation == self.tracker.generation(partition) {
                let slot = self
                    .input_marks
                    .entry(partition)
                    .or_insert((i64::MIN, generation));
                if slot.1 != generation {
                    *slot = (i64::MIN, generation);
                }
                if mark > slot.0 {
                    slot.0 = mark;
                    self.inputs_changed = true;
                }
            }
        }
        self.holds.publish(&self.tracker, self.index);
        self.counters
            .open_windows
            .store(self.buffered() as u64, std::sync::atomic::Ordering::Relaxed);
        self.counters.add(&self.tally);
        self.tally = Tally::default();
        drop(batch.tokens);
    }

    /// Partials buffered: entries open and cut, and continuations.
    fn buffered(&self) -> usize {
        self.entries.len() + self.sealed.len() + self.continuations.len()
    }

    /// The global name of an input partition (`source:topic/partition`).
    fn input_name(&self, partition: PartitionId) -> String {
        self.registry
            .name(partition)
            .map(|(source, name)| format!("{source}:{name}"))
            .unwrap_or_else(|| partition.to_string())
    }

    /// Hands everything buffered (and the watermark, when it moved or the
    /// heartbeat is due) to the sink, then tells the sibling pre-aggregators
    /// how far its input marks are flushed. Returns false when the sink is
    /// gone.
    fn flush(&mut self, output: &Sender<PartialFlush>, force: bool) -> bool {
        if !self.queue_flush(output, force) {
            return false;
        }
        // Everything folded so far is queued to the sink now.
        for (partition, (mark, generation)) in &self.input_marks {
            self.flushed
                .record(self.index, *partition, *generation, *mark);
        }
        true
    }

    fn queue_flush(&mut self, output: &Sender<PartialFlush>, force: bool) -> bool {
        self.last_flush = Instant::now();
        // A revoked input partition is no longer ours to report: its new
        // owner reports it (stage 2 keeps our last report until then).
        let tracker = &self.tracker;
        self.input_marks
            .retain(|partition, (_, generation)| tracker.generation(*partition) == *generation);
        let watermark_due = self.watermark_ms > self.last_watermark_sent
            || self.inputs_changed
            || self.last_watermark_at.elapsed() >= self.config.heartbeat;
        if self.buffered() == 0 && !watermark_due && !force {
            return true;
        }
        let mut partials = Vec::with_capacity(self.buffered());
        let mut holds = Holds::new();
        let mut names: HashMap<PartitionId, String> = HashMap::new();
        let mut current: HashMap<PartitionId, u64> = HashMap::new();
        let mut entries: Vec<(EntryKey, Entry)> = self
            .entries
            .drain()
            .chain(self.sealed.drain(..))
            .chain(self.continuations.drain())
            .filter(|(key, _)| {
                let generation = *current
                    .entry(key.partition)
                    .or_insert_with(|| self.tracker.generation(key.partition));
                key.generation == generation
            })
            .collect();
        // In input order: stage 2 skips a partial whose offsets it has
        // passed, so the one-record partials of an entry (no
        // pre-aggregation) must arrive in order.
        entries.sort_unstable_by_key(|(key, entry)| {
            (
                key.partition,
                first_offset(&entry.agg, entry.last_offset),
                key.chunk,
            )
        });
        for (key, entry) in entries {
            let Entry {
                mut agg,
                last_offset,
                replay,
                epoch,
                ..
            } = entry;
            let rule_id = &self.rules.rule(key.rule).id;
            let name = names
                .entry(key.partition)
                .or_insert_with(|| self.input_name(key.partition));
            let continuation;
            let input = if key.chunk == 0 {
                name.as_str()
            } else {
                continuation = continuation_input(name, key.chunk);
                continuation.as_str()
            };
            cap_evidence(&mut agg.samples, EVIDENCE_BUDGET);
            let first_offset = first_offset(&agg, last_offset);
            for hold in &agg.holds {
                match holds.iter_mut().find(|(p, _)| *p == hold.0) {
                    Some(existing) => existing.1 = existing.1.min(hold.1),
                    None => holds.push(*hold),
                }
            }
            let mut partial = PartialAgg::from_window(
                rule_id,
                &key.key,
                key.bucket,
                &agg,
                input,
                (first_offset, last_offset),
            );
            if let Some(replay) = replay {
                partial = partial.with_replay_offsets(&replay.offsets, &replay.values);
            }
            partial.ep = epoch;
            partials.push(PartialRecord {
                key: partial.record_key(),
                value: partial.encode(),
            });
        }
        // The alert-style hold replaces the buffered holds before they are
        // unpublished, so the input is never committable in between.
        let hold = (!holds.is_empty()).then(|| self.tracker.hold_alert(&holds));
        self.holds.clear();
        self.tracker.publish_shard(self.index, HashMap::new());
        self.counters
            .open_windows
            .store(0, std::sync::atomic::Ordering::Relaxed);
        let now = now_ms();
        // Assigned input partitions not heard from yet: reported at the
        // floor, so that stage 2 knows they exist (or keeps holding at
        // their previous owner's last report) until their records come.
        let waiting: Vec<PartitionId> = self
            .watermarks
            .waiting(now)
            .into_iter()
            .filter(|partition| !self.input_marks.contains_key(partition))
            .collect();
        // Input partitions of this instance that no longer hold its
        // watermark: stage 2 leaves them out as well (see merge.rs), also
        // those with no event to report a watermark for.
        let idle = self.watermarks.idle(now);
        let reportable = self.watermark_ms != i64::MIN || !waiting.is_empty() || !idle.is_empty();
        let watermark = (reportable && watermark_due).then(|| {
            let instance = self.watermark_ms;
            // An idle input partition reports the instance watermark, which
            // has moved on without it (for stage 2 builds that do not read
            // `idle`); an active one how far every pre-aggregator of this
            // instance has flushed it.
            let inputs = self
                .input_marks
                .iter()
                .map(|(partition, (mark, generation))| {
                    let agreed = self
                        .flushed
                        .agreed(self.index, *partition, *generation, *mark);
                    let reported = if idle.binary_search(partition).is_ok() {
                        agreed.max(instance)
                    } else {
                        agreed
                    };
                    (self.input_name(*partition), reported)
                })
                .chain(
                    waiting
                        .iter()
                        .map(|partition| (self.input_name(*partition), i64::MIN)),
                )
                .collect();
            // Every input partition that exists, so that stage 2 holds for
            // those whose owner has not reported yet (see merge.rs).
            let all = self
                .watermarks
                .known()
                .into_iter()
                .map(|partition| self.input_name(partition))
                .collect();
            let idle = idle
                .iter()
                .map(|partition| self.input_name(*partition))
                .collect();
            let mark = ProducerWatermark {
                src: format!("{}-{}", self.config.producer, self.index),
                wm: instance,
                at: now_ms(),
                inputs,
                all,
                idle,
            };
            PartialRecord {
                key: mark.record_key(),
                value: mark.encode(),
            }
        });
        if watermark.is_some() {
            self.inputs_changed = false;
            self.last_watermark_sent = self.watermark_ms;
            self.last_watermark_at = Instant::now();
        }
        if partials.is_empty() && watermark.is_none() {
            return true;
        }
        output
            .send(PartialFlush {
                partials,
                watermark,
                hold,
            })
            .is_ok()
    }
}

/// Digits of `value` in decimal.
fn decimal_len(value: u64) -> usize {
    value
        .checked_ilog10()
        .map_or(1, |digits| digits as usize + 1)
}

/// Keeps the account, region, sample ids and texts, in that order, while
/// they fit `budget` bytes encoded (a JSON string escapes a byte into at
/// most 6): evidence only, cut where a partial could not carry it.
fn cap_evidence(samples: &mut Samples, budget: usize) {
    let mut left = budget;
    let mut fits = |text: &str| {
        let bytes = text.len().saturating_mul(6).saturating_add(3);
        let fits = bytes <= left;
        if fits {
            left -= bytes;
        }
        fits
    };
    if !samples.account.as_deref().is_none_or(&mut fits) {
        samples.account = None;
    }
    if !samples.region.as_deref().is_none_or(&mut fits) {
        samples.region = None;
    }
    let ids = samples.ids.iter().take_while(|id| fits(id)).count();
    samples.ids.truncate(ids);
    let texts = samples.texts.iter().take_while(|text| fits(text)).count();
    samples.texts.truncate(texts);
}

/// The first input offset an entry covers (its one partition's hold).
fn first_offset(agg: &WindowAgg, last_offset: u64) -> u64 {
    agg.holds.first().map_or(last_offset, |h| h.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::partial::{decode, RepartitionRecord};
    use crate::engine::shard::{Match, Span};
    use crate::engine::watermark::WatermarkConfig;
    use crate::engine::window::{mark_merged_inputs, InputSpan, MergeCheck, MergedInputs};
    use crate::metrics::WorkerCounters;
    use crate::rules::compile::RuleIdx;
    use crossbeam_channel::unbounded;
    use std::collections::HashSet;

    const WINDOW_MS: i64 = 300_000;

    fn preaggregator() -> (Preaggregator, PartitionId) {
        preaggregator_of(
            "id: c\ntitle: c\nseverity: low\nkind: cloudtrail\n\
             filter: '{ $.eventName = \"ConsoleLogin\" }'\n\
             group_by: [account]\nwindow: 5m\nthreshold: '>= 1'\n",
        )
    }

    /// The built-in `vpc-port-scan`'s aggregate: distinct ports per source.
    fn port_scan_preaggregator() -> (Preaggregator, PartitionId) {
        preaggregator_of(
            "id: vpc-port-scan\ntitle: s\nseverity: low\nkind: vpcflow\nfilter: ''\n\
             group_by: [srcaddr]\nwindow: 5m\naggregate: {distinct: dstport}\n\
             threshold: '>= 20'\n",
        )
    }

    fn preaggregator_of(text: &str) -> (Preaggregator, PartitionId) {
        let spec = crate::rules::parse_rule_text("test", text).expect("rule");
        let rules = Arc::new(RuleSet::compile(&[spec]).expect("compile"));
        let registry = Arc::new(PartitionRegistry::default());
        let partition = registry.id("kafka", "ct/0");
        let config = PreaggConfig {
            flush_interval: Duration::from_secs(3600),
            heartbeat: Duration::from_secs(3600),
            preaggregate: true,
            max_buffered: usize::MAX,
            producer: "test".into(),
            evidence: EvidenceLimits::default(),
        };
        let preaggregator = Preaggregator::new(
            0,
            rules,
            config,
            CommitTracker::new(1),
            Arc::new(WorkerCounters::default()),
            registry,
            Arc::new(WatermarkTracker::new(WatermarkConfig::default())),
        );
        (preaggregator, partition)
    }

    /// One batch of matches of rule 0, key "k", in one window, at `offsets`
    /// of `partition` (given in the order the worker saw them).
    fn batch(partition: PartitionId, offsets: &[u64], replay_end: u64) -> MatchBatch {
        let mut batch = MatchBatch {
            replay_end,
            ..MatchBatch::default()
        };
        let key = batch.intern("k");
        let sample = batch.intern("{}");
        for &offset in offsets {
            batch.matches.push(Match {
                rule: 0 as RuleIdx,
                time_ms: WINDOW_MS + offset as i64,
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

    /// One batch of matches of rule 0, key "k", in one window: one per
    /// `(offset, distinct hash)` of `partition`.
    fn distinct_batch(
        partition: PartitionId,
        matches: &[(u64, u64)],
        replay_end: u64,
    ) -> MatchBatch {
        let offsets: Vec<u64> = matches.iter().map(|(offset, _)| *offset).collect();
        let mut batch = batch(partition, &offsets, replay_end);
        for (m, (_, hash)) in batch.matches.iter_mut().zip(matches) {
            m.distinct_hash = *hash;
            m.time_ms = WINDOW_MS;
        }
        batch
    }

    /// Flushes and returns the records sent, partials in order.
    fn flush_records(preaggregator: &mut Preaggregator) -> Vec<PartialRecord> {
        let (tx, rx) = unbounded();
        assert!(preaggregator.flush(&tx, true));
        drop(tx);
        rx.iter().flat_map(|flush| flush.partials).collect()
    }

    /// What stage 2 makes of `records` (its replay check, per window and
    /// input name, as `shard` runs it): the count and the distinct values
    /// it merges.
    fn merge(records: &[PartialRecord], merged: &mut MergedInputs) -> (u64, HashSet<u64>) {
        let mut count = 0;
        let mut distinct = HashSet::new();
        for record in records {
            let RepartitionRecord::Partial { mut agg, .. } =
                decode(&record.value).expect("partial")
            else {
                panic!("not a partial");
            };
            let window = agg.to_window(Aggregate::Distinct, (0, 0));
            let part = match mark_merged_inputs(merged, span(&agg)) {
                MergeCheck::Fresh => Some(window),
                MergeCheck::Replay | MergeCheck::Superseded => None,
                MergeCheck::Overlap { merged_through } => agg
                    .take_replay_offsets()
                    .expect("a straddling partial lists its offsets")
                    .part_after(&window, merged_through),
            };
            if let Some(part) = part {
                count += part.count;
                distinct.extend(part.distinct.iter().flat_map(|set| set.iter().copied()));
            }
        }
        (count, distinct)
    }

    /// The replay check's view of a decoded partial, as stage 2 takes it.
    fn span(agg: &PartialAgg) -> InputSpan<'_> {
        InputSpan {
            input: &agg.p,
            first: agg.o0,
            last: agg.o1,
            epoch: agg.ep,
            listed: !agg.x.is_empty(),
        }
    }

    /// librdkafka's default `message.max.bytes`.
    const MESSAGE_MAX_BYTES: usize = 1_000_000;

    /// A port scan of 70,000 distinct values from one source within one
    /// flush, one flow per input record (batches of 500, as a Kafka poll
    /// gives them) or all in one record (one file), read for the first
    /// time or in a replay (offsets listed): every partial fits a Kafka
    /// record of the default size, and stage 2 merges every value and
    /// every match once, however often the partials are replayed.
    #[test]
    fn a_port_scan_in_one_flush_gives_partials_that_fit_a_kafka_record() {
        let values: Vec<u64> = (0..70_000u64)
            .map(|port| xxhash_rust::xxh3::xxh3_64(port.to_string().as_bytes()))
            .collect();
        let one_per_record: Vec<(u64, u64)> = values
            .iter()
            .enumerate()
            .map(|(offset, hash)| (offset as u64, *hash))
            .collect();
        let one_record: Vec<(u64, u64)> = values.iter().map(|hash| (7, *hash)).collect();
        for (case, matches, replay_end) in [
            ("one per record", &one_per_record, 0),
            ("one per record, listed", &one_per_record, u64::MAX),
            ("one record", &one_record, 0),
            ("one record, listed", &one_record, u64::MAX),
        ] {
            let (mut preaggregator, partition) = port_scan_preaggregator();
            for chunk in matches.chunks(500) {
                preaggregator.add(distinct_batch(partition, chunk, replay_end));
            }
            let records = flush_records(&mut preaggregator);
            for record in &records {
                let bytes = record.key.len() + record.value.len();
                assert!(
                    bytes < MESSAGE_MAX_BYTES,
                    "{case}: a partial of {bytes} bytes (of {} partials)",
                    records.len()
                );
            }
            let mut merged = MergedInputs::default();
            let (count, distinct) = merge(&records, &mut merged);
            assert_eq!(count, values.len() as u64, "{case}");
            assert_eq!(distinct.len(), values.len(), "{case}");
            assert!(values.iter().all(|hash| distinct.contains(hash)), "{case}");
            assert_eq!(merge(&records, &mut merged).0, 0, "{case}: a replay");
        }
    }

    /// A record split into continuations, replayed by a new owner that
    /// cuts its flushes elsewhere, after the old owner's flush reached
    /// stage 2 only in part (it died before the rest was delivered):
    /// stage 2 merges every match once.
    #[test]
    fn a_record_split_into_continuations_is_merged_once_across_owners() {
        // Records 5..=10 and 12 have one match each, record 11 has 20,000.
        let mut matches: Vec<(u64, u64)> = (5..=10).map(|offset| (offset, offset)).collect();
        matches.extend((0..20_000).map(|n| (11, 1_000 + n)));
        matches.push((12, 12));
        let (mut old_owner, partition) = port_scan_preaggregator();
        let first = matches
            .iter()
            .position(|(offset, _)| *offset == 10)
            .expect("10");
        old_owner.add(distinct_batch(partition, &matches[..first], 0));
        let flushed = flush_records(&mut old_owner);
        old_owner.add(distinct_batch(partition, &matches[first..], 0));
        let split = flush_records(&mut old_owner);
        // The head [10, 12] and the continuations of record 11.
        assert_eq!(split.len(), 3);
        let mut merged = MergedInputs::default();
        let (mut count, mut distinct) = merge(&flushed, &mut merged);
        let (delivered, values) = merge(&split[..2], &mut merged);
        count += delivered;
        distinct.extend(values);
        // The new owner replays from offset 5, all of it listed.
        let (mut new_owner, _) = port_scan_preaggregator();
        new_owner.add(distinct_batch(partition, &matches, 13));
        let (replayed, values) = merge(&flush_records(&mut new_owner), &mut merged);
        count += replayed;
        distinct.extend(values);
        assert_eq!(count, matches.len() as u64);
        assert_eq!(distinct.len(), matches.len());
    }

    /// The largest partial stage 1 can write, a sum rule read in a replay
    /// (offsets and values listed): an entry just under its budget (9,709
    /// records of one match, 27 bytes each: a listed offset and the
    /// longest value), then a record of 20,000 matches, and evidence
    /// larger than a partial could carry. Each partial stays within the
    /// bound of the module doc ("Partial size").
    #[test]
    fn the_largest_partial_stays_within_the_documented_bound() {
        let (mut preaggregator, partition) = preaggregator_of(
            "id: s\ntitle: s\nseverity: low\nkind: vpcflow\nfilter: ''\n\
             group_by: [srcaddr]\nwindow: 5m\naggregate: {sum: bytes}\nthreshold: '>= 1'\n",
        );
        preaggregator.config.evidence.max_sample_bytes = 7_000;
        let mut offsets: Vec<u64> = (0..9_709).collect();
        offsets.extend([9_709; 20_000]);
        let mut batch = batch(partition, &offsets, u64::MAX);
        let huge = "\u{1}".repeat(100_000);
        let id = batch.intern(&huge[..30_000]);
        let account = batch.intern(&huge);
        let sample = batch.intern(&huge[..7_000]);
        for m in &mut batch.matches {
            m.time_ms = WINDOW_MS;
            m.value = -f64::MIN_POSITIVE;
            (m.id, m.account, m.sample) = (id, account, sample);
        }
        preaggregator.add(batch);
        let records = flush_records(&mut preaggregator);
        let bound = ENTRY_BUDGET + 21 + RECORD_CHUNK as usize * 27 + EVIDENCE_BUDGET + 300;
        let mut count = 0;
        for record in &records {
            let input = "kafka:ct/0\\u001f1".len();
            assert!(
                record.value.len() <= bound + "s".len() + "k".len() + input,
                "a partial of {} bytes",
                record.value.len()
            );
            let RepartitionRecord::Partial { agg, .. } = decode(&record.value).expect("partial")
            else {
                panic!("not a partial");
            };
            // The account (600 KB encoded) and the ids (180 KB) do not fit
            // the evidence budget; the texts (42 KB each) do.
            assert_eq!((agg.a, agg.i.len(), agg.e.len()), (None, 0, 3));
            count += agg.n;
        }
        assert_eq!(count, offsets.len() as u64);
    }

    /// Flushes and returns `(count, first offset, last offset, listed
    /// offsets)` per partial, in the order they are sent.
    fn flush(preaggregator: &mut Preaggregator) -> Vec<(u64, u64, u64, Vec<u64>)> {
        let (tx, rx) = unbounded();
        assert!(preaggregator.flush(&tx, true));
        drop(tx);
        rx.iter()
            .flat_map(|flush| flush.partials)
            .map(|record| match decode(&record.value).expect("partial") {
                RepartitionRecord::Partial { mut agg, .. } => {
                    let listed = agg
                        .take_replay_offsets()
                        .map(|r| r.offsets)
                        .unwrap_or_default();
                    (agg.n, agg.o0, agg.o1, listed)
                }
                other => panic!("not a partial: {other:?}"),
            })
            .collect()
    }

    /// Stage 2 learns every input partition that exists from each
    /// watermark record, not only the ones this instance reads.
    #[test]
    fn watermark_records_name_every_input_partition_known_to_exist() {
        let (mut preaggregator, own) = preaggregator();
        let other = preaggregator.registry.id("kafka", "ct/1");
        preaggregator.watermarks.exists(own);
        preaggregator.watermarks.exists(other);
        preaggregator.watermarks.hold(own, now_ms());
        // As when an input partition was assigned (the heartbeat here is
        // an hour).
        preaggregator.inputs_changed = true;
        let (tx, rx) = unbounded();
        assert!(preaggregator.flush(&tx, true));
        drop(tx);
        let marks: Vec<ProducerWatermark> = rx
            .iter()
            .filter_map(|flush| flush.watermark)
            .map(|record| match decode(&record.value).expect("a record") {
                RepartitionRecord::Watermark { mark, .. } => mark,
                other => panic!("not a watermark: {other:?}"),
            })
            .collect();
        assert_eq!(marks.len(), 1, "{marks:?}");
        assert_eq!(marks[0].inputs, vec![("kafka:ct/0".to_string(), i64::MIN)]);
        assert_eq!(marks[0].all, vec!["kafka:ct/0", "kafka:ct/1"]);
    }

    /// Offset 11 is one record with two events (an S3 log file).
    #[test]
    fn a_partial_that_begins_below_the_replay_end_lists_its_offsets() {
        let (mut preaggregator, partition) = preaggregator();
        preaggregator.add(batch(partition, &[10, 11, 11, 12, 13, 20, 21], 13));
        assert_eq!(
            flush(&mut preaggregator),
            [(7, 10, 21, vec![10, 11, 11, 12, 13, 20, 21])]
        );
        preaggregator.add(batch(partition, &[30, 31], 13));
        assert_eq!(flush(&mut preaggregator), [(2, 30, 31, vec![])]);
    }

    /// A previous owner sent [10..=20] (the partial stage 2 merged), then
    /// died before committing past 10. The new owner replays from 10 and,
    /// reading faster, cuts its first flush at 31. Stage 2 merges exactly
    /// the matches after 20, both events of record 25 included; merged
    /// whole (an overlap), the replay would count 4 matches twice.
    #[test]
    fn a_replay_past_the_previous_owners_flush_is_merged_exactly() {
        let offsets = [10, 12, 15, 20, 25, 25, 31];
        let (mut old_owner, partition) = preaggregator();
        old_owner.add(batch(partition, &offsets[..4], 0));
        let (mut new_owner, _) = preaggregator();
        new_owner.add(batch(partition, &offsets, 32));
        let (tx, rx) = unbounded();
        assert!(old_owner.flush(&tx, true));
        assert!(new_owner.flush(&tx, true));
        drop(tx);
        let mut merged = MergedInputs::default();
        let mut count = 0;
        for record in rx.iter().flat_map(|flush| flush.partials) {
            let RepartitionRecord::Partial { mut agg, .. } =
                decode(&record.value).expect("partial")
            else {
                panic!("not a partial");
            };
            let window = agg.to_window(crate::rules::compile::Aggregate::Count, (0, 0));
            match mark_merged_inputs(&mut merged, span(&agg)) {
                MergeCheck::Fresh => count += window.count,
                MergeCheck::Replay | MergeCheck::Superseded => {}
                MergeCheck::Overlap { merged_through } => {
                    let listed = agg
                        .take_replay_offsets()
                        .expect("a replay lists its offsets");
                    let part = listed
                        .part_after(&window, merged_through)
                        .expect("new part");
                    count += part.count;
                }
            }
        }
        assert_eq!(count, offsets.len() as u64);
    }
}
