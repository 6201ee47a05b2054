//! The rule file format, exactly as users write it in YAML.
//!
//! One rule per file. Unknown keys are errors, so a typo never silently
//! disables part of a rule. See the README's "Rule format" section.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;
use crate::event::EventKind;
use crate::filter::PredicateSpec;

/// A rule file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Stable id; a user rule with the id of a built-in one replaces it.
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub severity: Severity,
    /// MITRE ATT&CK technique ids, e.g. `T1110`.
    #[serde(default)]
    pub attack: Vec<String>,
    /// Which events the rule sees: `cloudtrail`, `vpcflow` or `hostlog`.
    pub kind: KindSpec,
    /// CloudWatch Logs filter pattern; empty matches everything.
    #[serde(default)]
    pub filter: String,
    /// Structured predicates, all of which must hold (ANDed with `filter`).
    #[serde(default, rename = "where")]
    pub predicates: Vec<PredicateSpec>,
    /// Fields whose values form the group key.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Tumbling window (CloudWatch: the alarm period).
    pub window: HumanDuration,
    /// Sliding evaluation step (CloudWatch re-evaluates every minute): the
    /// window is evaluated every `slide`, built from tumbling panes of that
    /// width. Must divide `window`.
    #[serde(default)]
    pub slide: Option<HumanDuration>,
    /// CloudWatch metric value: what each matching event contributes.
    #[serde(default)]
    pub metric: Option<MetricSpec>,
    #[serde(default)]
    pub aggregate: AggregateSpec,
    pub threshold: ThresholdSpec,
    #[serde(default)]
    pub evaluation: EvaluationSpec,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_version")]
    pub version: u32,
    /// Free-form routing labels copied onto alerts (e.g. `sns_topic`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Inline test cases run by `trailwatch rules test`.
    #[serde(default)]
    pub tests: Vec<RuleTestSpec>,
}

fn default_true() -> bool {
    true
}

fn default_version() -> u32 {
    1
}

/// YAML form of [`EventKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KindSpec {
    Cloudtrail,
    Vpcflow,
    Hostlog,
}

impl From<KindSpec> for EventKind {
    fn from(kind: KindSpec) -> Self {
        match kind {
            KindSpec::Cloudtrail => EventKind::CloudTrail,
            KindSpec::Vpcflow => EventKind::VpcFlow,
            KindSpec::Hostlog => EventKind::HostLog,
        }
    }
}

/// OCSF severity names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Informational,
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    /// OCSF `severity_id`.
    pub fn ocsf_id(self) -> u8 {
        match self {
            Severity::Informational => 1,
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
            Severity::Critical => 5,
        }
    }

    /// OCSF `severity` caption.
    pub fn caption(self) -> &'static str {
        match self {
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }
}

/// What a window aggregates: a statistic of the rule's metric value
/// (`count`, `sum`, `avg`, `min`, `max`, `sample_count`, also under their
/// CloudWatch names `Sum`, `Average`, `SampleCount`, `Minimum`, `Maximum`),
/// or a statistic of a field: `{sum: bytes}`, `{distinct: dstport}`,
/// `{min: f}`, `{max: f}`, `{avg: f}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AggregateSpec {
    Stat(Statistic),
    Field(FieldAggregate),
}

impl Default for AggregateSpec {
    fn default() -> Self {
        AggregateSpec::Stat(Statistic::Count)
    }
}

/// A statistic over the metric value (CloudWatch statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Statistic {
    #[serde(rename = "count")]
    Count,
    #[serde(rename = "sample_count", alias = "SampleCount")]
    SampleCount,
    #[serde(rename = "sum", alias = "Sum")]
    Sum,
    #[serde(rename = "avg", alias = "Average", alias = "average")]
    Avg,
    #[serde(rename = "min", alias = "Minimum", alias = "minimum")]
    Min,
    #[serde(rename = "max", alias = "Maximum", alias = "maximum")]
    Max,
}

/// A statistic over a named field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum FieldAggregate {
    Sum(String),
    Distinct(String),
    Min(String),
    Max(String),
    Avg(String),
}

/// CloudWatch `metricValue` / `defaultValue`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// `1`, a literal number, a JSON selector `$.field`, or `$name` of a
    /// space-delimited filter field. Events where the field is absent or
    /// not numeric contribute nothing (as in CloudWatch).
    pub value: serde_json::Value,
    /// Datapoint for periods with no matching event (alarm evaluation).
    #[serde(default)]
    pub default: Option<f64>,
}

/// `">= 5"` or `{op: ">=", value: 5}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ThresholdSpec {
    Text(String),
    Parts { op: String, value: f64 },
}

/// What CloudWatch does with periods that have no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TreatMissing {
    #[default]
    Missing,
    NotBreaching,
    Breaching,
    Ignore,
}

/// M-of-N evaluation (CloudWatch `EvaluationPeriods`, `DatapointsToAlarm`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSpec {
    #[serde(default = "one")]
    pub periods: u32,
    #[serde(default)]
    pub datapoints: Option<u32>,
    /// `None` when the rule does not name it: CloudWatch's `missing`, and
    /// window mode for a 1-of-1 rule. Named, even as `missing`, it puts the
    /// rule in alarm mode (Close on return to OK), as the README says.
    #[serde(default)]
    pub treat_missing: Option<TreatMissing>,
    /// Also emit a Close alert when a window that alerted closes
    /// (window mode) — alarm mode always emits Close on return to OK.
    #[serde(default)]
    pub emit_close: bool,
}

fn one() -> u32 {
    1
}

impl Default for EvaluationSpec {
    fn default() -> Self {
        EvaluationSpec {
            periods: 1,
            datapoints: None,
            treat_missing: None,
            emit_close: false,
        }
    }
}

/// One inline test case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTestSpec {
    pub name: String,
    /// Input records: JSON objects (CloudTrail) or strings (flow / host lines,
    /// or any raw record text, which goes through envelope detection).
    pub input: Vec<serde_json::Value>,
    /// Expected alerts of this rule (Create alerts only), in any order.
    #[serde(default)]
    pub expect: Vec<ExpectedAlert>,
}

/// An alert a test case expects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    /// Group key values in `group_by` order.
    #[serde(default)]
    pub key: Vec<String>,
    /// Aggregate value when the alert fired, if checked.
    #[serde(default)]
    pub value: Option<f64>,
    /// Window start (RFC 3339), if checked.
    #[serde(default)]
    pub window_start: Option<String>,
}
