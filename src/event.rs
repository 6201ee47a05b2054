//! The decoded event: what decoders produce and what rules read.
//!
//! An [`Event`] borrows from the input buffer wherever it can. It carries
//! only the fields the loaded rules reference (see [`crate::fields`]), plus
//! the message text for term, phrase, regex and space-delimited filters,
//! and the few facts every alert needs (time, id, account, region).

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::fields::Slot;

/// The three families of input trailwatch understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// An AWS CloudTrail record (JSON).
    CloudTrail,
    /// A VPC Flow Logs record (space-separated line).
    VpcFlow,
    /// A host log line (syslog, `/var/log/secure`), usually via CloudWatch Logs.
    HostLog,
}

impl EventKind {
    /// Stable lowercase name, used in rule files, metrics and config.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CloudTrail => "cloudtrail",
            EventKind::VpcFlow => "vpcflow",
            EventKind::HostLog => "hostlog",
        }
    }

    /// All kinds, in a fixed order.
    pub const ALL: [EventKind; 3] = [
        EventKind::CloudTrail,
        EventKind::VpcFlow,
        EventKind::HostLog,
    ];
}

/// The value of one planned field in one event.
///
/// `Object` and `Array` record only that the selector landed on a
/// container: CloudWatch never matches a comparison against one.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum FieldValue<'a> {
    /// The field is absent (or `-` in a flow record).
    #[default]
    Missing,
    /// JSON `null`.
    Null,
    /// JSON `true` / `false`.
    Bool(bool),
    /// A JSON number, or a numeric flow field.
    Number(f64),
    /// A string (JSON string, flow field text, log field).
    Str(Cow<'a, str>),
    /// The selector landed on an object.
    Object,
    /// The selector landed on an array.
    Array,
    /// Every value a wildcard selector (`$.a[*]`, `$.*`) selected, in
    /// document order; a condition holds when it holds for one of them.
    Many(Vec<FieldValue<'a>>),
}

impl<'a> FieldValue<'a> {
    /// Whether dropping the value frees memory: an owned string or a
    /// wildcard selector's list.
    #[inline(always)]
    pub fn owns_heap(&self) -> bool {
        matches!(self, FieldValue::Str(Cow::Owned(_)) | FieldValue::Many(_))
    }

    /// Drops the value, testing inline for the common case that owns
    /// nothing instead of calling the drop glue (an out-of-line call).
    #[inline(always)]
    pub fn discard(self) {
        if self.owns_heap() {
            drop(self);
        } else {
            std::mem::forget(self);
        }
    }

    /// The string form used for group keys and string comparison, if scalar.
    /// Numbers render without a trailing `.0` when integral.
    pub fn as_key_text(&self) -> Option<Cow<'_, str>> {
        match self {
            FieldValue::Str(s) => Some(Cow::Borrowed(s.as_ref())),
            FieldValue::Number(n) => Some(Cow::Owned(format_number(*n))),
            FieldValue::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            FieldValue::Null => Some(Cow::Borrowed("null")),
            FieldValue::Missing | FieldValue::Object | FieldValue::Array | FieldValue::Many(_) => {
                None
            }
        }
    }

    /// The numeric value, if the field is a number or a numeric string
    /// (CloudWatch metric values accept both).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FieldValue::Number(n) => Some(*n),
            FieldValue::Str(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
            _ => None,
        }
    }

    /// Detaches the value from the input buffer.
    pub fn into_owned(self) -> FieldValue<'static> {
        match self {
            FieldValue::Missing => FieldValue::Missing,
            FieldValue::Null => FieldValue::Null,
            FieldValue::Bool(b) => FieldValue::Bool(b),
            FieldValue::Number(n) => FieldValue::Number(n),
            FieldValue::Str(s) => FieldValue::Str(Cow::Owned(s.into_owned())),
            FieldValue::Object => FieldValue::Object,
            FieldValue::Array => FieldValue::Array,
            FieldValue::Many(values) => {
                FieldValue::Many(values.into_iter().map(FieldValue::into_owned).collect())
            }
        }
    }
}

/// Renders a number the way it would appear in JSON input: integral values
/// without a fraction.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Inline capacity of [`Fields`]: the built-in pack plans fewer fields than
/// this per kind, so extraction does not allocate.
pub const INLINE_FIELDS: usize = 24;

/// Planned field values, indexed by [`Slot`].
pub type Fields<'a> = SmallVec<[FieldValue<'a>; INLINE_FIELDS]>;

/// One decoded event.
#[derive(Clone, Debug)]
pub struct Event<'a> {
    /// Which family this event belongs to; selects the rules that see it.
    pub kind: EventKind,
    /// Event time in Unix epoch milliseconds (CloudTrail `eventTime`, flow
    /// `start`, CloudWatch Logs `timestamp` for host logs).
    pub time_ms: i64,
    /// The message text: the raw JSON for CloudTrail, the line for flow and
    /// host logs. Term, phrase, regex and space-delimited filters read it.
    pub text: Cow<'a, str>,
    /// Planned field values, indexed by slot of the kind's field plan: one
    /// slot per planned path, none for a ruled-out event.
    pub fields: Fields<'a>,
    /// A stable id for evidence (`eventID`, or the CloudWatch Logs event id).
    pub id: Option<Cow<'a, str>>,
    /// Account the event belongs to (`recipientAccountId`, flow
    /// `account-id`, or the CloudWatch Logs owner).
    pub account: Option<Cow<'a, str>>,
    /// AWS region, when known.
    pub region: Option<Cow<'a, str>>,
    /// The decoder's [rule gate](crate::rules::gate) proved that no rule of
    /// `kind` can match: only `kind`, `time_ms` and `text` are read, `fields`
    /// is empty (only the gate's fields were extracted, into a vector of
    /// their own), and matching is skipped.
    pub ruled_out: bool,
}

impl<'a> Event<'a> {
    /// Drops the event. When nothing in it owns heap memory (every value
    /// borrows the record, and the field vector did not spill), it is
    /// forgotten instead: dropping would free nothing, but the drop glue
    /// calls out once per slot.
    #[inline(always)]
    pub fn discard(self) {
        let owned = |text: &Option<Cow<'_, str>>| matches!(text, Some(Cow::Owned(_)));
        let owns_heap = self.fields.spilled()
            || matches!(self.text, Cow::Owned(_))
            || owned(&self.id)
            || owned(&self.account)
            || owned(&self.region)
            || self.fields.iter().any(FieldValue::owns_heap);
        if owns_heap {
            drop(self);
        } else {
            std::mem::forget(self);
        }
    }

    /// The value at `slot`, or `Missing` when the slot is not filled.
    pub fn field(&self, slot: Slot) -> &FieldValue<'a> {
        const MISSING: &FieldValue<'static> = &FieldValue::Missing;
        self.fields.get(usize::from(slot)).unwrap_or(MISSING)
    }
}

/// A field value read through [`EventView::field`]: borrowed from an
/// [`Event`], or made on demand (a flow column). Dropping a made value that
/// owns no heap memory skips the drop glue, an out-of-line call per read.
pub enum FieldRef<'e, 'a> {
    /// A value held by the event.
    Borrowed(&'e FieldValue<'a>),
    /// A value made for this read.
    Made(std::mem::ManuallyDrop<FieldValue<'a>>),
}

impl<'a> FieldRef<'_, 'a> {
    /// A value made for this read.
    #[inline(always)]
    pub fn made(value: FieldValue<'a>) -> Self {
        FieldRef::Made(std::mem::ManuallyDrop::new(value))
    }
}

impl<'a> std::ops::Deref for FieldRef<'_, 'a> {
    type Target = FieldValue<'a>;

    #[inline(always)]
    fn deref(&self) -> &FieldValue<'a> {
        match self {
            FieldRef::Borrowed(value) => value,
            FieldRef::Made(value) => value,
        }
    }
}

impl Drop for FieldRef<'_, '_> {
    #[inline(always)]
    fn drop(&mut self) {
        // Only a value that owns heap memory needs dropping; the rest is
        // left in its `ManuallyDrop`, which frees nothing.
        if let FieldRef::Made(value) = self {
            if value.owns_heap() {
                drop(std::mem::take(&mut **value));
            }
        }
    }
}

/// What rule matching reads from one event. An [`Event`] holds its planned
/// fields; a flow record ([`crate::decode::flow::FlowRecord`]) reads a field
/// from its column when asked, so matching a flow line builds nothing. The
/// filter, predicates, dispatch and collector are generic over it: one
/// matching code, monomorphised for each.
pub trait EventView<'a> {
    /// The family of the event.
    fn kind(&self) -> EventKind;
    /// Event time in Unix epoch milliseconds.
    fn time_ms(&self) -> i64;
    /// The message text (see [`Event::text`]).
    fn text(&self) -> &str;
    /// The value at `slot` of the kind's field plan (`Missing` if unfilled).
    fn field(&self, slot: Slot) -> FieldRef<'_, 'a>;
    /// The text of [`Self::field`] when it is a [`FieldValue::Str`], and
    /// `None` for any other value: the same answer, read without making a
    /// value where the view can (a flow column is a slice of the line).
    fn field_str(&self, slot: Slot) -> Option<&str>;
    /// A stable id for evidence.
    fn id(&self) -> Option<&str>;
    /// The account the event belongs to.
    fn account(&self) -> Option<&str>;
    /// The AWS region, when known.
    fn region(&self) -> Option<&str>;
    /// See [`Event::ruled_out`].
    fn ruled_out(&self) -> bool;
    /// The text already split into runs of non-space bytes, when the
    /// decoder made that split and it is exactly what a space-delimited
    /// pattern's tokenizer would make (no quotes, brackets, tabs or line
    /// breaks in the text).
    fn delimited_spans(&self) -> Option<&[(usize, usize)]> {
        None
    }
    /// Whether the event is a flow line of the default format whose runs
    /// of non-space bytes are its columns ([`Self::delimited_spans`] is
    /// `Some`): token `i` of a one-group space-delimited pattern is then
    /// the format's column `i`.
    fn default_flow_columns(&self) -> bool {
        false
    }
    /// Whether the text at `slot`, if any, is known to hold no control byte
    /// (below `0x20`), so no group-key separator, without reading it.
    fn free_of_controls(&self, _slot: Slot) -> bool {
        false
    }
}

impl<'a> EventView<'a> for Event<'a> {
    #[inline]
    fn kind(&self) -> EventKind {
        self.kind
    }

    #[inline]
    fn time_ms(&self) -> i64 {
        self.time_ms
    }

    #[inline]
    fn text(&self) -> &str {
        &self.text
    }

    #[inline]
    fn field(&self, slot: Slot) -> FieldRef<'_, 'a> {
        FieldRef::Borrowed(Event::field(self, slot))
    }

    #[inline]
    fn field_str(&self, slot: Slot) -> Option<&str> {
        match Event::field(self, slot) {
            FieldValue::Str(text) => Some(text),
            _ => None,
        }
    }

    #[inline]
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    #[inline]
    fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    #[inline]
    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    #[inline]
    fn ruled_out(&self) -> bool {
        self.ruled_out
    }
}

/// Hash of a distinct-count value: the hash of its key text, computed
/// without allocating for numbers (ports, protocol numbers).
#[inline]
pub fn distinct_hash_of(value: &FieldValue<'_>) -> Option<u64> {
    match value {
        FieldValue::Str(s) => Some(xxhash_rust::xxh3::xxh3_64(s.as_bytes())),
        FieldValue::Number(n) => {
            let mut buffer = NumberText::default();
            write_number(&mut buffer, *n).ok()?;
            Some(xxhash_rust::xxh3::xxh3_64(buffer.as_bytes()))
        }
        other => other
            .as_key_text()
            .map(|text| xxhash_rust::xxh3::xxh3_64(text.as_bytes())),
    }
}

/// Writes `n` as [`crate::event::format_number`] renders it, without
/// allocating.
pub fn write_number(out: &mut impl std::fmt::Write, n: f64) -> std::fmt::Result {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        // itoa writes the same digits as `{}` without the formatting
        // machinery.
        out.write_str(itoa::Buffer::new().format(n as i64))
    } else {
        write!(out, "{n}")
    }
}

/// A stack buffer for a number's text (falls back to truncation, which
/// cannot happen for f64's shortest representation within 64 bytes).
struct NumberText {
    bytes: [u8; 64],
    len: usize,
}

impl Default for NumberText {
    fn default() -> Self {
        NumberText {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl NumberText {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Write for NumberText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let target = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        target.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    #[test]
    fn numbers_render_and_hash_like_their_text() {
        for n in [22.0, -5.0, 1.5, 1e20, 0.1] {
            let mut text = String::new();
            write_number(&mut text, n).unwrap();
            assert_eq!(text, crate::event::format_number(n));
            assert_eq!(
                distinct_hash_of(&FieldValue::Number(n)),
                Some(xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
            );
        }
    }

    proptest::proptest! {
        /// The allocation-free writer (itoa for integral values) renders
        /// exactly as `format_number` does.
        #[test]
        fn written_numbers_equal_formatted_ones(
            n in proptest::prop_oneof![
                proptest::num::f64::ANY,
                (-2_000_000_000_000_000i64..2_000_000_000_000_000).prop_map(|i| i as f64),
                (-70_000i64..70_000).prop_map(|i| i as f64),
            ]
        ) {
            let mut text = String::new();
            write_number(&mut text, n).unwrap();
            proptest::prop_assert_eq!(text, format_number(n));
        }
    }

    #[test]
    fn numbers_render_like_json() {
        assert_eq!(format_number(22.0), "22");
        assert_eq!(format_number(1.5), "1.5");
        assert_eq!(FieldValue::Number(6.0).as_key_text().unwrap(), "6");
    }

    #[test]
    fn missing_slots_read_as_missing() {
        let event = Event {
            kind: EventKind::CloudTrail,
            time_ms: 0,
            text: Cow::Borrowed("{}"),
            fields: Fields::new(),
            id: None,
            account: None,
            region: None,
            ruled_out: false,
        };
        assert_eq!(event.field(3), &FieldValue::Missing);
        assert_eq!(FieldValue::Str("42".into()).as_f64(), Some(42.0));
        assert_eq!(FieldValue::Object.as_key_text(), None);
    }
}
