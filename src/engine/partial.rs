//! The repartition-topic record format (version 1): partial aggregates
//! and producer watermarks exchanged between stage 1 and stage 2.
//!
//! # Contract
//!
//! Every record value is one JSON object with a format version `v` (this
//! module writes and reads [`FORMAT_VERSION`]; any other version, and any
//! value that does not parse, is rejected with a [`PartialError`], which
//! stage 2 dead-letters and counts, never crashes on) and a type tag `t`:
//!
//! * `"p"`, a **partial**: the mergeable aggregate of one `(rule, group key,
//!   bucket)` over a short stage-1 flush interval. Key = `rule id|group
//!   key` (so one rule and key always hash to one repartition partition).
//!   Fields: `r` rule id, `k` group key (values joined by U+001F), `b`
//!   bucket start (ms: the tumbling window, or the sliding pane, that the
//!   events fell in), `n` count, `s` sum, `lo`/`hi` min and max, `d` the
//!   distinct-value hashes (distinct rules only), `f`/`l` first and last
//!   event time, `i` sample event ids, `e` sample event texts, `a`/`g`
//!   first account and region seen, `p` the input partition
//!   (`source:topic/partition`) all its events came from (for a
//!   continuation, see "Replays", followed by U+001F and the chunk
//!   number) and `o0`/`o1`
//!   the first and last input offset among them; for input that a previous
//!   owner may already have sent (see "Replays"), `x` the input offset of
//!   each of its `n` matches, each written as the difference from the one
//!   before (the first from `o0`, so 0), and, for sum and average rules,
//!   `xv` their values; `ep` the epoch of the stage-1 assignment that sent
//!   it (see "Replays"; absent from older producers' records). Merging
//!   partials is associative and commutative except for which samples are
//!   kept (evidence only).
//!
//! # Replays
//!
//! Stage 1 commits its input only after partials are acknowledged, so a
//! crash or rebalance makes the next owner re-send partials for input the
//! previous owner had already sent. Stage 2 keeps, per window and input
//! partition, the last input offset merged, and skips a partial whose `o1`
//! is not beyond it (a duplicate). The new owner cannot know where the
//! previous owner cut its flushes, so a partial of the replay can straddle
//! one already merged (offsets up to `merged_through`), and merging it
//! whole would over-count. So a partial of input below the partition's end
//! when the new owner first read it (all the previous owner could have
//! read, [`crate::source::RawBatch::replay_end`]) lists the offsets of its
//! matches (`x`, `xv`), and stage 2 merges only those past
//! `merged_through` ([`ReplayOffsets::part_after`]; counted in
//! `trailwatch_repartition_trimmed_total`). Only the count and the sum
//! need it: min, max, distinct values and first and last seen merge the
//! same whether or not some matches were merged before. The events of one
//! input record (an S3 log file) share its offset, and a flush never
//! splits a record. So that a partial stays small enough for one Kafka
//! record (`engine::preagg`, "Partial size"), the matches of one record
//! past the first 8,192 of a rule, key and bucket go to *continuations*:
//! partials of that record alone (`o0` = `o1`), 8,192 matches each, whose
//! `p` is the input partition followed by U+001F and the chunk number (1,
//! 2, ...). Stage 2 tracks each as an input partition of its own, so a
//! continuation is merged once and a replay of it is skipped; the split
//! depends only on the record's matches, so every owner cuts it alike.
//! A stage 2 that predates continuations reads them the same way.
//!
//! A previous owner's flush can also reach the topic *after* the new
//! owner's replay of the same input: its revocation waits at most 2 s for
//! the flush to be acknowledged, and a flush can be taken in the moment
//! after that wait. Such a partial lists no offsets (its input lay past
//! its own owner's replay end), so it cannot be trimmed. So every partial
//! names its assignment's epoch `ep`: the replay end of that assignment,
//! the input partition's end when it first read it. A later assignment
//! began after the earlier one stopped reading, so its epoch is higher
//! than any offset of an unlisted partial of the earlier one, and so than
//! that partial's epoch. Stage 2 keeps, per window and input partition,
//! the highest epoch merged, and skips an unlisted partial that straddles
//! what was merged and names a lower epoch (a *superseded* partial,
//! `trailwatch_repartition_superseded_total`): the later owner replays
//! from the committed offset, which never passed the unacknowledged
//! flush, and so sends every one of its matches itself. Any other
//! straddling partial without offsets (a build that does not write them,
//! or two owners reading at once, one of them unaware it lost the
//! partition) is merged whole and counted as an overlap
//! (`trailwatch_repartition_overlaps_total`).
//! * `"w"`, a **watermark**: `src` names one stage-1 producer (instance
//!   and pre-aggregator index), `at` its wall clock when sent, `wm` its
//!   instance watermark (informative) and `in` the watermark of every input
//!   partition it owns, as `[name, ms]` pairs: the partition's largest event
//!   time minus the allowed lateness (or the instance watermark, when that
//!   is later: an idle partition). Every event the producer will still send
//!   from that partition is at or after it, lateness aside (an idle one's
//!   aside: it may wake up behind the instance watermark). `all` names every
//!   input partition its source knows to exist, whoever owns it, and `idle`
//!   those it owns that no longer hold its own watermark (quiet for the
//!   idle timeout and, when assigned, caught up), whether `in` lists them or
//!   not (one without events has no watermark to list); stage 2 leaves them
//!   out, as the direct path does. Both are absent from older producers'
//!   records: nothing named, nothing idle. Each producer
//!   writes one to *every* repartition partition after the partials of a
//!   flush (and at least every heartbeat), so within a partition a
//!   watermark follows all earlier partials of its producer. Per input
//!   partition rather than per producer, so that when a partition moves to
//!   another stage-1 instance its last reported watermark keeps holding
//!   stage 2 until the new owner reports it. Key = `~wm|src`.
//!
//! JSON keeps the format inspectable with any Kafka tool; single-letter
//! field names keep it compact (see BENCHMARKS.md for bytes per input
//! byte). A new incompatible layout must bump [`FORMAT_VERSION`].

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::window::WindowAgg;
use crate::rules::compile::Aggregate;
use crate::source::PartitionId;

/// The version this build writes and accepts.
pub const FORMAT_VERSION: u32 = 1;

/// Separator between the rule id and the group key in a record key.
pub const KEY_RULE_SEPARATOR: char = '|';

/// Separator between the input partition and the chunk number in a
/// continuation's `p` (see "Replays").
pub const CONTINUATION_SEPARATOR: char = '\u{1f}';

/// The `p` of continuation `chunk` (1, 2, ...) of a partial of `input`.
pub fn continuation_input(input: &str, chunk: u32) -> String {
    format!("{input}{CONTINUATION_SEPARATOR}{chunk}")
}

/// A decoding failure of a repartition record (a user-class input error
/// from stage 2's point of view: the record is dead-lettered).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PartialError {
    #[error("invalid partial record: {0}")]
    Invalid(String),
    #[error("unsupported partial format version {0} (this build reads {FORMAT_VERSION})")]
    Version(u32),
    #[error("partial for unknown rule {0:?}")]
    UnknownRule(String),
}

impl PartialError {
    /// Stable reason label for dead letters.
    pub fn reason(&self) -> &'static str {
        match self {
            PartialError::Invalid(_) => "invalid_partial",
            PartialError::Version(_) => "partial_version",
            PartialError::UnknownRule(_) => "partial_unknown_rule",
        }
    }
}

/// One partial aggregate (see the module contract for field meanings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialAgg {
    pub r: String,
    pub k: String,
    pub b: i64,
    pub n: u64,
    pub s: f64,
    pub lo: f64,
    pub hi: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub d: Vec<u64>,
    pub f: i64,
    pub l: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub i: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub e: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub g: Option<String>,
    pub p: String,
    pub o0: u64,
    pub o1: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub x: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xv: Vec<f64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ep: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The input offsets (and values, sum and average rules) of a replayed
/// partial's matches, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOffsets {
    pub offsets: Vec<u64>,
    /// Empty unless the rule sums.
    pub values: Vec<f64>,
}

impl ReplayOffsets {
    /// The part of `agg` (the aggregate of these matches) that is new to a
    /// window that has merged every input offset up to `merged_through`:
    /// `None` when nothing is.
    pub fn part_after(&self, agg: &WindowAgg, merged_through: u64) -> Option<WindowAgg> {
        let fresh = self.offsets.partition_point(|o| *o <= merged_through);
        if fresh == self.offsets.len() {
            return None;
        }
        let mut part = agg.clone();
        part.count = (self.offsets.len() - fresh) as u64;
        if !self.values.is_empty() {
            part.sum = self.values[fresh..].iter().sum();
        }
        Some(part)
    }
}

/// One producer watermark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerWatermark {
    pub src: String,
    pub wm: i64,
    pub at: i64,
    #[serde(rename = "in", default)]
    pub inputs: Vec<(String, i64)>,
    /// Every input partition the producer's source knows to exist, read
    /// by this producer or not (absent from older producers' records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<String>,
    /// The input partitions it owns that no longer hold its own watermark
    /// (idle), listed in `in` or not (absent from older producers'
    /// records: none is idle).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idle: Vec<String>,
}

/// A decoded repartition record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum RepartitionRecord {
    #[serde(rename = "p")]
    Partial {
        v: u32,
        #[serde(flatten)]
        agg: Box<PartialAgg>,
    },
    #[serde(rename = "w")]
    Watermark {
        v: u32,
        #[serde(flatten)]
        mark: ProducerWatermark,
    },
}

/// JSON has no infinities: an aggregate of out-of-range values is clamped.
fn finite(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(f64::MIN, f64::MAX)
    }
}

impl PartialAgg {
    /// The record key: `rule id|group key`.
    pub fn record_key(&self) -> Vec<u8> {
        let mut key = String::with_capacity(self.r.len() + 1 + self.k.len());
        key.push_str(&self.r);
        key.push(KEY_RULE_SEPARATOR);
        key.push_str(&self.k);
        key.into_bytes()
    }

    /// The record value.
    pub fn encode(mut self) -> Vec<u8> {
        self.s = finite(self.s);
        self.lo = finite(self.lo);
        self.hi = finite(self.hi);
        encode(&RepartitionRecord::Partial {
            v: FORMAT_VERSION,
            agg: Box::new(self),
        })
    }
}

impl ProducerWatermark {
    /// The record key: `~wm|src`.
    pub fn record_key(&self) -> Vec<u8> {
        format!("~wm{KEY_RULE_SEPARATOR}{}", self.src).into_bytes()
    }

    /// The record value.
    pub fn encode(self) -> Vec<u8> {
        encode(&RepartitionRecord::Watermark {
            v: FORMAT_VERSION,
            mark: self,
        })
    }
}

impl PartialAgg {
    /// The partial of `agg`, the aggregate of `(rule_id, key, bucket)` over
    /// the input offsets `offsets` of partition `input`.
    pub fn from_window(
        rule_id: &str,
        key: &str,
        bucket: i64,
        agg: &WindowAgg,
        input: &str,
        offsets: (u64, u64),
    ) -> Self {
        let mut distinct: Vec<u64> = agg
            .distinct
            .as_ref()
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        distinct.sort_unstable();
        PartialAgg {
            r: rule_id.to_string(),
            k: key.to_string(),
            b: bucket,
            n: agg.count,
            s: agg.sum,
            lo: agg.min,
            hi: agg.max,
            d: distinct,
            f: agg.first_seen_ms,
            l: agg.last_seen_ms,
            i: agg.samples.ids.iter().map(|s| s.to_string()).collect(),
            e: agg.samples.texts.iter().map(|s| s.to_string()).collect(),
            a: agg.samples.account.as_ref().map(|s| s.to_string()),
            g: agg.samples.region.as_ref().map(|s| s.to_string()),
            p: input.to_string(),
            o0: offsets.0,
            o1: offsets.1,
            x: Vec::new(),
            xv: Vec::new(),
            ep: 0,
        }
    }

    /// Lists the input offsets of the partial's matches (ascending, one per
    /// match) and, for sum and average rules, their values (see "Replays").
    pub fn with_replay_offsets(mut self, offsets: &[u64], values: &[f64]) -> Self {
        let mut previous = self.o0;
        self.x = offsets
            .iter()
            .map(|offset| {
                let delta = offset.saturating_sub(previous);
                previous = *offset;
                delta
            })
            .collect();
        self.xv = values.to_vec();
        self
    }

    /// Takes the listed input offsets out of the partial, when it lists them.
    pub fn take_replay_offsets(&mut self) -> Option<ReplayOffsets> {
        if self.x.is_empty() {
            return None;
        }
        let mut offset = self.o0;
        let offsets = std::mem::take(&mut self.x)
            .into_iter()
            .map(|delta| {
                offset = offset.saturating_add(delta);
                offset
            })
            .collect();
        Some(ReplayOffsets {
            offsets,
            values: std::mem::take(&mut self.xv),
        })
    }

    /// The aggregate this partial adds to a stage-2 window, holding
    /// `position` (the repartition record it came from).
    pub fn to_window(&self, aggregate: Aggregate, position: (PartitionId, u64)) -> WindowAgg {
        let mut agg = WindowAgg::new(aggregate);
        agg.count = self.n;
        agg.sum = self.s;
        agg.min = self.lo;
        agg.max = self.hi;
        if let Some(set) = agg.distinct.as_mut() {
            set.extend(self.d.iter().copied());
        }
        agg.first_seen_ms = self.f;
        agg.last_seen_ms = self.l;
        agg.holds.push(position);
        let samples = &mut agg.samples;
        samples.ids = self
            .i
            .iter()
            .map(|s| CompactString::from(s.as_str()))
            .collect();
        samples.texts = self.e.iter().map(|s| Box::from(s.as_str())).collect();
        samples.account = self.a.as_deref().map(CompactString::from);
        samples.region = self.g.as_deref().map(CompactString::from);
        agg
    }
}

fn encode(record: &RepartitionRecord) -> Vec<u8> {
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

/// Decodes one record value.
pub fn decode(bytes: &[u8]) -> Result<RepartitionRecord, PartialError> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let version: Version =
        serde_json::from_slice(bytes).map_err(|e| PartialError::Invalid(e.to_string()))?;
    if version.v != FORMAT_VERSION {
        return Err(PartialError::Version(version.v));
    }
    let record: RepartitionRecord =
        serde_json::from_slice(bytes).map_err(|e| PartialError::Invalid(e.to_string()))?;
    if let RepartitionRecord::Partial { agg, .. } = &record {
        if agg.n == 0 || agg.f > agg.l || agg.o0 > agg.o1 {
            return Err(PartialError::Invalid(
                "empty partial, or first seen (or offset) after last".into(),
            ));
        }
        if !agg.x.is_empty() {
            let listed = agg.x.len() as u64 == agg.n
                && (agg.xv.is_empty() || agg.xv.len() == agg.x.len())
                && agg.x.first() == Some(&0)
                && agg
                    .x
                    .iter()
                    .try_fold(agg.o0, |offset, delta| offset.checked_add(*delta))
                    == Some(agg.o1);
            if !listed {
                return Err(PartialError::Invalid(
                    "listed offsets do not match the count or the offset range".into(),
                ));
            }
        } else if !agg.xv.is_empty() {
            return Err(PartialError::Invalid(
                "values listed without offsets".into(),
            ));
        }
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PartialAgg {
        PartialAgg {
            r: "console-burst".into(),
            k: "203.0.113.7".into(),
            b: 300_000,
            n: 3,
            s: 3.0,
            lo: 1.0,
            hi: 1.0,
            d: vec![],
            f: 300_100,
            l: 300_900,
            i: vec!["e1".into()],
            e: vec!["{}".into()],
            a: Some("111122223333".into()),
            g: None,
            p: "kafka:ct/0".into(),
            o0: 10,
            o1: 12,
            x: Vec::new(),
            xv: Vec::new(),
            ep: 33,
        }
    }

    #[test]
    fn listed_offsets_round_trip_and_give_the_part_after_a_merge() {
        let listed = sample().with_replay_offsets(&[10, 10, 12], &[]);
        assert_eq!(listed.x, [0, 0, 2]);
        let RepartitionRecord::Partial { mut agg, .. } = decode(&listed.encode()).unwrap() else {
            panic!("not a partial");
        };
        let offsets = agg.take_replay_offsets().expect("listed");
        assert_eq!(offsets.offsets, [10, 10, 12]);
        let window = agg.to_window(Aggregate::Count, (0, 0));
        // Stage 2 merged up to offset 10: both events of record 10 are old.
        assert_eq!(offsets.part_after(&window, 10).map(|p| p.count), Some(1));
        assert_eq!(offsets.part_after(&window, 9).map(|p| p.count), Some(3));
        assert!(offsets.part_after(&window, 12).is_none());
        let summed = ReplayOffsets {
            offsets: vec![10, 11, 12],
            values: vec![100.0, 20.0, 3.0],
        };
        let part = summed.part_after(&window, 10).expect("part");
        assert_eq!((part.count, part.sum), (2, 23.0));
        assert_eq!(sample().take_replay_offsets(), None);
    }

    #[test]
    fn listed_offsets_that_disagree_with_the_partial_are_rejected() {
        let invalid = |agg: PartialAgg| {
            let error = decode(&agg.encode()).unwrap_err();
            assert_eq!(error.reason(), "invalid_partial", "{error}");
        };
        // Two offsets for three matches; a range that ends before `o1`; a
        // first offset that is not `o0`; values for the wrong count;
        // values without offsets.
        invalid(sample().with_replay_offsets(&[10, 12], &[]));
        invalid(sample().with_replay_offsets(&[10, 10, 11], &[]));
        let mut shifted = sample().with_replay_offsets(&[10, 11, 12], &[]);
        shifted.x[0] = 1;
        invalid(shifted);
        invalid(sample().with_replay_offsets(&[10, 11, 12], &[1.0]));
        let mut values_only = sample();
        values_only.xv = vec![1.0, 1.0, 1.0];
        invalid(values_only);
        let overflow = PartialAgg {
            x: vec![0, u64::MAX, 1],
            ..sample()
        };
        invalid(overflow);
    }

    #[test]
    fn partials_and_watermarks_round_trip() {
        let agg = sample();
        let decoded = decode(&agg.clone().encode()).unwrap();
        assert_eq!(
            decoded,
            RepartitionRecord::Partial {
                v: 1,
                agg: Box::new(agg)
            }
        );
        let mark = ProducerWatermark {
            src: "a-0".into(),
            wm: 5,
            at: 9,
            inputs: vec![("kafka:ct/0".into(), 7)],
            all: vec!["kafka:ct/0".into(), "kafka:ct/1".into()],
            idle: vec!["kafka:ct/0".into(), "kafka:ct/2".into()],
        };
        assert_eq!(
            decode(&mark.clone().encode()).unwrap(),
            RepartitionRecord::Watermark { v: 1, mark }
        );
        assert_eq!(sample().record_key(), b"console-burst|203.0.113.7".to_vec());
    }

    /// A record from a build before `all` and `idle`: nothing named,
    /// nothing idle.
    #[test]
    fn an_older_producers_watermark_names_nothing_idle() {
        let old = br#"{"t":"w","v":1,"src":"a-0","wm":5,"at":9,"in":[["kafka:ct/0",7]]}"#;
        let Ok(RepartitionRecord::Watermark { mark, .. }) = decode(old) else {
            panic!("not a watermark");
        };
        assert_eq!(mark.inputs, [("kafka:ct/0".to_string(), 7)]);
        assert!(mark.all.is_empty() && mark.idle.is_empty(), "{mark:?}");
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        assert_eq!(decode(br#"{"v":2,"t":"p"}"#), Err(PartialError::Version(2)));
        assert!(matches!(decode(b"garbage"), Err(PartialError::Invalid(_))));
        assert!(matches!(
            decode(br#"{"v":1,"t":"x"}"#),
            Err(PartialError::Invalid(_))
        ));
        let mut empty = sample();
        empty.n = 0;
        assert!(matches!(
            decode(&empty.encode()),
            Err(PartialError::Invalid(_))
        ));
    }

    #[test]
    fn infinities_are_clamped() {
        let mut agg = sample();
        agg.hi = f64::INFINITY;
        let RepartitionRecord::Partial { agg, .. } = decode(&agg.encode()).unwrap() else {
            panic!("not a partial");
        };
        assert_eq!(agg.hi, f64::MAX);
    }
}
