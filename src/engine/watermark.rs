//! Event-time watermarks (GUIDE §3).
//!
//! The watermark is the minimum, over active input partitions, of the
//! largest event time seen minus the allowed lateness. A partition that
//! has sent nothing for `idle_timeout` stops holding the watermark back.
//! Events stamped further than `max_skew` ahead of the wall clock are
//! clamped to `now + max_skew` before they count, so one event dated 2099
//! cannot close every window. The watermark never moves backwards.
//!
//! In replay mode the watermark stays at `i64::MIN` until the end of
//! input: replayed archives are often out of order by days, so no record
//! is ever late and windows close when the input ends.

use std::collections::HashMap;
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
}

/// Shared watermark state, updated once per batch by decode workers.
#[derive(Debug)]
pub struct WatermarkTracker {
    config: WatermarkConfig,
    partitions: Mutex<HashMap<PartitionId, PartitionTime>>,
    current: AtomicI64,
}

impl WatermarkTracker {
    /// A tracker with no partition seen yet.
    pub fn new(config: WatermarkConfig) -> Self {
        WatermarkTracker {
            config,
            partitions: Mutex::new(HashMap::new()),
            current: AtomicI64::new(i64::MIN),
        }
    }

    /// The settings.
    pub fn config(&self) -> &WatermarkConfig {
        &self.config
    }

    /// Clamps a future-dated event time; returns `(time, clamped)`.
    #[inline]
    pub fn clamp(&self, event_ms: i64, now_ms: i64) -> (i64, bool) {
        let limit = now_ms.saturating_add(self.config.max_skew_ms);
        if event_ms > limit {
            (limit, true)
        } else {
            (event_ms, false)
        }
    }

    /// Records a batch's largest (clamped) event time for `partition` and
    /// returns the new global watermark.
    pub fn observe(
        &self,
        partition: PartitionId,
        max_event_ms: Option<i64>,
        arrival_ms: i64,
    ) -> i64 {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        let entry = partitions.entry(partition).or_insert(PartitionTime {
            max_event_ms: i64::MIN,
            last_arrival_ms: arrival_ms,
        });
        entry.last_arrival_ms = entry.last_arrival_ms.max(arrival_ms);
        if let Some(t) = max_event_ms {
            entry.max_event_ms = entry.max_event_ms.max(t);
        }
        self.recompute(&partitions, arrival_ms)
    }

    /// Re-evaluates idleness against the wall clock (called on idle ticks).
    pub fn tick(&self, now_ms: i64) -> i64 {
        let partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        self.recompute(&partitions, now_ms)
    }

    /// Forgets a partition (revoked).
    pub fn remove(&self, partition: PartitionId) {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        partitions.remove(&partition);
    }

    fn recompute(&self, partitions: &HashMap<PartitionId, PartitionTime>, now_ms: i64) -> i64 {
        if self.config.replay {
            return i64::MIN;
        }
        let seen = partitions.values().filter(|p| p.max_event_ms != i64::MIN);
        let active_min = seen
            .clone()
            .filter(|p| now_ms - p.last_arrival_ms < self.config.idle_timeout_ms)
            .map(|p| p.max_event_ms)
            .min();
        // When every partition is idle, the freshest one decides.
        let basis = active_min.or_else(|| seen.map(|p| p.max_event_ms).max());
        let Some(basis) = basis else {
            return self.current.load(Ordering::Relaxed);
        };
        let candidate = basis.saturating_sub(self.config.allowed_lateness_ms);
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
        let time = partitions.get(&partition)?;
        (time.max_event_ms != i64::MIN).then(|| {
            time.max_event_ms
                .saturating_sub(self.config.allowed_lateness_ms)
        })
    }

    /// Whether `partition` has sent nothing for `idle_timeout` (so it no
    /// longer holds the global watermark back).
    pub fn is_idle(&self, partition: PartitionId, now_ms: i64) -> bool {
        let partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        partitions
            .get(&partition)
            .is_some_and(|time| now_ms - time.last_arrival_ms >= self.config.idle_timeout_ms)
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

    #[test]
    fn minimum_over_active_partitions_minus_lateness() {
        let wm = tracker();
        assert_eq!(wm.observe(0, Some(1_000), 0), 900);
        assert_eq!(wm.observe(1, Some(500), 0), 900, "never moves backwards");
        assert_eq!(
            wm.observe(0, Some(2_000), 10),
            900,
            "partition 1 holds it at 400"
        );
        assert_eq!(wm.observe(1, Some(1_500), 20), 1_400);
    }

    #[test]
    fn idle_partitions_stop_holding_back() {
        let wm = tracker();
        wm.observe(1, Some(1_000), 0);
        assert_eq!(wm.observe(0, Some(5_000), 0), 900);
        assert_eq!(
            wm.observe(0, Some(6_000), 2_000),
            5_900,
            "partition 1 idle for 2s"
        );
    }

    #[test]
    fn future_events_are_clamped() {
        let wm = tracker();
        assert_eq!(wm.clamp(10_000, 1_000), (1_050, true));
        assert_eq!(wm.clamp(1_000, 1_000), (1_000, false));
    }

    #[test]
    fn replay_never_advances() {
        let wm = WatermarkTracker::new(WatermarkConfig {
            replay: true,
            ..WatermarkConfig::default()
        });
        assert_eq!(wm.observe(0, Some(1_000_000_000), 0), i64::MIN);
    }
}
