//! Inline rule tests (`trailwatch rules test`), in the spirit of
//! StreamAlert's and Panther's rule tests.
//!
//! Each test case feeds its `input` records (JSON objects are serialised;
//! strings are taken as raw record text and go through envelope detection)
//! through the real engine in replay mode with only that rule loaded, then
//! compares the rule's Create alerts with `expect`: the same number of
//! alerts, each expected alert matched by key (and by value and window
//! start when given).

use std::sync::Arc;

use super::model::{ExpectedAlert, RuleSpec};
use super::RuleSet;
use crate::alert::{Activity, Alert};
use crate::engine::{Engine, EngineConfig};
use crate::sink::writer::{MemoryDeadLetters, MemorySink};
use crate::source::memory::MemorySource;

/// The outcome of one test case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub rule_id: String,
    pub case: String,
    /// `None` when the case passed, otherwise what differed.
    pub failure: Option<String>,
}

/// Runs the engine over `records` with `spec` as the only rule, in replay
/// mode on one shard.
pub fn run_rule(spec: &RuleSpec, records: Vec<Vec<u8>>) -> Result<Vec<Alert>, String> {
    let mut config = EngineConfig::default();
    config.watermark.replay = true;
    config.flush_on_end = true;
    config.shards = 1;
    config.decoders = 1;
    run_rule_with(spec, records, config, 256)
}

/// [`run_rule`] under `config`, `batch` records per input batch.
pub fn run_rule_with(
    spec: &RuleSpec,
    records: Vec<Vec<u8>>,
    config: EngineConfig,
    batch: usize,
) -> Result<Vec<Alert>, String> {
    let mut enabled = spec.clone();
    enabled.enabled = true;
    let rules = RuleSet::compile(std::slice::from_ref(&enabled)).map_err(|(_, e)| e.to_string())?;
    let engine = Engine::new(config, Arc::new(rules));
    let sink = MemorySink::default();
    let alerts = Arc::clone(&sink.alerts);
    engine
        .run(
            vec![Box::new(MemorySource::new(&spec.id, records, batch))],
            Box::new(sink),
            Box::new(MemoryDeadLetters::default()),
        )
        .map_err(|e| e.to_string())?;
    let collected = alerts.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(collected)
}

/// Serialises test inputs into raw records.
pub fn input_records(input: &[serde_json::Value]) -> Vec<Vec<u8>> {
    input
        .iter()
        .map(|v| match v {
            serde_json::Value::String(s) => s.as_bytes().to_vec(),
            other => other.to_string().into_bytes(),
        })
        .collect()
}

/// Runs every test case of `spec`.
pub fn run_tests(spec: &RuleSpec) -> Vec<CaseResult> {
    spec.tests
        .iter()
        .map(|case| {
            let failure = match run_rule(spec, input_records(&case.input)) {
                Err(e) => Some(format!("engine error: {e}")),
                Ok(alerts) => {
                    let creates: Vec<&Alert> = alerts
                        .iter()
                        .filter(|a| a.activity == Activity::Create)
                        .collect();
                    compare(&creates, &case.expect)
                }
            };
            CaseResult {
                rule_id: spec.id.clone(),
                case: case.name.clone(),
                failure,
            }
        })
        .collect()
}

fn compare(actual: &[&Alert], expected: &[ExpectedAlert]) -> Option<String> {
    let describe = |a: &Alert| {
        format!(
            "key={:?} value={} window_start={}",
            a.key,
            crate::event::format_number(a.value),
            rfc3339(a.window_start_ms)
        )
    };
    if actual.len() != expected.len() {
        let got: Vec<String> = actual.iter().map(|a| describe(a)).collect();
        return Some(format!(
            "expected {} alert(s), got {}: [{}]",
            expected.len(),
            actual.len(),
            got.join("; ")
        ));
    }
    let mut unused: Vec<&Alert> = actual.to_vec();
    for want in expected {
        let position = unused.iter().position(|a| {
            (want.key.is_empty() || a.key == want.key)
                && want.value.is_none_or(|v| (a.value - v).abs() < 1e-9)
                && want
                    .window_start
                    .as_deref()
                    .is_none_or(|w| parse_rfc3339(w) == Some(a.window_start_ms))
        });
        match position {
            Some(i) => {
                unused.remove(i);
            }
            None => {
                let got: Vec<String> = unused.iter().map(|a| describe(a)).collect();
                return Some(format!(
                    "no alert matches expected key={:?} value={:?} window_start={:?}; unmatched: [{}]",
                    want.key,
                    want.value,
                    want.window_start,
                    got.join("; ")
                ));
            }
        }
    }
    None
}

/// Formats epoch ms as RFC 3339 (UTC).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}
