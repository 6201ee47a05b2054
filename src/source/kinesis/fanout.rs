//! Enhanced fan-out: consumer registration and the SubscribeToShard
//! reader.
//!
//! # Contract
//!
//! [`ensure_consumer`] registers the configured stream consumer unless it
//! exists (`ResourceInUseException` means another replica or an earlier
//! run registered it) and waits until it is `ACTIVE`; every replica of an
//! application shares that one consumer, and leases still decide which
//! replica reads which shard. A [`Consumer`] holds its current ARN for
//! every reader: when a subscribe finds the consumer gone
//! (`ResourceNotFoundException`, someone deregistered it under a running
//! replica), the first reader to notice runs [`ensure_consumer`] again
//! (bounded, as at start) and every reader resubscribes through the new
//! ARN; a failed attempt is counted and tried again after the backoff.
//!
//! A [`FanOutReader`] plays the role of the polling
//! [`Reader`](super::shards::Reader) for one shard and one lease session
//! (a *generation*), with the same output and the same guarantees:
//!
//! - It sends [`ReaderMsg::Records`] (data bytes and sequence number, in
//!   shard order) through the bounded channel; a full channel pauses it,
//!   and with it the subscription (HTTP flow control is the backpressure).
//! - It sends [`ReaderMsg::End`] once the closed shard is read to its end:
//!   an event without a continuation sequence number, or one that reports
//!   child shards and carries no records (local servers keep the
//!   continuation number on that last event).
//! - It stops, without reporting, once its lease's validity runs out
//!   ([`LeaseClock`]), also while it waits for an event, and it never
//!   hands over records received after that moment.
//! - A subscription ends after at most five minutes (the service closes
//!   it; the reader also ends it after `subscription_limit`, so a
//!   half-open connection cannot hold a shard). The reader then
//!   subscribes again `AFTER_SEQUENCE_NUMBER` the last record it handed
//!   over (or its lease checkpoint), so nothing is skipped. Nothing is
//!   repeated within a session either: records at or before that point
//!   are dropped if the server sends them anyway (ferrokinesis 0.7 drops
//!   `StartingPosition.SequenceNumber` and replays the shard from its
//!   start).
//! - Failed subscribes back off exponentially: `ResourceInUseException`
//!   (the previous holder's subscription is still live),
//!   `LimitExceededException` (one subscribe per second per shard and
//!   consumer) and transport errors alike.
//! - `MillisBehindLatest` of every event goes to the lag snapshot, and the
//!   first event sets the readiness flag. Failed subscribes and event
//!   streams are counted by kind, and while they fail the lag grows with
//!   the time since the last event ([`Staleness`]).
//!   `ResourceNotFoundException` also wakes the coordinator: the shard may
//!   have been trimmed past retention, which shard discovery ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::types::{
    ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEvent,
    SubscribeToShardEventStream,
};
use aws_sdk_kinesis::Client;
use tokio::sync::{mpsc, Notify};

use super::checkpoint::TRIM_HORIZON;
use super::shards::{read_error_kind, LeaseClock, ReaderMsg, Staleness};
use super::LagSnapshot;
use crate::error::{Error, Result};
use crate::metrics::{KinesisReadError, KinesisSourceCounters};

/// First backoff after a failed subscribe (AWS allows one SubscribeToShard
/// per second per shard and consumer).
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Cap of the subscribe backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Shortest spacing between two subscribes of one shard.
const MIN_SUBSCRIBE_SPACING: Duration = Duration::from_secs(1);
/// How long [`ensure_consumer`] waits for the consumer to become active.
const ACTIVATION_ATTEMPTS: u32 = 240;
const ACTIVATION_POLL: Duration = Duration::from_millis(500);

fn external(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Source(format!("kinesis {what}: {detail}"))
}

/// Registers consumer `name` on `stream` unless it exists, waits until it
/// is active and returns its ARN.
pub async fn ensure_consumer(client: &Client, stream: &str, name: &str) -> Result<String> {
    let summary = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| external(&format!("describe stream {stream}"), DisplayErrorContext(e)))?;
    let stream_arn = summary
        .stream_description_summary()
        .map(|d| d.stream_arn().to_string())
        .ok_or_else(|| external(&format!("describe stream {stream}"), "no description"))?;
    let mut register = true;
    for _ in 0..ACTIVATION_ATTEMPTS {
        if register {
            let registered = client
                .register_stream_consumer()
                .stream_arn(&stream_arn)
                .consumer_name(name)
                .send()
                .await;
            match registered {
                Ok(_) => {
                    tracing::info!(stream = %stream, consumer = %name, "stream consumer registered")
                }
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_in_use_exception()) => {}
                Err(error) => {
                    return Err(external(
                        &format!("register stream consumer {name}"),
                        DisplayErrorContext(error),
                    ))
                }
            }
            register = false;
        }
        let described = client
            .describe_stream_consumer()
            .stream_arn(&stream_arn)
            .consumer_name(name)
            .send()
            .await;
        match described {
            Ok(output) => {
                if let Some(consumer) = output.consumer_description() {
                    match consumer.consumer_status() {
                        ConsumerStatus::Active => return Ok(consumer.consumer_arn().to_string()),
                        // Being deleted: register again once it is gone.
                        ConsumerStatus::Deleting => register = true,
                        _ => {}
                    }
                }
            }
            // Deleted between the register and the describe.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                register = true
            }
            Err(error) => {
                return Err(external(
                    &format!("describe stream consumer {name}"),
                    DisplayErrorContext(error),
                ))
            }
        }
        tokio::time::sleep(ACTIVATION_POLL).await;
    }
    Err(Error::Source(format!(
        "kinesis stream consumer {name} of {stream} did not become active"
    )))
}

/// The stream consumer the fan-out readers share, with its current ARN.
#[derive(Debug)]
pub struct Consumer {
    client: Client,
    stream: String,
    name: String,
    arn: std::sync::Mutex<String>,
    /// One re-registration at a time, for all readers.
    renewing: tokio::sync::Mutex<()>,
    counters: Arc<KinesisSourceCounters>,
}

impl Consumer {
    /// Registers consumer `name` unless it exists and waits until it is
    /// active ([`ensure_consumer`]).
    pub async fn register(
        client: &Client,
        stream: &str,
        name: &str,
        counters: Arc<KinesisSourceCounters>,
    ) -> Result<Consumer> {
        let arn = ensure_consumer(client, stream, name).await?;
        Ok(Consumer {
            client: client.clone(),
            stream: stream.to_string(),
            name: name.to_string(),
            arn: std::sync::Mutex::new(arn),
            renewing: tokio::sync::Mutex::new(()),
            counters,
        })
    }

    /// The ARN to subscribe through.
    pub fn arn(&self) -> String {
        self.arn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A subscribe through `stale` found no consumer: registers it again
    /// unless another reader already did, and returns the ARN to use.
    pub async fn renew(&self, stale: &str) -> Result<String> {
        let _one = self.renewing.lock().await;
        let current = self.arn();
        if current != stale {
            return Ok(current);
        }
        match ensure_consumer(&self.client, &self.stream, &self.name).await {
            Ok(fresh) => {
                if fresh != stale {
                    tracing::warn!(consumer = %self.name, old = %stale, new = %fresh, "stream consumer was deleted: registered again, readers resubscribe");
                }
                *self.arn.lock().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
                Ok(fresh)
            }
            Err(error) => {
                KinesisSourceCounters::inc(&self.counters.consumer_errors);
                Err(error)
            }
        }
    }
}

/// Whether sequence number `a` comes after `b` (both decimal, without
/// leading zeros, as Kinesis writes them).
pub fn sequence_after(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

/// Whether `event` is the last of a closed shard (see the module docs).
pub fn at_shard_end(event: &SubscribeToShardEvent) -> bool {
    event.continuation_sequence_number().is_empty()
        || (!event.child_shards().is_empty() && event.records().is_empty())
}

/// How one subscription ended.
enum Ended {
    /// The closed shard was read to its end.
    ShardEnd,
    /// The lease ran out or the source went away.
    Stop,
    /// The subscription expired: subscribe again at once.
    Expired,
    /// The subscription failed: subscribe again after a backoff.
    Failed,
}

/// Everything a fan-out reader needs.
pub struct FanOutReader {
    pub client: Client,
    pub consumer: Arc<Consumer>,
    pub shard: String,
    pub generation: u64,
    /// Checkpoint to start after (`TRIM_HORIZON` or a sequence number).
    pub start: String,
    /// The reader ends a subscription itself after this long.
    pub subscription_limit: Duration,
    pub clock: Arc<LeaseClock>,
    pub tx: mpsc::Sender<ReaderMsg>,
    pub lag: LagSnapshot,
    /// Set on the first event (readiness).
    pub polled: Arc<AtomicBool>,
    pub counters: Arc<KinesisSourceCounters>,
    /// Wakes the coordinator for a shard discovery.
    pub wake: Arc<Notify>,
}

impl FanOutReader {
    fn position(after: Option<&str>) -> Result<StartingPosition> {
        let builder = match after {
            None => StartingPosition::builder().r#type(ShardIteratorType::TrimHorizon),
            Some(sequence) => StartingPosition::builder()
                .r#type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence),
        };
        builder
            .build()
            .map_err(|e| Error::Internal(format!("kinesis starting position: {e}")))
    }

    /// Reads until the shard ends, the lease runs out or the source goes away.
    pub async fn run(self) {
        let mut last_sequence: Option<String> = if self.start == TRIM_HORIZON {
            None
        } else {
            Some(self.start.clone())
        };
        let mut backoff = MIN_BACKOFF;
        let mut reported_at_tip = None;
        let mut staleness = Staleness::new(&self.lag, &self.shard);
        loop {
            if !self.clock.is_valid() {
                tracing::info!(shard = %self.shard, "lease validity ran out, fan-out reader stops");
                return;
            }
            let subscribed_at = Instant::now();
            let ended = self
                .subscription(
                    &mut last_sequence,
                    &mut backoff,
                    &mut reported_at_tip,
                    &mut staleness,
                )
                .await;
            match ended {
                Ended::ShardEnd => {
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
                Ended::Stop => return,
                Ended::Expired => {
                    let elapsed = subscribed_at.elapsed();
                    if elapsed < MIN_SUBSCRIBE_SPACING {
                        tokio::time::sleep(MIN_SUBSCRIBE_SPACING - elapsed).await;
                    }
                }
                Ended::Failed => {
                    staleness.failed(&self.lag, &self.shard);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One subscription: subscribes after `last_sequence` and hands over
    /// its events' records, advancing `last_sequence`, and whether the
    /// shard's tip was reached when that changes (`reported_at_tip`); an
    /// event resets `backoff` and updates `staleness`.
    async fn subscription(
        &self,
        last_sequence: &mut Option<String>,
        backoff: &mut Duration,
        reported_at_tip: &mut Option<bool>,
        staleness: &mut Staleness,
    ) -> Ended {
        let position = match Self::position(last_sequence.as_deref()) {
            Ok(position) => position,
            Err(error) => {
                tracing::error!(shard = %self.shard, error = %error, "cannot subscribe");
                return Ended::Failed;
            }
        };
        let consumer_arn = self.consumer.arn();
        let subscribed = self
            .client
            .subscribe_to_shard()
            .consumer_arn(&consumer_arn)
            .shard_id(&self.shard)
            .starting_position(position)
            .send()
            .await;
        let mut output = match subscribed {
            Ok(output) => output,
            Err(error) => {
                let kind = read_error_kind(&error);
                self.counters.read_error(kind);
                let service = error.as_service_error();
                // Expected now and then; worth a warning once it persists.
                let persistent = *backoff >= MAX_BACKOFF;
                if kind == KinesisReadError::NotFound {
                    // The consumer was deleted, or the shard trimmed past
                    // retention (shard discovery ends it).
                    tracing::warn!(shard = %self.shard, consumer = %consumer_arn, error = %DisplayErrorContext(error), "subscribe found no consumer or shard: checking the consumer");
                    self.wake.notify_one();
                    match self.consumer.renew(&consumer_arn).await {
                        Ok(fresh) if fresh != consumer_arn => *backoff = MIN_BACKOFF,
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(shard = %self.shard, error = %error, "cannot register the stream consumer again, retrying")
                        }
                    }
                } else if service.is_some_and(|e| e.is_resource_in_use_exception()) {
                    if persistent {
                        tracing::warn!(shard = %self.shard, consumer = %consumer_arn, "another subscription of this consumer holds the shard, backing off");
                    } else {
                        tracing::debug!(shard = %self.shard, "a previous subscription is still live, backing off");
                    }
                } else if service.is_some_and(|e| e.is_limit_exceeded_exception()) {
                    if persistent {
                        tracing::warn!(shard = %self.shard, "subscribe rate still exceeded, backing off");
                    } else {
                        tracing::debug!(shard = %self.shard, "subscribe rate exceeded, backing off");
                    }
                } else {
                    tracing::warn!(shard = %self.shard, error = %DisplayErrorContext(error), "subscribe to shard failed, retrying");
                }
                return Ended::Failed;
            }
        };
        tracing::debug!(shard = %self.shard, after = ?last_sequence, "subscribed to shard");
        let expires = tokio::time::Instant::now() + self.subscription_limit;
        loop {
            let received = tokio::select! {
                received = output.event_stream.recv() => received,
                // `recv` is cancel safe: it keeps partial frames buffered.
                _ = tokio::time::sleep(self.clock.remaining()) => {
                    if self.clock.is_valid() {
                        continue;
                    }
                    tracing::info!(shard = %self.shard, "lease validity ran out, fan-out reader stops");
                    return Ended::Stop;
                }
                _ = tokio::time::sleep_until(expires) => return Ended::Expired,
            };
            let event = match received {
                Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) => event,
                Ok(Some(other)) => {
                    tracing::debug!(shard = %self.shard, event = ?other, "ignoring unknown fan-out event");
                    continue;
                }
                Ok(None) => return Ended::Expired,
                Err(error) => {
                    self.counters.read_error(read_error_kind(&error));
                    tracing::warn!(shard = %self.shard, error = %DisplayErrorContext(error), "fan-out subscription failed, resubscribing");
                    return Ended::Failed;
                }
            };
            *backoff = MIN_BACKOFF;
            self.polled.store(true, Ordering::Release);
            staleness.read(&self.lag, &self.shard, Some(event.millis_behind_latest()));
            let end = at_shard_end(&event);
            let at_tip = event.millis_behind_latest() == 0;
            let received = event.records.len();
            let records: Vec<(Vec<u8>, String)> = event
                .records
                .into_iter()
                .filter(|r| {
                    last_sequence
                        .as_deref()
                        .is_none_or(|last| sequence_after(&r.sequence_number, last))
                })
                .map(|r| (r.data.into_inner(), r.sequence_number))
                .collect();
            if records.len() < received {
                tracing::debug!(shard = %self.shard, skipped = received - records.len(), "skipped records at or before the resume point");
            }
            if !self.clock.is_valid() {
                // Records received after the lease ran out are not handed over.
                return Ended::Stop;
            }
            if let Some((_, sequence)) = records.last() {
                tracing::trace!(shard = %self.shard, records = records.len(), first = %records[0].1, last = %sequence, "fan-out records");
                *last_sequence = Some(sequence.clone());
            }
            if !records.is_empty() || *reported_at_tip != Some(at_tip) {
                *reported_at_tip = Some(at_tip);
                let message = ReaderMsg::Records {
                    shard: self.shard.clone(),
                    generation: self.generation,
                    records,
                    caught_up: at_tip,
                };
                if self.tx.send(message).await.is_err() {
                    return Ended::Stop;
                }
            }
            if end {
                return Ended::ShardEnd;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::{ChildShard, HashKeyRange, Record};

    fn record(sequence: &str) -> Record {
        Record::builder()
            .sequence_number(sequence)
            .data(Blob::new(b"{}".to_vec()))
            .partition_key("k")
            .build()
            .unwrap()
    }

    fn child() -> ChildShard {
        ChildShard::builder()
            .shard_id("shardId-000000000002")
            .parent_shards("shardId-000000000000")
            .hash_key_range(
                HashKeyRange::builder()
                    .starting_hash_key("0")
                    .ending_hash_key("1")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    fn event(records: &[&str], continuation: &str, children: bool) -> SubscribeToShardEvent {
        let mut builder = SubscribeToShardEvent::builder()
            .set_records(Some(records.iter().map(|s| record(s)).collect()))
            .continuation_sequence_number(continuation)
            .millis_behind_latest(0);
        if children {
            builder = builder.child_shards(child());
        }
        builder.build().unwrap()
    }

    #[test]
    fn an_open_shard_continues() {
        assert!(!at_shard_end(&event(&["1", "2"], "3", false)));
        assert!(!at_shard_end(&event(&[], "3", false)));
    }

    #[test]
    fn no_continuation_ends_the_shard_even_with_records() {
        assert!(at_shard_end(&event(&["1"], "", true)));
        assert!(at_shard_end(&event(&[], "", false)));
    }

    #[test]
    fn children_end_the_shard_only_once_its_records_are_drained() {
        assert!(!at_shard_end(&event(&["1"], "2", true)));
        assert!(at_shard_end(&event(&[], "2", true)));
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_after("10", "9"));
        assert!(sequence_after(
            "49680472841718739177499749903828987582823069707615076371",
            "49680472841718739177499749903828987582823069707615076370"
        ));
        assert!(!sequence_after("9", "10"));
        assert!(!sequence_after("42", "42"));
    }
}
