//! Decode workers: raw batches in, routed match batches out.
//!
//! A decode worker owns one [`Decoder`] per input partition it serves (raw
//! batches are assigned to workers by partition, so per-partition order
//! holds). For every event it runs the rules of the event's kind, builds
//! the group key without allocating (into a reused buffer, then the target
//! shard's arena), and routes the match to `hash(rule, key) % shards`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::commit::CommitTracker;
use super::shard::{Match, MatchBatch, ShardMsg, Span, KEY_SEPARATOR};
use super::watermark::{Progress, WatermarkTracker};
use crate::decode::{DecodeConfig, DecodeError, DecodeSink, Decoder};
use crate::error::ErrorClass;
use crate::event::{Event, EventView, FieldValue};
use crate::metrics::{Metrics, Tally, WorkerCounters};
use crate::rules::compile::RuleIdx;
use crate::rules::RuleSet;
use crate::sink::DeadLetter;
use crate::source::{now_ms, PartitionId, PartitionRegistry, RawBatch};

/// Longest a decode worker holds matches back while its input is queued
/// ([`DecodeWorker::absorb`]).
const MAX_PENDING: Duration = Duration::from_millis(5);

/// Pending matches for one shard past which they are sent at once.
const MAX_PENDING_MATCHES: usize = 4096;

/// One absorbed raw batch's news about its partition, held with its
/// matches ([`DecodeWorker::absorb`]).
#[derive(Debug, Clone, Copy)]
struct PendingProgress {
    partition: PartitionId,
    progress: Progress,
    now_ms: i64,
    generation: u64,
}

/// The shard that owns `(rule, key)`: stable across runs and versions.
#[inline]
pub fn route(rule: RuleIdx, key: &str, shards: usize) -> usize {
    let hash = xxhash_rust::xxh3::xxh3_64_with_seed(key.as_bytes(), u64::from(rule));
    (hash % shards.max(1) as u64) as usize
}

/// A rule to run on an event, with the predicates the dispatch has already
/// proven for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The rule.
    pub rule: RuleIdx,
    /// Bit `i` set: predicate `i` is an equality (or `in` list) on the
    /// dispatch field that the event's value satisfies, so it need not run.
    pub proven: u32,
}

/// Dispatch values up to which [`RuleDispatch`] compares instead of hashing.
const FEW_VALUES: usize = 8;

/// Rules of one kind indexed by the exact value of one string field
/// (`eventName` for CloudTrail, `action` for VPC flows), built from
/// [`crate::filter::Filter::required_strings`] and
/// [`crate::filter::Predicate::required_strings`] (and, for flow records
/// split in the default format, [`crate::filter::Filter::required_token`]):
/// an event whose field is a string only runs the rules that can match
/// that value, plus the rules that are not constrained by it. Lists keep
/// rule order, so matches come out in the same order as without dispatch.
#[derive(Debug, Default)]
pub struct RuleDispatch {
    slot: Option<crate::fields::Slot>,
    by_value: ValueIndex,
    unconstrained: Vec<Candidate>,
    all: Vec<Candidate>,
}

/// The candidate lists of a [`RuleDispatch`], by value of its field.
#[derive(Debug)]
enum ValueIndex {
    /// At most [`FEW_VALUES`] values (flow `action`): comparing a few
    /// strings beats hashing one.
    Few(Vec<(Box<str>, Vec<Candidate>)>),
    /// More values (CloudTrail `eventName`).
    Hashed(hashbrown::HashMap<Box<str>, Vec<Candidate>>),
}

impl Default for ValueIndex {
    fn default() -> Self {
        ValueIndex::Few(Vec::new())
    }
}

impl ValueIndex {
    fn new(lists: hashbrown::HashMap<Box<str>, Vec<Candidate>>) -> Self {
        if lists.len() <= FEW_VALUES {
            // Sorted, so that the order of the comparisons (and so their
            // cost) does not change with the hash map's random seed.
            let mut few: Vec<_> = lists.into_iter().collect();
            few.sort_by(|(a, _), (b, _)| a.cmp(b));
            ValueIndex::Few(few)
        } else {
            ValueIndex::Hashed(lists)
        }
    }

    /// The candidates listed for `value`, if any. The short list is
    /// searched in place; the hash lookup is a call of its own, so that it
    /// does not give every flow record its large frame.
    #[inline(always)]
    fn get(&self, value: &str) -> Option<&[Candidate]> {
        match self {
            ValueIndex::Few(lists) => lists
                .iter()
                .find(|(known, _)| known.as_ref() == value)
                .map(|(_, list)| list.as_slice()),
            ValueIndex::Hashed(lists) => Self::get_hashed(lists, value),
        }
    }

    #[inline(never)]
    fn get_hashed<'s>(
        lists: &'s hashbrown::HashMap<Box<str>, Vec<Candidate>>,
        value: &str,
    ) -> Option<&'s [Candidate]> {
        lists.get(value).map(Vec::as_slice)
    }
}

impl RuleDispatch {
    /// The dispatch of CloudTrail rules by `eventName` (every rule, each
    /// time, when no rule reads `eventName`).
    pub fn cloudtrail(rules: &RuleSet) -> Self {
        Self::by_field(rules, crate::event::EventKind::CloudTrail, "eventName")
    }

    /// The dispatch of flow rules by `action` (ACCEPT / REJECT).
    pub fn vpcflow(rules: &RuleSet) -> Self {
        Self::by_field(rules, crate::event::EventKind::VpcFlow, "action")
    }

    /// [`Self::vpcflow`] for records of the default format split on spaces
    /// alone ([`EventView::default_flow_columns`]): a rule whose filter is a
    /// one-group pattern of the format's width that tests the `action`
    /// column (`vpc-ssh-rejects`) is listed only under that value too.
    pub fn vpcflow_default_columns(rules: &RuleSet) -> Self {
        let format = crate::decode::flow::FlowFormat::default();
        let columns = format.columns();
        let token = columns
            .iter()
            .position(|c| *c == "action")
            .map(|index| (index, columns.len()));
        Self::by_field_or_token(rules, crate::event::EventKind::VpcFlow, "action", token)
    }

    /// Every rule of `kind`, for every event (no dispatch field).
    pub fn every(rules: &RuleSet, kind: crate::event::EventKind) -> Self {
        RuleDispatch {
            all: rules
                .for_kind(kind)
                .iter()
                .map(|&rule| Candidate { rule, proven: 0 })
                .collect(),
            ..RuleDispatch::default()
        }
    }

    /// The dispatch of the rules of `kind` by the planned field `field`
    /// (every rule, each time, when no rule of the kind reads it).
    pub fn by_field(rules: &RuleSet, kind: crate::event::EventKind, field: &str) -> Self {
        Self::by_field_or_token(rules, kind, field, None)
    }

    /// [`Self::by_field`], where `token` (index, count) also constrains a
    /// rule by the literal its filter requires at that token of a line of
    /// `count` tokens ([`crate::filter::Filter::required_token`]): for
    /// events in which that token is the field's value.
    fn by_field_or_token(
        rules: &RuleSet,
        kind: crate::event::EventKind,
        field: &str,
        token: Option<(usize, usize)>,
    ) -> Self {
        let mut dispatch = Self::every(rules, kind);
        let Ok(path) = crate::fields::FieldPath::parse(field) else {
            return dispatch;
        };
        let Some(slot) = rules.plans().for_kind(kind).get(&path) else {
            return dispatch;
        };
        dispatch.slot = Some(slot);
        let mut constrained: Vec<(RuleIdx, Vec<&str>)> = Vec::new();
        for &idx in rules.for_kind(kind) {
            let rule = rules.rule(idx);
            // The filter and every predicate must hold: any constrained one
            // constrains the rule; take the smallest set.
            let by_token = token.and_then(|(index, count)| {
                rule.filter
                    .required_token(index, count)
                    .map(|literal| vec![literal])
            });
            let required = std::iter::once(rule.filter.required_strings(slot))
                .chain(std::iter::once(by_token))
                .chain(rule.predicates.iter().map(|p| p.required_strings(slot)))
                .flatten()
                .min_by_key(Vec::len);
            match required {
                Some(values) => constrained.push((idx, values)),
                None => dispatch.unconstrained.push(Candidate {
                    rule: idx,
                    proven: 0,
                }),
            }
        }
        let mut by_value: hashbrown::HashMap<Box<str>, Vec<Candidate>> = Default::default();
        for (_, values) in &constrained {
            for value in values {
                by_value.entry((*value).into()).or_default();
            }
        }
        for (value, list) in by_value.iter_mut() {
            let mut rules_for_value: Vec<RuleIdx> =
                dispatch.unconstrained.iter().map(|c| c.rule).collect();
            for (idx, values) in &constrained {
                if values.contains(&value.as_ref()) && !rules_for_value.contains(idx) {
                    rules_for_value.push(*idx);
                }
            }
            rules_for_value.sort_unstable();
            // An event dispatched here has `value` in the slot: every
            // predicate that only asks for that value holds already.
            *list = rules_for_value
                .into_iter()
                .map(|idx| {
                    let proven = rules
                        .rule(idx)
                        .predicates
                        .iter()
                        .take(32)
                        .enumerate()
                        .filter(|(_, p)| {
                            p.required_strings(slot)
                                .is_some_and(|values| values.contains(&value.as_ref()))
                        })
                        .fold(0u32, |bits, (i, _)| bits | 1 << i);
                    Candidate { rule: idx, proven }
                })
                .collect();
        }
        dispatch.by_value = ValueIndex::new(by_value);
        dispatch
    }

    /// The rules `event` may match (of the dispatch's kind).
    #[inline]
    pub fn candidates<'a>(&self, event: &impl EventView<'a>) -> &[Candidate] {
        let Some(slot) = self.slot else {
            return &self.all;
        };
        match event.field_str(slot) {
            Some(value) => match self.by_value.get(value) {
                Some(list) => list,
                None => &self.unconstrained,
            },
            // Numbers and booleans can equal a literal through their JSON
            // text; missing fields match `!=` tests: evaluate every rule.
            None => &self.all,
        }
    }
}

/// Dead letters of one raw batch, with the hold that keeps their input
/// uncommitted until the dead-letter sink acknowledges them (drop = ack).
pub type DeadLetterBatch = (Vec<DeadLetter>, super::commit::AlertHold);

/// Sends one batch's dead letters of `partition` to the dead-letter sink.
/// They hold their first offset until the sink acknowledges them, like
/// alerts: a crash in between replays them. Nothing is sent when `dead` is
/// empty; false when the sink has gone away.
pub(super) fn send_dead_letters(
    tracker: &CommitTracker,
    sink: &Sender<DeadLetterBatch>,
    partition: PartitionId,
    dead: Vec<DeadLetter>,
) -> bool {
    let Some(first) = dead.iter().map(|d| d.offset).min() else {
        return true;
    };
    let hold = tracker.hold_alert(&super::commit::Holds::from_slice(&[(partition, first)]));
    sink.send((dead, hold)).is_ok()
}

/// One decode worker.
pub struct DecodeWorker {
    rules: Arc<RuleSet>,
    cloudtrail_dispatch: RuleDispatch,
    flow_dispatch: RuleDispatch,
    flow_columns_dispatch: RuleDispatch,
    host_dispatch: RuleDispatch,
    decode_config: DecodeConfig,
    decoders: HashMap<PartitionId, Decoder>,
    watermark: Arc<WatermarkTracker>,
    tracker: CommitTracker,
    shards: Vec<Sender<ShardMsg>>,
    last_watermark_sent: Vec<i64>,
    counters: Arc<WorkerCounters>,
    metrics: Arc<Metrics>,
    registry: Arc<PartitionRegistry>,
    dead_letters: Sender<DeadLetterBatch>,
    max_sample_bytes: usize,
    key_buffer: String,
    /// Matches not yet sent, one batch per shard (see [`DecodeWorker::absorb`]).
    pending: Vec<MatchBatch>,
    /// Each pending batch's match count before the current raw batch.
    pending_before: Vec<usize>,
    /// Raw batches absorbed since the last flush, and when the first came.
    pending_batches: usize,
    pending_since: Option<Instant>,
    /// [`MAX_PENDING`], but for tests.
    max_pending: Duration,
    /// What each absorbed raw batch showed of its partition, not yet told
    /// to the watermark tracker (told when its matches are sent).
    pending_progress: Vec<PendingProgress>,
    /// The watermark after the last flush (what a send carries).
    latest_watermark: i64,
    /// Stage 1: tell the pre-aggregators every batch's input watermark.
    report_partitions: bool,
    /// Cursor into the tracker's revocation log.
    revocation_cursor: usize,
}

impl DecodeWorker {
    /// A worker sending to `shards`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rules: Arc<RuleSet>,
        decode_config: DecodeConfig,
        watermark: Arc<WatermarkTracker>,
        tracker: CommitTracker,
        shards: Vec<Sender<ShardMsg>>,
        counters: Arc<WorkerCounters>,
        metrics: Arc<Metrics>,
        registry: Arc<PartitionRegistry>,
        dead_letters: Sender<DeadLetterBatch>,
        max_sample_bytes: usize,
    ) -> Self {
        let shard_count = shards.len();
        DecodeWorker {
            cloudtrail_dispatch: RuleDispatch::cloudtrail(&rules),
            flow_dispatch: RuleDispatch::vpcflow(&rules),
            flow_columns_dispatch: RuleDispatch::vpcflow_default_columns(&rules),
            host_dispatch: RuleDispatch::every(&rules, crate::event::EventKind::HostLog),
            rules,
            decode_config,
            decoders: HashMap::new(),
            watermark,
            tracker,
            shards,
            last_watermark_sent: vec![i64::MIN; shard_count],
            counters,
            metrics,
            registry,
            dead_letters,
            max_sample_bytes,
            key_buffer: String::new(),
            pending: (0..shard_count).map(|_| MatchBatch::default()).collect(),
            pending_before: vec![0; shard_count],
            pending_batches: 0,
            pending_since: None,
            max_pending: MAX_PENDING,
            pending_progress: Vec::new(),
            latest_watermark: i64::MIN,
            report_partitions: false,
            revocation_cursor: 0,
        }
    }

    /// Attaches each batch's input-partition watermark to the output, for
    /// every shard (stage 1: the shards are pre-aggregators).
    pub fn with_partition_reports(mut self) -> Self {
        self.report_partitions = true;
        self
    }

    /// Holds matches back for at most `max_pending` (tests: a slow machine
    /// must not flush early).
    #[cfg(test)]
    fn with_max_pending(mut self, max_pending: Duration) -> Self {
        self.max_pending = max_pending;
        self
    }

    /// Forgets the decoder state of partitions revoked since the last
    /// call. (The engine's source loop removes their watermark state as it
    /// reports the revocation, in order with a later re-assignment.)
    fn forget_revoked(&mut self) {
        for partition in self.tracker.revocations_since(&mut self.revocation_cursor) {
            self.decoders.remove(&partition);
        }
    }

    /// Decodes, matches and routes one raw batch, and sends its matches at
    /// once. Returns false when the shards have gone away (shutdown).
    pub fn process(&mut self, batch: RawBatch) -> bool {
        self.absorb(batch) && self.flush()
    }

    /// Decodes, matches and routes one raw batch into the pending batch of
    /// each shard, and sends those that are due: all of them after as
    /// many raw batches as there are shards (so that each send carries
    /// about what one raw batch gives one shard) or [`MAX_PENDING`] after
    /// the first, a single one past [`MAX_PENDING_MATCHES`]. With one
    /// shard, or in stage 1 (whose batches carry per-raw-batch fields),
    /// every raw batch is sent at once. The engine also calls
    /// [`DecodeWorker::flush`] whenever its input queue is empty, so
    /// coalescing only happens under backlog and adds no latency when
    /// idle. Returns false when the shards have gone away (shutdown).
    pub fn absorb(&mut self, batch: RawBatch) -> bool {
        self.forget_revoked();
        // Stage 1 only: the direct path keeps the windows a revoked
        // partition fed and counts such a batch in them (the source then
        // skips it if the partition comes back), as main does.
        if self.report_partitions && batch.generation != self.tracker.generation(batch.partition) {
            // Read before its partition was revoked: the new owner replays it.
            tracing::debug!(
                partition = batch.partition,
                "dropping a batch of a revoked partition"
            );
            return true;
        }
        if batch.replayed_skipped > 0 {
            let tally = Tally {
                replayed_skipped: batch.replayed_skipped,
                ..Tally::default()
            };
            self.counters.add(&tally);
        }
        if batch.is_empty() && batch.rejected.is_empty() {
            // News about the partition only (it reached its end), told
            // after what earlier batches showed, as they came.
            if !self.flush() {
                return false;
            }
            let progress = Progress {
                max_event_ms: None,
                arrival_ms: None,
                caught_up: batch.caught_up,
            };
            let watermark = self.watermark.observe(batch.partition, progress, now_ms());
            if batch.ends_partition {
                self.decoders.remove(&batch.partition);
            }
            return self.advance(watermark);
        }
        let offsets = batch.offset_range();
        let token = self
            .tracker
            .begin_batch(batch.partition, offsets.start, offsets.end);
        let shard_count = self.shards.len();
        let mut outputs = std::mem::take(&mut self.pending);
        for (before, output) in self.pending_before.iter_mut().zip(&outputs) {
            *before = output.matches.len();
        }
        let mut tally = Tally::default();
        let mut dead = Vec::new();
        let partition_name = self
            .registry
            .name(batch.partition)
            .map(|(s, p)| format!("{s}:{p}"))
            .unwrap_or_default();
        for rejected in &batch.rejected {
            tally.records += 1;
            tally.bytes += rejected.bytes.len() as u64;
            tally.failed[rejected.reason as usize] += 1;
            tally.dead_lettered += 1;
            dead.push(DeadLetter::of_rejected(partition_name.clone(), rejected));
        }
        let decoder = self.decoders.entry(batch.partition).or_insert_with(|| {
            let config = match &batch.decoding {
                Some(decoding) => decoding.apply(&self.decode_config),
                None => self.decode_config.clone(),
            };
            Decoder::new(config, self.rules.plans())
        });
        let now = now_ms();
        let mut collector = Collector {
            rules: &self.rules,
            cloudtrail_dispatch: &self.cloudtrail_dispatch,
            flow_dispatch: &self.flow_dispatch,
            flow_columns_dispatch: &self.flow_columns_dispatch,
            host_dispatch: &self.host_dispatch,
            watermark: &self.watermark,
            outputs: &mut outputs,
            tally: &mut tally,
            dead: &mut dead,
            partition: batch.partition,
            partition_name: &partition_name,
            offset: 0,
            sequence_number: None,
            now_ms: now,
            max_event_ms: None,
            max_sample_bytes: self.max_sample_bytes,
            key_buffer: &mut self.key_buffer,
            event_seq: 0,
            event_texts: vec![EventTexts::NONE; shard_count],
        };
        for (index, (range, offset)) in batch.records.iter().enumerate() {
            collector.offset = *offset;
            collector.sequence_number = batch.sequence_number(index);
            collector.tally.records += 1;
            collector.tally.bytes += range.len() as u64;
            decoder.decode(&batch.data[range.clone()], &mut collector);
        }
        let max_event_ms = collector.max_event_ms;
        if batch.ends_partition {
            self.decoders.remove(&batch.partition);
        }
        let progress = Progress {
            max_event_ms,
            arrival_ms: Some(batch.arrival_ms),
            caught_up: batch.caught_up,
        };
        // Told to the shared tracker only when these matches go out: the
        // watermark must not pass them while they wait here (another worker
        // would carry it to the shards first, and they would arrive late).
        self.pending_progress.push(PendingProgress {
            partition: batch.partition,
            progress,
            now_ms: now,
            generation: batch.generation,
        });
        self.metrics.add_partition_records(
            batch.partition,
            batch.records.len() as u64 + batch.rejected.len() as u64,
        );
        self.counters.add(&tally);
        for (output, before) in outputs.iter_mut().zip(&self.pending_before) {
            // Only the shards given matches of this batch keep it in flight.
            if output.matches.len() > *before {
                output.tokens.push(token.clone());
            }
            // Stage 1 only, where every raw batch is sent at once.
            output.replay_end = batch.replay_end;
            output.generation = batch.generation;
        }
        drop(token);
        // Back in place before anything can return early: `flush` and
        // `send` index one pending batch per shard.
        self.pending = outputs;
        if !send_dead_letters(&self.tracker, &self.dead_letters, batch.partition, dead) {
            return false;
        }
        self.pending_batches += 1;
        let since = *self.pending_since.get_or_insert_with(Instant::now);
        let latency_us = match batch.received {
            Some(received) => received.elapsed().as_micros().min(u128::from(u64::MAX)) as u64,
            None => (now_ms() - batch.arrival_ms).max(0) as u64 * 1_000,
        };
        Metrics::record(&self.metrics.processing_latency_us, latency_us);
        if shard_count == 1
            || self.report_partitions
            || self.pending_batches >= shard_count
            || since.elapsed() >= self.max_pending
        {
            return self.flush();
        }
        for index in 0..shard_count {
            if self.pending[index].matches.len() >= MAX_PENDING_MATCHES && !self.send(index) {
                return false;
            }
        }
        true
    }

    /// Sends every shard its pending matches, or the newer watermark alone.
    /// Returns false when the shards have gone away (shutdown).
    pub fn flush(&mut self) -> bool {
        self.pending_batches = 0;
        self.pending_since = None;
        for pending in self.pending_progress.drain(..) {
            let watermark =
                self.watermark
                    .observe(pending.partition, pending.progress, pending.now_ms);
            self.latest_watermark = self.latest_watermark.max(watermark);
            if self.report_partitions {
                // Stage 1 sends every raw batch at once: one entry.
                let input_watermark = self
                    .watermark
                    .partition_watermark(pending.partition)
                    .map(|own| (pending.partition, own, pending.generation));
                for output in &mut self.pending {
                    output.input_watermark = input_watermark;
                }
            }
        }
        self.metrics
            .watermark_ms
            .fetch_max(self.latest_watermark, std::sync::atomic::Ordering::Relaxed);
        (0..self.shards.len()).all(|index| self.send(index))
    }

    /// Sends shard `index` its pending batch, unless it holds nothing new:
    /// no match, no input watermark and a watermark the shard has seen.
    fn send(&mut self, index: usize) -> bool {
        let pending = &self.pending[index];
        if pending.matches.is_empty()
            && self.last_watermark_sent[index] >= self.latest_watermark
            && pending.input_watermark.is_none()
        {
            return true;
        }
        // The next one sized like this one plus a quarter, so that filling
        // it seldom reallocates: batches vary, and one that outgrows its
        // buffer copies all of it (half of them did, sized exactly).
        let (arena, matches) = (pending.arena.len(), pending.matches.len());
        let next = MatchBatch {
            arena: String::with_capacity(arena + arena / 4),
            matches: Vec::with_capacity(matches + matches / 4),
            ..MatchBatch::default()
        };
        let mut output = std::mem::replace(&mut self.pending[index], next);
        output.watermark_ms = self.latest_watermark;
        self.last_watermark_sent[index] = self.latest_watermark;
        self.shards[index].send(ShardMsg::Matches(output)).is_ok()
    }

    /// Advances idle partitions' watermark and tells the shards.
    pub fn tick(&mut self) -> bool {
        self.forget_revoked();
        if !self.flush() {
            return false;
        }
        let watermark = self.watermark.tick(now_ms());
        self.advance(watermark)
    }

    /// Sends `watermark` to every shard that has not seen it yet, after
    /// the matches still pending (a shard must not pass a window's end
    /// before it has counted that window's matches).
    fn advance(&mut self, watermark: i64) -> bool {
        self.metrics
            .watermark_ms
            .fetch_max(watermark, std::sync::atomic::Ordering::Relaxed);
        self.latest_watermark = self.latest_watermark.max(watermark);
        self.flush()
    }

    /// Forgets a partition's decoder state (revoked).
    pub fn forget(&mut self, partition: PartitionId) {
        self.decoders.remove(&partition);
    }
}

/// Receives decoder output for one raw batch.
struct Collector<'w> {
    rules: &'w RuleSet,
    cloudtrail_dispatch: &'w RuleDispatch,
    flow_dispatch: &'w RuleDispatch,
    flow_columns_dispatch: &'w RuleDispatch,
    host_dispatch: &'w RuleDispatch,
    watermark: &'w WatermarkTracker,
    outputs: &'w mut Vec<MatchBatch>,
    tally: &'w mut Tally,
    dead: &'w mut Vec<DeadLetter>,
    partition: PartitionId,
    partition_name: &'w str,
    offset: u64,
    /// The record's backend position, when its offset is not that.
    sequence_number: Option<&'w str>,
    now_ms: i64,
    max_event_ms: Option<i64>,
    max_sample_bytes: usize,
    key_buffer: &'w mut String,
    /// Ordinal of the event being matched (1-based within the batch).
    event_seq: u64,
    /// Per shard: the arena spans of the last event interned there.
    event_texts: Vec<EventTexts>,
}

/// Where one event's texts sit in a shard's arena.
#[derive(Clone, Copy)]
struct EventTexts {
    /// The `event_seq` these spans belong to (0: none yet).
    event: u64,
    sample: Span,
    id: Span,
    account: Span,
    region: Span,
}

impl EventTexts {
    const NONE: EventTexts = EventTexts {
        event: 0,
        sample: Span::NONE,
        id: Span::NONE,
        account: Span::NONE,
        region: Span::NONE,
    };
}

impl DecodeSink for Collector<'_> {
    fn event(&mut self, event: &Event<'_>) {
        self.collect(event);
    }

    /// A flow record is matched as its decoder split it: no [`Event`] is
    /// built, and only the fields rules ask for are read.
    fn flow(&mut self, record: &crate::decode::flow::FlowRecord<'_, '_>) {
        self.collect(record);
    }

    fn error(&mut self, error: DecodeError, original: &[u8]) {
        self.tally.failed[error.reason as usize] += 1;
        self.tally.dead_lettered += 1;
        self.dead.push(DeadLetter {
            partition: self.partition_name.to_string(),
            offset: self.offset,
            sequence_number: self.sequence_number.map(str::to_string),
            class: ErrorClass::User,
            reason: error.reason.as_str(),
            detail: error.detail,
            bytes: original.to_vec(),
            original_len: None,
        });
    }

    fn control_message(&mut self) {
        self.tally.control_messages += 1;
    }

    fn digest_file(&mut self) {
        self.tally.digest_files += 1;
    }
}

impl Collector<'_> {
    /// Matches one event against its kind's rules and adds a match per
    /// matching rule to the owning shard's batch.
    #[inline]
    fn collect<'a>(&mut self, event: &impl EventView<'a>) {
        self.tally.events += 1;
        self.event_seq += 1;
        let (time_ms, clamped) = self.watermark.clamp(event.time_ms(), self.now_ms);
        if clamped {
            self.tally.clamped += 1;
        }
        self.max_event_ms = Some(self.max_event_ms.map_or(time_ms, |m| m.max(time_ms)));
        if event.ruled_out() {
            self.tally.ruled_out += 1;
            return;
        }
        let shard_count = self.outputs.len();
        let dispatch = match event.kind() {
            crate::event::EventKind::CloudTrail => self.cloudtrail_dispatch,
            crate::event::EventKind::VpcFlow if event.default_flow_columns() => {
                self.flow_columns_dispatch
            }
            crate::event::EventKind::VpcFlow => self.flow_dispatch,
            crate::event::EventKind::HostLog => self.host_dispatch,
        };
        for &Candidate {
            rule: rule_idx,
            proven,
        } in dispatch.candidates(event)
        {
            let rule = self.rules.rule(rule_idx);
            if !rule.matches_unproven(event, proven) {
                continue;
            }
            // CloudWatch: an absent or non-numeric value adds nothing.
            let Some((value, distinct_hash)) = rule.contribution(event) else {
                continue;
            };
            self.key_buffer.clear();
            for (i, (_, slot)) in rule.group_by.iter().enumerate() {
                if i > 0 {
                    self.key_buffer.push(KEY_SEPARATOR);
                }
                if let Some(text) = event.field_str(*slot) {
                    if event.free_of_controls(*slot) {
                        self.key_buffer.push_str(text);
                    } else {
                        self.key_buffer.push_str(&sanitize_key(text));
                    }
                    continue;
                }
                match &*event.field(*slot) {
                    FieldValue::Str(s) => self.key_buffer.push_str(&sanitize_key(s)),
                    FieldValue::Number(n) => {
                        let _ = crate::event::write_number(self.key_buffer, *n);
                    }
                    other => match other.as_key_text() {
                        Some(text) => self.key_buffer.push_str(&text),
                        // A missing group field groups under "-" (as flow
                        // logs write absent values) rather than dropping
                        // the event: no missed alert.
                        None => self.key_buffer.push('-'),
                    },
                }
            }
            // One shard owns everything: no hash needed.
            let shard = if shard_count == 1 {
                0
            } else {
                route(rule_idx, self.key_buffer, shard_count)
            };
            let out = &mut self.outputs[shard];
            let key = out.intern(self.key_buffer);
            // The event's texts go into a shard's arena once, however many
            // of its rules match there.
            let cached = &mut self.event_texts[shard];
            if cached.event != self.event_seq {
                let text = event.text();
                let sample_cut = super::window::floor_char_boundary(text, self.max_sample_bytes);
                *cached = EventTexts {
                    event: self.event_seq,
                    sample: out.intern(&text[..sample_cut]),
                    id: intern_opt(out, event.id()),
                    account: intern_opt(out, event.account()),
                    region: intern_opt(out, event.region()),
                };
            }
            let EventTexts {
                sample,
                id,
                account,
                region,
                ..
            } = *cached;
            out.matches.push(Match {
                rule: rule_idx,
                time_ms,
                value,
                distinct_hash,
                key,
                sample,
                id,
                account,
                region,
                partition: self.partition,
                offset: self.offset,
            });
        }
    }
}

/// Key values never contain the separator (it would split a value).
fn sanitize_key(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(KEY_SEPARATOR) {
        std::borrow::Cow::Owned(value.replace(KEY_SEPARATOR, " "))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

fn intern_opt(out: &mut MatchBatch, text: Option<&str>) -> Span {
    match text {
        Some(t) => out.intern(t),
        None => Span::NONE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn routing_is_stable_and_in_range(rule in 0u16..64, key in ".{0,40}", shards in 1usize..64) {
            let shard = route(rule, &key, shards);
            prop_assert!(shard < shards);
            prop_assert_eq!(shard, route(rule, &key, shards));
        }
    }

    /// Dispatch (with its proven predicates) selects exactly the matches
    /// that evaluating every rule of the kind in full selects, in order.
    #[test]
    fn dispatch_agrees_with_every_rule() {
        use crate::decode::testing::Collector;
        use crate::event::EventKind;
        use crate::gen::{generate_records, GenKind, GenOptions};
        let loaded = crate::rules::load_all(&[], false).expect("built-in rules");
        let rules = crate::rules::compile_all(&loaded).expect("compile");
        // Without the rule gate, so that every event is decoded whole.
        let mut plans = rules.plans().clone();
        plans.for_kind_mut(EventKind::CloudTrail).set_gate(None);
        let mut decoder = Decoder::new(DecodeConfig::default(), &plans);
        let mut collector = Collector::new();
        for kind in [GenKind::CloudTrail, GenKind::Flows] {
            let options = GenOptions {
                count: 3000,
                ..GenOptions::default()
            };
            for record in generate_records(kind, &options) {
                decoder.decode(&record, &mut collector);
            }
        }
        let mut proven_skips = 0;
        let mut matched = 0;
        for kind in [EventKind::CloudTrail, EventKind::VpcFlow] {
            let dispatch = match kind {
                EventKind::CloudTrail => RuleDispatch::cloudtrail(&rules),
                _ => RuleDispatch::vpcflow(&rules),
            };
            for event in collector.events.iter().filter(|e| e.kind == kind) {
                let full: Vec<RuleIdx> = rules
                    .for_kind(kind)
                    .iter()
                    .copied()
                    .filter(|&idx| rules.rule(idx).matches(event))
                    .collect();
                let dispatched: Vec<RuleIdx> = dispatch
                    .candidates(event)
                    .iter()
                    .inspect(|c| proven_skips += c.proven.count_ones())
                    .filter(|c| rules.rule(c.rule).matches_unproven(event, c.proven))
                    .map(|c| c.rule)
                    .collect();
                assert_eq!(full, dispatched, "{}", event.text);
                matched += full.len();
            }
        }
        assert!(matched > 100, "the sample matches rules ({matched})");
        assert!(
            proven_skips > 1000,
            "flow action tests are proven ({proven_skips})"
        );
    }

    /// A worker over the built-in rules with `shards` unbounded shard
    /// channels, and raw flow batches of `per_batch` generated records.
    fn coalescing_rig(
        shards: usize,
    ) -> (
        DecodeWorker,
        Vec<crossbeam_channel::Receiver<ShardMsg>>,
        Vec<RawBatch>,
        Arc<WatermarkTracker>,
    ) {
        use crate::engine::watermark::WatermarkConfig;
        use crate::gen::{generate_records, GenKind, GenOptions};
        let loaded = crate::rules::load_all(&[], false).expect("built-in rules");
        let rules = Arc::new(crate::rules::compile_all(&loaded).expect("compile"));
        let rule_ids = rules.rules().iter().map(|r| r.id.clone()).collect();
        let metrics = Metrics::new(1, shards, rule_ids);
        let registry = Arc::new(PartitionRegistry::default());
        let (txs, rxs) = (0..shards).map(|_| crossbeam_channel::unbounded()).unzip();
        let (dead_tx, _dead_rx) = crossbeam_channel::unbounded();
        let watermark = Arc::new(WatermarkTracker::new(WatermarkConfig::default()));
        let worker = DecodeWorker::new(
            Arc::clone(&rules),
            DecodeConfig::default(),
            Arc::clone(&watermark),
            CommitTracker::new(shards),
            txs,
            Arc::clone(&metrics.decoders[0]),
            Arc::clone(&metrics),
            Arc::clone(&registry),
            dead_tx,
            1024,
        );
        let partition = registry.id("memory", "coalesce");
        let options = GenOptions {
            count: 2000,
            ..GenOptions::default()
        };
        let records = generate_records(GenKind::Flows, &options);
        let batches = records
            .chunks(500)
            .enumerate()
            .map(|(index, chunk)| {
                let mut batch = RawBatch::new(partition);
                for (i, record) in chunk.iter().enumerate() {
                    batch.push(record, (index * 500 + i) as u64);
                }
                batch
            })
            .collect();
        (worker, rxs, batches, watermark)
    }

    /// Every shard's matches, in order, as (rule, key, offset), and the
    /// number of match batches and tokens it received.
    fn received(
        rx: &crossbeam_channel::Receiver<ShardMsg>,
    ) -> (Vec<(u16, String, u64)>, usize, usize) {
        let (mut matches, mut sends, mut tokens) = (Vec::new(), 0, 0);
        for msg in rx.try_iter() {
            let ShardMsg::Matches(batch) = msg else {
                panic!("only match batches are sent");
            };
            sends += 1;
            tokens += batch.tokens.len();
            for m in &batch.matches {
                matches.push((m.rule, batch.text(m.key).to_string(), m.offset));
            }
        }
        (matches, sends, tokens)
    }

    #[test]
    fn coalesced_sends_carry_the_same_matches_as_one_send_per_batch() {
        let shards = 4;
        let (mut one_by_one, direct_rxs, batches, _) = coalescing_rig(shards);
        for batch in batches {
            assert!(one_by_one.process(batch));
        }
        let (worker, coalesced_rxs, batches, _) = coalescing_rig(shards);
        let mut worker = worker.with_max_pending(Duration::from_secs(3600));
        let count = batches.len();
        assert_eq!(count, shards, "the rig gives one raw batch per shard");
        for (index, batch) in batches.into_iter().enumerate() {
            assert!(worker.absorb(batch));
            let sent: usize = coalesced_rxs.iter().map(|rx| rx.len()).sum();
            if index + 1 < count {
                assert_eq!(
                    sent, 0,
                    "held back while fewer raw batches than shards came"
                );
            } else {
                assert!(sent > 0, "sent once as many raw batches as shards came");
            }
        }
        let mut total = 0;
        for (direct, coalesced) in direct_rxs.iter().zip(&coalesced_rxs) {
            let (expected, direct_sends, _) = received(direct);
            let (got, sends, tokens) = received(coalesced);
            assert_eq!(got, expected);
            assert!(direct_sends >= 2, "one send per raw batch ({direct_sends})");
            assert_eq!(sends, 1, "one send per shard");
            assert!(
                tokens >= 1 && tokens <= count,
                "one token per raw batch with matches"
            );
            total += got.len();
        }
        assert!(total > 100, "the flows match ({total})");
    }

    /// The latency is read on the monotonic clock, to the microsecond: a
    /// batch received 2.5 ms ago within the same wall-clock millisecond
    /// read as 0 (then 1 µs) before.
    #[test]
    fn processing_latency_is_measured_in_microseconds() {
        let (mut worker, _rxs, batches, _) = coalescing_rig(1);
        let mut batch = batches.into_iter().next().expect("a batch");
        batch.arrival_ms = now_ms();
        batch.received = Some(Instant::now() - Duration::from_micros(2_500));
        assert!(worker.process(batch));
        let histogram = worker.metrics.processing_latency_us.lock().unwrap();
        assert_eq!(histogram.len(), 1);
        assert!(histogram.max() >= 2_490, "{} µs", histogram.max());
    }

    /// A partition that ends (a file read to its end) leaves no decoder
    /// behind: a directory of 20,000 files kept 20,000 (400 MB).
    #[test]
    fn a_partition_that_ends_leaves_no_decoder() {
        let (mut worker, _rxs, batches, _) = coalescing_rig(1);
        let mut batches = batches.into_iter();
        let first = batches.next().expect("a batch");
        let partition = first.partition;
        assert!(worker.process(first));
        assert!(worker.decoders.contains_key(&partition));
        let mut last = batches.next().expect("another batch");
        last.partition = partition;
        last.ends_partition = true;
        assert!(worker.process(last));
        assert!(worker.decoders.is_empty());
    }

    #[test]
    fn a_worker_whose_dead_letter_sink_is_gone_keeps_its_pending_batches() {
        // The rig drops the dead-letter receiver: sending one fails.
        let (worker, rxs, batches, _) = coalescing_rig(2);
        let mut worker = worker.with_max_pending(Duration::from_secs(3600));
        let mut batch = batches.into_iter().next().expect("a batch");
        batch.push(b"not a record of any kind {", 10_000);
        assert!(!worker.absorb(batch), "the dead letter has nowhere to go");
        // What was decoded is still pending, one batch per shard.
        assert!(worker.flush());
        let sent: usize = rxs.iter().map(|rx| received(rx).0.len()).sum();
        assert!(sent > 0, "the batch's matches went out");
    }

    #[test]
    fn pending_matches_go_out_before_a_newer_watermark() {
        let (worker, rxs, batches, watermark) = coalescing_rig(4);
        let mut worker = worker.with_max_pending(Duration::from_secs(3600));
        let partition = batches[0].partition;
        for batch in batches.into_iter().take(2) {
            assert!(worker.absorb(batch));
        }
        assert!(rxs.iter().all(|rx| rx.is_empty()));
        // Nor has the shared tracker heard of the held batches: another
        // worker cannot carry a watermark past them to the shards.
        assert_eq!(watermark.partition_watermark(partition), None);
        // An idle tick (or a partition's end) advances the watermark: the
        // matches held back must reach each shard first, in one batch
        // that carries the newer watermark after them.
        assert!(worker.advance(i64::MAX / 2));
        let mut matched = 0;
        for rx in &rxs {
            let messages: Vec<ShardMsg> = rx.try_iter().collect();
            assert_eq!(messages.len(), 1);
            let ShardMsg::Matches(batch) = &messages[0] else {
                panic!("a match batch");
            };
            assert_eq!(batch.watermark_ms, i64::MAX / 2);
            matched += batch.matches.len();
        }
        assert!(matched > 0);
        assert!(watermark.partition_watermark(partition).is_some());
    }

    #[test]
    fn a_flow_record_matches_as_its_event_would() {
        use crate::decode::flow::FlowDecoder;
        use crate::decode::Envelope;
        use crate::event::{EventKind, EventView};
        use crate::gen::{generate_records, GenKind, GenOptions};
        // The built-in pack plus rules that read what it does not: a
        // space-delimited filter with alternatives, CIDR, numeric and
        // existence predicates, and several group fields.
        let extra = [
            r#"{"id": "x-delimited", "title": "t", "description": "d", "severity": "low",
                "kind": "vpcflow", "window": "5m", "threshold": ">= 1",
                "filter": "[v, acct, eni, src, dst, sport, dport = 22 || dport = 3389, proto, packets, bytes > 100, start, end, action, status]",
                "where": [{"field": "srcaddr", "cidr": ["203.0.113.0/24", "10.0.0.0/8"]}],
                "group_by": ["srcaddr", "dstport"]}"#,
            r#"{"id": "x-numbers", "title": "t", "description": "d", "severity": "low",
                "kind": "vpcflow", "window": "5m", "threshold": ">= 1", "filter": "",
                "where": [{"field": "packets", "op": ">=", "value": 10},
                          {"field": "log-status", "exists": true},
                          {"field": "protocol", "equals": 6}],
                "group_by": ["account-id", "@message", "@owner"], "aggregate": {"sum": "bytes"}}"#,
        ];
        let mut loaded = crate::rules::load_all(&[], false).expect("built-in rules");
        for text in extra {
            let spec = crate::rules::parse_rule_text("test", text).expect("rule");
            loaded.push(crate::rules::LoadedRule {
                spec,
                origin: crate::rules::Origin::Builtin("test".into()),
            });
        }
        let rules = crate::rules::compile_all(&loaded).expect("compile");
        let dispatch = RuleDispatch::vpcflow(&rules);
        let plan = rules.plans().for_kind(EventKind::VpcFlow);
        let mut decoder = FlowDecoder::new(plan, Default::default());
        let options = GenOptions {
            count: 3000,
            ..GenOptions::default()
        };
        let mut lines: Vec<String> = generate_records(GenKind::Flows, &options)
            .into_iter()
            .map(|record| String::from_utf8(record).expect("text"))
            .collect();
        // Lines whose pattern tokens differ from the decoder's, and values
        // that do not parse as their column's type.
        lines.extend(
            [
                "2 123 eni-1 203.0.113.9 10.0.0.1 5000 22 6 20 400 1709294400 1709294460 REJECT OK",
                "2 123 eni-\"1 203.0.113.9 10.0.0.1 5000 22 6 20 400 1709294400 1709294460 REJECT OK",
                "2 123 eni-[1 203.0.113.9 10.0.0.1 5000 22 6 20 400 1709294400 1709294460 REJECT OK]",
                "2 123 eni-1\tx 203.0.113.9 10.0.0.1 5000 22 6 20 400 1709294400 1709294460 REJECT OK",
                "2 123 eni-1\u{1f}x 203.0.113.9 10.0.0.1 5000 22 6 20 400 1709294400 1709294460 REJECT OK",
                "2 123 eni-1 10.1.2.3 8.8.8.8 5000 3389 6 many 4e3 1709294400 1709294460 ACCEPT OK",
                "2 123 eni-1 - - - - - - - 1709294400 1709294460 - NODATA",
                "2 - eni-1 10.1.2.3 8.8.8.8 5000 3389 tcp 99 400 1709294400 1709294460 ACCEPT -",
            ]
            .map(String::from),
        );
        let envelope = Envelope {
            // With a key separator, which no column of a plain line holds.
            owner: Some("1111\u{1f}22223333"),
            ..Envelope::default()
        };
        let (mut records, mut matched, mut fell_back, mut control_free) = (0, 0, 0, 0);
        // Each line twice: plainness looked for by the record, and proven
        // by the short-record scan as the decoder's dispatch does.
        let scanned = lines.iter().map(|line| {
            let plain = crate::decode::short::scan(line.as_bytes()).is_some_and(|s| s.plain);
            (line, plain)
        });
        let unknown = lines.iter().map(|line| (line, false));
        for (line, plain) in unknown.chain(scanned) {
            let decoded = decoder.decode(line, plain, &envelope, |record| {
                records += 1;
                let event = record.to_event();
                for slot in 0..plan.len() {
                    let slot = crate::fields::Slot::try_from(slot).expect("slot");
                    assert_eq!(*record.field(slot), *event.field(slot), "{line}");
                    let text = match event.field(slot) {
                        FieldValue::Str(text) => Some(text.to_string()),
                        _ => None,
                    };
                    assert_eq!(record.field_str(slot), text.as_deref(), "{line}");
                    assert_eq!(EventView::field_str(&event, slot), text.as_deref());
                    // Group keys skip the separator search for these.
                    if record.free_of_controls(slot) {
                        control_free += 1;
                        if let FieldValue::Str(text) = &*record.field(slot) {
                            assert!(!text.bytes().any(|b| b < 0x20), "{line}: {text:?}");
                        }
                    }
                }
                assert_eq!(record.time_ms(), event.time_ms, "{line}");
                assert_eq!(record.account(), event.account.as_deref(), "{line}");
                assert_eq!(record.region(), event.region.as_deref(), "{line}");
                assert_eq!(record.text(), event.text, "{line}");
                fell_back += usize::from(record.delimited_spans().is_none());
                assert_eq!(dispatch.candidates(record), dispatch.candidates(&event));
                for &idx in rules.for_kind(EventKind::VpcFlow) {
                    let rule = rules.rule(idx);
                    let hit = rule.matches(record);
                    assert_eq!(hit, rule.matches(&event), "{} on {line}", rule.id);
                    assert_eq!(rule.contribution(record), rule.contribution(&event));
                    matched += usize::from(hit);
                }
            });
            assert!(decoded.is_ok(), "{line}: {decoded:?}");
        }
        assert_eq!(records, 2 * lines.len());
        assert!(matched > 1000, "the sample matches rules ({matched})");
        assert_eq!(fell_back, 6, "three lines are tokenized apart, twice");
        assert!(
            control_free > 1000,
            "plain columns are known ({control_free})"
        );
    }

    /// Records of the default format split on spaces alone take the
    /// dispatch that also lists pattern rules by their `action` column; it
    /// selects exactly what evaluating every rule selects, and fewer
    /// candidates. Records of another format do not take it.
    #[test]
    fn flow_dispatch_by_columns_selects_what_every_rule_does() {
        use crate::decode::flow::{FlowDecoder, FlowFormat};
        use crate::decode::Envelope;
        use crate::event::{EventKind, EventView};
        use crate::gen::{generate_records, GenKind, GenOptions};
        let loaded = crate::rules::load_all(&[], false).expect("built-in rules");
        let rules = crate::rules::compile_all(&loaded).expect("compile");
        let by_action = RuleDispatch::vpcflow(&rules);
        let by_columns = RuleDispatch::vpcflow_default_columns(&rules);
        let plan = rules.plans().for_kind(EventKind::VpcFlow);
        let options = GenOptions {
            count: 2000,
            ..GenOptions::default()
        };
        let mut lines: Vec<String> = generate_records(GenKind::Flows, &options)
            .into_iter()
            .map(|record| String::from_utf8(record).expect("text"))
            .collect();
        let ssh = "2 123 eni-1 203.0.113.9 10.0.0.1 5000 22 6 20 400 1709294400 1709294460";
        lines.extend([
            format!("{ssh} REJECT OK"),
            format!("{ssh} OK REJECT"),
            format!("{ssh} \"REJECT\" OK"),
            format!("{ssh} - NODATA"),
        ]);
        // Version 2 with its last two columns swapped: 14 columns, but the
        // pattern's 13th token is not `action` there.
        let swapped = FlowFormat::parse(
            "version account-id interface-id srcaddr dstaddr srcport dstport \
             protocol packets bytes start end log-status action",
        )
        .expect("format");
        let (mut by_columns_used, mut narrower, mut matched, mut swapped_records) = (0, 0, 0, 0);
        for format in [FlowFormat::default(), swapped] {
            let default_format = format == FlowFormat::default();
            let mut decoder = FlowDecoder::new(plan, format);
            for line in &lines {
                let plain = crate::decode::short::scan(line.as_bytes()).is_some_and(|s| s.plain);
                let decoded = decoder.decode(line, plain, &Envelope::NONE, |record| {
                    let columns = record.default_flow_columns();
                    assert!(default_format || !columns, "{line}");
                    swapped_records += usize::from(!default_format);
                    let dispatch = if columns { &by_columns } else { &by_action };
                    by_columns_used += usize::from(columns);
                    narrower += usize::from(
                        dispatch.candidates(record).len() < by_action.candidates(record).len(),
                    );
                    let full: Vec<RuleIdx> = rules
                        .for_kind(EventKind::VpcFlow)
                        .iter()
                        .copied()
                        .filter(|&idx| rules.rule(idx).matches(record))
                        .collect();
                    let dispatched: Vec<RuleIdx> = dispatch
                        .candidates(record)
                        .iter()
                        .filter(|c| rules.rule(c.rule).matches_unproven(record, c.proven))
                        .map(|c| c.rule)
                        .collect();
                    assert_eq!(full, dispatched, "{line}");
                    matched += full.len();
                });
                assert!(decoded.is_ok(), "{line}: {decoded:?}");
            }
        }
        assert!(by_columns_used > 1000, "{by_columns_used}");
        assert!(
            narrower > 1000,
            "accepted flows skip the ssh pattern ({narrower})"
        );
        assert!(matched > 500, "{matched}");
        assert_eq!(swapped_records, lines.len());
    }

    #[test]
    fn routing_is_pinned() {
        // Changing the routing function silently reshuffles keys between
        // shards; pin it.
        assert_eq!(route(3, "203.0.113.9", 8), route(3, "203.0.113.9", 8));
        let spread: std::collections::HashSet<usize> = (0..100)
            .map(|i| route(0, &format!("10.0.0.{i}"), 4))
            .collect();
        assert_eq!(spread.len(), 4, "keys spread over all shards");
    }
}
