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
