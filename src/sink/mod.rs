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
//!
//! # Dead letters that do not fit
//!
//! An output may cap the size of one record (a Kafka topic: the producer's
//! `message.max.bytes`). A dead letter carries its whole original record,
//! up to `max_record_bytes` (16 MiB), and one that cannot fit would fail
//! the same way on every retry and stall the pipeline. So before each send
//! the engine asks the sink to [`DeadLetterSink::fit`] every dead letter:
//! one that is too large is cut ([`DeadLetter::truncate`]) to the first
//! bytes of its record, keeping its position (partition and offset, so the
//! whole record can be read again at its source), reason and class, and
//! marked with its original length. Each cut is counted
//! (`trailwatch_dead_letters_truncated_total`) and logged at warn. A
//! record an output still refuses as too large is [`Error::TooLarge`]: not
//! retryable, it ends the run loudly instead of stalling it.

#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kinesis")]
pub mod kinesis;
pub mod writer;

use std::sync::Arc;

use crate::alert::Alert;
use crate::engine::shutdown::ShutdownClock;
#[cfg(doc)]
use crate::error::Error;
use crate::error::{ErrorClass, Result};
use crate::metrics::Metrics;

/// Destination of alerts.
pub trait AlertSink: Send {
    /// Name for logs and metrics.
    fn name(&self) -> &str;
    /// Delivers a batch; `Ok` means acknowledged (see the module contract).
    fn send(&mut self, alerts: &[Alert]) -> Result<()>;
    /// Hands over the engine's shutdown clock, for a sink whose one send
    /// can block past it (see [`ShutdownClock`]). By default, ignored.
    fn watch_shutdown(&mut self, clock: &ShutdownClock) {
        let _ = clock;
    }
    /// Hands over the engine's metrics, for a sink that retries inside one
    /// send and counts those retries in `metrics.sink`. By default, ignored.
    fn count_into(&mut self, metrics: &Arc<Metrics>) {
        let _ = metrics;
    }
}

/// A record that could not be processed, with its reason.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// `source:partition` name of the input.
    pub partition: String,
    pub offset: u64,
    /// The record's position in its backend when `offset` is not it: a
    /// Kinesis sequence number (`offset` is then a per-process ordinal).
    pub sequence_number: Option<String>,
    pub class: ErrorClass,
    /// Stable reason label (e.g. `invalid_json`).
    pub reason: &'static str,
    pub detail: String,
    /// The original bytes, or their first part when the dead letter was
    /// cut to fit its output (then `original_len` is set).
    pub bytes: Vec<u8>,
    /// The original record's length when `bytes` holds only its first part
    /// ([`DeadLetter::truncate`]); `None` when `bytes` is the whole record.
    pub original_len: Option<u64>,
}

impl DeadLetter {
    /// The dead letter of bytes a source could not frame into a record
    /// (`partition` is its `source:partition` name).
    pub fn of_rejected(partition: String, rejected: &crate::source::Rejected) -> DeadLetter {
        DeadLetter {
            partition,
            offset: rejected.offset,
            sequence_number: None,
            class: ErrorClass::User,
            reason: rejected.reason.as_str(),
            detail: rejected.detail.clone(),
            bytes: rejected.bytes.clone(),
            original_len: None,
        }
    }

    /// Cuts the original bytes to their first `keep_bytes`, and the detail
    /// to [`MAX_TRUNCATED_DETAIL_BYTES`], remembering the original length
    /// (cutting again keeps the first one). Position, class and reason are
    /// kept, so the whole record can be found at its source.
    pub fn truncate(&mut self, keep_bytes: usize) {
        self.original_len.get_or_insert(self.bytes.len() as u64);
        self.bytes.truncate(keep_bytes);
        self.bytes.shrink_to_fit();
        let end =
            crate::engine::window::floor_char_boundary(&self.detail, MAX_TRUNCATED_DETAIL_BYTES);
        self.detail.truncate(end);
    }

    /// Whether `bytes` holds only the first part of the record.
    pub fn is_truncated(&self) -> bool {
        self.original_len.is_some()
    }
}

/// Most detail bytes a cut dead letter keeps ([`DeadLetter::truncate`]).
pub const MAX_TRUNCATED_DETAIL_BYTES: usize = 1024;

/// Destination of dead letters.
pub trait DeadLetterSink: Send {
    /// Name for logs and metrics.
    fn name(&self) -> &str;
    /// Cuts `record` to what one record of this output can hold, if it
    /// must, and returns whether it cut (module docs, "Dead letters that do
    /// not fit"). The engine fits every dead letter before
    /// [`DeadLetterSink::send`]. The default, for outputs without a record
    /// size limit (files, stdout, memory), never cuts.
    fn fit(&self, record: &mut DeadLetter) -> bool {
        let _ = record;
        false
    }
    /// Delivers a batch; same contract as [`AlertSink::send`].
    fn send(&mut self, records: &[DeadLetter]) -> Result<()>;
    /// As [`AlertSink::watch_shutdown`].
    fn watch_shutdown(&mut self, clock: &ShutdownClock) {
        let _ = clock;
    }
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
    /// As [`AlertSink::watch_shutdown`].
    fn watch_shutdown(&mut self, clock: &ShutdownClock) {
        let _ = clock;
    }
}
