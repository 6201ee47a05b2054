//! VPC Flow Logs: formats and records.
//!
//! Contract: a [`FlowFormat`] is an ordered list of known flow field names
//! (v2 to v8, including the `ecs-*` fields), parsed from AWS's
//! `${field} ${field}` form or a plain header line. [`FlowDecoder`] splits a
//! record on ASCII spaces into token spans (a buffer reused across records,
//! so nothing is allocated), reads `start`, `account-id` and `region`, and
//! hands a [`FlowRecord`] to its sink. [`FlowDecoder::decode_if_plain`]
//! takes a raw record instead, proves it plain ASCII (with AVX2, in the
//! split's own pass) or declines, decoding nothing. The record reads a
//! planned field (`srcaddr`, `interface-id`, an envelope `@…` name; the
//! column of each is computed when the format is set) only when asked,
//! through [`EventView`]; [`FlowRecord::to_event`] fills every slot. `-`
//! is Missing.
//! Numeric fields become `Number` when they parse and stay `Str` otherwise,
//! except `start`, the event time: non-numeric is `bad_flow_record`, absent
//! (`-` or not in the format, with no CloudWatch Logs timestamp to fall back
//! on) is `bad_event_time`. A record whose field count differs from the
//! format is `bad_flow_record`. NODATA / SKIPDATA rows decode like any other
//! (mostly Missing fields).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use crate::decode::{event_time_in_range, DecodeError, DecodeErrorReason, Envelope};
use crate::event::{Event, EventKind, EventView, FieldRef, FieldValue, Fields};
use crate::fields::{FieldPlan, Slot};

/// The default (version 2) format.
pub const V2_FIELDS: [&str; 14] = [
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
];

/// Every field name a custom format may use (v2 to v8).
pub const KNOWN_FIELDS: &[&str] = &[
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
    "vpc-id",
    "subnet-id",
    "instance-id",
    "tcp-flags",
    "type",
    "pkt-srcaddr",
    "pkt-dstaddr",
    "region",
    "az-id",
    "sublocation-type",
    "sublocation-id",
    "pkt-src-aws-service",
    "pkt-dst-aws-service",
    "flow-direction",
    "traffic-path",
    "ecs-cluster-arn",
    "ecs-cluster-name",
    "ecs-container-instance-arn",
    "ecs-container-instance-id",
    "ecs-container-id",
    "ecs-second-container-id",
    "ecs-service-name",
    "ecs-task-definition-arn",
    "ecs-task-arn",
    "ecs-task-id",
    "reject-reason",
];

/// Fields whose values are numbers.
const NUMERIC_FIELDS: &[&str] = &[
    "version",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "tcp-flags",
    "traffic-path",
];

/// The most columns a format may have: room for every known field, and
/// for some named twice. The decoder keeps one span per column in an
/// array of this size.
pub const MAX_COLUMNS: usize = 64;

fn known(name: &str) -> Option<&'static str> {
    KNOWN_FIELDS.iter().copied().find(|known| *known == name)
}

/// An ordered list of flow field names. A header line may name fields
/// that [`KNOWN_FIELDS`] does not (AWS adds fields): those are owned.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct FlowFormat {
    columns: Vec<Cow<'static, str>>,
}

/// A flow format string that names an unknown field or no field at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid flow log format: {0}")]
pub struct FlowFormatError(pub String);

impl Default for FlowFormat {
    fn default() -> Self {
        FlowFormat {
            columns: V2_FIELDS.iter().map(|name| Cow::Borrowed(*name)).collect(),
        }
    }
}

impl TryFrom<String> for FlowFormat {
    type Error = FlowFormatError;

    fn try_from(text: String) -> Result<Self, FlowFormatError> {
        FlowFormat::parse(&text)
    }
}

impl fmt::Display for FlowFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, column) in self.columns.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "${{{column}}}")?;
        }
        Ok(())
    }
}

impl FlowFormat {
    /// Parses `${version} ${srcaddr} ...` or a plain `version srcaddr ...`
    /// of known field names (configuration: a misspelt name is an error).
    pub fn parse(text: &str) -> Result<Self, FlowFormatError> {
        Self::parse_names(text, false)
    }

    /// [`FlowFormat::parse`]; with `any_name`, a field name unknown here
    /// (lowercase letters, digits and `-`, a letter first) is a column too.
    fn parse_names(text: &str, any_name: bool) -> Result<Self, FlowFormatError> {
        let mut columns = Vec::new();
        for token in text.split_ascii_whitespace() {
            let name = token
                .strip_prefix("${")
                .and_then(|t| t.strip_suffix('}'))
                .unwrap_or(token);
            let column = match known(name) {
                Some(name) => Cow::Borrowed(name),
                None if any_name && is_field_name(name) => Cow::Owned(name.to_string()),
                None => return Err(FlowFormatError(format!("unknown field {token:?}"))),
            };
            if columns.len() == MAX_COLUMNS {
                return Err(FlowFormatError(format!("more than {MAX_COLUMNS} fields")));
            }
            columns.push(column);
        }
        if columns.is_empty() {
            return Err(FlowFormatError("no fields".to_string()));
        }
        Ok(FlowFormat { columns })
    }

    /// If `line` is a header line (a known field name first, then field
    /// names, at least two), its format. Names unknown here are columns
    /// too: a flow log created with a field newer than this build still
    /// has its other columns read where they are, not with the format
    /// of the header before.
    pub fn from_header_line(line: &str) -> Option<Self> {
        // Cheap reject first: every record line starts with a value, not a
        // field name, and parsing it in full would allocate an error. No
        // field name starts with a digit or `-` (a version, an account id,
        // an absent value), which rejects nearly every record at once.
        let first_byte = match super::visible_ascii_start(line) {
            Some(byte) => byte,
            None => *line.trim_start().as_bytes().first()?,
        };
        if first_byte.is_ascii_digit() || first_byte == b'-' {
            return None;
        }
        let first = line.split_ascii_whitespace().next()?;
        let first = first
            .strip_prefix("${")
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(first);
        known(first)?;
        let format = FlowFormat::parse_names(line, true).ok()?;
        (format.columns.len() >= 2).then_some(format)
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[Cow<'static, str>] {
        &self.columns
    }
}

/// A flow log field name's shape: lowercase ASCII letters, digits and `-`,
/// a letter first, at most 64 bytes.
fn is_field_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() <= 64
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// One planned field read from one column.
/// Where one slot of the field plan takes its value from, under the
/// current format.
#[derive(Clone, Copy, Debug, PartialEq)]
enum SlotSource {
    /// A column of the record; numeric columns become numbers.
    Column { column: usize, numeric: bool },
    /// The CloudWatch Logs owner (`@owner`).
    Owner,
    /// The CloudWatch Logs log group (`@log_group`).
    LogGroup,
    /// The CloudWatch Logs log stream (`@log_stream`).
    LogStream,
    /// The record line itself (`@message`).
    Message,
    /// Neither a column of this format nor an envelope name.
    Absent,
}

/// Decodes flow records for one field plan; keeps the stream's format.
///
/// Only the columns the plan names (plus `start`, `account-id` and
/// `region`) are looked at: the record is split once into token spans and
/// the planned columns are then read by index.
#[derive(Clone, Debug)]
pub struct FlowDecoder {
    plan_names: Vec<(Slot, Box<str>)>,
    plan_len: usize,
    format: FlowFormat,
    /// `format` is the default (version 2) format.
    default_format: bool,
    /// Per slot of the plan, in slot order.
    sources: Vec<SlotSource>,
    start: Option<usize>,
    account: Option<usize>,
    region: Option<usize>,
    /// Token spans of the record being decoded: the first one per column
    /// of the format, reused.
    tokens: Box<[(usize, usize); MAX_COLUMNS]>,
    /// How this CPU finds spaces (asked once, not per record).
    blocks: SpaceBlocks,
}

impl FlowDecoder {
    /// Builds a decoder for `plan`, starting with `format`.
    pub fn new(plan: &FieldPlan, format: FlowFormat) -> Self {
        let plan_names = plan
            .paths()
            .iter()
            .enumerate()
            .filter_map(|(index, path)| Some((Slot::try_from(index).ok()?, path.as_name()?.into())))
            .collect();
        let mut decoder = FlowDecoder {
            plan_names,
            plan_len: plan.len(),
            format: FlowFormat::default(),
            default_format: true,
            sources: Vec::new(),
            start: None,
            account: None,
            region: None,
            tokens: Box::new([(0, 0); MAX_COLUMNS]),
            blocks: SpaceBlocks::detect(),
        };
        decoder.set_format(format);
        decoder
    }

    /// The format records are currently read with.
    pub fn format(&self) -> &FlowFormat {
        &self.format
    }

    /// Switches to `format` (a header line was seen).
    pub fn set_format(&mut self, format: FlowFormat) {
        let position = |name: &str| format.columns.iter().position(|c| *c == name);
        self.start = position("start");
        self.account = position("account-id");
        self.region = position("region");
        let mut sources = vec![SlotSource::Absent; self.plan_len];
        for (slot, name) in &self.plan_names {
            let source = match name.as_ref() {
                "@owner" => SlotSource::Owner,
                "@log_group" => SlotSource::LogGroup,
                "@log_stream" => SlotSource::LogStream,
                "@message" => SlotSource::Message,
                name => match position(name) {
                    Some(column) => SlotSource::Column {
                        column,
                        numeric: NUMERIC_FIELDS.contains(&name),
                    },
                    None => SlotSource::Absent,
                },
            };
            if let Some(target) = sources.get_mut(usize::from(*slot)) {
                *target = source;
            }
        }
        self.sources = sources;
        self.default_format = format == FlowFormat::default();
        self.format = format;
    }

    /// Number of fields in the current format.
    pub fn field_count(&self) -> usize {
        self.format.columns.len()
    }

    /// Decodes one record line: splits it, reads its time, and hands the
    /// record to `emit` (which reads fields from their columns on demand).
    /// `plain`: the line is known to hold no control byte, `"` or `[`
    /// ([`crate::decode::short`]); false when not known.
    pub fn decode<'a>(
        &mut self,
        line: &'a str,
        plain: bool,
        envelope: &Envelope<'a>,
        emit: impl FnOnce(&FlowRecord<'_, 'a>),
    ) -> Result<(), DecodeError> {
        let line = line.trim_ascii();
        // Tokens are runs of non-space bytes (as `split(' ')` without the
        // empty pieces), found 32 or 16 bytes at a time (`split_into`).
        // One span per token, written in place into a fixed array (a
        // `Vec::push` per token re-read the vector through `self` and
        // checked its capacity each time). The index wraps at the array's
        // size, so no write is bounds-checked and a hostile line of
        // millions of fields grows nothing. A format has at most
        // `MAX_COLUMNS` columns, so when the count matches the format no
        // index wrapped and every span is the record's own.
        let count = split_into(line.as_bytes(), &mut self.tokens, self.blocks);
        self.decode_split(line, count, plain, envelope, emit)
    }

    /// [`FlowDecoder::decode`] of a raw record that is one plain ASCII line
    /// (no control byte, `"`, `[` or byte at or above 0x80), as
    /// [`crate::decode::short`] would have proved first: with AVX2 the pass
    /// that splits it proves it. Spaces at either end are left out
    /// ([`trim_spaces`]). `None`, with nothing decoded, for a record that is
    /// not such a line or is longer than [`crate::decode::short::SHORT`]:
    /// the caller then takes the general path.
    pub fn decode_if_plain<'a>(
        &mut self,
        bytes: &'a [u8],
        envelope: &Envelope<'a>,
        emit: impl FnOnce(&FlowRecord<'_, 'a>),
    ) -> Option<Result<(), DecodeError>> {
        let bytes = trim_spaces(bytes);
        if bytes.is_empty() || bytes.len() > crate::decode::short::SHORT {
            return None;
        }
        let count = split_plain(bytes, &mut self.tokens, self.blocks)?;
        // SAFETY: `split_plain` returned a count, so every byte of `bytes`
        // is below 0x80, and a sequence of ASCII bytes is valid UTF-8.
        let line = unsafe { std::str::from_utf8_unchecked(bytes) };
        Some(self.decode_split(line, count, true, envelope, emit))
    }

    /// The rest of a decode, once `line` (trimmed) is split into `count`
    /// tokens in `self.tokens`.
    #[inline(always)]
    fn decode_split<'a>(
        &mut self,
        line: &'a str,
        count: usize,
        plain: bool,
        envelope: &Envelope<'a>,
        emit: impl FnOnce(&FlowRecord<'_, 'a>),
    ) -> Result<(), DecodeError> {
        let columns = self.format.columns.len();
        if count != columns {
            return Err(DecodeError::new(
                DecodeErrorReason::BadFlowRecord,
                format!("{count} fields, format has {columns}"),
            ));
        }
        let mut record = FlowRecord {
            line,
            tokens: &self.tokens[..columns],
            sources: &self.sources,
            envelope,
            plain,
            default_format: self.default_format,
            time_ms: 0,
            account: None,
            region: None,
        };
        let start = self.start.and_then(|column| record.value_at(column));
        record.account = self
            .account
            .and_then(|column| record.value_at(column))
            .or(envelope.owner);
        record.region = self.region.and_then(|column| record.value_at(column));
        record.time_ms = match (start, envelope.timestamp_ms) {
            (Some(start), _) => match parse_seconds(start) {
                Some(seconds) => event_time_in_range(seconds.saturating_mul(1000), "flow start")?,
                None => {
                    return Err(DecodeError::new(
                        DecodeErrorReason::BadFlowRecord,
                        format!("start {start:?} is not a number"),
                    ));
                }
            },
            (None, Some(timestamp)) => event_time_in_range(timestamp, "log event timestamp")?,
            (None, None) => {
                return Err(DecodeError::new(
                    DecodeErrorReason::BadEventTime,
                    "flow record has no start",
                ));
            }
        };
        emit(&record);
        Ok(())
    }
}

/// One decoded flow record: the line, its token spans and its time. Rule
/// matching reads it through [`EventView`], which takes a field from its
/// column only when a rule asks (a number is parsed then), so matching a
/// flow line builds no [`Event`]. [`FlowRecord::to_event`] builds one for
/// consumers that want the whole plan filled.
pub struct FlowRecord<'r, 'a> {
    /// The record, trimmed.
    line: &'a str,
    /// One span of `line` per column of the format.
    tokens: &'r [(usize, usize)],
    /// Where each slot of the field plan comes from.
    sources: &'r [SlotSource],
    envelope: &'r Envelope<'a>,
    /// Known to hold no control byte, `"` or `[` (false: not known).
    plain: bool,
    /// Split with the default format's columns.
    default_format: bool,
    time_ms: i64,
    account: Option<&'a str>,
    region: Option<&'a str>,
}

impl<'a> FlowRecord<'_, 'a> {
    /// A present value (not `-`) of a column. Both ends of a span sit next
    /// to an ASCII space or the line's ends, so they are char boundaries:
    /// the slice skips the four boundary checks of `str::get`, which every
    /// column a rule reads paid (about 60 instructions per flow record).
    #[inline]
    fn value_at(&self, column: usize) -> Option<&'a str> {
        let &(start, end) = self.tokens.get(column)?;
        debug_assert!(
            start <= end && self.line.is_char_boundary(start) && self.line.is_char_boundary(end)
        );
        // SAFETY: `FlowDecoder::decode_split` is the only place a
        // `FlowRecord` is made, and its `tokens` are the first spans
        // `split_into` or `split_plain` (the same `split_spans`) wrote over
        // this very `line` (all of them this line's: the record is made
        // only when their count is the format's width). Every span
        // it writes, an overwritten empty one too, has `start <= end <=
        // line.len()`, and each end is an end of the line or next to an
        // ASCII space, which is never inside a multi-byte character, so
        // both ends are char boundaries.
        let token = unsafe { self.line.get_unchecked(start..end) };
        (token != "-").then_some(token)
    }

    /// The value of one slot: numeric columns become numbers when they
    /// parse and stay text otherwise; `-` and absent columns are Missing.
    #[inline(always)]
    fn value(&self, source: SlotSource) -> FieldValue<'a> {
        let present = |value: Option<&'a str>| match value {
            Some(text) => FieldValue::Str(Cow::Borrowed(text)),
            None => FieldValue::Missing,
        };
        match source {
            SlotSource::Column { column, numeric } => match self.value_at(column) {
                Some(token) if numeric => match parse_flow_number(token) {
                    Some(number) => FieldValue::Number(number),
                    None => FieldValue::Str(Cow::Borrowed(token)),
                },
                token => present(token),
            },
            SlotSource::Owner => present(self.envelope.owner),
            SlotSource::LogGroup => present(self.envelope.log_group),
            SlotSource::LogStream => present(self.envelope.log_stream),
            SlotSource::Message => present(Some(self.line)),
            SlotSource::Absent => FieldValue::Missing,
        }
    }

    /// The record as an [`Event`] with every slot of the plan filled.
    pub fn to_event(&self) -> Event<'a> {
        let mut event = Event {
            kind: EventKind::VpcFlow,
            time_ms: self.time_ms,
            text: Cow::Borrowed(self.line),
            fields: Fields::new(),
            id: self.envelope.event_id.map(Cow::Borrowed),
            account: self.account.map(Cow::Borrowed),
            region: self.region.map(Cow::Borrowed),
            ruled_out: false,
        };
        // Filled where it lies, in slot order: building the inline vector
        // elsewhere and moving it in would copy all of its inline capacity.
        for source in self.sources {
            event.fields.push(self.value(*source));
        }
        event
    }
}

impl<'a> EventView<'a> for FlowRecord<'_, 'a> {
    #[inline]
    fn kind(&self) -> EventKind {
        EventKind::VpcFlow
    }

    #[inline]
    fn time_ms(&self) -> i64 {
        self.time_ms
    }

    #[inline]
    fn text(&self) -> &str {
        self.line
    }

    #[inline(always)]
    fn field(&self, slot: Slot) -> FieldRef<'_, 'a> {
        let source = self
            .sources
            .get(usize::from(slot))
            .copied()
            .unwrap_or(SlotSource::Absent);
        FieldRef::made(self.value(source))
    }

    /// A text column is a slice of the line; a numeric column is text only
    /// when it does not parse (rare, so that case just asks [`Self::value`]).
    #[inline(always)]
    fn field_str(&self, slot: Slot) -> Option<&str> {
        match self.sources.get(usize::from(slot)) {
            Some(&SlotSource::Column {
                column,
                numeric: false,
            }) => self.value_at(column),
            Some(&source) => match self.value(source) {
                FieldValue::Str(Cow::Borrowed(text)) => Some(text),
                _ => None,
            },
            None => None,
        }
    }

    #[inline]
    fn id(&self) -> Option<&str> {
        self.envelope.event_id
    }

    #[inline]
    fn account(&self) -> Option<&str> {
        self.account
    }

    #[inline]
    fn region(&self) -> Option<&str> {
        self.region
    }

    #[inline]
    fn ruled_out(&self) -> bool {
        false
    }

    /// The decoder's tokens are the runs of non-space bytes; a
    /// space-delimited pattern's tokenizer makes the same runs unless the
    /// line holds a quote, a bracket, a tab or a line break (looked for
    /// here unless the record's first scan ruled them out).
    #[inline]
    fn delimited_spans(&self) -> Option<&[(usize, usize)]> {
        (self.plain || spaces_alone_delimit(self.line.as_bytes())).then_some(self.tokens)
    }

    #[inline]
    fn default_flow_columns(&self) -> bool {
        self.default_format && self.delimited_spans().is_some()
    }

    /// A column of a line the record's first scan proved plain holds no
    /// control byte; envelope names (`@owner`, ...) are not known to.
    #[inline]
    fn free_of_controls(&self, slot: Slot) -> bool {
        self.plain
            && matches!(
                self.sources.get(usize::from(slot)),
                Some(SlotSource::Column { .. } | SlotSource::Message)
            )
    }
}

/// Whether `line` is a record of the default format (version 2). No field
/// name starts with a digit, so it is not a header line, and its first
/// word is too short for a host log's stamp.
#[inline]
pub(crate) fn is_default_format_record(line: &str) -> bool {
    is_default_format_record_bytes(line.as_bytes())
}

/// `bytes` without the spaces at either end: the line
/// [`FlowDecoder::decode_if_plain`] decodes, and what a dead letter of it
/// holds (as the general path, which trims, keeps).
#[inline]
pub(crate) fn trim_spaces(bytes: &[u8]) -> &[u8] {
    if bytes.first() != Some(&b' ') && bytes.last() != Some(&b' ') {
        return bytes;
    }
    let start = bytes
        .iter()
        .position(|&byte| byte != b' ')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&byte| byte != b' ')
        .map_or(start, |last| last + 1);
    &bytes[start..end]
}

/// [`is_default_format_record`] of a record not yet known to be text.
#[inline]
pub(crate) fn is_default_format_record_bytes(bytes: &[u8]) -> bool {
    bytes.starts_with(b"2 ")
}

/// Whether the space-delimited fields of `bytes` are exactly its runs of
/// non-space bytes ([`split_on_spaces`]): true unless it holds a quote, a
/// bracket (each of which opens one field), a tab or a line break.
#[inline]
pub(crate) fn spaces_alone_delimit(bytes: &[u8]) -> bool {
    memchr::memchr2(b'"', b'[', bytes).is_none()
        && memchr::memchr3(b'\t', b'\n', b'\r', bytes).is_none()
}

/// Calls `push(index, start, end)` with the byte range of every run of
/// non-space bytes of `bytes`, in order, and returns how many there are.
/// (The count is kept here, where it stays in a register: counted by the
/// caller's closure, it went through memory on every token.)
/// Also used by space-delimited filter patterns (`crate::filter`).
#[inline]
pub(crate) fn split_on_spaces(bytes: &[u8], mut push: impl FnMut(usize, usize, usize)) -> usize {
    let mut token_start = 0usize;
    let mut count = 0usize;
    for_each_space(bytes, |position| {
        if position > token_start {
            push(count, token_start, position);
            count += 1;
        }
        token_start = position + 1;
    });
    if bytes.len() > token_start {
        push(count, token_start, bytes.len());
        count += 1;
    }
    count
}

/// How [`split_into`] finds spaces on this CPU: 32-byte AVX2 blocks where
/// the CPU has AVX2 and BMI1, 16-byte SSE2 blocks otherwise. Only
/// [`SpaceBlocks::detect`] makes one, so `Avx2` proves the features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SpaceBlocks {
    avx2: bool,
}

impl SpaceBlocks {
    /// Asks the CPU (once per decoder; std caches the answer too).
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("bmi1");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        SpaceBlocks { avx2 }
    }

    /// 16-byte blocks, whatever the CPU (tests compare both widths).
    #[cfg(test)]
    fn narrow() -> Self {
        SpaceBlocks { avx2: false }
    }
}

/// [`split_on_spaces`] into a fixed array, for the flow decoder: span `i`
/// goes to `spans[i % MAX_COLUMNS]`, and every space writes the span that
/// ends there, counting it only when it is not empty (no branch per
/// space; an empty span is overwritten by the next token's). `bytes` must
/// not end with a space (a trimmed line), so that no empty span is written
/// after the last token. Spaces are found as `blocks` says.
#[inline]
fn split_into(
    bytes: &[u8],
    spans: &mut [(usize, usize); MAX_COLUMNS],
    blocks: SpaceBlocks,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if blocks.avx2 {
        // SAFETY: the CPU has AVX2 and BMI1: only `SpaceBlocks::detect`
        // sets `avx2`, after asking it.
        return unsafe { split_into_avx2(bytes, spans) };
    }
    split_spans::<16>(bytes, spans, |block| space_bits(block))
}

/// [`split_into`] with 32-byte blocks compared by AVX2 (and BMI1's one
/// instruction to clear a mask's lowest bit).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1")]
fn split_into_avx2(bytes: &[u8], spans: &mut [(usize, usize); MAX_COLUMNS]) -> usize {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    split_spans::<32>(bytes, spans, |block| {
        // SAFETY: `block` is 32 readable bytes, and the load has no
        // alignment requirement.
        let bytes = unsafe { _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()) };
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(b' ' as i8))) as u32
    })
}

/// [`split_into`] for a record that is not yet known to be text: `Some`
/// with the token count only when every byte is printable ASCII other than
/// `"` and `[` (no control byte, none at or above 0x80), `None` otherwise.
/// With AVX2 the pass that splits proves it ([`split_plain_avx2`]); without,
/// [`crate::decode::short::scan`] proves it first and the split follows.
/// `bytes` must not end with a space, and must be at most
/// [`crate::decode::short::SHORT`] bytes long (both ways then agree).
#[inline]
fn split_plain(
    bytes: &[u8],
    spans: &mut [(usize, usize); MAX_COLUMNS],
    blocks: SpaceBlocks,
) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if blocks.avx2 {
        // SAFETY: the CPU has AVX2 and BMI1: only `SpaceBlocks::detect`
        // sets `avx2`, after asking it.
        return unsafe { split_plain_avx2(bytes, spans) };
    }
    split_plain_scanned(bytes, spans, blocks)
}

/// [`split_plain`] without AVX2: [`crate::decode::short::scan`], then the
/// split. Out of line, so that the AVX2 way's callers stay small.
#[inline(never)]
fn split_plain_scanned(
    bytes: &[u8],
    spans: &mut [(usize, usize); MAX_COLUMNS],
    blocks: SpaceBlocks,
) -> Option<usize> {
    crate::decode::short::scan(bytes)
        .filter(|short| short.plain)
        .map(|_| split_into(bytes, spans, blocks))
}

/// [`split_plain`] with 32-byte AVX2 blocks: beside the space compare, one
/// signed compare finds the bytes below 0x20 and, as negative numbers, the
/// bytes at or above 0x80, and two more find `"` and `[`. Every block is
/// looked at whole (the last one overlaps the one before it, or is padded
/// with `x`), so no byte of the record escapes the check.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1")]
fn split_plain_avx2(bytes: &[u8], spans: &mut [(usize, usize); MAX_COLUMNS]) -> Option<usize> {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8, _mm256_setzero_si256, _mm256_testz_si256,
    };
    let mut odd = _mm256_setzero_si256();
    let count = split_spans::<32>(bytes, spans, |block| {
        // SAFETY: `block` is 32 readable bytes, and the load has no
        // alignment requirement.
        let bytes = unsafe { _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()) };
        let low_or_high = _mm256_cmpgt_epi8(_mm256_set1_epi8(0x20), bytes);
        let quote = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(b'"' as i8));
        let bracket = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(b'[' as i8));
        odd = _mm256_or_si256(
            odd,
            _mm256_or_si256(low_or_high, _mm256_or_si256(quote, bracket)),
        );
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(b' ' as i8))) as u32
    });
    (_mm256_testz_si256(odd, odd) == 1).then_some(count)
}

/// The body of [`split_into`], over blocks of `BLOCK` bytes whose space
/// bits `bits` gives.
#[inline(always)]
fn split_spans<const BLOCK: usize>(
    bytes: &[u8],
    spans: &mut [(usize, usize); MAX_COLUMNS],
    bits: impl FnMut(&[u8; BLOCK]) -> u32,
) -> usize {
    debug_assert!(bytes.last() != Some(&b' '));
    let mut token_start = 0usize;
    let mut count = 0usize;
    walk_spaces::<BLOCK>(bytes, bits, |position| {
        spans[count % MAX_COLUMNS] = (token_start, position);
        count += usize::from(position > token_start);
        token_start = position + 1;
    });
    if bytes.len() > token_start {
        spans[count % MAX_COLUMNS] = (token_start, bytes.len());
        count += 1;
    }
    count
}

/// Calls `space(position)` for every space of `bytes`, in order, sixteen
/// bytes at a time ([`space_bits`]).
#[inline(always)]
fn for_each_space(bytes: &[u8], space: impl FnMut(usize)) {
    walk_spaces::<16>(bytes, |block| space_bits(block), space);
}

/// Calls `space(position)` for every space of `bytes`, in order, from the
/// space bits of each block of `BLOCK` (at most 32) bytes. The bytes after
/// the last whole block are read as the last `BLOCK` bytes, of which the
/// bits already seen are shifted out (a text shorter than a block is
/// padded with non-spaces).
#[inline(always)]
fn walk_spaces<const BLOCK: usize>(
    bytes: &[u8],
    mut bits: impl FnMut(&[u8; BLOCK]) -> u32,
    mut space: impl FnMut(usize),
) {
    let mut on_spaces = |base: usize, mut mask: u32| {
        while mask != 0 {
            space(base + mask.trailing_zeros() as usize);
            mask &= mask - 1;
        }
    };
    let mut rest = bytes;
    let mut base = 0usize;
    while let Some((block, after)) = rest.split_first_chunk::<BLOCK>() {
        on_spaces(base, bits(block));
        base += BLOCK;
        rest = after;
    }
    let tail = rest.len();
    if tail > 0 {
        let mask = match bytes.last_chunk::<BLOCK>() {
            Some(last) => bits(last) >> (BLOCK - tail),
            None => {
                let mut block = [b'x'; BLOCK];
                block[..tail].copy_from_slice(rest);
                bits(&block)
            }
        };
        on_spaces(base, mask);
    }
}

/// Bit `i` set where byte `i` of a 16-byte `block` is a space: one SSE2
/// compare on x86-64, two words elsewhere.
#[inline(always)]
fn space_bits(block: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU
        // has it, and this crate is built with it enabled.
        unsafe { sse2_space_bits(block) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        swar_space_bits(block)
    }
}

/// [`space_bits`] from two eight-byte words (other architectures; tested
/// against the SSE2 version on x86-64).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn swar_space_bits(block: &[u8]) -> u32 {
    // The top bit of each space byte, gathered into the low byte.
    let gather = |word: &[u8]| {
        let high = space_high_bits(word) >> 7;
        (high.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
    };
    gather(&block[..8]) | gather(&block[8..16]) << 8
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn sse2_space_bits(block: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8, _mm_set_epi64x};
    let half = |range: std::ops::Range<usize>| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&block[range]);
        i64::from_le_bytes(word)
    };
    let bytes = _mm_set_epi64x(half(8..16), half(0..8));
    let spaces = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b' ' as i8));
    _mm_movemask_epi8(spaces) as u32
}

/// The top bit of each byte of an 8-byte `word` that is a space: a space
/// becomes a zero byte after the XOR, and the exact zero-byte test sets the
/// top bit of exactly those bytes.
#[inline(always)]
#[cfg(any(test, not(target_arch = "x86_64")))]
fn space_high_bits(word: &[u8]) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const SPACES: u64 = 0x2020_2020_2020_2020;
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(word);
    let x = u64::from_le_bytes(bytes) ^ SPACES;
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// The value of a run of 1 to `max_len` (at most 18) ASCII digits; `None`
/// for anything else.
#[inline]
fn plain_digits(bytes: &[u8], max_len: usize) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > max_len {
        return None;
    }
    let mut value = 0u64;
    let mut rest = bytes;
    // Eight digits at a time (times have ten): at most two words, as
    // `max_len` is at most 18, so the value cannot overflow.
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        value = value * 100_000_000 + eight_digits(u64::from_le_bytes(*word))?;
        rest = tail;
    }
    for &byte in rest {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    Some(value)
}

/// The value of eight ASCII digits read as a little-endian word (the
/// first digit in the low byte); `None` unless all eight are digits.
/// The test and the three multiply steps are simdjson's
/// (`is_made_of_eight_digits_fast`, `parse_eight_digits_unrolled`).
#[inline]
fn eight_digits(word: u64) -> Option<u64> {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    // A byte is a digit when its high nibble is 3 and adding 6 keeps it 3.
    let digits = (word & HIGH_NIBBLES)
        | ((word.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES) >> 4)
        == 0x3333_3333_3333_3333;
    if !digits {
        return None;
    }
    // Pairs, then fours, then all eight: each step multiplies the higher
    // digit group by its power of ten and adds the lower one.
    let pairs = ((word & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561)) >> 8;
    let fours = ((pairs & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601)) >> 16;
    Some(((fours & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001)) >> 32)
}

/// The `start` field as `str::parse::<i64>` reads it. Every flow record
/// has one, and epoch seconds from 2001 to 2286 have ten digits: those are
/// read in line, as two digits and a word of eight. Any other text takes
/// [`parse_seconds_other`], a call of its own (out of line, the whole parse
/// cost a call that saved and restored six registers, about 85
/// instructions per record).
#[inline(always)]
fn parse_seconds(token: &str) -> Option<i64> {
    if let [high, low, rest @ ..] = token.as_bytes() {
        if let Ok(word) = <[u8; 8]>::try_from(rest) {
            let (high, low) = (high.wrapping_sub(b'0'), low.wrapping_sub(b'0'));
            if high <= 9 && low <= 9 {
                if let Some(rest) = eight_digits(u64::from_le_bytes(word)) {
                    // At most 99 * 10^8 + 99,999,999: no overflow.
                    return Some(i64::from(high * 10 + low) * 100_000_000 + rest as i64);
                }
            }
        }
    }
    parse_seconds_other(token)
}

/// [`parse_seconds`] of a token that is not ten digits, with a fast path
/// for plain digits (which cannot overflow at 18 digits or fewer).
#[inline(never)]
fn parse_seconds_other(token: &str) -> Option<i64> {
    match plain_digits(token.as_bytes(), 18) {
        Some(value) => i64::try_from(value).ok(),
        None => token.parse::<i64>().ok(),
    }
}

/// A numeric flow field: up to eight plain digits (ports, packets, most
/// byte counts) are read in line, one digit a step; anything else takes
/// [`parse_flow_number_other`].
#[inline(always)]
fn parse_flow_number(token: &str) -> Option<f64> {
    let bytes = token.as_bytes();
    if bytes.is_empty() || bytes.len() > 8 {
        return parse_flow_number_other(token);
    }
    let mut value = 0u32;
    for &byte in bytes {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return parse_flow_number_other(token);
        }
        value = value * 10 + u32::from(digit);
    }
    Some(f64::from(value))
}

/// [`parse_flow_number`] of a token that is not one to eight digits: plain
/// digits take a fast path; anything else goes through `f64` parsing
/// (finite values only). A call of its own: inlined, it made
/// [`FlowRecord::value`] too large to inline where rules read text columns.
#[inline(never)]
fn parse_flow_number_other(token: &str) -> Option<f64> {
    match plain_digits(token.as_bytes(), 15) {
        Some(value) => Some(value as f64),
        None => token.parse::<f64>().ok().filter(|n| n.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::FieldPath;
    use proptest::strategy::Strategy;

    fn decoder(paths: &[&str], format: FlowFormat) -> FlowDecoder {
        let mut plan = FieldPlan::new(EventKind::VpcFlow);
        for p in paths {
            plan.slot_for(&FieldPath::parse(p).unwrap());
        }
        FlowDecoder::new(&plan, format)
    }

    fn decode(
        d: &mut FlowDecoder,
        line: &str,
    ) -> Result<(i64, Vec<FieldValue<'static>>, Option<String>), DecodeError> {
        let mut got = None;
        d.decode(line, false, &Envelope::default(), |record| {
            let e = record.to_event();
            got = Some((
                e.time_ms,
                e.fields
                    .iter()
                    .cloned()
                    .map(FieldValue::into_owned)
                    .collect(),
                e.account.as_ref().map(|a| a.to_string()),
            ))
        })?;
        Ok(got.unwrap())
    }

    proptest::proptest! {
        #[test]
        fn space_bits_mark_exactly_the_spaces(block in proptest::collection::vec(
            proptest::sample::select(vec![b' ', b'a', b'0', 0x80, 0xa0, 0xff, 0x00, b'\t']),
            16,
        )) {
            let want = block
                .iter()
                .enumerate()
                .filter(|(_, byte)| **byte == b' ')
                .fold(0u32, |bits, (i, _)| bits | 1 << i);
            proptest::prop_assert_eq!(space_bits(&block), want);
            proptest::prop_assert_eq!(swar_space_bits(&block), want);
        }

        /// Digits are read eight at a time: every length, with a byte
        /// that is not a digit anywhere, reads as `str::parse` does.
        #[test]
        fn plain_digits_read_as_parse_does(
            text in proptest::collection::vec(proptest::sample::select(vec![
                b'0', b'1', b'5', b'9', b'/', b':', b'-', b' ', 0xff, 0x00, b'\xb9',
            ]).prop_map(char::from), 0..=20)
                .prop_map(|chars| chars.into_iter().collect::<String>()),
            digits in "[0-9]{0,20}",
        ) {
            for text in [&text, &digits] {
                let want = (!text.is_empty() && text.len() <= 18
                    && text.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| text.parse::<u64>().ok())
                    .flatten();
                proptest::prop_assert_eq!(plain_digits(text.as_bytes(), 18), want, "{:?}", text);
            }
        }

        /// `start` reads as `str::parse::<i64>` does: ten digits (the
        /// in-line way) with anything at any position, and other lengths.
        #[test]
        fn seconds_read_as_parse_does(
            text in proptest::collection::vec(proptest::sample::select(vec![
                b'0', b'1', b'7', b'9', b'/', b':', b'-', b'+', b' ', b'a', 0x00,
            ]).prop_map(char::from), 0..=20)
                .prop_map(|chars| chars.into_iter().collect::<String>()),
            ten in "[0-9]{10}",
            position in 0usize..10,
            odd in proptest::sample::select(vec!['/', ':', '-', '+', ' ', 'a', '\u{0}', 'é']),
        ) {
            let mut changed: Vec<char> = ten.chars().collect();
            changed[position] = odd;
            let changed: String = changed.into_iter().collect();
            for text in [&text, &ten, &changed, &format!("{ten}0"), &ten[1..].to_string()] {
                proptest::prop_assert_eq!(parse_seconds(text), text.parse::<i64>().ok(), "{:?}", text);
            }
        }

        /// A numeric column reads the same in line as out of line (the
        /// whole parse before the in-line way), for digits and anything
        /// else up to twelve bytes.
        #[test]
        fn flow_numbers_read_the_same_in_line(
            text in proptest::collection::vec(proptest::sample::select(vec![
                '0', '1', '5', '9', '/', ':', '.', 'e', '-', '+', ' ', 'a', '\u{0}', 'é',
            ]), 0..=12).prop_map(|chars| chars.into_iter().collect::<String>()),
            digits in "[0-9]{1,12}",
        ) {
            for text in [&text, &digits] {
                proptest::prop_assert_eq!(
                    parse_flow_number(text),
                    parse_flow_number_other(text),
                    "{:?}", text
                );
            }
        }

        #[test]
        fn spaces_split_like_split_on_blanks(line in "[ a-c0-9\\-é]{0,80}") {
            let mut got: Vec<&str> = Vec::new();
            let count = split_on_spaces(line.as_bytes(), |i, s, e| {
                assert_eq!(i, got.len());
                got.push(&line[s..e]);
            });
            proptest::prop_assert_eq!(count, got.len());
            let want: Vec<&str> = line.split(' ').filter(|t| !t.is_empty()).collect();
            proptest::prop_assert_eq!(got, want);
        }

        #[test]
        fn split_into_an_array_is_split_on_spaces(
            line in "[ a-c0-9]{0,300}".prop_map(|l| l.trim_ascii().to_string())
        ) {
            let mut want = Vec::new();
            let count = split_on_spaces(line.as_bytes(), |_, s, e| want.push((s, e)));
            // As the decoder splits (32-byte blocks where the CPU has AVX2),
            // and with 16-byte blocks whatever the CPU.
            let mut spans = [(usize::MAX, 0); MAX_COLUMNS];
            let mut sse2 = [(usize::MAX, 0); MAX_COLUMNS];
            let detected = SpaceBlocks::detect();
            proptest::prop_assert_eq!(split_into(line.as_bytes(), &mut spans, detected), count);
            proptest::prop_assert_eq!(
                split_into(line.as_bytes(), &mut sse2, SpaceBlocks::narrow()),
                count
            );
            if count <= MAX_COLUMNS {
                proptest::prop_assert_eq!(&spans[..count], &want[..]);
                proptest::prop_assert_eq!(&sse2[..count], &want[..]);
            }
        }
    }

    proptest::proptest! {
        /// The split of a raw record also proves it plain: it answers
        /// exactly when `short::scan` calls the record plain, with
        /// `split_into`'s spans.
        #[test]
        fn split_plain_is_scan_then_split(
            bytes in proptest::collection::vec(proptest::sample::select(vec![
                b' ', b'a', b'2', b'-', b'.', b'"', b'[', b'\t', b'\n', b'\r', 0x00, 0x1f,
                0x7f, 0x80, 0xc3, 0xa9, 0xff,
            ]), 1..=140),
        ) {
            check_split_plain(&bytes);
        }
    }

    fn check_split_plain(bytes: &[u8]) {
        // As `decode_if_plain` calls it: never on a record that ends with
        // a space.
        let mut bytes = bytes;
        while let Some((b' ', rest)) = bytes.split_last() {
            bytes = rest;
        }
        if bytes.is_empty() {
            return;
        }
        let plain = crate::decode::short::scan(bytes).is_some_and(|short| short.plain);
        let mut want = [(usize::MAX, 0); MAX_COLUMNS];
        let want_count = split_into(bytes, &mut want, SpaceBlocks::narrow());
        // As this CPU splits (one AVX2 pass where it can), and with the
        // scan first and 16-byte blocks whatever the CPU.
        for blocks in [SpaceBlocks::detect(), SpaceBlocks::narrow()] {
            let mut spans = [(usize::MAX, 0); MAX_COLUMNS];
            let got = split_plain(bytes, &mut spans, blocks);
            assert_eq!(got, plain.then_some(want_count), "{bytes:?} {blocks:?}");
            let kept = want_count.min(MAX_COLUMNS);
            if plain {
                assert_eq!(spans[..kept], want[..kept], "{bytes:?} {blocks:?}");
            }
        }
    }

    /// Every byte value at every position of records of lengths around
    /// the block sizes (blocks whole, overlapped and padded): one byte that
    /// is not plain printable ASCII, anywhere, sends the record to the
    /// general path.
    #[test]
    fn one_odd_byte_anywhere_is_seen() {
        let base: Vec<u8> = b"2 123456789012 eni-0a1b2c3d 10.0.0.1 203.0.113.9 443 22 6 10 840 1709294400 1709294460 REJECT OK"
            .iter()
            .copied()
            .cycle()
            .take(100)
            .collect();
        for len in [1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 95, 96, 97, 100] {
            for position in 0..len {
                for byte in 0..=255u8 {
                    let mut bytes = base[..len].to_vec();
                    bytes[position] = byte;
                    check_split_plain(&bytes);
                }
            }
        }
    }

    #[test]
    fn v2_record() {
        let mut d = decoder(
            &["srcaddr", "dstport", "action", "bytes", "vpc-id"],
            FlowFormat::default(),
        );
        let line =
            "2 123456789012 eni-1 10.0.0.1 10.0.0.2 443 22 6 10 -5 1709294400 1709294460 REJECT OK";
        let (time, f, account) = decode(&mut d, line).unwrap();
        assert_eq!(time, 1_709_294_400_000);
        assert_eq!(f[0], FieldValue::Str("10.0.0.1".into()));
        assert_eq!(f[1], FieldValue::Number(22.0));
        assert_eq!(f[2], FieldValue::Str("REJECT".into()));
        assert_eq!(f[3], FieldValue::Number(-5.0));
        assert_eq!(f[4], FieldValue::Missing);
        assert_eq!(account.as_deref(), Some("123456789012"));
    }

    #[test]
    fn nodata_and_errors() {
        let mut d = decoder(&["srcaddr", "log-status"], FlowFormat::default());
        let (time, f, _) = decode(
            &mut d,
            "2 123 eni-1 - - - - - - - 1709294400 1709294460 - NODATA",
        )
        .unwrap();
        assert_eq!(time, 1_709_294_400_000);
        assert_eq!(f[0], FieldValue::Missing);
        assert_eq!(f[1], FieldValue::Str("NODATA".into()));
        let mut reason = |l: &str| decode(&mut d, l).unwrap_err().reason;
        assert_eq!(reason("2 123 eni-1"), DecodeErrorReason::BadFlowRecord);
        assert_eq!(reason(&"x ".repeat(1000)), DecodeErrorReason::BadFlowRecord);
        assert_eq!(
            reason("2 1 e a b 1 2 6 1 1 soon 1 ACCEPT OK"),
            DecodeErrorReason::BadFlowRecord
        );
        assert_eq!(
            reason("2 1 e a b 1 2 6 1 1 - 1 ACCEPT OK"),
            DecodeErrorReason::BadEventTime
        );
        // A line of a record's worth of tokens more than the span array
        // holds (the spans wrap around it) is rejected, and leaves nothing
        // behind.
        let record = "2 123 eni-9 10.0.0.9 - - - - - - 1709294400 1709294460 - NODATA";
        let wrapped = format!("{}{record}", "x ".repeat(MAX_COLUMNS));
        assert_eq!(reason(&wrapped), DecodeErrorReason::BadFlowRecord);
        let (_, f, _) = decode(
            &mut d,
            "2 123 eni-1 10.0.0.7 - - - - - - 1709294400 1709294460 - NODATA",
        )
        .unwrap();
        assert_eq!(f[0], FieldValue::Str("10.0.0.7".into()));
        assert_eq!(f[1], FieldValue::Str("NODATA".into()));
    }

    #[test]
    fn custom_formats() {
        let format =
            FlowFormat::parse("${srcaddr} ${start} ${region} ${tcp-flags} ${ecs-task-id}").unwrap();
        assert_eq!(
            format.to_string(),
            "${srcaddr} ${start} ${region} ${tcp-flags} ${ecs-task-id}"
        );
        let mut d = decoder(&["tcp-flags", "srcaddr"], format);
        let (time, f, _) = decode(&mut d, "10.1.1.1 100 eu-west-1 2 -").unwrap();
        assert_eq!(time, 100_000);
        assert_eq!(
            f,
            vec![FieldValue::Number(2.0), FieldValue::Str("10.1.1.1".into())]
        );
        assert!(FlowFormat::parse("${nope}").is_err());
        let fields = |n: usize| vec!["srcaddr"; n].join(" ");
        assert!(FlowFormat::parse(&fields(MAX_COLUMNS)).is_ok());
        assert!(FlowFormat::parse(&fields(MAX_COLUMNS + 1)).is_err());
        assert!(FlowFormat::from_header_line(&fields(MAX_COLUMNS)).is_some());
        assert!(FlowFormat::from_header_line(&fields(MAX_COLUMNS + 1)).is_none());
        assert!(KNOWN_FIELDS.len() <= MAX_COLUMNS);
        assert!(FlowFormat::from_header_line("version account-id interface-id").is_some());
        assert!(FlowFormat::from_header_line("Mar 1 host").is_none());
    }
}
