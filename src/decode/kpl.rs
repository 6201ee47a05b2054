//! KPL (Kinesis Producer Library) aggregated records.
//!
//! Contract: a record is `F3 89 9A C2`, a protobuf `AggregatedRecord`, then
//! the 16-byte MD5 of the protobuf bytes. [`deaggregate`] checks the digest
//! (`kpl_digest_mismatch`) and parses the protobuf (`bad_kpl`); the caller
//! re-detects each inner `data` payload, which may be anything a plain
//! record may be (often a gzip CloudWatch Logs envelope).

use md5::{Digest, Md5};
use prost::Message;

use crate::decode::{DecodeError, DecodeErrorReason};

/// The KPL magic prefix.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

const DIGEST_LEN: usize = 16;

/// `AggregatedRecord` of the KPL aggregation format.
#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

/// One user record inside an aggregate.
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    #[prost(uint64, tag = "1")]
    pub partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", tag = "3")]
    pub data: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// A record tag.
#[derive(Clone, PartialEq, Message)]
pub struct Tag {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// Whether `bytes` starts with the KPL magic.
pub fn is_kpl(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Checks and parses a KPL aggregate.
pub fn deaggregate(bytes: &[u8]) -> Result<AggregatedRecord, DecodeError> {
    let body = bytes
        .strip_prefix(&MAGIC)
        .ok_or_else(|| DecodeError::new(DecodeErrorReason::BadKpl, "missing KPL magic"))?;
    if body.len() < DIGEST_LEN {
        return Err(DecodeError::new(
            DecodeErrorReason::BadKpl,
            "KPL record shorter than its digest",
        ));
    }
    let (protobuf, digest) = body.split_at(body.len() - DIGEST_LEN);
    if Md5::digest(protobuf).as_slice() != digest {
        return Err(DecodeError::new(
            DecodeErrorReason::KplDigestMismatch,
            "KPL MD5 digest does not match",
        ));
    }
    AggregatedRecord::decode(protobuf).map_err(|error| {
        DecodeError::new(
            DecodeErrorReason::BadKpl,
            format!("bad KPL protobuf: {error}"),
        )
    })
}

/// Builds a KPL aggregate of `payloads` (one partition key each). Used by
/// tests and tools that produce aggregated records.
pub fn aggregate(payloads: &[&[u8]]) -> Vec<u8> {
    let aggregated = AggregatedRecord {
        partition_key_table: (0..payloads.len()).map(|i| format!("pk-{i}")).collect(),
        explicit_hash_key_table: Vec::new(),
        records: payloads
            .iter()
            .enumerate()
            .map(|(i, data)| Record {
                partition_key_index: i as u64,
                explicit_hash_key_index: None,
                data: data.to_vec(),
                tags: Vec::new(),
            })
            .collect(),
    };
    let protobuf = aggregated.encode_to_vec();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&protobuf);
    out.extend_from_slice(Md5::digest(&protobuf).as_slice());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let bytes = aggregate(&[b"one", b"two"]);
        assert!(is_kpl(&bytes));
        let agg = deaggregate(&bytes).unwrap();
        assert_eq!(agg.records.len(), 2);
        assert_eq!(agg.records[1].data, b"two");
    }

    #[test]
    fn rejects_bad_digest_and_protobuf() {
        let mut bytes = aggregate(&[b"one"]);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            deaggregate(&bytes).unwrap_err().reason,
            DecodeErrorReason::KplDigestMismatch
        );
        let garbage = [0xffu8, 0xff, 0xff];
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&garbage);
        bad.extend_from_slice(Md5::digest(garbage).as_slice());
        assert_eq!(
            deaggregate(&bad).unwrap_err().reason,
            DecodeErrorReason::BadKpl
        );
        assert_eq!(
            deaggregate(&MAGIC).unwrap_err().reason,
            DecodeErrorReason::BadKpl
        );
    }
}
