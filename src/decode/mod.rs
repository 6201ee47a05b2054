//! Decoders: raw record bytes in, [`Event`]s out.
//!
//! # Contract
//!
//! A [`Decoder`] is built once per input stream or partition from the
//! frozen [`FieldPlans`]. [`Decoder::decode`] takes one raw record (a Kafka
//! message, a Kinesis record, or one record framed out of a file by
//! [`framing::frame`]) and reports, through a [`DecodeSink`]:
//!
//! - every event it finds, borrowing from the record (or from a buffer the
//!   decoder decompressed), with exactly `plan.len()` field slots filled for
//!   the event's kind;
//! - every (sub-)record it could not decode, with a [`DecodeErrorReason`]
//!   and the original bytes of that sub-record, so one bad element of an S3
//!   log file or CloudWatch Logs envelope never hides its neighbours;
//! - every CloudWatch Logs `CONTROL_MESSAGE` it dropped.
//!
//! Nothing is silently dropped, and no input makes the decoder panic.
//!
//! # Layout
//!
//! - [`detect`]: envelope auto-detection (gzip, KPL, S3 file, CloudWatch
//!   Logs, EventBridge, JSON array, text lines).
//! - [`json`]: the plan-driven single-pass JSON extractor.
//! - [`scan`]: the allocation-free validating JSON scanner under it.
//! - [`short`]: one pass over a short record (ASCII, one plain line).
//! - [`cloudtrail`]: one CloudTrail record to an event.
//! - [`cloudwatch`]: CloudWatch Logs subscription envelopes.
//! - [`flow`]: VPC Flow Logs lines and formats.
//! - [`hostlog`]: syslog / `/var/log/secure` lines.
//! - [`kpl`]: KPL aggregated Kinesis records.
//! - [`gzip`]: capped gzip decompression.
//! - [`framing`]: splitting files and stdin into records.
//! - [`testing`]: a collecting [`DecodeSink`] for tests.

pub mod cloudtrail;
pub mod cloudwatch;
pub mod detect;
pub mod flow;
pub mod framing;
pub mod gzip;
pub mod hostlog;
pub mod json;
pub mod kpl;
pub mod scan;
pub mod short;
pub mod testing;

use std::borrow::Cow;

use serde::Deserialize;

use crate::event::{Event, EventKind, FieldValue, Fields};
use crate::fields::{FieldPlan, FieldPlans, Slot};

pub use flow::{FlowFormat, FlowFormatError};

/// Why a record could not be decoded. Names are stable metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DecodeErrorReason {
    /// Not valid JSON (syntax error, truncated, trailing characters).
    InvalidJson,
    /// Text that must be UTF-8 is not.
    InvalidUtf8,
    /// JSON nested deeper than the parser's recursion limit, or envelopes
    /// nested deeper than the decoder allows.
    TooDeep,
    /// The record is larger than `max_record_bytes`.
    TooLarge,
    /// Decompression would exceed `max_decompressed_bytes`.
    DecompressedTooLarge,
    /// The gzip stream ends early.
    TruncatedGzip,
    /// The gzip stream is corrupt.
    BadGzip,
    /// The base64 payload of an `awslogs` wrapper is invalid.
    BadBase64,
    /// A CloudTrail record without `eventTime`.
    MissingEventTime,
    /// An event time that cannot be parsed.
    BadEventTime,
    /// A JSON value of the wrong type (record not an object, `Records` not
    /// an array, `eventTime` a number...).
    WrongType,
    /// The record matches no known input format.
    UnknownFormat,
    /// A VPC flow record that does not fit its format.
    BadFlowRecord,
    /// A CloudWatch Logs envelope that is not well formed.
    BadCloudWatchLogs,
    /// A KPL aggregate whose protobuf cannot be parsed.
    BadKpl,
    /// A KPL aggregate whose MD5 digest does not match.
    KplDigestMismatch,
    /// An empty record (or one holding only whitespace).
    EmptyRecord,
    /// An input file that could not be opened or read (permissions): its
    /// dead letter names the file; the other inputs are still read.
    UnreadableInput,
}

impl DecodeErrorReason {
    /// Every reason, in a fixed order (for metrics pre-registration).
    pub const ALL: [DecodeErrorReason; 18] = [
        DecodeErrorReason::InvalidJson,
        DecodeErrorReason::InvalidUtf8,
        DecodeErrorReason::TooDeep,
        DecodeErrorReason::TooLarge,
        DecodeErrorReason::DecompressedTooLarge,
        DecodeErrorReason::TruncatedGzip,
        DecodeErrorReason::BadGzip,
        DecodeErrorReason::BadBase64,
        DecodeErrorReason::MissingEventTime,
        DecodeErrorReason::BadEventTime,
        DecodeErrorReason::WrongType,
        DecodeErrorReason::UnknownFormat,
        DecodeErrorReason::BadFlowRecord,
        DecodeErrorReason::BadCloudWatchLogs,
        DecodeErrorReason::BadKpl,
        DecodeErrorReason::KplDigestMismatch,
        DecodeErrorReason::EmptyRecord,
        DecodeErrorReason::UnreadableInput,
    ];

    /// Stable snake_case label.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeErrorReason::InvalidJson => "invalid_json",
            DecodeErrorReason::InvalidUtf8 => "invalid_utf8",
            DecodeErrorReason::TooDeep => "too_deep",
            DecodeErrorReason::TooLarge => "too_large",
            DecodeErrorReason::DecompressedTooLarge => "decompressed_too_large",
            DecodeErrorReason::TruncatedGzip => "truncated_gzip",
            DecodeErrorReason::BadGzip => "bad_gzip",
            DecodeErrorReason::BadBase64 => "bad_base64",
            DecodeErrorReason::MissingEventTime => "missing_event_time",
            DecodeErrorReason::BadEventTime => "bad_event_time",
            DecodeErrorReason::WrongType => "wrong_type",
            DecodeErrorReason::UnknownFormat => "unknown_format",
            DecodeErrorReason::BadFlowRecord => "bad_flow_record",
            DecodeErrorReason::BadCloudWatchLogs => "bad_cloudwatch_logs",
            DecodeErrorReason::BadKpl => "bad_kpl",
            DecodeErrorReason::KplDigestMismatch => "kpl_digest_mismatch",
            DecodeErrorReason::EmptyRecord => "empty_record",
            DecodeErrorReason::UnreadableInput => "unreadable_input",
        }
    }
}

impl std::fmt::Display for DecodeErrorReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decode failure for one (sub-)record.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct DecodeError {
    pub reason: DecodeErrorReason,
    pub detail: String,
}

impl DecodeError {
    /// Builds an error from a reason and a human-readable detail.
    pub fn new(reason: DecodeErrorReason, detail: impl Into<String>) -> Self {
        DecodeError {
            reason,
            detail: detail.into(),
        }
    }
}

/// Receives what a decoder finds in one raw record.
pub trait DecodeSink {
    /// A decoded event.
    fn event(&mut self, event: &Event<'_>);
    /// A decoded flow record. By default it becomes an [`Event`] with every
    /// planned field filled; the engine's collector matches the record
    /// itself (see [`flow::FlowRecord`]).
    fn flow(&mut self, record: &flow::FlowRecord<'_, '_>) {
        let event = record.to_event();
        self.event(&event);
        event.discard();
    }
    /// A (sub-)record that failed, with the original bytes for dead-lettering.
    fn error(&mut self, error: DecodeError, original: &[u8]);
    /// A CloudWatch Logs `CONTROL_MESSAGE` was dropped.
    fn control_message(&mut self);
    /// A CloudTrail digest file (log file integrity, no events) was
    /// skipped.
    fn digest_file(&mut self);
}

/// Which decoder to use; `Auto` detects the envelope per record. A source's
/// `decoder` also takes a rule `kind`'s spelling (`cloudtrail`, `vpcflow`,
/// `hostlog`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecoderKind {
    /// Detect per record (the default).
    #[default]
    Auto,
    /// CloudTrail JSON: one record, an S3 `{"Records":[...]}` file or a JSON
    /// array; gzip is still unwrapped.
    #[serde(alias = "cloudtrail")]
    CloudTrail,
    /// A CloudWatch Logs subscription envelope (gzip, or `awslogs` base64).
    CloudWatchLogs,
    /// An EventBridge event carrying a CloudTrail record in `detail`.
    EventBridge,
    /// VPC Flow Logs text lines.
    #[serde(alias = "vpcflow")]
    VpcFlow,
    /// Host log (syslog) text lines.
    #[serde(alias = "hostlog")]
    HostLog,
    /// A KPL aggregate; its inner records are auto-detected.
    Kpl,
}

/// Decoder settings (the `decode` section of a source's config).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeConfig {
    /// Skip detection and use this decoder.
    pub forced: DecoderKind,
    /// Records larger than this fail with `too_large`.
    pub max_record_bytes: usize,
    /// Decompressed payloads larger than this fail with
    /// `decompressed_too_large` (gzip bomb guard).
    pub max_decompressed_bytes: usize,
    /// The VPC flow log format of this input, if not the default v2 format
    /// (AWS's `${field} ${field}` form). A header line on the stream
    /// overrides it.
    pub flow_format: Option<FlowFormat>,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            forced: DecoderKind::Auto,
            max_record_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            flow_format: None,
        }
    }
}

/// The event times accepted, in epoch ms: years 0000 to 9999, what a
/// CloudTrail `eventTime` can write. A flow `start` or a CloudWatch Logs
/// timestamp outside is `bad_event_time` (window arithmetic near
/// `i64::MIN` would overflow; the future side is clamped later, see
/// [`crate::engine::watermark`]).
pub const EVENT_TIME_RANGE_MS: std::ops::RangeInclusive<i64> =
    -62_167_219_200_000..=253_402_300_799_999;

/// `time_ms` if it is in [`EVENT_TIME_RANGE_MS`], else `bad_event_time`
/// naming `what` (the field it came from).
pub fn event_time_in_range(time_ms: i64, what: &str) -> Result<i64, DecodeError> {
    if EVENT_TIME_RANGE_MS.contains(&time_ms) {
        Ok(time_ms)
    } else {
        Err(DecodeError::new(
            DecodeErrorReason::BadEventTime,
            format!("{what} {time_ms} ms is outside the years 0000 to 9999"),
        ))
    }
}

/// Envelope facts a container passes down to the events inside it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Envelope<'a> {
    /// CloudWatch Logs `owner` (an account id).
    pub owner: Option<&'a str>,
    /// CloudWatch Logs `logGroup`.
    pub log_group: Option<&'a str>,
    /// CloudWatch Logs `logStream`.
    pub log_stream: Option<&'a str>,
    /// CloudWatch Logs event id.
    pub event_id: Option<&'a str>,
    /// CloudWatch Logs event timestamp (epoch ms).
    pub timestamp_ms: Option<i64>,
}

impl Envelope<'_> {
    /// No envelope: a record read as it came.
    pub const NONE: Envelope<'static> = Envelope {
        owner: None,
        log_group: None,
        log_stream: None,
        event_id: None,
        timestamp_ms: None,
    };
}

/// Slots of the envelope fields (`@owner`, `@log_group`, `@log_stream`,
/// `@message`) in one kind's plan.
#[derive(Clone, Debug, Default)]
pub(crate) struct EnvelopeSlots {
    owner: Vec<Slot>,
    log_group: Vec<Slot>,
    log_stream: Vec<Slot>,
    message: Vec<Slot>,
}

impl EnvelopeSlots {
    pub(crate) fn from_plan(plan: &FieldPlan) -> Self {
        let mut slots = EnvelopeSlots::default();
        for (index, path) in plan.paths().iter().enumerate() {
            let Ok(slot) = Slot::try_from(index) else {
                continue;
            };
            match path.as_name() {
                Some("@owner") => slots.owner.push(slot),
                Some("@log_group") => slots.log_group.push(slot),
                Some("@log_stream") => slots.log_stream.push(slot),
                Some("@message") => slots.message.push(slot),
                _ => {}
            }
        }
        slots
    }

    /// Fills the envelope slots of `fields` from `envelope` and `text`.
    pub(crate) fn fill<'a>(&self, fields: &mut Fields<'a>, envelope: &Envelope<'a>, text: &'a str) {
        let mut put = |slots: &[Slot], value: Option<&'a str>| {
            if let Some(value) = value {
                for slot in slots {
                    if let Some(target) = fields.get_mut(usize::from(*slot)) {
                        *target = FieldValue::Str(Cow::Borrowed(value));
                    }
                }
            }
        };
        put(&self.owner, envelope.owner);
        put(&self.log_group, envelope.log_group);
        put(&self.log_stream, envelope.log_stream);
        put(&self.message, Some(text));
    }
}

/// The first byte of `line` when it is visible ASCII (not whitespace, as
/// `str::trim` counts it): then neither `trim` nor `trim_start` changes the
/// line's start, and callers skip their Unicode scan. Records start so.
#[inline]
pub(crate) fn visible_ascii_start(line: &str) -> Option<u8> {
    line.as_bytes()
        .first()
        .copied()
        .filter(|byte| byte.is_ascii() && !char::from(*byte).is_whitespace())
}

/// A fresh field vector with `len` missing slots.
pub(crate) fn missing_fields<'a>(len: usize) -> Fields<'a> {
    // Collected rather than `resize`d: each slot is written as a constant
    // instead of cloned from a template value.
    (0..len).map(|_| FieldValue::Missing).collect()
}

/// Decodes raw records of one input stream or partition.
///
/// It keeps per-stream state: the VPC flow format last declared by a header
/// line on this stream.
#[derive(Debug)]
pub struct Decoder {
    config: DecodeConfig,
    cloudtrail: cloudtrail::CloudTrailDecoder,
    flow: flow::FlowDecoder,
    host: hostlog::HostLogDecoder,
}

impl Decoder {
    /// Builds a decoder for the frozen `plans`.
    pub fn new(config: DecodeConfig, plans: &FieldPlans) -> Decoder {
        let flow_format = config.flow_format.clone().unwrap_or_default();
        Decoder {
            cloudtrail: cloudtrail::CloudTrailDecoder::new(plans.for_kind(EventKind::CloudTrail)),
            flow: flow::FlowDecoder::new(plans.for_kind(EventKind::VpcFlow), flow_format),
            host: hostlog::HostLogDecoder::new(plans.for_kind(EventKind::HostLog)),
            config,
        }
    }

    /// The configuration this decoder was built with.
    pub fn config(&self) -> &DecodeConfig {
        &self.config
    }

    /// Decodes one raw record, reporting events, errors and control
    /// messages to `out`.
    pub fn decode(&mut self, record: &[u8], out: &mut dyn DecodeSink) {
        if record.len() > self.config.max_record_bytes {
            out.error(
                DecodeError::new(
                    DecodeErrorReason::TooLarge,
                    format!(
                        "record of {} bytes exceeds max_record_bytes {}",
                        record.len(),
                        self.config.max_record_bytes
                    ),
                ),
                record,
            );
            return;
        }
        let forced = self.config.forced;
        self.dispatch(record, forced, 0, &Envelope::NONE, out);
    }
}
