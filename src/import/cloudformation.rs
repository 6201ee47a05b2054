//! CloudFormation templates (JSON or YAML) → [`ImportSet`].
//!
//! Reads `AWS::Logs::MetricFilter`, `AWS::CloudWatch::Alarm` and
//! `AWS::SNS::Topic` resources. YAML short-form tags (`!Ref`, `!Sub`,
//! `!GetAtt`, `!Join`, `!If`, ...) are rewritten into their long JSON form
//! (`{"Ref": ..}`, `{"Fn::Sub": ..}`) first, so one resolver serves both.
//! `Ref` and `Fn::Sub` resolve parameters from `--param` overrides, then
//! parameter defaults; `Ref` to a topic resolves to its `TopicName` (or its
//! logical id). Pseudo parameters (`AWS::AccountId`, `AWS::Region`, ...)
//! resolve from `--param` too; unset, they are unresolvable like any other
//! `Ref` (a pattern keeping a literal `${AWS::AccountId}` would match the
//! wrong events), except in alarm actions, where an SNS ARN still ends in
//! its topic name. Resources with a `Condition` are kept when the condition
//! evaluates to true (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`), or
//! kept with a note when it cannot be evaluated. A dimension name or value
//! that cannot be resolved skips its alarm or metric filter, with the
//! `--param` to pass: dropping the dimension would widen the rule.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{
    number, sns_topic_from_arn, text, ImportSet, ImportedAlarm, ImportedFilter, Note, NoteLevel,
};
use crate::error::{Error, Result};

/// Parses a template's text (JSON when it starts with `{`, else YAML).
pub fn parse_template(source_text: &str) -> Result<Value> {
    if source_text.trim_start().starts_with('{') {
        return serde_json::from_str(source_text)
            .map_err(|e| Error::Config(format!("template is not valid JSON: {e}")));
    }
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(source_text)
        .map_err(|e| Error::Config(format!("template is not valid YAML: {e}")))?;
    Ok(yaml_to_json(yaml))
}

/// Converts YAML to JSON, turning short-form tags into long-form intrinsics.
fn yaml_to_json(value: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    other => text(&yaml_to_json(other)).unwrap_or_default(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!').to_string();
            let inner = yaml_to_json(tagged.value);
            let (key, inner) = match name.as_str() {
                "Ref" => ("Ref".to_string(), inner),
                "Condition" => ("Condition".to_string(), inner),
                "GetAtt" => {
                    // `!GetAtt Res.Attr` is a string; the long form is a list.
                    let inner = match inner {
                        Value::String(s) => match s.split_once('.') {
                            Some((r, a)) => Value::Array(vec![r.into(), a.into()]),
                            None => Value::String(s),
                        },
                        other => other,
                    };
                    ("Fn::GetAtt".to_string(), inner)
                }
                other => (format!("Fn::{other}"), inner),
            };
            let mut out = Map::new();
            out.insert(key, inner);
            Value::Object(out)
        }
    }
}

/// Resolution context: parameters and resources of one template.
#[derive(Clone)]
struct Context<'a> {
    params: BTreeMap<String, String>,
    resources: &'a Map<String, Value>,
    conditions: &'a Map<String, Value>,
    /// The template's `Mappings`, for `Fn::FindInMap`.
    mappings: &'a Map<String, Value>,
    /// Whether a pseudo parameter (`AWS::AccountId`) that no `--param`
    /// sets resolves to its literal `${AWS::AccountId}`. Only for SNS
    /// topics, whose ARN still ends in the topic name; anywhere else the
    /// literal would be matched as text and change what the rule does.
    keep_pseudo: bool,
}

impl Context<'_> {
    /// This context, keeping unset pseudo parameters as written.
    fn keeping_pseudo(&self) -> Self {
        Context {
            keep_pseudo: true,
            ..self.clone()
        }
    }

    /// Resolves a value to text. `Err` says what could not be resolved.
    fn resolve(&self, value: &Value) -> std::result::Result<String, String> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(_) | Value::Bool(_) => Ok(text(value).unwrap_or_default()),
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().ok_or("empty intrinsic")?;
                match key.as_str() {
                    "Ref" => self.reference(arg.as_str().ok_or("Ref takes a name")?),
                    "Fn::Sub" => self.sub(arg),
                    "Fn::Join" => {
                        let parts = arg
                            .as_array()
                            .ok_or("Fn::Join takes [delimiter, [values]]")?;
                        let delimiter = parts.first().and_then(Value::as_str).unwrap_or("");
                        let items = parts
                            .get(1)
                            .and_then(Value::as_array)
                            .ok_or("Fn::Join takes [delimiter, [values]]")?;
                        let resolved = items
                            .iter()
                            .map(|v| self.resolve(v))
                            .collect::<std::result::Result<Vec<_>, _>>()?;
                        Ok(resolved.join(delimiter))
                    }
                    "Fn::GetAtt" => {
                        let parts = arg
                            .as_array()
                            .ok_or("Fn::GetAtt takes [resource, attribute]")?;
                        let resource = parts.first().and_then(Value::as_str).unwrap_or("");
                        let attribute = parts.get(1).and_then(Value::as_str).unwrap_or("");
                        match self.topic_name(resource) {
                            Some(name) if matches!(attribute, "TopicArn" | "TopicName") => Ok(name),
                            _ => Err(format!("Fn::GetAtt {resource}.{attribute}")),
                        }
                    }
                    "Fn::If" => {
                        let parts = arg
                            .as_array()
                            .ok_or("Fn::If takes [condition, then, else]")?;
                        let name = parts.first().and_then(Value::as_str).unwrap_or("");
                        let branch = if self.condition_named(name)? { 1 } else { 2 };
                        self.resolve(parts.get(branch).unwrap_or(&Value::Null))
                    }
                    "Fn::Select" => {
                        let parts = arg.as_array().ok_or("Fn::Select takes [index, list]")?;
                        let index = parts.first().and_then(number).unwrap_or(-1.0);
                        let list = parts
                            .get(1)
                            .and_then(Value::as_array)
                            .ok_or("Fn::Select list")?;
                        let item = (index >= 0.0).then(|| list.get(index as usize)).flatten();
                        self.resolve(item.ok_or("Fn::Select index out of range")?)
                    }
                    "Fn::FindInMap" => {
                        let parts = arg
                            .as_array()
                            .filter(|parts| parts.len() == 3)
                            .ok_or("Fn::FindInMap takes [map, top key, second key]")?;
                        let keys = parts
                            .iter()
                            .map(|part| self.resolve(part))
                            .collect::<std::result::Result<Vec<_>, _>>()?;
                        let found = self
                            .mappings
                            .get(&keys[0])
                            .and_then(|map| map.get(&keys[1]))
                            .and_then(|top| top.get(&keys[2]))
                            .ok_or_else(|| {
                                format!(
                                    "Fn::FindInMap {}.{}.{} (not in Mappings)",
                                    keys[0], keys[1], keys[2]
                                )
                            })?;
                        self.resolve(found)
                    }
                    other => Err(other.to_string()),
                }
            }
            Value::Null => Err("null".to_string()),
            _ => Err(format!("unsupported value {value}")),
        }
    }

    /// Whether `value` is `Ref AWS::NoValue`, directly or as the branch an
    /// `Fn::If` takes: CloudFormation then removes the property (or the
    /// list element), as if it were not written.
    fn absent(&self, value: &Value) -> bool {
        if value.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") {
            return true;
        }
        let Some(parts) = value.get("Fn::If").and_then(Value::as_array) else {
            return false;
        };
        let name = parts.first().and_then(Value::as_str).unwrap_or("");
        match self.condition_named(name) {
            Ok(true) => parts.get(1).is_some_and(|v| self.absent(v)),
            Ok(false) => parts.get(2).is_some_and(|v| self.absent(v)),
            Err(_) => false,
        }
    }

    /// The elements of a list property: a list (without its `AWS::NoValue`
    /// elements) or an `Fn::If` choosing one; absent, empty.
    fn list<'v>(&self, value: Option<&'v Value>) -> Vec<&'v Value> {
        match value {
            Some(Value::Array(items)) => items.iter().filter(|v| !self.absent(v)).collect(),
            Some(v) if !self.absent(v) => match v.get("Fn::If").and_then(Value::as_array) {
                Some(parts) => {
                    let name = parts.first().and_then(Value::as_str).unwrap_or("");
                    match self.condition_named(name) {
                        Ok(true) => self.list(parts.get(1)),
                        Ok(false) => self.list(parts.get(2)),
                        Err(_) => Vec::new(),
                    }
                }
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn reference(&self, name: &str) -> std::result::Result<String, String> {
        if name == "AWS::NoValue" {
            // Absent properties and list elements are dropped before they
            // are resolved; inside a string it has no text.
            return Err("AWS::NoValue where a value is needed".to_string());
        }
        if let Some(value) = self.params.get(name) {
            return Ok(value.clone());
        }
        if let Some(topic) = self.topic_name(name) {
            return Ok(topic);
        }
        if self.resources.contains_key(name) {
            return Ok(name.to_string());
        }
        if name.starts_with("AWS::") && self.keep_pseudo {
            return Ok(format!("${{{name}}}"));
        }
        Err(format!("Ref {name}"))
    }

    /// `Fn::Sub` with `${Param}`, `${Res.Attr}` and `${!Literal}`.
    fn sub(&self, arg: &Value) -> std::result::Result<String, String> {
        let (template, vars) = match arg {
            Value::String(s) => (s.as_str(), None),
            Value::Array(parts) => (
                parts
                    .first()
                    .and_then(Value::as_str)
                    .ok_or("Fn::Sub takes a string")?,
                parts.get(1).and_then(Value::as_object),
            ),
            _ => return Err("Fn::Sub takes a string".to_string()),
        };
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or("unterminated ${ in Fn::Sub")?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = vars.and_then(|v| v.get(name)) {
                out.push_str(&self.resolve(value)?);
            } else if let Some((resource, attribute)) = name.split_once('.') {
                match self.topic_name(resource) {
                    Some(topic) if matches!(attribute, "TopicArn" | "TopicName") => {
                        out.push_str(&topic)
                    }
                    _ => return Err(format!("${{{name}}}")),
                }
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The topic name of an `AWS::SNS::Topic` resource.
    fn topic_name(&self, logical_id: &str) -> Option<String> {
        let resource = self.resources.get(logical_id)?;
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::SNS::Topic") {
            return None;
        }
        let name = resource
            .get("Properties")
            .and_then(|p| p.get("TopicName"))
            .and_then(|v| self.keeping_pseudo().resolve(v).ok());
        Some(name.unwrap_or_else(|| logical_id.to_string()))
    }

    fn condition_named(&self, name: &str) -> std::result::Result<bool, String> {
        let body = self
            .conditions
            .get(name)
            .ok_or_else(|| format!("unknown condition {name}"))?;
        self.condition(body)
    }

    fn condition(&self, value: &Value) -> std::result::Result<bool, String> {
        let map = value
            .as_object()
            .filter(|m| m.len() == 1)
            .ok_or("condition")?;
        let (key, arg) = map.iter().next().ok_or("condition")?;
        let list = || arg.as_array().ok_or_else(|| format!("{key} takes a list"));
        match key.as_str() {
            "Fn::Equals" => {
                let items = list()?;
                let a = self.resolve(items.first().unwrap_or(&Value::Null))?;
                let b = self.resolve(items.get(1).unwrap_or(&Value::Null))?;
                Ok(a == b)
            }
            "Fn::Not" => Ok(!self.condition(list()?.first().unwrap_or(&Value::Null))?),
            "Fn::And" => {
                for item in list()? {
                    if !self.condition(item)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            "Fn::Or" => {
                for item in list()? {
                    if self.condition(item)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            "Condition" => self.condition_named(arg.as_str().unwrap_or("")),
            other => Err(other.to_string()),
        }
    }
}

/// Reads a parsed template. `params` are `--param K=V` overrides.
pub fn import(
    template: &Value,
    params: &BTreeMap<String, String>,
    file: &str,
) -> Result<ImportSet> {
    let empty = Map::new();
    let resources = template
        .get("Resources")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::Config("template has no Resources section".to_string()))?;
    let conditions = template
        .get("Conditions")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut set = ImportSet::default();
    let mut resolved_params = BTreeMap::new();
    if let Some(declared) = template.get("Parameters").and_then(Value::as_object) {
        for (name, spec) in declared {
            if let Some(value) = params.get(name) {
                resolved_params.insert(name.clone(), value.clone());
            } else if let Some(default) = spec.get("Default").and_then(text) {
                resolved_params.insert(name.clone(), default);
            }
        }
    }
    for name in params.keys() {
        // Pseudo parameters (AWS::AccountId) are never declared.
        if !resolved_params.contains_key(name) && !name.starts_with("AWS::") {
            set.notes.push(Note::new(
                NoteLevel::Warning,
                format!("--param {name}"),
                "the template declares no such parameter; used for Ref/Fn::Sub anyway",
            ));
        }
        resolved_params
            .entry(name.clone())
            .or_insert_with(|| params[name].clone());
    }
    let mappings = template
        .get("Mappings")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let ctx = Context {
        params: resolved_params,
        resources,
        conditions,
        mappings,
        keep_pseudo: false,
    };
    for (logical_id, resource) in resources {
        let kind = resource.get("Type").and_then(Value::as_str).unwrap_or("");
        if !matches!(kind, "AWS::Logs::MetricFilter" | "AWS::CloudWatch::Alarm") {
            continue;
        }
        let source = format!("{file}#{logical_id}");
        if let Some(condition) = resource.get("Condition").and_then(Value::as_str) {
            match ctx.condition_named(condition) {
                Ok(true) => {}
                Ok(false) => {
                    set.notes.push(Note::new(
                        NoteLevel::Info,
                        logical_id.clone(),
                        format!("condition {condition} is false with these parameters: resource not created, not imported"),
                    ));
                    continue;
                }
                Err(why) => set.notes.push(Note::new(
                    NoteLevel::Warning,
                    logical_id.clone(),
                    format!(
                        "condition {condition} cannot be evaluated ({why}); imported as if true"
                    ),
                )),
            }
        }
        let props = resource
            .get("Properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        if kind == "AWS::Logs::MetricFilter" {
            read_filter(&ctx, logical_id, props, &source, &mut set);
        } else {
            read_alarm(&ctx, logical_id, props, &source, &mut set);
        }
    }
    // A topic without `TopicName` is named by CloudFormation
    // (`STACK-LOGICALID-RANDOM`): the label holds its logical id, which
    // routes nowhere by itself. Said, as the Terraform reader does.
    for (logical_id, resource) in resources {
        let unnamed = resource.get("Type").and_then(Value::as_str) == Some("AWS::SNS::Topic")
            && resource.pointer("/Properties/TopicName").is_none();
        let labelled: Vec<&str> = set
            .alarms
            .iter()
            .filter(|alarm| alarm.sns_topics.iter().any(|topic| topic == logical_id))
            .map(|alarm| alarm.name.as_str())
            .collect();
        if unnamed && !labelled.is_empty() {
            set.notes.push(Note::new(
                NoteLevel::Warning,
                logical_id.clone(),
                format!(
                    "the topic has no TopicName, so CloudFormation generates its name; the sns_topic label of {} \
                     says `{logical_id}`: give the topic a TopicName, or route on that label",
                    labelled.join(", ")
                ),
            ));
        }
    }
    Ok(set)
}

fn field(
    ctx: &Context<'_>,
    props: &Map<String, Value>,
    key: &str,
    subject: &str,
    notes: &mut Vec<Note>,
) -> Option<String> {
    let value = props.get(key).filter(|v| !ctx.absent(v))?;
    match ctx.resolve(value) {
        Ok(v) => Some(v),
        Err(why) => {
            // A mapping without the key: no --param can add one.
            let fix = if why.starts_with("Fn::FindInMap") {
                String::new()
            } else {
                format!("; pass --param {}=VALUE to set it", param_of(&why))
            };
            notes.push(Note::new(
                NoteLevel::Warning,
                subject,
                format!("{key}: cannot resolve {why}{fix}"),
            ));
            None
        }
    }
}

/// The parameter an unresolved `why` (`Ref X`, `${X}`) asks `--param` for.
fn param_of(why: &str) -> &str {
    why.strip_prefix("Ref ")
        .or_else(|| why.strip_prefix("${").and_then(|w| w.strip_suffix('}')))
        .unwrap_or("NAME")
}

/// Like [`field`], for a property that decides what the rule matches or
/// counts: `Err` when it is present but cannot be resolved (reported by
/// `field`), so the caller skips rather than guessing a value.
fn semantic_field(
    ctx: &Context<'_>,
    props: &Map<String, Value>,
    key: &str,
    subject: &str,
    notes: &mut Vec<Note>,
) -> std::result::Result<Option<String>, String> {
    match field(ctx, props, key, subject, notes) {
        None if props.get(key).is_some_and(|v| !ctx.absent(v)) => Err(key.to_string()),
        value => Ok(value),
    }
}

/// The `Dimensions` list of a metric transformation (`name_key` `Key`) or
/// of an alarm (`Name`), resolved. `Err` describes the first key or value
/// that cannot be resolved and the `--param` that would set it.
fn dimensions(
    ctx: &Context<'_>,
    props: &Map<String, Value>,
    name_key: &str,
) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for d in ctx.list(props.get("Dimensions")) {
        let resolve = |key: &str| match d.get(key).filter(|v| !ctx.absent(v)) {
            Some(v) => ctx.resolve(v).map(Some),
            None => Ok(None),
        };
        let unresolved = |what: String, why: String| {
            let param = param_of(&why);
            format!("Dimensions: {what}cannot resolve {why} (pass --param {param}=VALUE to set it)")
        };
        let name = resolve(name_key).map_err(|why| unresolved(String::new(), why))?;
        let value = resolve("Value").map_err(|why| {
            let what = name.as_deref().map_or(String::new(), |n| format!("{n}: "));
            unresolved(what, why)
        })?;
        if let (Some(n), Some(v)) = (name, value) {
            out.push((n, v));
        }
    }
    Ok(out)
}

fn read_filter(
    ctx: &Context<'_>,
    logical_id: &str,
    props: &Map<String, Value>,
    source: &str,
    set: &mut ImportSet,
) {
    let name = field(ctx, props, "FilterName", logical_id, &mut set.notes)
        .unwrap_or_else(|| logical_id.to_string());
    let Some(pattern) = field(ctx, props, "FilterPattern", &name, &mut set.notes) else {
        set.notes.push(Note::new(
            NoteLevel::Skipped,
            name,
            "metric filter without a resolvable FilterPattern",
        ));
        return;
    };
    let log_group = field(ctx, props, "LogGroupName", &name, &mut set.notes);
    let transformations = props
        .get("MetricTransformations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if transformations.is_empty() {
        set.notes.push(Note::new(
            NoteLevel::Skipped,
            name,
            "metric filter without MetricTransformations",
        ));
        return;
    }
    for t in transformations {
        let t = t.as_object().cloned().unwrap_or_default();
        // A metric name or value that cannot be resolved would join the
        // wrong alarm (or none) or count the wrong thing: skip, with the
        // warning `field` gave.
        let semantic = (|| {
            Ok::<_, String>((
                semantic_field(ctx, &t, "MetricName", &name, &mut set.notes)?,
                semantic_field(ctx, &t, "MetricNamespace", &name, &mut set.notes)?,
                semantic_field(ctx, &t, "MetricValue", &name, &mut set.notes)?,
                // The datapoint of a period without matches: without it a
                // `<` heartbeat alarm never fires.
                semantic_field(ctx, &t, "DefaultValue", &name, &mut set.notes)?,
            ))
        })();
        let (metric_name, namespace, value, default) = match semantic {
            Ok((metric_name, namespace, value, default)) => (
                metric_name.unwrap_or_default(),
                namespace.unwrap_or_default(),
                value.unwrap_or_else(|| "1".to_string()),
                default,
            ),
            Err(key) => {
                set.notes.push(Note::new(
                    NoteLevel::Skipped,
                    name.clone(),
                    format!(
                        "{key} cannot be resolved, so this metric transformation is not imported"
                    ),
                ));
                continue;
            }
        };
        let default = match default.map(|d| d.trim().parse::<f64>().map_err(|_| d)) {
            None => None,
            Some(Ok(default)) => Some(default),
            Some(Err(text)) => {
                set.notes.push(Note::new(
                    NoteLevel::Skipped,
                    name.clone(),
                    format!(
                        "DefaultValue {text:?} is not a number, so this metric transformation is not imported"
                    ),
                ));
                continue;
            }
        };
        let dimensions = match dimensions(ctx, &t, "Key") {
            Ok(dimensions) => dimensions,
            Err(why) => {
                // Dropping the dimension would count every value together
                // (and make a pinning alarm look foreign): skip instead.
                set.notes.push(Note::new(
                    NoteLevel::Skipped,
                    name.clone(),
                    format!(
                        "metric {namespace}/{metric_name}: {why}; without it the rule would count \
                         every value of the dimension together, so this metric filter is not imported"
                    ),
                ));
                continue;
            }
        };
        let unit = t
            .get("Unit")
            .and_then(|v| ctx.resolve(v).ok())
            .filter(|u| u != "None");
        set.filters.push(ImportedFilter {
            name: name.clone(),
            pattern: pattern.clone(),
            log_group: log_group.clone(),
            metric_name,
            namespace,
            value,
            default,
            dimensions,
            unit,
            source: source.to_string(),
        });
    }
}

fn read_alarm(
    ctx: &Context<'_>,
    logical_id: &str,
    props: &Map<String, Value>,
    source: &str,
    set: &mut ImportSet,
) {
    let notes = &mut set.notes;
    let name =
        field(ctx, props, "AlarmName", logical_id, notes).unwrap_or_else(|| logical_id.to_string());
    let metric_name = semantic_field(ctx, props, "MetricName", &name, notes);
    let namespace = semantic_field(ctx, props, "Namespace", &name, notes);
    let unresolved_metric = [&metric_name, &namespace]
        .into_iter()
        .find_map(|r| r.as_ref().err().cloned());
    // How many periods, how many must breach, what an empty period counts
    // as: a default in their place is another alarm (1 of 1 where the
    // template says 3 of 5), so one that cannot be resolved skips it.
    let periods = semantic_field(ctx, props, "EvaluationPeriods", &name, notes);
    let datapoints = semantic_field(ctx, props, "DatapointsToAlarm", &name, notes);
    let treat_missing = semantic_field(ctx, props, "TreatMissingData", &name, notes);
    let unresolved_evaluation = [&periods, &datapoints, &treat_missing]
        .into_iter()
        .find_map(|r| r.as_ref().err().cloned());
    let mut alarm = ImportedAlarm {
        description: field(ctx, props, "AlarmDescription", &name, notes).unwrap_or_default(),
        metric_name: metric_name.ok().flatten().unwrap_or_default(),
        namespace: namespace.ok().flatten().unwrap_or_default(),
        statistic: field(ctx, props, "Statistic", &name, notes),
        extended_statistic: field(ctx, props, "ExtendedStatistic", &name, notes),
        period_s: field(ctx, props, "Period", &name, notes).and_then(|p| p.trim().parse().ok()),
        evaluation_periods: periods.ok().flatten().and_then(|p| p.trim().parse().ok()),
        datapoints: datapoints
            .ok()
            .flatten()
            .and_then(|p| p.trim().parse().ok()),
        comparison: field(ctx, props, "ComparisonOperator", &name, notes).unwrap_or_default(),
        threshold: field(ctx, props, "Threshold", &name, notes).and_then(|p| p.trim().parse().ok()),
        treat_missing: treat_missing.ok().flatten(),
        actions_enabled: field(ctx, props, "ActionsEnabled", &name, notes)
            .is_none_or(|v| v != "false"),
        ok_or_insufficient_actions: ["OKActions", "InsufficientDataActions"]
            .iter()
            .any(|k| !ctx.list(props.get(*k)).is_empty()),
        source: source.to_string(),
        name: name.clone(),
        ..ImportedAlarm::default()
    };
    if let Some(key) = unresolved_metric {
        alarm.unsupported = Some(format!(
            "{key} cannot be resolved, so the metric the alarm watches is unknown; not imported"
        ));
    } else if let Some(key) = unresolved_evaluation {
        alarm.unsupported = Some(format!(
            "{key} cannot be resolved, and a default would evaluate another alarm; not imported"
        ));
    }
    match dimensions(ctx, props, "Name") {
        Ok(dimensions) => alarm.dimensions = dimensions,
        // Without the pinned value the rule would alert for every value of
        // the dimension (every user, not the one watched): a broader rule
        // than the alarm, so the alarm is skipped, with the fix.
        Err(why) if alarm.unsupported.is_none() => {
            alarm.unsupported = Some(format!(
                "{why}; without it the rule would alert for every value of the dimension \
                 instead of the one series the alarm watches, so the alarm is not imported"
            ))
        }
        Err(_) => {}
    }
    // An SNS ARN built with `${AWS::Region}` / `${AWS::AccountId}` still
    // ends in its topic name: pseudo parameters need no --param here.
    let action_ctx = ctx.keeping_pseudo();
    for action in ctx.list(props.get("AlarmActions")) {
        let is_topic_ref = action
            .get("Ref")
            .and_then(Value::as_str)
            .is_some_and(|r| ctx.topic_name(r).is_some());
        match action_ctx.resolve(action) {
            Ok(resolved) if is_topic_ref => alarm.sns_topics.push(resolved),
            Ok(resolved) => match sns_topic_from_arn(&resolved) {
                Some(topic) => alarm.sns_topics.push(topic),
                None if !resolved.starts_with("arn:") && !resolved.is_empty() => {
                    // A Ref to a topic parameter holding a bare name, or a
                    // GetAtt of a topic.
                    alarm.sns_topics.push(resolved)
                }
                None => alarm.other_actions.push(resolved),
            },
            Err(why) => notes.push(Note::new(
                NoteLevel::Warning,
                name.clone(),
                format!("AlarmActions: cannot resolve {why}; no sns_topic label"),
            )),
        }
    }
    // The metrics a metric-math alarm reads: their filters are watched by
    // it, so they must not become `>= 1` rules of their own.
    for query in ctx.list(props.get("Metrics")) {
        let metric = query.get("MetricStat").and_then(|s| s.get("Metric"));
        let part = |key: &str| {
            metric
                .and_then(|m| m.get(key))
                .and_then(|v| ctx.resolve(v).ok())
        };
        if let (Some(namespace), Some(metric_name)) = (part("Namespace"), part("MetricName")) {
            alarm.math_metrics.push((namespace, metric_name));
        }
    }
    if alarm.unsupported.is_some() {
        // Already not carried over (an unresolvable dimension).
    } else if props
        .get("ThresholdMetricId")
        .is_some_and(|v| !ctx.absent(v))
    {
        // An anomaly detection alarm has `Metrics` too (the band's
        // expression): it is named for what it is first.
        alarm.unsupported =
            Some("anomaly detection alarm (ThresholdMetricId): not carried over".to_string());
    } else if props.get("Metrics").is_some_and(|v| !ctx.absent(v)) {
        alarm.unsupported = Some("metric math alarm (Metrics): not carried over".to_string());
    }
    set.alarms.push(alarm);
}
