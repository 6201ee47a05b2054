//! Envelope auto-detection: which decoder reads a record.
//!
//! Rules, applied per record (and again to every payload an envelope
//! unwraps, at most [`MAX_NESTING`] levels deep, else `too_deep`):
//!
//! 1. gzip magic `1f 8b`: decompress (capped) and detect again.
//! 2. KPL magic `F3 89 9A C2`: deaggregate; detect each inner record.
//! 3. Not UTF-8: `invalid_utf8`. Only whitespace: `empty_record`.
//! 4. Leading `[`: a JSON array of CloudTrail records, each decoded (and
//!    dead-lettered) on its own.
//! 5. Leading `{`: the top-level keys are scanned until a decisive one:
//!    `Records` is an S3 log file; `messageType` / `logEvents` a CloudWatch
//!    Logs envelope; `awslogs` the Lambda base64 wrapper; `detail-type` /
//!    `detail` an EventBridge event; `eventVersion`, `eventTime`,
//!    `eventName`, `eventSource`, `eventID`, `userIdentity`,
//!    `recipientAccountId` or `awsRegion` a single CloudTrail record. No
//!    decisive key: `unknown_format`.
//! 6. Otherwise text, one event per line (`\n`, `\r` stripped, blank lines
//!    skipped): a flow header line (a known flow field name first, then
//!    field names, known here or not) sets the stream's flow format and
//!    emits nothing; a line with a syslog or
//!    RFC 3339 stamp is a host log; a line with as many fields as the flow
//!    format, or starting `2 `, is a flow record; anything else is a host
//!    log when it came with a CloudWatch Logs timestamp, else
//!    `unknown_format`. A CloudWatch Logs message starting with `{` is an
//!    EventBridge event when its keys say so (a rule targeting a log
//!    group), else a CloudTrail record. One log event of the wrong shape
//!    is dead-lettered alone (see [`cloudwatch`]).
//!
//! A forced [`DecoderKind`] skips steps 4 to 6 (gzip is still unwrapped).
//!
//! An EventBridge event's `detail-type` and `detail` are read with the
//! allocation-free [`scan`](super::scan) scanner; serde_json reads (and
//! words the error for) any event the scanner refuses.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer as _};
use serde_json::value::RawValue;

use crate::decode::cloudwatch::{self, CONTROL_MESSAGE, DATA_MESSAGE};
use crate::decode::flow::{self, FlowFormat};
use crate::decode::json::classify;
use crate::decode::scan::{Scanner, Str};
use crate::decode::{gzip, hostlog, kpl, short};
use crate::decode::{DecodeError, DecodeErrorReason, DecodeSink, Decoder, DecoderKind, Envelope};

/// Passes decoder output on, except the "trailing characters" error of
/// the whole record `whole`, which it keeps (see
/// [`Decoder::decode_objects`]); notes whether anything else came.
struct TrailingGuard<'o, 'w> {
    out: &'o mut dyn DecodeSink,
    whole: &'w [u8],
    delivered: bool,
    trailing: Option<DecodeError>,
}

impl DecodeSink for TrailingGuard<'_, '_> {
    fn event(&mut self, event: &crate::event::Event<'_>) {
        self.delivered = true;
        self.out.event(event);
    }

    fn flow(&mut self, record: &flow::FlowRecord<'_, '_>) {
        self.delivered = true;
        self.out.flow(record);
    }

    fn error(&mut self, error: DecodeError, original: &[u8]) {
        let whole = std::ptr::eq(original, self.whole);
        if whole
            && error.reason == DecodeErrorReason::InvalidJson
            && error.detail.starts_with("trailing characters")
        {
            self.trailing = Some(error);
            return;
        }
        self.delivered = true;
        self.out.error(error, original);
    }

    fn control_message(&mut self) {
        self.delivered = true;
        self.out.control_message();
    }

    fn digest_file(&mut self) {
        self.delivered = true;
        self.out.digest_file();
    }
}

/// How many envelopes may wrap one another (gzip in KPL in gzip...).
pub const MAX_NESTING: u8 = 6;

/// EventBridge detail-types that carry a CloudTrail record.
pub const CLOUDTRAIL_DETAIL_TYPES: [&str; 5] = [
    "AWS API Call via CloudTrail",
    "AWS Console Sign In via CloudTrail",
    "AWS Service Event via CloudTrail",
    "AWS Console Action via CloudTrail",
    "AWS Insight via CloudTrail",
];

/// The shape of a JSON object record, from its top-level keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    S3File,
    CloudWatchLogs,
    AwsLogs,
    EventBridge,
    CloudTrail,
    /// A CloudTrail digest file (`CloudTrail-Digest/` beside the logs).
    CloudTrailDigest,
}

fn shape_of_key(key: &str) -> Option<Shape> {
    match key {
        "Records" => Some(Shape::S3File),
        "messageType" | "logEvents" => Some(Shape::CloudWatchLogs),
        "awslogs" => Some(Shape::AwsLogs),
        "detail-type" | "detail" => Some(Shape::EventBridge),
        "eventVersion" | "eventTime" | "eventName" | "eventSource" | "eventID" | "userIdentity"
        | "recipientAccountId" | "awsRegion" => Some(Shape::CloudTrail),
        "digestStartTime" | "digestEndTime" | "digestS3Object" | "digestPublicKeyFingerprint" => {
            Some(Shape::CloudTrailDigest)
        }
        _ => None,
    }
}

/// Scans the top-level keys of a JSON object until a decisive one.
/// `Ok(None)`: a well-formed object with no decisive key.
pub fn sniff(text: &str) -> Result<Option<Shape>, DecodeError> {
    // Fast path: a decisive first key (a CloudTrail record starts with
    // `eventVersion`) settles it without stopping serde by an error, which
    // allocates. Equal to a decisive key means the key is a clean string.
    if let Some(shape) = first_key(text).and_then(shape_of_key) {
        return Ok(Some(shape));
    }
    let mut found = None;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = deserializer.deserialize_map(SniffVisitor { found: &mut found });
    if found.is_some() {
        return Ok(found);
    }
    result.map_err(classify)?;
    deserializer.end().map_err(classify)?;
    Ok(None)
}

/// The first key of a JSON object, when it has no escapes.
fn first_key(text: &str) -> Option<&str> {
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let bytes = text.as_bytes();
    let mut pos = bytes.iter().position(|b| !is_ws(b))?;
    if bytes[pos] != b'{' {
        return None;
    }
    pos += 1 + bytes[pos + 1..].iter().position(|b| !is_ws(b))?;
    if bytes[pos] != b'"' {
        return None;
    }
    let start = pos + 1;
    let end = start + memchr::memchr2(b'"', b'\\', &bytes[start..])?;
    if bytes[end] != b'"' {
        return None;
    }
    text.get(start..end)
}

struct SniffVisitor<'s> {
    found: &'s mut Option<Shape>,
}

impl<'de> Visitor<'de> for SniffVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(shape) = map.next_key_seed(ShapeKey)? {
            if let Some(shape) = shape {
                *self.found = Some(shape);
                // Stop reading: the caller decodes the record properly.
                return Err(de::Error::custom("shape found"));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

struct ShapeKey;

impl<'de> DeserializeSeed<'de> for ShapeKey {
    type Value = Option<Shape>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Option<Shape>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ShapeKey {
    type Value = Option<Shape>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<Shape>, E> {
        Ok(shape_of_key(key))
    }
}

/// Feeds each element of a JSON array to a callback, as raw JSON text.
struct Elements<'f, 'de> {
    each: &'f mut dyn FnMut(&'de str),
}

impl<'de> DeserializeSeed<'de> for Elements<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of CloudTrail records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            (self.each)(raw.get());
        }
        Ok(())
    }
}

/// Feeds each element of the top-level `Records` array to a callback.
struct RecordsFile<'f, 'de> {
    each: &'f mut dyn FnMut(&'de str),
}

impl<'de> Visitor<'de> for RecordsFile<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an S3 CloudTrail log file")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Owned only when it holds an escape (`"caf\u00e9"`), which a
        // borrowed key cannot take: that failed the whole file.
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "Records" {
                map.next_value_seed(Elements {
                    each: &mut *self.each,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct EventBridgeEvent<'a> {
    #[serde(rename = "detail-type", borrow)]
    detail_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    detail: &'a RawValue,
}

/// The `detail-type` and the raw `detail` of an EventBridge event, read
/// with the allocation-free scanner. `None` leaves it to serde_json (and
/// its error): anything the scanner refuses, escapes in `detail-type` or
/// in a key, a repeated or missing field, an event that is not an object.
fn eventbridge_fields(text: &str) -> Option<(&str, &str)> {
    let mut scanner = Scanner::new(text.as_bytes());
    scanner.expect(b'{').ok()?;
    let (mut detail_type, mut detail) = (None, None);
    if scanner.peek()? != b'}' {
        loop {
            scanner.expect(b'"').ok()?;
            let Str::Plain { start, end } = scanner.string().ok()? else {
                return None;
            };
            let key = text.get(start..end)?;
            scanner.expect(b':').ok()?;
            match key {
                "detail-type" if detail_type.is_none() => {
                    scanner.expect(b'"').ok()?;
                    let Str::Plain { start, end } = scanner.string().ok()? else {
                        return None;
                    };
                    detail_type = Some(text.get(start..end)?);
                }
                "detail" if detail.is_none() => {
                    scanner.peek()?;
                    let start = scanner.pos();
                    scanner.skip_value().ok()?;
                    detail = Some(text.get(start..scanner.pos())?);
                }
                // serde_json rejects a repeated field.
                "detail-type" | "detail" => return None,
                _ => scanner.skip_value().ok()?,
            }
            match scanner.peek()? {
                b',' => scanner.bump(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    scanner.bump();
    if !scanner.at_end() {
        return None;
    }
    Some((detail_type?, detail?))
}

fn error(
    out: &mut dyn DecodeSink,
    reason: DecodeErrorReason,
    detail: impl Into<String>,
    original: &[u8],
) {
    out.error(DecodeError::new(reason, detail), original);
}

impl Decoder {
    /// Decodes `bytes` as `kind` (or detects it), `depth` envelopes deep.
    ///
    /// One plain line of the default flow format, the commonest record, is
    /// tried here, in line at every caller: detection and line splitting
    /// would send it straight to the flow decoder (no `[`, `{` or line
    /// break, not blank, not a header, no `\r` to strip), so it goes there
    /// at once, and with AVX2 the pass that splits it also proves it plain
    /// ASCII (one pass where `short::scan` and the split made two). A
    /// record the flow decoder declines (not plain, or longer than a short
    /// record) takes [`Decoder::dispatch_general`], whose detection reaches
    /// the same decoder for a flow line; so does every other record.
    #[inline]
    pub(crate) fn dispatch(
        &mut self,
        bytes: &[u8],
        kind: DecoderKind,
        depth: u8,
        envelope: &Envelope<'_>,
        out: &mut dyn DecodeSink,
    ) {
        if depth <= MAX_NESTING
            && matches!(kind, DecoderKind::Auto | DecoderKind::VpcFlow)
            && flow::is_default_format_record_bytes(bytes)
        {
            if let Some(result) = self
                .flow
                .decode_if_plain(bytes, envelope, |record| out.flow(record))
            {
                if let Err(e) = result {
                    out.error(e, flow::trim_spaces(bytes));
                }
                return;
            }
        }
        self.dispatch_general(bytes, kind, depth, envelope, out);
    }

    /// [`Decoder::dispatch`] of any record but a plain default-format flow
    /// line: envelopes, detection, every format. Out of line: it is large,
    /// and the flow line's way should not pay its entry.
    #[inline(never)]
    fn dispatch_general(
        &mut self,
        bytes: &[u8],
        kind: DecoderKind,
        depth: u8,
        envelope: &Envelope<'_>,
        out: &mut dyn DecodeSink,
    ) {
        if depth > MAX_NESTING {
            error(
                out,
                DecodeErrorReason::TooDeep,
                "envelopes nested too deep",
                bytes,
            );
            return;
        }
        if gzip::is_gzip(bytes) {
            match gzip::gunzip(bytes, self.config.max_decompressed_bytes) {
                Ok(inflated) => self.dispatch(&inflated, kind, depth + 1, envelope, out),
                Err(e) => out.error(e, bytes),
            }
            return;
        }
        if matches!(kind, DecoderKind::Auto | DecoderKind::Kpl) && kpl::is_kpl(bytes) {
            match kpl::deaggregate(bytes) {
                Ok(aggregate) => {
                    for record in &aggregate.records {
                        self.dispatch(&record.data, DecoderKind::Auto, depth + 1, envelope, out);
                    }
                }
                Err(e) => out.error(e, bytes),
            }
            return;
        }
        if kind == DecoderKind::Kpl {
            error(out, DecodeErrorReason::BadKpl, "missing KPL magic", bytes);
            return;
        }
        // A short ASCII record is checked in the same pass that proves it
        // one plain line; simdutf8 checks the rest in about a third of the
        // instructions of `std::str::from_utf8` (BENCHMARKS.md), and std's
        // error says where.
        let (text, plain) = match short::scan(bytes) {
            Some(short) => (short.text, short.plain),
            None => match simdutf8::basic::from_utf8(bytes) {
                Ok(text) => (text, false),
                Err(_) => {
                    let detail = match std::str::from_utf8(bytes) {
                        Err(e) => e.to_string(),
                        Ok(_) => "invalid UTF-8".to_string(),
                    };
                    error(out, DecodeErrorReason::InvalidUtf8, detail, bytes);
                    return;
                }
            },
        };
        let text = text.trim_ascii();
        // A UTF-8 byte order mark (Windows tools write one) is not content:
        // RFC 8259 lets a JSON parser ignore it.
        let text = text
            .strip_prefix('\u{feff}')
            .map_or(text, str::trim_ascii_start);
        if text.is_empty() {
            error(out, DecodeErrorReason::EmptyRecord, "empty record", bytes);
            return;
        }
        match kind {
            DecoderKind::VpcFlow | DecoderKind::HostLog => {
                for_each_line(text, plain, |line| {
                    self.decode_forced_line(line, plain, kind, envelope, out)
                });
            }
            DecoderKind::Kpl => {}
            _ if text.starts_with('{') => self.decode_objects(text, kind, depth, envelope, out),
            _ => self.decode_text(text, kind, plain, depth, envelope, out),
        }
    }

    /// A text record of a JSON-capable `kind` (not flow, host log or KPL).
    fn decode_text(
        &mut self,
        text: &str,
        kind: DecoderKind,
        plain: bool,
        depth: u8,
        envelope: &Envelope<'_>,
        out: &mut dyn DecodeSink,
    ) {
        match kind {
            DecoderKind::CloudTrail => self.decode_cloudtrail_container(text, out),
            DecoderKind::CloudWatchLogs => match sniff(text) {
                Ok(Some(Shape::AwsLogs)) => {
                    self.decode_awslogs(text, DecoderKind::CloudWatchLogs, depth, out)
                }
                _ => self.decode_logs(text, out),
            },
            DecoderKind::EventBridge => self.decode_eventbridge(text, envelope, out),
            _ => self.detect_text(text, plain, depth, envelope, out),
        }
    }

    /// A text record starting with `{`: one JSON object, or several on
    /// lines of their own (JSON lines in one Kafka message or Kinesis
    /// record). It is decoded as one value; only when that parse stops at
    /// characters after a line break is each value decoded on its own,
    /// less what the first one already gave (an S3 file's records are
    /// emitted as they are read). Characters after the object on its own
    /// line are still an error of the whole record.
    fn decode_objects(
        &mut self,
        text: &str,
        kind: DecoderKind,
        depth: u8,
        envelope: &Envelope<'_>,
        out: &mut dyn DecodeSink,
    ) {
        let mut guard = TrailingGuard {
            out,
            whole: text.as_bytes(),
            delivered: false,
            trailing: None,
        };
        self.decode_text(text, kind, false, depth, envelope, &mut guard);
        let TrailingGuard {
            out,
            delivered,
            trailing,
            ..
        } = guard;
        let Some(trailing) = trailing else {
            return;
        };
        let mut values = serde_json::Deserializer::from_str(text).into_iter::<IgnoredAny>();
        let first_end = match values.next() {
            Some(Ok(_)) => values.byte_offset(),
            _ => 0,
        };
        let rest = &text[first_end..];
        let gap = &rest[..rest.len() - rest.trim_ascii_start().len()];
        if first_end == 0 || !gap.contains('\n') {
            out.error(trailing, text.as_bytes());
            return;
        }
        if !delivered {
            self.decode_text(&text[..first_end], kind, false, depth, envelope, out);
        }
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<IgnoredAny>();
        let mut start = 0;
        loop {
            match values.next() {
                None => return,
                Some(Ok(_)) => {
                    let end = values.byte_offset();
                    let value = rest[start..end].trim_ascii();
                    self.decode_text(value, kind, false, depth, envelope, out);
                    start = end;
                }
                Some(Err(e)) => {
                    out.error(classify(e), rest[start..].trim_ascii().as_bytes());
                    return;
                }
            }
        }
    }

    /// `plain`: [`short::scan`] proved `text` one plain line.
    fn detect_text(
        &mut self,
        text: &str,
        plain: bool,
        depth: u8,
        envelope: &Envelope<'_>,
        out: &mut dyn DecodeSink,
    ) {
        if text.starts_with('[') {
            self.decode_cloudtrail_array(text, out);
            return;
        }
        if !text.starts_with('{') {
            for_each_line(text, plain, |line| {
                self.decode_line(line, plain, envelope, out)
            });
            return;
        }
        match sniff(text) {
            Ok(Some(Shape::S3File)) => self.decode_s3_file(text, out),
            Ok(Some(Shape::CloudWatchLogs)) => self.decode_logs(text, out),
            Ok(Some(Shape::AwsLogs)) => self.decode_awslogs(text, DecoderKind::Auto, depth, out),
            Ok(Some(Shape::EventBridge)) => self.decode_eventbridge(text, envelope, out),
            Ok(Some(Shape::CloudTrail)) => self.decode_cloudtrail(text, envelope, out),
            Ok(Some(Shape::CloudTrailDigest)) => out.digest_file(),
            Ok(None) => error(
                out,
                DecodeErrorReason::UnknownFormat,
                "JSON object of no known format",
                text.as_bytes(),
            ),
            Err(e) => out.error(e, text.as_bytes()),
        }
    }

    fn decode_cloudtrail(&self, text: &str, envelope: &Envelope<'_>, out: &mut dyn DecodeSink) {
        if let Err(e) = self
            .cloudtrail
            .decode(text, envelope, &mut |event| out.event(event))
        {
            out.error(e, text.as_bytes());
        }
    }

    fn decode_cloudtrail_container(&self, text: &str, out: &mut dyn DecodeSink) {
        if text.starts_with('[') {
            self.decode_cloudtrail_array(text, out);
        } else if matches!(sniff(text), Ok(Some(Shape::S3File))) {
            self.decode_s3_file(text, out);
        } else {
            self.decode_cloudtrail(text, &Envelope::default(), out);
        }
    }

    fn decode_cloudtrail_array(&self, text: &str, out: &mut dyn DecodeSink) {
        self.decode_streamed(text, out, |deserializer, each| {
            Elements { each }.deserialize(deserializer)
        });
    }

    fn decode_s3_file(&self, text: &str, out: &mut dyn DecodeSink) {
        self.decode_streamed(text, out, |deserializer, each| {
            deserializer.deserialize_map(RecordsFile { each })
        });
    }

    /// Decodes each CloudTrail record that `walk` hands out of `text` as
    /// it is read; a syntax error dead-letters the whole of `text`.
    fn decode_streamed<'t>(
        &self,
        text: &'t str,
        out: &mut dyn DecodeSink,
        walk: impl FnOnce(
            &mut serde_json::Deserializer<serde_json::de::StrRead<'t>>,
            &mut dyn FnMut(&'t str),
        ) -> Result<(), serde_json::Error>,
    ) {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let mut delivered = 0usize;
        let result = {
            let mut each = |element: &str| {
                delivered += 1;
                self.decode_cloudtrail(element, &Envelope::default(), out);
            };
            walk(&mut deserializer, &mut each)
        };
        if let Err(e) = result.and_then(|()| deserializer.end()) {
            out.error(container_error(e, delivered), text.as_bytes());
        }
    }

    fn decode_eventbridge(&self, text: &str, envelope: &Envelope<'_>, out: &mut dyn DecodeSink) {
        // serde_json's skipping of the other members and of `detail`
        // allocated once per event; the scanner does not.
        let parsed: EventBridgeEvent<'_>;
        let (detail_type, detail) = match eventbridge_fields(text) {
            Some(fields) => fields,
            None => {
                parsed = match serde_json::from_str(text) {
                    Ok(event) => event,
                    Err(e) => {
                        out.error(classify(e), text.as_bytes());
                        return;
                    }
                };
                (parsed.detail_type.as_ref(), parsed.detail.get())
            }
        };
        if !CLOUDTRAIL_DETAIL_TYPES.contains(&detail_type) {
            let detail =
                format!("EventBridge detail-type {detail_type:?} carries no CloudTrail record");
            error(
                out,
                DecodeErrorReason::UnknownFormat,
                detail,
                text.as_bytes(),
            );
            return;
        }
        self.decode_cloudtrail(detail, envelope, out);
    }

    fn decode_awslogs(
        &mut self,
        text: &str,
        kind: DecoderKind,
        depth: u8,
        out: &mut dyn DecodeSink,
    ) {
        match cloudwatch::parse_awslogs(text) {
            Ok(payload) => self.dispatch(&payload, kind, depth + 1, &Envelope::default(), out),
            Err(e) => out.error(e, text.as_bytes()),
        }
    }

    fn decode_logs(&mut self, text: &str, out: &mut dyn DecodeSink) {
        let refused = match cloudwatch::parse_envelope(text) {
            Ok(logs) => {
                if let Some(events) = self.data_events(&logs, text, out) {
                    for log_event in events {
                        self.decode_log_event(&logs, log_event, text, out);
                    }
                }
                return;
            }
            Err(refused) => refused,
        };
        // One log event of the wrong shape (a string timestamp, a numeric
        // id) fails the typed read of the whole envelope: read it again
        // event by event, so that only that event is dead-lettered.
        let Ok(logs) = cloudwatch::parse_envelope_by_event(text) else {
            out.error(refused, text.as_bytes());
            return;
        };
        if let Some(events) = self.data_events(&logs, text, out) {
            for raw in events {
                match cloudwatch::parse_log_event(raw) {
                    Ok(log_event) => self.decode_log_event(&logs, &log_event, raw.get(), out),
                    Err(e) => out.error(e, raw.get().as_bytes()),
                }
            }
        }
    }

    /// The log events of a `DATA_MESSAGE`; reports a control message, or
    /// an envelope of another type or without `logEvents`, and gives none.
    fn data_events<'l, E>(
        &self,
        logs: &'l cloudwatch::LogsEnvelope<'_, E>,
        text: &str,
        out: &mut dyn DecodeSink,
    ) -> Option<&'l [E]> {
        match logs.message_type.as_ref() {
            CONTROL_MESSAGE => {
                out.control_message();
                None
            }
            DATA_MESSAGE => {
                if logs.log_events.is_none() {
                    error(
                        out,
                        DecodeErrorReason::BadCloudWatchLogs,
                        "DATA_MESSAGE without logEvents",
                        text.as_bytes(),
                    );
                }
                logs.log_events.as_deref()
            }
            other => {
                let detail = format!("unknown CloudWatch Logs messageType {other:?}");
                error(
                    out,
                    DecodeErrorReason::BadCloudWatchLogs,
                    detail,
                    text.as_bytes(),
                );
                None
            }
        }
    }

    /// One log event of a data message: its message, decoded on its own.
    /// `original`: what is dead-lettered for an event without a message
    /// (the event's JSON where it was read alone, else the envelope).
    fn decode_log_event<E>(
        &mut self,
        logs: &cloudwatch::LogsEnvelope<'_, E>,
        log_event: &cloudwatch::LogEvent<'_>,
        original: &str,
        out: &mut dyn DecodeSink,
    ) {
        let envelope = Envelope {
            owner: cloudwatch::text_of(&logs.owner),
            log_group: cloudwatch::text_of(&logs.log_group),
            log_stream: cloudwatch::text_of(&logs.log_stream),
            event_id: cloudwatch::text_of(&log_event.id),
            timestamp_ms: log_event.timestamp,
        };
        let Some(message) = cloudwatch::text_of(&log_event.message) else {
            let detail = format!("log event {:?} has no message", envelope.event_id);
            error(
                out,
                DecodeErrorReason::BadCloudWatchLogs,
                detail,
                original.as_bytes(),
            );
            return;
        };
        let message = message.trim_matches(|c: char| c.is_ascii_whitespace());
        if message.is_empty() {
            error(
                out,
                DecodeErrorReason::EmptyRecord,
                "empty log event message",
                message.as_bytes(),
            );
        } else if message.starts_with('{') {
            // An EventBridge rule whose target is a log group writes whole
            // events, the CloudTrail record in `detail`.
            match sniff(message) {
                Ok(Some(Shape::EventBridge)) => self.decode_eventbridge(message, &envelope, out),
                // An application's JSON log: said as such, not as a
                // CloudTrail record without `eventTime`.
                Ok(None) => error(
                    out,
                    DecodeErrorReason::UnknownFormat,
                    "JSON log event of no known format (neither a CloudTrail record nor an \
                     EventBridge event)",
                    message.as_bytes(),
                ),
                _ => self.decode_cloudtrail(message, &envelope, out),
            }
        } else {
            self.decode_line(message, false, &envelope, out);
        }
    }

    /// One text line, auto-detected (see the module docs, rule 6).
    /// `plain`: [`short::scan`] proved the line plain.
    fn decode_line(
        &mut self,
        line: &str,
        plain: bool,
        envelope: &Envelope<'_>,
        out: &mut dyn DecodeSink,
    ) {
        // A default-format flow record is neither a header line nor a host
        // log: it is tested first.
        if flow::is_default_format_record(line) {
            self.decode_flow(line, plain, envelope, out);
            return;
        }
        if let Some(format) = FlowFormat::from_header_line(line) {
            self.flow.set_format(format);
            return;
        }
        if hostlog::has_timestamp_prefix(line) {
            self.decode_host(line, envelope, out);
            return;
        }
        let fields = count_fields(line);
        if fields == self.flow.field_count() {
            self.decode_flow(line, plain, envelope, out);
        } else if looks_like_flow_record(line) {
            // Flow logs through CloudWatch Logs carry no header line: a
            // custom format must be declared, or every record would pass
            // for a host log that no flow rule sees.
            let detail = format!(
                "looks like a VPC flow log record of {fields} fields, but the flow format has {}: \
                 declare its format (a header line, the source's flow_format, or replay's \
                 --flow-format)",
                self.flow.field_count()
            );
            error(
                out,
                DecodeErrorReason::BadFlowRecord,
                detail,
                line.as_bytes(),
            );
        } else if envelope.timestamp_ms.is_some() {
            self.decode_host(line, envelope, out);
        } else {
            error(
                out,
                DecodeErrorReason::UnknownFormat,
                "line is neither a flow record nor a host log",
                line.as_bytes(),
            );
        }
    }

    fn decode_forced_line(
        &mut self,
        line: &str,
        plain: bool,
        kind: DecoderKind,
        envelope: &Envelope<'_>,
        out: &mut dyn DecodeSink,
    ) {
        if kind == DecoderKind::HostLog {
            self.decode_host(line, envelope, out);
        } else if let Some(format) = FlowFormat::from_header_line(line) {
            self.flow.set_format(format);
        } else {
            self.decode_flow(line, plain, envelope, out);
        }
    }

    fn decode_flow(
        &mut self,
        line: &str,
        plain: bool,
        envelope: &Envelope<'_>,
        out: &mut dyn DecodeSink,
    ) {
        if let Err(e) = self
            .flow
            .decode(line, plain, envelope, |record| out.flow(record))
        {
            out.error(e, line.as_bytes());
        }
    }

    fn decode_host(&self, line: &str, envelope: &Envelope<'_>, out: &mut dyn DecodeSink) {
        if let Err(e) = self
            .host
            .decode(line, envelope, &mut |event| out.event(event))
        {
            out.error(e, line.as_bytes());
        }
    }
}

/// Whether `line` reads as a VPC flow log record of some format: at
/// least six fields, one of them an action (`ACCEPT`, `REJECT`) or a log
/// status other than `OK` (`NODATA`, `SKIPDATA`; a host line may say OK),
/// one an IP address, and none ending in `:` (a syslog program tag,
/// `sshd[42]:`).
/// The error of an S3 file or a JSON array that broke after some of its
/// records were read. Those records went on (streaming the file is what
/// keeps it allocation-free), so the dead letter, which holds the whole
/// file, says how many: re-driving it as it is would count them twice.
fn container_error(error: serde_json::Error, delivered: usize) -> DecodeError {
    let mut classified = classify(error);
    if delivered > 0 {
        use std::fmt::Write as _;
        let _ = write!(
            classified.detail,
            "; the {delivered} record(s) before the error were already read \
             (decoded, or dead-lettered on their own): re-driving this whole \
             file would count them again"
        );
    }
    classified
}

fn looks_like_flow_record(line: &str) -> bool {
    let mut fields = 0;
    let (mut status, mut address) = (false, false);
    for field in line.split(' ').filter(|f| !f.is_empty()) {
        if field.ends_with(':') {
            return false;
        }
        fields += 1;
        status |= matches!(field, "ACCEPT" | "REJECT" | "NODATA" | "SKIPDATA");
        address |= field.parse::<std::net::IpAddr>().is_ok();
    }
    fields >= 6 && status && address
}

/// Number of space-separated fields (runs of non-space bytes) in `line`.
fn count_fields(line: &str) -> usize {
    let mut count = 0;
    let mut in_field = false;
    for &b in line.as_bytes() {
        let field_byte = b != b' ';
        if field_byte && !in_field {
            count += 1;
        }
        in_field = field_byte;
    }
    count
}

/// Calls `each` for every non-blank line of `text` (`\r` stripped).
/// `plain`: [`short::scan`] proved `text` one line (no search needed).
fn for_each_line<'a>(text: &'a str, plain: bool, mut each: impl FnMut(&'a str)) {
    if plain || memchr::memchr(b'\n', text.as_bytes()).is_none() {
        // One record, one line: the common case for Kafka and Kinesis.
        let line = text.strip_suffix('\r').unwrap_or(text);
        if !is_blank(line) {
            each(line);
        }
        return;
    }
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !is_blank(line) {
            each(line);
        }
    }
}

/// Whether `line` is empty or all whitespace (Unicode, as `str::trim`).
/// A line that starts with a visible ASCII byte, as records do, is
/// answered without scanning it.
#[inline]
fn is_blank(line: &str) -> bool {
    super::visible_ascii_start(line).is_none() && line.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_are_the_ones_trim_empties() {
        for line in [
            "",
            " ",
            "\t",
            "\u{b}",
            "\u{c}",
            "\u{a0}",
            "\u{3000} \u{2028}",
            "x",
            " x",
            "2 1",
            "\u{a0}x",
            "\u{e9}",
        ] {
            assert_eq!(is_blank(line), line.trim().is_empty(), "{line:?}");
        }
    }

    #[test]
    fn eventbridge_fields_agree_with_serde_json() {
        let serde = |text: &str| {
            serde_json::from_str::<EventBridgeEvent<'_>>(text)
                .ok()
                .map(|e| (e.detail_type.to_string(), e.detail.get().to_string()))
        };
        let fast =
            |text: &str| eventbridge_fields(text).map(|(t, d)| (t.to_string(), d.to_string()));
        // Read by the scanner.
        for text in [
            r#"{"version":"0","detail-type":"AWS API Call via CloudTrail","source":"aws.iam","resources":[],"detail":{"eventTime":"2024-03-01T12:00:00Z","n":[1e999,{"a":[]}]}}"#,
            r#" { "detail" : [ 1 , 2 ] , "detail-type" : "x" , "z" : { "q" : null } } "#,
            r#"{"detail-type":"","detail":"\u00e9"}"#,
        ] {
            assert!(fast(text).is_some(), "{text}");
            assert_eq!(fast(text), serde(text), "{text}");
        }
        // Left to serde_json, which decides.
        for text in [
            r#"{"detail-type":"a\u0062","detail":{}}"#,
            r#"{"detail-type":"a","detail":{},"detail":{}}"#,
            r#"{"detail-type":"a","detail-type":"b","detail":{}}"#,
            r#"{"detail-type":"a"}"#,
            r#"{"detail":{}}"#,
            r#"{"detail-type":5,"detail":{}}"#,
            r#"{"detail-type":"a","detail":{}} x"#,
            r#"{"detail-type":"a","detail":{},}"#,
            r#"{"\u0064etail-type":"a","detail":{}}"#,
            r#"["AWS API Call via CloudTrail",{}]"#,
            "{}",
        ] {
            assert_eq!(fast(text), None, "{text}");
        }
        assert!(serde(r#"{"detail-type":"a\u0062","detail":{}}"#).is_some());
        assert!(serde(r#"["AWS API Call via CloudTrail",{}]"#).is_some());
    }

    #[test]
    fn sniffs_shapes() {
        assert_eq!(sniff(r#"{"Records":[]}"#).unwrap(), Some(Shape::S3File));
        assert_eq!(
            sniff(r#"{"x":{"y":[1]},"messageType":"DATA_MESSAGE"}"#).unwrap(),
            Some(Shape::CloudWatchLogs)
        );
        assert_eq!(
            sniff(r#"{"version":"0","detail-type":"x"}"#).unwrap(),
            Some(Shape::EventBridge)
        );
        assert_eq!(
            sniff(r#"{"eventVersion":"1.08", broken"#).unwrap(),
            Some(Shape::CloudTrail)
        );
        assert_eq!(sniff(r#"{"a":1}"#).unwrap(), None);
        assert_eq!(
            sniff(" {\n \"eventVersion\":1}").unwrap(),
            Some(Shape::CloudTrail)
        );
        assert_eq!(
            sniff(r#"{"event\u0056ersion":1}"#).unwrap(),
            Some(Shape::CloudTrail)
        );
        assert_eq!(first_key(r#"{"a\"b":1}"#), None);
        assert_eq!(first_key(r#"{ "ab" :1}"#), Some("ab"));
        assert_eq!(
            sniff(r#"{"a":1"#).unwrap_err().reason,
            DecodeErrorReason::InvalidJson
        );
        assert_eq!(
            sniff(r#"{"a":1} x"#).unwrap_err().reason,
            DecodeErrorReason::InvalidJson
        );
    }
}
