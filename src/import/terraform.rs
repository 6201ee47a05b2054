//! Terraform JSON → [`ImportSet`]: `aws_cloudwatch_log_metric_filter` and
//! `aws_cloudwatch_metric_alarm` resources from `terraform show -json`
//! (plan: `planned_values`; state: `values`) or a raw `terraform.tfstate`
//! (`resources[].instances[].attributes`), modules included.
//!
//! In a plan, an alarm action that refers to a topic created in the same
//! plan is unknown (`null`); its topic then comes from the configuration's
//! references (`aws_sns_topic.alerts.arn` → that topic's `name`).
//!
//! HCL (`.tf`) is read by [`super::hcl`], which evaluates it statically and
//! hands the same `values` shape to this reader.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{
    cli_json, filter_from_transformation, text, ImportSet, Note, NoteLevel, TransformKeys,
};

/// Metric transformation keys of `aws_cloudwatch_log_metric_filter`.
const TERRAFORM_KEYS: TransformKeys = TransformKeys {
    name: "name",
    namespace: "namespace",
    value: "value",
    default: "default_value",
};
use crate::error::{Error, Result};

/// One resource instance: address, type, values.
struct Resource {
    address: String,
    kind: String,
    values: Value,
}

fn collect_module(module: &Value, out: &mut Vec<Resource>) {
    for r in module
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if r.get("mode")
            .and_then(Value::as_str)
            .is_some_and(|m| m != "managed")
        {
            continue;
        }
        out.push(Resource {
            address: r.get("address").and_then(text).unwrap_or_default(),
            kind: r.get("type").and_then(text).unwrap_or_default(),
            values: r.get("values").cloned().unwrap_or(Value::Null),
        });
    }
    for child in module
        .get("child_modules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        collect_module(child, out);
    }
}

fn collect(doc: &Value) -> Option<Vec<Resource>> {
    let mut out = Vec::new();
    if let Some(root) = doc.pointer("/planned_values/root_module") {
        collect_module(root, &mut out);
    } else if let Some(root) = doc.pointer("/values/root_module") {
        collect_module(root, &mut out);
    } else if let Some(resources) = doc.get("resources").and_then(Value::as_array) {
        for r in resources {
            if r.get("mode")
                .and_then(Value::as_str)
                .is_some_and(|m| m != "managed")
            {
                continue;
            }
            let kind = r.get("type").and_then(text).unwrap_or_default();
            let name = r.get("name").and_then(text).unwrap_or_default();
            let module = r
                .get("module")
                .and_then(text)
                .map_or(String::new(), |m| format!("{m}."));
            for (i, instance) in r
                .get("instances")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let suffix = instance
                    .get("index_key")
                    .map_or(String::new(), |k| format!("[{k}]"));
                let _ = i;
                out.push(Resource {
                    address: format!("{module}{kind}.{name}{suffix}"),
                    kind: kind.clone(),
                    values: instance.get("attributes").cloned().unwrap_or(Value::Null),
                });
            }
        }
    } else {
        return None;
    }
    Some(out)
}

/// Root-module configuration references of each resource's `alarm_actions`.
fn action_references(doc: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for r in doc
        .pointer("/configuration/root_module/resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let address = r.get("address").and_then(text).unwrap_or_default();
        let refs: Vec<String> = r
            .pointer("/expressions/alarm_actions/references")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(text).collect())
            .unwrap_or_default();
        out.insert(address, refs);
    }
    out
}

/// Reads a Terraform JSON document.
pub fn import(doc: &Value, file: &str) -> Result<ImportSet> {
    let resources = collect(doc).ok_or_else(|| {
        Error::Config(format!(
            "{file}: not Terraform JSON (expected `terraform show -json` output with planned_values or values, or a tfstate with resources)"
        ))
    })?;
    let references = action_references(doc);
    let topics: BTreeMap<String, String> = resources
        .iter()
        .filter(|r| r.kind == "aws_sns_topic")
        .map(|r| {
            let name = r
                .values
                .get("name")
                .and_then(text)
                .unwrap_or_else(|| r.address.rsplit('.').next().unwrap_or("").to_string());
            (r.address.clone(), name)
        })
        .collect();
    let mut set = ImportSet::default();
    for r in &resources {
        let source = format!("{file}#{}", r.address);
        match r.kind.as_str() {
            "aws_cloudwatch_log_metric_filter" => read_filter(r, &source, &mut set),
            "aws_cloudwatch_metric_alarm" => {
                let v = &r.values;
                let s = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
                let dims: Vec<Value> = v
                    .get("dimensions")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, val)| json!({"Name": k, "Value": val}))
                            .collect()
                    })
                    .unwrap_or_default();
                let api = json!({
                    "AlarmName": s("alarm_name"),
                    "AlarmDescription": s("alarm_description"),
                    "MetricName": s("metric_name"),
                    "Namespace": s("namespace"),
                    "Statistic": non_empty(s("statistic")),
                    "ExtendedStatistic": non_empty(s("extended_statistic")),
                    "Period": s("period"),
                    "EvaluationPeriods": s("evaluation_periods"),
                    "DatapointsToAlarm": s("datapoints_to_alarm"),
                    "ComparisonOperator": s("comparison_operator"),
                    "Threshold": s("threshold"),
                    "TreatMissingData": non_empty(s("treat_missing_data")),
                    "ActionsEnabled": s("actions_enabled"),
                    "AlarmActions": s("alarm_actions"),
                    "OKActions": s("ok_actions"),
                    "InsufficientDataActions": s("insufficient_data_actions"),
                    "Dimensions": dims,
                    "Metrics": s("metric_query"),
                    "ThresholdMetricId": non_empty(s("threshold_metric_id")),
                });
                let mut alarm = cli_json::read_alarm(&api, &source);
                if alarm.name == source {
                    alarm.name = r.address.clone();
                }
                // Datapoints of 0 is Terraform's "unset".
                if alarm.datapoints == Some(0) {
                    alarm.datapoints = None;
                }
                let known_actions = v
                    .get("alarm_actions")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                if !known_actions {
                    for reference in references.get(&r.address).into_iter().flatten() {
                        let target = reference.trim_end_matches(".arn");
                        if let Some(topic) = topics.get(target) {
                            if !alarm.sns_topics.contains(topic) {
                                alarm.sns_topics.push(topic.clone());
                            }
                        }
                    }
                }
                alarm.sns_topics.dedup();
                set.alarms.push(alarm);
            }
            _ => {}
        }
    }
    if set.filters.is_empty() && set.alarms.is_empty() {
        set.notes.push(Note::new(
            NoteLevel::Info,
            file,
            "no aws_cloudwatch_log_metric_filter or aws_cloudwatch_metric_alarm resources found",
        ));
    }
    Ok(set)
}

fn non_empty(value: Value) -> Value {
    match value {
        Value::String(s) if s.is_empty() => Value::Null,
        other => other,
    }
}

fn read_filter(r: &Resource, source: &str, set: &mut ImportSet) {
    let v = &r.values;
    let name = v
        .get("name")
        .and_then(text)
        .unwrap_or_else(|| r.address.clone());
    let pattern = v.get("pattern").and_then(text).unwrap_or_default();
    let log_group = v.get("log_group_name").and_then(text);
    let transformations: Vec<Map<String, Value>> = match v.get("metric_transformation") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_object().cloned())
            .collect(),
        Some(Value::Object(single)) => vec![single.clone()],
        _ => Vec::new(),
    };
    if transformations.is_empty() {
        set.notes.push(Note::new(
            NoteLevel::Skipped,
            name,
            "metric filter without metric_transformation",
        ));
        return;
    }
    for t in transformations {
        set.filters.push(filter_from_transformation(
            &Value::Object(t),
            &TERRAFORM_KEYS,
            &name,
            &pattern,
            log_group.as_deref(),
            source,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_state_is_read() {
        let doc = json!({"version": 4, "resources": [{
            "mode": "managed", "type": "aws_cloudwatch_log_metric_filter", "name": "f",
            "instances": [{"attributes": {"name": "F", "pattern": "{ $.a = 1 }", "log_group_name": "g",
              "metric_transformation": [{"name": "M", "namespace": "N", "value": "1", "default_value": ""}]}}]
        }]});
        let set = import(&doc, "s.tfstate").unwrap();
        assert_eq!(set.filters.len(), 1);
        assert_eq!(set.filters[0].default, None);
        assert_eq!(set.filters[0].metric_name, "M");
    }
}
