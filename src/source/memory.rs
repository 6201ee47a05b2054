//! In-memory source: a fixed list of records on one partition, or dealt
//! batch by batch over several.
//!
//! Used by `rules test`, tests and benchmarks: the records go through the
//! same framing-free path as Kafka or Kinesis messages (one record each).
//! The engine decodes each partition on one worker (per-partition order),
//! so a benchmark that wants N decode workers busy spreads its input over
//! N partitions ([`MemorySource::with_partitions`]), as a Kafka topic with
//! N partitions would. [`MemorySource::lanes`] deals the same batches over
//! N sources instead, one partition each, so that N source threads copy
//! the records into raw batches, as N consumers would. A record's offset
//! is its index in the list, so offsets grow within every partition.

use std::sync::Arc;

use super::{PartitionRegistry, Poll, RawBatch, Source};
use crate::error::Result;

/// Records to replay, in order, as one partition (or several).
pub struct MemorySource {
    name: String,
    records: Arc<[Vec<u8>]>,
    /// Where each batch starts in `records`, then `records.len()`.
    bounds: Arc<[usize]>,
    partitions: usize,
    /// The next batch this source yields, and the step to the one after:
    /// 1 for all of them, `n` for a lane of `n`.
    next_batch: usize,
    step: usize,
}

/// How records are cut into batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most records per batch (at least one).
    pub records: usize,
    /// Most record bytes per batch; a batch always takes at least one
    /// record, however long.
    pub bytes: usize,
}

impl Batching {
    /// `records` per batch, whatever their size.
    pub fn records(records: usize) -> Self {
        Batching {
            records,
            bytes: usize::MAX,
        }
    }

    /// Each batch's first record, then `records.len()`.
    fn bounds(self, records: &[Vec<u8>]) -> Arc<[usize]> {
        let mut bounds = vec![0];
        let (mut count, mut bytes) = (0usize, 0usize);
        for (index, record) in records.iter().enumerate() {
            if count > 0 && (count >= self.records.max(1) || bytes + record.len() > self.bytes) {
                bounds.push(index);
                (count, bytes) = (0, 0);
            }
            count += 1;
            bytes += record.len();
        }
        if count > 0 {
            bounds.push(records.len());
        }
        bounds.into()
    }
}

impl MemorySource {
    /// A source named `name` over `records`, `batch_size` per batch.
    pub fn new(name: &str, records: Vec<Vec<u8>>, batch_size: usize) -> Self {
        let records: Arc<[Vec<u8>]> = records.into();
        let bounds = Batching::records(batch_size).bounds(&records);
        MemorySource::lane(name, records, bounds, 0, 1)
    }

    /// Lane `lane` of `lanes` over `records` cut at `bounds`.
    fn lane(
        name: &str,
        records: Arc<[Vec<u8>]>,
        bounds: Arc<[usize]>,
        lane: usize,
        lanes: usize,
    ) -> Self {
        MemorySource {
            name: name.to_string(),
            records,
            bounds,
            partitions: lanes,
            next_batch: lane,
            step: lanes,
        }
    }

    /// Deals the batches round-robin over `partitions` partitions
    /// (`name`, `name#1`, `name#2`, ...); at least one.
    pub fn with_partitions(mut self, partitions: usize) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// The batches [`MemorySource::with_partitions`] would deal over
    /// `lanes` partitions, as `lanes` sources (each run by its own engine
    /// thread): lane `i` yields batches `i`, `i + lanes`, ... on the
    /// partition that dealing gives them. At least one lane.
    pub fn lanes(
        name: &str,
        records: Arc<[Vec<u8>]>,
        batching: Batching,
        lanes: usize,
    ) -> Vec<MemorySource> {
        let lanes = lanes.max(1);
        let bounds = batching.bounds(&records);
        (0..lanes)
            .map(|lane| {
                MemorySource::lane(name, Arc::clone(&records), Arc::clone(&bounds), lane, lanes)
            })
            .collect()
    }
}

impl Source for MemorySource {
    fn name(&self) -> &str {
        "memory"
    }

    fn poll(&mut self, registry: &PartitionRegistry) -> Result<Poll> {
        let (Some(&start), Some(&end)) = (
            self.bounds.get(self.next_batch),
            self.bounds.get(self.next_batch + 1),
        ) else {
            return Ok(Poll::End);
        };
        let lane = self.next_batch % self.partitions;
        self.next_batch += self.step;
        let partition = if lane == 0 {
            registry.id("memory", &self.name)
        } else {
            registry.id("memory", &format!("{}#{lane}", self.name))
        };
        let records = &self.records[start..end];
        // Sized once: grown by doubling, a 1 MB batch of CloudTrail was
        // copied twice over and its pages faulted in again on every batch.
        let mut batch =
            RawBatch::with_capacity(partition, records.len(), records.iter().map(Vec::len).sum());
        for (index, record) in (start..).zip(records) {
            batch.push(record, index as u64);
        }
        Ok(Poll::Batch(batch))
    }

    fn commit(&mut self, _positions: &[(u32, u64)]) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(source: MemorySource) -> Vec<(u32, Vec<u64>)> {
        drain_into(&PartitionRegistry::default(), source)
    }

    fn drain_into(registry: &PartitionRegistry, mut source: MemorySource) -> Vec<(u32, Vec<u64>)> {
        let mut batches = Vec::new();
        while let Poll::Batch(batch) = source.poll(registry).unwrap() {
            let offsets = batch.records.iter().map(|(_, offset)| *offset).collect();
            batches.push((batch.partition, offsets));
        }
        batches
    }

    #[test]
    fn one_partition_by_default() {
        let records = (0..5u8).map(|i| vec![i]).collect();
        let batches = drain(MemorySource::new("m", records, 2));
        assert_eq!(
            batches,
            vec![(0, vec![0, 1]), (0, vec![2, 3]), (0, vec![4])]
        );
    }

    #[test]
    fn batches_are_dealt_over_partitions_with_growing_offsets() {
        let records = (0..7u8).map(|i| vec![i]).collect();
        let batches = drain(MemorySource::new("m", records, 2).with_partitions(3));
        let partitions: Vec<u32> = batches.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            partitions[..3],
            [partitions[0], partitions[1], partitions[2]]
        );
        assert_eq!(partitions[3], partitions[0]);
        assert_ne!(partitions[0], partitions[1]);
        assert_ne!(partitions[1], partitions[2]);
        assert_eq!(batches[3].1, vec![6]);
    }

    #[test]
    fn lanes_deal_the_same_batches_as_partitions() {
        let records: Vec<Vec<u8>> = (0..11u8).map(|i| vec![i]).collect();
        let registry = PartitionRegistry::default();
        let mut dealt = drain_into(
            &registry,
            MemorySource::new("m", records.clone(), 2).with_partitions(3),
        );
        // Lanes drained last to first: the ids come from the names.
        let mut laned: Vec<(u32, Vec<u64>)> =
            MemorySource::lanes("m", records.into(), Batching::records(2), 3)
                .into_iter()
                .rev()
                .flat_map(|lane| drain_into(&registry, lane))
                .collect();
        dealt.sort();
        laned.sort();
        assert_eq!(laned, dealt);
        assert_eq!(laned.len(), 6);
    }

    #[test]
    fn batches_are_cut_by_records_or_bytes() {
        let records: Vec<Vec<u8>> = [3, 3, 3, 9, 1, 1, 1, 1, 1]
            .iter()
            .map(|&len| vec![b'x'; len])
            .collect();
        let batching = Batching {
            records: 4,
            bytes: 6,
        };
        // 3+3 fit in 6; the 9-byte record goes alone; then four 1s, then one.
        assert_eq!(&*batching.bounds(&records), &[0, 2, 3, 4, 8, 9]);
        assert_eq!(&*Batching::records(4).bounds(&records), &[0, 4, 8, 9]);
        assert_eq!(&*Batching::records(4).bounds(&[]), &[0]);
    }
}
