//! The DynamoDB lease table: one row per shard, written only with
//! conditional writes.
//!
//! # Row
//!
//! | attribute        | type | meaning                                              |
//! |------------------|------|------------------------------------------------------|
//! | `leaseKey`       | S    | shard id (hash key)                                  |
//! | `leaseOwner`     | S    | worker id of the holder; absent when free            |
//! | `leaseCounter`   | N    | bumped by every take, renew and release (fencing)    |
//! | `checkpoint`     | S    | `TRIM_HORIZON`, a sequence number, or `SHARD_END`    |
//! | `parentShardIds` | L    | parent shard ids (empty list for an original shard) |
//!
//! # Fencing
//!
//! Every change of ownership and every renewal bumps `leaseCounter`, and
//! every write is conditional on the counter the writer last saw (and, for
//! the holder, on `leaseOwner` being itself). So a worker whose lease was
//! taken over fails its next renew or checkpoint instead of overwriting
//! the new owner's progress. Expiry needs no synchronised clocks: a lease
//! is expired for an observer once its counter has not moved for a whole
//! lease duration *of the observer's own clock* (as in the KCL).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;

use super::checkpoint::{SHARD_END, TRIM_HORIZON};
use crate::error::{Error, Result};

const KEY: &str = "leaseKey";
const OWNER: &str = "leaseOwner";
const COUNTER: &str = "leaseCounter";
const CHECKPOINT: &str = "checkpoint";
const PARENTS: &str = "parentShardIds";

/// One lease row as read from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub key: String,
    pub owner: Option<String>,
    pub counter: u64,
    pub checkpoint: String,
    pub parents: Vec<String>,
}

/// Conditional operations on the lease table, as one worker.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    client: Client,
    table: String,
    worker_id: String,
}

fn external<E, R>(what: &str, error: SdkError<E, R>) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    Error::Source(format!("dynamodb {what}: {}", DisplayErrorContext(error)))
}

impl LeaseTable {
    /// Lease operations on `table` for worker `worker_id`.
    pub fn new(client: Client, table: &str, worker_id: &str) -> LeaseTable {
        LeaseTable {
            client,
            table: table.to_string(),
            worker_id: worker_id.to_string(),
        }
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Creates the table (on-demand billing) unless it exists, and waits
    /// until it is active.
    pub async fn ensure_table(&self) -> Result<()> {
        let key_schema = KeySchemaElement::builder()
            .attribute_name(KEY)
            .key_type(KeyType::Hash)
            .build()
            .map_err(|e| Error::Internal(format!("lease table key schema: {e}")))?;
        let attribute = AttributeDefinition::builder()
            .attribute_name(KEY)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| Error::Internal(format!("lease table attribute: {e}")))?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .key_schema(key_schema)
            .attribute_definitions(attribute)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => tracing::info!(table = %self.table, "lease table created"),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(error) => return Err(external("create table", error)),
        }
        for _ in 0..120 {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| external("describe table", e))?;
            let status = described.table().and_then(|t| t.table_status());
            if status == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Err(Error::Source(format!(
            "lease table {} did not become active",
            self.table
        )))
    }

    /// Every row (consistent read, all pages).
    pub async fn scan(&self) -> Result<Vec<LeaseRow>> {
        let mut rows = Vec::new();
        let mut start_key: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
                .map_err(|e| external("scan", e))?;
            rows.extend(page.items().iter().filter_map(parse_row));
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start_key = Some(key.clone()),
                _ => return Ok(rows),
            }
        }
    }

    /// One row (consistent read).
    pub async fn get(&self, key: &str) -> Result<Option<LeaseRow>> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| external("get item", e))?;
        Ok(item.item().and_then(parse_row))
    }

    /// Creates a free row for a newly discovered shard; `false` if one exists.
    pub async fn create(&self, key: &str, parents: &[String]) -> Result<bool> {
        let parents_value =
            AttributeValue::L(parents.iter().cloned().map(AttributeValue::S).collect());
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY, AttributeValue::S(key.to_string()))
            .item(COUNTER, AttributeValue::N("0".into()))
            .item(CHECKPOINT, AttributeValue::S(TRIM_HORIZON.into()))
            .item(PARENTS, parents_value)
            .condition_expression("attribute_not_exists(leaseKey)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(external("create lease", error)),
        }
    }

    /// An UpdateItem of the lease row of `key` (the caller adds its
    /// expression and condition).
    fn update(&self, key: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(key.to_string()))
    }

    /// Takes a lease last seen with `observed_counter` (free, expired, or
    /// stolen for balancing). Returns the new counter, or `None` if
    /// someone else changed the row first.
    pub async fn take(&self, key: &str, observed_counter: u64) -> Result<Option<u64>> {
        let next = observed_counter + 1;
        let update = self
            .update(key)
            .update_expression("SET leaseOwner = :me, leaseCounter = :next")
            .condition_expression("leaseCounter = :seen")
            .expression_attribute_values(":me", AttributeValue::S(self.worker_id.clone()))
            .expression_attribute_values(":next", AttributeValue::N(next.to_string()))
            .expression_attribute_values(":seen", AttributeValue::N(observed_counter.to_string()))
            .send()
            .await;
        conditional(update.map(|_| next), "take lease")
    }

    /// Renews a held lease. `None` means it was lost (taken over).
    pub async fn renew(&self, key: &str, counter: u64) -> Result<Option<u64>> {
        let next = counter + 1;
        let update = self
            .update(key)
            .update_expression("SET leaseCounter = :next")
            .condition_expression("leaseCounter = :held AND leaseOwner = :me")
            .expression_attribute_values(":me", AttributeValue::S(self.worker_id.clone()))
            .expression_attribute_values(":next", AttributeValue::N(next.to_string()))
            .expression_attribute_values(":held", AttributeValue::N(counter.to_string()))
            .send()
            .await;
        conditional(update.map(|_| next), "renew lease")
    }

    /// Writes a checkpoint under a held lease. `None` means the lease was lost.
    pub async fn checkpoint(
        &self,
        key: &str,
        counter: u64,
        checkpoint: &str,
    ) -> Result<Option<()>> {
        let update = self
            .update(key)
            .update_expression("SET #checkpoint = :checkpoint")
            .condition_expression("leaseCounter = :held AND leaseOwner = :me")
            .expression_attribute_names("#checkpoint", CHECKPOINT)
            .expression_attribute_values(":me", AttributeValue::S(self.worker_id.clone()))
            .expression_attribute_values(":held", AttributeValue::N(counter.to_string()))
            .expression_attribute_values(":checkpoint", AttributeValue::S(checkpoint.to_string()))
            .send()
            .await;
        conditional(update.map(|_| ()), "checkpoint")
    }

    /// Checkpoints a free lease last seen with `observed_counter` as
    /// `SHARD_END` (a shard the stream no longer lists), bumping its
    /// counter. `None` if the row changed or is held meanwhile.
    pub async fn end_free(&self, key: &str, observed_counter: u64) -> Result<Option<u64>> {
        let next = observed_counter + 1;
        let update = self
            .update(key)
            .update_expression("SET #checkpoint = :end, leaseCounter = :next")
            .condition_expression("leaseCounter = :seen AND attribute_not_exists(leaseOwner)")
            .expression_attribute_names("#checkpoint", CHECKPOINT)
            .expression_attribute_values(":end", AttributeValue::S(SHARD_END.into()))
            .expression_attribute_values(":next", AttributeValue::N(next.to_string()))
            .expression_attribute_values(":seen", AttributeValue::N(observed_counter.to_string()))
            .send()
            .await;
        conditional(update.map(|_| next), "end gone shard")
    }

    /// Gives a held lease back (owner removed, counter bumped).
    pub async fn release(&self, key: &str, counter: u64) -> Result<Option<()>> {
        let update = self
            .update(key)
            .update_expression("REMOVE leaseOwner SET leaseCounter = :next")
            .condition_expression("leaseCounter = :held AND leaseOwner = :me")
            .expression_attribute_values(":me", AttributeValue::S(self.worker_id.clone()))
            .expression_attribute_values(":next", AttributeValue::N((counter + 1).to_string()))
            .expression_attribute_values(":held", AttributeValue::N(counter.to_string()))
            .send()
            .await;
        conditional(update.map(|_| ()), "release lease")
    }
}

/// Maps a conditional-check failure to `Ok(None)`.
fn conditional<T, R>(
    result: std::result::Result<
        T,
        SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, R>,
    >,
    what: &str,
) -> Result<Option<T>>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(external(what, error)),
    }
}

fn parse_row(item: &HashMap<String, AttributeValue>) -> Option<LeaseRow> {
    let key = item.get(KEY)?.as_s().ok()?.clone();
    let owner = item
        .get(OWNER)
        .and_then(|v| v.as_s().ok())
        .filter(|s| !s.is_empty())
        .cloned();
    let counter = item
        .get(COUNTER)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let checkpoint = item
        .get(CHECKPOINT)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_else(|| TRIM_HORIZON.to_string());
    let parents = item
        .get(PARENTS)
        .and_then(|v| v.as_l().ok())
        .map(|list| list.iter().filter_map(|p| p.as_s().ok().cloned()).collect())
        .unwrap_or_default();
    Some(LeaseRow {
        key,
        owner,
        counter,
        checkpoint,
        parents,
    })
}
