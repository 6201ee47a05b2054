//! In-memory source: a fixed list of records on one partition.
//!
//! Used by `rules test`, tests and benchmarks: the records go through the
//! same framing-free path as Kafka or Kinesis messages (one record each).

use super::{PartitionRegistry, Poll, RawBatch, Source};
use crate::error::Result;

/// Records to replay, in order, as one partition.
pub struct MemorySource {
    name: String,
    records: Vec<Vec<u8>>,
    batch_size: usize,
    next: usize,
}

impl MemorySource {
    /// A source named `name` over `records`, `batch_size` per batch.
    pub fn new(name: &str, records: Vec<Vec<u8>>, batch_size: usize) -> Self {
        MemorySource {
            name: name.to_string(),
            records,
            batch_size: batch_size.max(1),
            next: 0,
        }
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
        let partition = registry.id("memory", &self.name);
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
