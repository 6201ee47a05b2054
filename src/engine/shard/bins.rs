//! Compact tumbling-window state: one [`Bin`] per (window end, rule).
//!
//! Every open window of one rule that ends at the same time lives in the
//! same bin, and the whole bin closes at once when the watermark passes its
//! end. That lets a bin own its memory in a few growing buffers instead of
//! one heap object per window:
//!
//! - `entries`: one 48-byte [`Entry`] per window (count, first and last
//!   seen, the first input position that fed it, where its key is, flags);
//! - `table`: a hash table of `u32` entry indices, keyed by the key text;
//! - `keys`: the key texts, back to back;
//! - `extras`: what only some windows need, allocated as a row of a side
//!   vector the first time a window needs it: sum/min/max for non-count
//!   aggregates, input positions of further partitions, and evidence
//!   (sample ids and texts live in `texts`, the bin's text arena);
//! - `distinct`: for distinct rules, a [`DistinctSet`] per extra row (a
//!   few values inline, a hash set past that).
//!
//! So opening a window and counting into it never allocate per window or
//! per event (the buffers grow by doubling), and an open count window with
//! no evidence costs its entry, about 10 bytes of table and its key bytes.
//! Alerts materialise a [`WindowAgg`] from a window ([`Bin::agg`]); that
//! copy is paid only when an alert leaves.
//!
//! Stage 2 of a scaled-out deployment merges whole partial aggregates into
//! windows ([`Bin::merge`]) instead of single matches, and keeps, per window
//! and stage-1 input partition, the last input offset merged
//! ([`Bin::mark_merged`], a side map that the direct path never fills).
//! When a repartition partition is revoked, the windows it fed leave the
//! bin ([`Bin::without_fed_by`], a rebuild: revocations are rare).

use std::hash::BuildHasher;

use hashbrown::HashTable;
use smallvec::SmallVec;

use super::distinct::DistinctSet;
use super::match_texts::MatchTexts;
use crate::engine::commit::Holds;
use crate::engine::window::{
    floor_char_boundary, mark_merged_inputs, EvidenceLimits, InputSpan, MergeCheck, MergedInputs,
    Samples, WindowAgg,
};
use crate::rules::compile::Aggregate;
use crate::source::PartitionId;

/// No extra row.
const NO_EXTRA: u32 = u32::MAX;
/// Flag in `Entry::key_len_and_fired`: a Create alert has been sent.
const FIRED: u32 = 1 << 31;

/// One open window; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub count: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    hold_offset: u64,
    hold_partition: PartitionId,
    key_start: u32,
    /// Key length in the low 31 bits, [`FIRED`] in the top bit.
    key_len_and_fired: u32,
    /// Row in `Bin::extras`, or [`NO_EXTRA`].
    extra: u32,
}

impl Entry {
    /// Whether a Create alert has been sent for this window.
    pub fn fired(&self) -> bool {
        self.key_len_and_fired & FIRED != 0
    }

    fn key_range(&self) -> std::ops::Range<usize> {
        let start = self.key_start as usize;
        start..start + (self.key_len_and_fired & !FIRED) as usize
    }
}

/// A byte range in `Bin::texts` (at most 4 GiB, like the key arena: a
/// sample that would not fit is not kept).
#[derive(Debug, Clone, Copy)]
struct TextSpan {
    start: u32,
    end: u32,
}

/// The part of a window's state most windows of a count rule never need.
#[derive(Debug, Clone)]
struct Extra {
    sum: f64,
    min: f64,
    max: f64,
    /// Input positions of the second and later partitions that fed it.
    more_holds: Vec<(PartitionId, u64)>,
    sample_ids: SmallVec<[TextSpan; 3]>,
    sample_texts: SmallVec<[TextSpan; 3]>,
    account: Option<TextSpan>,
    region: Option<TextSpan>,
}

impl Extra {
    fn new() -> Extra {
        Extra {
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            more_holds: Vec::new(),
            sample_ids: SmallVec::new(),
            sample_texts: SmallVec::new(),
            account: None,
            region: None,
        }
    }
}

/// One match's contribution, as [`Bin::add`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct Contribution<'a> {
    pub value: f64,
    pub distinct_hash: u64,
    pub time_ms: i64,
    pub partition: PartitionId,
    pub offset: u64,
    /// Its evidence, read only when the window keeps some.
    pub texts: MatchTexts<'a>,
}

/// What [`Bin::add`] did.
#[derive(Debug, Clone, Copy)]
pub struct Added {
    /// The window's entry index.
    pub index: u32,
    /// The match opened the window.
    pub opened: bool,
    /// A new partition fed the window: its offset must be held.
    pub new_partition: bool,
}

/// The open windows of one rule that end at the same time.
#[derive(Debug)]
pub struct Bin {
    aggregate: Aggregate,
    hasher: hashbrown::DefaultHashBuilder,
    table: HashTable<u32>,
    entries: Vec<Entry>,
    keys: String,
    extras: Vec<Extra>,
    /// Distinct rules only: the distinct values per row of `extras`.
    distinct: Vec<DistinctSet>,
    texts: String,
    /// Heap bytes of the distinct-value sets (kept as they grow).
    distinct_bytes: usize,
    /// [`Bin::approx_bytes`], measured again after each change that can
    /// grow it, so that reading it costs one load per match.
    bytes: usize,
    /// Per partition, the smallest input position that fed any window of
    /// the bin. All windows of a bin close together, so holding this one
    /// position keeps exactly what holding every window's first position
    /// would (the shard publishes minimums), at one hold per bin instead
    /// of one per window.
    min_holds: SmallVec<[(PartitionId, u64); 1]>,
    /// Stage 2 only: per entry index, the last input offset merged per
    /// stage-1 input partition (replayed partials are skipped).
    merged: hashbrown::HashMap<u32, MergedInputs>,
}

impl Bin {
    /// An empty bin for a rule with `aggregate`.
    pub fn new(aggregate: Aggregate) -> Bin {
        Bin {
            aggregate,
            hasher: hashbrown::DefaultHashBuilder::default(),
            table: HashTable::new(),
            entries: Vec::new(),
            keys: String::new(),
            extras: Vec::new(),
            distinct: Vec::new(),
            texts: String::new(),
            distinct_bytes: 0,
            bytes: 0,
            min_holds: SmallVec::new(),
            merged: hashbrown::HashMap::new(),
        }
    }

    /// The smallest positions per partition that fed the bin.
    pub fn min_holds(&self) -> &[(PartitionId, u64)] {
        &self.min_holds
    }

    /// Notes that `offset` of `partition` fed a window of the bin. Returns
    /// the bin's previous smallest position of that partition when `offset`
    /// replaces it (`Some(None)`: the partition is new to the bin), or
    /// `None` when the bin already holds an earlier position.
    pub fn lower_min_hold(&mut self, partition: PartitionId, offset: u64) -> Option<Option<u64>> {
        match self.min_holds.iter_mut().find(|(p, _)| *p == partition) {
            Some((_, held)) if *held <= offset => None,
            Some((_, held)) => Some(Some(std::mem::replace(held, offset))),
            None => {
                self.min_holds.push((partition, offset));
                Some(None)
            }
        }
    }

    /// Open windows in this bin.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Approximate bytes of the bin's state. Only grows while windows are
    /// added to, so callers can keep a running total from differences.
    pub fn approx_bytes(&self) -> usize {
        debug_assert_eq!(self.bytes, self.measure(), "a change left the size stale");
        self.bytes
    }

    /// What [`Bin::approx_bytes`] reports, counted afresh.
    fn measure(&self) -> usize {
        // A table slot is a u32 and a control byte.
        self.table.capacity() * 5
            + self.entries.len() * std::mem::size_of::<Entry>()
            + self.keys.len()
            + self.extras.len() * std::mem::size_of::<Extra>()
            + self.distinct.len() * std::mem::size_of::<DistinctSet>()
            + self.texts.len()
            + self.distinct_bytes
            + self.merged.capacity() * std::mem::size_of::<(u32, MergedInputs)>()
    }

    /// The entry index of the window keyed `key`.
    pub fn find(&self, key: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.table
            .find(hash, |&index| self.key_of(index) == key)
            .copied()
    }

    /// The window at `index`.
    pub fn entry(&self, index: u32) -> &Entry {
        &self.entries[index as usize]
    }

    /// The key text of the window at `index`.
    pub fn key_of(&self, index: u32) -> &str {
        let range = self.entries[index as usize].key_range();
        self.keys.get(range).unwrap_or("")
    }

    /// Marks the window at `index` as having sent its Create alert.
    pub fn set_fired(&mut self, index: u32) {
        self.entries[index as usize].key_len_and_fired |= FIRED;
    }

    /// The aggregate's current value for the window at `index`.
    pub fn value(&self, index: u32) -> f64 {
        let entry = &self.entries[index as usize];
        let extra = self.extras.get(entry.extra as usize);
        match (self.aggregate, extra) {
            (Aggregate::Count, _) => entry.count as f64,
            (Aggregate::Sum, Some(extra)) => extra.sum,
            (Aggregate::Distinct, Some(_)) => self
                .distinct
                .get(entry.extra as usize)
                .map_or(0, DistinctSet::len) as f64,
            (Aggregate::Min, Some(extra)) => extra.min,
            (Aggregate::Max, Some(extra)) => extra.max,
            (Aggregate::Avg, Some(extra)) if entry.count > 0 => extra.sum / entry.count as f64,
            (Aggregate::Avg, _) | (Aggregate::Sum, None) | (Aggregate::Distinct, None) => 0.0,
            (Aggregate::Min, None) => f64::INFINITY,
            (Aggregate::Max, None) => f64::NEG_INFINITY,
        }
    }

    /// Adds one match to the window keyed `key`, opening it if needed.
    /// `None` when the bin's key arena is full (4 GiB of keys): the caller
    /// sheds the match.
    pub fn add(
        &mut self,
        key: &str,
        contribution: &Contribution<'_>,
        evidence: EvidenceLimits,
    ) -> Option<Added> {
        // What can grow the bin's size besides opening a window.
        let before = (self.extras.len(), self.texts.len(), self.distinct_bytes);
        let hash = self.hasher.hash_one(key);
        let found = self
            .table
            .find(hash, |&index| {
                let range = self.entries[index as usize].key_range();
                self.keys.get(range) == Some(key)
            })
            .copied();
        let (index, opened, new_partition) = match found {
            Some(index) => {
                let new_partition = self.count_into(index, contribution);
                (index, false, new_partition)
            }
            None => (self.open(key, hash, contribution)?, true, true),
        };
        self.keep_evidence(index, contribution, evidence);
        if opened || before != (self.extras.len(), self.texts.len(), self.distinct_bytes) {
            self.bytes = self.measure();
        }
        Some(Added {
            index,
            opened,
            new_partition,
        })
    }

    fn open(&mut self, key: &str, hash: u64, contribution: &Contribution<'_>) -> Option<u32> {
        let index = self.open_empty(key, hash, (contribution.partition, contribution.offset))?;
        self.count_into(index, contribution);
        Some(index)
    }

    /// Opens an empty window keyed `key` (hash `hash`), first fed by
    /// `hold`. `None` when an arena is full.
    fn open_empty(&mut self, key: &str, hash: u64, hold: (PartitionId, u64)) -> Option<u32> {
        let index = u32::try_from(self.entries.len()).ok()?;
        let key_start = u32::try_from(self.keys.len()).ok()?;
        let key_len = u32::try_from(key.len())
            .ok()
            .filter(|len| len & FIRED == 0)?;
        key_start.checked_add(key_len)?;
        self.keys.push_str(key);
        self.entries.push(Entry {
            count: 0,
            first_seen_ms: i64::MAX,
            last_seen_ms: i64::MIN,
            hold_offset: hold.1,
            hold_partition: hold.0,
            key_start,
            key_len_and_fired: key_len,
            extra: NO_EXTRA,
        });
        let Bin {
            table,
            entries,
            keys,
            hasher,
            ..
        } = self;
        table.insert_unique(hash, index, |&other| {
            let range = entries[other as usize].key_range();
            hasher.hash_one(keys.get(range).unwrap_or(""))
        });
        Some(index)
    }

    /// Counts a match into an open window; returns whether a new partition
    /// fed it.
    fn count_into(&mut self, index: u32, contribution: &Contribution<'_>) -> bool {
        let entry = &mut self.entries[index as usize];
        entry.count += 1;
        entry.first_seen_ms = entry.first_seen_ms.min(contribution.time_ms);
        entry.last_seen_ms = entry.last_seen_ms.max(contribution.time_ms);
        let first_partition = entry.hold_partition == contribution.partition;
        if self.aggregate != Aggregate::Count {
            let value = contribution.value;
            let extra = self.extra_mut(index);
            extra.sum += value;
            extra.min = extra.min.min(value);
            extra.max = extra.max.max(value);
            let row = self.entries[index as usize].extra as usize;
            if let Some(set) = self.distinct.get_mut(row) {
                let before = set.heap_bytes();
                set.insert(contribution.distinct_hash);
                self.distinct_bytes += set.heap_bytes() - before;
            }
        }
        if first_partition {
            return false;
        }
        let extra = self.extra_mut(index);
        if extra
            .more_holds
            .iter()
            .any(|(partition, _)| *partition == contribution.partition)
        {
            return false;
        }
        extra
            .more_holds
            .push((contribution.partition, contribution.offset));
        true
    }

    fn extra_mut(&mut self, index: u32) -> &mut Extra {
        let entry = &mut self.entries[index as usize];
        if entry.extra == NO_EXTRA {
            // Entry indices are u32, so the number of extra rows fits too.
            entry.extra = self.extras.len() as u32;
            self.extras.push(Extra::new());
            if self.aggregate == Aggregate::Distinct {
                self.distinct.push(DistinctSet::default());
            }
        }
        let row = entry.extra as usize;
        &mut self.extras[row]
    }

    /// Keeps the match as evidence while the window has room (the rules of
    /// [`WindowAgg::add_sample`]).
    fn keep_evidence(
        &mut self,
        index: u32,
        contribution: &Contribution<'_>,
        limits: EvidenceLimits,
    ) {
        let extra = self.extras.get(self.entries[index as usize].extra as usize);
        let (ids, texts, has_account, has_region) = extra.map_or((0, 0, false, false), |extra| {
            (
                extra.sample_ids.len(),
                extra.sample_texts.len(),
                extra.account.is_some(),
                extra.region.is_some(),
            )
        });
        let given = &contribution.texts;
        let want_id = ids < limits.max_samples && given.has_id();
        let want_text = texts < limits.max_samples;
        let want_account = !has_account && given.has_account();
        let want_region = !has_region && given.has_region();
        if !(want_id || want_text || want_account || want_region) {
            return;
        }
        let id = given
            .id()
            .filter(|_| want_id)
            .and_then(|id| push_text(&mut self.texts, id));
        let text = if want_text {
            let sample = given.sample();
            let cut = floor_char_boundary(sample, limits.max_sample_bytes);
            push_text(&mut self.texts, &sample[..cut])
        } else {
            None
        };
        let account = given
            .account()
            .filter(|_| want_account)
            .and_then(|account| push_text(&mut self.texts, account));
        let region = given
            .region()
            .filter(|_| want_region)
            .and_then(|region| push_text(&mut self.texts, region));
        let extra = self.extra_mut(index);
        if let Some(id) = id {
            extra.sample_ids.push(id);
        }
        if let Some(text) = text {
            extra.sample_texts.push(text);
        }
        if account.is_some() {
            extra.account = account;
        }
        if region.is_some() {
            extra.region = region;
        }
    }

    /// Merges a partial aggregate (stage 2) into the window keyed `key`,
    /// opening it if needed: counts, sums, extremes, distinct values, first
    /// and last seen, the input positions in `partial.holds` (the earliest
    /// per partition is kept) and evidence while the window has room.
    /// `new_partition` in the result is whether a partition new to the
    /// window fed it. `None` when the bin's key arena is full.
    pub fn merge(
        &mut self,
        key: &str,
        partial: &WindowAgg,
        evidence: EvidenceLimits,
    ) -> Option<Added> {
        let hash = self.hasher.hash_one(key);
        let found = self
            .table
            .find(hash, |&index| self.key_of(index) == key)
            .copied();
        let (index, opened) = match found {
            Some(index) => (index, false),
            None => {
                let first = partial.holds.first().copied().unwrap_or((0, 0));
                (self.open_empty(key, hash, first)?, true)
            }
        };
        let entry = &mut self.entries[index as usize];
        entry.count += partial.count;
        entry.first_seen_ms = entry.first_seen_ms.min(partial.first_seen_ms);
        entry.last_seen_ms = entry.last_seen_ms.max(partial.last_seen_ms);
        if self.aggregate != Aggregate::Count {
            let extra = self.extra_mut(index);
            extra.sum += partial.sum;
            extra.min = extra.min.min(partial.min);
            extra.max = extra.max.max(partial.max);
            let row = self.entries[index as usize].extra as usize;
            if let (Some(set), Some(theirs)) = (self.distinct.get_mut(row), &partial.distinct) {
                let before = set.heap_bytes();
                set.extend(theirs.iter().copied());
                self.distinct_bytes += set.heap_bytes() - before;
            }
        }
        let mut new_partition = opened;
        for &(partition, offset) in &partial.holds {
            let entry = &mut self.entries[index as usize];
            if entry.hold_partition == partition {
                entry.hold_offset = entry.hold_offset.min(offset);
                continue;
            }
            let extra = self.extra_mut(index);
            match extra.more_holds.iter_mut().find(|(p, _)| *p == partition) {
                Some(held) => held.1 = held.1.min(offset),
                None => {
                    extra.more_holds.push((partition, offset));
                    new_partition = true;
                }
            }
        }
        self.merge_evidence(index, &partial.samples, evidence);
        self.bytes = self.measure();
        Some(Added {
            index,
            opened,
            new_partition,
        })
    }

    /// Keeps a partial's evidence while the window has room (the rules of
    /// [`WindowAgg::merge`]; texts were already cut by stage 1).
    fn merge_evidence(&mut self, index: u32, samples: &Samples, limits: EvidenceLimits) {
        let wants_any = !samples.ids.is_empty()
            || !samples.texts.is_empty()
            || samples.account.is_some()
            || samples.region.is_some();
        if !wants_any {
            return;
        }
        let (ids, texts) = {
            let extra = self.extra_mut(index);
            (extra.sample_ids.len(), extra.sample_texts.len())
        };
        let new_ids: SmallVec<[TextSpan; 3]> = samples
            .ids
            .iter()
            .take(limits.max_samples.saturating_sub(ids))
            .filter_map(|id| push_text(&mut self.texts, id))
            .collect();
        let new_texts: SmallVec<[TextSpan; 3]> = samples
            .texts
            .iter()
            .take(limits.max_samples.saturating_sub(texts))
            .filter_map(|text| {
                let cut = floor_char_boundary(text, limits.max_sample_bytes);
                push_text(&mut self.texts, &text[..cut])
            })
            .collect();
        let (has_account, has_region) = {
            let extra = self.extra_mut(index);
            (extra.account.is_some(), extra.region.is_some())
        };
        let account = samples
            .account
            .as_ref()
            .filter(|_| !has_account)
            .and_then(|account| push_text(&mut self.texts, account));
        let region = samples
            .region
            .as_ref()
            .filter(|_| !has_region)
            .and_then(|region| push_text(&mut self.texts, region));
        let extra = self.extra_mut(index);
        extra.sample_ids.extend(new_ids);
        extra.sample_texts.extend(new_texts);
        if account.is_some() {
            extra.account = account;
        }
        if region.is_some() {
            extra.region = region;
        }
    }

    /// Records that input offsets `first..=last` of stage-1 input `input`
    /// are being merged into the window at `index`, unless they already
    /// were (a replayed partial: see [`WindowAgg::mark_merged`]).
    pub fn mark_merged(&mut self, index: u32, span: InputSpan<'_>) -> MergeCheck {
        let merged = self.merged.entry(index).or_default();
        let check = mark_merged_inputs(merged, span);
        self.bytes = self.measure();
        check
    }

    /// This bin without the windows fed by any of `partitions`, and how
    /// many windows were left out; `None` when none was. The windows kept
    /// keep their state, Create flag, replay marks and the bin's holds
    /// (recomputed from what they hold).
    pub fn without_fed_by(&self, partitions: &[PartitionId]) -> Option<(Bin, usize)> {
        let fed_by = |index: u32| {
            self.holds(index)
                .iter()
                .any(|(partition, _)| partitions.contains(partition))
        };
        let dropped = (0..self.len() as u32).filter(|&i| fed_by(i)).count();
        if dropped == 0 {
            return None;
        }
        let mut kept = Bin::new(self.aggregate);
        let keep_all = EvidenceLimits {
            max_samples: usize::MAX,
            max_sample_bytes: usize::MAX,
        };
        for index in (0..self.len() as u32).filter(|&i| !fed_by(i)) {
            let agg = self.agg(index);
            let Some(added) = kept.merge(self.key_of(index), &agg, keep_all) else {
                continue;
            };
            if agg.fired {
                kept.set_fired(added.index);
            }
            if let Some(marks) = self.merged.get(&index) {
                kept.merged.insert(added.index, marks.clone());
                kept.bytes = kept.measure();
            }
            for &(partition, offset) in &agg.holds {
                kept.lower_min_hold(partition, offset);
            }
        }
        Some((kept, dropped))
    }

    /// Input positions that fed the window at `index`, first partition
    /// first.
    pub fn holds(&self, index: u32) -> Holds {
        let entry = &self.entries[index as usize];
        let mut holds = Holds::new();
        holds.push((entry.hold_partition, entry.hold_offset));
        if let Some(extra) = self.extras.get(entry.extra as usize) {
            holds.extend(extra.more_holds.iter().copied());
        }
        holds
    }

    /// The window at `index` as a standalone aggregate (for alerts).
    pub fn agg(&self, index: u32) -> WindowAgg {
        let entry = &self.entries[index as usize];
        let mut agg = WindowAgg::new(Aggregate::Count);
        agg.count = entry.count;
        agg.first_seen_ms = entry.first_seen_ms;
        agg.last_seen_ms = entry.last_seen_ms;
        agg.fired = entry.fired();
        agg.holds = self.holds(index);
        let Some(extra) = self.extras.get(entry.extra as usize) else {
            return agg;
        };
        agg.sum = extra.sum;
        agg.min = extra.min;
        agg.max = extra.max;
        agg.distinct = self
            .distinct
            .get(entry.extra as usize)
            .map(|set| Box::new(set.to_set()));
        let text = |span: &TextSpan| {
            let range = span.start as usize..span.end as usize;
            self.texts.get(range).unwrap_or("")
        };
        agg.samples = Box::new(Samples {
            ids: extra.sample_ids.iter().map(|s| text(s).into()).collect(),
            texts: extra.sample_texts.iter().map(|s| text(s).into()).collect(),
            account: extra.account.as_ref().map(|s| text(s).into()),
            region: extra.region.as_ref().map(|s| text(s).into()),
        });
        agg
    }

    /// Entry indices in key order (deterministic output when closing).
    pub fn sorted_indices(&self) -> Vec<u32> {
        self.sorted_indices_where(|_| true)
    }

    /// The entry indices that `keep` accepts, in key order: what
    /// [`Bin::sorted_indices`] gives, filtered, at the cost of sorting only
    /// the kept ones.
    pub fn sorted_indices_where(&self, keep: impl Fn(u32) -> bool) -> Vec<u32> {
        let mut indices: Vec<u32> = (0..self.entries.len() as u32)
            .filter(|&i| keep(i))
            .collect();
        indices.sort_unstable_by(|a, b| self.key_of(*a).cmp(self.key_of(*b)));
        indices
    }
}

/// Appends `text` to `arena`; `None` (nothing appended) when the arena
/// would pass 4 GiB.
fn push_text(arena: &mut String, text: &str) -> Option<TextSpan> {
    let start = u32::try_from(arena.len()).ok()?;
    let end = start.checked_add(u32::try_from(text.len()).ok()?)?;
    arena.push_str(text);
    Some(TextSpan { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contribution(time_ms: i64, partition: u32, offset: u64) -> Contribution<'static> {
        Contribution {
            value: 2.0,
            distinct_hash: offset % 2,
            time_ms,
            partition,
            offset,
            texts: MatchTexts::of_texts(Some("id"), "sample text", Some("123"), None),
        }
    }

    #[test]
    fn entries_stay_small() {
        assert_eq!(std::mem::size_of::<Entry>(), 48);
        // Every window with evidence has one (texts as 32-bit spans).
        assert!(std::mem::size_of::<Extra>() <= 136);
    }

    #[test]
    fn windows_count_and_materialise_like_window_agg() {
        let limits = EvidenceLimits {
            max_samples: 2,
            max_sample_bytes: 6,
        };
        let mut bin = Bin::new(Aggregate::Distinct);
        let mut reference = WindowAgg::new(Aggregate::Distinct);
        for (time, partition, offset) in [(5, 0, 1), (2, 0, 2), (9, 1, 7)] {
            let c = contribution(time, partition, offset);
            let added = bin.add("k", &c, limits).unwrap();
            let grew = reference.add(c.value, c.distinct_hash, time, (partition, offset));
            c.texts.add_sample_to(&mut reference, limits);
            assert_eq!(added.new_partition, grew);
        }
        assert_eq!(bin.len(), 1);
        let index = bin.find("k").unwrap();
        assert_eq!(bin.find("other"), None);
        let agg = bin.agg(index);
        assert_eq!(bin.value(index), reference.value(Aggregate::Distinct));
        for aggregate in [
            Aggregate::Count,
            Aggregate::Sum,
            Aggregate::Min,
            Aggregate::Max,
        ] {
            assert_eq!(agg.value(aggregate), reference.value(aggregate));
        }
        assert_eq!(agg.holds, reference.holds);
        assert_eq!((agg.first_seen_ms, agg.last_seen_ms), (2, 9));
        assert_eq!(agg.samples.ids, reference.samples.ids);
        assert_eq!(agg.samples.texts, reference.samples.texts);
        assert_eq!(agg.samples.account, reference.samples.account);
        assert!(!bin.entry(index).fired());
        bin.set_fired(index);
        assert!(bin.entry(index).fired());
        assert_eq!(bin.key_of(index), "k");
    }

    #[test]
    fn merged_partials_equal_the_matches_they_fold() {
        let limits = EvidenceLimits {
            max_samples: 2,
            max_sample_bytes: 6,
        };
        let matches = [(5, 0, 1), (2, 0, 2), (9, 1, 7), (4, 1, 8)];
        let mut direct = Bin::new(Aggregate::Distinct);
        for (time, partition, offset) in matches {
            direct.add("k", &contribution(time, partition, offset), limits);
        }
        // Two partials (one per input partition), each folded like stage 1.
        let mut merged = Bin::new(Aggregate::Distinct);
        for chunk in matches.chunks(2) {
            let mut partial = WindowAgg::new(Aggregate::Distinct);
            for &(time, partition, offset) in chunk {
                let c = contribution(time, partition, offset);
                partial.add(c.value, c.distinct_hash, time, (partition, offset));
                c.texts.add_sample_to(&mut partial, limits);
            }
            merged.merge("k", &partial, limits).unwrap();
        }
        let (a, b) = (direct.agg(0), merged.agg(0));
        for aggregate in [
            Aggregate::Count,
            Aggregate::Sum,
            Aggregate::Min,
            Aggregate::Max,
            Aggregate::Distinct,
        ] {
            assert_eq!(a.value(aggregate), b.value(aggregate));
        }
        assert_eq!(direct.value(0), merged.value(0));
        assert_eq!((b.first_seen_ms, b.last_seen_ms), (2, 9));
        assert_eq!(b.holds, a.holds);
        assert_eq!(b.samples.ids, a.samples.ids);
        assert_eq!(b.samples.texts, a.samples.texts);
        assert_eq!(b.samples.account, a.samples.account);
    }

    #[test]
    fn the_kept_size_follows_every_change() {
        let limits = EvidenceLimits {
            max_samples: 2,
            max_sample_bytes: 64,
        };
        let kept_size = |bin: &Bin| {
            assert_eq!(bin.approx_bytes(), bin.measure());
            bin.approx_bytes()
        };
        for aggregate in [Aggregate::Count, Aggregate::Distinct] {
            let mut bin = Bin::new(aggregate);
            let mut last = kept_size(&bin);
            // Opening, evidence kept on a later match, a distinct value,
            // and matches that change nothing the size counts.
            for (key, offset) in [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 5)] {
                bin.add(key, &contribution(offset as i64, 0, offset), limits)
                    .unwrap();
                let size = kept_size(&bin);
                assert!(size >= last);
                last = size;
            }
            let mut partial = WindowAgg::new(aggregate);
            partial.add(1.0, 9, 7, (1, 40));
            partial.add_sample(Some("p"), "partial sample", Some("1"), Some("r"), limits);
            let added = bin.merge("c", &partial, limits).unwrap();
            assert!(kept_size(&bin) > last);
            bin.mark_merged(added.index, InputSpan::new("input", 40, 40));
            kept_size(&bin);
            let (kept, dropped) = bin.without_fed_by(&[0]).unwrap();
            assert_eq!(dropped, 2);
            assert!(kept_size(&kept) > 0);
        }
    }

    #[test]
    fn replayed_partials_are_recognised_per_window() {
        let mut bin = Bin::new(Aggregate::Count);
        let partial = WindowAgg::new(Aggregate::Count);
        let limits = EvidenceLimits::default();
        let a = bin.merge("a", &partial, limits).unwrap().index;
        let b = bin.merge("b", &partial, limits).unwrap().index;
        assert_eq!(
            bin.mark_merged(a, InputSpan::new("in/0", 0, 9)),
            MergeCheck::Fresh
        );
        assert_eq!(
            bin.mark_merged(b, InputSpan::new("in/0", 0, 9)),
            MergeCheck::Fresh
        );
        assert_eq!(
            bin.mark_merged(a, InputSpan::new("in/0", 3, 9)),
            MergeCheck::Replay
        );
        assert_eq!(
            bin.mark_merged(a, InputSpan::new("in/0", 8, 12)),
            MergeCheck::Overlap { merged_through: 9 }
        );
        assert_eq!(
            bin.mark_merged(b, InputSpan::new("in/0", 10, 12)),
            MergeCheck::Fresh
        );
    }

    #[test]
    fn windows_fed_by_revoked_partitions_leave_the_bin() {
        let limits = EvidenceLimits::default();
        let mut bin = Bin::new(Aggregate::Sum);
        for (key, partition, offset) in [("a", 0, 4), ("b", 1, 6), ("c", 0, 2), ("d", 2, 9)] {
            bin.add(key, &contribution(1, partition, offset), limits);
            bin.lower_min_hold(partition, offset);
        }
        let b = bin.find("b").unwrap();
        bin.set_fired(b);
        bin.mark_merged(b, InputSpan::new("in/3", 0, 5));
        assert!(bin.without_fed_by(&[7]).is_none());
        let (kept, dropped) = bin.without_fed_by(&[0]).unwrap();
        assert_eq!(dropped, 2);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept.find("a"), None);
        let b = kept.find("b").unwrap();
        assert!(kept.entry(b).fired());
        assert_eq!(kept.value(b), bin.value(bin.find("b").unwrap()));
        assert_eq!(
            kept.agg(b).samples.ids,
            bin.agg(bin.find("b").unwrap()).samples.ids
        );
        let mut kept = kept;
        assert_eq!(
            kept.mark_merged(b, InputSpan::new("in/3", 0, 5)),
            MergeCheck::Replay
        );
        assert_eq!(kept.min_holds(), &[(1, 6), (2, 9)]);
        let d = kept.find("d").unwrap();
        assert_eq!(kept.key_of(d), "d");
        assert!(!kept.entry(d).fired());
    }

    #[test]
    fn the_bin_holds_the_smallest_position_per_partition() {
        let mut bin = Bin::new(Aggregate::Count);
        assert_eq!(bin.lower_min_hold(0, 10), Some(None));
        assert_eq!(bin.lower_min_hold(0, 12), None);
        assert_eq!(bin.lower_min_hold(1, 3), Some(None));
        assert_eq!(bin.lower_min_hold(0, 7), Some(Some(10)));
        assert_eq!(bin.min_holds(), &[(0, 7), (1, 3)]);
    }

    #[test]
    fn many_keys_are_found_again_and_sorted() {
        let mut bin = Bin::new(Aggregate::Count);
        let limits = EvidenceLimits {
            max_samples: 0,
            max_sample_bytes: 0,
        };
        for round in 0..2 {
            for n in (0..1000).rev() {
                let bare = Contribution {
                    texts: MatchTexts::of_texts(Some("id"), "sample text", None, None),
                    ..contribution(n, 0, 0)
                };
                let added = bin.add(&format!("key{n:04}"), &bare, limits).unwrap();
                assert_eq!(added.opened, round == 0);
            }
        }
        assert_eq!(bin.len(), 1000);
        assert_eq!(bin.extras.len(), 0, "count windows without evidence");
        let sorted = bin.sorted_indices();
        assert_eq!(bin.key_of(sorted[0]), "key0000");
        assert_eq!(bin.entry(sorted[999]).count, 2);
        // Filtering first sorts only what is kept, in the same order.
        let ends_in_seven = |index: u32| bin.key_of(index).ends_with('7');
        let kept = bin.sorted_indices_where(ends_in_seven);
        let expected: Vec<u32> = sorted.into_iter().filter(|&i| ends_in_seven(i)).collect();
        assert_eq!(kept.len(), 100);
        assert_eq!(kept, expected);
    }
}
