//! Compiling rule specs into the rule set the engine runs.
//!
//! Compilation validates everything a rule file says (filter syntax, field
//! paths, durations, threshold) and registers every field the rule reads in
//! the [`FieldPlans`], so decoders extract exactly those fields.

use std::collections::BTreeMap;
use std::fmt;

use super::model::{
    AggregateSpec, FieldAggregate, RuleSpec, Severity, Statistic, ThresholdSpec, TreatMissing,
};
use crate::event::{EventKind, EventView};
use crate::fields::{FieldPath, FieldPlans, Slot};
use crate::filter::{Filter, Predicate};

/// Index of a rule in its [`RuleSet`].
pub type RuleIdx = u16;

/// A comparison operator of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

impl CmpOp {
    fn parse(text: &str) -> Option<CmpOp> {
        Some(match text {
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            "=" | "==" => CmpOp::Eq,
            _ => return None,
        })
    }

    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Eq => "=",
        }
    }
}

/// `value <op> threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub op: CmpOp,
    pub value: f64,
}

impl Threshold {
    /// Parses `">= 5"` or the `{op, value}` form.
    pub fn from_spec(spec: &ThresholdSpec) -> Result<Threshold, String> {
        let (op_text, value) = match spec {
            ThresholdSpec::Parts { op, value } => (op.trim().to_string(), *value),
            ThresholdSpec::Text(text) => {
                let text = text.trim();
                let split = text
                    .find(|c: char| !matches!(c, '<' | '>' | '=' | '!'))
                    .unwrap_or(text.len());
                let (op, rest) = text.split_at(split);
                let value: f64 = rest
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid threshold {text:?}: expected e.g. \">= 5\""))?;
                (op.to_string(), value)
            }
        };
        let op = CmpOp::parse(&op_text).ok_or_else(|| {
            format!("invalid threshold operator {op_text:?}: use >, >=, <, <= or =")
        })?;
        if !value.is_finite() {
            return Err("threshold value must be finite".to_string());
        }
        Ok(Threshold { op, value })
    }

    /// Whether `observed` breaches the threshold.
    pub fn breached_by(&self, observed: f64) -> bool {
        match self.op {
            CmpOp::Gt => observed > self.value,
            CmpOp::Ge => observed >= self.value,
            CmpOp::Lt => observed < self.value,
            CmpOp::Le => observed <= self.value,
            CmpOp::Eq => observed == self.value,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.op.as_str(),
            crate::event::format_number(self.value)
        )
    }
}

/// What a rule aggregates per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Number of contributing events (CloudWatch `SampleCount`).
    Count,
    Sum,
    /// Number of distinct values.
    Distinct,
    Min,
    Max,
    Avg,
}

impl Aggregate {
    /// Name used in alerts and listings.
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::Distinct => "distinct",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Avg => "avg",
        }
    }
}

/// What each matching event contributes (CloudWatch `metricValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum ValueSource {
    /// A literal (`1` for plain counting).
    Literal(f64),
    /// A planned field (JSON selector, flow or host-log field).
    Field(Slot),
    /// A named field of the rule's space-delimited filter (`$size`).
    Named(String),
}

impl ValueSource {
    /// Parses a CloudWatch metric value: a number, `$.selector` or `$name`.
    fn parse(
        value: &serde_json::Value,
        filter: &Filter,
        plan: &mut crate::fields::FieldPlan,
    ) -> Result<ValueSource, RuleError> {
        let text = match value {
            serde_json::Value::Number(n) => {
                return n.as_f64().map(ValueSource::Literal).ok_or_else(|| {
                    RuleError::Field(format!("metric value {n} is not a finite number"))
                })
            }
            serde_json::Value::String(s) => s.trim(),
            other => {
                return Err(RuleError::Field(format!(
                    "metric value must be a number or a field, got {other}"
                )))
            }
        };
        if let Ok(n) = text.parse::<f64>() {
            return Ok(ValueSource::Literal(n));
        }
        if text.starts_with("$.") {
            let path = FieldPath::parse(text).map_err(|e| RuleError::Field(e.to_string()))?;
            return Ok(ValueSource::Field(plan.slot_for(&path)));
        }
        if let Some(name) = text.strip_prefix('$') {
            if filter.field_names().contains(&name) {
                return Ok(ValueSource::Named(name.to_string()));
            }
            return Err(RuleError::Field(format!(
                "metric value ${name} names no field of the space-delimited filter"
            )));
        }
        Err(RuleError::Field(format!(
            "metric value {text:?} must be a number, $.selector or $name"
        )))
    }
}

/// How alerts are produced from windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMode {
    /// Each breaching window yields one Create (default for 1-of-1 rules).
    Window,
    /// CloudWatch alarm state machine: Create on entering ALARM, Close on
    /// returning to OK, over M of the last N periods.
    Alarm,
}

/// M-of-N evaluation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    pub periods: u32,
    pub datapoints: u32,
    pub treat_missing: TreatMissing,
    pub mode: EvalMode,
    pub emit_close: bool,
}

/// A rule ready to run.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub attack: Vec<String>,
    pub kind: EventKind,
    pub version: u32,
    pub labels: BTreeMap<String, String>,
    pub filter: Filter,
    pub predicates: Vec<Predicate>,
    /// `group_by` names with their slots, in order.
    pub group_by: Vec<(String, Slot)>,
    pub window_ms: i64,
    /// Evaluation step for sliding rules (`None`: tumbling).
    pub slide_ms: Option<i64>,
    pub aggregate: Aggregate,
    /// What each matching event contributes.
    pub value: ValueSource,
    /// Datapoint for periods without matching events (alarm mode).
    pub default_value: Option<f64>,
    pub threshold: Threshold,
    pub evaluation: Evaluation,
    /// Fire the moment the threshold is crossed (monotone aggregate with
    /// `>` / `>=`), instead of when the window closes.
    pub eager: bool,
    /// The source spec, for listing and tests.
    pub spec: RuleSpec,
}

impl CompiledRule {
    /// Compiles `spec`, registering its fields in `plans`.
    pub fn compile(spec: &RuleSpec, plans: &mut FieldPlans) -> Result<CompiledRule, RuleError> {
        let kind = EventKind::from(spec.kind);
        validate_id(&spec.id)?;
        let plan = plans.for_kind_mut(kind);
        let mut filter = Filter::parse(&spec.filter).map_err(|error| RuleError::Filter {
            column: error.column,
            message: error.message.clone(),
        })?;
        filter.bind(plan);
        let predicates = spec
            .predicates
            .iter()
            .map(|p| Predicate::compile(p, plan).map_err(RuleError::Field))
            .collect::<Result<Vec<_>, _>>()?;
        let mut group_by = Vec::with_capacity(spec.group_by.len());
        for name in &spec.group_by {
            let path = FieldPath::parse(name).map_err(|e| RuleError::Field(e.to_string()))?;
            group_by.push((name.clone(), plan.slot_for(&path)));
        }
        let metric_value = match &spec.metric {
            Some(metric) => Some(ValueSource::parse(&metric.value, &filter, plan)?),
            None => None,
        };
        let one = ValueSource::Literal(1.0);
        let (aggregate, value) = match &spec.aggregate {
            AggregateSpec::Stat(stat) => {
                let aggregate = match stat {
                    Statistic::Count | Statistic::SampleCount => Aggregate::Count,
                    Statistic::Sum => Aggregate::Sum,
                    Statistic::Avg => Aggregate::Avg,
                    Statistic::Min => Aggregate::Min,
                    Statistic::Max => Aggregate::Max,
                };
                (aggregate, metric_value.unwrap_or(one))
            }
            AggregateSpec::Field(field_aggregate) => {
                if metric_value.is_some() {
                    return Err(RuleError::Field(
                        "use either `metric` with a statistic, or a field aggregate such as {sum: bytes}".into(),
                    ));
                }
                let (aggregate, field) = match field_aggregate {
                    FieldAggregate::Sum(f) => (Aggregate::Sum, f),
                    FieldAggregate::Distinct(f) => (Aggregate::Distinct, f),
                    FieldAggregate::Min(f) => (Aggregate::Min, f),
                    FieldAggregate::Max(f) => (Aggregate::Max, f),
                    FieldAggregate::Avg(f) => (Aggregate::Avg, f),
                };
                let path = FieldPath::parse(field).map_err(|e| RuleError::Field(e.to_string()))?;
                (aggregate, ValueSource::Field(plan.slot_for(&path)))
            }
        };
        let threshold = Threshold::from_spec(&spec.threshold).map_err(RuleError::Threshold)?;
        let window_ms = spec.window.as_millis_i64();
        if window_ms < 1_000 || window_ms % 1_000 != 0 {
            return Err(RuleError::Window(format!(
                "window {} must be a whole number of seconds, at least 1s",
                spec.window
            )));
        }
        let slide_ms = match spec.slide {
            None => None,
            Some(slide) => {
                let step = slide.as_millis_i64();
                if step < 1_000
                    || step % 1_000 != 0
                    || window_ms % step != 0
                    || window_ms / step > 1_440
                {
                    return Err(RuleError::Window(format!(
                        "slide {slide} must be whole seconds and divide window {} (at most 1440 steps)",
                        spec.window
                    )));
                }
                (step != window_ms).then_some(step)
            }
        };
        let periods = spec.evaluation.periods;
        let datapoints = spec.evaluation.datapoints.unwrap_or(periods);
        if periods == 0 || datapoints == 0 || datapoints > periods || periods > 1024 {
            return Err(RuleError::Evaluation(format!(
                "need 1 <= datapoints ({datapoints}) <= periods ({periods}) <= 1024"
            )));
        }
        let explicit_missing = spec.evaluation.treat_missing.is_some();
        let mode = if periods == 1
            && !explicit_missing
            && slide_ms.is_none()
            && spec.metric.as_ref().is_none_or(|m| m.default.is_none())
        {
            EvalMode::Window
        } else {
            EvalMode::Alarm
        };
        // Sum is monotone only for non-negative values (counts, flow bytes
        // and packets): it fires eagerly on the running sum, and a negative
        // value after the crossing does not withdraw the Create. The
        // statistics themselves use the values as given (CloudWatch Sum and
        // Average).
        let monotone = matches!(
            aggregate,
            Aggregate::Count | Aggregate::Sum | Aggregate::Distinct | Aggregate::Max
        );
        let eager = monotone && matches!(threshold.op, CmpOp::Gt | CmpOp::Ge);
        Ok(CompiledRule {
            id: spec.id.clone(),
            title: spec.title.clone(),
            description: spec.description.clone(),
            severity: spec.severity,
            attack: spec.attack.clone(),
            kind,
            version: spec.version,
            labels: spec.labels.clone(),
            filter,
            predicates,
            group_by,
            window_ms,
            slide_ms,
            aggregate,
            value,
            default_value: spec.metric.as_ref().and_then(|m| m.default),
            threshold,
            evaluation: Evaluation {
                periods,
                datapoints,
                treat_missing: spec.evaluation.treat_missing.unwrap_or_default(),
                mode,
                emit_close: spec.evaluation.emit_close,
            },
            eager,
            spec: spec.clone(),
        })
    }

    /// The event's contribution `(value, distinct hash)`, or `None` when
    /// the value is absent or not numeric (CloudWatch: adds nothing).
    #[inline]
    pub fn contribution<'a>(&self, event: &impl EventView<'a>) -> Option<(f64, u64)> {
        if self.aggregate == Aggregate::Distinct {
            let ValueSource::Field(slot) = self.value else {
                return None;
            };
            return crate::event::distinct_hash_of(&event.field(slot)).map(|hash| (1.0, hash));
        }
        match &self.value {
            ValueSource::Literal(v) => Some((*v, 0)),
            ValueSource::Field(slot) => event.field(*slot).as_f64().map(|v| (v, 0)),
            ValueSource::Named(name) => self
                .filter
                .named_field(event, name)
                .and_then(|text| text.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .map(|v| (v, 0)),
        }
    }

    /// Whether `event` passes the filter and every predicate.
    #[inline]
    pub fn matches<'a>(&self, event: &impl EventView<'a>) -> bool {
        self.matches_unproven(event, 0)
    }

    /// [`Self::matches`], skipping predicate `i` where bit `i` of `proven`
    /// is set (the caller knows it holds: see
    /// [`crate::engine::worker::Candidate`]).
    #[inline]
    pub fn matches_unproven<'a>(&self, event: &impl EventView<'a>, proven: u32) -> bool {
        self.filter.matches(event)
            && self
                .predicates
                .iter()
                .enumerate()
                .all(|(i, p)| (i < 32 && proven >> i & 1 == 1) || p.matches(event))
    }
}

fn validate_id(id: &str) -> Result<(), RuleError> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(RuleError::Id(id.to_string()))
    }
}

/// Why a rule did not compile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("invalid rule id {0:?}: use 1-128 of [A-Za-z0-9._-]")]
    Id(String),
    #[error("filter syntax error at column {column}: {message}")]
    Filter { column: usize, message: String },
    #[error("{0}")]
    Field(String),
    #[error("{0}")]
    Threshold(String),
    #[error("{0}")]
    Window(String),
    #[error("evaluation: {0}")]
    Evaluation(String),
}

/// The loaded, compiled rules plus the field plans they need.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    by_kind: [Vec<RuleIdx>; 3],
    plans: FieldPlans,
}

impl RuleSet {
    /// Compiles enabled specs into a rule set. Disabled specs are skipped.
    pub fn compile(specs: &[RuleSpec]) -> Result<RuleSet, (String, RuleError)> {
        let mut plans = FieldPlans::default();
        let mut rules = Vec::new();
        let mut by_kind: [Vec<RuleIdx>; 3] = Default::default();
        for spec in specs.iter().filter(|s| s.enabled) {
            let rule = CompiledRule::compile(spec, &mut plans).map_err(|e| (spec.id.clone(), e))?;
            let idx = RuleIdx::try_from(rules.len())
                .map_err(|_| (spec.id.clone(), RuleError::Id("too many rules".into())))?;
            by_kind[kind_index(rule.kind)].push(idx);
            rules.push(rule);
        }
        let mut set = RuleSet {
            rules,
            by_kind,
            plans,
        };
        // Only the CloudTrail decoder reads a gate: a flow line is split
        // whole anyway.
        let gate = super::gate::RuleGate::build(&set, EventKind::CloudTrail);
        set.plans.for_kind_mut(EventKind::CloudTrail).set_gate(gate);
        Ok(set)
    }

    /// All rules, indexed by [`RuleIdx`].
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// The rule at `idx`.
    pub fn rule(&self, idx: RuleIdx) -> &CompiledRule {
        &self.rules[usize::from(idx)]
    }

    /// Indices of the rules that apply to `kind`.
    pub fn for_kind(&self, kind: EventKind) -> &[RuleIdx] {
        &self.by_kind[kind_index(kind)]
    }

    /// The field plans decoders must extract.
    pub fn plans(&self) -> &FieldPlans {
        &self.plans
    }

    /// The same rules without [rule gates](super::gate): decoders read
    /// every record whole (for benchmarks of what the gate saves).
    pub fn without_gates(&self) -> RuleSet {
        let mut set = self.clone();
        for kind in [
            EventKind::CloudTrail,
            EventKind::VpcFlow,
            EventKind::HostLog,
        ] {
            set.plans.for_kind_mut(kind).set_gate(None);
        }
        set
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn kind_index(kind: EventKind) -> usize {
    match kind {
        EventKind::CloudTrail => 0,
        EventKind::VpcFlow => 1,
        EventKind::HostLog => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_both_forms() {
        let t = Threshold::from_spec(&ThresholdSpec::Text(">= 5".into())).unwrap();
        assert_eq!(
            t,
            Threshold {
                op: CmpOp::Ge,
                value: 5.0
            }
        );
        assert!(t.breached_by(5.0) && !t.breached_by(4.0));
        let t = Threshold::from_spec(&ThresholdSpec::Parts {
            op: "<".into(),
            value: 1.0,
        })
        .unwrap();
        assert!(t.breached_by(0.0));
        assert!(Threshold::from_spec(&ThresholdSpec::Text("~ 5".into())).is_err());
        assert!(Threshold::from_spec(&ThresholdSpec::Text(">= five".into())).is_err());
        assert_eq!(t.to_string(), "< 1");
    }
}
