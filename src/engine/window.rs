//! Tumbling windows aligned to the Unix epoch, and per-window aggregates.
//!
//! A window of width `P` containing time `t` is `[k*P, (k+1)*P)` with
//! `k = floor(t / P)` (Euclidean division, so times before 1970 work).

use compact_str::CompactString;
use smallvec::SmallVec;

use super::commit::Holds;
use crate::rules::compile::Aggregate;

/// Start of the window of width `width_ms` that contains `time_ms`.
#[inline]
pub fn window_start(time_ms: i64, width_ms: i64) -> i64 {
    debug_assert!(width_ms > 0);
    time_ms - time_ms.rem_euclid(width_ms)
}

/// Evidence kept for an alert: capped sample events.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub ids: SmallVec<[CompactString; 3]>,
    pub texts: SmallVec<[Box<str>; 3]>,
    pub account: Option<CompactString>,
    pub region: Option<CompactString>,
}

/// Limits on evidence kept per window.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceLimits {
    pub max_samples: usize,
    pub max_sample_bytes: usize,
}

impl Default for EvidenceLimits {
    fn default() -> Self {
        EvidenceLimits {
            max_samples: 3,
            max_sample_bytes: 2048,
        }
    }
}

/// Stage 2: what a window merged from each stage-1 input partition.
pub type MergedInputs = SmallVec<[MergedInput; 2]>;

/// Stage 2: what a window merged from one stage-1 input partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedInput {
    /// The input partition's global name (`source:topic/partition`, and a
    /// continuation's chunk number).
    pub input: CompactString,
    /// The last input offset merged.
    pub through: u64,
    /// The latest stage-1 assignment epoch among the partials merged (0:
    /// none named one), see [`InputSpan::epoch`].
    pub epoch: u64,
}

/// Where a stage-2 partial's matches come from: the replay check's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSpan<'a> {
    /// The stage-1 input partition (a continuation's name included).
    pub input: &'a str,
    /// The first and last input offset among its matches.
    pub first: u64,
    pub last: u64,
    /// The epoch of the stage-1 assignment that sent it: the input
    /// partition's end when that assignment first read it (later
    /// assignments of a partition have later epochs; see
    /// `engine::partial`, "Replays"). 0: unknown (an older producer).
    pub epoch: u64,
    /// It lists the input offset of each of its matches.
    pub listed: bool,
}

impl<'a> InputSpan<'a> {
    /// Offsets `first..=last` of `input`, unlisted, from an unknown epoch.
    pub fn new(input: &'a str, first: u64, last: u64) -> Self {
        InputSpan {
            input,
            first,
            last,
            epoch: 0,
            listed: false,
        }
    }
}

/// Whether a stage-2 partial is new to its window ([`WindowAgg::mark_merged`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeCheck {
    /// Input offsets beyond everything merged: merge it.
    Fresh,
    /// Every offset already merged: skip it.
    Replay,
    /// Straddles what was merged, every offset up to `merged_through`:
    /// only the matches past it are new (a partial that lists its offsets
    /// says which, see `engine::partial`, "Replays").
    Overlap { merged_through: u64 },
    /// Straddles what a later stage-1 owner of its input already merged,
    /// without listing its offsets: a previous owner's flush that reached
    /// the topic after its successor's replay. The successor sends every
    /// one of its matches: skip it.
    Superseded,
}

/// Records in `merged` that `span` is being merged, unless it already
/// was: [`MergeCheck::Replay`] when every offset up to its last was merged
/// before, [`MergeCheck::Superseded`] (recording nothing) when a later
/// assignment of its input already sent what it straddles.
pub fn mark_merged_inputs(merged: &mut MergedInputs, span: InputSpan<'_>) -> MergeCheck {
    let Some(seen) = merged.iter_mut().find(|m| m.input == span.input) else {
        merged.push(MergedInput {
            input: CompactString::from(span.input),
            through: span.last,
            epoch: span.epoch,
        });
        return MergeCheck::Fresh;
    };
    if seen.through >= span.last {
        return MergeCheck::Replay;
    }
    let straddles = span.first <= seen.through;
    // Unlisted, its first offset was past its own assignment's epoch; one
    // that straddles anything came from an assignment before the one
    // whose partial was merged (module doc of `engine::partial`).
    if straddles && !span.listed && span.epoch != 0 && span.epoch < seen.epoch {
        return MergeCheck::Superseded;
    }
    let check = if straddles {
        MergeCheck::Overlap {
            merged_through: seen.through,
        }
    } else {
        MergeCheck::Fresh
    };
    seen.through = span.last;
    seen.epoch = seen.epoch.max(span.epoch);
    check
}

/// The running aggregate of one (rule, key, window): the state of a sliding
/// rule's pane, and the form every window takes in an alert. Tumbling
/// windows are kept more compactly in the shard's bins and materialised as
/// a `WindowAgg` only when an alert leaves.
#[derive(Debug, Clone)]
pub struct WindowAgg {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// Hashes of distinct values (distinct aggregates only).
    pub distinct: Option<Box<hashbrown::HashSet<u64>>>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// A Create alert has been sent for this window.
    pub fired: bool,
    /// First offset per partition that fed this window.
    pub holds: Holds,
    pub samples: Box<Samples>,
    /// Stage 2 only: the last input offset merged per stage-1 input
    /// partition (replayed partials are skipped, see `engine::partial`).
    pub merged: Option<Box<MergedInputs>>,
}

impl WindowAgg {
    /// An empty aggregate.
    pub fn new(aggregate: Aggregate) -> Self {
        WindowAgg {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            distinct: matches!(aggregate, Aggregate::Distinct).then(Default::default),
            first_seen_ms: i64::MAX,
            last_seen_ms: i64::MIN,
            fired: false,
            holds: Holds::new(),
            samples: Box::default(),
            merged: None,
        }
    }

    /// Adds one matching event's contribution. Returns whether the holds
    /// list grew (a new partition fed this window).
    #[inline]
    pub fn add(
        &mut self,
        value: f64,
        distinct_hash: u64,
        time_ms: i64,
        position: (u32, u64),
    ) -> bool {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if let Some(set) = self.distinct.as_mut() {
            set.insert(distinct_hash);
        }
        self.first_seen_ms = self.first_seen_ms.min(time_ms);
        self.last_seen_ms = self.last_seen_ms.max(time_ms);
        if self.holds.iter().any(|(p, _)| *p == position.0) {
            return false;
        }
        self.holds.push(position);
        true
    }

    /// The aggregate's current value.
    pub fn value(&self, aggregate: Aggregate) -> f64 {
        match aggregate {
            Aggregate::Count => self.count as f64,
            Aggregate::Sum => self.sum,
            Aggregate::Distinct => self.distinct.as_ref().map_or(0, |s| s.len()) as f64,
            Aggregate::Min => self.min,
            Aggregate::Max => self.max,
            Aggregate::Avg if self.count > 0 => self.sum / self.count as f64,
            Aggregate::Avg => 0.0,
        }
    }

    /// Keeps the event as evidence while fewer than `limits.max_samples`
    /// are kept; the text is cut at `limits.max_sample_bytes`.
    pub fn add_sample(
        &mut self,
        id: Option<&str>,
        text: &str,
        account: Option<&str>,
        region: Option<&str>,
        limits: EvidenceLimits,
    ) {
        let samples = &mut self.samples;
        if samples.ids.len() < limits.max_samples {
            if let Some(id) = id {
                samples.ids.push(CompactString::from(id));
            }
        }
        if samples.texts.len() < limits.max_samples {
            let cut = floor_char_boundary(text, limits.max_sample_bytes);
            samples.texts.push(text[..cut].into());
        }
        if samples.account.is_none() {
            samples.account = account.map(CompactString::from);
        }
        if samples.region.is_none() {
            samples.region = region.map(CompactString::from);
        }
    }

    /// Folds `other` (a later or earlier pane of the same key) into this
    /// aggregate, keeping at most `max_samples` samples.
    pub fn merge(&mut self, other: &WindowAgg, max_samples: usize) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if let (Some(mine), Some(theirs)) = (self.distinct.as_mut(), other.distinct.as_ref()) {
            mine.extend(theirs.iter().copied());
        }
        self.first_seen_ms = self.first_seen_ms.min(other.first_seen_ms);
        self.last_seen_ms = self.last_seen_ms.max(other.last_seen_ms);
        for hold in &other.holds {
            match self.holds.iter_mut().find(|(p, _)| *p == hold.0) {
                Some(existing) => existing.1 = existing.1.min(hold.1),
                None => self.holds.push(*hold),
            }
        }
        let samples = &mut self.samples;
        for id in &other.samples.ids {
            if samples.ids.len() < max_samples {
                samples.ids.push(id.clone());
            }
        }
        for text in &other.samples.texts {
            if samples.texts.len() < max_samples {
                samples.texts.push(text.clone());
            }
        }
        if samples.account.is_none() {
            samples.account.clone_from(&other.samples.account);
        }
        if samples.region.is_none() {
            samples.region.clone_from(&other.samples.region);
        }
    }

    /// Records that `span` is being merged, unless it already was (a
    /// replayed or superseded partial, see [`mark_merged_inputs`]).
    pub fn mark_merged(&mut self, span: InputSpan<'_>) -> MergeCheck {
        mark_merged_inputs(self.merged.get_or_insert_with(Box::default), span)
    }

    /// Approximate heap + inline bytes of this aggregate (for the state
    /// gauge). Only grows while the aggregate is updated, so callers can
    /// keep a running total from before/after differences.
    pub fn approx_bytes(&self) -> usize {
        let mut bytes = std::mem::size_of::<Self>() + std::mem::size_of::<Samples>();
        bytes += self.distinct.as_ref().map_or(0, |s| s.capacity() * 9);
        bytes += self.samples.texts.iter().map(|t| t.len()).sum::<usize>();
        bytes
    }
}

/// The largest index `<= max` that is a char boundary of `text`.
pub fn floor_char_boundary(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    let mut cut = max;
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn windows_align_to_epoch() {
        assert_eq!(window_start(299_999, 300_000), 0);
        assert_eq!(window_start(300_000, 300_000), 300_000);
        assert_eq!(window_start(-1, 300_000), -300_000);
    }

    #[test]
    fn aggregates() {
        let mut agg = WindowAgg::new(Aggregate::Distinct);
        agg.add(1.0, 10, 5, (0, 1));
        agg.add(3.0, 10, 2, (0, 2));
        agg.add(2.0, 11, 9, (1, 7));
        assert_eq!(agg.value(Aggregate::Distinct), 2.0);
        assert_eq!(agg.value(Aggregate::Count), 3.0);
        assert_eq!(agg.value(Aggregate::Sum), 6.0);
        assert_eq!(agg.value(Aggregate::Avg), 2.0);
        assert_eq!(agg.value(Aggregate::Min), 1.0);
        assert_eq!(agg.value(Aggregate::Max), 3.0);
        assert_eq!((agg.first_seen_ms, agg.last_seen_ms), (2, 9));
        assert_eq!(agg.holds.as_slice(), &[(0, 1), (1, 7)]);
    }

    #[test]
    fn replayed_partials_are_recognised_per_input_partition() {
        let mut agg = WindowAgg::new(Aggregate::Count);
        let mut mark = |input, first, last| agg.mark_merged(InputSpan::new(input, first, last));
        assert_eq!(mark("kafka:ct/0", 0, 9), MergeCheck::Fresh);
        assert_eq!(mark("kafka:ct/1", 0, 4), MergeCheck::Fresh);
        assert_eq!(mark("kafka:ct/0", 3, 9), MergeCheck::Replay);
        assert_eq!(mark("kafka:ct/0", 10, 12), MergeCheck::Fresh);
        assert_eq!(
            mark("kafka:ct/0", 11, 15),
            MergeCheck::Overlap { merged_through: 12 }
        );
        assert_eq!(mark("kafka:ct/0", 15, 15), MergeCheck::Replay);
    }

    /// Owner A (epoch 8) sent [10, 31] unlisted, but its flush reached the
    /// topic after owner B (epoch 32) had replayed [10, 15]: A's partial is
    /// superseded, and B's next partial, [20, 31] listed, is merged whole. A partial that names no epoch (an older producer), or lists its
    /// offsets, or comes from a later assignment, is not.
    #[test]
    fn a_previous_owners_late_partial_is_superseded() {
        let span = |first, last, epoch, listed| InputSpan {
            input: "kafka:ct/0",
            first,
            last,
            epoch,
            listed,
        };
        let mut merged = MergedInputs::default();
        let mut mark = |span| mark_merged_inputs(&mut merged, span);
        assert_eq!(mark(span(10, 15, 32, true)), MergeCheck::Fresh);
        assert_eq!(mark(span(10, 31, 8, false)), MergeCheck::Superseded);
        assert_eq!(mark(span(20, 31, 32, true)), MergeCheck::Fresh);
        assert_eq!(mark(span(30, 40, 8, false)), MergeCheck::Superseded);
        assert_eq!(
            mark(span(30, 40, 8, true)),
            MergeCheck::Overlap { merged_through: 31 }
        );
        assert_eq!(
            mark(span(35, 45, 0, false)),
            MergeCheck::Overlap { merged_through: 40 }
        );
        assert_eq!(
            mark(span(40, 50, 90, false)),
            MergeCheck::Overlap { merged_through: 45 }
        );
        assert_eq!(mark(span(51, 60, 8, false)), MergeCheck::Fresh);
    }

    proptest! {
        #[test]
        fn window_contains_its_time(t in -10_000_000_000_000i64..10_000_000_000_000i64, w in 1i64..100_000_000) {
            let start = window_start(t, w);
            prop_assert!(start <= t && t < start + w);
            prop_assert_eq!(start.rem_euclid(w), 0);
        }
    }
}
