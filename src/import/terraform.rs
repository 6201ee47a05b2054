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
    if let Some(root) = doc.pointer("/configuration/root_module") {
        module_references(root, "", &BTreeMap::new(), &mut out);
    }
    out
}

/// The `alarm_actions` references of `module`'s resource blocks, by their
/// planned address (`prefix` is `module.NAME.` for a child module). A
/// reference to the module's own resource is prefixed likewise; `var.X`
/// is replaced by what the calling module passes as `X` (`inputs`, already
/// in the caller's addresses), so a topic made by the root module and
/// handed down is found.
fn module_references(
    module: &Value,
    prefix: &str,
    inputs: &BTreeMap<String, Vec<String>>,
    out: &mut BTreeMap<String, Vec<String>>,
) {
    let resolve = |references: Option<&Value>| -> Vec<String> {
        let mut resolved = Vec::new();
        for reference in references.and_then(Value::as_array).into_iter().flatten() {
            let Some(reference) = text(reference) else {
                continue;
            };
            match reference
                .strip_prefix("var.")
                .and_then(|var| inputs.get(var))
            {
                Some(passed) => resolved.extend(passed.iter().cloned()),
                // Kept as written when not passed in: the warning names it.
                None if reference.starts_with("var.") => resolved.push(reference),
                None => resolved.push(format!("{prefix}{reference}")),
            }
        }
        resolved
    };
    for r in module
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let address = r.get("address").and_then(text).unwrap_or_default();
        let references = resolve(r.pointer("/expressions/alarm_actions/references"));
        out.insert(format!("{prefix}{address}"), references);
    }
    for (name, call) in module
        .get("module_calls")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let call_inputs: BTreeMap<String, Vec<String>> = call
            .get("expressions")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(input, expression)| (input.clone(), resolve(expression.get("references"))))
            .collect();
        if let Some(child) = call.get("module") {
            module_references(child, &format!("{prefix}module.{name}."), &call_inputs, out);
        }
    }
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
    // An alarm's reference names a topic's block (`aws_sns_topic.t`); a
    // `count` or `for_each` topic is planned as `aws_sns_topic.t[0]`.
    let mut topics = topics;
    let indexed: Vec<(String, String)> = topics
        .iter()
        .filter(|(address, _)| config_address(address) != address.as_str())
        .map(|(address, name)| (config_address(address).to_string(), name.clone()))
        .collect();
    for (block, name) in indexed {
        topics.entry(block).or_insert(name);
    }
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
                    // The configuration names the resource block; a planned
                    // instance of a `count` or `for_each` block adds its index.
                    let block = config_address(&r.address);
                    let block_references = references.get(block).map_or(&[][..], Vec::as_slice);
                    for reference in block_references {
                        let target = reference.trim_end_matches(".arn");
                        if let Some(topic) = topics.get(target) {
                            if !alarm.sns_topics.contains(topic) {
                                alarm.sns_topics.push(topic.clone());
                            }
                        }
                    }
                    if alarm.sns_topics.is_empty() && !block_references.is_empty() {
                        set.notes.push(Note::new(
                            NoteLevel::Warning,
                            alarm.name.clone(),
                            format!(
                                "alarm_actions are not known in the plan and lead to no aws_sns_topic of it \
                                 ({}): no sns_topic label",
                                block_references.join(", ")
                            ),
                        ));
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

/// A planned resource's address without the instance index that `count`
/// or `for_each` adds (`aws_x.cis["CloudTrailChanges"]` → `aws_x.cis`):
/// the configuration's address of its block.
fn config_address(address: &str) -> &str {
    match address.strip_suffix(']').and_then(|a| a.rfind('[')) {
        Some(open) => &address[..open],
        None => address,
    }
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
