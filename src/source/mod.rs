//! Sources: where raw records come from, and the checkpoint contract.
//!
//! # Checkpoint contract (GUIDE §2)
//!
//! Input is at-least-once. A source may commit position `P` of a partition
//! only when (a) every record before `P` has been fully processed by the
//! engine, (b) no open window still needs a record before `P`, and (c)
//! every alert caused by a record before `P` has been acknowledged by the
//! sink. The engine computes that position for each partition
//! ([`crate::engine::commit::CommitTracker::safe_position`]); a source only
//! has to pass it to its backend in [`Source::commit`]. After a crash,
//! replaying from the committed positions rebuilds the open windows, and
//! alert ids being deterministic makes re-emitted alerts identical.

pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kinesis")]
pub mod kinesis;
pub mod memory;

use std::ops::Range;
use std::sync::Arc;

use crate::error::Result;

/// Engine-wide id of an input partition (a file, a Kafka partition, a
/// Kinesis shard), assigned by the [`PartitionRegistry`].
pub type PartitionId = u32;

/// A batch of raw records from one partition, in partition order.
#[derive(Debug, Default)]
pub struct RawBatch {
    pub partition: PartitionId,
    /// All record bytes, back to back.
    pub data: Vec<u8>,
    /// Each record: its byte range in `data` and its offset (or sequence
    /// ordinal) in the partition. Offsets increase within a batch.
    pub records: Vec<(Range<usize>, u64)>,
    /// Each record's position in its backend, parallel to `records`, when
    /// the offset is not that position (a Kinesis sequence number, whose
    /// record's offset is a per-process ordinal); empty otherwise. Its
    /// dead letters name it, so the record can be read again.
    pub sequence_numbers: Vec<Box<str>>,
    /// Arrival time (wall clock, epoch ms), used only to detect idle partitions.
    pub arrival_ms: i64,
    /// Arrival on the monotonic clock, for the processing-latency histogram
    /// (`arrival_ms` counts whole milliseconds; batches take well under one).
    pub received: Option<std::time::Instant>,
    /// The source had read everything the partition held when it cut this
    /// batch (a Kafka partition end). Only meaningful for partitions the
    /// source announced with [`PartitionEvent::Assigned`]: those hold the
    /// watermark until they are caught up (see [`crate::engine::watermark`]).
    /// A batch may be empty and carry only this news.
    pub caught_up: bool,
    /// The partition ends with this batch: nothing more will ever be read
    /// from it (a file read to its end). Its decoder state is dropped, so
    /// a directory of 100,000 files does not keep 100,000 decoders.
    pub ends_partition: bool,
    /// Records the source skipped before this batch because this process
    /// had already processed them (a revoked partition that came back and
    /// is replayed from its committed offset). Counted, never processed.
    pub replayed_skipped: u64,
    /// Bytes the source could not even frame into records; the engine
    /// dead-letters and counts them like decode failures.
    pub rejected: Vec<Rejected>,
    /// The source's decoding settings (forced decoder, flow format), when
    /// they differ from the engine defaults. Read when the partition is
    /// first seen.
    pub decoding: Option<Arc<SourceDecoding>>,
    /// Records below this offset may have been read, and their matches
    /// delivered downstream, by a previous owner of the partition (a
    /// consumer-group source: the partition's end when this owner first
    /// read it; `u64::MAX` while that end is unknown). Stage 1 sends their
    /// matches one partial each, so that stage 2 can tell exactly which it
    /// already merged ([`crate::engine::preagg`]). 0: no previous owner.
    pub replay_end: u64,
    /// The partition's assignment generation when the engine took the
    /// batch from the source ([`crate::engine::commit::CommitTracker::generation`]);
    /// a batch of an assignment that was revoked meanwhile is dropped (the
    /// partition's new owner replays it).
    pub generation: u64,
}

/// Per-source decoding settings from the config (`decoder`, `flow_format`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceDecoding {
    pub forced: crate::decode::DecoderKind,
    pub flow_format: Option<crate::decode::flow::FlowFormat>,
}

impl SourceDecoding {
    /// `config` with these settings applied.
    pub fn apply(&self, config: &crate::decode::DecodeConfig) -> crate::decode::DecodeConfig {
        let mut applied = config.clone();
        applied.forced = self.forced;
        if self.flow_format.is_some() {
            applied.flow_format.clone_from(&self.flow_format);
        }
        applied
    }
}

/// Bytes a source could not frame into a record.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub offset: u64,
    pub bytes: Vec<u8>,
    pub reason: crate::decode::DecodeErrorReason,
    pub detail: String,
}

impl RawBatch {
    /// An empty batch for `partition`.
    pub fn new(partition: PartitionId) -> Self {
        RawBatch {
            partition,
            arrival_ms: now_ms(),
            received: Some(std::time::Instant::now()),
            ..RawBatch::default()
        }
    }

    /// An empty batch for `partition` with room for `records` records of
    /// `bytes` bytes in all.
    pub fn with_capacity(partition: PartitionId, records: usize, bytes: usize) -> Self {
        RawBatch {
            data: Vec::with_capacity(bytes),
            records: Vec::with_capacity(records),
            ..RawBatch::new(partition)
        }
    }

    /// The input offsets this batch covers, records and rejected bytes
    /// alike: from its first offset to one past its last (`0..0` when it
    /// has neither).
    pub fn offset_range(&self) -> Range<u64> {
        let first = self.records.first().map(|(_, o)| *o);
        let first_rejected = self.rejected.first().map(|r| r.offset);
        let start = first.into_iter().chain(first_rejected).min().unwrap_or(0);
        let end = self
            .records
            .last()
            .map(|(_, o)| o + 1)
            .into_iter()
            .chain(self.rejected.last().map(|r| r.offset + 1))
            .max()
            .unwrap_or(start);
        start..end
    }

    /// Appends one record.
    pub fn push(&mut self, bytes: &[u8], offset: u64) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.records.push((start..self.data.len(), offset));
    }

    /// Appends a record whose backend position is `sequence_number`, not
    /// `offset` (see [`RawBatch::sequence_numbers`]).
    pub fn push_sequenced(&mut self, bytes: &[u8], offset: u64, sequence_number: &str) {
        self.push(bytes, offset);
        self.sequence_numbers.push(sequence_number.into());
    }

    /// The backend position of record `index`, when it is not its offset.
    pub fn sequence_number(&self, index: usize) -> Option<&str> {
        self.sequence_numbers.get(index).map(|s| &**s)
    }

    /// The bytes of record `index`.
    pub fn record(&self, index: usize) -> &[u8] {
        let (range, _) = &self.records[index];
        &self.data[range.clone()]
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// What a source polls: more records, nothing yet, or the end.
#[derive(Debug)]
pub enum Poll {
    Batch(RawBatch),
    /// Nothing available now; poll again (the engine ticks meanwhile).
    Idle,
    /// The source is exhausted (finite input) or was asked to stop.
    End,
}

/// A change in which partitions a source reads, reported by
/// [`Source::take_partition_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionEvent {
    /// The source now reads this partition, which may hold a backlog: it
    /// holds the watermark back until its records arrive or it is caught up.
    Assigned(PartitionId),
    /// The source no longer reads this partition (another consumer does).
    Revoked(PartitionId),
    /// This partition exists in the source, whoever reads it (Kafka: every
    /// partition of the subscribed topics). Stage 1 of a scale-out tells
    /// stage 2, so that an input partition whose owner has not reported
    /// yet holds stage 2's watermark ([`crate::engine::merge`]).
    Exists(PartitionId),
}

/// A source of raw records. Runs on its own thread.
pub trait Source: Send {
    /// Human name (`file`, `stdin`, `kafka`), used in logs and metrics.
    fn name(&self) -> &str;
    /// Blocks until a batch, idleness (after a short timeout) or the end.
    fn poll(&mut self, registry: &PartitionRegistry) -> Result<Poll>;
    /// Partitions assigned or revoked since the last call. The engine calls
    /// this after every poll, before it forwards the polled batch, so an
    /// assignment is known before any record of it is processed. A source
    /// that announces nothing has its partitions join the watermark at
    /// their first batch.
    fn take_partition_events(&mut self, _registry: &PartitionRegistry) -> Vec<PartitionEvent> {
        Vec::new()
    }
    /// The allowed lateness of this source's partitions, when it is not
    /// the engine's (`allowed_lateness` in the source's config).
    fn allowed_lateness_ms(&self) -> Option<i64> {
        None
    }
    /// Commits safe positions, as `(partition, next offset to read)`.
    fn commit(&mut self, positions: &[(PartitionId, u64)]) -> Result<()>;
    /// Whether the source has consumed what it is assigned as far as it
    /// goes (a record, or the end of what is there), or is a standby given
    /// nothing once the group or lease table has settled (for `/readyz`).
    fn is_ready(&self) -> bool {
        true
    }
}

/// A source with an allowed lateness of its own (a source's
/// `allowed_lateness` in config); everything else is the inner source's.
pub struct WithLateness {
    pub inner: Box<dyn Source>,
    pub lateness_ms: i64,
}

impl Source for WithLateness {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn poll(&mut self, registry: &PartitionRegistry) -> Result<Poll> {
        self.inner.poll(registry)
    }

    fn take_partition_events(&mut self, registry: &PartitionRegistry) -> Vec<PartitionEvent> {
        self.inner.take_partition_events(registry)
    }

    fn allowed_lateness_ms(&self) -> Option<i64> {
        Some(self.lateness_ms)
    }

    fn commit(&mut self, positions: &[(PartitionId, u64)]) -> Result<()> {
        self.inner.commit(positions)
    }

    fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }
}

/// Names partitions and hands out dense [`PartitionId`]s.
#[derive(Debug, Default)]
pub struct PartitionRegistry {
    names: std::sync::Mutex<RegistryNames>,
}

/// The names by id, and the ids by name (a directory of a year of
/// CloudTrail files is 100,000 partitions: no linear search).
#[derive(Debug, Default)]
struct RegistryNames {
    by_id: Vec<(String, String)>,
    /// Source name, then partition name.
    by_name: std::collections::HashMap<String, std::collections::HashMap<String, PartitionId>>,
}

impl PartitionRegistry {
    /// The id for `(source, partition)`, registering it on first use.
    pub fn id(&self, source: &str, partition: &str) -> PartitionId {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = names.by_name.get(source).and_then(|ids| ids.get(partition)) {
            return *id;
        }
        let id = names.by_id.len() as PartitionId;
        names
            .by_id
            .push((source.to_string(), partition.to_string()));
        names
            .by_name
            .entry(source.to_string())
            .or_default()
            .insert(partition.to_string(), id);
        id
    }

    /// `(source, partition)` names of `id`.
    pub fn name(&self, id: PartitionId) -> Option<(String, String)> {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.by_id.get(id as usize).cloned()
    }

    /// Number of registered partitions.
    pub fn len(&self) -> usize {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .len()
    }

    /// Whether no partition is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Wall-clock now, epoch milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_covers_its_records_and_rejected_bytes() {
        let rejected = |offset| Rejected {
            offset,
            bytes: Vec::new(),
            reason: crate::decode::DecodeErrorReason::InvalidJson,
            detail: String::new(),
        };
        let mut batch = RawBatch::new(1);
        assert_eq!(batch.offset_range(), 0..0);
        batch.rejected.push(rejected(7));
        assert_eq!(batch.offset_range(), 7..8);
        batch.records = vec![(0..1, 5), (1..2, 6)];
        assert_eq!(batch.offset_range(), 5..8);
        batch.rejected.insert(0, rejected(3));
        batch.rejected.pop();
        assert_eq!(batch.offset_range(), 3..7);
    }
}
