//! Deterministic, seeded generators of realistic input for benchmarks and
//! demos: CloudTrail records, VPC flow lines and host auth logs.
//!
//! Contract: the same kind, count, seed and start time always produce the
//! same bytes (the generator uses its own SplitMix64 stream, so no crate
//! upgrade can change the output). Output is JSON lines for CloudTrail and
//! host logs (CloudWatch Logs subscription envelopes), and one default-v2
//! flow line per record for flows. A few percent of events are dated up to
//! ten minutes before their neighbours (out of order), as real delivery is.
//!
//! # Layout
//!
//! - [`cloudtrail`]: management events with a realistic eventName mix,
//!   errors, console sign-in failure bursts and rare CIS-relevant changes.
//! - [`flows`]: flow records with ACCEPT/REJECT, private and public
//!   addresses, a port scanner and an SSH brute-forcer.
//! - [`hostlog`]: `/var/log/secure` lines with `su` and sshd failures.

pub mod cloudtrail;
pub mod flows;
pub mod hostlog;

use std::io::{self, Write};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenKind {
    CloudTrail,
    Flows,
    HostLog,
}

/// Generator settings.
#[derive(Debug, Clone, Copy)]
pub struct GenOptions {
    /// Number of events (flow records, CloudTrail records, log lines).
    pub count: u64,
    /// Seed of the random stream.
    pub seed: u64,
    /// Event time of the first event, epoch milliseconds.
    pub start_ms: i64,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            count: 1000,
            seed: 42,
            // 2024-03-01T12:00:00Z
            start_ms: 1_709_294_400_000,
        }
    }
}

/// Writes `options.count` events of `kind` to `out`.
pub fn generate(kind: GenKind, options: &GenOptions, out: &mut dyn Write) -> io::Result<()> {
    match kind {
        GenKind::CloudTrail => cloudtrail::generate(options, out),
        GenKind::Flows => flows::generate(options, out),
        GenKind::HostLog => hostlog::generate(options, out),
    }
}

/// Generates into memory: one `Vec<u8>` per record (no trailing newline).
pub fn generate_records(kind: GenKind, options: &GenOptions) -> Vec<Vec<u8>> {
    let mut buffer = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = generate(kind, options, &mut buffer);
    buffer
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// SplitMix64: small, fast, and stable forever (the output of a seed is
/// part of the benchmark's definition).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng {
            state: seed ^ 0x5DEE_CE66_D1CE_4E5B,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }

    /// One element of a non-empty slice (the first when empty is impossible).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let index = self.below(items.len() as u64) as usize;
        &items[index.min(items.len().saturating_sub(1))]
    }

    /// An index drawn with the given weights.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut roll = self.below(total);
        for (index, weight) in weights.iter().enumerate() {
            let weight = u64::from(*weight);
            if roll < weight {
                return index;
            }
            roll -= weight;
        }
        weights.len().saturating_sub(1)
    }

    /// `len` characters from `alphabet`, appended to `out`.
    pub fn push_chars(&mut self, out: &mut String, alphabet: &[u8], len: usize) {
        for _ in 0..len {
            out.push(char::from(*self.pick(alphabet)));
        }
    }

    /// A random version-4-looking UUID appended to `out`.
    pub fn push_uuid(&mut self, out: &mut String) {
        let a = self.next_u64();
        let b = self.next_u64();
        let hex = format!("{a:016x}{b:016x}");
        out.push_str(&hex[0..8]);
        out.push('-');
        out.push_str(&hex[8..12]);
        out.push_str("-4");
        out.push_str(&hex[13..16]);
        out.push('-');
        out.push_str(&hex[16..20]);
        out.push('-');
        out.push_str(&hex[20..32]);
    }
}

/// Event-time clock: advances by a random step per event and dates a small
/// fraction of events up to `max_disorder_ms` in the past.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    now_ms: i64,
    max_step_ms: u64,
    disorder: f64,
    max_disorder_ms: u64,
}

impl Clock {
    pub(crate) fn new(start_ms: i64, max_step_ms: u64) -> Self {
        Clock {
            now_ms: start_ms,
            max_step_ms,
            disorder: 0.03,
            max_disorder_ms: 600_000,
        }
    }

    /// The time of the next event.
    pub(crate) fn tick(&mut self, rng: &mut Rng) -> i64 {
        self.now_ms += rng.below(self.max_step_ms + 1) as i64;
        if rng.chance(self.disorder) {
            return self.now_ms - rng.below(self.max_disorder_ms) as i64;
        }
        self.now_ms
    }

    /// The clock's current (in-order) time.
    pub(crate) fn now(&self) -> i64 {
        self.now_ms
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for `ms`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A private (RFC 1918, 10/8) address from a pool of `hosts`.
pub(crate) fn private_ip(rng: &mut Rng, hosts: u64) -> String {
    let n = rng.below(hosts.max(1));
    format!("10.0.{}.{}", (n / 250) % 256, 1 + n % 250)
}

/// A public address (documentation and common cloud ranges).
pub(crate) fn public_ip(rng: &mut Rng) -> String {
    const PREFIXES: [&str; 6] = ["52.95", "54.239", "203.0", "198.51", "185.220", "34.120"];
    format!(
        "{}.{}.{}",
        rng.pick(&PREFIXES),
        rng.below(256),
        1 + rng.below(254)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        for kind in [GenKind::CloudTrail, GenKind::Flows, GenKind::HostLog] {
            let options = GenOptions {
                count: 300,
                ..GenOptions::default()
            };
            let a = generate_records(kind, &options);
            let b = generate_records(kind, &options);
            assert_eq!(a, b);
            let other = generate_records(kind, &GenOptions { seed: 7, ..options });
            assert_ne!(a, other);
        }
    }

    #[test]
    fn rfc3339_round_trips() {
        let ms = 1_709_294_405_000;
        let text = rfc3339(ms);
        assert_eq!(text, "2024-03-01T12:00:05Z");
        assert_eq!(crate::decode::cloudtrail::parse_rfc3339_ms(&text), Some(ms));
    }
}
