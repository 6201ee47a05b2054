//! Engine offsets for Kinesis shards: ordinals mapped to sequence numbers.
//!
//! Kinesis sequence numbers are decimal strings of up to 128 bits, and the
//! engine's offsets are `u64`. So each shard gets a per-process **ordinal**:
//! the n-th record this process hands to the engine from that shard has
//! ordinal `n` (ordinals never go back, not even when a lease is lost and
//! taken again, so the engine's commit tracker sees offsets only grow). A
//! [`ShardProgress`] remembers ordinal → sequence number for the records it
//! has not checkpointed past, so that when the engine says "every ordinal
//! below `P` is safe" the source checkpoints the sequence number of ordinal
//! `P - 1` (reading resumes *after* it). When the shard was read to its end
//! and every ordinal is safe, the checkpoint is [`SHARD_END`].
//!
//! A lease that comes back to this process resumes from the last
//! checkpoint, which can lie below records this process already handed to
//! the engine, whose open windows still count them.
//! [`ShardProgress::was_handed`] tells such records apart by sequence
//! number, so the source skips them instead of counting them twice. They
//! keep their old ordinals, so the session counts them as done only when
//! the engine's safe position passes those ordinals: until then the
//! checkpoint stays where it was, and the shard is not ended. A session
//! whose first record is new (or that reads no record at all) resumed past
//! everything handed before, and ordinals below its first one say nothing
//! about it.

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
    /// First ordinal of the current lease session.
    session_start: u64,
    /// Ordinal → sequence number of records read but not yet checkpointed
    /// past, this session's and earlier ones' (see [`Resume`]).
    sequences: BTreeMap<u64, String>,
    /// Set once the reader reported the end of a closed shard: the ordinal
    /// after its last record.
    end_ordinal: Option<u64>,
    /// The last checkpoint produced, to skip rewriting the same one.
    last_checkpoint: Option<String>,
    /// The sequence number of the last record an earlier lease session
    /// handed to the engine, until the current session reads past it.
    handed_before: Option<String>,
    /// Where the current session resumed, relative to what earlier
    /// sessions handed.
    resume: Resume,
}

/// Where a lease session resumed, relative to the records earlier
/// sessions of this process handed to the engine.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum Resume {
    /// Past all of them: safe positions at or below the session's first
    /// ordinal say nothing about this session's records.
    #[default]
    Fresh,
    /// Records were handed before, and the session has not read its first
    /// record yet, so it may still resume below some of them.
    Unknown,
    /// Below some of them: `first` is the session's first record. Those
    /// records count under their old ordinals, and only the engine's safe
    /// position can say they are done.
    Carried { first: String },
}

/// Orders two Kinesis sequence numbers (decimal, no leading zeros, up to
/// 129 digits: longer is larger).
fn sequence_order(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl ShardProgress {
    /// Starts a new lease session. Earlier sequence numbers are kept until
    /// the session's first record shows whether it resumed below them.
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
        self.end_ordinal = None;
        self.last_checkpoint = None;
        self.resume = match self.handed_before {
            Some(_) => Resume::Unknown,
            None => Resume::Fresh,
        };
    }

    /// Settles where the session resumed, once its first record (or its
    /// end) tells.
    fn settle(&mut self, resume: Resume) {
        if self.resume != Resume::Unknown {
            return;
        }
        if resume == Resume::Fresh {
            // Every earlier record lies at or below the checkpoint the
            // session resumed from: none of them can be needed again.
            self.sequences = self.sequences.split_off(&self.session_start);
        }
        self.resume = resume;
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
            self.settle(Resume::Fresh);
            self.handed_before = None;
            return false;
        }
        self.settle(Resume::Carried {
            first: sequence_number.to_string(),
        });
        true
    }

    /// Records a read record's sequence number; returns its ordinal.
    pub fn push(&mut self, sequence_number: String) -> u64 {
        // A session whose first record is new resumed past the old ones.
        self.settle(Resume::Fresh);
        let ordinal = self.next_ordinal;
        self.sequences.insert(ordinal, sequence_number);
        self.next_ordinal += 1;
        ordinal
    }

    /// Marks the shard as read to its end.
    pub fn mark_end(&mut self) {
        // No record at all after the checkpoint resumed from: everything
        // handed before lies at or below it.
        self.settle(Resume::Fresh);
        self.end_ordinal = Some(self.next_ordinal);
    }

    /// Whether the reader reported the end of the shard.
    pub fn is_ended(&self) -> bool {
        self.end_ordinal.is_some()
    }

    /// The checkpoint to write for safe position `safe` (every ordinal
    /// below it is processed), or `None` when there is nothing new.
    /// `safe = None` means the engine tracks nothing for this shard (no
    /// record was read in this process, or the tracker is frozen), which
    /// only matters at shard end, and only when the session carries no
    /// record handed before.
    pub fn checkpoint_for(&mut self, safe: Option<u64>) -> Option<String> {
        let safe = match &self.resume {
            Resume::Fresh => safe.unwrap_or(self.session_start).max(self.session_start),
            // The carried records are done only when the engine says so.
            Resume::Carried { .. } => safe?,
            // Whether any are carried is not known yet.
            Resume::Unknown => return None,
        };
        let checkpoint = match self.end_ordinal {
            Some(end) if safe >= end => SHARD_END.to_string(),
            _ => {
                if self.resume == Resume::Fresh && safe == self.session_start {
                    return None;
                }
                let last = safe.checked_sub(1)?;
                let sequence = self.sequences.get(&last)?.clone();
                if let Resume::Carried { first } = &self.resume {
                    // At or below the checkpoint the session resumed
                    // from: writing it would move the checkpoint back.
                    if sequence_order(&sequence, first) == Ordering::Less {
                        return None;
                    }
                }
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

    /// Session 1 hands r1..r10 and checkpoints r3 (windows still hold
    /// ordinal 3). The lease comes back at r3: the new session skips
    /// r4..r10 as handed and finds the shard's end at once.
    fn resumed_below_what_was_handed() -> ShardProgress {
        let mut progress = ShardProgress::default();
        progress.start_session();
        for seq in 1..=10 {
            assert!(!progress.was_handed(&seq.to_string()));
            progress.push(seq.to_string());
        }
        assert_eq!(progress.checkpoint_for(Some(3)).as_deref(), Some("3"));
        progress.checkpointed("3".into());
        progress.start_session();
        for seq in 4..=10 {
            assert!(progress.was_handed(&seq.to_string()));
        }
        progress.mark_end();
        progress
    }

    #[test]
    fn carried_records_keep_the_shard_open_until_the_engine_releases_them() {
        let mut progress = resumed_below_what_was_handed();
        // Ordinal 3 (r4) is still held: r4..r10 are not done.
        assert_eq!(progress.checkpoint_for(Some(3)), None);
        // Released up to r6 (ordinal 5): the checkpoint moves there.
        assert_eq!(progress.checkpoint_for(Some(6)).as_deref(), Some("6"));
        progress.checkpointed("6".into());
        assert_eq!(progress.checkpoint_for(Some(9)).as_deref(), Some("9"));
        assert_eq!(
            progress.checkpoint_for(Some(10)).as_deref(),
            Some(SHARD_END)
        );
    }

    #[test]
    fn a_frozen_tracker_never_ends_a_shard_with_carried_records() {
        let mut progress = resumed_below_what_was_handed();
        assert_eq!(progress.checkpoint_for(None), None);
        // Nor does it move past r3 once new records follow.
        let mut progress = ShardProgress::default();
        progress.start_session();
        for seq in 1..=10 {
            progress.push(seq.to_string());
        }
        progress.start_session();
        assert!(progress.was_handed("4"));
        assert!(!progress.was_handed("11"));
        progress.push("11".into());
        assert_eq!(progress.checkpoint_for(None), None);
        assert_eq!(progress.checkpoint_for(Some(3)), None, "r4 still held");
    }

    #[test]
    fn a_session_resumed_past_everything_handed_ends_at_once() {
        let mut progress = ShardProgress::default();
        progress.start_session();
        progress.push("1".into());
        progress.push("2".into());
        assert_eq!(progress.checkpoint_for(Some(2)).as_deref(), Some("2"));
        // The lease comes back at r2 and nothing follows it.
        progress.start_session();
        progress.mark_end();
        // An old window still holding ordinal 0 does not matter: r1 lies
        // at or below the checkpoint, which a replay starts after.
        assert_eq!(progress.checkpoint_for(Some(0)).as_deref(), Some(SHARD_END));
        assert_eq!(progress.checkpoint_for(None).as_deref(), Some(SHARD_END));
    }
}
