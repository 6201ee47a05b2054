//! The input watermarks an instance's pre-aggregators agree on.
//!
//! Every pre-aggregator of a stage-1 instance sees every input batch's
//! watermark, but each flushes its own partials on its own clock, and stage
//! 2 keeps, per input partition, the highest watermark reported for it. So
//! a pre-aggregator must not report an input partition further than every
//! sibling has flushed: stage 2 would close windows that a slower sibling's
//! partials (still buffered, or queued behind this report) feed, and drop
//! those partials as late.
//!
//! # Contract
//!
//! A pre-aggregator calls [`FlushedMarks::record`] *after* its flush is
//! queued to the (single, FIFO) repartition sink, and reports an input
//! partition at [`FlushedMarks::agreed`]: its own current mark (its
//! partials of this flush precede its report) capped by what every sibling
//! has recorded. A sibling that has recorded nothing for the partition's
//! current assignment generation holds it at `i64::MIN`. Whatever a
//! report covers is then already ahead of it in the sink's queue.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::source::PartitionId;

/// One input partition's assignment generation and, per pre-aggregator,
/// the watermark it last flushed (`None`: nothing yet).
type Slots = (u64, Vec<Option<i64>>);

/// The flushed marks of one instance's pre-aggregators (module docs).
#[derive(Debug)]
pub struct FlushedMarks {
    producers: usize,
    marks: Mutex<HashMap<PartitionId, Slots>>,
}

impl FlushedMarks {
    /// Marks shared by `producers` pre-aggregators, none recorded.
    pub fn new(producers: usize) -> Self {
        FlushedMarks {
            producers,
            marks: Mutex::new(HashMap::new()),
        }
    }

    /// Pre-aggregator `index` has queued everything up to `mark` of
    /// `partition` (assignment `generation`) to the sink.
    pub fn record(&self, index: usize, partition: PartitionId, generation: u64, mark: i64) {
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        let slot = marks
            .entry(partition)
            .or_insert_with(|| (generation, vec![None; self.producers]));
        if slot.0 != generation {
            *slot = (generation, vec![None; self.producers]);
        }
        if let Some(own) = slot.1.get_mut(index) {
            *own = Some(own.map_or(mark, |before| before.max(mark)));
        }
    }

    /// The mark pre-aggregator `index` may report for `partition`: `own`
    /// capped by every sibling's recorded mark of this `generation`.
    pub fn agreed(&self, index: usize, partition: PartitionId, generation: u64, own: i64) -> i64 {
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        let siblings = match marks.get(&partition) {
            Some((recorded, slots)) if *recorded == generation => slots.as_slice(),
            _ if self.producers <= 1 => return own,
            _ => return i64::MIN,
        };
        siblings
            .iter()
            .enumerate()
            .filter(|(sibling, _)| *sibling != index)
            .map(|(_, mark)| mark.unwrap_or(i64::MIN))
            .fold(own, i64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_waits_for_every_sibling() {
        let marks = FlushedMarks::new(2);
        assert_eq!(marks.agreed(0, 7, 0, 100), i64::MIN, "sibling 1 unheard");
        marks.record(1, 7, 0, 60);
        assert_eq!(marks.agreed(0, 7, 0, 100), 60);
        marks.record(1, 7, 0, 150);
        assert_eq!(marks.agreed(0, 7, 0, 100), 100, "its own mark caps it");
        marks.record(0, 7, 0, 100);
        assert_eq!(marks.agreed(1, 7, 0, 200), 100);
    }

    #[test]
    fn a_new_assignment_starts_over() {
        let marks = FlushedMarks::new(2);
        marks.record(1, 7, 0, 60);
        assert_eq!(marks.agreed(0, 7, 1, 100), i64::MIN);
        marks.record(1, 7, 1, 10);
        assert_eq!(marks.agreed(0, 7, 1, 100), 10);
    }

    #[test]
    fn a_single_pre_aggregator_reports_its_own_mark() {
        let marks = FlushedMarks::new(1);
        assert_eq!(marks.agreed(0, 3, 0, 42), 42);
    }
}
