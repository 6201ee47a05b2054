//! Terraform HCL (`.tf`) → [`ImportSet`], without running Terraform.
//!
//! The files of one module (a directory's `*.tf`, or one file) are parsed
//! with `hcl-edit`, which keeps byte spans, so every problem is reported as
//! `file:line:column`. `aws_cloudwatch_log_metric_filter` and
//! `aws_cloudwatch_metric_alarm` resources are then evaluated statically
//! into the same attribute values `terraform show -json` would print, and
//! handed to the Terraform JSON reader ([`super::terraform`]), so both forms
//! import identically.
//!
//! What is evaluated:
//!
//! - literals, lists, maps, string templates and heredocs (`"${var.p}-x"`);
//! - `var.NAME`: `--var NAME=VALUE`, then `terraform.tfvars` /
//!   `*.auto.tfvars` in the module directory, then the variable's `default`;
//! - `local.NAME` (cycles are reported);
//! - references to other resources of the module:
//!   `aws_cloudwatch_log_metric_filter.x.metric_transformation[0].name`
//!   (nested blocks read as lists, as in Terraform), and an SNS topic's
//!   `arn` / `id`, built from its `name`;
//! - `cond ? a : b` when `cond` is known; `count` of 0 or 1.
//!
//! Child `module` blocks are not followed (an info note says so): import
//! each module directory on its own.
//!
//! Anything else (functions, data sources, module outputs, `for_each`,
//! `count` above 1, splats, arithmetic) cannot be known without Terraform.
//! A resource whose filter pattern, metric or alarm settings need such an
//! expression is skipped with a note `file:line:column: <why>`; an alarm
//! action or a description that needs one is dropped with a warning. A plan
//! exported with `terraform show -json` has every value resolved.

use std::cell::RefCell;
use std::collections::BTreeMap;

use hcl_edit::expr::{Expression, ObjectKey, TraversalOperator};
use hcl_edit::structure::{Block, Body};
use hcl_edit::template::{Element, Template};
use hcl_edit::Span;
use serde_json::{json, Map, Number, Value};

use super::{terraform, ImportSet, Note, NoteLevel};
use crate::error::{Error, Result};

/// One file of the module: its display name and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

/// The resource types read from HCL.
const FILTER: &str = "aws_cloudwatch_log_metric_filter";
const ALARM: &str = "aws_cloudwatch_metric_alarm";

/// Attributes whose value decides what the rule does: when one of them
/// cannot be resolved, the resource is skipped rather than guessed.
const FILTER_REQUIRED: &[&str] = &["pattern", "metric_transformation"];
const ALARM_REQUIRED: &[&str] = &[
    "metric_name",
    "namespace",
    "statistic",
    "extended_statistic",
    "period",
    "evaluation_periods",
    "datapoints_to_alarm",
    "comparison_operator",
    "threshold",
    "treat_missing_data",
    "dimensions",
    "metric_query",
    "actions_enabled",
];
/// The attributes the importer reads; others (`tags`, `lifecycle`, ...)
/// are not evaluated, so an unresolvable `tags = merge(...)` is no concern.
const FILTER_USED: &[&str] = &["name", "pattern", "log_group_name", "metric_transformation"];
const ALARM_USED: &[&str] = &[
    "alarm_name",
    "alarm_description",
    "alarm_actions",
    "ok_actions",
    "insufficient_data_actions",
    "threshold_metric_id",
];

/// List attributes evaluated element by element, so one unknown action
/// does not lose the others.
const ACTION_LISTS: &[&str] = &["alarm_actions", "ok_actions", "insufficient_data_actions"];

/// An expression that cannot be resolved statically, and where it is.
#[derive(Debug, Clone)]
struct Unresolved {
    file: usize,
    offset: usize,
    reason: String,
}

type Eval<T> = std::result::Result<T, Unresolved>;

struct Module<'a> {
    files: &'a [SourceFile],
    bodies: Vec<Body>,
    /// `--var` and tfvars values, already evaluated.
    var_values: BTreeMap<String, Value>,
    /// variable name → (file, default expression).
    var_defaults: BTreeMap<String, (usize, Option<Expression>)>,
    /// local name → (file, expression).
    locals: BTreeMap<String, (usize, Expression)>,
    /// `type.name` → (file, index of the block in that file's body).
    resources: BTreeMap<String, (usize, usize)>,
    /// Locals being evaluated, to report cycles instead of recursing.
    in_progress: RefCell<Vec<String>>,
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let prefix = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = prefix.matches('\n').count() + 1;
    let column = prefix
        .rsplit('\n')
        .next()
        .map_or(1, |l| l.chars().count() + 1);
    (line, column)
}

impl Module<'_> {
    fn location(&self, file: usize, offset: usize) -> String {
        let f = &self.files[file];
        let (line, column) = line_col(&f.text, offset);
        format!("{}:{line}:{column}", f.name)
    }

    fn describe(&self, u: &Unresolved) -> String {
        format!("{}: {}", self.location(u.file, u.offset), u.reason)
    }

    fn unresolved(file: usize, expr: &Expression, reason: impl Into<String>) -> Unresolved {
        Unresolved {
            file,
            offset: expr.span().map_or(0, |s| s.start),
            reason: reason.into(),
        }
    }

    fn block(&self, file: usize, index: usize) -> Option<&Block> {
        self.bodies.get(file)?.get(index)?.as_block()
    }

    fn eval(&self, file: usize, expr: &Expression) -> Eval<Value> {
        match expr {
            Expression::Null(_) => Ok(Value::Null),
            Expression::Bool(b) => Ok(Value::Bool(*b.value())),
            Expression::Number(n) => Ok(number(n.value())),
            Expression::String(s) => Ok(Value::String(s.value().to_string())),
            Expression::Array(items) => items
                .iter()
                .map(|e| self.eval(file, e))
                .collect::<Eval<Vec<_>>>()
                .map(Value::Array),
            Expression::Object(object) => {
                let mut out = Map::new();
                for (key, value) in object {
                    let key = match key {
                        ObjectKey::Ident(ident) => ident.as_str().to_string(),
                        ObjectKey::Expression(e) => match self.eval(file, e)? {
                            Value::String(s) => s,
                            other => other.to_string(),
                        },
                    };
                    out.insert(key, self.eval(file, value.expr())?);
                }
                Ok(Value::Object(out))
            }
            Expression::StringTemplate(t) => self.template(file, t).map(Value::String),
            Expression::HeredocTemplate(h) => {
                // The heredoc's closing newline is layout, not content.
                let mut text = self.template(file, &h.template)?;
                if text.ends_with('\n') {
                    text.pop();
                }
                Ok(Value::String(text))
            }
            Expression::Parenthesis(p) => self.eval(file, p.inner()),
            Expression::Conditional(c) => match self.eval(file, &c.cond_expr)? {
                Value::Bool(true) => self.eval(file, &c.true_expr),
                Value::Bool(false) => self.eval(file, &c.false_expr),
                _ => Err(Self::unresolved(
                    file,
                    &c.cond_expr,
                    "the condition is not a known boolean",
                )),
            },
            Expression::Traversal(t) => self.traversal(file, expr, &t.expr, &t.operators),
            Expression::Variable(v) => Err(Self::unresolved(
                file,
                expr,
                format!("`{}` alone is not a value that can be known without Terraform", v.as_str()),
            )),
            Expression::FuncCall(f) => Err(Self::unresolved(
                file,
                expr,
                format!(
                    "function call `{}(...)` is not evaluated statically (export a plan with `terraform show -json`)",
                    f.name.name.as_str()
                ),
            )),
            Expression::UnaryOp(_) | Expression::BinaryOp(_) => Err(Self::unresolved(
                file,
                expr,
                "operators are not evaluated statically (export a plan with `terraform show -json`)",
            )),
            Expression::ForExpr(_) => Err(Self::unresolved(
                file,
                expr,
                "`for` expressions are not evaluated statically (export a plan with `terraform show -json`)",
            )),
        }
    }

    fn template(&self, file: usize, template: &Template) -> Eval<String> {
        let mut out = String::new();
        for element in template.iter() {
            match element {
                Element::Literal(text) => out.push_str(text.value()),
                Element::Interpolation(i) => match self.eval(file, &i.expr)? {
                    Value::String(s) => out.push_str(&s),
                    Value::Number(n) => out.push_str(&n.to_string()),
                    Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                    _ => {
                        return Err(Self::unresolved(
                            file,
                            &i.expr,
                            "only strings, numbers and booleans can be interpolated",
                        ))
                    }
                },
                Element::Directive(_) => {
                    return Err(Unresolved {
                        file,
                        offset: template.span().map_or(0, |s| s.start),
                        reason:
                            "template directives (`%{if}`, `%{for}`) are not evaluated statically"
                                .to_string(),
                    })
                }
            }
        }
        Ok(out)
    }

    fn traversal(
        &self,
        file: usize,
        whole: &Expression,
        root: &Expression,
        operators: &[hcl_edit::Decorated<TraversalOperator>],
    ) -> Eval<Value> {
        let attr = |i: usize| match operators.get(i).map(|o| o.value()) {
            Some(TraversalOperator::GetAttr(name)) => Some(name.as_str().to_string()),
            _ => None,
        };
        let (base, rest) = match root {
            Expression::Variable(v) => match v.as_str() {
                "var" => {
                    let name = attr(0).ok_or_else(|| {
                        Self::unresolved(file, whole, "expected `var.NAME`")
                    })?;
                    (self.variable(file, whole, &name)?, &operators[1..])
                }
                "local" => {
                    let name = attr(0).ok_or_else(|| {
                        Self::unresolved(file, whole, "expected `local.NAME`")
                    })?;
                    (self.local(file, whole, &name)?, &operators[1..])
                }
                kind @ ("data" | "module" | "each" | "count" | "path" | "terraform" | "self") => {
                    return Err(Self::unresolved(
                        file,
                        whole,
                        format!("`{kind}.` values are only known to Terraform (export a plan with `terraform show -json`)"),
                    ))
                }
                kind => {
                    let name = attr(0).ok_or_else(|| {
                        Self::unresolved(file, whole, format!("`{kind}` is not a known value"))
                    })?;
                    let address = format!("{kind}.{name}");
                    let mut rest = &operators[1..];
                    // `aws_x.y[0]` on a resource with `count = 1`.
                    if let Some(TraversalOperator::Index(Expression::Number(n))) =
                        rest.first().map(|o| o.value())
                    {
                        if n.value().as_u64() == Some(0) {
                            rest = &rest[1..];
                        }
                    }
                    let attribute = match rest.first().map(|o| o.value()) {
                        Some(TraversalOperator::GetAttr(a)) => a.as_str().to_string(),
                        _ => {
                            return Err(Self::unresolved(
                                file,
                                whole,
                                format!("expected an attribute of `{address}`"),
                            ))
                        }
                    };
                    (
                        self.resource_attribute(file, whole, &address, &attribute)?,
                        &rest[1..],
                    )
                }
            },
            other => (self.eval(file, other)?, operators),
        };
        let mut value = base;
        for op in rest {
            value = match op.value() {
                TraversalOperator::GetAttr(name) => {
                    value.get(name.as_str()).cloned().ok_or_else(|| {
                        Self::unresolved(file, whole, format!("no attribute `{}`", name.as_str()))
                    })?
                }
                TraversalOperator::LegacyIndex(i) => index(&value, &json!(*i.value()))
                    .ok_or_else(|| Self::unresolved(file, whole, "index out of range"))?,
                TraversalOperator::Index(e) => {
                    let key = self.eval(file, e)?;
                    index(&value, &key)
                        .ok_or_else(|| Self::unresolved(file, whole, "index out of range"))?
                }
                TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_) => {
                    return Err(Self::unresolved(
                        file,
                        whole,
                        "splat expressions are not evaluated statically",
                    ))
                }
            };
        }
        Ok(value)
    }

    fn variable(&self, file: usize, whole: &Expression, name: &str) -> Eval<Value> {
        if let Some(value) = self.var_values.get(name) {
            return Ok(value.clone());
        }
        match self.var_defaults.get(name) {
            Some((def_file, Some(default))) => self.eval(*def_file, default),
            Some((_, None)) => Err(Self::unresolved(
                file,
                whole,
                format!("variable `{name}` has no default: pass --var {name}=VALUE"),
            )),
            None => Err(Self::unresolved(
                file,
                whole,
                format!("variable `{name}` is not declared in the module"),
            )),
        }
    }

    fn local(&self, file: usize, whole: &Expression, name: &str) -> Eval<Value> {
        let Some((local_file, expr)) = self.locals.get(name) else {
            return Err(Self::unresolved(
                file,
                whole,
                format!("local `{name}` is not declared in the module"),
            ));
        };
        if self.in_progress.borrow().iter().any(|n| n == name) {
            return Err(Self::unresolved(
                file,
                whole,
                format!("local `{name}` refers to itself"),
            ));
        }
        self.in_progress.borrow_mut().push(name.to_string());
        let value = self.eval(*local_file, expr);
        self.in_progress.borrow_mut().pop();
        value
    }

    fn resource_attribute(
        &self,
        file: usize,
        whole: &Expression,
        address: &str,
        attribute: &str,
    ) -> Eval<Value> {
        let Some(&(res_file, index)) = self.resources.get(address) else {
            return Err(Self::unresolved(
                file,
                whole,
                format!("`{address}` is not a resource of this module"),
            ));
        };
        let Some(block) = self.block(res_file, index) else {
            return Err(Self::unresolved(
                file,
                whole,
                format!("`{address}` not found"),
            ));
        };
        if address.starts_with("aws_sns_topic.") && matches!(attribute, "arn" | "id") {
            let name = match block.body.get_attribute("name") {
                Some(a) => self.eval(res_file, &a.value)?,
                None => {
                    return Err(Self::unresolved(
                        file,
                        whole,
                        format!("`{address}` has no `name`: Terraform generates it"),
                    ))
                }
            };
            let name = name.as_str().unwrap_or_default().to_string();
            return Ok(Value::String(format!("arn:aws:sns:::{name}")));
        }
        if let Some(a) = block.body.get_attribute(attribute) {
            return self.eval(res_file, &a.value);
        }
        let nested: Vec<&Block> = block.body.get_blocks(attribute).collect();
        if !nested.is_empty() {
            return nested
                .iter()
                .map(|b| self.body_value(res_file, &b.body))
                .collect::<Eval<Vec<_>>>()
                .map(Value::Array);
        }
        Err(Self::unresolved(
            file,
            whole,
            format!("`{address}.{attribute}` is not set in the configuration (computed by AWS)"),
        ))
    }

    /// A nested block's attributes as an object (all must resolve).
    fn body_value(&self, file: usize, body: &Body) -> Eval<Value> {
        let mut out = Map::new();
        for attr in body.attributes() {
            out.insert(attr.key.as_str().to_string(), self.eval(file, &attr.value)?);
        }
        for block in body.blocks() {
            let entry = out
                .entry(block.ident.as_str().to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = entry {
                items.push(self.body_value(file, &block.body)?);
            }
        }
        Ok(Value::Object(out))
    }

    /// A resource's values, with the attributes that did not resolve.
    fn resource_values(
        &self,
        file: usize,
        body: &Body,
        used: &dyn Fn(&str) -> bool,
    ) -> (Map<String, Value>, Vec<(String, Unresolved)>) {
        let mut values = Map::new();
        let mut problems = Vec::new();
        for attr in body.attributes() {
            let key = attr.key.as_str();
            if !used(key) {
                continue;
            }
            if ACTION_LISTS.contains(&key) {
                if let Expression::Array(items) = &attr.value {
                    let mut actions = Vec::new();
                    for item in items.iter() {
                        match self.eval(file, item) {
                            Ok(v) => actions.push(v),
                            Err(u) => problems.push((key.to_string(), u)),
                        }
                    }
                    values.insert(key.to_string(), Value::Array(actions));
                    continue;
                }
            }
            match self.eval(file, &attr.value) {
                Ok(v) => {
                    values.insert(key.to_string(), v);
                }
                Err(u) => problems.push((key.to_string(), u)),
            }
        }
        for block in body.blocks() {
            let key = block.ident.as_str().to_string();
            if !used(&key) {
                continue;
            }
            match self.body_value(file, &block.body) {
                Ok(v) => {
                    if let Value::Array(items) = values
                        .entry(key)
                        .or_insert_with(|| Value::Array(Vec::new()))
                    {
                        items.push(v);
                    }
                }
                Err(u) => problems.push((key, u)),
            }
        }
        (values, problems)
    }
}

fn number(n: &hcl_edit::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::Number(i.into())
    } else if let Some(u) = n.as_u64() {
        Value::Number(u.into())
    } else {
        n.as_f64()
            .and_then(Number::from_f64)
            .map_or(Value::Null, Value::Number)
    }
}

fn index(value: &Value, key: &Value) -> Option<Value> {
    match (value, key) {
        (Value::Array(items), Value::Number(n)) => {
            items.get(usize::try_from(n.as_u64()?).ok()?).cloned()
        }
        (Value::Object(map), Value::String(k)) => map.get(k).cloned(),
        _ => None,
    }
}

fn parse_error(file: &SourceFile, e: &hcl_edit::parser::Error) -> Error {
    let loc = e.location();
    Error::Config(format!(
        "{}:{}:{}: invalid HCL: {}",
        file.name,
        loc.line(),
        loc.column(),
        e.message()
    ))
}

/// A `--var` value: JSON when it parses as a number or boolean, else text.
pub fn var_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(text.to_string()),
    }
}

/// Reads the `.tf` files of one module. `tfvars` are `terraform.tfvars` /
/// `*.auto.tfvars` files (literal values only); `vars` are `--var`
/// overrides, which win over them.
pub fn import(
    files: &[SourceFile],
    tfvars: &[SourceFile],
    vars: &BTreeMap<String, Value>,
) -> Result<ImportSet> {
    let mut bodies = Vec::with_capacity(files.len());
    for file in files {
        bodies.push(hcl_edit::parser::parse_body(&file.text).map_err(|e| parse_error(file, &e))?);
    }
    let mut module = Module {
        files,
        bodies: Vec::new(),
        var_values: BTreeMap::new(),
        var_defaults: BTreeMap::new(),
        locals: BTreeMap::new(),
        resources: BTreeMap::new(),
        in_progress: RefCell::new(Vec::new()),
    };
    let mut set = ImportSet::default();
    for (file, body) in bodies.iter().enumerate() {
        for (index, structure) in body.iter().enumerate() {
            let Some(block) = structure.as_block() else {
                continue;
            };
            let labels: Vec<&str> = block.labels.iter().map(|l| l.as_str()).collect();
            match (block.ident.as_str(), labels.as_slice()) {
                ("variable", [name]) => {
                    let default = block.body.get_attribute("default").map(|a| a.value.clone());
                    module
                        .var_defaults
                        .insert((*name).to_string(), (file, default));
                }
                ("locals", []) => {
                    for attr in block.body.attributes() {
                        module
                            .locals
                            .insert(attr.key.as_str().to_string(), (file, attr.value.clone()));
                    }
                }
                ("module", [name]) => {
                    let at = line_col(&files[file].text, block.span().map_or(0, |s| s.start));
                    set.notes.push(Note::new(
                        NoteLevel::Info,
                        format!("module.{name}"),
                        format!(
                            "{}:{}:{}: child modules are not followed; import the module's directory on its own",
                            files[file].name, at.0, at.1
                        ),
                    ));
                }
                ("resource", [kind, name]) => {
                    module
                        .resources
                        .insert(format!("{kind}.{name}"), (file, index));
                }
                _ => {}
            }
        }
    }
    module.bodies = bodies;

    // tfvars: literal values, evaluated in an empty module.
    for file in tfvars {
        let body = hcl_edit::parser::parse_body(&file.text).map_err(|e| parse_error(file, &e))?;
        let scratch = Module {
            files: std::slice::from_ref(file),
            bodies: Vec::new(),
            var_values: BTreeMap::new(),
            var_defaults: BTreeMap::new(),
            locals: BTreeMap::new(),
            resources: BTreeMap::new(),
            in_progress: RefCell::new(Vec::new()),
        };
        for attr in body.attributes() {
            match scratch.eval(0, &attr.value) {
                Ok(v) => {
                    module.var_values.insert(attr.key.as_str().to_string(), v);
                }
                Err(u) => set.notes.push(Note::new(
                    NoteLevel::Warning,
                    attr.key.as_str(),
                    format!("{} (value ignored)", scratch.describe(&u)),
                )),
            }
        }
    }
    for (name, value) in vars {
        module.var_values.insert(name.clone(), value.clone());
    }

    // Resources, by address, grouped per file for the JSON reader.
    let mut per_file: Vec<Vec<Value>> = vec![Vec::new(); files.len()];
    for (address, &(file, index)) in &module.resources {
        let Some(block) = module.block(file, index) else {
            continue;
        };
        let kind = address.split('.').next().unwrap_or_default();
        if kind != FILTER && kind != ALARM {
            continue;
        }
        let at = module.location(file, block.span().map_or(0, |s| s.start));
        if let Some(why) = expansion_skip(&module, file, &block.body) {
            set.notes.push(Note::new(
                NoteLevel::Skipped,
                address.clone(),
                format!("{at}: {why}"),
            ));
            continue;
        }
        let (required, used) = if kind == FILTER {
            (FILTER_REQUIRED, FILTER_USED)
        } else {
            (ALARM_REQUIRED, ALARM_USED)
        };
        let (values, problems) = module.resource_values(file, &block.body, &|key: &str| {
            required.contains(&key) || used.contains(&key)
        });
        if let Some((attr, u)) = problems
            .iter()
            .find(|(a, _)| required.contains(&a.as_str()))
        {
            let why = format!(
                "`{attr}` cannot be resolved statically: {}",
                module.describe(u)
            );
            // A skipped alarm whose metric is known still watches that
            // metric: kept as an unsupported alarm, so that `convert` does
            // not turn its metric filter into a `>= 1` rule of its own.
            let metric = |key: &str| values.get(key).and_then(super::text);
            let math = values
                .get("metric_query")
                .map(super::math_metrics)
                .unwrap_or_default();
            if kind == ALARM
                && ((metric("metric_name").is_some() && metric("namespace").is_some())
                    || !math.is_empty())
            {
                set.alarms.push(super::ImportedAlarm {
                    name: address.clone(),
                    metric_name: metric("metric_name").unwrap_or_default(),
                    namespace: metric("namespace").unwrap_or_default(),
                    math_metrics: math,
                    unsupported: Some(why),
                    source: format!("{}#{address}", files[file].name),
                    ..super::ImportedAlarm::default()
                });
                continue;
            }
            set.notes
                .push(Note::new(NoteLevel::Skipped, address.clone(), why));
            continue;
        }
        for (attr, u) in &problems {
            set.notes.push(Note::new(
                NoteLevel::Warning,
                address.clone(),
                format!(
                    "`{attr}` cannot be resolved statically, left out: {}",
                    module.describe(u)
                ),
            ));
        }
        per_file[file].push(json!({
            "address": address,
            "mode": "managed",
            "type": kind,
            "name": address.split('.').nth(1).unwrap_or_default(),
            "values": Value::Object(values),
        }));
    }
    let mut any = false;
    for (file, resources) in per_file.into_iter().enumerate() {
        if resources.is_empty() {
            continue;
        }
        any = true;
        let doc = json!({"planned_values": {"root_module": {"resources": resources}}});
        let part = terraform::import(&doc, &files[file].name)?;
        set.filters.extend(part.filters);
        set.alarms.extend(part.alarms);
        set.notes.extend(part.notes);
    }
    if !any && set.notes.is_empty() {
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        set.notes.push(Note::new(
            NoteLevel::Info,
            names.join(", "),
            "no aws_cloudwatch_log_metric_filter or aws_cloudwatch_metric_alarm resources found",
        ));
    }
    Ok(set)
}

/// Why a resource with `count` / `for_each` is not imported, if it is not.
fn expansion_skip(module: &Module<'_>, file: usize, body: &Body) -> Option<String> {
    if body.get_attribute("for_each").is_some() {
        return Some(
            "`for_each` instances are not expanded statically (export a plan with `terraform show -json`)"
                .to_string(),
        );
    }
    let count = body.get_attribute("count")?;
    match module.eval(file, &count.value) {
        Ok(Value::Number(n)) if n.as_u64() == Some(0) => {
            Some("`count` is 0: the resource is not created".to_string())
        }
        Ok(Value::Number(n)) if n.as_u64() == Some(1) => None,
        Ok(Value::Bool(false)) => Some("`count` is 0: the resource is not created".to_string()),
        Ok(Value::Bool(true)) => None,
        Ok(other) => Some(format!(
            "`count = {other}` instances are not expanded statically (export a plan with `terraform show -json`)"
        )),
        Err(u) => Some(format!("`count` cannot be resolved statically: {}", module.describe(&u))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> ImportSet {
        let files = [SourceFile {
            name: "main.tf".into(),
            text: text.into(),
        }];
        import(&files, &[], &BTreeMap::new()).unwrap()
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn locals_cycle_is_reported_not_recursed() {
        let set = one(r#"
locals {
  a = local.b
  b = local.a
}
resource "aws_cloudwatch_log_metric_filter" "f" {
  name           = "f"
  log_group_name = "g"
  pattern        = local.a
  metric_transformation {
    name      = "M"
    namespace = "N"
    value     = "1"
  }
}
"#);
        assert!(set.filters.is_empty());
        let note = &set.notes[0];
        assert_eq!(note.level, NoteLevel::Skipped);
        assert!(note.message.contains("refers to itself"), "{note:?}");
        assert!(note.message.contains("main.tf:"), "{note:?}");
    }

    #[test]
    fn heredoc_pattern_loses_only_its_closing_newline() {
        let set = one(
            "resource \"aws_cloudwatch_log_metric_filter\" \"f\" {\n  name = \"f\"\n  log_group_name = \"g\"\n  pattern = <<EOT\n{ $.eventName = \"x\" }\nEOT\n  metric_transformation {\n    name = \"M\"\n    namespace = \"N\"\n    value = \"1\"\n  }\n}\n",
        );
        assert_eq!(set.filters[0].pattern, "{ $.eventName = \"x\" }");
    }

    #[test]
    fn invalid_hcl_is_a_user_error_with_position() {
        let files = [SourceFile {
            name: "bad.tf".into(),
            text: "resource \"a\" \"b\" {\n  x = \n}\n".into(),
        }];
        let e = import(&files, &[], &BTreeMap::new()).unwrap_err();
        assert_eq!(e.class(), crate::error::ErrorClass::User);
        assert!(e.to_string().contains("bad.tf:"), "{e}");
    }
}
