//! Engine offsets for Kinesis shards: ordinals mapped to sequence numbers.
//!
//! Kinesis sequence numbers are decimal strings of up to 128 bits, and the
//! engine's offsets are `u64`. So each shard gets a per-process **ordinal**:
//! the n-th record this process hands to the engine from that shard has
//! ordinal `n` (ordinals never go back, not even when a lease is lost and
//! taken again, so the engine's commit tracker sees offsets only grow). A
//! [`ShardProgress`] remembers ordinal → sequence number for the records of
//! the current lease session, so that when the engine says "every ordinal
//! below `P` is safe" the source checkpoints the sequence number of ordinal
//! `P - 1` (reading resumes *after* it). When the shard was read to its end
//! and every ordinal is safe, the checkpoint is [`SHARD_END`].
//!
//! A lease that comes back to this process resumes from the last
//! checkpoint, which can lie below records this process already handed to
//! the engine, whose open windows still count them.
//! [`ShardProgress::was_handed`] tells such records apart by sequence
//! number, so the source skips them instead of counting them twice.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Checkpoint value of a shard read to its end and fully processed.
pub const SHARD_END: &str = "SHARD_END";
/// Checkpoint value of a shard never checkpointed: read from the oldest record.
pub const TRIM_HORIZON: &str = "TRIM_HORIZON";

/// Ordinal bookkeeping of one shard.
#[derive(Debug, Default)]
pub struct ShardProgress {
    /// Ordinal the next record gets.
    next_ordinal: u64,
    /// First ordinal of the current lease session; safe positions at or
    /// below it say nothing about this session's records.
    session_start: u64,
    /// Ordinal → sequence number of records read but not yet checkpointed.
    sequences: BTreeMap<u64, String>,
    /// Set once the reader reported the end of a closed shard: the ordinal
    /// after its last record.
    end_ordinal: Option<u64>,
    /// The last checkpoint produced, to skip rewriting the same one.
    last_checkpoint: Option<String>,
    /// The sequence number of the last record an earlier lease session
    /// handed to the engine, until the current session reads past it.
    handed_before: Option<String>,
}

/// Orders two Kinesis sequence numbers (decimal, no leading zeros, up to
/// 129 digits: longer is larger).
fn sequence_order(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl ShardProgress {
    /// Starts a new lease session: earlier sequence numbers are forgotten.
    pub fn start_session(&mut self) {
        if let Some((_, last)) = self.sequences.last_key_value() {
            let newer = match &self.handed_before {
                Some(before) => sequence_order(last, before) == Ordering::Greater,
                None => true,
            };
            if newer {
                self.handed_before = Some(last.clone());
            }
        }
        self.session_start = self.next_ordinal;
        self.sequences.clear();
        self.end_ordinal = None;
        self.last_checkpoint = None;
    }

    /// Whether a record read in this session was already handed to the
    /// engine in an earlier session of this process (its sequence number is
    /// at or below the last one handed then). Records of a shard arrive in
    /// order, so once one is past, the rest of the session is too.
    pub fn was_handed(&mut self, sequence_number: &str) -> bool {
        let Some(before) = &self.handed_before else {
            return false;
        };
        if sequence_order(sequence_number, before) == Ordering::Greater {
            self.handed_before = None;
            return false;
        }
        true
    }

    /// Records a read record's sequence number; returns its ordinal.
    pub fn push(&mut self, sequence_number: String) -> u64 {
        let ordinal = self.next_ordinal;
        self.sequences.insert(ordinal, sequence_number);
        self.next_ordinal += 1;
        ordinal
    }

    /// Marks the shard as read to its end.
    pub fn mark_end(&mut self) {
        self.end_ordinal = Some(self.next_ordinal);
    }

    /// Whether the reader reported the end of the shard.
    pub fn is_ended(&self) -> bool {
        self.end_ordinal.is_some()
    }

    /// The checkpoint to write for safe position `safe` (every ordinal
    /// below it is processed), or `None` when there is nothing new.
    /// `safe = None` means the engine tracks nothing for this shard (no
    /// record was read in this process), which only matters at shard end.
    pub fn checkpoint_for(&mut self, safe: Option<u64>) -> Option<String> {
        let safe = safe.unwrap_or(self.session_start).max(self.session_start);
        let checkpoint = match self.end_ordinal {
            Some(end) if safe >= end => SHARD_END.to_string(),
            _ => {
                if safe == self.session_start {
                    return None;
                }
                let last = safe - 1;
                let sequence = self.sequences.get(&last)?.clone();
                // Entries below `last` can never be needed again.
                self.sequences = self.sequences.split_off(&last);
                sequence
            }
        };
        if self.last_checkpoint.as_deref() == Some(checkpoint.as_str()) {
            return None;
        }
        Some(checkpoint)
    }

    /// Notes that `checkpoint` was written.
    pub fn checkpointed(&mut self, checkpoint: String) {
        self.last_checkpoint = Some(checkpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_position_maps_to_last_processed_sequence() {
        let mut progress = ShardProgress::default();
        progress.start_session();
        for seq in ["100", "200", "300"] {
            progress.push(seq.to_string());
        }
        assert_eq!(progress.checkpoint_for(Some(0)), None);
        assert_eq!(progress.checkpoint_for(Some(2)).as_deref(), Some("200"));
        progress.checkpointed("200".into());
        assert_eq!(progress.checkpoint_for(Some(2)), None);
        assert_eq!(progress.checkpoint_for(Some(3)).as_deref(), Some("300"));
    }

    #[test]
    fn shard_end_only_once_everything_is_safe() {
        let mut progress = ShardProgress::default();
        progress.start_session();
        progress.push("1".into());
        progress.push("2".into());
        progress.mark_end();
        assert_eq!(progress.checkpoint_for(Some(1)).as_deref(), Some("1"));
        assert_eq!(progress.checkpoint_for(Some(2)).as_deref(), Some(SHARD_END));
    }

    #[test]
    fn empty_closed_shard_ends_without_engine_positions() {
        let mut progress = ShardProgress::default();
        progress.start_session();
        progress.mark_end();
        assert_eq!(progress.checkpoint_for(None).as_deref(), Some(SHARD_END));
    }

    #[test]
    fn a_session_skips_what_an_earlier_one_handed() {
        let mut progress = ShardProgress::default();
        progress.start_session();
        for seq in ["98", "99", "100"] {
            assert!(!progress.was_handed(seq));
            progress.push(seq.to_string());
        }
        // The lease comes back; reading resumes from an older checkpoint.
        progress.start_session();
        assert!(progress.was_handed("99"));
        assert!(progress.was_handed("100"));
        assert!(!progress.was_handed("101"));
        progress.push("101".into());
        assert!(!progress.was_handed("102"), "past it for the session");
        // Numbers compare by value, not as text ("99" < "100").
        let mut progress = ShardProgress::default();
        progress.start_session();
        progress.push("100".into());
        progress.start_session();
        assert!(progress.was_handed("99"));
        // A session that handed nothing keeps the earlier mark.
        progress.start_session();
        assert!(progress.was_handed("100"));
    }

    #[test]
    fn new_session_ignores_positions_of_the_old_one() {
        let mut progress = ShardProgress::default();
        progress.start_session();
        progress.push("1".into());
        progress.push("2".into());
        progress.start_session();
        // The engine still reports the old session's position 1.
        assert_eq!(progress.checkpoint_for(Some(1)), None);
        let ordinal = progress.push("3".into());
        assert_eq!(ordinal, 2);
        assert_eq!(progress.checkpoint_for(Some(3)).as_deref(), Some("3"));
    }
}
