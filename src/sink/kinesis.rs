//! Alerts to a Kinesis stream.
//!
//! Contract: each alert is one record, partition key = the stable
//! `rule|group key` ([`Alert::routing_key`], so one key's alerts stay in
//! order on one shard), data = the OCSF Detection Finding JSON. Alerts go
//! out in PutRecords calls of at most 500 records and 5 MiB; records that
//! PutRecords reports as failed (throttling, internal errors) are retried
//! alone with capped exponential backoff. [`AlertSink::send`] returns `Ok`
//! only when every record of the batch was accepted; if retries run out it
//! returns `Err` and the engine retries the whole batch (records already
//! accepted are sent again with the same alert id: consumers deduplicate
//! by `finding_info.uid`/`metadata.uid`).
//!
//! One record holds at most 1 MiB (data plus partition key). An alert
//! larger than that (possible only with very large evidence limits) would
//! be refused on every retry, so it is [`Error::TooLarge`], which the
//! engine does not retry. There is no Kinesis dead-letter sink.

use std::time::Duration;

use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use tokio::runtime::Runtime;

use super::AlertSink;
use crate::alert::Alert;
use crate::engine::shutdown::ShutdownClock;
use crate::error::{Error, Result};
use crate::source::kinesis::{load_aws_config, runtime};

/// PutRecords accepts at most 500 records a call.
const MAX_RECORDS_PER_CALL: usize = 500;
/// ... and at most 5 MiB a call (data plus partition keys).
const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;
/// ... and at most 1 MiB a record (data plus partition key).
const MAX_BYTES_PER_RECORD: usize = 1024 * 1024;
/// Attempts for failed records within one `send`.
const MAX_ATTEMPTS: u32 = 8;

/// Settings of the Kinesis alert sink.
#[derive(Debug, Clone)]
pub struct KinesisSinkConfig {
    pub stream: String,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// Sends alerts to a Kinesis stream (see the module docs).
pub struct KinesisAlertSink {
    runtime: Runtime,
    client: Client,
    stream: String,
    /// The engine's shutdown clock: no retry round starts once it passed.
    shutdown: ShutdownClock,
}

impl KinesisAlertSink {
    /// A sink writing to `config.stream`.
    pub fn new(config: &KinesisSinkConfig) -> Result<KinesisAlertSink> {
        if config.stream.is_empty() {
            return Err(Error::Config("kinesis sink: stream is empty".into()));
        }
        let runtime = runtime(1)?;
        let sdk = runtime.block_on(load_aws_config(
            config.region.as_deref(),
            config.endpoint_url.as_deref(),
        ));
        Ok(KinesisAlertSink {
            runtime,
            client: Client::new(&sdk),
            stream: config.stream.clone(),
            shutdown: ShutdownClock::default(),
        })
    }

    async fn put_all(&self, mut pending: Vec<PutRecordsRequestEntry>) -> Result<()> {
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let mut failed = Vec::new();
            let mut last_error = String::new();
            for chunk in chunks(pending) {
                let response = self
                    .client
                    .put_records()
                    .stream_name(&self.stream)
                    .set_records(Some(chunk.clone()))
                    .send()
                    .await;
                match response {
                    Ok(output) => {
                        for (entry, result) in chunk.into_iter().zip(output.records()) {
                            if let Some(code) = result.error_code() {
                                last_error = format!(
                                    "{code}: {}",
                                    result.error_message().unwrap_or_default()
                                );
                                failed.push(entry);
                            }
                        }
                    }
                    Err(error) => {
                        last_error = DisplayErrorContext(error).to_string();
                        failed.extend(chunk);
                    }
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            if attempt >= MAX_ATTEMPTS || self.shutdown.passed() {
                return Err(Error::Sink(format!(
                    "kinesis put records to {}: {} records not accepted after {attempt} attempts: {last_error}",
                    self.stream,
                    failed.len()
                )));
            }
            tracing::debug!(stream = %self.stream, failed = failed.len(), error = %last_error, "retrying failed alert records");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            pending = failed;
        }
        Ok(())
    }
}

/// Kinesis partition keys are 1 to 256 characters: longer routing keys
/// are replaced by their SHA-256 (still stable, so still one shard per key).
fn partition_key(routing_key: &str) -> String {
    use sha2::{Digest, Sha256};
    if routing_key.is_empty() {
        return "-".to_string();
    }
    if routing_key.chars().count() <= 256 {
        return routing_key.to_string();
    }
    hex::encode(Sha256::digest(routing_key.as_bytes()))
}

/// A record Kinesis would refuse on every attempt is [`Error::TooLarge`].
fn check_record_size(entry: &PutRecordsRequestEntry, stream: &str) -> Result<()> {
    let size = entry.data().as_ref().len() + entry.partition_key().map_or(0, str::len);
    if size > MAX_BYTES_PER_RECORD {
        return Err(Error::TooLarge(format!(
            "kinesis stream {stream}: a record of {size} bytes exceeds the {MAX_BYTES_PER_RECORD}-byte record limit"
        )));
    }
    Ok(())
}

/// Splits entries into PutRecords-sized calls, keeping their order.
fn chunks(entries: Vec<PutRecordsRequestEntry>) -> Vec<Vec<PutRecordsRequestEntry>> {
    let mut calls = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = entry.data().as_ref().len() + entry.partition_key().map_or(0, str::len);
        if !current.is_empty()
            && (current.len() == MAX_RECORDS_PER_CALL || bytes + size > MAX_BYTES_PER_CALL)
        {
            calls.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(entry);
    }
    if !current.is_empty() {
        calls.push(current);
    }
    calls
}

impl AlertSink for KinesisAlertSink {
    fn name(&self) -> &str {
        "kinesis"
    }

    fn watch_shutdown(&mut self, clock: &ShutdownClock) {
        self.shutdown = clock.clone();
    }

    fn send(&mut self, alerts: &[Alert]) -> Result<()> {
        let mut entries = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let data = alert
                .ocsf_json()
                .map_err(|e| Error::Internal(format!("cannot encode alert: {e}")))?;
            let entry = PutRecordsRequestEntry::builder()
                .data(Blob::new(data))
                .partition_key(partition_key(&alert.routing_key()))
                .build()
                .map_err(|e| Error::Internal(format!("cannot build put records entry: {e}")))?;
            check_record_size(&entry, &self.stream)?;
            entries.push(entry);
        }
        self.runtime.block_on(self.put_all(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(size: usize) -> PutRecordsRequestEntry {
        PutRecordsRequestEntry::builder()
            .data(Blob::new(vec![b'x'; size]))
            .partition_key("k")
            .build()
            .unwrap()
    }

    #[test]
    fn long_routing_keys_are_hashed_stably() {
        let long = "r|".to_string() + &"x".repeat(300);
        assert_eq!(partition_key(&long).len(), 64);
        assert_eq!(partition_key(&long), partition_key(&long));
        assert_eq!(partition_key("rule|acct"), "rule|acct");
    }

    #[test]
    fn a_record_over_one_mib_is_too_large_not_retryable() {
        assert!(check_record_size(&entry(MAX_BYTES_PER_RECORD - 1), "s").is_ok());
        let error = check_record_size(&entry(MAX_BYTES_PER_RECORD), "s").unwrap_err();
        assert!(matches!(error, Error::TooLarge(_)), "{error}");
        assert!(!error.class().is_retryable());
    }

    #[test]
    fn chunks_respect_record_and_byte_limits() {
        let calls = chunks((0..1001).map(|_| entry(10)).collect());
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![500, 500, 1]);
        let calls = chunks((0..6).map(|_| entry(1024 * 1024)).collect());
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![4, 2]);
    }
}
