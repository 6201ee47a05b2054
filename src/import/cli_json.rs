//! AWS CLI JSON → [`ImportSet`]: the output of
//! `aws logs describe-metric-filters` (`{"metricFilters": [...]}`) and
//! `aws cloudwatch describe-alarms` (`{"MetricAlarms": [...],
//! "CompositeAlarms": [...]}`).

use serde_json::Value;

use super::{
    filter_from_transformation, number, sns_topic_from_arn, text, ImportSet, ImportedAlarm, Note,
    NoteLevel, TransformKeys,
};
use crate::error::{Error, Result};

/// Reads both documents (either may be `Value::Null` when not given).
pub fn import(metric_filters: &Value, alarms: &Value, files: (&str, &str)) -> Result<ImportSet> {
    let mut set = ImportSet::default();
    if !metric_filters.is_null() {
        let list = metric_filters
            .get("metricFilters")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Error::Config(format!(
                    "{}: no \"metricFilters\" list (expected describe-metric-filters output)",
                    files.0
                ))
            })?;
        for (index, f) in list.iter().enumerate() {
            read_filter(f, &format!("{}#metricFilters[{index}]", files.0), &mut set);
        }
    }
    if !alarms.is_null() {
        let metric_alarms = alarms.get("MetricAlarms").and_then(Value::as_array);
        let composites = alarms.get("CompositeAlarms").and_then(Value::as_array);
        if metric_alarms.is_none() && composites.is_none() {
            return Err(Error::Config(format!(
                "{}: no \"MetricAlarms\" list (expected describe-alarms output)",
                files.1
            )));
        }
        for (index, a) in metric_alarms.into_iter().flatten().enumerate() {
            set.alarms
                .push(read_alarm(a, &format!("{}#MetricAlarms[{index}]", files.1)));
        }
        for c in composites.into_iter().flatten() {
            let name = c.get("AlarmName").and_then(text).unwrap_or_default();
            set.notes.push(Note::new(
                NoteLevel::Skipped,
                name,
                "composite alarm: its rule expression combines other alarms' states; not carried over",
            ));
        }
    }
    Ok(set)
}

/// Metric transformation keys of `describe-metric-filters` output.
const CLI_KEYS: TransformKeys = TransformKeys {
    name: "metricName",
    namespace: "metricNamespace",
    value: "metricValue",
    default: "defaultValue",
};

fn read_filter(f: &Value, source: &str, set: &mut ImportSet) {
    let name = f
        .get("filterName")
        .and_then(text)
        .unwrap_or_else(|| source.to_string());
    let pattern = f.get("filterPattern").and_then(text).unwrap_or_default();
    let log_group = f.get("logGroupName").and_then(text);
    if f.get("applyOnTransformedLogs").and_then(flag) == Some(true) {
        // CloudWatch matched the output of the log group's transformer
        // (fields renamed, added, parsed): trailwatch sees the raw event.
        set.notes.push(Note::new(
            NoteLevel::Warning,
            name.clone(),
            "applyOnTransformedLogs: the filter matched the output of the log group's transformer, \
             trailwatch matches the event as delivered: check the pattern against untransformed events",
        ));
    }
    for t in f
        .get("metricTransformations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        set.filters.push(filter_from_transformation(
            t,
            &CLI_KEYS,
            &name,
            &pattern,
            log_group.as_deref(),
            source,
        ));
    }
}

/// A bool, or the strings `"true"` and `"false"` that Terraform converts to
/// one (a variable's string default given to `actions_enabled`).
fn flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// Reads one alarm in the CLI / API shape (also used for Terraform after
/// its keys are mapped).
pub(crate) fn read_alarm(a: &Value, source: &str) -> ImportedAlarm {
    let name = a
        .get("AlarmName")
        .and_then(text)
        .unwrap_or_else(|| source.to_string());
    let list = |key: &str| -> Vec<String> {
        a.get(key)
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(text).collect())
            .unwrap_or_default()
    };
    let mut alarm = ImportedAlarm {
        name,
        description: a.get("AlarmDescription").and_then(text).unwrap_or_default(),
        metric_name: a.get("MetricName").and_then(text).unwrap_or_default(),
        namespace: a.get("Namespace").and_then(text).unwrap_or_default(),
        statistic: a.get("Statistic").and_then(text),
        extended_statistic: a.get("ExtendedStatistic").and_then(text),
        period_s: a.get("Period").and_then(number).map(|p| p as u64),
        evaluation_periods: a
            .get("EvaluationPeriods")
            .and_then(number)
            .map(|p| p as u32),
        datapoints: a
            .get("DatapointsToAlarm")
            .and_then(number)
            .map(|p| p as u32),
        comparison: a
            .get("ComparisonOperator")
            .and_then(text)
            .unwrap_or_default(),
        threshold: a.get("Threshold").and_then(number),
        treat_missing: a.get("TreatMissingData").and_then(text),
        actions_enabled: a.get("ActionsEnabled").and_then(flag).unwrap_or(true),
        ok_or_insufficient_actions: !list("OKActions").is_empty()
            || !list("InsufficientDataActions").is_empty(),
        source: source.to_string(),
        ..ImportedAlarm::default()
    };
    for action in list("AlarmActions") {
        match sns_topic_from_arn(&action) {
            Some(topic) => alarm.sns_topics.push(topic),
            None => alarm.other_actions.push(action),
        }
    }
    for d in a
        .get("Dimensions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(k), Some(v)) = (d.get("Name").and_then(text), d.get("Value").and_then(text)) {
            alarm.dimensions.push((k, v));
        }
    }
    if let Some(metrics) = a.get("Metrics") {
        alarm.math_metrics = super::math_metrics(metrics);
    }
    // An anomaly detection alarm has `Metrics` too (the band's
    // expression): it is named for what it is first.
    if a.get("ThresholdMetricId").and_then(text).is_some() {
        alarm.unsupported =
            Some("anomaly detection alarm (ThresholdMetricId): not carried over".to_string());
    } else if a
        .get("Metrics")
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty())
    {
        alarm.unsupported = Some("metric math alarm (Metrics): not carried over".to_string());
    }
    alarm
}
