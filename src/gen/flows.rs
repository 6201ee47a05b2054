//! VPC Flow Logs records in the default v2 format, one line each:
//! `version account-id interface-id srcaddr dstaddr srcport dstport
//! protocol packets bytes start end action log-status`.
//!
//! Mix: east-west traffic between private addresses and egress to public
//! addresses (ACCEPT, now and then a large transfer), inbound from public
//! addresses (about half REJECT), a port scanner sweeping destination ports
//! (REJECT), an SSH brute-forcer on port 22, and a few NODATA rows. About
//! 10,000 records per second of event time; 3% up to ten minutes late.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::{private_ip, public_ip, Clock, GenOptions, Rng};

const ACCOUNTS: [&str; 4] = [
    "111122223333",
    "123456789012",
    "210987654321",
    "333344445555",
];

const COMMON_PORTS: [u64; 8] = [443, 80, 53, 5432, 3306, 6379, 8080, 9092];

/// Writes `options.count` flow lines.
pub fn generate(options: &GenOptions, out: &mut dyn Write) -> io::Result<()> {
    let mut rng = Rng::new(options.seed);
    let mut clock = Clock::new(options.start_ms, 0);
    let mut writer = io::BufWriter::with_capacity(1 << 20, out);
    let mut line = String::with_capacity(160);
    let mut scanner = public_ip(&mut rng);
    let mut brute = public_ip(&mut rng);
    for index in 0..options.count {
        // 10 records per millisecond of event time.
        if index % 10 == 0 {
            clock.tick(&mut rng);
        }
        let now = if rng.chance(0.03) {
            clock.now() - rng.below(600_000) as i64
        } else {
            clock.now()
        };
        if index % 50_000 == 49_999 {
            scanner = public_ip(&mut rng);
            brute = public_ip(&mut rng);
        }
        let start = now / 1000 - rng.range(60, 600) as i64;
        let end = start + rng.range(1, 60) as i64;
        let account = *rng.pick(&ACCOUNTS);
        let eni = rng.below(300);
        line.clear();
        let _ = write!(line, "2 {account} eni-0{eni:016x} ");
        let roll = rng.below(1000);
        if roll < 5 {
            let _ = write!(line, "- - - - - - - {start} {end} - NODATA");
        } else if roll < 25 {
            let dst = private_ip(&mut rng, 2000);
            let _ = write!(
                line,
                "{scanner} {dst} {} {} 6 1 44 {start} {end} REJECT OK",
                rng.range(32768, 65535),
                rng.range(1, 65535)
            );
        } else if roll < 35 {
            let dst = private_ip(&mut rng, 2000);
            let action = if rng.chance(0.8) { "REJECT" } else { "ACCEPT" };
            let _ = write!(
                line,
                "{brute} {dst} {} 22 6 {} {} {start} {end} {action} OK",
                rng.range(32768, 65535),
                rng.range(3, 20),
                rng.range(180, 4000)
            );
        } else {
            let kind = rng.below(100);
            let (src, dst, sport, dport) = if kind < 60 {
                let src = private_ip(&mut rng, 2000);
                let dst = private_ip(&mut rng, 2000);
                (src, dst, rng.range(32768, 65535), *rng.pick(&COMMON_PORTS))
            } else if kind < 85 {
                let src = private_ip(&mut rng, 2000);
                let dst = public_ip(&mut rng);
                (src, dst, rng.range(32768, 65535), 443)
            } else {
                let src = public_ip(&mut rng);
                let dst = private_ip(&mut rng, 2000);
                (
                    src,
                    dst,
                    rng.range(32768, 65535),
                    *rng.pick(&[443, 80, 22, 3389]),
                )
            };
            let inbound = kind >= 85;
            let action = if inbound && rng.chance(0.5) {
                "REJECT"
            } else {
                "ACCEPT"
            };
            let packets = rng.range(1, 2000);
            let bytes = if rng.chance(0.001) {
                rng.range(5_000_000, 500_000_000)
            } else {
                packets * rng.range(40, 1500)
            };
            let proto = if dport == 53 { 17 } else { 6 };
            let _ = write!(
                line,
                "{src} {dst} {sport} {dport} {proto} {packets} {bytes} {start} {end} {action} OK"
            );
        }
        writer.write_all(line.as_bytes())?;
        writer.write_all(b"\n")?;
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{generate_records, GenKind};

    #[test]
    fn lines_have_fourteen_fields_and_a_mix() {
        let records = generate_records(
            GenKind::Flows,
            &GenOptions {
                count: 20_000,
                ..GenOptions::default()
            },
        );
        assert_eq!(records.len(), 20_000);
        let mut rejects = 0;
        for record in &records {
            let line = std::str::from_utf8(record).unwrap();
            assert_eq!(line.split(' ').count(), 14, "{line}");
            rejects += usize::from(line.contains(" REJECT "));
        }
        assert!(rejects > 1000 && rejects < 10_000, "rejects {rejects}");
    }
}
