//! Event-time watermarks (GUIDE §3).
//!
//! The watermark is the minimum, over active input partitions, of the
//! largest event time seen minus the allowed lateness. A partition that
//! has sent nothing for `idle_timeout` stops holding the watermark back.
//!
//! Partitions of a consumer group come and go, and a newly assigned one may
//! hold a backlog that has not arrived yet. If it counted only once seen,
//! the partitions heard first would push the watermark hours ahead and the
//! backlog would arrive late. So a source announces assignments
//! ([`WatermarkTracker::hold`]); such a *held* partition keeps the
//! watermark where it is until its first records arrive, and it is judged
//! idle only once the source reports it caught up (at its end) *and* it has
//! been quiet for `idle_timeout` (or never had a record). A held partition
//! that is neither caught up nor sending (its broker is unreachable) stops
//! the watermark: windows then wait rather than drop its records as late;
//! eager alerts still fire.
//! Events stamped further than `max_skew` ahead of the wall clock are
//! clamped to `now + max_skew` before they count, so one event dated 2099
//! cannot close every window (nor open one that would hold its input's
//! commit until 2099). The watermark never moves backwards.
//!
//! In replay mode the watermark stays at `i64::MIN` until the end of
//! input: replayed archives are often out of order by days, so no record
//! is ever late and windows close when the input ends. Nor is a time
//! clamped there: with no watermark to protect, a clamp would only move
//! events into the wall clock's window and make the alerts differ from
//! one run to the next.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use crate::source::PartitionId;

/// Watermark settings.
#[derive(Debug, Clone, Copy)]
pub struct WatermarkConfig {
    pub allowed_lateness_ms: i64,
    pub idle_timeout_ms: i64,
    pub max_skew_ms: i64,
    /// Replay mode: never advance before the end of input.
    pub replay: bool,
}

impl Default for WatermarkConfig {
    fn default() -> Self {
        WatermarkConfig {
            allowed_lateness_ms: 15 * 60_000,
            idle_timeout_ms: 60_000,
            max_skew_ms: 5 * 60_000,
            replay: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct PartitionTime {
    max_event_ms: i64,
    last_arrival_ms: i64,
    /// Announced by its source ([`WatermarkTracker::hold`]).
    held: bool,
    /// The source last reported it at its end.
    caught_up: bool,
    /// Its source's allowed lateness (the engine's unless the source sets
    /// its own: flow logs arrive later than CloudTrail).
    lateness_ms: i64,
}

impl PartitionTime {
    /// Announced, and neither an event nor its end heard: it holds the
    /// watermark where it is.
    fn unheard(&self) -> bool {
        self.held && self.max_event_ms == i64::MIN && !self.caught_up
    }

    /// Its largest event time less its lateness; `i64::MIN` before its
    /// first event.
    fn watermark(&self) -> i64 {
        if self.max_event_ms == i64::MIN {
            i64::MIN
        } else {
            self.max_event_ms.saturating_sub(self.lateness_ms)
        }
    }

    /// Whether the partition holds the watermark at `max_event_ms`.
    fn holds(&self, now_ms: i64, idle_timeout_ms: i64) -> bool {
        let quiet = now_ms - self.last_arrival_ms >= idle_timeout_ms;
        if self.held {
            !(self.caught_up && (quiet || self.max_event_ms == i64::MIN))
        } else {
            self.max_event_ms != i64::MIN && !quiet
        }
    }
}

/// What one batch tells the tracker about its partition.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Largest (clamped) event time in the batch, if any event had one.
    pub max_event_ms: Option<i64>,
    /// When the batch's records arrived; `None` for a batch without records.
    pub arrival_ms: Option<i64>,
    /// The source was at the partition's end after the batch.
    pub caught_up: bool,
}

/// The partitions' times, and how many of them are announced and not
/// heard from yet: while any is, the watermark cannot move, and
/// [`WatermarkTracker::recompute`] says so without looking at each (a
/// directory of 20,000 files is 20,000 partitions, all announced first).
#[derive(Debug, Default)]
struct Partitions {
    times: HashMap<PartitionId, PartitionTime>,
    unheard: usize,
}

impl Partitions {
    /// Applies `change` to `partition`'s time (made by `new` if absent),
    /// keeping the count of unheard partitions.
    fn update(
        &mut self,
        partition: PartitionId,
        new: impl FnOnce() -> PartitionTime,
        change: impl FnOnce(&mut PartitionTime),
    ) {
        let time = self.times.entry(partition).or_insert_with(new);
        let before = time.unheard();
        change(time);
        match (before, time.unheard()) {
            (false, true) => self.unheard += 1,
            (true, false) => self.unheard -= 1,
            _ => {}
        }
    }

    fn remove(&mut self, partition: PartitionId) {
        if self
            .times
            .remove(&partition)
            .is_some_and(|time| time.unheard())
        {
            self.unheard -= 1;
        }
    }
}

/// Shared watermark state, updated once per batch by decode workers.
#[derive(Debug)]
pub struct WatermarkTracker {
    config: WatermarkConfig,
    partitions: Mutex<Partitions>,
    /// Every partition its source said exists ([`WatermarkTracker::exists`]).
    known: Mutex<BTreeSet<PartitionId>>,
    current: AtomicI64,
}

impl WatermarkTracker {
    /// A tracker with no partition seen yet.
    pub fn new(config: WatermarkConfig) -> Self {
        WatermarkTracker {
            config,
            partitions: Mutex::new(Partitions::default()),
            known: Mutex::new(BTreeSet::new()),
            current: AtomicI64::new(i64::MIN),
        }
    }

    /// Records that `partition` exists in its source, read here or by
    /// another instance. It does not hold this tracker's watermark (only
    /// what this instance reads can); stage 1 passes the set on to stage 2.
    pub fn exists(&self, partition: PartitionId) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(partition);
    }

    /// Every partition recorded by [`WatermarkTracker::exists`], in order.
    pub fn known(&self) -> Vec<PartitionId> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.iter().copied().collect()
    }

    /// The settings.
    pub fn config(&self) -> &WatermarkConfig {
        &self.config
    }

    /// Clamps a future-dated event time; returns `(time, clamped)`.
    #[inline]
    pub fn clamp(&self, event_ms: i64, now_ms: i64) -> (i64, bool) {
        if self.config.replay {
            return (event_ms, false);
        }
        let limit = now_ms.saturating_add(self.config.max_skew_ms);
        if event_ms > limit {
            (limit, true)
        } else {
            (event_ms, false)
        }
    }

    /// Announces that `partition` is (again) read from a position that may
    /// hold a backlog: it holds the watermark until heard or caught up.
    pub fn hold(&self, partition: PartitionId, now_ms: i64) {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        partitions.update(
            partition,
            || self.new_time(now_ms),
            |entry| {
                entry.held = true;
                entry.caught_up = false;
                entry.last_arrival_ms = entry.last_arrival_ms.max(now_ms);
            },
        );
    }

    /// A partition not heard from yet, last seen at `now_ms`.
    fn new_time(&self, now_ms: i64) -> PartitionTime {
        PartitionTime {
            max_event_ms: i64::MIN,
            last_arrival_ms: now_ms,
            held: false,
            caught_up: false,
            lateness_ms: self.config.allowed_lateness_ms,
        }
    }

    /// Sets the allowed lateness of `partition` (announced with
    /// [`WatermarkTracker::hold`]), when its source has its own.
    pub fn set_lateness(&self, partition: PartitionId, lateness_ms: i64) {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = partitions.times.get_mut(&partition) {
            entry.lateness_ms = lateness_ms;
        }
    }

    /// Records what a batch of `partition` showed and returns the new
    /// global watermark.
    pub fn observe(&self, partition: PartitionId, progress: Progress, now_ms: i64) -> i64 {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        let first_seen = progress.arrival_ms.unwrap_or(now_ms);
        partitions.update(
            partition,
            || self.new_time(first_seen),
            |entry| {
                if let Some(arrival) = progress.arrival_ms {
                    entry.last_arrival_ms = entry.last_arrival_ms.max(arrival);
                }
                if let Some(t) = progress.max_event_ms {
                    entry.max_event_ms = entry.max_event_ms.max(t);
                }
                entry.caught_up = progress.caught_up;
            },
        );
        self.recompute(&partitions, now_ms)
    }

    /// Re-evaluates idleness against the wall clock (called on idle ticks).
    pub fn tick(&self, now_ms: i64) -> i64 {
        let partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        self.recompute(&partitions, now_ms)
    }

    /// Forgets a partition (revoked).
    pub fn remove(&self, partition: PartitionId) {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        partitions.remove(partition);
    }

    fn recompute(&self, partitions: &Partitions, now_ms: i64) -> i64 {
        if self.config.replay {
            return i64::MIN;
        }
        // An unheard partition holds at `i64::MIN`: the minimum below would
        // be that, and nothing would move.
        if partitions.unheard > 0 {
            return self.current.load(Ordering::Relaxed);
        }
        let partitions = &partitions.times;
        let active_min = partitions
            .values()
            .filter(|p| p.holds(now_ms, self.config.idle_timeout_ms))
            .map(PartitionTime::watermark)
            .min();
        // When every partition is idle, the freshest one decides.
        let basis = active_min.or_else(|| partitions.values().map(PartitionTime::watermark).max());
        // A held partition not heard from yet keeps everything where it is.
        let Some(candidate) = basis.filter(|b| *b != i64::MIN) else {
            return self.current.load(Ordering::Relaxed);
        };
        let previous = self.current.fetch_max(candidate, Ordering::Relaxed);
        previous.max(candidate)
    }

    /// The watermark of `partition` alone (its largest event time minus
    /// the allowed lateness); `None` before its first event or in replay.
    pub fn partition_watermark(&self, partition: PartitionId) -> Option<i64> {
        if self.config.replay {
            return None;
        }
        let partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        let time = partitions.times.get(&partition)?;
        (time.max_event_ms != i64::MIN).then(|| time.watermark())
    }

    /// Partitions announced by their source ([`WatermarkTracker::hold`])
    /// that have sent no event yet and still hold the watermark.
    pub fn waiting(&self, now_ms: i64) -> Vec<PartitionId> {
        let partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        partitions
            .times
            .iter()
            .filter(|(_, time)| {
                time.held
                    && time.max_event_ms == i64::MIN
                    && time.holds(now_ms, self.config.idle_timeout_ms)
            })
            .map(|(partition, _)| *partition)
            .collect()
    }

    /// Every partition that no longer holds the global watermark back (see
    /// [`WatermarkTracker::is_idle`]), in order: stage 1 tells stage 2, so
    /// that it leaves them out as this tracker does.
    pub fn idle(&self, now_ms: i64) -> Vec<PartitionId> {
        let partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        let mut idle: Vec<PartitionId> = partitions
            .times
            .iter()
            .filter(|(_, time)| !time.holds(now_ms, self.config.idle_timeout_ms))
            .map(|(partition, _)| *partition)
            .collect();
        idle.sort_unstable();
        idle
    }

    /// Whether `partition` no longer holds the global watermark back: quiet
    /// for `idle_timeout`, and, when its source announced it, caught up.
    pub fn is_idle(&self, partition: PartitionId, now_ms: i64) -> bool {
        let partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        partitions
            .times
            .get(&partition)
            .is_some_and(|time| !time.holds(now_ms, self.config.idle_timeout_ms))
    }

    /// The largest (clamped) event time seen in any partition, if any.
    pub fn max_event_ms(&self) -> Option<i64> {
        let partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        partitions
            .times
            .values()
            .map(|p| p.max_event_ms)
            .filter(|t| *t != i64::MIN)
            .max()
    }

    /// The current global watermark.
    pub fn current(&self) -> i64 {
        self.current.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> WatermarkTracker {
        WatermarkTracker::new(WatermarkConfig {
            allowed_lateness_ms: 100,
            idle_timeout_ms: 1_000,
            max_skew_ms: 50,
            replay: false,
        })
    }

    /// A batch with records of event times up to `max`, arrived at `at`.
    fn seen(wm: &WatermarkTracker, partition: PartitionId, max: i64, at: i64) -> i64 {
        let progress = Progress {
            max_event_ms: Some(max),
            arrival_ms: Some(at),
            caught_up: false,
        };
        wm.observe(partition, progress, at)
    }

    /// An empty batch saying the partition is at its end.
    fn at_end(wm: &WatermarkTracker, partition: PartitionId, now: i64) -> i64 {
        let progress = Progress {
            max_event_ms: None,
            arrival_ms: None,
            caught_up: true,
        };
        wm.observe(partition, progress, now)
    }

    #[test]
    fn minimum_over_active_partitions_minus_lateness() {
        let wm = tracker();
        assert_eq!(seen(&wm, 0, 1_000, 0), 900);
        assert_eq!(seen(&wm, 1, 500, 0), 900, "never moves backwards");
        assert_eq!(seen(&wm, 0, 2_000, 10), 900, "partition 1 holds it at 400");
        assert_eq!(seen(&wm, 1, 1_500, 20), 1_400);
    }

    #[test]
    fn idle_partitions_stop_holding_back() {
        let wm = tracker();
        seen(&wm, 1, 1_000, 0);
        assert_eq!(seen(&wm, 0, 5_000, 0), 900);
        assert_eq!(seen(&wm, 0, 6_000, 2_000), 5_900, "partition 1 idle for 2s");
    }

    #[test]
    fn an_assigned_partition_holds_until_heard() {
        let wm = tracker();
        wm.hold(1, 0);
        assert_eq!(seen(&wm, 0, 5_000, 0), i64::MIN, "partition 1 not heard");
        assert_eq!(
            wm.tick(60_000),
            i64::MIN,
            "not idle while it may hold a backlog"
        );
        assert_eq!(seen(&wm, 1, 3_000, 60_000), 2_900);
    }

    #[test]
    fn an_assigned_partition_at_its_end_stops_holding() {
        let wm = tracker();
        wm.hold(1, 0);
        seen(&wm, 0, 5_000, 0);
        assert_eq!(
            at_end(&wm, 1, 10),
            4_900,
            "an empty partition holds nothing"
        );
    }

    #[test]
    fn a_caught_up_partition_holds_until_quiet() {
        let wm = tracker();
        wm.hold(1, 0);
        seen(&wm, 1, 1_000, 0);
        at_end(&wm, 1, 0);
        assert_eq!(seen(&wm, 0, 5_000, 10), 900, "partition 1 still recent");
        assert_eq!(wm.tick(500), 900);
        assert_eq!(wm.tick(1_000), 4_900, "quiet for the idle timeout");
    }

    #[test]
    fn assigned_partitions_wait_until_heard_or_found_empty() {
        let wm = tracker();
        wm.hold(1, 0);
        wm.hold(2, 0);
        let mut waiting = wm.waiting(0);
        waiting.sort_unstable();
        assert_eq!(waiting, vec![1, 2]);
        seen(&wm, 1, 1_000, 0);
        at_end(&wm, 2, 0);
        assert!(wm.waiting(0).is_empty(), "1 heard, 2 empty at its end");
        assert!(!wm.is_idle(1, 10), "recent");
        assert!(wm.is_idle(2, 10), "empty and caught up");
        assert_eq!(wm.idle(10), vec![2]);
        assert_eq!(wm.idle(1_000), vec![2], "1 is not known to be at its end");
        at_end(&wm, 1, 1_000);
        assert_eq!(wm.idle(1_000), vec![1, 2], "1 at its end and quiet");
    }

    #[test]
    fn a_lagging_partition_never_idles() {
        let wm = tracker();
        wm.hold(1, 0);
        seen(&wm, 1, 1_000, 0);
        seen(&wm, 0, 5_000, 0);
        assert_eq!(wm.tick(1_000_000), 900, "partition 1 is not at its end");
    }

    #[test]
    fn future_events_are_clamped() {
        let wm = tracker();
        assert_eq!(wm.clamp(10_000, 1_000), (1_050, true));
        assert_eq!(wm.clamp(1_000, 1_000), (1_000, false));
    }

    /// A partition whose source allows more lateness (flow logs) holds the
    /// watermark that much further back.
    #[test]
    fn a_partition_with_its_own_lateness_holds_the_watermark_by_it() {
        let wm = tracker();
        wm.hold(1, 0);
        wm.hold(2, 0);
        wm.set_lateness(2, 500);
        seen(&wm, 1, 10_000, 0);
        assert_eq!(seen(&wm, 2, 10_000, 0), 9_500);
        assert_eq!(wm.partition_watermark(1), Some(9_900));
        assert_eq!(wm.partition_watermark(2), Some(9_500));
    }

    /// An announced partition not heard from holds the watermark; once it
    /// is removed, or reports its end without an event, it no longer does
    /// (the count that spares looking at every partition stays right).
    #[test]
    fn an_unheard_partition_holds_until_heard_removed_or_at_its_end() {
        let wm = tracker();
        wm.hold(1, 0);
        wm.hold(2, 0);
        wm.hold(3, 0);
        assert_eq!(seen(&wm, 1, 10_000, 0), i64::MIN);
        wm.remove(2);
        assert_eq!(wm.tick(0), i64::MIN, "3 is still unheard");
        assert_eq!(at_end(&wm, 3, 0), 9_900);
        wm.hold(4, 0);
        assert_eq!(seen(&wm, 1, 20_000, 0), 9_900, "4 is unheard");
        assert_eq!(seen(&wm, 4, 30_000, 0), 19_900);
    }

    #[test]
    fn replay_clamps_nothing() {
        let wm = WatermarkTracker::new(WatermarkConfig {
            replay: true,
            max_skew_ms: 50,
            ..WatermarkConfig::default()
        });
        assert_eq!(wm.clamp(10_000, 1_000), (10_000, false));
    }

    #[test]
    fn replay_never_advances() {
        let wm = WatermarkTracker::new(WatermarkConfig {
            replay: true,
            ..WatermarkConfig::default()
        });
        assert_eq!(seen(&wm, 0, 1_000_000_000, 0), i64::MIN);
    }
}
