//! Commit tracking: which input positions are safe to commit.
//!
//! Implements the delivery contract of [`crate::source`]. Three kinds of
//! *holds* keep a partition's commit position back:
//!
//! 1. **In-flight batches.** A [`BatchToken`] travels with every piece of a
//!    raw batch; the batch counts as processed when the last piece drops.
//! 2. **Open windows.** Each shard publishes, per partition, the smallest
//!    offset that fed a window it still holds ([`CommitTracker::publish_shard`]).
//! 3. **Unacknowledged alerts.** An alert holds its window's first offsets
//!    from emission until the sink acknowledges it ([`AlertHold`]); so do
//!    a stage-1 flush and a batch of dead letters.
//! 4. **Marks.** Stage 2 keeps the offset of the last watermark mark of
//!    each stage-1 producer held ([`CommitTracker::hold_mark`]) until a
//!    newer mark replaces it: long-lived, unlike an acknowledgement.
//!
//! The safe position of a partition is the minimum over all of them, which
//! is `min(first position feeding an open window, first position whose
//! alert is unacknowledged, first unprocessed position, last mark)`.
//!
//! **Assignments.** A revoked partition's state is
//! [forgotten](CommitTracker::forget_partition), but the direct path keeps
//! the windows it fed, and their alerts hold it again. A state is named a
//! safe position only once its assignment has read a batch
//! ([`CommitTracker::begin_batch`]): holds alone say what must not be
//! passed, not how far reading got. And no position below the offset the
//! assignment started reading at ([`CommitTracker::assigned_at`]) is named:
//! the group committed up to there already, and windows kept from an
//! earlier assignment may hold less.
//!
//! **Frozen.** When an output gives up (its reader is gone, or it is still
//! down when the shutdown deadline passes), the alerts and dead letters it
//! held are dropped undelivered, and dropping them releases their holds.
//! So the engine first [freezes](CommitTracker::freeze) the tracker: from
//! then on it names no safe position, nothing more is committed, and a
//! restart replays the lost output from the last commit.
//!
//! **A panic freezes every tracker** once [`freeze_on_panic`] is installed
//! (the binary does, first thing): a thread that panics drops the batches,
//! matches and alerts in its hands while it unwinds, and their holds would
//! release as if they were done. The hook runs before the unwinding starts.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::source::PartitionId;

/// How often [`CommitTracker::wait_for_alert_acks`] looks again.
const ACK_POLL: Duration = Duration::from_millis(5);

/// Set by the hook of [`freeze_on_panic`]: some thread panicked.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Installs a panic hook, run before the panic's own output, after which
/// no tracker of this process names a safe position (module docs). For
/// binaries: the hook is process-wide.
pub fn freeze_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        previous(info);
    }));
}

/// `(partition, offset)` pairs, usually one.
pub type Holds = smallvec::SmallVec<[(PartitionId, u64); 1]>;

#[derive(Debug, Default)]
struct PartitionState {
    /// Which incarnation of the partition's state this is: a revoked
    /// partition's state is dropped, and a token or hold taken before
    /// releases only in the incarnation it was counted in (a replay after
    /// the partition comes back starts at the same offsets, so releasing
    /// by offset alone would free the new incarnation's holds).
    epoch: u64,
    /// First offset of every batch read but not yet processed.
    in_flight: BTreeMap<u64, u32>,
    /// Next offset after the last record read; `None` until this
    /// incarnation reads a batch (a hold alone creates it when a window
    /// kept from a revoked partition fires), and no position is safe then.
    read_end: Option<u64>,
    /// The offset this assignment started reading at (first call wins).
    assigned_at: Option<u64>,
    /// Multiset of offsets held by unacknowledged alerts.
    alert_holds: BTreeMap<u64, u32>,
    /// Multiset of offsets held by watermark marks (stage 2).
    mark_holds: BTreeMap<u64, u32>,
}

#[derive(Debug, Default)]
struct Inner {
    partitions: HashMap<PartitionId, PartitionState>,
    /// Per shard: partition -> smallest offset still needed by a window.
    shard_holds: Vec<HashMap<PartitionId, u64>>,
    /// Every partition forgotten (revoked), in order; append-only, so each
    /// reader keeps its own cursor ([`CommitTracker::revocations_since`]).
    revocations: Vec<PartitionId>,
    /// Per partition: how many times it was forgotten. Work read under an
    /// older generation belongs to a previous assignment.
    generations: HashMap<PartitionId, u64>,
    /// Epoch of the next partition state created.
    next_epoch: u64,
    /// Set by [`CommitTracker::freeze`]: no position is safe any more.
    frozen: bool,
}

impl Inner {
    /// `partition`'s state, created (with a fresh epoch) when missing.
    fn state(&mut self, partition: PartitionId) -> &mut PartitionState {
        let next_epoch = &mut self.next_epoch;
        self.partitions.entry(partition).or_insert_with(|| {
            *next_epoch += 1;
            PartitionState {
                epoch: *next_epoch,
                ..PartitionState::default()
            }
        })
    }

    /// `partition`'s state if it is still incarnation `epoch`.
    fn state_of(&mut self, partition: PartitionId, epoch: u64) -> Option<&mut PartitionState> {
        self.partitions
            .get_mut(&partition)
            .filter(|state| state.epoch == epoch)
    }
}

/// Shared commit bookkeeping for one pipeline.
#[derive(Debug, Clone, Default)]
pub struct CommitTracker {
    inner: Arc<Mutex<Inner>>,
}

impl CommitTracker {
    /// A tracker for `shards` shard workers.
    pub fn new(shards: usize) -> Self {
        let inner = Inner {
            partitions: HashMap::new(),
            shard_holds: vec![HashMap::new(); shards],
            revocations: Vec::new(),
            generations: HashMap::new(),
            next_epoch: 0,
            frozen: false,
        };
        CommitTracker {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a batch read from `partition` covering `[first, end)`.
    /// Clones of the token travel with every piece of the batch.
    pub fn begin_batch(&self, partition: PartitionId, first: u64, end: u64) -> BatchToken {
        let mut inner = self.lock();
        let state = inner.state(partition);
        acquire(&mut state.in_flight, first);
        state.read_end = Some(state.read_end.map_or(end, |read| read.max(end)));
        let epoch = state.epoch;
        BatchToken {
            _inner: Arc::new(TokenInner {
                tracker: self.clone(),
                partition,
                epoch,
                first,
            }),
        }
    }

    /// Notes that the current assignment of `partition` started reading at
    /// `offset` (the group's committed offset). No position below it is
    /// named safe from then on: the group has committed that far already,
    /// and windows kept from an earlier assignment may hold less. The first
    /// call of an assignment counts; [`CommitTracker::forget_partition`]
    /// ends the assignment.
    pub fn assigned_at(&self, partition: PartitionId, offset: u64) {
        let mut inner = self.lock();
        inner.state(partition).assigned_at.get_or_insert(offset);
    }

    /// Replaces shard `shard`'s published window holds.
    pub fn publish_shard(&self, shard: usize, holds: HashMap<PartitionId, u64>) {
        let mut inner = self.lock();
        if let Some(slot) = inner.shard_holds.get_mut(shard) {
            *slot = holds;
        }
    }

    /// Holds `holds` until the returned guard is acknowledged (dropped).
    pub fn hold_alert(&self, holds: &Holds) -> AlertHold {
        self.hold(holds, HoldKind::Ack)
    }

    /// Holds a watermark mark's offset until the returned guard is dropped
    /// (when a newer mark replaces it). Unlike [`CommitTracker::hold_alert`],
    /// nothing waits for it to be acknowledged.
    pub fn hold_mark(&self, holds: &Holds) -> AlertHold {
        self.hold(holds, HoldKind::Mark)
    }

    fn hold(&self, holds: &Holds, kind: HoldKind) -> AlertHold {
        let mut inner = self.lock();
        let mut epochs = smallvec::SmallVec::with_capacity(holds.len());
        for (partition, offset) in holds {
            let state = inner.state(*partition);
            acquire(state.holds_mut(kind), *offset);
            epochs.push(state.epoch);
        }
        AlertHold {
            tracker: self.clone(),
            holds: holds.clone(),
            epochs,
            kind,
        }
    }

    /// Stops every commit from now on (module docs, "Frozen"). Call it
    /// before dropping output that was not delivered: a position computed
    /// after it is `None`, one computed before still had the holds.
    pub fn freeze(&self) {
        self.lock().frozen = true;
    }

    /// The position up to which `partition` may be committed (`None` for a
    /// partition not read since it was last assigned, and for every
    /// partition once frozen or after a panic, see [`freeze_on_panic`]).
    pub fn safe_position(&self, partition: PartitionId) -> Option<u64> {
        let inner = self.lock();
        // Read under the lock: a hold a panicking thread releases is
        // released after its hook ran, so whoever sees it sees the flag.
        if inner.frozen || PANICKED.load(Ordering::SeqCst) {
            return None;
        }
        let state = inner.partitions.get(&partition)?;
        // Holds alone do not say how far reading got: with a read end of 0,
        // a revocation would commit offset 0 and move the group back.
        let mut safe = state.read_end?;
        if let Some((first, _)) = state.in_flight.first_key_value() {
            safe = safe.min(*first);
        }
        for holds in [&state.alert_holds, &state.mark_holds] {
            if let Some((first, _)) = holds.first_key_value() {
                safe = safe.min(*first);
            }
        }
        for shard in &inner.shard_holds {
            if let Some(offset) = shard.get(&partition) {
                safe = safe.min(*offset);
            }
        }
        // Committing the assignment's own start moves nothing.
        Some(state.assigned_at.map_or(safe, |start| safe.max(start)))
    }

    /// Safe positions of every known partition.
    pub fn safe_positions(&self) -> Vec<(PartitionId, u64)> {
        let partitions: Vec<PartitionId> = self.lock().partitions.keys().copied().collect();
        let mut positions: Vec<(PartitionId, u64)> = partitions
            .into_iter()
            .filter_map(|p| self.safe_position(p).map(|s| (p, s)))
            .collect();
        positions.sort_unstable();
        positions
    }

    /// Whether nothing is in flight and no alert is unacknowledged.
    pub fn is_drained(&self) -> bool {
        let inner = self.lock();
        inner
            .partitions
            .values()
            .all(|s| s.in_flight.is_empty() && s.alert_holds.is_empty() && s.mark_holds.is_empty())
    }

    /// Waits, at most `limit`, until no unacknowledged alert (stage-1
    /// flush, dead letters) holds any of `partitions`; true when none does.
    /// Marks do not count: they are not waiting for an acknowledgement.
    ///
    /// A revocation waits here before it computes the positions to commit:
    /// a flush the sink already took is then in its topic before the
    /// partition's next owner starts, and the commit passes it, so the next
    /// owner does not replay it (see `engine::partial`, "Replays").
    pub fn wait_for_alert_acks(&self, partitions: &[PartitionId], limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let held = {
                let inner = self.lock();
                partitions.iter().any(|partition| {
                    inner
                        .partitions
                        .get(partition)
                        .is_some_and(|state| !state.alert_holds.is_empty())
                })
            };
            if !held {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(ACK_POLL);
        }
    }

    /// Forgets a partition (revoked from this process). The shards'
    /// published window holds on it stay: the direct path keeps the windows
    /// it fed, and a shard publishes again only when its holds change. If
    /// the partition comes back, those windows still count its records and
    /// must hold the commit (stage 2 drops such windows, and then publishes).
    /// While it is away, nothing is committed for it anyway.
    pub fn forget_partition(&self, partition: PartitionId) {
        let mut inner = self.lock();
        inner.partitions.remove(&partition);
        inner.revocations.push(partition);
        *inner.generations.entry(partition).or_insert(0) += 1;
    }

    /// The assignment generation of `partition` (bumped by every
    /// [`CommitTracker::forget_partition`]).
    pub fn generation(&self, partition: PartitionId) -> u64 {
        self.lock()
            .generations
            .get(&partition)
            .copied()
            .unwrap_or(0)
    }

    /// Partitions forgotten since `cursor` (an index into the revocation
    /// log); advances `cursor`. Cheap when nothing was revoked.
    pub fn revocations_since(&self, cursor: &mut usize) -> Vec<PartitionId> {
        let inner = self.lock();
        let revoked = inner
            .revocations
            .get(*cursor..)
            .map(<[PartitionId]>::to_vec)
            .unwrap_or_default();
        *cursor = inner.revocations.len();
        revoked
    }
}

/// Counts one more hold of `offset` in the multiset `map`.
fn acquire(map: &mut BTreeMap<u64, u32>, offset: u64) {
    *map.entry(offset).or_insert(0) += 1;
}

/// Counts one hold of `offset` fewer in the multiset `map`.
fn release(map: &mut BTreeMap<u64, u32>, offset: u64) {
    if let Some(count) = map.get_mut(&offset) {
        *count -= 1;
        if *count == 0 {
            map.remove(&offset);
        }
    }
}

#[derive(Debug)]
struct TokenInner {
    tracker: CommitTracker,
    partition: PartitionId,
    epoch: u64,
    first: u64,
}

impl Drop for TokenInner {
    fn drop(&mut self) {
        let mut inner = self.tracker.lock();
        if let Some(state) = inner.state_of(self.partition, self.epoch) {
            release(&mut state.in_flight, self.first);
        }
    }
}

/// Marks a raw batch in flight until every clone is dropped.
#[derive(Debug, Clone)]
pub struct BatchToken {
    _inner: Arc<TokenInner>,
}

/// What a hold waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldKind {
    /// A sink's acknowledgement (alerts, flushes, dead letters).
    Ack,
    /// A newer watermark mark.
    Mark,
}

impl PartitionState {
    fn holds_mut(&mut self, kind: HoldKind) -> &mut BTreeMap<u64, u32> {
        match kind {
            HoldKind::Ack => &mut self.alert_holds,
            HoldKind::Mark => &mut self.mark_holds,
        }
    }
}

/// Keeps an alert's offsets held until dropped (= acknowledged).
#[derive(Debug)]
pub struct AlertHold {
    tracker: CommitTracker,
    holds: Holds,
    /// The partition state incarnation each hold was counted in.
    epochs: smallvec::SmallVec<[u64; 1]>,
    kind: HoldKind,
}

impl Drop for AlertHold {
    fn drop(&mut self) {
        let mut inner = self.tracker.lock();
        for ((partition, offset), epoch) in self.holds.iter().zip(&self.epochs) {
            if let Some(state) = inner.state_of(*partition, *epoch) {
                release(state.holds_mut(self.kind), *offset);
            }
        }
    }
}

/// The input offsets one shard's state still needs, counted per offset
/// (several aggregates may need the same one). After each batch a shard
/// publishes the first held offset of each partition
/// ([`ShardHolds::publish`]); the tracker commits below none of them.
#[derive(Debug, Default)]
pub struct ShardHolds(HashMap<PartitionId, BTreeMap<u64, u32>>);

impl ShardHolds {
    /// Holds `offset` of `partition` once more.
    pub fn hold(&mut self, partition: PartitionId, offset: u64) {
        acquire(self.0.entry(partition).or_default(), offset);
    }

    /// Releases one hold of `offset` of `partition`.
    pub fn unhold(&mut self, partition: PartitionId, offset: u64) {
        if let Some(offsets) = self.0.get_mut(&partition) {
            release(offsets, offset);
        }
    }

    /// Drops every hold of `partition` (its assignment was revoked).
    pub fn forget(&mut self, partition: PartitionId) {
        self.0.remove(&partition);
    }

    /// Drops every hold.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Publishes the first held offset of each partition as shard
    /// `shard`'s holds.
    pub fn publish(&self, tracker: &CommitTracker, shard: usize) {
        let firsts = self
            .0
            .iter()
            .filter_map(|(p, offsets)| offsets.first_key_value().map(|(o, _)| (*p, *o)))
            .collect();
        tracker.publish_shard(shard, firsts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_batches_hold_their_first_offset() {
        let tracker = CommitTracker::new(1);
        let first = tracker.begin_batch(7, 0, 10);
        let second = tracker.begin_batch(7, 10, 20);
        assert_eq!(tracker.safe_position(7), Some(0));
        let piece = first.clone();
        drop(first);
        assert_eq!(
            tracker.safe_position(7),
            Some(0),
            "a piece is still in flight"
        );
        drop(piece);
        assert_eq!(tracker.safe_position(7), Some(10));
        drop(second);
        assert_eq!(tracker.safe_position(7), Some(20));
        assert!(tracker.is_drained());
    }

    #[test]
    fn windows_and_alerts_hold_positions() {
        let tracker = CommitTracker::new(2);
        drop(tracker.begin_batch(1, 0, 100));
        tracker.publish_shard(1, HashMap::from([(1, 40)]));
        assert_eq!(tracker.safe_position(1), Some(40));
        let hold = tracker.hold_alert(&Holds::from_slice(&[(1, 25)]));
        assert_eq!(tracker.safe_position(1), Some(25));
        tracker.publish_shard(1, HashMap::new());
        assert_eq!(
            tracker.safe_position(1),
            Some(25),
            "alert still unacknowledged"
        );
        drop(hold);
        assert_eq!(tracker.safe_position(1), Some(100));
        assert_eq!(tracker.safe_positions(), vec![(1, 100)]);
    }

    #[test]
    fn a_frozen_tracker_commits_nothing_even_when_holds_drop() {
        let tracker = CommitTracker::new(1);
        drop(tracker.begin_batch(1, 0, 100));
        let hold = tracker.hold_alert(&Holds::from_slice(&[(1, 25)]));
        assert_eq!(tracker.safe_positions(), vec![(1, 25)]);
        tracker.freeze();
        // The undelivered alert is dropped: without the freeze, 100.
        drop(hold);
        assert_eq!(tracker.safe_position(1), None);
        assert!(tracker.safe_positions().is_empty());
        drop(tracker.begin_batch(1, 100, 200));
        assert!(tracker.safe_positions().is_empty(), "stays frozen");
    }

    #[test]
    fn a_shard_publishes_the_first_offset_it_still_holds() {
        let tracker = CommitTracker::new(1);
        drop(tracker.begin_batch(1, 0, 100));
        drop(tracker.begin_batch(2, 0, 100));
        let mut holds = ShardHolds::default();
        holds.hold(1, 30);
        holds.hold(1, 30);
        holds.hold(1, 50);
        holds.hold(2, 10);
        holds.publish(&tracker, 0);
        assert_eq!(tracker.safe_position(1), Some(30));
        assert_eq!(tracker.safe_position(2), Some(10));
        holds.unhold(1, 30);
        holds.publish(&tracker, 0);
        assert_eq!(tracker.safe_position(1), Some(30), "30 is held twice");
        holds.unhold(1, 30);
        holds.forget(2);
        holds.publish(&tracker, 0);
        assert_eq!(tracker.safe_position(1), Some(50));
        assert_eq!(tracker.safe_position(2), Some(100));
        holds.clear();
        holds.publish(&tracker, 0);
        assert_eq!(tracker.safe_position(1), Some(100));
    }

    #[test]
    fn a_revocation_waits_for_the_holds_of_its_partitions_only() {
        let tracker = CommitTracker::new(1);
        let hold = tracker.hold_alert(&Holds::from_slice(&[(1, 10)]));
        let other = tracker.hold_alert(&Holds::from_slice(&[(2, 10)]));
        let short = Duration::from_millis(20);
        assert!(!tracker.wait_for_alert_acks(&[1], short), "1 is held");
        assert!(tracker.wait_for_alert_acks(&[3], short), "3 never was");
        let acker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(hold);
        });
        assert!(
            tracker.wait_for_alert_acks(&[1], Duration::from_secs(10)),
            "the acknowledgement ends the wait"
        );
        acker.join().expect("acker");
        assert!(!tracker.wait_for_alert_acks(&[1, 2], short), "2 is held");
        drop(other);
        assert!(tracker.wait_for_alert_acks(&[1, 2], short));
        // A mark holds the position but is not waited for.
        drop(tracker.begin_batch(4, 0, 50));
        let mark = tracker.hold_mark(&Holds::from_slice(&[(4, 30)]));
        assert_eq!(tracker.safe_position(4), Some(30));
        assert!(tracker.wait_for_alert_acks(&[4], short));
        drop(mark);
        assert_eq!(tracker.safe_position(4), Some(50));
    }

    #[test]
    fn a_token_or_hold_of_a_revoked_assignment_does_not_release_the_replay() {
        let tracker = CommitTracker::new(1);
        // Read [10, 20) and hold 10 for a flush; then the partition is
        // revoked and comes back, and the replay reads [10, 30) again.
        let old_batch = tracker.begin_batch(3, 10, 20);
        let old_hold = tracker.hold_alert(&Holds::from_slice(&[(3, 10)]));
        tracker.forget_partition(3);
        let replay = tracker.begin_batch(3, 10, 30);
        let replay_hold = tracker.hold_alert(&Holds::from_slice(&[(3, 10)]));
        drop(old_batch);
        drop(old_hold);
        assert_eq!(
            tracker.safe_position(3),
            Some(10),
            "the replay's batch and hold still keep offset 10"
        );
        drop(replay);
        assert_eq!(tracker.safe_position(3), Some(10), "the replay's hold");
        drop(replay_hold);
        assert_eq!(tracker.safe_position(3), Some(30));
    }

    #[test]
    fn a_hold_on_a_forgotten_partition_names_no_position() {
        let tracker = CommitTracker::new(1);
        drop(tracker.begin_batch(1, 0, 100));
        tracker.forget_partition(1);
        // A window the direct path kept from the revoked partition fires.
        let hold = tracker.hold_alert(&Holds::from_slice(&[(1, 40)]));
        assert_eq!(tracker.safe_position(1), None, "nothing read since");
        drop(hold);
        assert_eq!(tracker.safe_position(1), None, "acknowledged");
        assert!(tracker.safe_positions().is_empty());
        // The partition comes back at 40; the replay skips up to 100,
        // handed before, while another kept window's alert is in flight.
        tracker.assigned_at(1, 40);
        let hold = tracker.hold_alert(&Holds::from_slice(&[(1, 40)]));
        assert_eq!(tracker.safe_position(1), None, "everything skipped");
        drop(tracker.begin_batch(1, 101, 150));
        assert_eq!(tracker.safe_position(1), Some(40), "the alert still holds");
        drop(hold);
        assert_eq!(tracker.safe_position(1), Some(150));
    }

    #[test]
    fn a_window_kept_from_an_earlier_assignment_still_holds_when_it_returns() {
        let tracker = CommitTracker::new(1);
        drop(tracker.begin_batch(1, 0, 100));
        // A shard's window holds 40; the partition is revoked (committed at
        // 40), and the direct path keeps the window.
        tracker.publish_shard(0, HashMap::from([(1, 40)]));
        assert_eq!(tracker.safe_position(1), Some(40));
        tracker.forget_partition(1);
        // It comes back at 40; the replay skips what was handed before and
        // reads on. The shard has not published since.
        tracker.assigned_at(1, 40);
        drop(tracker.begin_batch(1, 101, 150));
        assert_eq!(tracker.safe_position(1), Some(40), "the kept window");
        tracker.publish_shard(0, HashMap::new());
        assert_eq!(tracker.safe_position(1), Some(150));
    }

    #[test]
    fn no_position_below_where_the_assignment_started_is_named() {
        let tracker = CommitTracker::new(1);
        drop(tracker.begin_batch(1, 0, 100));
        tracker.publish_shard(0, HashMap::from([(1, 40)]));
        assert_eq!(tracker.safe_position(1), Some(40));
        tracker.forget_partition(1);
        // The window is kept and published again. Another owner commits
        // 200; the partition comes back to this process there.
        tracker.publish_shard(0, HashMap::from([(1, 40)]));
        tracker.assigned_at(1, 200);
        let batch = tracker.begin_batch(1, 200, 250);
        assert_eq!(tracker.safe_position(1), Some(200));
        drop(batch);
        assert_eq!(tracker.safe_position(1), Some(200), "the kept window");
        tracker.assigned_at(1, 220);
        assert_eq!(tracker.safe_position(1), Some(200), "the first call counts");
        tracker.publish_shard(0, HashMap::new());
        assert_eq!(tracker.safe_position(1), Some(250));
        // A new assignment starts afresh.
        tracker.forget_partition(1);
        tracker.assigned_at(1, 180);
        drop(tracker.begin_batch(1, 180, 190));
        assert_eq!(tracker.safe_position(1), Some(190));
    }
}
