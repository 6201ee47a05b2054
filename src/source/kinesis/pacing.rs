//! Per-shard read pacing: keeps a shard reader inside the Kinesis read
//! limits instead of waiting to be throttled.
//!
//! AWS allows each shard 5 GetRecords calls a second and 2 MB a second of
//! returned data. One call may return up to 10 MB; the bytes beyond the
//! per-second budget are then owed, and calls made before the debt is paid
//! off fail with `ProvisionedThroughputExceededException` (the shard is
//! throttled for up to 5 seconds). [`ReadPacer`] keeps that debt: after a
//! call that returned `bytes`, the next call is due no sooner than
//!
//! - 200 ms after the previous call (5 calls/s), or `poll_interval` when
//!   the shard is caught up, and
//! - the moment the returned bytes are paid off at 2 MB/s.
//!
//! Pure arithmetic on instants given by the caller, so it is tested
//! without sleeping. Throttling that still happens (other consumers of the
//! same shard share the limits) is handled by the reader's backoff.

use std::time::{Duration, Instant};

/// AWS allows 5 GetRecords calls per second per shard.
pub const MIN_CALL_SPACING: Duration = Duration::from_millis(200);
/// AWS allows 2 MB per second of GetRecords data per shard.
pub const READ_BYTES_PER_SECOND: u64 = 2 * 1024 * 1024;

/// When the next GetRecords call of one shard may go out.
#[derive(Debug, Clone)]
pub struct ReadPacer {
    bytes_per_second: u64,
    /// The instant the bytes read so far are paid off.
    paid_off_at: Option<Instant>,
}

impl Default for ReadPacer {
    fn default() -> Self {
        ReadPacer::new(READ_BYTES_PER_SECOND)
    }
}

impl ReadPacer {
    /// A pacer for a per-shard read budget of `bytes_per_second` (clamped
    /// to at least 1).
    pub fn new(bytes_per_second: u64) -> ReadPacer {
        ReadPacer {
            bytes_per_second: bytes_per_second.max(1),
            paid_off_at: None,
        }
    }

    /// Records a call made at `called_at` that returned `bytes` of record
    /// data, and returns the earliest instant of the next call. `idle_wait`
    /// is the spacing wanted when the shard is caught up (at least
    /// [`MIN_CALL_SPACING`] is kept either way).
    pub fn next_call(
        &mut self,
        called_at: Instant,
        bytes: u64,
        caught_up: bool,
        idle_wait: Duration,
    ) -> Instant {
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
        let debt_from = match self.paid_off_at {
            Some(at) if at > called_at => at,
            _ => called_at,
        };
        let paid_off = debt_from + cost;
        self.paid_off_at = Some(paid_off);
        let spacing = if caught_up {
            idle_wait.max(MIN_CALL_SPACING)
        } else {
            MIN_CALL_SPACING
        };
        paid_off.max(called_at + spacing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1024 * 1024;

    #[test]
    fn small_reads_are_spaced_by_the_call_limit() {
        let mut pacer = ReadPacer::default();
        let t0 = Instant::now();
        let next = pacer.next_call(t0, 10_000, false, Duration::from_secs(1));
        assert_eq!(next, t0 + MIN_CALL_SPACING);
    }

    #[test]
    fn a_caught_up_shard_waits_for_the_poll_interval() {
        let mut pacer = ReadPacer::default();
        let t0 = Instant::now();
        let next = pacer.next_call(t0, 0, true, Duration::from_secs(1));
        assert_eq!(next, t0 + Duration::from_secs(1));
        // A poll interval below the call limit is raised to it.
        let next = pacer.next_call(t0, 0, true, Duration::from_millis(10));
        assert_eq!(next, t0 + MIN_CALL_SPACING);
    }

    #[test]
    fn a_ten_megabyte_read_is_paid_off_at_two_megabytes_a_second() {
        let mut pacer = ReadPacer::default();
        let t0 = Instant::now();
        let next = pacer.next_call(t0, 10 * MB, false, Duration::from_secs(1));
        assert_eq!(next, t0 + Duration::from_secs(5));
    }

    #[test]
    fn debt_accumulates_over_back_to_back_reads() {
        // Reads of 1 MB every 200 ms would be 5 MB/s: the pacer stretches
        // them to 2 MB/s, so 10 reads take 5 seconds of debt.
        let mut pacer = ReadPacer::default();
        let t0 = Instant::now();
        let mut at = t0;
        for _ in 0..10 {
            at = pacer.next_call(at, MB, false, Duration::from_secs(1));
        }
        assert_eq!(at, t0 + Duration::from_secs(5));
        let sustained = (10 * MB) as f64 / (at - t0).as_secs_f64();
        assert!(sustained <= READ_BYTES_PER_SECOND as f64 + 1.0);
    }

    #[test]
    fn debt_paid_off_while_idle_is_not_carried_forward() {
        let mut pacer = ReadPacer::default();
        let t0 = Instant::now();
        pacer.next_call(t0, 2 * MB, false, Duration::from_secs(1));
        // Ten seconds later the 1 s of debt is long paid.
        let later = t0 + Duration::from_secs(10);
        let next = pacer.next_call(later, 1000, false, Duration::from_secs(1));
        assert_eq!(next, later + MIN_CALL_SPACING);
    }
}
