//! The lease coordinator: decides which shards this worker reads.
//!
//! One background task loops every third of a lease duration:
//!
//! 1. **Renew** every held lease. A renew that fails its condition means
//!    the lease was taken over: the reader is stopped at once. A renew that
//!    fails for another reason keeps the lease until its validity runs out.
//!    Validity is `time the last successful renew was sent + lease
//!    duration - margin`; readers never read past it, and another worker
//!    only takes a lease whose counter it saw unchanged for a full lease
//!    duration, so the old owner has stopped before the new one starts.
//! 2. **Release** leases whose shard was checkpointed `SHARD_END`.
//! 3. **Discover shards** (ListShards, every `shard_sync_interval`, and at
//!    once when a reader reached the end of a closed shard or found its
//!    shard gone) and create a free lease row for every new shard. A row
//!    whose shard the stream no longer lists (trimmed past retention) is
//!    checkpointed `SHARD_END`, so its children are not blocked forever.
//! 4. **Take leases** up to `ceil(active shards / live workers)`: free
//!    ones first, then expired ones; if none is available and a worker
//!    holds more than its share, steal one from it, and start reading it
//!    only a lease duration later (by then the victim's renew has failed
//!    and it has stopped). A child shard is eligible only once every
//!    parent is finished: checkpointed `SHARD_END`, gone from the table,
//!    or read to its end by this very worker (its records are then already
//!    ahead of the child's in the engine).
//! 5. **Start a reader** for every held lease that has none: a polling
//!    [`Reader`] or a [`FanOutReader`], as [`ReaderKind`] says; also, as
//!    a new lease session, for one whose reader stopped because a renew
//!    came late (the validity lapsed, then was extended), resuming after
//!    the last checkpoint written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};

use super::checkpoint::SHARD_END;
use super::fanout::{Consumer, FanOutReader};
use super::lease::{LeaseRow, LeaseTable};
use super::shards::{list_shards, LeaseClock, Reader, ReaderMsg};
use super::{KinesisSourceConfig, LagSnapshot};
use crate::error::Result;
use crate::metrics::{KinesisLeaseLoss, KinesisSourceCounters};

/// A lease this worker holds.
pub struct Held {
    pub counter: u64,
    /// Lease session number; batches of older sessions are discarded.
    pub generation: u64,
    /// Checkpoint found when the lease was taken, then the last one
    /// written (where a restarted reader resumes).
    pub checkpoint: String,
    pub clock: Arc<LeaseClock>,
    pub renewed_at: Instant,
    /// A stolen lease is read only from this instant on.
    pub start_after: Instant,
    pub reader: Option<tokio::task::AbortHandle>,
    /// `SHARD_END` was checkpointed: release it.
    pub ended: bool,
}

/// Which reader a held shard gets (the resolved [`super::ReadMode`]).
#[derive(Debug, Clone)]
pub enum ReaderKind {
    /// GetRecords polling.
    Polling,
    /// SubscribeToShard through the stream consumer `consumer`.
    FanOut {
        consumer: Arc<Consumer>,
        subscription_limit: Duration,
    },
}

/// State shared by the source, the coordinator and the readers.
pub struct Shared {
    pub config: KinesisSourceConfig,
    pub kinesis: aws_sdk_kinesis::Client,
    pub reader_kind: ReaderKind,
    pub table: LeaseTable,
    pub held: Mutex<HashMap<String, Held>>,
    /// Serialises this worker's table writes, so a checkpoint never races
    /// a renew of the same lease.
    pub write_lock: tokio::sync::Mutex<()>,
    /// Shards this worker read to their end (closed parents).
    pub read_to_end: Mutex<HashSet<String>>,
    pub lag: LagSnapshot,
    pub polled: Arc<AtomicBool>,
    /// Set once shard discovery and a lease pass both succeeded: from then
    /// on a worker holding no lease is a standby (every shard is held by
    /// another worker), not one still starting.
    pub balanced: AtomicBool,
    /// Wakes the coordinator for a shard discovery at once.
    pub wake: Arc<Notify>,
    pub counters: Arc<KinesisSourceCounters>,
    pub base: Instant,
    pub next_generation: AtomicU64,
    pub tx: mpsc::Sender<ReaderMsg>,
}

impl Shared {
    pub fn held(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn margin(&self) -> Duration {
        self.config.lease_duration / 4
    }

    /// Until when a lease renewed (or taken) at `sent` may be read.
    pub fn validity(&self, sent: Instant) -> Instant {
        sent + self.config.lease_duration - self.margin()
    }

    /// Forgets a lost lease and stops its reader.
    pub fn lose(&self, key: &str, why: KinesisLeaseLoss) {
        if let Some(held) = self.held().remove(key) {
            held.clock.revoke();
            if let Some(reader) = held.reader {
                reader.abort();
            }
            self.counters.lease_lost(why);
            tracing::warn!(shard = %key, reason = why.as_str(), "lease lost, reader stopped");
        }
        self.lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Shard ids currently held (for tests and status).
    pub fn held_shards(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.held().keys().cloned().collect();
        keys.sort();
        keys
    }
}

/// What the coordinator last saw of a row, to judge expiry.
struct Observed {
    counter: u64,
    since: Instant,
}

/// Runs the coordinator loop until aborted.
pub async fn run(shared: Arc<Shared>) {
    let mut observed: HashMap<String, Observed> = HashMap::new();
    let mut last_sync: Option<Instant> = None;
    let cycle = (shared.config.lease_duration / 3).max(Duration::from_millis(50));
    loop {
        renew(&shared).await;
        release_finished(&shared).await;
        let sync_due = last_sync.is_none_or(|t| t.elapsed() >= shared.config.shard_sync_interval);
        if sync_due {
            match sync_shards(&shared).await {
                Ok(()) => last_sync = Some(Instant::now()),
                Err(error) => tracing::warn!(error = %error, "shard discovery failed"),
            }
        }
        match shared.table.scan().await {
            Ok(rows) => {
                let now = Instant::now();
                observed.retain(|key, _| rows.iter().any(|r| &r.key == key));
                for row in &rows {
                    let entry = observed.entry(row.key.clone()).or_insert(Observed {
                        counter: row.counter,
                        since: now,
                    });
                    if entry.counter != row.counter {
                        entry.counter = row.counter;
                        entry.since = now;
                    }
                }
                match take_leases(&shared, &rows, &observed).await {
                    Ok(()) if last_sync.is_some() => {
                        shared.balanced.store(true, Ordering::Release);
                    }
                    Ok(()) => {}
                    Err(error) => tracing::warn!(error = %error, "taking leases failed"),
                }
            }
            Err(error) => tracing::warn!(error = %error, "lease table scan failed"),
        }
        start_readers(&shared);
        tokio::select! {
            _ = tokio::time::sleep(cycle) => {}
            _ = shared.wake.notified() => last_sync = None,
        }
    }
}

async fn renew(shared: &Shared) {
    let keys: Vec<String> = shared.held().keys().cloned().collect();
    for key in keys {
        let _writing = shared.write_lock.lock().await;
        let Some(counter) = shared.held().get(&key).map(|h| h.counter) else {
            continue;
        };
        let sent = Instant::now();
        match shared.table.renew(&key, counter).await {
            Ok(Some(next)) => {
                if let Some(held) = shared.held().get_mut(&key) {
                    held.counter = next;
                    held.renewed_at = sent;
                    held.clock.extend(shared.validity(sent));
                }
            }
            Ok(None) => shared.lose(&key, KinesisLeaseLoss::TakenOver),
            Err(error) => {
                KinesisSourceCounters::inc(&shared.counters.lease_renew_errors);
                let expired = shared.held().get(&key).is_none_or(|h| !h.clock.is_valid());
                tracing::warn!(shard = %key, error = %error, "lease renew failed");
                if expired {
                    shared.lose(&key, KinesisLeaseLoss::Expired);
                }
            }
        }
    }
}

async fn release_finished(shared: &Shared) {
    let ended: Vec<String> = shared
        .held()
        .iter()
        .filter(|(_, h)| h.ended)
        .map(|(k, _)| k.clone())
        .collect();
    for key in ended {
        let _writing = shared.write_lock.lock().await;
        let Some(counter) = shared.held().get(&key).map(|h| h.counter) else {
            continue;
        };
        match shared.table.release(&key, counter).await {
            Ok(_) => {
                shared.held().remove(&key);
                shared
                    .lag
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                tracing::info!(shard = %key, "finished shard released");
            }
            Err(error) => tracing::warn!(shard = %key, error = %error, "release failed"),
        }
    }
}

/// Lists the stream's shards, creates rows for new ones and ends the
/// rows of shards the stream no longer lists ([`end_gone_shard`]).
pub async fn sync_shards(shared: &Shared) -> Result<()> {
    let shards = list_shards(&shared.kinesis, &shared.config.stream).await?;
    let rows = shared.table.scan().await?;
    let known: HashSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    for shard in &shards {
        if !known.contains(shard.id.as_str())
            && shared.table.create(&shard.id, &shard.parents).await?
        {
            tracing::info!(shard = %shard.id, parents = ?shard.parents, "new shard lease created");
        }
    }
    // An existing stream always has a shard: an empty listing proves nothing.
    if shards.is_empty() {
        return Ok(());
    }
    let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
    for row in &rows {
        if row.checkpoint != SHARD_END && !listed.contains(row.key.as_str()) {
            end_gone_shard(shared, row).await?;
        }
    }
    Ok(())
}

/// Ends a shard the stream no longer lists: a closed shard trimmed past
/// retention (trailwatch was down longer than that after a split or
/// merge). It can never be read again, and its children wait for it, so
/// it is checkpointed `SHARD_END` with a conditional write: under this
/// worker's lease if it holds it (its reader is stopped), else if the row
/// is free; a row another worker holds is left to that worker (or, once
/// that lease expires, to whoever takes it). Its records past the old
/// checkpoint are lost: they left the stream before anyone read them.
async fn end_gone_shard(shared: &Shared, row: &LeaseRow) -> Result<()> {
    let _writing = shared.write_lock.lock().await;
    let held = shared.held().get(&row.key).map(|h| h.counter);
    let ended = match held {
        Some(counter) => match shared
            .table
            .checkpoint(&row.key, counter, SHARD_END)
            .await?
        {
            Some(()) => {
                if let Some(lease) = shared.held().get_mut(&row.key) {
                    lease.ended = true;
                    lease.clock.revoke();
                    if let Some(reader) = lease.reader.take() {
                        reader.abort();
                    }
                }
                shared.wake.notify_one();
                true
            }
            None => {
                shared.lose(&row.key, KinesisLeaseLoss::Fenced);
                false
            }
        },
        None if row.owner.is_none() => shared
            .table
            .end_free(&row.key, row.counter)
            .await?
            .is_some(),
        None => false,
    };
    if ended {
        KinesisSourceCounters::inc(&shared.counters.shards_gone);
        tracing::warn!(
            shard = %row.key,
            checkpoint = %row.checkpoint,
            "shard is no longer in the stream (trimmed past retention): checkpointed SHARD_END so that its children are read; its records after the checkpoint left the stream unread and are lost"
        );
    }
    Ok(())
}

async fn take_leases(
    shared: &Shared,
    rows: &[LeaseRow],
    observed: &HashMap<String, Observed>,
) -> Result<()> {
    let me = shared.table.worker_id().to_string();
    let duration = shared.config.lease_duration;
    let by_key: HashMap<&str, &LeaseRow> = rows.iter().map(|r| (r.key.as_str(), r)).collect();
    let read_to_end = shared
        .read_to_end
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let held_keys: HashSet<String> = shared.held().keys().cloned().collect();
    let is_expired = |row: &LeaseRow| {
        row.owner.is_some()
            && observed
                .get(&row.key)
                .is_some_and(|o| o.counter == row.counter && o.since.elapsed() >= duration)
    };
    let parents_done = |row: &LeaseRow| {
        row.parents.iter().all(|parent| {
            read_to_end.contains(parent)
                || by_key
                    .get(parent.as_str())
                    .is_none_or(|p| p.checkpoint == SHARD_END)
        })
    };
    let active: Vec<&LeaseRow> = rows.iter().filter(|r| r.checkpoint != SHARD_END).collect();
    if active.is_empty() {
        return Ok(());
    }
    let mut load: BTreeMap<String, Vec<&LeaseRow>> = BTreeMap::new();
    for row in &active {
        if let Some(owner) = &row.owner {
            if owner != &me && !is_expired(row) {
                load.entry(owner.clone()).or_default().push(row);
            }
        }
    }
    let workers = load.len() + 1;
    let target = active.len().div_ceil(workers);
    let mine = held_keys.len();
    if mine >= target {
        return Ok(());
    }
    let mut candidates: Vec<&LeaseRow> = active
        .iter()
        .copied()
        .filter(|r| !held_keys.contains(&r.key) && parents_done(r))
        .filter(|r| r.owner.is_none() || is_expired(r))
        .collect();
    // Free leases first, then expired ones; by key for a stable order.
    candidates.sort_by(|a, b| (a.owner.is_some(), &a.key).cmp(&(b.owner.is_some(), &b.key)));
    let mut taken = 0;
    for row in candidates {
        if mine + taken >= target {
            return Ok(());
        }
        if take(shared, row, Duration::ZERO).await? {
            taken += 1;
        }
    }
    if taken > 0 {
        return Ok(());
    }
    // Balance: steal one lease from the most loaded worker above its share.
    let victim = load
        .iter()
        .max_by_key(|(owner, leases)| (leases.len(), std::cmp::Reverse((*owner).clone())));
    if let Some((owner, leases)) = victim {
        if leases.len() > target {
            if let Some(row) = leases.iter().rev().find(|r| parents_done(r)) {
                tracing::info!(shard = %row.key, from = %owner, "stealing lease for balance");
                take(shared, row, duration).await?;
            }
        }
    }
    Ok(())
}

/// Takes `row`'s lease; reading may start after `delay`.
async fn take(shared: &Shared, row: &LeaseRow, delay: Duration) -> Result<bool> {
    let _writing = shared.write_lock.lock().await;
    let sent = Instant::now();
    let Some(counter) = shared.table.take(&row.key, row.counter).await? else {
        return Ok(false);
    };
    // The counter moved, so no earlier holder can checkpoint any more:
    // the checkpoint read now is final.
    let checkpoint = match shared.table.get(&row.key).await? {
        Some(fresh) => fresh.checkpoint,
        None => row.checkpoint.clone(),
    };
    let generation = shared.next_generation.fetch_add(1, Ordering::Relaxed);
    tracing::info!(shard = %row.key, previous_owner = ?row.owner, checkpoint = %checkpoint, "lease taken");
    let held = Held {
        counter,
        generation,
        checkpoint,
        clock: Arc::new(LeaseClock::new(shared.base, shared.validity(sent))),
        renewed_at: sent,
        start_after: sent + delay,
        reader: None,
        ended: false,
    };
    shared.held().insert(row.key.clone(), held);
    Ok(true)
}

fn start_readers(shared: &Shared) {
    let now = Instant::now();
    let read_to_end = shared
        .read_to_end
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut held = shared.held();
    for (key, lease) in held.iter_mut() {
        if lease.ended || now < lease.start_after {
            continue;
        }
        if let Some(reader) = &lease.reader {
            // A reader stops when the validity runs out, also when a late
            // renew (a slow coordinator pass, DynamoDB slow) extends it
            // afterwards: the lease is still held, so read it again, as
            // a new session (its records were handed under the old one).
            let lapsed = reader.is_finished()
                && lease.clock.is_valid()
                && !read_to_end.contains(key.as_str());
            if !lapsed {
                continue;
            }
            lease.generation = shared.next_generation.fetch_add(1, Ordering::Relaxed);
            lease.reader = None;
            tracing::warn!(shard = %key, "reader stopped on a late lease renew: reading again");
        }
        if lease.checkpoint == SHARD_END {
            lease.ended = true;
            continue;
        }
        let handle = match &shared.reader_kind {
            ReaderKind::Polling => {
                let reader = Reader {
                    client: shared.kinesis.clone(),
                    stream: shared.config.stream.clone(),
                    shard: key.clone(),
                    generation: lease.generation,
                    start: lease.checkpoint.clone(),
                    max_records: shared.config.max_records,
                    poll_interval: shared.config.poll_interval,
                    clock: Arc::clone(&lease.clock),
                    tx: shared.tx.clone(),
                    lag: Arc::clone(&shared.lag),
                    polled: Arc::clone(&shared.polled),
                    counters: Arc::clone(&shared.counters),
                    wake: Arc::clone(&shared.wake),
                };
                tracing::info!(shard = %key, start = %lease.checkpoint, "reader started");
                tokio::spawn(reader.run())
            }
            ReaderKind::FanOut {
                consumer,
                subscription_limit,
            } => {
                let reader = FanOutReader {
                    client: shared.kinesis.clone(),
                    consumer: Arc::clone(consumer),
                    shard: key.clone(),
                    generation: lease.generation,
                    start: lease.checkpoint.clone(),
                    subscription_limit: *subscription_limit,
                    clock: Arc::clone(&lease.clock),
                    tx: shared.tx.clone(),
                    lag: Arc::clone(&shared.lag),
                    polled: Arc::clone(&shared.polled),
                    counters: Arc::clone(&shared.counters),
                    wake: Arc::clone(&shared.wake),
                };
                tracing::info!(shard = %key, start = %lease.checkpoint, "fan-out reader started");
                tokio::spawn(reader.run())
            }
        };
        lease.reader = Some(handle.abort_handle());
    }
}
