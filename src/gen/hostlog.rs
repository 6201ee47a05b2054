//! Host auth logs (`/var/log/secure`) as they arrive through CloudWatch
//! Logs: one subscription envelope (`DATA_MESSAGE`, uncompressed JSON) per
//! line, each holding 1 to 20 log events of one instance's log stream.
//!
//! Lines: sshd accepted keys and sessions, sshd `Failed password` from
//! scanners (now and then a burst from one address), `su` PAM
//! `authentication failure`s and successful `su` sessions, sudo commands.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::{civil_from_days, public_ip, Clock, GenOptions, Rng};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

const USERS: [&str; 5] = ["ec2-user", "dbdev", "admin", "deploy", "oracle"];

/// Writes envelopes holding `options.count` log events in total.
pub fn generate(options: &GenOptions, out: &mut dyn Write) -> io::Result<()> {
    let mut rng = Rng::new(options.seed);
    let mut clock = Clock::new(options.start_ms, 50);
    let mut writer = io::BufWriter::with_capacity(1 << 20, out);
    let mut envelope = String::with_capacity(4096);
    let mut message = String::with_capacity(256);
    let mut written = 0u64;
    let mut event_id = 0u64;
    while written < options.count {
        let batch = rng.range(1, 20).min(options.count - written);
        let instance = rng.below(64);
        let host = format!("ip-10-0-{}-{}", instance / 8, 10 + instance);
        envelope.clear();
        let _ = write!(
            envelope,
            "{{\"messageType\":\"DATA_MESSAGE\",\"owner\":\"123456789012\",\"logGroup\":\"/var/log/secure\",\"logStream\":\"i-0{instance:016x}\",\"subscriptionFilters\":[\"trailwatch\"],\"logEvents\":["
        );
        let burst_ip = rng.chance(0.05).then(|| public_ip(&mut rng));
        for i in 0..batch {
            let time = clock.tick(&mut rng);
            message.clear();
            syslog_stamp(&mut message, time);
            let _ = write!(message, " {host} ");
            let roll = rng.below(100);
            if let Some(ip) = &burst_ip {
                let _ = write!(
                    message,
                    "sshd[{}]: Failed password for invalid user {} from {ip} port {} ssh2",
                    rng.range(1000, 40000),
                    rng.pick(&USERS),
                    rng.range(32768, 65535)
                );
            } else if roll < 8 {
                let user = *rng.pick(&USERS);
                let _ = write!(
                    message,
                    "su: pam_unix(su:auth): authentication failure; logname={user} uid=1000 euid=0 tty=pts/0 ruser={user} rhost=  user=root"
                );
            } else if roll < 18 {
                let _ = write!(
                    message,
                    "sshd[{}]: Failed password for {} from {} port {} ssh2",
                    rng.range(1000, 40000),
                    rng.pick(&USERS),
                    public_ip(&mut rng),
                    rng.range(32768, 65535)
                );
            } else if roll < 50 {
                let _ = write!(
                    message,
                    "sshd[{}]: Accepted publickey for ec2-user from 10.0.0.{} port {} ssh2: RSA SHA256:{:016x}",
                    rng.range(1000, 40000),
                    rng.range(2, 250),
                    rng.range(32768, 65535),
                    rng.next_u64()
                );
            } else if roll < 75 {
                let _ = write!(
                    message,
                    "sshd[{}]: pam_unix(sshd:session): session opened for user ec2-user by (uid=0)",
                    rng.range(1000, 40000)
                );
            } else if roll < 90 {
                let _ = write!(
                    message,
                    "su: pam_unix(su:session): session opened for user root by {}(uid=1000)",
                    rng.pick(&USERS)
                );
            } else {
                let _ = write!(
                    message,
                    "sudo: ec2-user : TTY=pts/0 ; PWD=/home/ec2-user ; USER=root ; COMMAND=/usr/bin/systemctl restart app"
                );
            }
            if i > 0 {
                envelope.push(',');
            }
            event_id += 1;
            let _ = write!(
                envelope,
                "{{\"id\":\"{event_id:056}\",\"timestamp\":{time},\"message\":\"{message}\"}}"
            );
        }
        envelope.push_str("]}");
        writer.write_all(envelope.as_bytes())?;
        writer.write_all(b"\n")?;
        written += batch;
    }
    writer.flush()
}

/// Classic syslog stamp `Mar  1 12:00:01` (no year).
fn syslog_stamp(out: &mut String, ms: i64) {
    let secs = ms.div_euclid(1000);
    let (_, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let _ = write!(
        out,
        "{} {day:>2} {:02}:{:02}:{:02}",
        MONTHS[(month as usize).saturating_sub(1) % 12],
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{generate_records, GenKind};

    #[test]
    fn envelopes_hold_the_requested_events() {
        let records = generate_records(
            GenKind::HostLog,
            &GenOptions {
                count: 500,
                ..GenOptions::default()
            },
        );
        let mut events = 0;
        let mut failures = 0;
        for record in &records {
            let value: serde_json::Value = serde_json::from_slice(record).unwrap();
            for event in value["logEvents"].as_array().unwrap() {
                events += 1;
                let message = event["message"].as_str().unwrap();
                failures += usize::from(message.contains("authentication failure"));
            }
        }
        assert_eq!(events, 500);
        assert!(failures > 0);
    }
}
