//! Host log lines (syslog, `/var/log/secure`).
//!
//! Contract: a line is `TIMESTAMP HOST PROGRAM[PID]: MESSAGE`, where
//! TIMESTAMP is the classic syslog `Mar  1 12:00:01` or an RFC 3339 stamp.
//! Planned names: `host`, `program`, `pid`, `message`, `src_ip` and
//! `src_port` (sshd `from IP port N`), `user` (a `user=` pair or sshd's
//! `for [invalid user] NAME from`), and any other `key=value` pair of the
//! message by its key (`rhost`, `ruser`, `logname`, `uid`, `tty`...); an
//! empty value is Missing. Envelope `@…` names are filled too.
//!
//! Event time: the CloudWatch Logs `timestamp` when the line came through
//! CloudWatch Logs; otherwise the line's own stamp. Syslog stamps carry no
//! year: we assume the current (UTC) year, or the previous one when that
//! would put the event more than a day in the future (a December line
//! replayed in January). Times without zone are taken as UTC.

use std::borrow::Cow;

use crate::decode::cloudtrail::{days_from_civil, parse_rfc3339_ms};
use crate::decode::{
    event_time_in_range, missing_fields, DecodeError, DecodeErrorReason, Envelope, EnvelopeSlots,
};
use crate::event::{Event, EventKind, FieldValue};
use crate::fields::{FieldPlan, Slot};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// What one planned name reads.
#[derive(Clone, Debug)]
enum HostField {
    Host,
    Program,
    Pid,
    Message,
    SrcIp,
    SrcPort,
    User,
    Pair(Box<str>),
}

/// Decodes host log lines for one field plan.
#[derive(Clone, Debug)]
pub struct HostLogDecoder {
    planned: Vec<(Slot, HostField)>,
    plan_len: usize,
    envelope: EnvelopeSlots,
}

/// A syslog line split into its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyslogLine<'a> {
    /// The line's own time (epoch ms), if it has a stamp.
    pub time_ms: Option<i64>,
    pub host: Option<&'a str>,
    pub program: Option<&'a str>,
    pub pid: Option<&'a str>,
    pub message: &'a str,
}

impl HostLogDecoder {
    /// Builds a decoder for `plan`.
    pub fn new(plan: &FieldPlan) -> Self {
        let planned = plan
            .paths()
            .iter()
            .enumerate()
            .filter(|(_, path)| !path.is_envelope())
            .filter_map(|(index, path)| {
                let slot = Slot::try_from(index).ok()?;
                let field = match path.as_name()? {
                    "host" => HostField::Host,
                    "program" => HostField::Program,
                    "pid" => HostField::Pid,
                    "message" => HostField::Message,
                    "src_ip" => HostField::SrcIp,
                    "src_port" => HostField::SrcPort,
                    "user" => HostField::User,
                    other => HostField::Pair(other.into()),
                };
                Some((slot, field))
            })
            .collect();
        HostLogDecoder {
            planned,
            plan_len: plan.len(),
            envelope: EnvelopeSlots::from_plan(plan),
        }
    }

    /// Decodes one line.
    pub fn decode<'a>(
        &self,
        line: &'a str,
        envelope: &Envelope<'a>,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> Result<(), DecodeError> {
        let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
        let parsed = parse_line(line, now_ms());
        let time_ms = envelope.timestamp_ms.or(parsed.time_ms).ok_or_else(|| {
            DecodeError::new(
                DecodeErrorReason::BadEventTime,
                "host log line has no timestamp",
            )
        })?;
        let time_ms = event_time_in_range(time_ms, "host log timestamp")?;
        let mut fields = missing_fields(self.plan_len);
        for (slot, field) in &self.planned {
            let value = match field {
                HostField::Host => parsed.host,
                HostField::Program => parsed.program,
                HostField::Pid => parsed.pid,
                HostField::Message => Some(parsed.message),
                HostField::SrcIp => sshd_from(parsed.message).map(|(ip, _)| ip),
                HostField::SrcPort => sshd_from(parsed.message).and_then(|(_, port)| port),
                HostField::User => {
                    pair(parsed.message, "user").or_else(|| sshd_user(parsed.message))
                }
                HostField::Pair(key) => pair(parsed.message, key),
            };
            let value = match (field, value) {
                (_, None) => FieldValue::Missing,
                (HostField::Pid | HostField::SrcPort, Some(text)) => match text.parse::<f64>() {
                    Ok(number) => FieldValue::Number(number),
                    Err(_) => FieldValue::Str(Cow::Borrowed(text)),
                },
                (_, Some(text)) => FieldValue::Str(Cow::Borrowed(text)),
            };
            if let Some(target) = fields.get_mut(usize::from(*slot)) {
                *target = value;
            }
        }
        self.envelope.fill(&mut fields, envelope, line);
        let event = Event {
            kind: EventKind::HostLog,
            time_ms,
            text: Cow::Borrowed(line),
            fields,
            id: envelope.event_id.map(Cow::Borrowed),
            account: envelope.owner.map(Cow::Borrowed),
            region: None,
            ruled_out: false,
        };
        emit(&event);
        Ok(())
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Whether `line` starts with a syslog or RFC 3339 stamp.
pub fn has_timestamp_prefix(line: &str) -> bool {
    parse_stamp(line, 0).is_some()
}

/// Splits a syslog line. `now_ms` picks the year of year-less stamps.
pub fn parse_line(line: &str, now_ms: i64) -> SyslogLine<'_> {
    let Some((time_ms, rest)) = parse_stamp(line, now_ms) else {
        return SyslogLine {
            time_ms: None,
            host: None,
            program: None,
            pid: None,
            message: line,
        };
    };
    let rest = rest.trim_start_matches(' ');
    let (host, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let rest = rest.trim_start_matches(' ');
    let (tag, message) = match rest.split_once(": ") {
        Some((tag, message)) if !tag.contains(' ') => (Some(tag), message),
        _ => match rest.strip_suffix(':') {
            Some(tag) if !tag.contains(' ') => (Some(tag), ""),
            _ => (None, rest),
        },
    };
    let (program, pid) = match tag {
        Some(tag) => match tag.split_once('[') {
            Some((program, pid)) => (Some(program), pid.strip_suffix(']')),
            None => (Some(tag), None),
        },
        None => (None, None),
    };
    SyslogLine {
        time_ms: Some(time_ms),
        host: Some(host).filter(|h| !h.is_empty()),
        program: program.filter(|p| !p.is_empty()),
        pid: pid.filter(|p| !p.is_empty()),
        message,
    }
}

/// Parses a leading stamp; returns its time and the rest of the line.
fn parse_stamp(line: &str, now_ms: i64) -> Option<(i64, &str)> {
    if line.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        let (stamp, rest) = line.split_once(' ').unwrap_or((line, ""));
        return parse_rfc3339_ms(stamp).map(|ms| (ms, rest));
    }
    let month = MONTHS.iter().position(|m| line.starts_with(m))? as i64 + 1;
    let rest = line.get(3..)?.strip_prefix(' ')?.trim_start_matches(' ');
    let (day, rest) = rest.split_once(' ')?;
    let (clock, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let day: i64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let clock = clock.as_bytes();
    if clock.len() != 8 || clock[2] != b':' || clock[5] != b':' {
        return None;
    }
    let two = |at: usize| -> Option<i64> {
        let digits = clock.get(at..at + 2)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| i64::from(digits[0] - b'0') * 10 + i64::from(digits[1] - b'0'))
    };
    let (hour, minute, second) = (two(0)?, two(3)?, two(6)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let at_year = |year: i64| {
        ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60_000 + second * 1000
    };
    let year = year_of_days(now_ms.div_euclid(86_400_000));
    let mut time = at_year(year);
    if time > now_ms + 86_400_000 {
        time = at_year(year - 1);
    }
    Some((time, rest))
}

/// The civil year of a day count since the epoch.
fn year_of_days(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

/// The value of a `key=value` pair in `message` (value ends at whitespace
/// or `;`); empty values are absent.
fn pair<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    let mut search = 0;
    while let Some(found) = message.get(search..)?.find(key) {
        let at = search + found;
        let before_ok = at == 0
            || matches!(
                message.as_bytes()[at - 1],
                b' ' | b';' | b',' | b'(' | b'\t'
            );
        let after = at + key.len();
        if before_ok && message.as_bytes().get(after) == Some(&b'=') {
            let value = &message[after + 1..];
            let end = value
                .find([' ', ';', ',', '\t', ')'])
                .unwrap_or(value.len());
            return Some(&value[..end]).filter(|v| !v.is_empty());
        }
        search = after;
    }
    None
}

/// sshd's `from IP port N`.
fn sshd_from(message: &str) -> Option<(&str, Option<&str>)> {
    let (_, after) = message.split_once(" from ")?;
    let mut tokens = after.split(' ');
    let ip = tokens.next().filter(|ip| ip.contains(['.', ':']))?;
    let port = match tokens.next() {
        Some("port") => tokens.next(),
        _ => None,
    };
    Some((ip, port))
}

/// sshd's user: `for invalid user NAME from`, `Invalid user NAME from`,
/// `for NAME from`, `authenticating user NAME`.
fn sshd_user(message: &str) -> Option<&str> {
    for marker in [
        "invalid user ",
        "Invalid user ",
        "authenticating user ",
        "for user ",
    ] {
        if let Some((_, after)) = message.split_once(marker) {
            return after.split(' ').next().filter(|u| !u.is_empty());
        }
    }
    let (_, after) = message.split_once(" for ")?;
    let (user, rest) = after.split_once(' ')?;
    rest.starts_with("from ")
        .then_some(user)
        .filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::FieldPath;

    const NOW: i64 = 1_709_294_400_000; // 2024-03-01T12:00:00Z

    #[test]
    fn splits_syslog_lines() {
        let line = "Mar  1 12:00:02 ip-10-0-0-5 sshd[1234]: Failed password for invalid user admin from 203.0.113.9 port 50000 ssh2";
        let parsed = parse_line(line, NOW);
        assert_eq!(parsed.time_ms, Some(NOW + 2000));
        assert_eq!(parsed.host, Some("ip-10-0-0-5"));
        assert_eq!(parsed.program, Some("sshd"));
        assert_eq!(parsed.pid, Some("1234"));
        assert_eq!(sshd_user(parsed.message), Some("admin"));
        assert_eq!(
            sshd_from(parsed.message),
            Some(("203.0.113.9", Some("50000")))
        );
        assert_eq!(
            sshd_user("Accepted publickey for ec2-user from 1.2.3.4 port 22 ssh2"),
            Some("ec2-user")
        );
        let rfc = parse_line("2024-03-01T12:00:00Z web1 cron: ran", NOW);
        assert_eq!(
            (rfc.time_ms, rfc.program, rfc.message),
            (Some(NOW), Some("cron"), "ran")
        );
        // A December line read in early January belongs to last year.
        let dec = parse_line("Dec 31 23:59:59 h p: m", 1_704_067_200_000 + 3_600_000);
        assert_eq!(dec.time_ms, Some(1_704_067_199_000));
        assert_eq!(parse_line("hello world", NOW).time_ms, None);
    }

    #[test]
    fn decodes_pam_pairs() {
        let mut plan = FieldPlan::new(EventKind::HostLog);
        for p in ["user", "rhost", "ruser", "program", "pid", "host", "src_ip"] {
            plan.slot_for(&FieldPath::parse(p).unwrap());
        }
        let decoder = HostLogDecoder::new(&plan);
        let line = "Mar  1 12:00:01 ip-10-0-0-5 su: pam_unix(su:auth): authentication failure; logname=ec2-user uid=1000 euid=0 tty=pts/0 ruser=ec2-user rhost=  user=dbdev";
        let envelope = Envelope {
            timestamp_ms: Some(42),
            ..Envelope::default()
        };
        let mut got = None;
        decoder
            .decode(line, &envelope, &mut |e| {
                got = Some((
                    e.time_ms,
                    e.fields
                        .iter()
                        .cloned()
                        .map(FieldValue::into_owned)
                        .collect::<Vec<_>>(),
                ))
            })
            .unwrap();
        let (time, fields) = got.unwrap();
        assert_eq!(time, 42);
        assert_eq!(fields[0], FieldValue::Str("dbdev".into()));
        assert_eq!(fields[1], FieldValue::Missing);
        assert_eq!(fields[2], FieldValue::Str("ec2-user".into()));
        assert_eq!(fields[3], FieldValue::Str("su".into()));
        assert_eq!(fields[4], FieldValue::Missing);
        assert_eq!(fields[5], FieldValue::Str("ip-10-0-0-5".into()));
        assert_eq!(fields[6], FieldValue::Missing);
    }
}
