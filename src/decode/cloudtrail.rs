//! One CloudTrail record (a JSON object) to one [`Event`].
//!
//! Contract: the planned CloudTrail paths, plus `eventTime`, `eventID`,
//! `recipientAccountId`, `userIdentity.accountId` and `awsRegion`, are read
//! in one pass by the [`json`](super::json) extractor. The event's `text` is
//! the record's raw JSON; `time_ms` is `eventTime` (RFC 3339). A missing
//! `eventTime` is `missing_event_time`, a string that does not parse is
//! `bad_event_time`, a non-string is `wrong_type`. `account` is
//! `recipientAccountId`, falling back to `userIdentity.accountId`, then to
//! the CloudWatch Logs owner.

use std::borrow::Cow;
use std::cell::Cell;

use chrono::DateTime;

use crate::decode::json::{self, Extracted, PathTrie, Target};
use crate::decode::{DecodeError, DecodeErrorReason, Envelope, EnvelopeSlots};
use crate::event::{Event, EventKind, FieldValue, Fields};
use crate::fields::{FieldPath, FieldPlan, Slot};
use crate::rules::gate::RuleGate;

const EVENT_TIME: u8 = 0;
const EVENT_ID: u8 = 1;
const RECIPIENT_ACCOUNT: u8 = 2;
const IDENTITY_ACCOUNT: u8 = 3;
const REGION: u8 = 4;

/// Decodes CloudTrail records for one field plan.
#[derive(Clone, Debug)]
pub struct CloudTrailDecoder {
    trie: PathTrie,
    /// The plan's rule gate, with a trie of its fields and `eventTime`.
    gate: Option<(RuleGate, PathTrie)>,
    plan_len: usize,
    envelope: EnvelopeSlots,
    days: DayCache,
}

impl CloudTrailDecoder {
    /// Builds the extraction trie for `plan`.
    pub fn new(plan: &FieldPlan) -> Self {
        let mut trie = PathTrie::default();
        for (index, path) in plan.paths().iter().enumerate() {
            if path.is_envelope() {
                continue;
            }
            if let Ok(slot) = Slot::try_from(index) {
                trie.insert(path, Target::Slot(slot));
            }
        }
        for (path, special) in [
            ("eventTime", EVENT_TIME),
            ("eventID", EVENT_ID),
            ("recipientAccountId", RECIPIENT_ACCOUNT),
            ("userIdentity.accountId", IDENTITY_ACCOUNT),
            ("awsRegion", REGION),
        ] {
            if let Ok(path) = FieldPath::parse(path) {
                trie.insert(&path, Target::Special(special));
            }
        }
        let gate = plan.gate().map(|gate| {
            // The gate pass fills a short vector of the gate's own fields,
            // in gate order, not the plan's slots.
            let mut gate_trie = PathTrie::default();
            for (at, (path, _)) in gate.fields().enumerate() {
                if let Ok(at) = Slot::try_from(at) {
                    gate_trie.insert(path, Target::Slot(at));
                }
            }
            if let Ok(path) = FieldPath::parse("eventTime") {
                gate_trie.insert(&path, Target::Special(EVENT_TIME));
            }
            (gate.clone(), gate_trie)
        });
        CloudTrailDecoder {
            trie,
            gate,
            plan_len: plan.len(),
            days: DayCache::default(),
            envelope: EnvelopeSlots::from_plan(plan),
        }
    }

    /// Decodes one record whose JSON text is `text` and hands the event to
    /// `emit`.
    pub fn decode<'a>(
        &self,
        text: &'a str,
        envelope: &Envelope<'a>,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> Result<(), DecodeError> {
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
        if let Some((gate, gate_trie)) = &self.gate {
            // Read the gate's fields and the time first: most records match
            // no rule, and then the rest of the record is only validated.
            let mut values = Fields::new();
            values.extend((0..gate.len()).map(|_| FieldValue::Missing));
            let mut extracted = Extracted {
                fields: &mut values,
                specials: Default::default(),
            };
            // A record the fast walker refuses goes the whole way, for
            // serde_json's verdict.
            let read = json::fast_extract(gate_trie, text, &mut extracted).is_ok();
            let ruled_out = read && !gate.may_match(extracted.fields);
            let [time, rest @ ..] = extracted.specials;
            rest.into_iter().for_each(FieldValue::discard);
            while let Some(value) = values.pop() {
                value.discard();
            }
            if ruled_out {
                // Only its time is used: it moves the watermark.
                let event = Event {
                    kind: EventKind::CloudTrail,
                    time_ms: self.days.event_time(time)?,
                    text: Cow::Borrowed(text),
                    fields: Fields::new(),
                    id: None,
                    account: None,
                    region: None,
                    ruled_out: true,
                };
                emit(&event);
                return Ok(());
            }
            time.discard();
        }
        // Built in place: the inline field vector is filled where it lies
        // (moving it in would copy all of its inline capacity).
        let mut event = Event {
            kind: EventKind::CloudTrail,
            time_ms: 0,
            text: Cow::Borrowed(text),
            fields: Fields::new(),
            id: None,
            account: None,
            region: None,
            ruled_out: false,
        };
        event
            .fields
            .extend((0..self.plan_len).map(|_| FieldValue::Missing));
        let mut extracted = Extracted {
            fields: &mut event.fields,
            specials: Default::default(),
        };
        json::extract(&self.trie, text, &mut extracted)?;
        let [time, id, recipient, identity_account, region, _] = extracted.specials;
        event.time_ms = self.days.event_time(time)?;
        self.envelope.fill(&mut event.fields, envelope, text);
        event.account = into_str(recipient)
            .or_else(|| into_str(identity_account))
            .or(envelope.owner.map(Cow::Borrowed));
        event.id = into_str(id);
        event.region = into_str(region);
        emit(&event);
        event.discard();
        Ok(())
    }
}

/// The day of the last `eventTime` the fast path read. Records of one
/// stream nearly always share their day with the one before, and then only
/// the clock time is parsed.
#[derive(Clone, Debug, Default)]
struct DayCache(Cell<Option<([u8; 11], i64)>>);

impl DayCache {
    /// `eventTime` as epoch milliseconds, or why it cannot be.
    fn event_time(&self, time: FieldValue<'_>) -> Result<i64, DecodeError> {
        let parsed = match &time {
            FieldValue::Str(s) => self.parse(s).ok_or_else(|| {
                DecodeError::new(
                    DecodeErrorReason::BadEventTime,
                    format!("unparseable eventTime {s:?}"),
                )
            }),
            FieldValue::Missing => Err(DecodeError::new(
                DecodeErrorReason::MissingEventTime,
                "no eventTime",
            )),
            other => Err(DecodeError::new(
                DecodeErrorReason::WrongType,
                format!("eventTime is not a string: {other:?}"),
            )),
        };
        time.discard();
        parsed
    }

    /// [`parse_rfc3339_ms`], through the cached day when `text` has the
    /// CloudTrail shape `YYYY-MM-DDTHH:MM:SSZ`.
    #[inline]
    fn parse(&self, text: &str) -> Option<i64> {
        let Ok(b) = <&[u8; 20]>::try_from(text.as_bytes()) else {
            return parse_rfc3339_ms(text);
        };
        if let Some((day, day_ms)) = self.0.get() {
            if b[..11] == day {
                if let Some(clock) = clock_ms(b) {
                    return Some(day_ms + clock);
                }
            }
        }
        let (Some(day_ms), Some(clock)) = (day_start_ms(b), clock_ms(b)) else {
            return parse_rfc3339_ms(text);
        };
        if let Ok(day) = <[u8; 11]>::try_from(&b[..11]) {
            self.0.set(Some((day, day_ms)));
        }
        Some(day_ms + clock)
    }
}

fn into_str(value: FieldValue<'_>) -> Option<Cow<'_, str>> {
    match value {
        FieldValue::Str(s) => Some(s),
        _ => None,
    }
}

/// Parses an RFC 3339 timestamp (`2024-03-01T12:00:05Z`, with or without
/// fractional seconds, any offset) to epoch milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    if let Some(ms) = parse_utc_fast(text.as_bytes()) {
        return Some(ms);
    }
    // The shortest RFC 3339 stamp, `YYYY-MM-DDTHH:MM:SSZ`, has 20 bytes;
    // rejecting shorter text here spares chrono a parse (host-log
    // detection tries every line's first word).
    if text.len() < 20 {
        return None;
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Fast path for the CloudTrail shape `YYYY-MM-DDTHH:MM:SSZ`.
fn parse_utc_fast(b: &[u8]) -> Option<i64> {
    // A fixed-size array: every index below is checked at compile time.
    let b: &[u8; 20] = b.try_into().ok()?;
    Some(day_start_ms(b)? + clock_ms(b)?)
}

/// The `YYYY-MM-DDT` of a `YYYY-MM-DDTHH:MM:SSZ` stamp as the epoch
/// milliseconds its day starts at.
#[inline]
fn day_start_ms(b: &[u8; 20]) -> Option<i64> {
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let (year, month, day) = (two(b, 0)? * 100 + two(b, 2)?, two(b, 5)?, two(b, 8)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400_000)
}

/// The `HH:MM:SSZ` of a `YYYY-MM-DDTHH:MM:SSZ` stamp as milliseconds into
/// its day.
#[inline(always)]
fn clock_ms(b: &[u8; 20]) -> Option<i64> {
    if b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let (hour, minute, second) = (two(b, 11)?, two(b, 14)?, two(b, 17)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(((hour * 60 + minute) * 60 + second) * 1000)
}

/// The two decimal digits at `i` and `i + 1`.
#[inline(always)]
fn two(b: &[u8; 20], i: usize) -> Option<i64> {
    let digit = |i: usize| {
        let d = b.get(i)?.wrapping_sub(b'0');
        (d < 10).then_some(i64::from(d))
    };
    Some(digit(i)? * 10 + digit(i + 1)?)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder(paths: &[&str]) -> CloudTrailDecoder {
        let mut plan = FieldPlan::new(EventKind::CloudTrail);
        for p in paths {
            plan.slot_for(&FieldPath::parse(p).unwrap());
        }
        CloudTrailDecoder::new(&plan)
    }

    fn decode_one(d: &CloudTrailDecoder, text: &str) -> Result<Event<'static>, DecodeError> {
        let mut got = None;
        d.decode(text, &Envelope::default(), &mut |e| {
            got = Some(Event {
                kind: e.kind,
                time_ms: e.time_ms,
                text: Cow::Owned(e.text.to_string()),
                fields: e
                    .fields
                    .iter()
                    .cloned()
                    .map(FieldValue::into_owned)
                    .collect(),
                id: e.id.as_ref().map(|s| Cow::Owned(s.to_string())),
                account: e.account.as_ref().map(|s| Cow::Owned(s.to_string())),
                region: e.region.as_ref().map(|s| Cow::Owned(s.to_string())),
                ruled_out: e.ruled_out,
            })
        })?;
        Ok(got.unwrap())
    }

    /// A decoder for the built-in pack, whose plan carries the rule gate.
    fn gated() -> (CloudTrailDecoder, crate::rules::RuleSet) {
        let loaded = crate::rules::load_all(&[], false).expect("built-in rules");
        let rules = crate::rules::compile_all(&loaded).expect("compile");
        let plan = rules.plans().for_kind(EventKind::CloudTrail);
        assert!(plan.gate().is_some());
        (CloudTrailDecoder::new(plan), rules)
    }

    #[test]
    fn a_ruled_out_record_keeps_its_time_and_a_candidate_is_read_whole() {
        let (d, rules) = gated();
        let plan = rules.plans().for_kind(EventKind::CloudTrail);
        let slot = |name: &str| plan.get(&FieldPath::parse(name).unwrap()).unwrap();
        let quiet = r#"{"eventTime":"2024-03-01T12:00:05Z","eventName":"ListRoles","eventID":"e1","recipientAccountId":"111122223333","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/a"}}"#;
        let event = decode_one(&d, quiet).unwrap();
        assert!(event.ruled_out);
        assert!(event.fields.is_empty(), "a ruled-out event has no slots");
        assert_eq!(event.time_ms, 1_709_294_405_000);
        assert_eq!(event.text, quiet);
        // Only the gate's fields were read.
        assert_eq!(event.id, None);
        assert!(matches!(
            event.field(slot("recipientAccountId")),
            FieldValue::Missing
        ));
        let denied = quiet.replace(r#""eventID""#, r#""errorCode":"AccessDenied","eventID""#);
        let event = decode_one(&d, &denied).unwrap();
        assert!(!event.ruled_out);
        assert_eq!(event.id.as_deref(), Some("e1"));
        assert_eq!(event.account.as_deref(), Some("111122223333"));
        assert!(matches!(
            event.field(slot("userIdentity.arn")),
            FieldValue::Str(s) if s == "arn:aws:iam::111122223333:user/a"
        ));
    }

    /// The gate changes no verdict on a bad record: the same errors, with
    /// the same reasons and messages, as the decoder without it.
    #[test]
    fn the_gate_keeps_every_error() {
        let (gated, rules) = gated();
        let mut plan = rules.plans().for_kind(EventKind::CloudTrail).clone();
        plan.set_gate(None);
        let plain = CloudTrailDecoder::new(&plan);
        let records = [
            r#"{"eventName":"ListRoles"}"#,
            r#"{"eventTime":"yesterday","eventName":"ListRoles"}"#,
            r#"{"eventTime":5,"eventName":"ListRoles"}"#,
            r#"{"eventTime":"2024-03-01T12:00:05Z","eventName":"ListRoles","x":[1,}"#,
            r#"{"eventTime":"2024-03-01T12:00:05Z","eventName":"ListRoles""#,
            r#"{"eventTime":"2024-03-01T12:00:05Z","eventName":"ListRoles"} trailing"#,
            r#"["eventTime"]"#,
            r#"{"eventTime":"2024-03-01T12:00:05Z","eventName":"ListRoles","userIdentity":{"type":"Root"}}"#,
            r#"{"eventTime":"2024-03-01T12:00:05Z","eventName":"ConsoleLogin","errorMessage":"Failed authentication"}"#,
        ];
        for record in records {
            let got = decode_one(&gated, record);
            let want = decode_one(&plain, record);
            match (&got, &want) {
                (Ok(got), Ok(want)) => assert_eq!(got.time_ms, want.time_ms, "{record}"),
                (Err(got), Err(want)) => {
                    assert_eq!(got.reason, want.reason, "{record}");
                    assert_eq!(got.detail, want.detail, "{record}");
                }
                _ => panic!("{record}: {got:?} against {want:?}"),
            }
        }
    }

    #[test]
    fn decodes_a_record() {
        let d = decoder(&["eventName", "userIdentity.arn", "eventTime", "@log_stream"]);
        let text = r#"{"eventVersion":"1.08","userIdentity":{"arn":"arn:aws:iam::1:user/a","accountId":"111"},
            "eventTime":"2024-03-01T12:00:05Z","eventName":"ConsoleLogin","awsRegion":"us-east-1","eventID":"e1"}"#;
        let e = decode_one(&d, text).unwrap();
        assert_eq!(e.time_ms, 1_709_294_405_000);
        assert_eq!(e.fields.len(), 4);
        assert_eq!(e.fields[0], FieldValue::Str("ConsoleLogin".into()));
        assert_eq!(e.fields[1], FieldValue::Str("arn:aws:iam::1:user/a".into()));
        assert_eq!(e.fields[2], FieldValue::Str("2024-03-01T12:00:05Z".into()));
        assert_eq!(e.fields[3], FieldValue::Missing);
        assert_eq!(e.id.as_deref(), Some("e1"));
        assert_eq!(e.account.as_deref(), Some("111"));
        assert_eq!(e.region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn event_time_errors() {
        let d = decoder(&[]);
        let reason = |t: &str| decode_one(&d, t).unwrap_err().reason;
        assert_eq!(
            reason(r#"{"eventName":"x"}"#),
            DecodeErrorReason::MissingEventTime
        );
        assert_eq!(
            reason(r#"{"eventTime":"yesterday"}"#),
            DecodeErrorReason::BadEventTime
        );
        assert_eq!(reason(r#"{"eventTime":5}"#), DecodeErrorReason::WrongType);
        assert_eq!(
            reason(r#"{"eventTime":"2024-02-30T00:00:00Z"}"#),
            DecodeErrorReason::BadEventTime
        );
        let e = decode_one(&d, r#"{"eventTime":"2024-03-01T12:00:05.250Z"}"#).unwrap();
        assert_eq!(e.time_ms, 1_709_294_405_250);
    }

    #[test]
    fn fast_time_path_agrees_with_chrono() {
        for t in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "2024-12-31T01:02:03Z",
            "1969-12-31T23:59:59Z",
        ] {
            let slow = DateTime::parse_from_rfc3339(t).unwrap().timestamp_millis();
            assert_eq!(parse_utc_fast(t.as_bytes()), Some(slow), "{t}");
        }
    }

    #[test]
    fn the_day_cache_agrees_with_a_fresh_parse() {
        let days = DayCache::default();
        for t in [
            "2024-03-01T12:00:00Z",
            "2024-03-01T12:00:01Z",
            "2024-03-01T23:59:59Z",
            "2024-03-01T24:00:00Z",
            "2024-03-01T12:60:00Z",
            "2024-03-01T12:00:00.5Z",
            "2024-03-01T12:00:00+01:00",
            "2024-03-02T00:00:00Z",
            "2024-03-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-03-01T12:00:0xZ",
            "2024-03-01T12:00:00X",
        ] {
            assert_eq!(days.parse(t), parse_rfc3339_ms(t), "{t}");
        }
    }

    proptest::proptest! {
        /// Whatever the fast path accepts, chrono reads the same; an
        /// ordinary stamp is always taken by the fast path.
        #[test]
        fn fast_time_path_never_disagrees_with_chrono(
            year in 0u32..10_000,
            month in 0u32..14,
            day in 0u32..33,
            hour in 0u32..25,
            minute in 0u32..61,
            second in 0u32..62,
            damage in proptest::option::of((0usize..20, 0u8..128)),
        ) {
            let mut stamp =
                format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
                    .into_bytes();
            if let Some((at, byte)) = damage {
                stamp[at] = byte;
            }
            let text = std::str::from_utf8(&stamp).expect("ASCII");
            let slow = DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.timestamp_millis());
            let fast = parse_utc_fast(&stamp);
            if fast.is_some() {
                proptest::prop_assert_eq!(fast, slow, "{}", text);
            }
            let ordinary = (1..=12).contains(&month)
                && (1..=28).contains(&day)
                && hour < 24
                && minute < 60
                && second < 60;
            if damage.is_none() && ordinary {
                proptest::prop_assert!(fast.is_some(), "{}", text);
            }
        }
    }
}
