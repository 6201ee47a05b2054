//! Decoders: raw record bytes in, [`Event`]s out.
//!
//! STUB: the real implementation lands from the decoder work stream.

use crate::event::Event;

/// Why a record could not be decoded. Names are stable metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DecodeErrorReason {
    InvalidJson,
}

impl DecodeErrorReason {
    /// Stable snake_case label.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeErrorReason::InvalidJson => "invalid_json",
        }
    }
}

/// A decode failure for one (sub-)record.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct DecodeError {
    pub reason: DecodeErrorReason,
    pub detail: String,
}

/// Receives what a decoder finds in one raw record.
pub trait DecodeSink {
    /// A decoded event.
    fn event(&mut self, event: &Event<'_>);
    /// A (sub-)record that failed, with the original bytes for dead-lettering.
    fn error(&mut self, error: DecodeError, original: &[u8]);
    /// A CloudWatch Logs `CONTROL_MESSAGE` was dropped.
    fn control_message(&mut self);
}

impl DecodeErrorReason {
    /// Every reason, in label order.
    pub const ALL: [DecodeErrorReason; 1] = [DecodeErrorReason::InvalidJson];
}

/// Forced decoder (stub).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecoderKind {
    #[default]
    Auto,
}

/// Decoder settings (stub).
#[derive(Debug, Clone, Default)]
pub struct DecodeConfig {
    pub forced: DecoderKind,
    pub max_record_bytes: usize,
    pub max_decompressed_bytes: usize,
}

/// Decoder (stub).
pub struct Decoder;

impl Decoder {
    /// A decoder for `plans`.
    pub fn new(_config: DecodeConfig, _plans: &crate::fields::FieldPlans) -> Decoder {
        Decoder
    }

    /// Decodes one record (stub).
    pub fn decode(&mut self, _record: &[u8], _out: &mut dyn DecodeSink) {}
}

/// Framing (stub).
pub mod framing {
    use super::DecodeErrorReason;

    /// A framed piece of input.
    pub enum Frame<'a> {
        Record(&'a [u8]),
        Invalid {
            bytes: &'a [u8],
            reason: DecodeErrorReason,
            detail: String,
        },
    }

    /// Splits lines (stub).
    pub fn frame(buf: &[u8], _at_eof: bool, out: &mut dyn FnMut(Frame<'_>)) -> usize {
        out(Frame::Record(buf));
        buf.len()
    }
}
