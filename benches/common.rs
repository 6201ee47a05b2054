//! Shared helpers of the criterion benches: the bench rule pack (issue 2's
//! built-in table, under `benches/rules/`) and generated records.

#![allow(dead_code)]

use std::sync::Arc;

use trailwatch::gen::{generate_records, GenKind, GenOptions};
use trailwatch::rules::RuleSet;

/// The built-in pack plus `benches/rules/`, compiled.
pub fn rules() -> Arc<RuleSet> {
    let dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/rules"));
    let loaded = trailwatch::rules::load_all(&[dir], false).expect("bench rules load");
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
