//! Alerts to a Kinesis stream.
//!
//! Contract: each alert is one record, partition key = the stable
//! `rule|group key` ([`Alert::routing_key`], so one key's alerts stay in
//! order on one shard), data = the OCSF Detection Finding JSON. Alerts go
//! out in PutRecords calls of at most 500 records and 5 MiB, and never
//! two records of one partition key at once: each call takes, in batch
//! order, at most the first not yet accepted record of each key, so a
//! key's later alert is sent only after its earlier one was accepted
//! (PutRecords reports each record on its own and may accept a later
//! record of a call after refusing an earlier one). A batch of many alerts
//! of one key therefore takes one call per alert.
//!
//! Records PutRecords refuses (throttling, internal errors) stay pending
//! in their order; their keys wait until the next round, after a capped
//! exponential backoff (reset by every round that got a record accepted).
//! Only what was not accepted is ever sent again within one
//! [`AlertSink::send`], so a throttled shard gets through a large batch at
//! its write rate. `send` returns `Ok` only when every record of the
//! batch was accepted, and `Err` after [`MAX_STALLED_ROUNDS`] rounds in a
//! row accepted nothing; the engine then retries the whole batch (records
//! already accepted are sent again with the same alert id: consumers
//! deduplicate by `finding_info.uid`/`metadata.uid`). Each record sent
//! again is counted in `trailwatch_sink_retries_total{sink="alerts"}`.
//!
//! Once the engine's shutdown clock has started, every PutRecords call and
//! every backoff is cut off at its deadline (checked before each call and
//! every [`SHUTDOWN_POLL`] while one waits), so `send` gives up at the
//! deadline even against an endpoint that never answers.
//!
//! One record holds at most 1 MiB (data plus partition key). An alert
//! larger than that would be refused on every retry, so it is
//! [`Error::TooLarge`], which the engine does not retry. The config
//! refuses a Kinesis alert sink with evidence limits under which an alert
//! could reach that size (`config::check_kinesis_alert_size`), as the
//! alert's id is deterministic and every restart would replay into it
//! again; only events with group-key values of hundreds of KiB still can.
//! There is no Kinesis dead-letter sink.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
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
use crate::metrics::Metrics;
use crate::source::kinesis::{load_aws_config, runtime};

/// PutRecords accepts at most 500 records a call.
const MAX_RECORDS_PER_CALL: usize = 500;
/// ... and at most 5 MiB a call (data plus partition keys).
const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;
/// ... and at most 1 MiB a record (data plus partition key).
pub const MAX_BYTES_PER_RECORD: usize = 1024 * 1024;
/// Rounds in a row that get no record accepted before `send` gives up.
pub const MAX_STALLED_ROUNDS: u32 = 8;
/// Backoff after a round with refused records: first and cap.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a waiting call or backoff looks at the shutdown clock.
pub const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

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
    /// The engine's shutdown clock: calls and backoffs end at its deadline.
    shutdown: ShutdownClock,
    /// Where records sent again are counted (`sink.retries`).
    metrics: Option<Arc<Metrics>>,
}

/// A record not yet accepted.
struct Pending {
    entry: PutRecordsRequestEntry,
    key: String,
    size: usize,
}

impl Pending {
    fn new(entry: PutRecordsRequestEntry) -> Pending {
        let key = entry.partition_key().unwrap_or_default().to_string();
        let size = entry.data().as_ref().len() + key.len();
        Pending { entry, key, size }
    }
}

/// The next PutRecords call: indexes into `pending`, in order, of at most
/// one record per partition key (the first pending one of its key), none
/// of a key in `blocked`, within the call's record and byte limits.
fn next_call(pending: &[Pending], blocked: &HashSet<String>) -> Vec<usize> {
    let mut call = Vec::new();
    let mut keys: HashSet<&str> = HashSet::new();
    let mut bytes = 0;
    for (index, record) in pending.iter().enumerate() {
        if call.len() == MAX_RECORDS_PER_CALL {
            break;
        }
        // A key seen before in this scan has an earlier pending record:
        // this one waits, whether or not that one went into the call.
        if !keys.insert(record.key.as_str()) || blocked.contains(&record.key) {
            continue;
        }
        if bytes + record.size > MAX_BYTES_PER_CALL {
            if call.is_empty() {
                // Only a record over the call limit, which the record
                // limit (checked before) rules out; send it alone.
                call.push(index);
            }
            break;
        }
        bytes += record.size;
        call.push(index);
    }
    call
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
            metrics: None,
        })
    }

    /// Runs `work` until it ends or the shutdown deadline passes (`None`):
    /// looks at the clock before starting it and every [`SHUTDOWN_POLL`].
    async fn before_deadline<F: Future>(&self, work: F) -> Option<F::Output> {
        let mut work = std::pin::pin!(work);
        loop {
            if self.shutdown.passed() {
                return None;
            }
            if let Ok(output) = tokio::time::timeout(SHUTDOWN_POLL, &mut work).await {
                return Some(output);
            }
        }
    }

    fn at_deadline(&self, left: usize, last_error: &str) -> Error {
        Error::Sink(format!(
            "kinesis put records to {}: {left} records not accepted, shutdown deadline passed{}{last_error}",
            self.stream,
            if last_error.is_empty() { "" } else { ": " }
        ))
    }

    async fn put_all(&self, mut pending: Vec<Pending>) -> Result<()> {
        let mut backoff = FIRST_BACKOFF;
        let mut stalled = 0;
        let mut last_error = String::new();
        while !pending.is_empty() {
            // One round: calls until every pending key is blocked (refused
            // in this round) or done.
            let mut blocked = HashSet::new();
            let mut accepted_any = false;
            let mut refused = 0u64;
            loop {
                let call = next_call(&pending, &blocked);
                if call.is_empty() {
                    break;
                }
                let records: Vec<PutRecordsRequestEntry> =
                    call.iter().map(|&i| pending[i].entry.clone()).collect();
                let request = self
                    .client
                    .put_records()
                    .stream_name(&self.stream)
                    .set_records(Some(records))
                    .send();
                let Some(response) = self.before_deadline(request).await else {
                    return Err(self.at_deadline(pending.len(), &last_error));
                };
                let mut accepted = vec![false; call.len()];
                match response {
                    Ok(output) => {
                        for (slot, result) in accepted.iter_mut().zip(output.records()) {
                            match result.error_code() {
                                Some(code) => {
                                    last_error = format!(
                                        "{code}: {}",
                                        result.error_message().unwrap_or_default()
                                    );
                                }
                                None => *slot = true,
                            }
                        }
                    }
                    Err(error) => last_error = DisplayErrorContext(error).to_string(),
                }
                let mut done = vec![false; pending.len()];
                for (&index, &ok) in call.iter().zip(&accepted) {
                    done[index] = ok;
                    if !ok {
                        blocked.insert(pending[index].key.clone());
                        refused += 1;
                    }
                }
                accepted_any |= accepted.iter().any(|&ok| ok);
                // Drop the accepted records, keeping the rest in order.
                let mut done = done.into_iter();
                pending.retain(|_| !done.next().unwrap_or(false));
            }
            if pending.is_empty() {
                return Ok(());
            }
            if accepted_any {
                stalled = 0;
                backoff = FIRST_BACKOFF;
            } else {
                stalled += 1;
            }
            if stalled >= MAX_STALLED_ROUNDS {
                return Err(Error::Sink(format!(
                    "kinesis put records to {}: {} records not accepted after {stalled} rounds in a row without progress: {last_error}",
                    self.stream,
                    pending.len()
                )));
            }
            if let Some(metrics) = &self.metrics {
                metrics.sink.retries.fetch_add(refused, Ordering::Relaxed);
            }
            tracing::debug!(stream = %self.stream, pending = pending.len(), refused, error = %last_error, "retrying refused alert records");
            if self
                .before_deadline(tokio::time::sleep(backoff))
                .await
                .is_none()
            {
                return Err(self.at_deadline(pending.len(), &last_error));
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
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
fn check_record_size(record: &Pending, stream: &str) -> Result<()> {
    let size = record.size;
    if size > MAX_BYTES_PER_RECORD {
        return Err(Error::TooLarge(format!(
            "kinesis stream {stream}: a record of {size} bytes exceeds the {MAX_BYTES_PER_RECORD}-byte record limit"
        )));
    }
    Ok(())
}

impl AlertSink for KinesisAlertSink {
    fn name(&self) -> &str {
        "kinesis"
    }

    fn watch_shutdown(&mut self, clock: &ShutdownClock) {
        self.shutdown = clock.clone();
    }

    fn count_into(&mut self, metrics: &Arc<Metrics>) {
        self.metrics = Some(Arc::clone(metrics));
    }

    fn send(&mut self, alerts: &[Alert]) -> Result<()> {
        let mut records = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let data = alert
                .ocsf_json()
                .map_err(|e| Error::Internal(format!("cannot encode alert: {e}")))?;
            let entry = PutRecordsRequestEntry::builder()
                .data(Blob::new(data))
                .partition_key(partition_key(&alert.routing_key()))
                .build()
                .map_err(|e| Error::Internal(format!("cannot build put records entry: {e}")))?;
            let record = Pending::new(entry);
            check_record_size(&record, &self.stream)?;
            records.push(record);
        }
        self.runtime.block_on(self.put_all(records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(key: &str, size: usize) -> PutRecordsRequestEntry {
        PutRecordsRequestEntry::builder()
            .data(Blob::new(vec![b'x'; size]))
            .partition_key(key)
            .build()
            .unwrap()
    }

    fn entry(size: usize) -> PutRecordsRequestEntry {
        keyed("k", size)
    }

    fn pending(records: &[(&str, usize)]) -> Vec<Pending> {
        records
            .iter()
            .map(|(key, size)| Pending::new(keyed(key, *size)))
            .collect()
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
        let record = |size| Pending::new(entry(size));
        assert!(check_record_size(&record(MAX_BYTES_PER_RECORD - 1), "s").is_ok());
        let error = check_record_size(&record(MAX_BYTES_PER_RECORD), "s").unwrap_err();
        assert!(matches!(error, Error::TooLarge(_)), "{error}");
        assert!(!error.class().is_retryable());
    }

    #[test]
    fn a_call_takes_the_first_pending_record_of_each_key_only() {
        let records = pending(&[("a", 1), ("a", 1), ("b", 1), ("a", 1), ("c", 1), ("b", 1)]);
        assert_eq!(next_call(&records, &HashSet::new()), vec![0, 2, 4]);
        // A key refused in this round waits, and so do its later records.
        let blocked = HashSet::from(["a".to_string()]);
        assert_eq!(next_call(&records, &blocked), vec![2, 4]);
        let all = HashSet::from(["a", "b", "c"].map(String::from));
        assert!(next_call(&records, &all).is_empty());
    }

    #[test]
    fn calls_respect_record_and_byte_limits() {
        let many: Vec<(String, usize)> = (0..1001).map(|i| (format!("k{i}"), 10)).collect();
        let many: Vec<(&str, usize)> = many.iter().map(|(k, s)| (k.as_str(), *s)).collect();
        assert_eq!(next_call(&pending(&many), &HashSet::new()).len(), 500);
        let big = pending(&[
            ("a", 1 << 20),
            ("b", 1 << 20),
            ("c", 1 << 20),
            ("d", 1 << 20),
            ("e", 1 << 20),
            ("f", 1 << 20),
        ]);
        // 1 MiB of data plus a 1-byte key each: four fit in 5 MiB.
        assert_eq!(next_call(&big, &HashSet::new()), vec![0, 1, 2, 3]);
    }
}
