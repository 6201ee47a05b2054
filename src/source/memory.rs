//! In-memory source: a fixed list of records on one partition, or dealt
//! batch by batch over several.
//!
//! Used by `rules test`, tests and benchmarks: the records go through the
//! same framing-free path as Kafka or Kinesis messages (one record each).
//! The engine decodes each partition on one worker (per-partition order),
//! so a benchmark that wants N decode workers busy spreads its input over
//! N partitions ([`MemorySource::with_partitions`]), as a Kafka topic with
//! N partitions would. A record's offset is its index in the list, so
//! offsets grow within every partition.

use super::{PartitionRegistry, Poll, RawBatch, Source};
use crate::error::Result;

/// Records to replay, in order, as one partition (or several).
pub struct MemorySource {
    name: String,
    records: Vec<Vec<u8>>,
    batch_size: usize,
    partitions: usize,
    next: usize,
    batches: usize,
}

impl MemorySource {
    /// A source named `name` over `records`, `batch_size` per batch.
    pub fn new(name: &str, records: Vec<Vec<u8>>, batch_size: usize) -> Self {
        MemorySource {
            name: name.to_string(),
            records,
            batch_size: batch_size.max(1),
            partitions: 1,
            next: 0,
            batches: 0,
        }
    }

    /// Deals the batches round-robin over `partitions` partitions
    /// (`name`, `name#1`, `name#2`, ...); at least one.
    pub fn with_partitions(mut self, partitions: usize) -> Self {
        self.partitions = partitions.max(1);
        self
    }
}

impl Source for MemorySource {
    fn name(&self) -> &str {
        "memory"
    }

    fn poll(&mut self, registry: &PartitionRegistry) -> Result<Poll> {
        if self.next >= self.records.len() {
            return Ok(Poll::End);
        }
        let lane = self.batches % self.partitions;
        self.batches += 1;
        let partition = if lane == 0 {
            registry.id("memory", &self.name)
        } else {
            registry.id("memory", &format!("{}#{lane}", self.name))
        };
        let mut batch = RawBatch::new(partition);
        let end = (self.next + self.batch_size).min(self.records.len());
        for index in self.next..end {
            batch.push(&self.records[index], index as u64);
        }
        self.next = end;
        Ok(Poll::Batch(batch))
    }

    fn commit(&mut self, _positions: &[(u32, u64)]) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(mut source: MemorySource) -> Vec<(u32, Vec<u64>)> {
        let registry = PartitionRegistry::default();
        let mut batches = Vec::new();
        while let Poll::Batch(batch) = source.poll(&registry).unwrap() {
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
}
