//! A shard worker: owns the window and alarm state of its (rule, key) pairs.
//!
//! Matches are routed to shards by a stable hash of (rule, key), so each
//! shard owns a disjoint set of keys and needs no lock. Windows live in
//! bins keyed by (window end, rule) (as in Arroyo's tumbling aggregator):
//! when the watermark passes a bin's end, the whole bin closes. A bin keeps
//! its windows compactly (see [`bins`]). A shard emits at
//! most one Create per (rule, key, window); eager rules fire the moment the
//! threshold is crossed, the others when the window closes.
//!
//! In stage 2 of a scaled-out deployment a shard merges partial aggregates
//! ([`PartialBatch`]) instead of matches into the same bins and lanes,
//! judges lateness per repartition partition and drops the windows of
//! revoked partitions (their new owner rebuilds them).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use compact_str::CompactString;
use crossbeam_channel::{Receiver, Sender};
use hashbrown::Equivalent;

use super::alarm::{AlarmState, AlarmStatus, Datapoint, Transition};
use super::commit::{AlertHold, BatchToken, CommitTracker, ShardHolds};
use super::partial::ReplayOffsets;
use super::sliding::{empty_period, LaneAlert, SlidingLane};
use super::window::{window_start, EvidenceLimits, InputSpan, MergeCheck, WindowAgg};
use crate::alert::{alert_id, Activity, Alert, RuleInfo};
use crate::metrics::{RepartitionCounters, Tally, WorkerCounters};
use crate::rules::compile::{CompiledRule, EvalMode, RuleIdx};
use crate::rules::RuleSet;
use crate::source::PartitionId;
use bin_map::BinMap;
use bins::{Bin, Contribution};
use match_texts::MatchTexts;

mod bin_map;
mod bins;
mod distinct;
mod match_texts;

/// Separator between group-key values inside a key string.
pub const KEY_SEPARATOR: char = '\u{1f}';

/// A byte range in a [`MatchBatch`] arena; `NONE` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// The absent span.
    pub const NONE: Span = Span {
        start: u32::MAX,
        end: u32::MAX,
    };

    /// Whether the span is absent.
    pub fn is_none(self) -> bool {
        self.start == u32::MAX
    }
}

/// One event's contribution to one rule.
#[derive(Debug, Clone, Copy)]
pub struct Match {
    pub rule: RuleIdx,
    pub time_ms: i64,
    pub value: f64,
    pub distinct_hash: u64,
    pub key: Span,
    pub sample: Span,
    pub id: Span,
    pub account: Span,
    pub region: Span,
    pub partition: PartitionId,
    pub offset: u64,
}

/// Matches for one shard from one raw batch. Strings live in one arena, so
/// building a batch does not allocate per match.
#[derive(Debug, Default)]
pub struct MatchBatch {
    pub arena: String,
    pub matches: Vec<Match>,
    /// Watermark when the batch was sent.
    pub watermark_ms: i64,
    /// Stage 1 only: the input partition of the batch, its own watermark
    /// after it (published per input partition to stage 2) and the
    /// partition's assignment generation.
    pub input_watermark: Option<(PartitionId, i64, u64)>,
    /// Stage 1 only: the raw batch's [`crate::source::RawBatch::replay_end`]
    /// and assignment generation.
    pub replay_end: u64,
    pub generation: u64,
    /// Keep the raw batches whose matches this batch carries in flight
    /// until the shard has registered holds (one per raw batch: a decode
    /// worker may coalesce several into one send).
    pub tokens: smallvec::SmallVec<[BatchToken; 1]>,
}

impl MatchBatch {
    /// Appends `text` to the arena and returns its span.
    pub fn intern(&mut self, text: &str) -> Span {
        let start = self.arena.len() as u32;
        self.arena.push_str(text);
        Span {
            start,
            end: self.arena.len() as u32,
        }
    }

    /// The text of `span` (empty when absent).
    pub fn text(&self, span: Span) -> &str {
        span_text(&self.arena, span)
    }
}

/// The text of `span` in `arena` (empty when absent).
fn span_text(arena: &str, span: Span) -> &str {
    if span.is_none() {
        return "";
    }
    arena
        .get(span.start as usize..span.end as usize)
        .unwrap_or("")
}

/// An alert plus the hold that keeps its input uncommitted until acked.
#[derive(Debug)]
pub struct Emitted {
    pub alert: Alert,
    pub rule: RuleIdx,
    /// Dropping this acknowledges the alert to the commit tracker.
    pub hold: AlertHold,
}

/// The Create of an ALARM episode that may turn out to be a later one's:
/// its period and aggregate, whose input stays held until it is decided.
#[derive(Debug)]
struct DeferredCreate {
    period_start: i64,
    agg: WindowAgg,
}

/// One decoded partial, ready to merge.
#[derive(Debug)]
pub struct MergePartial {
    pub rule: RuleIdx,
    pub key: CompactString,
    /// The aggregate; it holds the repartition record it came from.
    pub agg: WindowAgg,
    /// The stage-1 input partition and offsets it covers (replay check).
    pub input: CompactString,
    pub first_offset: u64,
    pub last_offset: u64,
    /// Its matches' offsets, when stage 1 listed them (a replay).
    pub replay: Option<Box<ReplayOffsets>>,
    /// The stage-1 assignment epoch it names (0: none), see
    /// [`InputSpan::epoch`].
    pub epoch: u64,
}

impl MergePartial {
    /// Where its matches come from, for the replay check.
    pub fn span(&self) -> InputSpan<'_> {
        InputSpan {
            input: &self.input,
            first: self.first_offset,
            last: self.last_offset,
            epoch: self.epoch,
            listed: self.replay.is_some(),
        }
    }
}

/// Partial aggregates for one shard from one repartition-topic batch
/// (stage 2 of a scaled-out deployment, see [`super::merge`]).
#[derive(Debug, Default)]
pub struct PartialBatch {
    pub partials: Vec<MergePartial>,
    /// The watermark of `partition` (stage 2 keeps one per repartition
    /// partition) when the batch was sent.
    pub watermark_ms: i64,
    /// The repartition partition read and its assignment generation: a
    /// batch read before the partition was revoked is dropped (its new
    /// owner replays it).
    pub partition: PartitionId,
    pub generation: u64,
    /// Keeps the raw batch in flight until the shard has registered holds.
    pub token: Option<BatchToken>,
}

/// Messages a shard receives.
#[derive(Debug)]
pub enum ShardMsg {
    Matches(MatchBatch),
    Partials(PartialBatch),
    /// End of a finite input: first the watermark moves to `until` (the
    /// last event time, so alarm keys are evaluated up to there alike on
    /// any shard count), then every open window closes.
    FlushAll {
        until: Option<i64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BinKey {
    rule: RuleIdx,
    key: CompactString,
}

#[derive(Hash)]
struct BorrowedKey<'a> {
    rule: RuleIdx,
    key: &'a str,
}

impl Equivalent<BinKey> for BorrowedKey<'_> {
    fn equivalent(&self, key: &BinKey) -> bool {
        self.rule == key.rule && self.key == key.key.as_str()
    }
}

/// Floor on the measured bytes per open window used to turn
/// `max_state_bytes` into a window count (and the estimate before the
/// first measurement): the aggregate, its key and the map slot.
pub const MIN_WINDOW_BYTES: u64 = 256;

/// Shard settings.
#[derive(Debug, Clone, Copy)]
pub struct ShardConfig {
    /// Cap on open window aggregates in this shard.
    pub max_open_windows: usize,
    /// Cap on the approximate bytes of this shard's window state
    /// (`usize::MAX`: none). Enforced as a window count; see
    /// [`Shard::window_cap`].
    pub max_state_bytes: usize,
    pub evidence: EvidenceLimits,
    /// Let sliding rules raise before their step is complete (service
    /// mode). Replay evaluates sliding steps in order at the end instead,
    /// which makes the outcome independent of input order.
    pub eager_sliding: bool,
    /// Drop the windows of revoked partitions (stage 2, where every window
    /// is fed by exactly one repartition partition, so its new owner
    /// rebuilds it whole from the committed offsets). Off on the direct
    /// path, where a window mixes partitions.
    pub drop_revoked: bool,
}

/// State and logic of one shard.
pub struct Shard {
    index: usize,
    rules: Arc<RuleSet>,
    rule_info: Vec<Arc<RuleInfo>>,
    config: ShardConfig,
    /// Open tumbling windows by (window end, rule).
    bins: BinMap,
    /// Per rule, the last tumbling window `[start, end)` a match fell in.
    last_windows: Vec<(i64, i64)>,
    alarms: hashbrown::HashMap<BinKey, AlarmState>,
    /// Creates held back: an earlier period entered ALARM after a later
    /// one's Create went out eagerly (see [`Shard::push_datapoint`]).
    deferred_creates: hashbrown::HashMap<BinKey, DeferredCreate>,
    /// The greatest common divisor of the alarm rules' periods (0: none):
    /// every period of every alarm rule ends on a multiple of it.
    alarm_period_gcd: i64,
    /// The `limit` of the last [`Shard::sweep_missing`].
    alarms_swept_to: i64,
    sliding: hashbrown::HashMap<BinKey, SlidingLane>,
    watermark_ms: i64,
    open_windows: usize,
    /// Approximate bytes of all open aggregates and their keys, kept up to
    /// date incrementally (see [`WindowAgg::approx_bytes`]).
    state_bytes: usize,
    holds: ShardHolds,
    holds_dirty: bool,
    /// The holds of closed periods that an M-of-N alarm still counts, by
    /// the end of the last period whose evaluation counts them: released
    /// when the windows up to there have closed, so that a restart replays
    /// the periods the alarm needs (see [`Shard::close_bin`]).
    alarm_holds: BTreeMap<i64, Vec<(PartitionId, u64)>>,
    tracker: CommitTracker,
    counters: Arc<WorkerCounters>,
    out: Vec<Emitted>,
    tally: Tally,
    shed_warned: bool,
    /// Cursor into the tracker's revocation log.
    revocation_cursor: usize,
    /// Stage 2: the watermark of each repartition partition heard of.
    partition_marks: HashMap<PartitionId, i64>,
    /// Stage 2: the limit sliding steps were last evaluated to.
    sliding_until: i64,
    /// Stage 2's replay counters.
    repartition: Arc<RepartitionCounters>,
}

/// The facts alerts carry about each rule, shared by all alerts.
pub fn rule_infos(rules: &RuleSet) -> Vec<Arc<RuleInfo>> {
    rules
        .rules()
        .iter()
        .map(|r| {
            Arc::new(RuleInfo {
                id: r.id.clone(),
                title: r.title.clone(),
                description: r.description.clone(),
                severity: r.severity,
                attack: r.attack.clone(),
                version: r.version,
                labels: r.labels.clone(),
                group_by: r.group_by.iter().map(|(name, _)| name.clone()).collect(),
                aggregate: r.aggregate.name(),
                threshold: r.threshold.to_string(),
                kind: r.kind.as_str(),
                json: Default::default(),
            })
        })
        .collect()
}

/// The greatest common divisor of the periods of `rules` in alarm mode
/// (0 when there is none).
fn alarm_period_gcd(rules: &RuleSet) -> i64 {
    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    rules
        .rules()
        .iter()
        .filter(|rule| rule.evaluation.mode == EvalMode::Alarm && rule.slide_ms.is_none())
        .map(|rule| rule.window_ms)
        .fold(0, gcd)
}

impl Shard {
    /// A shard with no state.
    pub fn new(
        index: usize,
        rules: Arc<RuleSet>,
        config: ShardConfig,
        tracker: CommitTracker,
        counters: Arc<WorkerCounters>,
    ) -> Self {
        let rule_info = rule_infos(&rules);
        let rule_count = rules.len();
        let alarm_period_gcd = alarm_period_gcd(&rules);
        Shard {
            index,
            rules,
            rule_info,
            config,
            bins: BinMap::default(),
            last_windows: vec![(0, 0); rule_count],
            alarm_period_gcd,
            alarms_swept_to: i64::MIN,
            alarms: hashbrown::HashMap::new(),
            deferred_creates: hashbrown::HashMap::new(),
            sliding: hashbrown::HashMap::new(),
            watermark_ms: i64::MIN,
            open_windows: 0,
            state_bytes: 0,
            holds: ShardHolds::default(),
            holds_dirty: false,
            alarm_holds: BTreeMap::new(),
            tracker,
            counters,
            out: Vec::new(),
            tally: Tally::default(),
            shed_warned: false,
            revocation_cursor: 0,
            partition_marks: HashMap::new(),
            sliding_until: i64::MIN,
            repartition: Arc::default(),
        }
    }

    /// Counts stage-2 replays into `counters` (the engine's metrics).
    pub fn with_repartition_counters(mut self, counters: Arc<RepartitionCounters>) -> Self {
        self.repartition = counters;
        self
    }

    /// Runs the shard until its input channel closes. Open windows are
    /// closed only on [`ShardMsg::FlushAll`]; otherwise they are left to be
    /// rebuilt from the uncommitted input after a restart.
    pub fn run(mut self, input: Receiver<ShardMsg>, output: Sender<Vec<Emitted>>) {
        for msg in input.iter() {
            if self.config.drop_revoked {
                self.drop_revoked();
            }
            match msg {
                ShardMsg::Matches(batch) => self.process(batch),
                ShardMsg::Partials(batch) => self.process_partials(batch),
                ShardMsg::FlushAll { until } => self.flush_all(until),
            }
            if !self.out.is_empty() && output.send(std::mem::take(&mut self.out)).is_err() {
                tracing::error!(shard = self.index, "alert channel closed, shard stopping");
                return;
            }
        }
    }

    /// Applies one batch of matches, then closes what the watermark allows.
    pub fn process(&mut self, batch: MatchBatch) {
        // Cloned once per batch: a clone per match cost two atomic
        // read-modify-writes each.
        let rules = Arc::clone(&self.rules);
        for m in &batch.matches {
            self.apply(rules.rule(m.rule), &batch, m);
        }
        self.tally.matches += batch.matches.len() as u64;
        self.advance_watermark(batch.watermark_ms);
        self.enforce_cap();
        self.finish_batch();
        drop(batch.tokens);
    }

    /// Merges one batch of partials (stage 2), then closes what the
    /// watermarks allow. A batch read under an older assignment of its
    /// partition is dropped: the partition's new owner replays it.
    ///
    /// Every stage-2 window is fed by exactly one repartition partition, so
    /// lateness is judged against that partition's own watermark, and
    /// windows close at the minimum over the partitions this shard has
    /// heard of: a partition assigned later, replaying older partials, is
    /// not late just because the others are ahead.
    pub fn process_partials(&mut self, batch: PartialBatch) {
        let current = self.tracker.generation(batch.partition) == batch.generation;
        if current {
            let known = self
                .partition_marks
                .get(&batch.partition)
                .copied()
                .unwrap_or(i64::MIN);
            let rules = Arc::clone(&self.rules);
            for partial in &batch.partials {
                self.merge_partial(rules.rule(partial.rule), batch.partition, partial, known);
            }
            // Events, as on the direct path: a partial holds `count`.
            self.tally.matches += batch.partials.iter().map(|p| p.agg.count).sum::<u64>();
            // Heard of, even while warming up (at the floor): it holds the
            // closing of this shard's windows until it catches up.
            let mark = self
                .partition_marks
                .entry(batch.partition)
                .or_insert(i64::MIN);
            *mark = (*mark).max(batch.watermark_ms);
        }
        let limit = self
            .partition_marks
            .values()
            .copied()
            .min()
            .unwrap_or(i64::MIN);
        // A partition heard of after others moved on (a rebalance) opens
        // windows below this shard's high mark: close by the current
        // minimum, not by the high mark, on every batch (the first bin is
        // all it looks at when nothing is due).
        self.close_until(limit);
        self.sweep_missing(limit);
        if limit > self.sliding_until {
            self.advance_sliding(limit);
        }
        // Lowered by a partition heard of late, so that sliding steps are
        // evaluated again once it catches up.
        self.sliding_until = limit;
        if limit > self.watermark_ms {
            tracing::debug!(shard = self.index, limit, "stage-2 watermark advanced");
            self.watermark_ms = limit;
        }
        self.enforce_cap();
        self.finish_batch();
        drop(batch.token);
    }

    /// Merges one partial read from repartition partition `partition` into
    /// its window (or sliding pane), unless it is late against
    /// `late_bound` (that partition's watermark) or a replay; then fires
    /// eagerly if the rule allows.
    fn merge_partial(
        &mut self,
        rule: &CompiledRule,
        partition: PartitionId,
        partial: &MergePartial,
        late_bound: i64,
    ) {
        let position = (partition, partial.agg.holds.first().map_or(0, |h| h.1));
        let time_ms = partial.agg.first_seen_ms;
        if let Some(step) = rule.slide_ms {
            let repartition = Arc::clone(&self.repartition);
            let update = |pane: &mut WindowAgg, limits: EvidenceLimits| {
                let check = pane.mark_merged(partial.span());
                let Some(part) = new_part(partial, check, &repartition) else {
                    return false;
                };
                let new_partition = !pane.holds.iter().any(|(p, _)| *p == position.0);
                pane.merge(&part, limits.max_samples);
                new_partition
            };
            self.apply_sliding(
                partial.rule,
                &partial.key,
                time_ms,
                position,
                (late_bound, partial.agg.count),
                update,
                rule,
                step,
            );
            return;
        }
        let start = window_start(time_ms, rule.window_ms);
        let end = start.saturating_add(rule.window_ms);
        if end <= late_bound {
            self.tally.late += partial.agg.count;
            return;
        }
        let bin = self
            .bins
            .get_or_open((end, partial.rule), || Bin::new(rule.aggregate));
        let bytes_before = bin.approx_bytes();
        let found = bin.find(&partial.key);
        let part = match found {
            Some(index) => {
                let check = bin.mark_merged(index, partial.span());
                let Some(part) = new_part(partial, check, &self.repartition) else {
                    self.state_bytes += bin.approx_bytes() - bytes_before;
                    return;
                };
                part
            }
            None => Cow::Borrowed(&partial.agg),
        };
        let Some(added) = bin.merge(&partial.key, &part, self.config.evidence) else {
            // The bin's key arena is full (4 GiB of keys in one window):
            // its events are shed, as the direct path sheds each match.
            self.tally.shed += part.count;
            return;
        };
        if found.is_none() {
            bin.mark_merged(added.index, partial.span());
        }
        self.state_bytes += bin.approx_bytes() - bytes_before;
        if added.opened {
            self.open_windows += 1;
        }
        for &(partition, offset) in &partial.agg.holds {
            if let Some(replaced) = bin.lower_min_hold(partition, offset) {
                self.holds.hold(partition, offset);
                if let Some(previous) = replaced {
                    self.holds.unhold(partition, previous);
                }
                self.holds_dirty = true;
            }
        }
        if !rule.eager || bin.entry(added.index).fired() {
            return;
        }
        if !rule.threshold.breached_by(bin.value(added.index)) {
            return;
        }
        self.fire_eagerly(partial.rule, rule, &partial.key, start, end, added.index);
    }

    /// Drops the windows and panes fed by partitions revoked since the
    /// last call, with their holds, and the alarm states of their keys,
    /// without evaluating them: their new owner rebuilds and evaluates
    /// them, so no alert is sent twice, and none by a replica that no
    /// longer owns the key.
    pub(crate) fn drop_revoked(&mut self) {
        let revoked = self.tracker.revocations_since(&mut self.revocation_cursor);
        if revoked.is_empty() {
            return;
        }
        let mut dropped = 0usize;
        let mut rebuilt = Vec::new();
        for (bin_key, bin) in self.bins.iter() {
            if let Some((kept, count)) = bin.without_fed_by(&revoked) {
                rebuilt.push((*bin_key, kept));
                dropped += count;
            }
        }
        for (bin_key, kept) in rebuilt {
            let Some(old) = self.bins.remove(&bin_key) else {
                continue;
            };
            self.state_bytes = self.state_bytes.saturating_sub(old.approx_bytes());
            self.release_holds(old.min_holds());
            if kept.len() == 0 {
                continue;
            }
            self.state_bytes += kept.approx_bytes();
            for &(partition, offset) in kept.min_holds() {
                self.holds.hold(partition, offset);
            }
            self.bins.insert(bin_key, kept);
        }
        self.open_windows -= dropped;
        // A key lives in one repartition partition: a lane with a pane fed
        // by a revoked partition is that partition's, whole (its evaluation
        // cursor included), and its new owner rebuilds it.
        let fed_by_revoked = |agg: &WindowAgg| agg.holds.iter().any(|(p, _)| revoked.contains(p));
        let mut panes: Vec<WindowAgg> = Vec::new();
        self.sliding.retain(|_, lane| {
            if !lane.panes.values().any(fed_by_revoked) {
                return true;
            }
            panes.extend(lane.panes.values().cloned());
            false
        });
        for pane in &panes {
            self.open_windows -= 1;
            self.state_bytes = self.state_bytes.saturating_sub(pane.approx_bytes());
            self.release_holds(&pane.holds);
        }
        for partition in &revoked {
            self.holds.forget(*partition);
            self.partition_marks.remove(partition);
        }
        for holds in self.alarm_holds.values_mut() {
            holds.retain(|(partition, _)| !revoked.contains(partition));
        }
        self.alarms
            .retain(|_, state| !state.partition.is_some_and(|p| revoked.contains(&p)));
        let alarms = &self.alarms;
        let orphaned: Vec<DeferredCreate> = self
            .deferred_creates
            .extract_if(|key, _| !alarms.contains_key(key))
            .map(|(_, deferred)| deferred)
            .collect();
        for deferred in orphaned {
            self.release_holds(&deferred.agg.holds);
        }
        self.holds_dirty = true;
        tracing::info!(
            shard = self.index,
            partitions = revoked.len(),
            windows = dropped + panes.len(),
            "dropped the windows of revoked partitions"
        );
        self.finish_batch();
    }

    /// Closes what a watermark at `watermark` allows, if it moves forward.
    fn advance_watermark(&mut self, watermark: i64) {
        if watermark > self.watermark_ms {
            self.watermark_ms = watermark;
            self.close_until(watermark);
            self.sweep_missing(watermark);
            self.advance_sliding(watermark);
        }
    }

    /// Moves the watermark to `until` (the last event time), then closes
    /// every window, oldest first.
    pub fn flush_all(&mut self, until: Option<i64>) {
        if let Some(until) = until {
            self.advance_watermark(until);
        }
        self.close_until(i64::MAX);
        self.advance_sliding(i64::MAX);
        self.finish_batch();
    }

    /// Alerts produced so far and not yet taken.
    pub fn take_output(&mut self) -> Vec<Emitted> {
        std::mem::take(&mut self.out)
    }

    /// Open window aggregates.
    pub fn open_windows(&self) -> usize {
        self.open_windows
    }

    fn finish_batch(&mut self) {
        if self.holds_dirty {
            self.holds.publish(&self.tracker, self.index);
            self.holds_dirty = false;
        }
        self.counters.add(&self.tally);
        self.tally = Tally::default();
        self.counters.open_windows.store(
            self.open_windows as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.counters.state_bytes.store(
            self.state_bytes as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Counts one match of `rule` into its window (or sliding pane).
    fn apply(&mut self, rule: &CompiledRule, batch: &MatchBatch, m: &Match) {
        if let Some(step) = rule.slide_ms {
            let evidence = self.config.evidence;
            self.apply_sliding(
                m.rule,
                batch.text(m.key),
                m.time_ms,
                (m.partition, m.offset),
                (self.watermark_ms, 1),
                |pane, _| apply_match(pane, batch, m, evidence),
                rule,
                step,
            );
            return;
        }
        let (start, end) = self.tumbling_window(m.rule, rule.window_ms, m.time_ms);
        if end <= self.watermark_ms {
            self.tally.late += 1;
            return;
        }
        let key_text = batch.text(m.key);
        let bin = self
            .bins
            .get_or_open((end, m.rule), || Bin::new(rule.aggregate));
        let bytes_before = bin.approx_bytes();
        let contribution = Contribution {
            value: m.value,
            distinct_hash: m.distinct_hash,
            time_ms: m.time_ms,
            partition: m.partition,
            offset: m.offset,
            texts: MatchTexts::of(batch, m),
        };
        let Some(added) = bin.add(key_text, &contribution, self.config.evidence) else {
            // The bin's key arena is full (4 GiB of keys in one window).
            self.tally.shed += 1;
            return;
        };
        self.state_bytes += bin.approx_bytes() - bytes_before;
        if added.opened {
            self.open_windows += 1;
        }
        if added.new_partition {
            if let Some(replaced) = bin.lower_min_hold(m.partition, m.offset) {
                self.holds.hold(m.partition, m.offset);
                if let Some(previous) = replaced {
                    self.holds.unhold(m.partition, previous);
                }
                self.holds_dirty = true;
            }
        }
        if !rule.eager || bin.entry(added.index).fired() {
            return;
        }
        if !rule.threshold.breached_by(bin.value(added.index)) {
            return;
        }
        self.fire_eagerly(m.rule, rule, key_text, start, end, added.index);
    }

    /// The window `[start, end)` of width `width_ms` of rule `rule_idx`
    /// that holds `time_ms`: the rule's last one while it still does (input
    /// mostly in order), so that most matches skip the division.
    #[inline]
    fn tumbling_window(&mut self, rule_idx: RuleIdx, width_ms: i64, time_ms: i64) -> (i64, i64) {
        let last = &mut self.last_windows[usize::from(rule_idx)];
        if last.0 <= time_ms && time_ms < last.1 {
            return *last;
        }
        let start = window_start(time_ms, width_ms);
        let window = (start, start.saturating_add(width_ms));
        *last = window;
        window
    }

    /// Sends the Create of the breached window at `index` of bin `(end,
    /// rule_idx)` now (an eager rule), unless its alarm rules it out.
    fn fire_eagerly(
        &mut self,
        rule_idx: RuleIdx,
        rule: &CompiledRule,
        key_text: &str,
        start: i64,
        end: i64,
        index: u32,
    ) {
        match rule.evaluation.mode {
            EvalMode::Window => {
                if let Some(bin) = self.bins.get_mut(&(end, rule_idx)) {
                    bin.set_fired(index);
                }
                let emitted = self.build(rule_idx, key_text, start, end, Activity::Create, None);
                self.out.extend(emitted);
            }
            EvalMode::Alarm => {
                // Raise eagerly when this open period breaches and, with
                // the closed periods, reaches M of N. The state machine
                // itself advances only when periods close, in order; it
                // then recognises this Create instead of sending another.
                let ev = rule.evaluation;
                let alarm_key = BorrowedKey {
                    rule: rule_idx,
                    key: key_text,
                };
                let (recent, already) = self.alarms.get(&alarm_key).map_or((0, false), |a| {
                    (
                        a.recent_breaching(ev.periods, ev.treat_missing, start, rule.window_ms),
                        a.status == AlarmStatus::Alarm || a.eager_raised_for.is_some(),
                    )
                });
                if already || recent + 1 < ev.datapoints {
                    return;
                }
                let mut partition = None;
                if let Some(bin) = self.bins.get_mut(&(end, rule_idx)) {
                    bin.set_fired(index);
                    partition = bin.holds(index).first().map(|hold| hold.0);
                }
                let state = self
                    .alarms
                    .entry(BinKey {
                        rule: rule_idx,
                        key: CompactString::from(key_text),
                    })
                    .or_insert_with(|| AlarmState::new(start));
                state.eager_raised_for = Some(start);
                state.partition = state.partition.or(partition);
                let emitted = self.build(rule_idx, key_text, start, end, Activity::Create, None);
                self.out.extend(emitted);
            }
        }
    }

    /// Updates the pane of `time_ms` in the lane of `(rule_idx, key_text)`
    /// with `update`, unless the pane ended by `late_bound`: then its
    /// `events` (one match, or a partial's count) are counted late.
    #[allow(clippy::too_many_arguments)]
    fn apply_sliding(
        &mut self,
        rule_idx: RuleIdx,
        key_text: &str,
        time_ms: i64,
        position: (PartitionId, u64),
        (late_bound, events): (i64, u64),
        update: impl FnOnce(&mut WindowAgg, EvidenceLimits) -> bool,
        rule: &CompiledRule,
        step: i64,
    ) {
        let pane_start = window_start(time_ms, step);
        if pane_start + step <= late_bound {
            self.tally.late += events;
            return;
        }
        let lookup = BorrowedKey {
            rule: rule_idx,
            key: key_text,
        };
        let lane = match self.sliding.get_mut(&lookup) {
            Some(lane) => lane,
            None => self
                .sliding
                .entry(BinKey {
                    rule: rule_idx,
                    key: CompactString::from(key_text),
                })
                .or_insert_with(|| SlidingLane::new(pane_start, step)),
        };
        lane.touch(pane_start, step);
        let mut created = false;
        let pane = lane.panes.entry(pane_start).or_insert_with(|| {
            created = true;
            WindowAgg::new(rule.aggregate)
        });
        // A new pane counts whole; an existing one by its growth.
        let bytes_before = if created {
            self.open_windows += 1;
            0
        } else {
            pane.approx_bytes()
        };
        if update(pane, self.config.evidence) {
            self.holds.hold(position.0, position.1);
            self.holds_dirty = true;
        }
        self.state_bytes += pane.approx_bytes() - bytes_before;
        if !self.config.eager_sliding {
            return;
        }
        if let Some(raised) =
            lane.try_raise_eagerly(pane_start, rule, self.config.evidence.max_samples)
        {
            let emitted = self.lane_alert(rule_idx, rule, key_text, raised);
            self.out.push(emitted);
        }
    }

    fn lane_alert(
        &self,
        rule_idx: RuleIdx,
        rule: &CompiledRule,
        key: &str,
        lane_alert: LaneAlert,
    ) -> Emitted {
        self.alert_from(
            rule_idx,
            rule,
            key,
            lane_alert.window_start_ms,
            lane_alert.window_end_ms,
            &lane_alert.agg,
            lane_alert.activity,
            Some(lane_alert.id_window_start),
        )
    }

    /// Evaluates sliding steps up to `limit` for every lane, in key order
    /// (deterministic output), and drops idle lanes.
    fn advance_sliding(&mut self, limit: i64) {
        if self.sliding.is_empty() {
            return;
        }
        let rules = Arc::clone(&self.rules);
        let mut keys: Vec<BinKey> = self.sliding.keys().cloned().collect();
        keys.sort_unstable_by(|a, b| (a.rule, &a.key).cmp(&(b.rule, &b.key)));
        let mut alerts = Vec::new();
        let mut released = Vec::new();
        for key in keys {
            let rule = rules.rule(key.rule);
            let Some(lane) = self.sliding.get_mut(&key) else {
                continue;
            };
            lane.evaluate_until(
                limit,
                rule,
                self.config.evidence.max_samples,
                &mut alerts,
                &mut released,
            );
            let idle = lane.is_idle();
            for lane_alert in alerts.drain(..) {
                let emitted = self.lane_alert(key.rule, rule, &key.key, lane_alert);
                self.out.push(emitted);
            }
            for pane in released.drain(..) {
                self.open_windows -= 1;
                self.state_bytes = self.state_bytes.saturating_sub(pane.approx_bytes());
                self.release_holds(&pane.holds);
            }
            if idle {
                self.sliding.remove(&key);
            }
        }
    }

    fn release_holds(&mut self, holds: &[(PartitionId, u64)]) {
        for (partition, offset) in holds {
            self.holds.unhold(*partition, *offset);
            self.holds_dirty = true;
        }
    }

    /// Builds an alert from the window `(rule, key, end)` if it still exists.
    fn build(
        &self,
        rule_idx: RuleIdx,
        key: &str,
        window_start_ms: i64,
        window_end_ms: i64,
        activity: Activity,
        id_window_start: Option<i64>,
    ) -> Option<Emitted> {
        let rule = self.rules.rule(rule_idx);
        let bin = self.bins.get(&(window_end_ms, rule_idx))?;
        let agg = bin.agg(bin.find(key)?);
        Some(self.alert_from(
            rule_idx,
            rule,
            key,
            window_start_ms,
            window_end_ms,
            &agg,
            activity,
            id_window_start,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn alert_from(
        &self,
        rule_idx: RuleIdx,
        rule: &CompiledRule,
        key: &str,
        window_start_ms: i64,
        window_end_ms: i64,
        agg: &WindowAgg,
        activity: Activity,
        id_window_start: Option<i64>,
    ) -> Emitted {
        let key_values: Vec<String> = if rule.group_by.is_empty() {
            Vec::new()
        } else {
            key.split(KEY_SEPARATOR).map(str::to_string).collect()
        };
        let id = alert_id(
            &rule.id,
            rule.version,
            &key_values,
            id_window_start.unwrap_or(window_start_ms),
        );
        let alert = Alert {
            id,
            rule: Arc::clone(&self.rule_info[usize::from(rule_idx)]),
            activity,
            key: key_values,
            window_start_ms,
            window_end_ms,
            value: agg.value(rule.aggregate),
            count: agg.count,
            // A period without events (a breaching default value or
            // missing data) is "seen" over its whole window.
            first_seen_ms: if agg.count == 0 {
                window_start_ms
            } else {
                agg.first_seen_ms
            },
            last_seen_ms: if agg.count == 0 {
                window_end_ms
            } else {
                agg.last_seen_ms
            },
            account: agg.samples.account.as_ref().map(|s| s.to_string()),
            region: agg.samples.region.as_ref().map(|s| s.to_string()),
            sample_ids: agg.samples.ids.iter().map(|s| s.to_string()).collect(),
            evidences: agg.samples.texts.iter().map(|s| s.to_string()).collect(),
        };
        Emitted {
            alert,
            rule: rule_idx,
            hold: self.tracker.hold_alert(&agg.holds),
        }
    }

    /// Closes every bin whose end is at or before `limit`, oldest first;
    /// once all bins of one end are closed, sweeps the alarms for it.
    fn close_until(&mut self, limit: i64) {
        let mut swept_end = None;
        while let Some((end, _)) = self.bins.first_key() {
            if end > limit {
                break;
            }
            if let Some(previous) = swept_end.filter(|previous: &i64| *previous != end) {
                // Not past the watermark: a window closed early (shed, or
                // at the end of input) says nothing of the periods after
                // the input's last event.
                self.sweep_missing(previous.min(self.watermark_ms));
            }
            swept_end = Some(end);
            let Some(((_, rule), bin)) = self.bins.pop_first() else {
                break;
            };
            self.close_bin(end, rule, bin);
        }
        if let Some(previous) = swept_end {
            self.sweep_missing(previous.min(self.watermark_ms));
        }
        while let Some(entry) = self.alarm_holds.first_entry() {
            if *entry.key() > limit {
                break;
            }
            let holds = entry.remove();
            self.release_holds(&holds);
        }
    }

    fn close_bin(&mut self, end: i64, rule_idx: RuleIdx, bin: Bin) {
        let rules = Arc::clone(&self.rules);
        let rule = rules.rule(rule_idx);
        let start = end - rule.window_ms;
        let breached =
            |index: u32| bin.entry(index).count > 0 && rule.threshold.breached_by(bin.value(index));
        let emit_close = rule.evaluation.emit_close;
        // Deterministic output order within a bin. A window rule alerts for
        // few of its windows, and only those are sorted; an alarm rule
        // feeds every window to its key's alarm.
        let indices = match rule.evaluation.mode {
            EvalMode::Window => bin.sorted_indices_where(|index| {
                closing_activity(bin.entry(index), breached(index), emit_close).is_some()
            }),
            EvalMode::Alarm => bin.sorted_indices(),
        };
        for index in indices {
            let key = bin.key_of(index);
            let breached = breached(index);
            match rule.evaluation.mode {
                EvalMode::Window => {
                    let Some(activity) = closing_activity(bin.entry(index), breached, emit_close)
                    else {
                        continue;
                    };
                    let agg = bin.agg(index);
                    self.out.push(
                        self.alert_from(rule_idx, rule, key, start, end, &agg, activity, None),
                    );
                    // A Create sent only now (a threshold evaluated at the
                    // close) is closed at once when the rule asks for Closes.
                    if activity == Activity::Create && emit_close {
                        self.out.push(self.alert_from(
                            rule_idx,
                            rule,
                            key,
                            start,
                            end,
                            &agg,
                            Activity::Close,
                            None,
                        ));
                    }
                }
                EvalMode::Alarm => {
                    let bin_key = BinKey {
                        rule: rule_idx,
                        key: CompactString::from(key),
                    };
                    self.fill_gaps(&bin_key, rule, start);
                    let datapoint = if breached {
                        Datapoint::Breaching
                    } else {
                        Datapoint::NotBreaching
                    };
                    let agg = bin.agg(index);
                    self.push_datapoint(&bin_key, rule, datapoint, start, Some(&agg));
                }
            }
        }
        // An M-of-N alarm counts this period until the evaluation of the
        // period N - 1 later: its input stays uncommitted until then, so a
        // restart replays it and rebuilds the alarm's history (an alarm
        // raised before that is then raised again with the same id).
        let periods = i64::from(rule.evaluation.periods);
        if rule.evaluation.mode == EvalMode::Alarm && periods > 1 {
            let until = end.saturating_add((periods - 1).saturating_mul(rule.window_ms));
            self.alarm_holds
                .entry(until)
                .or_default()
                .extend_from_slice(bin.min_holds());
        } else {
            self.release_holds(bin.min_holds());
        }
        self.state_bytes = self.state_bytes.saturating_sub(bin.approx_bytes());
        self.open_windows -= bin.len();
    }

    /// Feeds one closed period's datapoint to the alarm state of `key` and
    /// emits what the transition asks for: Create on entering ALARM (unless
    /// it was already sent eagerly for this period), Close on returning to
    /// OK (named after the period that raised the alarm).
    ///
    /// Periods close in order, but an eager Create may have gone out for a
    /// later period E before an earlier period P (late input, files out of
    /// order) enters ALARM. Whether P's ALARM is E's depends on the
    /// periods between them, not yet closed, so P's Create is deferred:
    /// - ALARM lasts until E closes: one episode, and E's Create stands for
    ///   it (the deferred one is dropped, the Close names E);
    /// - it clears before E: a separate episode, whose Create goes out then,
    ///   just before its Close, as in-order input would have had it; E's
    ///   own close later finds its Create already sent.
    fn push_datapoint(
        &mut self,
        key: &BinKey,
        rule: &CompiledRule,
        datapoint: Datapoint,
        period_start: i64,
        agg: Option<&WindowAgg>,
    ) {
        let ev = rule.evaluation;
        let period_end = period_start + rule.window_ms;
        let state = self
            .alarms
            .entry(key.clone())
            .or_insert_with(|| AlarmState::new(period_start));
        if let Some(hold) = agg.and_then(|agg| agg.holds.first()) {
            state.partition = Some(hold.0);
        }
        let transition = state.push(datapoint, ev.periods, ev.datapoints, ev.treat_missing);
        state.last_period_end = period_end;
        // The eager Create of this period or a later one, if out.
        let eager_sent = state
            .eager_raised_for
            .filter(|eager| *eager >= period_start);
        // The eager period itself closes now (or has closed).
        let eager_reached = state
            .eager_raised_for
            .filter(|eager| *eager <= period_start);
        if eager_reached.is_some() {
            state.eager_raised_for = None;
        }
        let (activity, id_start) = match transition {
            Transition::Raise => {
                state.raised_window_start = Some(period_start);
                match eager_sent {
                    Some(eager) if eager == period_start => return,
                    Some(_) => {
                        let agg = agg
                            .cloned()
                            .unwrap_or_else(|| WindowAgg::new(rule.aggregate));
                        for (partition, offset) in &agg.holds {
                            self.holds.hold(*partition, *offset);
                        }
                        self.holds_dirty = true;
                        self.deferred_creates
                            .insert(key.clone(), DeferredCreate { period_start, agg });
                        return;
                    }
                    None => (Activity::Create, period_start),
                }
            }
            Transition::Clear => (
                Activity::Close,
                state.raised_window_start.unwrap_or(period_start),
            ),
            Transition::None if state.status != AlarmStatus::Alarm => {
                // Left ALARM without a Close (INSUFFICIENT_DATA) before the
                // eager period: the deferred episode was its own.
                self.send_deferred_create(key, rule);
                return;
            }
            Transition::None => {
                if let Some(eager) = eager_reached {
                    if let Some(deferred) = self.deferred_creates.remove(key) {
                        state.raised_window_start = Some(eager);
                        self.release_holds(&deferred.agg.holds);
                    }
                }
                return;
            }
        };
        if activity == Activity::Close {
            self.send_deferred_create(key, rule);
        }
        let empty;
        let agg = match agg {
            Some(agg) => agg,
            None => {
                empty = WindowAgg::new(rule.aggregate);
                &empty
            }
        };
        let emitted = self.alert_from(
            key.rule,
            rule,
            &key.key,
            period_start,
            period_end,
            agg,
            activity,
            Some(id_start),
        );
        self.out.push(emitted);
    }

    /// Sends the deferred Create of `key`, if any (see
    /// [`Shard::push_datapoint`]), and releases the input it held.
    fn send_deferred_create(&mut self, key: &BinKey, rule: &CompiledRule) {
        let Some(deferred) = self.deferred_creates.remove(key) else {
            return;
        };
        let start = deferred.period_start;
        let create = self.alert_from(
            key.rule,
            rule,
            &key.key,
            start,
            start + rule.window_ms,
            &deferred.agg,
            Activity::Create,
            Some(start),
        );
        self.out.push(create);
        self.release_holds(&deferred.agg.holds);
    }

    /// Pushes empty-period datapoints (the metric default, or missing) for
    /// the periods between the key's last closed period and `start`, the
    /// earliest first, so that a transition lands on its own period (the
    /// first empty one clears an alarm). Once N have been pushed the last N
    /// datapoints are all empty and the state no longer changes, so at
    /// most N are pushed.
    fn fill_gaps(&mut self, key: &BinKey, rule: &CompiledRule, start: i64) {
        let Some(last_end) = self.alarms.get(key).map(|s| s.last_period_end) else {
            return;
        };
        if last_end == i64::MIN || last_end >= start {
            return;
        }
        let gaps = ((start - last_end) / rule.window_ms).min(i64::from(rule.evaluation.periods));
        for index in 0..gaps {
            let period_start = last_end + index * rule.window_ms;
            self.push_datapoint(key, rule, empty_period(rule), period_start, None);
        }
        if let Some(state) = self.alarms.get_mut(key) {
            state.last_period_end = start;
        }
    }

    /// Alarm keys with no data in the periods that ended at or before
    /// `limit` (a closed window's end, or the watermark) get empty-period
    /// datapoints; this may raise (treat missing as breaching, or a
    /// breaching default value) or clear the alarm. Every key is evaluated
    /// as its periods pass, whether or not this shard closes a window then:
    /// the outcome does not depend on the shard count. Dormant states are
    /// dropped. Cheap when no alarm rule's period ended since the last call.
    fn sweep_missing(&mut self, limit: i64) {
        let step = self.alarm_period_gcd;
        if step == 0 || self.alarms.is_empty() || limit <= self.alarms_swept_to {
            return;
        }
        let crossed = limit.div_euclid(step) > self.alarms_swept_to.div_euclid(step)
            || self.alarms_swept_to == i64::MIN;
        self.alarms_swept_to = limit;
        if !crossed {
            return;
        }
        let rules = Arc::clone(&self.rules);
        let due: Vec<(BinKey, i64)> = self
            .alarms
            .iter()
            .filter_map(|(key, state)| {
                let width = rules.rule(key.rule).window_ms;
                let ended = limit.div_euclid(width) * width;
                (state.last_period_end < ended).then(|| (key.clone(), ended))
            })
            .collect();
        for (key, ended) in due {
            let rule = rules.rule(key.rule);
            let period_start = ended - rule.window_ms;
            self.fill_gaps(&key, rule, period_start);
            self.push_datapoint(&key, rule, empty_period(rule), period_start, None);
        }
        // A state with nothing in its history that could count towards M
        // behaves like a fresh one and is dropped, unless empty periods
        // themselves breach (a breaching default value, or treat_missing =
        // breaching): then the key must keep being evaluated.
        self.alarms.retain(|key, state| {
            let rule = rules.rule(key.rule);
            let empty_breaches = empty_period(rule) == Datapoint::Breaching
                || rule.evaluation.treat_missing == crate::rules::model::TreatMissing::Breaching;
            empty_breaches || !state.is_dormant() || state.eager_raised_for.is_some()
        });
    }

    /// Sheds the oldest bins when the state cap is exceeded: they are
    /// closed early (evaluated and alerted as if the watermark had passed).
    fn enforce_cap(&mut self) {
        let cap = self.window_cap();
        if self.open_windows <= cap {
            return;
        }
        let target = cap - cap / 10;
        let before = self.open_windows;
        while self.open_windows > target {
            let Some((end, _)) = self.bins.first_key() else {
                break;
            };
            // Every bin of the oldest end, as the watermark would.
            self.close_until(end);
        }
        let shed = (before - self.open_windows) as u64;
        self.tally.shed += shed;
        if !self.shed_warned {
            self.shed_warned = true;
            tracing::warn!(
                shard = self.index,
                shed,
                cap,
                "state cap reached, closing oldest windows early"
            );
        }
    }

    /// The open-window cap in force: `max_open_windows`, lowered so that
    /// window state stays under `max_state_bytes`. The byte budget becomes
    /// a window count through the bytes per open window this shard
    /// measured at the end of its previous batch (`state_bytes /
    /// open_windows`, never less than [`MIN_WINDOW_BYTES`]), so the check
    /// stays O(1) per batch. The shedding policy is the count cap's: the
    /// oldest windows close early.
    fn window_cap(&self) -> usize {
        let by_count = self.config.max_open_windows.max(1);
        if self.config.max_state_bytes == usize::MAX {
            return by_count;
        }
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        let windows = self.counters.open_windows.load(relaxed);
        let bytes = self.counters.state_bytes.load(relaxed);
        let per_window = bytes
            .checked_div(windows)
            .map_or(MIN_WINDOW_BYTES, |b| b.max(MIN_WINDOW_BYTES));
        let by_bytes = u64::try_from(self.config.max_state_bytes).unwrap_or(u64::MAX) / per_window;
        by_count.min(usize::try_from(by_bytes).unwrap_or(usize::MAX).max(1))
    }
}

/// Adds one match to a window or pane and keeps it as evidence if there is
/// room. Returns whether a new partition fed the aggregate (its first
/// offset must then be held, see [`hold`]).
fn apply_match(
    agg: &mut WindowAgg,
    batch: &MatchBatch,
    m: &Match,
    evidence: EvidenceLimits,
) -> bool {
    let new_partition = agg.add(m.value, m.distinct_hash, m.time_ms, (m.partition, m.offset));
    MatchTexts::of(batch, m).add_sample_to(agg, evidence);
    new_partition
}

/// What of `partial` is new to a window, given its replay check: all of
/// it, nothing (`None`, a replay), or, when it straddles what the window
/// merged and lists its offsets, the part after that. Counts replays,
/// trimmed replays, superseded partials and overlaps in the repartition
/// metrics.
fn new_part<'a>(
    partial: &'a MergePartial,
    check: MergeCheck,
    counters: &RepartitionCounters,
) -> Option<Cow<'a, WindowAgg>> {
    let count = |counter: &std::sync::atomic::AtomicU64| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    match check {
        MergeCheck::Fresh => Some(Cow::Borrowed(&partial.agg)),
        MergeCheck::Replay => {
            count(&counters.replayed);
            None
        }
        MergeCheck::Superseded => {
            count(&counters.superseded);
            None
        }
        MergeCheck::Overlap { merged_through } => match &partial.replay {
            Some(replay) => match replay.part_after(&partial.agg, merged_through) {
                Some(part) => {
                    count(&counters.trimmed);
                    Some(Cow::Owned(part))
                }
                None => {
                    count(&counters.replayed);
                    None
                }
            },
            None => {
                count(&counters.overlaps);
                Some(Cow::Borrowed(&partial.agg))
            }
        },
    }
}

/// What closing a window of a window-mode rule sends: Create for a
/// breached window not yet alerted, Close for an alerted one when the rule
/// asks for it, nothing otherwise.
fn closing_activity(entry: &bins::Entry, breached: bool, emit_close: bool) -> Option<Activity> {
    if !entry.fired() && breached {
        Some(Activity::Create)
    } else if entry.fired() && emit_close {
        Some(Activity::Close)
    } else {
        None
    }
}
