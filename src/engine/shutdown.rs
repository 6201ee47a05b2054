//! The shutdown deadline, one instant for the whole engine.
//!
//! Contract: [`ShutdownClock::start`] fixes the deadline the first time a
//! stop request is seen (by the source loop or an output retrying), at
//! `shutdown_deadline` after that moment; later calls return the same
//! instant. Outputs that block inside one send (a Kafka producer waiting
//! for delivery reports) watch the clock and give up when it has passed,
//! so a stop with a broker down ends near the deadline and not one send
//! timeout after it (`message.timeout.ms`, 30 s, again and again).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// When the outputs give up after a stop request (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct ShutdownClock {
    at: Arc<OnceLock<Instant>>,
}

impl ShutdownClock {
    /// The deadline: `deadline` from now, unless a call before fixed it.
    pub fn start(&self, deadline: Duration) -> Instant {
        *self.at.get_or_init(|| Instant::now() + deadline)
    }

    /// Whether a deadline was fixed and has passed.
    pub fn passed(&self) -> bool {
        self.at.get().is_some_and(|at| Instant::now() >= *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_start_fixes_the_deadline_for_every_clone() {
        let clock = ShutdownClock::default();
        let watcher = clock.clone();
        assert!(!watcher.passed(), "no stop requested");
        let at = clock.start(Duration::ZERO);
        assert!(watcher.passed());
        assert_eq!(watcher.start(Duration::from_secs(3600)), at);
        let later = ShutdownClock::default();
        later.start(Duration::from_secs(3600));
        assert!(!later.passed());
    }
}
