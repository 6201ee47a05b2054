//! The naive baseline the pipeline benchmark compares against (issue 2's
//! "Bar"): every record is parsed in full into a `serde_json::Value` (flow
//! lines are split and turned into a JSON object first), every field a rule
//! reads is looked up in that tree and copied out, every rule of the
//! event's kind is evaluated by the filter interpreter, and window state is
//! a `HashMap<(rule, key, window start), aggregate>` with owned `String`
//! keys. Windows are kept until the end (no watermark), thresholds are
//! checked on every update, one alert per (rule, key, window).
//!
//! It is deliberately straightforward, not deliberately slow: no
//! re-serialisation, one lookup per planned path rather than per condition.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Number, Value};

use crate::decode::flow::V2_FIELDS;
use crate::event::{Event, EventKind, FieldValue, Fields};
use crate::filter::testing::lookup;
use crate::rules::compile::{Aggregate, RuleIdx, ValueSource};
use crate::rules::RuleSet;

const NUMERIC: [&str; 8] = [
    "version", "srcport", "dstport", "protocol", "packets", "bytes", "start", "end",
];

#[derive(Debug, Default)]
struct NaiveAgg {
    count: u64,
    sum: f64,
    max: f64,
    distinct: HashSet<String>,
    fired: bool,
}

/// The naive engine.
pub struct Baseline {
    rules: Arc<RuleSet>,
    windows: HashMap<(RuleIdx, String, i64), NaiveAgg>,
    /// Events decoded.
    pub events: u64,
    /// Records that failed to parse.
    pub failed: u64,
    /// Alerts raised (eager crossings plus windows breached at the end).
    pub alerts: u64,
}

impl Baseline {
    /// A baseline running `rules`.
    pub fn new(rules: Arc<RuleSet>) -> Self {
        Baseline {
            rules,
            windows: HashMap::new(),
            events: 0,
            failed: 0,
            alerts: 0,
        }
    }

    /// Open (rule, key, window) aggregates.
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// Processes one raw record (a JSON document or flow lines).
    pub fn process(&mut self, record: &[u8]) {
        let Ok(text) = std::str::from_utf8(record) else {
            self.failed += 1;
            return;
        };
        let text = text.trim();
        if !text.starts_with('{') {
            for line in text.lines() {
                self.flow_line(line);
            }
            return;
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(_) => {
                self.failed += 1;
                return;
            }
        };
        if let Some(events) = value.get("logEvents").and_then(Value::as_array) {
            let stream = value
                .get("logStream")
                .and_then(Value::as_str)
                .unwrap_or("-");
            for event in events {
                let message = event.get("message").and_then(Value::as_str).unwrap_or("");
                let time = event.get("timestamp").and_then(Value::as_i64).unwrap_or(0);
                self.host_line(message, time, stream);
            }
        } else if let Some(records) = value.get("Records").and_then(Value::as_array) {
            for record in records {
                self.cloudtrail(record, text);
            }
        } else {
            self.cloudtrail(&value, text);
        }
    }

    fn cloudtrail(&mut self, value: &Value, text: &str) {
        let time = value
            .get("eventTime")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis());
        let Some(time_ms) = time else {
            self.failed += 1;
            return;
        };
        let plan = self.rules.plans().for_kind(EventKind::CloudTrail);
        let fields: Fields<'_> = plan.paths().iter().map(|p| lookup(value, p)).collect();
        self.evaluate(EventKind::CloudTrail, time_ms, text, fields);
    }

    fn flow_line(&mut self, line: &str) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.len() != V2_FIELDS.len() {
            self.failed += 1;
            return;
        }
        let mut object = Map::new();
        for (name, token) in V2_FIELDS.iter().zip(&tokens) {
            if *token == "-" {
                continue;
            }
            let value = match token.parse::<f64>() {
                Ok(n) if NUMERIC.contains(name) => {
                    Number::from_f64(n).map_or(Value::String(token.to_string()), Value::Number)
                }
                _ => Value::String(token.to_string()),
            };
            object.insert(name.to_string(), value);
        }
        let value = Value::Object(object);
        let Some(start) = value.get("start").and_then(Value::as_f64) else {
            self.failed += 1;
            return;
        };
        let plan = self.rules.plans().for_kind(EventKind::VpcFlow);
        let fields: Fields<'_> = plan.paths().iter().map(|p| lookup(&value, p)).collect();
        self.evaluate(EventKind::VpcFlow, start as i64 * 1000, line, fields);
    }

    fn host_line(&mut self, message: &str, time_ms: i64, stream: &str) {
        let plan = self.rules.plans().for_kind(EventKind::HostLog);
        let fields: Fields<'_> = plan
            .paths()
            .iter()
            .map(|p| match p.as_name() {
                Some("@log_stream") => FieldValue::Str(Cow::Owned(stream.to_string())),
                _ => FieldValue::Missing,
            })
            .collect();
        self.evaluate(EventKind::HostLog, time_ms, message, fields);
    }

    fn evaluate<'a>(&mut self, kind: EventKind, time_ms: i64, text: &'a str, fields: Fields<'a>) {
        self.events += 1;
        let event = Event {
            kind,
            time_ms,
            text: Cow::Borrowed(text),
            fields,
            id: None,
            account: None,
            region: None,
            ruled_out: false,
        };
        let rules = Arc::clone(&self.rules);
        for &index in rules.for_kind(kind) {
            let rule = rules.rule(index);
            if !rule.matches(&event) {
                continue;
            }
            let key: Vec<String> = rule
                .group_by
                .iter()
                .map(|(_, slot)| {
                    event
                        .field(*slot)
                        .as_key_text()
                        .map_or_else(|| "-".to_string(), |t| t.into_owned())
                })
                .collect();
            let key = key.join("\u{1f}");
            let start = time_ms - time_ms.rem_euclid(rule.window_ms);
            let agg = self.windows.entry((index, key, start)).or_default();
            agg.count += 1;
            let field = match rule.value {
                ValueSource::Field(slot) => Some(event.field(slot)),
                _ => None,
            };
            match (rule.aggregate, field) {
                (Aggregate::Count, _) => {}
                (Aggregate::Distinct, Some(value)) => {
                    if let Some(text) = value.as_key_text() {
                        agg.distinct.insert(text.into_owned());
                    }
                }
                (_, Some(value)) => {
                    if let Some(v) = value.as_f64() {
                        agg.sum += v.max(0.0);
                        agg.max = agg.max.max(v);
                    }
                }
                (_, None) => {}
            }
            let value = match rule.aggregate {
                Aggregate::Count => agg.count as f64,
                Aggregate::Distinct => agg.distinct.len() as f64,
                Aggregate::Max => agg.max,
                _ => agg.sum,
            };
            if rule.eager && !agg.fired && rule.threshold.breached_by(value) {
                agg.fired = true;
                self.alerts += 1;
            }
        }
    }

    /// Evaluates the windows that were not decided eagerly (end of input).
    pub fn finish(&mut self) {
        for ((rule_idx, _, _), agg) in &mut self.windows {
            let rule = self.rules.rule(*rule_idx);
            if agg.fired || rule.eager {
                continue;
            }
            let value = match rule.aggregate {
                Aggregate::Count => agg.count as f64,
                Aggregate::Avg if agg.count > 0 => agg.sum / agg.count as f64,
                _ => agg.sum,
            };
            if rule.threshold.breached_by(value) {
                agg.fired = true;
                self.alerts += 1;
            }
        }
    }
}
