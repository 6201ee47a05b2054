//! Sinks: where alerts and dead letters go.
//!
//! # Acknowledgement contract
//!
//! [`AlertSink::send`] returns `Ok` only once every alert of the batch is
//! durably handed over (written and flushed, or acknowledged by a broker).
//! Only then does the engine release the alerts' commit holds, so the
//! source can commit past the records that caused them. On a retryable
//! `Err` (class external) the engine retries the same batch with capped
//! exponential backoff; while it retries, the bounded channels fill and
//! intake pauses (backpressure): nothing is dropped and nothing is buffered
//! without bound. After a stop request it retries only until the shutdown
//! deadline. A non-retryable error (an [`crate::error::Error::OutputClosed`] pipe, an
//! alert that cannot be encoded) or that deadline ends the run, and the
//! commit tracker is frozen first (`engine::commit`, "Frozen"), so what
//! the sink never took is delivered again after a restart.

#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kinesis")]
pub mod kinesis;
pub mod writer;

use crate::alert::Alert;
#[cfg(doc)]
use crate::error::Error;
use crate::error::{ErrorClass, Result};

/// Destination of alerts.
pub trait AlertSink: Send {
    /// Name for logs and metrics.
    fn name(&self) -> &str;
    /// Delivers a batch; `Ok` means acknowledged (see the module contract).
    fn send(&mut self, alerts: &[Alert]) -> Result<()>;
}

/// A record that could not be processed, with its reason.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// `source:partition` name of the input.
    pub partition: String,
    pub offset: u64,
    pub class: ErrorClass,
    /// Stable reason label (e.g. `invalid_json`).
    pub reason: &'static str,
    pub detail: String,
    /// The original bytes.
    pub bytes: Vec<u8>,
}

impl DeadLetter {
    /// The dead letter of bytes a source could not frame into a record
    /// (`partition` is its `source:partition` name).
    pub fn of_rejected(partition: String, rejected: &crate::source::Rejected) -> DeadLetter {
        DeadLetter {
            partition,
            offset: rejected.offset,
            class: ErrorClass::User,
            reason: rejected.reason.as_str(),
            detail: rejected.detail.clone(),
            bytes: rejected.bytes.clone(),
        }
    }
}

/// Destination of dead letters.
pub trait DeadLetterSink: Send {
    /// Name for logs and metrics.
    fn name(&self) -> &str;
    /// Delivers a batch; same contract as [`AlertSink::send`].
    fn send(&mut self, records: &[DeadLetter]) -> Result<()>;
}

/// Destination of stage-1 partials: the repartition topic of a two-stage
/// deployment. Same acknowledgement contract as [`AlertSink::send`].
pub trait PartialSink: Send {
    /// Name for logs and metrics.
    fn name(&self) -> &str;
    /// Delivers `partials` (each to the partition of its key), then
    /// `watermark` to every partition, in that order per partition.
    /// Returns the bytes (keys and values) written.
    fn send(
        &mut self,
        partials: &[crate::engine::preagg::PartialRecord],
        watermark: Option<&crate::engine::preagg::PartialRecord>,
    ) -> Result<u64>;
}
