//! A collecting [`DecodeSink`] for tests (unit, integration, golden cases).
//!
//! Contract: [`Collector`] owns a copy of every event
//! ([`FieldValue::into_owned`]), every error with its original bytes, and
//! counts control messages. It is a test helper, not for production use.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::decode::{DecodeError, DecodeErrorReason, DecodeSink};
use crate::event::{Event, FieldValue};

/// An error the decoder reported, with the bytes it dead-lettered.
#[derive(Clone, Debug)]
pub struct CollectedError {
    pub error: DecodeError,
    pub original: Vec<u8>,
}

/// Collects everything a decoder reports.
#[derive(Clone, Debug, Default)]
pub struct Collector {
    pub events: Vec<Event<'static>>,
    pub errors: Vec<CollectedError>,
    pub control_messages: usize,
    pub digest_files: usize,
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Self {
        Collector::default()
    }

    /// Error counts by reason.
    pub fn errors_by_reason(&self) -> BTreeMap<DecodeErrorReason, usize> {
        let mut counts = BTreeMap::new();
        for collected in &self.errors {
            *counts.entry(collected.error.reason).or_insert(0) += 1;
        }
        counts
    }

    /// The reasons of all errors, in order.
    pub fn reasons(&self) -> Vec<DecodeErrorReason> {
        self.errors.iter().map(|c| c.error.reason).collect()
    }

    /// How many errors had `reason`.
    pub fn error_count(&self, reason: DecodeErrorReason) -> usize {
        self.errors
            .iter()
            .filter(|c| c.error.reason == reason)
            .count()
    }
}

fn owned(text: &Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
    text.as_ref().map(|t| Cow::Owned(t.to_string()))
}

impl DecodeSink for Collector {
    fn event(&mut self, event: &Event<'_>) {
        self.events.push(Event {
            kind: event.kind,
            time_ms: event.time_ms,
            text: Cow::Owned(event.text.to_string()),
            fields: event
                .fields
                .iter()
                .cloned()
                .map(FieldValue::into_owned)
                .collect(),
            id: owned(&event.id),
            account: owned(&event.account),
            region: owned(&event.region),
            ruled_out: event.ruled_out,
        });
    }

    fn error(&mut self, error: DecodeError, original: &[u8]) {
        self.errors.push(CollectedError {
            error,
            original: original.to_vec(),
        });
    }

    fn control_message(&mut self) {
        self.control_messages += 1;
    }

    fn digest_file(&mut self) {
        self.digest_files += 1;
    }
}
