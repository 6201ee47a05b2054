//! trailwatch: a real-time security detection engine for AWS.
//!
//! It reads CloudTrail events, VPC Flow Log records and host auth logs,
//! matches them against rules written in CloudWatch Logs filter-pattern
//! syntax, keeps event-time tumbling-window aggregates per key in sharded
//! workers, and emits each alert once as an OCSF Detection Finding.
//!
//! # Layout
//!
//! - [`error`]: error classes (user, external, internal) and exit codes.
//! - [`event`]: the decoded [`event::Event`], borrowing from its input.
//! - [`fields`]: field paths and the per-kind field plan rules compile into.
//! - [`filter`]: the CloudWatch filter-pattern language and structured predicates.
//! - [`decode`]: envelope detection and decoders for every input format.

pub mod alert;
pub mod bench_baseline;
pub mod cli;
pub mod config;
pub mod decode;
pub mod engine;
pub mod error;
pub mod event;
pub mod fields;
pub mod filter;
pub mod gen;
pub mod http;
pub mod import;
pub mod logging;
pub mod metrics;
pub mod rules;
pub mod sink;
pub mod source;
