//! Shard discovery (ListShards) and the per-shard reader task.
//!
//! A reader owns one shard for one lease session (a *generation*). It
//! polls GetRecords within the per-shard limits (at most 5 calls/s, at
//! most 10,000 records a call, 2 MB/s paced by [`ReadPacer`]; an empty or
//! caught-up shard is polled every `poll_interval`), backs off exponentially on
//! `ProvisionedThroughputExceededException`, re-acquires its iterator on
//! `ExpiredIteratorException`, and hands each Kinesis record's data bytes
//! with its sequence number to the source through a bounded channel (a
//! full channel pauses the reader: backpressure). When a closed shard has
//! no next iterator the reader reports [`ReaderMsg::End`] and stops. It
//! also stops, without reporting, once its lease's validity runs out
//! ([`LeaseClock`]), so it never reads past the moment another worker may
//! take the shard over.
//!
//! Every failed call is counted in [`KinesisSourceCounters`] by kind. While
//! calls keep failing the shard's lag is published as its last
//! `MillisBehindLatest` plus the time since the last successful read
//! ([`Staleness`]), so a reader that cannot read shows as falling behind
//! instead of keeping its last value. `ResourceNotFoundException` (the
//! shard was trimmed past retention) wakes the coordinator, whose shard
//! discovery ends such a shard.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use tokio::sync::{mpsc, Notify};

use super::checkpoint::TRIM_HORIZON;
use super::pacing::{ReadPacer, MIN_CALL_SPACING};
use super::LagSnapshot;
use crate::error::{Error, Result};
use crate::metrics::{KinesisReadError, KinesisSourceCounters};

/// Cap of the throttling backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A shard as listed by ListShards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub id: String,
    pub parents: Vec<String>,
}

/// Every shard of `stream` (all ListShards pages).
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<ShardInfo>> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let request = match next_token.take() {
            // With a token, the stream name must not be repeated.
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(stream),
        };
        let page = request.send().await.map_err(|e| {
            Error::Source(format!(
                "kinesis list shards of {stream}: {}",
                DisplayErrorContext(e)
            ))
        })?;
        for shard in page.shards() {
            let parents = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .map(str::to_string)
                .collect();
            shards.push(ShardInfo {
                id: shard.shard_id().to_string(),
                parents,
            });
        }
        match page.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_string()),
            _ => return Ok(shards),
        }
    }
}

/// Until when a lease session may read, as milliseconds since a shared
/// base instant (lock-free for the readers; the coordinator extends it on
/// every successful renew).
#[derive(Debug)]
pub struct LeaseClock {
    base: Instant,
    valid_until_ms: AtomicU64,
}

impl LeaseClock {
    /// A clock valid until `until`.
    pub fn new(base: Instant, until: Instant) -> LeaseClock {
        let clock = LeaseClock {
            base,
            valid_until_ms: AtomicU64::new(0),
        };
        clock.extend(until);
        clock
    }

    /// Moves the validity to `until`.
    pub fn extend(&self, until: Instant) {
        let ms = until.saturating_duration_since(self.base).as_millis() as u64;
        self.valid_until_ms.store(ms, Ordering::Release);
    }

    /// Ends the validity now.
    pub fn revoke(&self) {
        self.valid_until_ms.store(0, Ordering::Release);
    }

    /// Whether reading is still allowed.
    pub fn is_valid(&self) -> bool {
        let now_ms = self.base.elapsed().as_millis() as u64;
        now_ms < self.valid_until_ms.load(Ordering::Acquire)
    }

    /// How long reading is still allowed (zero once it is not).
    pub fn remaining(&self) -> Duration {
        let now_ms = self.base.elapsed().as_millis() as u64;
        let until_ms = self.valid_until_ms.load(Ordering::Acquire);
        Duration::from_millis(until_ms.saturating_sub(now_ms))
    }
}

/// What readers send to the source.
#[derive(Debug)]
pub enum ReaderMsg {
    /// Records in shard order: data bytes and sequence number.
    Records {
        shard: String,
        generation: u64,
        records: Vec<(Vec<u8>, String)>,
        /// The reader was at the shard's tip after these records
        /// (`MillisBehindLatest` 0). May come with no record, when only
        /// that changed.
        caught_up: bool,
    },
    /// The closed shard was read to its end.
    End { shard: String, generation: u64 },
}

/// Everything a reader needs.
pub struct Reader {
    pub client: Client,
    pub stream: String,
    pub shard: String,
    pub generation: u64,
    /// Checkpoint to start after (`TRIM_HORIZON` or a sequence number).
    pub start: String,
    pub max_records: i32,
    pub poll_interval: Duration,
    pub clock: Arc<LeaseClock>,
    pub tx: mpsc::Sender<ReaderMsg>,
    pub lag: LagSnapshot,
    /// Set after the first successful GetRecords (readiness).
    pub polled: Arc<AtomicBool>,
    pub counters: Arc<KinesisSourceCounters>,
    /// Wakes the coordinator for a shard discovery.
    pub wake: Arc<Notify>,
}

/// A shard's lag while its reads fail: the last `MillisBehindLatest` plus
/// the time since the last successful read (records that arrived since
/// then are at most that much behind). Both reader kinds use it.
#[derive(Debug)]
pub struct Staleness {
    last_ok: Instant,
    behind: i64,
}

impl Staleness {
    /// Starts counting now, from the shard's last published lag (0 if none).
    pub fn new(lag: &LagSnapshot, shard: &str) -> Staleness {
        let behind = lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(shard)
            .copied()
            .unwrap_or(0);
        Staleness {
            last_ok: Instant::now(),
            behind,
        }
    }

    /// A successful read, `behind` milliseconds behind the tip when the
    /// response says: publishes it.
    pub fn read(&mut self, lag: &LagSnapshot, shard: &str, behind: Option<i64>) {
        self.last_ok = Instant::now();
        if let Some(behind) = behind {
            self.behind = behind;
        }
        publish_lag(lag, shard, self.behind);
    }

    /// A failed read: publishes the growing lag.
    pub fn failed(&self, lag: &LagSnapshot, shard: &str) {
        let since = i64::try_from(self.last_ok.elapsed().as_millis()).unwrap_or(i64::MAX);
        publish_lag(lag, shard, self.behind.saturating_add(since));
    }
}

/// The kind of a failed Kinesis call, for the read error counter.
pub fn read_error_kind<E, R>(error: &aws_sdk_kinesis::error::SdkError<E, R>) -> KinesisReadError
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata,
{
    let code = error.as_service_error().and_then(|e| e.code());
    match code {
        Some("ProvisionedThroughputExceededException")
        | Some("LimitExceededException")
        | Some("ResourceInUseException") => KinesisReadError::Throttled,
        Some("ExpiredIteratorException") => KinesisReadError::ExpiredIterator,
        Some("ResourceNotFoundException") => KinesisReadError::NotFound,
        _ => KinesisReadError::Other,
    }
}

impl Reader {
    async fn iterator(&self, after: Option<&str>) -> Result<Option<String>> {
        let request = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(&self.shard);
        let request = match after {
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence),
        };
        let output = request.send().await.map_err(|e| {
            let kind = read_error_kind(&e);
            self.counters.read_error(kind);
            if kind == KinesisReadError::NotFound {
                // Trimmed past retention? Shard discovery ends such a shard.
                self.wake.notify_one();
            }
            Error::Source(format!(
                "kinesis get shard iterator for {}: {}",
                self.shard,
                DisplayErrorContext(e)
            ))
        })?;
        Ok(output.shard_iterator().map(str::to_string))
    }

    /// Reads until the shard ends, the lease runs out or the source goes away.
    pub async fn run(self) {
        let mut last_sequence: Option<String> = if self.start == TRIM_HORIZON {
            None
        } else {
            Some(self.start.clone())
        };
        let mut backoff = MIN_CALL_SPACING;
        let mut pacer = ReadPacer::default();
        let mut iterator: Option<String> = None;
        let mut reported_at_tip: Option<bool> = None;
        let mut staleness = Staleness::new(&self.lag, &self.shard);
        loop {
            if !self.clock.is_valid() {
                tracing::info!(shard = %self.shard, "lease validity ran out, reader stops");
                return;
            }
            let current = match iterator.take() {
                Some(current) => current,
                None => match self.iterator(last_sequence.as_deref()).await {
                    Ok(Some(fresh)) => fresh,
                    Ok(None) => {
                        // No iterator at all: a closed shard already read past its end.
                        let _ = self
                            .tx
                            .send(ReaderMsg::End {
                                shard: self.shard.clone(),
                                generation: self.generation,
                            })
                            .await;
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(shard = %self.shard, error = %error, "cannot get shard iterator, retrying");
                        staleness.failed(&self.lag, &self.shard);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            let called_at = Instant::now();
            let response = self
                .client
                .get_records()
                .shard_iterator(&current)
                .limit(self.max_records)
                .send()
                .await;
            let output = match response {
                Ok(output) => output,
                Err(error) => {
                    self.counters.read_error(read_error_kind(&error));
                    staleness.failed(&self.lag, &self.shard);
                    let service = error.as_service_error();
                    if service.is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()) {
                        tracing::debug!(shard = %self.shard, backoff_ms = backoff.as_millis() as u64, "throughput exceeded, backing off");
                        iterator = Some(current);
                    } else if service.is_some_and(|e| e.is_expired_iterator_exception()) {
                        tracing::debug!(shard = %self.shard, "iterator expired, re-acquiring");
                        backoff = MIN_CALL_SPACING;
                        continue;
                    } else {
                        tracing::warn!(shard = %self.shard, error = %DisplayErrorContext(error), "get records failed, retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = MIN_CALL_SPACING;
            self.polled.store(true, Ordering::Release);
            let behind = output.millis_behind_latest();
            staleness.read(&self.lag, &self.shard, behind);
            let records: Vec<(Vec<u8>, String)> = output
                .records()
                .iter()
                .map(|r| (r.data().as_ref().to_vec(), r.sequence_number().to_string()))
                .collect();
            let got_records = !records.is_empty();
            let bytes: u64 = records.iter().map(|(data, _)| data.len() as u64).sum();
            if let Some((_, sequence)) = records.last() {
                last_sequence = Some(sequence.clone());
            }
            if !self.clock.is_valid() {
                // Records fetched after the lease ran out are not handed over.
                return;
            }
            let at_tip = behind.map_or(!got_records, |b| b == 0);
            if got_records || reported_at_tip != Some(at_tip) {
                reported_at_tip = Some(at_tip);
                let message = ReaderMsg::Records {
                    shard: self.shard.clone(),
                    generation: self.generation,
                    records,
                    caught_up: at_tip,
                };
                if self.tx.send(message).await.is_err() {
                    return;
                }
            }
            match output.next_shard_iterator() {
                Some(next) => iterator = Some(next.to_string()),
                None => {
                    tracing::info!(shard = %self.shard, "closed shard read to its end");
                    let _ = self
                        .tx
                        .send(ReaderMsg::End {
                            shard: self.shard.clone(),
                            generation: self.generation,
                        })
                        .await;
                    return;
                }
            }
            let caught_up = !got_records || behind == Some(0);
            let due = pacer.next_call(called_at, bytes, caught_up, self.poll_interval);
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

/// Shared per-shard `MillisBehindLatest` (shard id → milliseconds).
pub fn new_lag_snapshot() -> LagSnapshot {
    Arc::new(Mutex::new(std::collections::BTreeMap::new()))
}

/// Records `shard`'s latest `MillisBehindLatest` (both reader kinds).
pub fn publish_lag(lag: &LagSnapshot, shard: &str, behind: i64) {
    let mut lag = lag.lock().unwrap_or_else(|p| p.into_inner());
    lag.insert(shard.to_string(), behind);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_grows_from_the_last_successful_read_while_reads_fail() {
        let lag = new_lag_snapshot();
        publish_lag(&lag, "s", 40);
        let mut staleness = Staleness::new(&lag, "s");
        staleness.read(&lag, "s", Some(100));
        std::thread::sleep(Duration::from_millis(20));
        staleness.failed(&lag, "s");
        let failing = lag.lock().unwrap()["s"];
        assert!(failing >= 120, "last lag plus the time since: {failing}");
        // A read without MillisBehindLatest keeps the last known value.
        staleness.read(&lag, "s", None);
        assert_eq!(lag.lock().unwrap()["s"], 100);
        // A reader that never read starts from the published lag.
        let fresh = Staleness::new(&lag, "t");
        std::thread::sleep(Duration::from_millis(5));
        fresh.failed(&lag, "t");
        assert!(lag.lock().unwrap()["t"] >= 5);
    }
}
