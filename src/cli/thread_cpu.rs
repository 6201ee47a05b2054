//! `bench --thread-cpu`: where an engine run's CPU went, by thread role.
//!
//! The engine names its threads by role (`tw-source-…`, `tw-decode-N`,
//! `tw-shard-N`, `tw-sink`, `tw-dead-letter`). [`RoleCpu::sample`] reads
//! every live thread's on-CPU nanoseconds from `/proc/self/task/*/schedstat`
//! and keeps the latest figure per thread id; the caller samples every few
//! milliseconds while the run lasts, so a thread's CPU is known to within
//! one sampling interval of its exit. Threads that existed before
//! [`RoleCpu::start`] count only what they used after it.
//!
//! A diagnostic for the scaling rows of `BENCHMARKS.md` (which role
//! saturates at N cores), not a metric: it costs a few directory reads per
//! sample, which is why it is opt-in.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::Duration;

/// The roles a thread name maps to, in report order.
const ROLES: [&str; 6] = ["source", "decode", "shard", "sink", "dead-letter", "other"];

/// CPU time per role, in `ROLES` order.
pub type RoleTotals = [Duration; ROLES.len()];

/// Per-thread CPU seen so far in one run.
#[derive(Debug, Default)]
pub struct RoleCpu {
    /// Thread id → (role index, CPU ns at start, latest CPU ns).
    threads: HashMap<u32, (usize, u64, u64)>,
}

impl RoleCpu {
    /// Takes the starting figures of the threads alive now.
    pub fn start() -> Self {
        let mut cpu = RoleCpu::default();
        cpu.read(true);
        cpu
    }

    /// Reads every live thread's CPU time once.
    pub fn sample(&mut self) {
        self.read(false);
    }

    fn read(&mut self, starting: bool) {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return;
        };
        for task in tasks.flatten() {
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<u32>().ok())
            else {
                continue;
            };
            let path = task.path();
            let ns = super::bench::schedstat_ns(&path.join("schedstat").to_string_lossy())
                .as_nanos() as u64;
            if ns == 0 {
                // Gone already (or never ran).
                continue;
            }
            let entry = self.threads.entry(tid).or_insert_with(|| {
                let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
                (role_of(name.trim()), if starting { ns } else { 0 }, ns)
            });
            entry.2 = entry.2.max(ns);
        }
    }

    /// CPU time per role.
    pub fn totals(&self) -> RoleTotals {
        let mut totals = [Duration::ZERO; ROLES.len()];
        for &(role, start, latest) in self.threads.values() {
            totals[role] += Duration::from_nanos(latest.saturating_sub(start));
        }
        totals
    }
}

/// One report line: each role's CPU seconds and its share of `wall`
/// (1.00 = one core busy the whole run).
pub fn report(totals: &RoleTotals, wall: Duration) -> String {
    let wall = wall.as_secs_f64().max(1e-9);
    let mut line = String::from("  cpu by role:");
    for (role, total) in ROLES.iter().zip(totals) {
        if total.is_zero() {
            continue;
        }
        let secs = total.as_secs_f64();
        let _ = write!(line, " {role} {secs:.3}s ({:.2} cores)", secs / wall);
    }
    line
}

/// The role of a thread named `name` (an index into `ROLES`; "other" for
/// a name without a known role).
fn role_of(name: &str) -> usize {
    let role = match name.strip_prefix("tw-") {
        // Stage 2's pre-aggregators do a shard's work.
        Some(rest) if rest.starts_with("preagg") => "shard",
        Some(rest) => ROLES
            .iter()
            .copied()
            .find(|role| rest.starts_with(role))
            .unwrap_or("other"),
        None => "other",
    };
    ROLES
        .iter()
        .position(|r| *r == role)
        .unwrap_or(ROLES.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_names_map_to_roles() {
        assert_eq!(role_of("tw-source-memor"), 0);
        assert_eq!(role_of("tw-decode-12"), 1);
        assert_eq!(role_of("tw-shard-3"), 2);
        assert_eq!(role_of("tw-preagg-0"), 2);
        assert_eq!(role_of("tw-sink"), 3);
        assert_eq!(role_of("tw-dead-letter"), 4);
        assert_eq!(role_of("trailwatch"), 5);
    }

    #[test]
    fn a_named_thread_is_counted_under_its_role() {
        let mut cpu = RoleCpu::start();
        let (busy_tx, busy_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("tw-shard-0".into())
            .spawn(move || {
                // Busy until this thread has had 20 ms of CPU, however
                // loaded the machine is; then alive until sampled.
                let mut x = 0u64;
                while crate::cli::bench::thread_cpu() < Duration::from_millis(20) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
                busy_tx.send(()).unwrap();
                let _ = done_rx.recv();
                x
            })
            .unwrap();
        busy_rx.recv().unwrap();
        cpu.sample();
        done_tx.send(()).unwrap();
        handle.join().unwrap();
        let totals = cpu.totals();
        assert!(totals[2] >= Duration::from_millis(20), "{totals:?}");
        // (Engine tests running beside this one may add their own threads.)
        assert!(report(&totals, Duration::from_secs(1)).contains(" shard "));
    }
}
