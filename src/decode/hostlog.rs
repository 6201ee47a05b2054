//! Host log lines (syslog, `/var/log/secure`).
//!
//! Contract: a line is `TIMESTAMP HOST PROGRAM[PID]: MESSAGE`, where
//! TIMESTAMP is the classic syslog `Mar  1 12:00:01` or an RFC 3339 stamp,
//! maybe after a `<PRI>` (as relays write it), or an RFC 5424 line
//! (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID STRUCTURED-DATA MESSAGE`).
//! Planned names: `host`, `program`, `pid`, `message`, `src_ip` and
//! `src_port` (the client address sshd logs: `from IP port N`,
//! `user NAME IP port N`, `from IP port N:CODE:`, `from IP`), `user` (a
//! `user=` pair, sshd's `for [invalid user] NAME from`, `Invalid user NAME`,
//! `authenticating user NAME`, PAM's `for user NAME(uid=N)`), and any other
//! `key=value` pair of the message by its key (`rhost`, `ruser`, `logname`,
//! `uid`, `tty`...); an empty value is Missing. Envelope `@…` names are
//! filled too.
//!
//! The client address and sshd's user wording are read only from sshd's own
//! lines: program `sshd`, `sshd-session` (OpenSSH 9.8+) or `sshd-auth`
//! (OpenSSH 10+). Other programs log client-chosen text (a sudo `COMMAND=`,
//! a web app's message, a cron job) that may read `from IP port N` or
//! `Invalid user NAME`; it must not pick the address or user a rule counts
//! by. A line without a program (a bare message dated by CloudWatch Logs, as
//! `sshd -e` writes to a container's stderr) gives neither: any process may
//! have written it. The tag is the sender's word: this keeps remote text
//! out, not a local user's `logger -t sshd`. PAM's wording (`user=`,
//! `for user NAME`) is read from every program, as su, sudo and login log
//! it too.
//!
//! sshd writes a client-chosen user name verbatim, spaces included, before
//! the address; so the address is the last one in the message, and the name
//! runs up to it (`Invalid user x from 198.51.100.1 port 1 from 203.0.113.12
//! port 50002` is user `x from 198.51.100.1 port 1`, src_ip 203.0.113.12).
//! Messages that open with the address (`Received disconnect from`,
//! `Connection from`, `Unable to negotiate with`...) take the first one,
//! since client text (a disconnect reason) follows it. Of a `user=` pair and
//! a user marker, the earlier is the logger's wording and wins.
//!
//! Event time: the CloudWatch Logs `timestamp` when the line came through
//! CloudWatch Logs; otherwise the line's own stamp. Syslog stamps carry no
//! year: we take the latest of next, this and last (UTC) year that puts the
//! event at most a day in the future. So a `Jan  1` line read on New Year's
//! Eve is next year's, a December line replayed in January last year's.
//! Times without zone are taken as UTC.

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
    /// Whether a planned field needs the sshd client address.
    reads_peer: bool,
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
            .collect::<Vec<_>>();
        let reads_peer = planned.iter().any(|(_, field)| {
            matches!(
                field,
                HostField::SrcIp | HostField::SrcPort | HostField::User
            )
        });
        HostLogDecoder {
            planned,
            plan_len: plan.len(),
            reads_peer,
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
        // One scan for the client address, shared by the fields that need it.
        // Only sshd's own lines say who the client is (see the module doc).
        let (sshd, marker, peer) = if self.reads_peer {
            let sshd = is_sshd(parsed.program);
            let marker = user_marker(parsed.message, sshd);
            let peer = if sshd {
                sshd_peer(parsed.message, marker)
            } else {
                None
            };
            (sshd, marker, peer)
        } else {
            (false, None, None)
        };
        for (slot, field) in &self.planned {
            let value = match field {
                HostField::Host => parsed.host,
                HostField::Program => parsed.program,
                HostField::Pid => parsed.pid,
                HostField::Message => Some(parsed.message),
                HostField::SrcIp => peer.map(|p| p.ip),
                HostField::SrcPort => peer.and_then(|p| p.port),
                HostField::User => user(parsed.message, sshd, marker, peer),
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

/// Whether `line` starts with a syslog or RFC 3339 stamp (after a
/// `<PRI>`), or is an RFC 5424 line.
pub fn has_timestamp_prefix(line: &str) -> bool {
    let line = strip_priority(line);
    parse_stamp(line, 0).is_some() || parse_rfc5424(line).is_some()
}

/// Splits a syslog line: the classic (RFC 3164) form, with or without a
/// `<PRI>` (which relays write), or RFC 5424. `now_ms` picks the year of
/// year-less stamps.
pub fn parse_line(line: &str, now_ms: i64) -> SyslogLine<'_> {
    let line = strip_priority(line);
    if let Some(parsed) = parse_rfc5424(line) {
        return parsed;
    }
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

/// `line` without a leading `<PRI>` (1 to 3 digits), the priority that
/// syslog relays (RFC 3164, 5424) put before the stamp.
fn strip_priority(line: &str) -> &str {
    let Some((digits, rest)) = line
        .strip_prefix('<')
        .and_then(|after| after.split_once('>'))
    else {
        return line;
    };
    if (1..=3).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        rest
    } else {
        line
    }
}

/// An RFC 5424 line after its `<PRI>`: `1 TIMESTAMP HOSTNAME APP-NAME
/// PROCID MSGID STRUCTURED-DATA [MSG]`, `-` for a nil value. `None` when
/// `line` is not one.
fn parse_rfc5424(line: &str) -> Option<SyslogLine<'_>> {
    let rest = line.strip_prefix("1 ")?;
    let mut parts = rest.splitn(6, ' ');
    let (stamp, host, app, procid, _msgid) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let time_ms = match stamp {
        "-" => None,
        stamp => Some(parse_rfc3339_ms(stamp)?),
    };
    let message = skip_structured_data(parts.next()?)?;
    let message = message.strip_prefix(' ').unwrap_or(message);
    // RFC 5424 marks a UTF-8 MSG with a byte order mark.
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    let nil = |value: &'_ str| -> bool { value == "-" || value.is_empty() };
    Some(SyslogLine {
        time_ms,
        host: Some(host).filter(|h| !nil(h)),
        program: Some(app).filter(|a| !nil(a)),
        pid: Some(procid).filter(|p| !nil(p)),
        message,
    })
}

/// What follows RFC 5424 STRUCTURED-DATA (`-`, or `[id k="v" ...]`
/// elements, where `\]`, `\"` and `\\` escape inside a value).
fn skip_structured_data(text: &str) -> Option<&str> {
    if let Some(rest) = text.strip_prefix('-') {
        return Some(rest);
    }
    let bytes = text.as_bytes();
    let mut at = 0;
    while bytes.get(at) == Some(&b'[') {
        let (mut quoted, mut escaped) = (false, false);
        at += 1;
        loop {
            let byte = *bytes.get(at)?;
            at += 1;
            match byte {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b']' if !quoted => break,
                _ => {}
            }
        }
    }
    (at > 0).then(|| &text[at..])
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
    // The latest year that does not put the line more than a day ahead of
    // now. A day, not a few minutes: stamps are the host's local time read as
    // UTC, and zones run to UTC+14. So next year is taken only on the last
    // day of a year (`Jan  1 00:00:05` read at 23:59:50 UTC), and last year
    // for anything dated later than tomorrow (a December line replayed in
    // January).
    let year = year_of_days(now_ms.div_euclid(86_400_000));
    let latest = now_ms.saturating_add(86_400_000);
    let time = [year + 1, year]
        .into_iter()
        .map(at_year)
        .find(|&time| time <= latest)
        .unwrap_or_else(|| at_year(year - 1));
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
    pair_at(message, key)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// The first `key=value` pair: where the key starts, and the value (maybe
/// empty).
fn pair_at<'a>(message: &'a str, key: &str) -> Option<(usize, &'a str)> {
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
            return Some((at, &value[..end]));
        }
        search = after;
    }
    None
}

/// The client address of an sshd message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Peer<'a> {
    ip: &'a str,
    port: Option<&'a str>,
    /// Where `ip` starts in the message.
    at: usize,
}

/// sshd messages that open with the client address. Client-chosen text (a
/// disconnect reason, a key exchange offer) may follow the address, so here
/// the first address is the client's.
const ADDRESS_FIRST: [&str; 6] = [
    "Received disconnect from ",
    "Disconnected from ",
    "Connection closed by ",
    "Connection reset by ",
    "Connection from ",
    "Unable to negotiate with ",
];

/// sshd's wording before a user name it writes verbatim (spaces included).
const SSHD_USER_MARKERS: [&str; 3] = ["invalid user ", "Invalid user ", "authenticating user "];

/// PAM's wording before a user name (`session opened for user NAME(uid=N)`),
/// which any program may log.
const PAM_USER_MARKER: &str = "for user ";

/// Whether `program` is OpenSSH's server: `sshd`, its per-connection
/// `sshd-session` (OpenSSH 9.8+) or its `sshd-auth` (OpenSSH 10+).
fn is_sshd(program: Option<&str>) -> bool {
    matches!(program, Some("sshd" | "sshd-session" | "sshd-auth"))
}

/// The client address sshd logs: `from IP port N`, `user NAME IP port N`,
/// `from IP port N:CODE:`, `from IP`.
fn sshd_peer(message: &str, marker: Option<(usize, usize)>) -> Option<Peer<'_>> {
    // sshd prefixes messages it logs at error level.
    let body = message.strip_prefix("error: ").unwrap_or(message);
    let offset = message.len() - body.len();
    for prefix in ADDRESS_FIRST {
        if let Some(rest) = body.strip_prefix(prefix) {
            let (ip, after) = rest.split_once(' ').unwrap_or((rest, ""));
            if looks_like_address(ip) {
                let port = after.strip_prefix("port ").and_then(port_number);
                let at = offset + prefix.len();
                return Some(Peer { ip, port, at });
            }
        }
    }
    // Elsewhere a client-chosen user name comes before the address and may
    // itself read `from IP port N`: the last address is the client's.
    for (at, _) in message.rmatch_indices(" port ") {
        let before = &message[..at];
        let ip_at = before.rfind(' ').map_or(0, |space| space + 1);
        let ip = &before[ip_at..];
        let port = port_number(&message[at + " port ".len()..]);
        // The bare `IP port N` only follows a user name.
        let introduced =
            before[..ip_at].ends_with(" from ") || marker.is_some_and(|(m, _)| m < ip_at);
        if port.is_some() && introduced && looks_like_address(ip) {
            return Some(Peer {
                ip,
                port,
                at: ip_at,
            });
        }
    }
    message.rmatch_indices(" from ").find_map(|(at, _)| {
        let at = at + " from ".len();
        let ip = message[at..].split(' ').next()?;
        looks_like_address(ip).then_some(Peer { ip, port: None, at })
    })
}

fn looks_like_address(token: &str) -> bool {
    token.contains(['.', ':'])
}

/// The leading digits of `text` (`50001` of `50001:11:`).
fn port_number(text: &str) -> Option<&str> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    Some(&text[..end]).filter(|port| !port.is_empty())
}

/// The earliest user marker: where it starts and where the name starts. The
/// earliest is sshd's own wording; a copy inside a user name comes after it.
/// sshd's markers count in `sshd` lines only; PAM's in every line.
fn user_marker(message: &str, sshd: bool) -> Option<(usize, usize)> {
    let sshd_markers: &[&str] = if sshd { &SSHD_USER_MARKERS } else { &[] };
    sshd_markers
        .iter()
        .chain([&PAM_USER_MARKER])
        .filter_map(|marker| message.find(marker).map(|at| (at, at + marker.len())))
        .min()
}

/// The user: a `user=` pair or sshd's `for [invalid user] NAME from`,
/// `Invalid user NAME from`, `authenticating user NAME IP port N` (in `sshd`
/// lines), PAM's `for user NAME(uid=N)`. Whichever wording comes first is the
/// logger's, so a user name that reads `user=root` cannot override the real
/// one.
fn user<'a>(
    message: &'a str,
    sshd: bool,
    marker: Option<(usize, usize)>,
    peer: Option<Peer<'a>>,
) -> Option<&'a str> {
    // A marker after the client address is client text (a disconnect reason).
    let marker = marker.filter(|(at, _)| peer.is_none_or(|p| *at < p.at));
    match pair_at(message, "user") {
        Some((pair_at, value)) if marker.is_none_or(|(at, _)| pair_at < at) => {
            Some(value).filter(|v| !v.is_empty())
        }
        _ => match marker {
            Some((_, name_at)) => marker_user(message, name_at, peer),
            None if sshd => {
                let (_, after) = message.split_once(" for ")?;
                let (user, rest) = after.split_once(' ')?;
                rest.starts_with("from ")
                    .then_some(user)
                    .filter(|u| !u.is_empty())
            }
            None => None,
        },
    }
}

/// The name after a marker: up to the client address when sshd logged one
/// after it (the name may hold spaces), else one word (PAM's `root(uid=0)`
/// is `root`).
fn marker_user<'a>(message: &'a str, name_at: usize, peer: Option<Peer<'a>>) -> Option<&'a str> {
    let name = match peer.filter(|p| p.at >= name_at) {
        Some(peer) => {
            let name = &message[name_at..peer.at];
            name.strip_suffix(" from ")
                .or_else(|| name.strip_suffix(' '))
                .unwrap_or(name)
        }
        None => {
            let rest = &message[name_at..];
            &rest[..rest.find([' ', '(']).unwrap_or(rest.len())]
        }
    };
    Some(name).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::FieldPath;

    const NOW: i64 = 1_709_294_400_000; // 2024-03-01T12:00:00Z

    /// `(user, src_ip, src_port)` of a message.
    fn sshd_fields(message: &str) -> (Option<&str>, Option<&str>, Option<&str>) {
        let marker = user_marker(message, true);
        let peer = sshd_peer(message, marker);
        (
            user(message, true, marker, peer),
            peer.map(|p| p.ip),
            peer.and_then(|p| p.port),
        )
    }

    #[test]
    fn splits_syslog_lines() {
        let line = "Mar  1 12:00:02 ip-10-0-0-5 sshd[1234]: Failed password for invalid user admin from 203.0.113.9 port 50000 ssh2";
        let parsed = parse_line(line, NOW);
        assert_eq!(parsed.time_ms, Some(NOW + 2000));
        assert_eq!(parsed.host, Some("ip-10-0-0-5"));
        assert_eq!(parsed.program, Some("sshd"));
        assert_eq!(parsed.pid, Some("1234"));
        assert_eq!(
            sshd_fields(parsed.message),
            (Some("admin"), Some("203.0.113.9"), Some("50000"))
        );
        assert_eq!(
            sshd_fields("Accepted publickey for ec2-user from 1.2.3.4 port 22 ssh2").0,
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

    /// An audit helper's cases: relayed lines with a `<PRI>`, and RFC 5424
    /// lines, lost their host and program (so an sshd failure's client
    /// address, read only from sshd's lines, and one alert of two), or
    /// were dead-lettered from a file.
    #[test]
    fn splits_priority_and_rfc5424_lines() {
        let classic = "<38>Mar  1 12:00:02 ip-10-0-0-5 sshd[1234]: Failed password for root from 203.0.113.9 port 50000 ssh2";
        let parsed = parse_line(classic, NOW);
        assert_eq!(
            (parsed.time_ms, parsed.host, parsed.program, parsed.pid),
            (
                Some(NOW + 2000),
                Some("ip-10-0-0-5"),
                Some("sshd"),
                Some("1234")
            )
        );
        assert!(has_timestamp_prefix(classic));
        let rfc5424 = "<38>1 2024-03-01T12:00:02.003Z ip-10-0-0-5 sshd 1234 - - Failed password for root from 203.0.113.9 port 50000 ssh2";
        let parsed = parse_line(rfc5424, NOW);
        assert_eq!(
            (parsed.time_ms, parsed.host, parsed.program, parsed.pid),
            (
                Some(NOW + 2003),
                Some("ip-10-0-0-5"),
                Some("sshd"),
                Some("1234")
            )
        );
        assert_eq!(
            sshd_fields(parsed.message),
            (Some("root"), Some("203.0.113.9"), Some("50000"))
        );
        assert!(has_timestamp_prefix(rfc5424));
        // Structured data (a `]` escaped in a value), a BOM before the
        // message, nil values.
        let sd = "<86>1 2024-03-01T12:00:02Z h su - ID47 [a@1 k=\"x\\]y\"][b@2 z=\"1\"] \u{feff}pam_unix(su:auth): authentication failure; user=dbdev";
        let parsed = parse_line(sd, NOW);
        assert_eq!((parsed.program, parsed.pid), (Some("su"), None));
        assert_eq!(
            parsed.message,
            "pam_unix(su:auth): authentication failure; user=dbdev"
        );
        let nil = parse_line("<13>1 - - - - - -", NOW);
        assert_eq!((nil.time_ms, nil.host, nil.message), (None, None, ""));
        // Not a priority, not RFC 5424.
        assert_eq!(parse_line("<html> page", NOW).message, "<html> page");
        assert_eq!(parse_line("1 apple", NOW).message, "1 apple");
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

    /// `[user, src_ip, src_port]` of a whole line, through the decoder.
    fn decode_fields(line: &str) -> Vec<FieldValue<'static>> {
        decode_fields_in(line, &Envelope::default())
    }

    /// `[user, src_ip, src_port]` of a line that came in `envelope`.
    fn decode_fields_in(line: &str, envelope: &Envelope<'_>) -> Vec<FieldValue<'static>> {
        let mut plan = FieldPlan::new(EventKind::HostLog);
        for p in ["user", "src_ip", "src_port"] {
            plan.slot_for(&FieldPath::parse(p).unwrap());
        }
        let mut got = Vec::new();
        HostLogDecoder::new(&plan)
            .decode(line, envelope, &mut |e| {
                got = e
                    .fields
                    .iter()
                    .cloned()
                    .map(FieldValue::into_owned)
                    .collect();
            })
            .unwrap();
        got
    }

    fn text(value: &str) -> FieldValue<'static> {
        FieldValue::Str(value.to_owned().into())
    }

    #[test]
    fn a_january_line_read_on_new_years_eve_takes_next_year() {
        let line = "Jan  1 00:00:05 ip-10-10-20-20 su: pam_unix(su:auth): authentication failure; logname= uid=1000 euid=0 tty=pts/0 ruser=ec2-user rhost=  user=dbdev";
        // Read at 2026-12-31T23:59:50Z: 2027-01-01T00:00:05Z, not 2026.
        let parsed = parse_line(line, 1_798_761_590_000);
        assert_eq!(parsed.time_ms, Some(1_798_761_605_000));
        // A line a few minutes ahead mid-year stays in this year (2026-06-15).
        let june = parse_line("Jun 15 12:05:00 h p: m", 1_781_524_800_000);
        assert_eq!(june.time_ms, Some(1_781_525_100_000));
        // Just past New Year, a New Year's Eve line is last year's.
        let eve = parse_line("Dec 31 23:59:55 h p: m", 1_798_761_605_000);
        assert_eq!(eve.time_ms, Some(1_798_761_595_000));
    }

    #[test]
    fn a_user_name_cannot_choose_the_client_address() {
        let line = "Nov 25 07:00:06 ip-10-0-0-5 sshd[1234]: Invalid user x from 198.51.100.1 port 1 from 203.0.113.12 port 50002";
        // The name is all sshd wrote for it; the address is the last one.
        let spoofed = vec![
            text("x from 198.51.100.1 port 1"),
            text("203.0.113.12"),
            FieldValue::Number(50002.0),
        ];
        assert_eq!(decode_fields(line), spoofed);
        let failed = "Nov 25 07:00:06 ip-10-0-0-5 sshd[1234]: Failed password for invalid user x from 198.51.100.1 port 1 from 203.0.113.12 port 50002 ssh2";
        assert_eq!(decode_fields(failed), spoofed);
        let closed = "Nov 25 07:01:10 web1 sshd[2010]: Connection closed by invalid user x 198.51.100.1 port 1 203.0.113.50 port 41010 [preauth]";
        assert_eq!(
            decode_fields(closed),
            vec![
                text("x 198.51.100.1 port 1"),
                text("203.0.113.50"),
                FieldValue::Number(41010.0)
            ]
        );
        // A name reading `user=root` is not the user.
        let paired = "Nov 25 07:00:06 ip-10-0-0-5 sshd[1234]: Invalid user x user=root from 203.0.113.12 port 50002";
        assert_eq!(decode_fields(paired)[0], text("x user=root"));
        // A disconnect reason comes after the address: the first one counts,
        // and a user marker in it is no user.
        let reason = "Nov 25 07:00:03 ip-10-0-0-5 sshd[1234]: Received disconnect from 203.0.113.10 port 50001:11: invalid user root from 198.51.100.1 port 1 [preauth]";
        assert_eq!(
            decode_fields(reason),
            vec![
                FieldValue::Missing,
                text("203.0.113.10"),
                FieldValue::Number(50001.0)
            ]
        );
    }

    #[test]
    fn a_pam_session_user_stops_before_its_uid() {
        let line = "Nov 25 07:00:02 ip-10-0-0-5 sshd[1234]: pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)";
        assert_eq!(decode_fields(line)[0], text("root"));
        let su = "Nov 25 07:00:02 ip-10-0-0-5 su[99]: pam_unix(su-l:session): session opened for user root(uid=0) by ec2-user(uid=1000)";
        assert_eq!(decode_fields(su)[0], text("root"));
    }

    #[test]
    fn modern_sshd_shapes_keep_the_client_address() {
        let cases = [
            ("Nov 25 07:00:04 ip-10-0-0-5 sshd[1234]: Connection closed by authenticating user root 203.0.113.11 port 22 [preauth]", Some("root"), "203.0.113.11", 22.0),
            ("Nov 25 07:01:04 web1 sshd[2004]: Disconnected from authenticating user root 203.0.113.44 port 41004 [preauth]", Some("root"), "203.0.113.44", 41004.0),
            ("Nov 25 07:01:10 web1 sshd[2010]: Connection closed by invalid user admin 203.0.113.50 port 41010 [preauth]", Some("admin"), "203.0.113.50", 41010.0),
            ("Nov 25 07:00:03 ip-10-0-0-5 sshd[1234]: Received disconnect from 203.0.113.10 port 50001:11: Bye Bye [preauth]", None, "203.0.113.10", 50001.0),
            // Already right before; kept so.
            ("Nov 25 07:00:07 ip-10-0-0-5 sshd[1234]: Failed password for invalid user admin from 2001:db8::1 port 50000 ssh2", Some("admin"), "2001:db8::1", 50000.0),
            ("Nov 25 07:01:12 web1 sshd[2012]: Failed password for root from ::ffff:203.0.113.52 port 41012 ssh2", Some("root"), "::ffff:203.0.113.52", 41012.0),
            ("Nov 25 07:01:01 web1 sshd[2001]: Connection from 2001:db8::5 port 41000 on 10.0.0.5 port 22 rdomain \"\"", None, "2001:db8::5", 41000.0),
        ];
        for (line, user, ip, port) in cases {
            let want = vec![
                user.map_or(FieldValue::Missing, text),
                text(ip),
                FieldValue::Number(port),
            ];
            assert_eq!(decode_fields(line), want, "{line}");
        }
        // No port: the address alone.
        let pam = "Nov 25 07:01:11 web1 sshd[2011]: error: PAM: Authentication failure for root from 203.0.113.51";
        assert_eq!(
            decode_fields(pam),
            vec![text("root"), text("203.0.113.51"), FieldValue::Missing]
        );
    }

    #[test]
    fn only_sshd_lines_give_the_client_address_and_sshd_user_wording() {
        let missing = vec![FieldValue::Missing; 3];
        // Client-controlled text in other programs' lines, shaped like sshd's.
        let others = [
            "Nov 25 07:00:06 web1 sudo: alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/echo from 198.51.100.7 port 22",
            "Nov 25 07:00:07 web1 alice: Invalid user root from 198.51.100.7 port 22",
            "Nov 25 07:00:08 web1 webapp[77]: login failed for admin from 198.51.100.7 port 22",
            "Nov 25 07:00:09 web1 CROND[88]: (alice) CMD (echo Connection closed by authenticating user root 198.51.100.7 port 22 [preauth])",
            "Nov 25 07:00:10 web1 sshd-keygen: Received disconnect from 198.51.100.7 port 22:11: x",
        ];
        for line in others {
            assert_eq!(decode_fields(line), missing, "{line}");
        }
        // A bare message (no stamp or program; the time from CloudWatch Logs)
        // does not say sshd wrote it.
        let envelope = Envelope {
            timestamp_ms: Some(NOW),
            ..Envelope::default()
        };
        let bare = "Failed password for invalid user admin from 198.51.100.7 port 22 ssh2";
        assert_eq!(decode_fields_in(bare, &envelope), missing);
        // PAM's wording still names the user, whichever program logged it.
        let sudo = "Nov 25 07:00:11 web1 sudo: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)";
        assert_eq!(
            decode_fields(sudo),
            vec![text("root"), FieldValue::Missing, FieldValue::Missing]
        );
        // OpenSSH 9.8+ logs from sshd-session, 10.0 also from sshd-auth.
        let sshd = [
            ("Nov 25 07:00:12 web1 sshd-session[5100]: Failed password for root from 203.0.113.9 port 50000 ssh2", "root", "203.0.113.9", 50000.0),
            ("Nov 25 07:00:13 web1 sshd-auth[5101]: Connection closed by invalid user admin 203.0.113.10 port 50001 [preauth]", "admin", "203.0.113.10", 50001.0),
            ("Nov 25 07:00:14 web1 sshd[5102]: Invalid user admin from 203.0.113.11 port 50002", "admin", "203.0.113.11", 50002.0),
        ];
        for (line, user, ip, port) in sshd {
            let want = vec![text(user), text(ip), FieldValue::Number(port)];
            assert_eq!(decode_fields(line), want, "{line}");
        }
    }
}
