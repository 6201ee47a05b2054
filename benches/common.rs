//! Shared helpers of the criterion benches: the built-in rule pack and
//! generated records.

#![allow(dead_code)]

use std::sync::Arc;

use trailwatch::gen::{generate_records, GenKind, GenOptions};
use trailwatch::rules::RuleSet;

/// The built-in pack, compiled.
pub fn rules() -> Arc<RuleSet> {
    let loaded = trailwatch::rules::load_all(&[], false).expect("bench rules load");
    Arc::new(trailwatch::rules::compile_all(&loaded).expect("bench rules compile"))
}

/// `count` generated records of `kind`, seed 42.
pub fn records(kind: GenKind, count: u64) -> Vec<Vec<u8>> {
    generate_records(
        kind,
        &GenOptions {
            count,
            ..GenOptions::default()
        },
    )
}
