//! A shard worker: owns the window and alarm state of its (rule, key) pairs.
//!
//! Matches are routed to shards by a stable hash of (rule, key), so each
//! shard owns a disjoint set of keys and needs no lock. Windows live in
//! bins keyed by window end (as in Arroyo's tumbling aggregator): when the
//! watermark passes a bin's end, the whole bin closes. A shard emits at
//! most one Create per (rule, key, window); eager rules fire the moment the
//! threshold is crossed, the others when the window closes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use compact_str::CompactString;
use crossbeam_channel::{Receiver, Sender};
use hashbrown::Equivalent;

use super::alarm::{AlarmState, Datapoint, Transition};
use super::commit::{AlertHold, BatchToken, CommitTracker};
use super::window::{window_start, EvidenceLimits, WindowAgg};
use crate::alert::{alert_id, Activity, Alert, RuleInfo};
use crate::metrics::{Tally, WorkerCounters};
use crate::rules::compile::{CompiledRule, EvalMode, RuleIdx};
use crate::rules::RuleSet;
use crate::source::PartitionId;

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
    /// Keeps the raw batch in flight until the shard has registered holds.
    pub token: Option<BatchToken>,
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
        if span.is_none() {
            return "";
        }
        self.arena
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }

    fn opt_text(&self, span: Span) -> Option<&str> {
        (!span.is_none()).then(|| self.text(span))
    }
}

/// An alert plus the hold that keeps its input uncommitted until acked.
#[derive(Debug)]
pub struct Emitted {
    pub alert: Alert,
    pub rule: RuleIdx,
    /// Dropping this acknowledges the alert to the commit tracker.
    pub hold: AlertHold,
}

/// Messages a shard receives.
#[derive(Debug)]
pub enum ShardMsg {
    Matches(MatchBatch),
    /// Close every open window (end of a finite input).
    FlushAll,
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

type Bin = hashbrown::HashMap<BinKey, WindowAgg>;

/// Shard settings.
#[derive(Debug, Clone, Copy)]
pub struct ShardConfig {
    /// Cap on open window aggregates in this shard.
    pub max_open_windows: usize,
    pub evidence: EvidenceLimits,
}

/// State and logic of one shard.
pub struct Shard {
    index: usize,
    rules: Arc<RuleSet>,
    rule_info: Vec<Arc<RuleInfo>>,
    config: ShardConfig,
    bins: BTreeMap<i64, Bin>,
    alarms: hashbrown::HashMap<BinKey, AlarmState>,
    watermark_ms: i64,
    open_windows: usize,
    /// Approximate bytes of window state, kept up to date incrementally
    /// (summing over every open window per batch cost more than the
    /// windows themselves once there are tens of thousands).
    state_bytes: usize,
    holds: HashMap<PartitionId, BTreeMap<u64, u32>>,
    holds_dirty: bool,
    tracker: CommitTracker,
    counters: Arc<WorkerCounters>,
    out: Vec<Emitted>,
    tally: Tally,
    shed_warned: bool,
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
            })
        })
        .collect()
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
        Shard {
            index,
            rules,
            rule_info,
            config,
            bins: BTreeMap::new(),
            alarms: hashbrown::HashMap::new(),
            watermark_ms: i64::MIN,
            open_windows: 0,
            state_bytes: 0,
            holds: HashMap::new(),
            holds_dirty: false,
            tracker,
            counters,
            out: Vec::new(),
            tally: Tally::default(),
            shed_warned: false,
        }
    }

    /// Runs the shard until its input channel closes. On close, open
    /// windows are flushed if `flush_on_end` (finite input); otherwise they
    /// are left to be rebuilt from the uncommitted input after a restart.
    pub fn run(
        mut self,
        input: Receiver<ShardMsg>,
        output: Sender<Vec<Emitted>>,
        flush_on_end: bool,
    ) {
        for msg in input.iter() {
            match msg {
                ShardMsg::Matches(batch) => self.process(batch),
                ShardMsg::FlushAll => self.flush_all(),
            }
            if !self.out.is_empty() && output.send(std::mem::take(&mut self.out)).is_err() {
                tracing::error!(shard = self.index, "alert channel closed, shard stopping");
                return;
            }
        }
        if flush_on_end {
            self.flush_all();
            if !self.out.is_empty() {
                let _ = output.send(std::mem::take(&mut self.out));
            }
        }
    }

    /// Applies one batch of matches, then closes what the watermark allows.
    pub fn process(&mut self, batch: MatchBatch) {
        for m in &batch.matches {
            self.apply(&batch, m);
        }
        self.tally.matches += batch.matches.len() as u64;
        if batch.watermark_ms > self.watermark_ms {
            self.watermark_ms = batch.watermark_ms;
            self.close_until(self.watermark_ms);
        }
        self.enforce_cap();
        self.finish_batch();
        drop(batch.token);
    }

    /// Closes every window, oldest first.
    pub fn flush_all(&mut self) {
        self.close_until(i64::MAX);
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
            let published = self
                .holds
                .iter()
                .filter_map(|(p, offsets)| offsets.first_key_value().map(|(o, _)| (*p, *o)))
                .collect();
            self.tracker.publish_shard(self.index, published);
            self.holds_dirty = false;
        }
        self.counters.add(&self.tally);
        self.tally = Tally::default();
        self.counters.open_windows.store(
            self.open_windows as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        debug_assert_eq!(
            self.state_bytes,
            self.bins
                .values()
                .flat_map(|bin| bin.iter())
                .map(|(k, agg)| agg.approx_bytes() + k.key.len())
                .sum::<usize>()
        );
        self.counters.state_bytes.store(
            self.state_bytes as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn apply(&mut self, batch: &MatchBatch, m: &Match) {
        let rules = Arc::clone(&self.rules);
        let rule = rules.rule(m.rule);
        let start = window_start(m.time_ms, rule.window_ms);
        let end = start.saturating_add(rule.window_ms);
        if end <= self.watermark_ms {
            self.tally.late += 1;
            return;
        }
        let key_text = batch.text(m.key);
        let bin = self.bins.entry(end).or_default();
        let lookup = BorrowedKey {
            rule: m.rule,
            key: key_text,
        };
        let (agg, bytes_before) = match bin.get_mut(&lookup) {
            Some(agg) => {
                let bytes = agg.approx_bytes();
                (agg, bytes)
            }
            None => {
                self.open_windows += 1;
                self.state_bytes += key_text.len();
                let key = BinKey {
                    rule: m.rule,
                    key: CompactString::from(key_text),
                };
                let agg = bin
                    .entry(key)
                    .or_insert_with(|| WindowAgg::new(rule.aggregate));
                (agg, 0)
            }
        };
        if agg.add(m.value, m.distinct_hash, m.time_ms, (m.partition, m.offset)) {
            let offsets = self.holds.entry(m.partition).or_default();
            *offsets.entry(m.offset).or_insert(0) += 1;
            self.holds_dirty = true;
        }
        let samples = &mut agg.samples;
        if samples.ids.len() < self.config.evidence.max_samples {
            if let Some(id) = batch.opt_text(m.id) {
                samples.ids.push(CompactString::from(id));
            }
            if samples.texts.len() < self.config.evidence.max_samples {
                let text = batch.text(m.sample);
                let cut = floor_char_boundary(text, self.config.evidence.max_sample_bytes);
                samples.texts.push(text[..cut].into());
            }
        }
        if samples.account.is_none() {
            samples.account = batch.opt_text(m.account).map(CompactString::from);
        }
        if samples.region.is_none() {
            samples.region = batch.opt_text(m.region).map(CompactString::from);
        }
        self.state_bytes = self.state_bytes + agg.approx_bytes() - bytes_before;
        if !rule.eager || agg.fired {
            return;
        }
        let value = agg.value(rule.aggregate);
        if !rule.threshold.breached_by(value) {
            return;
        }
        match rule.evaluation.mode {
            EvalMode::Window => {
                agg.fired = true;
                let emitted = self.build(m.rule, key_text, start, end, Activity::Create, None);
                self.out.extend(emitted);
            }
            EvalMode::Alarm => {
                let ev = rule.evaluation;
                let alarm_key = BorrowedKey {
                    rule: m.rule,
                    key: key_text,
                };
                let recent = self
                    .alarms
                    .get(&alarm_key)
                    .map_or(0, |a| a.recent_breaching(ev.periods, ev.treat_missing));
                if recent + 1 < ev.datapoints {
                    return;
                }
                agg.fired = true;
                let state = self
                    .alarms
                    .entry(BinKey {
                        rule: m.rule,
                        key: CompactString::from(key_text),
                    })
                    .or_insert_with(|| AlarmState::new(start));
                if state.raise_eagerly() == Transition::Raise {
                    state.raised_window_start = Some(start);
                    let emitted = self.build(m.rule, key_text, start, end, Activity::Create, None);
                    self.out.extend(emitted);
                }
            }
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
        let agg = self.bins.get(&window_end_ms)?.get(&BorrowedKey {
            rule: rule_idx,
            key,
        })?;
        Some(self.alert_from(
            rule_idx,
            rule,
            key,
            window_start_ms,
            window_end_ms,
            agg,
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
            first_seen_ms: agg.first_seen_ms,
            last_seen_ms: agg.last_seen_ms,
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

    /// Closes every bin whose end is at or before `limit`.
    fn close_until(&mut self, limit: i64) {
        while let Some(entry) = self.bins.first_entry() {
            if *entry.key() > limit {
                break;
            }
            let (end, bin) = entry.remove_entry();
            self.close_bin(end, bin);
        }
    }

    fn close_bin(&mut self, end: i64, bin: Bin) {
        let rules = Arc::clone(&self.rules);
        let mut keys: Vec<(&BinKey, &WindowAgg)> = bin.iter().collect();
        // Deterministic output order within a bin.
        keys.sort_unstable_by(|a, b| (a.0.rule, &a.0.key).cmp(&(b.0.rule, &b.0.key)));
        for (bin_key, agg) in keys {
            let rule = rules.rule(bin_key.rule);
            let start = end - rule.window_ms;
            let value = agg.value(rule.aggregate);
            let breached = agg.count > 0 && rule.threshold.breached_by(value);
            match rule.evaluation.mode {
                EvalMode::Window => {
                    if !agg.fired && breached {
                        self.out.push(self.alert_from(
                            bin_key.rule,
                            rule,
                            &bin_key.key,
                            start,
                            end,
                            agg,
                            Activity::Create,
                            None,
                        ));
                    } else if agg.fired && rule.evaluation.emit_close {
                        self.out.push(self.alert_from(
                            bin_key.rule,
                            rule,
                            &bin_key.key,
                            start,
                            end,
                            agg,
                            Activity::Close,
                            None,
                        ));
                    }
                }
                EvalMode::Alarm => {
                    let ev = rule.evaluation;
                    let state = self
                        .alarms
                        .entry(bin_key.clone())
                        .or_insert_with(|| AlarmState::new(start));
                    push_gaps(
                        state,
                        start,
                        rule.window_ms,
                        ev.periods,
                        ev.datapoints,
                        ev.treat_missing,
                    );
                    let datapoint = if breached {
                        Datapoint::Breaching
                    } else {
                        Datapoint::NotBreaching
                    };
                    let transition =
                        state.push(datapoint, ev.periods, ev.datapoints, ev.treat_missing);
                    state.last_period_end = end;
                    let raised_at = state.raised_window_start;
                    match transition {
                        Transition::Raise => {
                            if let Some(s) = self.alarms.get_mut(bin_key) {
                                s.raised_window_start = Some(start);
                            }
                            self.out.push(self.alert_from(
                                bin_key.rule,
                                rule,
                                &bin_key.key,
                                start,
                                end,
                                agg,
                                Activity::Create,
                                None,
                            ));
                        }
                        Transition::Clear => {
                            self.out.push(self.alert_from(
                                bin_key.rule,
                                rule,
                                &bin_key.key,
                                start,
                                end,
                                agg,
                                Activity::Close,
                                raised_at,
                            ));
                        }
                        Transition::None => {}
                    }
                }
            }
            for (partition, offset) in &agg.holds {
                if let Some(offsets) = self.holds.get_mut(partition) {
                    if let Some(count) = offsets.get_mut(offset) {
                        *count -= 1;
                        if *count == 0 {
                            offsets.remove(offset);
                        }
                    }
                }
                self.holds_dirty = true;
            }
        }
        self.open_windows -= bin.len();
        let closed_bytes: usize = bin
            .iter()
            .map(|(k, agg)| agg.approx_bytes() + k.key.len())
            .sum();
        self.state_bytes -= closed_bytes;
        self.sweep_missing(end);
    }

    /// Alarm keys with no data in the period ending at `end` get a missing
    /// datapoint; a Close may result (treat_missing = not_breaching).
    fn sweep_missing(&mut self, end: i64) {
        let rules = Arc::clone(&self.rules);
        let mut closes = Vec::new();
        self.alarms.retain(|key, state| {
            let rule = rules.rule(key.rule);
            if end % rule.window_ms != 0 || state.last_period_end >= end {
                return true;
            }
            let ev = rule.evaluation;
            push_gaps(
                state,
                end - rule.window_ms,
                rule.window_ms,
                ev.periods,
                ev.datapoints,
                ev.treat_missing,
            );
            let transition = state.push(
                Datapoint::Missing,
                ev.periods,
                ev.datapoints,
                ev.treat_missing,
            );
            state.last_period_end = end;
            if transition == Transition::Clear {
                closes.push((key.clone(), end, state.raised_window_start));
            }
            !state.is_dormant()
        });
        for (key, end, raised_at) in closes {
            let rule = rules.rule(key.rule);
            let agg = WindowAgg::new(rule.aggregate);
            let start = end - rule.window_ms;
            self.out.push(self.alert_from(
                key.rule,
                rule,
                &key.key,
                start,
                end,
                &agg,
                Activity::Close,
                raised_at,
            ));
        }
    }

    /// Sheds the oldest bins when the state cap is exceeded: they are
    /// closed early (evaluated and alerted as if the watermark had passed).
    fn enforce_cap(&mut self) {
        if self.open_windows <= self.config.max_open_windows {
            return;
        }
        let target = self.config.max_open_windows - self.config.max_open_windows / 10;
        let before = self.open_windows;
        while self.open_windows > target {
            let Some(entry) = self.bins.first_entry() else {
                break;
            };
            let (end, bin) = entry.remove_entry();
            self.close_bin(end, bin);
        }
        let shed = (before - self.open_windows) as u64;
        self.tally.shed += shed;
        if !self.shed_warned {
            self.shed_warned = true;
            tracing::warn!(
                shard = self.index,
                shed,
                cap = self.config.max_open_windows,
                "state cap reached, closing oldest windows early"
            );
        }
    }
}

/// Pushes missing datapoints for periods skipped between the state's last
/// period and the period starting at `start` (at most `periods` of them).
fn push_gaps(
    state: &mut AlarmState,
    start: i64,
    width: i64,
    periods: u32,
    datapoints: u32,
    treat: crate::rules::model::TreatMissing,
) {
    if state.last_period_end >= start || state.last_period_end == i64::MIN {
        return;
    }
    let gaps = ((start - state.last_period_end) / width).min(i64::from(periods));
    for _ in 0..gaps {
        state.push(Datapoint::Missing, periods, datapoints, treat);
    }
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    let mut cut = max;
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}
