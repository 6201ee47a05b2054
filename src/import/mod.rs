//! `trailwatch import`: turns existing CloudWatch Logs metric filters and
//! CloudWatch alarms into trailwatch rule files.
//!
//! Each front end ([`cloudformation`], [`cli_json`], [`terraform`] for
//! Terraform JSON, [`hcl`] for Terraform `.tf` files) reads
//! its format into the common model here: [`ImportedFilter`]s and
//! [`ImportedAlarm`]s plus the notes it could not resolve. [`convert`] then
//! joins filters and alarms through the metric namespace and name, and
//! renders one rule YAML file per (filter, alarm) pair. Several filters
//! publishing one alarm's metric are one series in CloudWatch: their JSON
//! patterns are merged into one rule (`{ (A) || (B) }`), or, when they
//! cannot be, kept apart with a warning that the counts are split.
//! Everything that cannot be carried over goes into the [`Report`] with its
//! reason.
//!
//! Mapping (see the README section "Migrating from CloudWatch alarms" for the full table):
//!
//! | CloudWatch | rule |
//! |---|---|
//! | FilterPattern | `filter` (verbatim) |
//! | LogGroupName | not enforced; a comment and a note suggest `where: [{field: "@log_group", ...}]` |
//! | MetricValue / DefaultValue | `metric: {value, default}` |
//! | Dimensions | `group_by` (`$.a.b` → `a.b`, `$name` → its flow-log field, vpcflow only); a value the alarm pins → `where: {field, equals}` |
//! | Statistic | `aggregate` |
//! | Period | `window`, plus `slide: 1m` when 60 s divides it |
//! | EvaluationPeriods / DatapointsToAlarm / TreatMissingData | `evaluation` |
//! | ComparisonOperator + Threshold | `threshold` |
//! | AlarmName / AlarmDescription | `title` / `description` |
//! | AlarmActions (SNS) | `labels.sns_topic` |

pub mod cli_json;
pub mod cloudformation;
pub mod hcl;
pub mod terraform;

mod render;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::rules::model::KindSpec;

pub use render::{render_dry_run, render_report_markdown, render_summary};

/// One metric transformation of a metric filter (one filter with several
/// transformations yields several of these).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportedFilter {
    /// Filter name (or the logical id / resource address when unnamed).
    pub name: String,
    /// The filter pattern, verbatim.
    pub pattern: String,
    pub log_group: Option<String>,
    pub metric_name: String,
    pub namespace: String,
    /// `1`, a literal, `$.selector` or `$name`, as written.
    pub value: String,
    pub default: Option<f64>,
    /// Dimension name → value (`$.field` or `$name`), in source order.
    pub dimensions: Vec<(String, String)>,
    pub unit: Option<String>,
    /// Where it came from, e.g. `template.yaml#Resources.S3Filter`.
    pub source: String,
}

/// One metric alarm.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportedAlarm {
    pub name: String,
    pub description: String,
    pub metric_name: String,
    pub namespace: String,
    /// `Sum`, `Average`, `SampleCount`, `Minimum`, `Maximum`.
    pub statistic: Option<String>,
    /// Percentile statistics (`p99`, `tm90`): not carried over.
    pub extended_statistic: Option<String>,
    pub period_s: Option<u64>,
    pub evaluation_periods: Option<u32>,
    pub datapoints: Option<u32>,
    pub comparison: String,
    pub threshold: Option<f64>,
    /// `missing`, `notBreaching`, `breaching`, `ignore`.
    pub treat_missing: Option<String>,
    /// SNS topic names from AlarmActions.
    pub sns_topics: Vec<String>,
    /// AlarmActions that are not SNS topics (Auto Scaling, EC2, SSM, ...).
    pub other_actions: Vec<String>,
    /// Whether OKActions / InsufficientDataActions were set.
    pub ok_or_insufficient_actions: bool,
    pub actions_enabled: bool,
    /// Dimensions the alarm selects (a single series of the metric).
    pub dimensions: Vec<(String, String)>,
    /// Metric math, anomaly detection or another shape that cannot be
    /// carried over, with the reason.
    pub unsupported: Option<String>,
    /// (namespace, metric name) of the metrics a metric-math or
    /// anomaly-detection alarm reads (`Metrics[].MetricStat.Metric`): the
    /// alarm watches them although its own `MetricName` is empty.
    pub math_metrics: Vec<(String, String)>,
    pub source: String,
}

/// What a front end read: filters, alarms and the notes it raised.
#[derive(Debug, Clone, Default)]
pub struct ImportSet {
    pub filters: Vec<ImportedFilter>,
    pub alarms: Vec<ImportedAlarm>,
    pub notes: Vec<Note>,
}

/// How serious a report note is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoteLevel {
    /// Kept, with a remark.
    Info,
    /// Kept, but behaviour may differ from what the author intended.
    Warning,
    /// Not carried over.
    Skipped,
}

impl NoteLevel {
    /// Label used in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            NoteLevel::Info => "info",
            NoteLevel::Warning => "warning",
            NoteLevel::Skipped => "not carried over",
        }
    }
}

/// One report line: what it concerns, how serious, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub level: NoteLevel,
    /// The filter, alarm or resource concerned.
    pub subject: String,
    pub message: String,
}

impl Note {
    pub(crate) fn new(
        level: NoteLevel,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Note {
            level,
            subject: subject.into(),
            message: message.into(),
        }
    }
}

/// Conversion options.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Force the rule kind instead of guessing it from the pattern.
    pub kind: Option<KindSpec>,
    /// Add `slide: 1m` when 60 s divides the period (CloudWatch
    /// re-evaluates alarms every minute).
    pub slide: bool,
    /// Format name for the `imported_from` label (`cloudformation`, ...).
    pub format: String,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            kind: None,
            slide: true,
            format: "import".to_string(),
        }
    }
}

/// One generated rule file.
#[derive(Debug, Clone)]
pub struct GeneratedRule {
    pub id: String,
    /// File name inside the output directory (`<id>.yaml`).
    pub file_name: String,
    pub yaml: String,
    pub filter: ImportedFilter,
    pub alarm: Option<ImportedAlarm>,
    /// The settings as written in the rule, for the dry-run table.
    pub settings: RuleSettings,
}

/// The rule settings derived from a (filter, alarm) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSettings {
    pub kind: KindSpec,
    pub group_by: Vec<String>,
    /// `where:` equalities from the alarm's pinned dimension values
    /// (field, value).
    pub pinned: Vec<(String, String)>,
    pub aggregate: &'static str,
    pub window_s: u64,
    pub slide_s: Option<u64>,
    pub periods: u32,
    pub datapoints: u32,
    pub treat_missing: &'static str,
    pub threshold: String,
    pub sns_topic: Option<String>,
    pub enabled: bool,
    /// The metric filters whose patterns the rule's filter joins with `||`
    /// (they publish the same metric); empty for a rule from one filter.
    pub merged_from: Vec<String>,
    /// The CloudWatch log group(s) the metric filter ran on. Not enforced:
    /// a rule sees every input of its kind (see [`log_group_note`]).
    pub log_groups: Vec<String>,
}

/// The outcome of an import: the rules and every note.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub rules: Vec<GeneratedRule>,
    pub notes: Vec<Note>,
    /// The input described, for the report header.
    pub input: String,
}

impl Report {
    /// Notes about one rule's filter or alarm.
    pub fn notes_for(&self, subject: &str) -> Vec<&Note> {
        self.notes.iter().filter(|n| n.subject == subject).collect()
    }
}

/// Window used for a filter that has no alarm (CloudWatch's common
/// 5-minute period).
const DEFAULT_PERIOD_S: u64 = 300;

/// Joins filters with alarms and renders the rules.
pub fn convert(set: ImportSet, options: &ImportOptions, input: &str) -> Report {
    let mut report = Report {
        rules: Vec::new(),
        notes: set.notes,
        input: input.to_string(),
    };
    let mut used_ids = BTreeSet::new();
    // A rule file whose id is a built-in rule's replaces that rule at load
    // time (or, written `enabled: false`, switches it off): imported ids
    // must stay clear of them.
    let builtin_ids: BTreeSet<String> = crate::rules::builtin_rules()
        .map(|rules| rules.into_iter().map(|r| r.spec.id).collect())
        .unwrap_or_default();
    let mut matched_alarms = vec![false; set.alarms.len()];
    // The filters publishing each metric, in the order of their first one:
    // CloudWatch sums them into one series, so an alarm sees them together.
    let mut groups: Vec<Vec<&ImportedFilter>> = Vec::new();
    for filter in &set.filters {
        match groups.iter_mut().find(|g| {
            g.first().is_some_and(|f| {
                f.namespace == filter.namespace && f.metric_name == filter.metric_name
            })
        }) {
            Some(group) => group.push(filter),
            None => groups.push(vec![filter]),
        }
    }
    for group in &groups {
        let Some(&first) = group.first() else {
            continue;
        };
        let alarms: Vec<(usize, &ImportedAlarm)> = set
            .alarms
            .iter()
            .enumerate()
            .filter(|(_, a)| watches(a, &first.namespace, &first.metric_name))
            .collect();
        if alarms.is_empty() {
            for &filter in group {
                report.notes.push(Note::new(
                    NoteLevel::Info,
                    filter.name.clone(),
                    format!(
                        "metric {}/{} has no alarm: imported as `>= 1` over {}s, the rule fires on every matching event's window",
                        filter.namespace, filter.metric_name, DEFAULT_PERIOD_S
                    ),
                ));
                if let Some(rule) = build_rule(
                    filter,
                    &[filter],
                    None,
                    options,
                    &builtin_ids,
                    &mut used_ids,
                    &mut report.notes,
                ) {
                    report.rules.push(rule);
                }
            }
            continue;
        }
        // A metric watched only by alarms that are not carried over (metric
        // math, anomaly band, an unresolvable setting) is not imported as a
        // `>= 1` rule either: that would fire on every matching event,
        // broader than the alarm (and for a pinned dimension, on every value).
        if alarms.iter().all(|(_, a)| a.unsupported.is_some()) {
            let names: Vec<&str> = alarms.iter().map(|(_, a)| a.name.as_str()).collect();
            for &filter in group {
                report.notes.push(Note::new(
                    NoteLevel::Skipped,
                    filter.name.clone(),
                    format!(
                        "metric {}/{} is watched by alarm {}, which is not carried over: the metric filter \
                         is not imported on its own, since a `>= 1` rule would fire on every matching event, \
                         broader than the alarm",
                        filter.namespace,
                        filter.metric_name,
                        names.join(", ")
                    ),
                ));
            }
        }
        let merged = (group.len() > 1).then(|| merge_filters(group));
        for (index, alarm) in alarms {
            matched_alarms[index] = true;
            if let Some(reason) = &alarm.unsupported {
                report.notes.push(Note::new(
                    NoteLevel::Skipped,
                    alarm.name.clone(),
                    reason.clone(),
                ));
                continue;
            }
            let names = group
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let rules: Vec<(&ImportedFilter, &[&ImportedFilter])> = match &merged {
                None => vec![(first, group.as_slice())],
                Some(Ok(filter)) => {
                    report.notes.push(Note::new(
                        NoteLevel::Info,
                        alarm.name.clone(),
                        format!(
                            "metric {}/{} is published by {} metric filters ({names}), which CloudWatch sums \
                             into the series this alarm watches: merged into one rule whose filter joins their \
                             patterns with `||`. An event matching several of them counts once here, once per \
                             filter in CloudWatch",
                            first.namespace,
                            first.metric_name,
                            group.len()
                        ),
                    ));
                    vec![(filter, group.as_slice())]
                }
                Some(Err(why)) => {
                    report.notes.push(Note::new(
                        NoteLevel::Warning,
                        alarm.name.clone(),
                        format!(
                            "metric {}/{} is published by {} metric filters ({names}), which CloudWatch sums \
                             into the one series this alarm watches; they cannot be merged into one rule ({why}), \
                             so the alarm becomes one rule per filter, each counting only its own filter's events: \
                             the counts are split, and the rules may stay silent where the alarm fires",
                            first.namespace,
                            first.metric_name,
                            group.len()
                        ),
                    ));
                    group
                        .iter()
                        .map(|f| (*f, std::slice::from_ref(f)))
                        .collect()
                }
            };
            for (filter, sources) in rules {
                if let Some(rule) = build_rule(
                    filter,
                    sources,
                    Some(alarm),
                    options,
                    &builtin_ids,
                    &mut used_ids,
                    &mut report.notes,
                ) {
                    report.rules.push(rule);
                }
            }
        }
    }
    for (alarm, matched) in set.alarms.iter().zip(matched_alarms) {
        if matched {
            continue;
        }
        let reason = alarm.unsupported.clone().unwrap_or_else(|| {
            format!(
                "no metric filter publishes {}/{}: the alarm watches a metric trailwatch does not compute",
                alarm.namespace, alarm.metric_name
            )
        });
        report
            .notes
            .push(Note::new(NoteLevel::Skipped, alarm.name.clone(), reason));
    }
    report
}

/// Whether `alarm` watches the metric `namespace`/`name`, directly or as
/// one of its metric-math inputs.
fn watches(alarm: &ImportedAlarm, namespace: &str, name: &str) -> bool {
    (alarm.metric_name == name && alarm.namespace == namespace)
        || alarm
            .math_metrics
            .iter()
            .any(|(n, m)| n == namespace && m == name)
}

/// The (namespace, metric name) pairs a `Metrics` list reads, in the API
/// shape (`MetricStat.Metric.{Namespace, MetricName}`) or Terraform's
/// (`metric[0].{namespace, metric_name}`). Expressions name no metric.
pub(crate) fn math_metrics(metrics: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for query in metrics.as_array().into_iter().flatten() {
        let api = query.get("MetricStat").and_then(|s| s.get("Metric"));
        let terraform = query.get("metric").map(|m| match m {
            serde_json::Value::Array(items) => items.first().unwrap_or(&serde_json::Value::Null),
            other => other,
        });
        let pair = match (api, terraform) {
            (Some(m), _) => (m.get("Namespace"), m.get("MetricName")),
            (None, Some(m)) => (m.get("namespace"), m.get("metric_name")),
            (None, None) => continue,
        };
        if let (Some(namespace), Some(name)) = (pair.0.and_then(text), pair.1.and_then(text)) {
            if !out.contains(&(namespace.clone(), name.clone())) {
                out.push((namespace, name));
            }
        }
    }
    out
}

/// Writes the rules and `IMPORT_REPORT.md` under `out`.
///
/// No file is overwritten unless `force`: a file already there (a rule
/// edited since an earlier import, or another import's report) is refused
/// before anything is written. Two rules with one file name are refused
/// too; [`convert`] gives every rule a distinct id, so that is a guard.
/// A rule already in `out` (another file) with an id the import writes is
/// refused even with `force`: the directory would not load.
pub fn write_out(report: &Report, out: &Path, force: bool) -> Result<()> {
    let mut names = BTreeSet::new();
    for rule in &report.rules {
        if !names.insert(rule.file_name.to_ascii_lowercase()) {
            return Err(Error::Config(format!(
                "two imported rules would both be written to {}; nothing written",
                rule.file_name
            )));
        }
    }
    // A rule already in `out` under another file name with an id this
    // import writes would make the directory fail to load (duplicate id).
    // `--force` cannot help: it overwrites files of the same name only.
    let clashes = id_clashes(report, out);
    if !clashes.is_empty() {
        return Err(Error::Config(format!(
            "{} already holds rules with ids this import writes: {}; nothing written \
             (two rules with one id cannot load, even with --force: remove or rename one, or choose another --out)",
            out.display(),
            clashes.join("; ")
        )));
    }
    if !force {
        let existing: Vec<&str> = report
            .rules
            .iter()
            .map(|rule| rule.file_name.as_str())
            .chain(["IMPORT_REPORT.md"])
            .filter(|name| out.join(name).exists())
            .collect();
        if !existing.is_empty() {
            return Err(Error::Config(format!(
                "{} already holds {}; nothing written (pass --force to overwrite, or choose another --out)",
                out.display(),
                existing.join(", ")
            )));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out.display().to_string(), e))?;
    for rule in &report.rules {
        let path = out.join(&rule.file_name);
        std::fs::write(&path, &rule.yaml).map_err(|e| Error::io(path.display().to_string(), e))?;
    }
    let path = out.join("IMPORT_REPORT.md");
    std::fs::write(&path, render_report_markdown(report))
        .map_err(|e| Error::io(path.display().to_string(), e))?;
    Ok(())
}

/// `id in FILE (imported as FILE)` for every rule file under `out`, as
/// the loader finds them, whose id one of `report`'s rules also has. A
/// file the import writes itself does not count: `--force` overwrites it,
/// and without `--force` the overwrite guard refuses it.
fn id_clashes(report: &Report, out: &Path) -> Vec<String> {
    if !out.is_dir() {
        return Vec::new();
    }
    let Ok(files) = crate::rules::rule_files(out) else {
        return Vec::new();
    };
    let mut clashes = Vec::new();
    for path in files {
        if report.rules.iter().any(|r| path == out.join(&r.file_name)) {
            continue;
        }
        // A file that does not parse is the loader's to report; only ids
        // are compared here.
        let Some(id) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text).ok())
            .and_then(|doc| doc.get("id").and_then(|v| v.as_str().map(str::to_string)))
        else {
            continue;
        };
        for rule in report.rules.iter().filter(|r| r.id == id) {
            clashes.push(format!(
                "{id} in {} (imported as {})",
                path.display(),
                out.join(&rule.file_name).display()
            ));
        }
    }
    clashes
}

/// Lower-case, `[a-z0-9-]` id from a name (`S3 Bucket Activity` →
/// `s3-bucket-activity`, `CloudTrailChanges` → `cloud-trail-changes`).
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_alphanumeric() {
            // Split camel case: aB, and the last capital of ABc.
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let boundary = c.is_ascii_uppercase()
                && i > 0
                && (chars[i - 1].is_ascii_lowercase()
                    || ((chars[i - 1].is_ascii_uppercase() || chars[i - 1].is_ascii_digit())
                        && next_lower));
            if boundary && !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '.' && out.chars().last().is_some_and(|l| l.is_ascii_digit()) {
            out.push('.');
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches(|c| c == '-' || c == '.');
    let mut id: String = trimmed.chars().take(120).collect();
    if id.is_empty() {
        id = "imported-rule".to_string();
    }
    id
}

/// Guesses the rule kind from a filter pattern and its log group.
pub fn guess_kind(pattern: &str, log_group: Option<&str>) -> (KindSpec, &'static str) {
    let trimmed = pattern.trim();
    if trimmed.starts_with('{') {
        return (KindSpec::Cloudtrail, "JSON pattern");
    }
    if trimmed.starts_with('[') {
        let names: Vec<String> = trimmed
            .trim_start_matches('[')
            .split([',', ']'])
            .map(|f| {
                f.trim()
                    .split(|c: char| c.is_whitespace() || "=!<>".contains(c))
                    .next()
                    .unwrap_or("")
                    .replace('_', "-")
                    .to_ascii_lowercase()
            })
            .collect();
        if flow_score(&names) >= FLOW_SCORE_THRESHOLD {
            return (
                KindSpec::Vpcflow,
                "space-delimited pattern with flow-log fields",
            );
        }
        return (
            KindSpec::Hostlog,
            "space-delimited pattern without flow-log fields",
        );
    }
    let group = log_group.unwrap_or("").to_ascii_lowercase();
    if group.contains("cloudtrail") {
        return (
            KindSpec::Cloudtrail,
            "term pattern on a CloudTrail log group",
        );
    }
    if group.contains("flow") {
        return (KindSpec::Vpcflow, "term pattern on a flow-log group");
    }
    if names_api_calls(trimmed) {
        return (KindSpec::Cloudtrail, "term pattern naming AWS API calls");
    }
    (KindSpec::Hostlog, "term pattern")
}

/// Whether every term a term pattern looks for is an AWS API name or error
/// code (`GetSecretValue`, `?ConsoleLogin ?DeleteTrail`, `AccessDenied`):
/// such a filter watches CloudTrail, whatever its log group is called (the
/// lab's `GetSecretValue` filter sits on `nextwork-secretsmanager-loggroup`).
/// Excluded terms (`-x`) do not count; a quoted phrase with a space is not
/// an API name.
fn names_api_calls(pattern: &str) -> bool {
    let mut terms = pattern
        .split_whitespace()
        .filter(|term| !term.starts_with('-'))
        .map(|term| term.trim_start_matches('?').trim_matches('"'))
        .peekable();
    terms.peek().is_some() && terms.all(is_api_name)
}

/// `GetSecretValue`: two or more capitalised words of letters and digits.
fn is_api_name(term: &str) -> bool {
    let bytes = term.as_bytes();
    let capitals = bytes.iter().filter(|b| b.is_ascii_uppercase()).count();
    bytes.first().is_some_and(u8::is_ascii_uppercase)
        && bytes.iter().all(u8::is_ascii_alphanumeric)
        && bytes.iter().any(u8::is_ascii_lowercase)
        && capitals >= 2
}

/// Flow-log field names that are also everyday words in other logs
/// (`[job, start, end, status]`, `[ip, ..., bytes]`): they count half.
const GENERIC_FLOW_NAMES: &[&str] = &[
    "version", "start", "end", "type", "region", "action", "bytes", "packets", "protocol",
];

/// Score from which a space-delimited pattern is taken for a flow-log
/// pattern: two flow-specific names (`srcaddr`, `dstport`, ...), one
/// specific and one generic, or three generic ones.
const FLOW_SCORE_THRESHOLD: u32 = 3;

/// How much a pattern's field names (`_` read as `-`, lower case) look like
/// VPC Flow Log fields: 2 per name in the full v2–v8 list
/// ([`crate::decode::flow::KNOWN_FIELDS`]) that only flow logs use, 1 per
/// generic one.
fn flow_score(names: &[String]) -> u32 {
    names
        .iter()
        .filter(|n| crate::decode::flow::KNOWN_FIELDS.contains(&n.as_str()))
        .map(|n| {
            if GENERIC_FLOW_NAMES.contains(&n.as_str()) {
                1
            } else {
                2
            }
        })
        .sum()
}

/// The CloudWatch statistic as a rule `aggregate`.
fn aggregate_of(statistic: &str) -> Option<&'static str> {
    Some(match statistic {
        "Sum" => "sum",
        "Average" => "avg",
        "SampleCount" => "sample_count",
        "Minimum" => "min",
        "Maximum" => "max",
        _ => return None,
    })
}

/// The comparison operator as a rule threshold operator.
fn operator_of(comparison: &str) -> Option<&'static str> {
    Some(match comparison {
        "GreaterThanOrEqualToThreshold" => ">=",
        "GreaterThanThreshold" => ">",
        "LessThanThreshold" => "<",
        "LessThanOrEqualToThreshold" => "<=",
        _ => return None,
    })
}

fn treat_missing_of(text: Option<&str>) -> Option<&'static str> {
    Some(match text.unwrap_or("missing") {
        "missing" => "missing",
        "notBreaching" => "not_breaching",
        "breaching" => "breaching",
        "ignore" => "ignore",
        _ => return None,
    })
}

/// A dimension value as a `group_by` field: `$.a.b` → `a.b`, `$name` → `name`.
fn dimension_field(value: &str) -> Option<String> {
    let value = value.trim();
    if let Some(path) = value.strip_prefix("$.") {
        return (!path.is_empty()).then(|| path.to_string());
    }
    value
        .strip_prefix('$')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// The event field that `name`, a field of the space-delimited `pattern`,
/// reads on a `kind` rule, with a remark when it was mapped; `Err` says why
/// there is none. A flow-log field name is itself. Another name is mapped
/// by position, when the pattern spells out all 14 fields of the default
/// (version 2) flow-log format, the one AWS's own examples match.
fn delimited_field(
    pattern: &str,
    name: &str,
    kind: KindSpec,
) -> std::result::Result<(String, Option<String>), String> {
    use crate::decode::flow::{KNOWN_FIELDS, V2_FIELDS};
    if kind != KindSpec::Vpcflow {
        return Err(format!(
            "`group_by` and `where:` read named fields only for vpcflow rules, not {} rules",
            kind_name(kind)
        ));
    }
    if KNOWN_FIELDS.contains(&name) {
        return Ok((name.to_string(), None));
    }
    let names = crate::filter::Filter::parse(pattern)
        .map(|f| f.field_names().into_iter().map(str::to_string).collect())
        .unwrap_or_else(|_| Vec::<String>::new());
    let position = names.iter().position(|n| n == name);
    match position {
        Some(index) if names.len() == V2_FIELDS.len() && !pattern.contains("...") => {
            let field = V2_FIELDS[index];
            Ok((
                field.to_string(),
                Some(format!(
                    "${name} is field {} of the pattern, {field} in the default flow-log format; \
                     mapped to {field} (edit the rule if your flow logs use a custom format)",
                    index + 1
                )),
            ))
        }
        _ => Err(format!(
            "${name} is not a flow-log field name, and the pattern does not spell out the 14 fields of \
             the default flow-log format, so its position cannot be mapped to one"
        )),
    }
}

/// Formats seconds as a rule duration (`5m`, `1h`, `90s`).
pub fn format_duration(seconds: u64) -> String {
    if seconds > 0 && seconds % 3600 == 0 {
        format!("{}h", seconds / 3600)
    } else if seconds > 0 && seconds % 60 == 0 {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

/// `base`, or `base-2`, `base-3`, ... : the first that no rule of this
/// import has taken. Checked against every id taken, not per base: the
/// suffixed `iam-policy-changes-2` may be another alarm's own slug.
fn unique_id(base: String, used: &mut BTreeSet<String>) -> String {
    let mut id = base.clone();
    let mut n = 1;
    while used.contains(&id) {
        n += 1;
        id = format!("{base}-{n}");
    }
    used.insert(id.clone());
    id
}

/// The one-line note for a rule whose `filters` metric filters (more than
/// one when merged) ran on `log_groups` in CloudWatch. The rule is not scoped to them: CloudTrail read from
/// Kafka, S3 or EventBridge has no `@log_group`, and a `where:` on it would
/// never match there. So the scope is suggested, not written.
pub fn log_group_note(log_groups: &[String], filters: usize, kind: KindSpec) -> Option<String> {
    let (first, rest) = log_groups.split_first()?;
    let (groups, predicate) = if rest.is_empty() {
        (
            format!("log group {first}"),
            format!("equals: {}", yaml_quote(first)),
        )
    } else {
        (
            format!("log groups {}", log_groups.join(", ")),
            format!(
                "in: [{}]",
                log_groups
                    .iter()
                    .map(|g| yaml_quote(g))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    let filters = if filters > 1 {
        "metric filters"
    } else {
        "metric filter"
    };
    Some(format!(
        "the {filters} ran on {groups} in CloudWatch; trailwatch applies the rule to every {} input; \
         add `where: [{{field: \"@log_group\", {predicate}}}]` if inputs from several log groups share the stream",
        kind_name(kind)
    ))
}

/// `text` as a double-quoted YAML scalar.
fn yaml_quote(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// One filter for several metric filters that publish the same metric:
/// their JSON patterns joined with `||`, each in parentheses so its own
/// `&&`/`||` keep their precedence. `Err` says why they cannot be merged.
fn merge_filters(filters: &[&ImportedFilter]) -> std::result::Result<ImportedFilter, String> {
    let Some((first, rest)) = filters.split_first() else {
        return Err("no filter".to_string());
    };
    let mut inner = Vec::new();
    for f in filters {
        let body = f
            .pattern
            .trim()
            .strip_prefix('{')
            .and_then(|p| p.strip_suffix('}'))
            .map(str::trim)
            .filter(|p| !p.is_empty());
        match body {
            Some(body) => inner.push(format!("({body})")),
            None => {
                return Err(format!(
                    "{} is not a JSON pattern `{{ ... }}`, and only those join with `||`",
                    f.name
                ))
            }
        }
    }
    let sorted = |f: &ImportedFilter| {
        let mut d = f.dimensions.clone();
        d.sort();
        d
    };
    for f in rest {
        if f.value.trim() != first.value.trim() {
            return Err(format!(
                "their metric values differ: {} publishes {}, {} publishes {}",
                first.name, first.value, f.name, f.value
            ));
        }
        if sorted(f) != sorted(first) {
            return Err("their dimensions differ".to_string());
        }
    }
    // Each filter publishes its own DefaultValue in a period where it has
    // no match, so two filters add two defaults: one rule cannot do that.
    if filters.iter().any(|f| f.default.is_some()) {
        return Err("they set a DefaultValue, which each filter publishes on its own".to_string());
    }
    Ok(ImportedFilter {
        name: filters
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(" + "),
        pattern: format!("{{ {} }}", inner.join(" || ")),
        // Only the kind guess reads it, and JSON patterns do not need it.
        log_group: filters
            .iter()
            .all(|f| f.log_group == first.log_group)
            .then(|| first.log_group.clone())
            .flatten(),
        source: filters
            .iter()
            .map(|f| f.source.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        ..(*first).clone()
    })
}

/// Whether the metric counts events (every match adds the literal 1).
fn is_count_metric(value: &str) -> bool {
    value.trim().parse::<f64>().is_ok_and(|v| v == 1.0)
}

/// The rule for `filter` (the one metric filter, or several merged) and
/// `alarm`; `sources` are the metric filters it was made from.
fn build_rule(
    filter: &ImportedFilter,
    sources: &[&ImportedFilter],
    alarm: Option<&ImportedAlarm>,
    options: &ImportOptions,
    builtin_ids: &BTreeSet<String>,
    used_ids: &mut BTreeSet<String>,
    notes: &mut Vec<Note>,
) -> Option<GeneratedRule> {
    let subject = alarm.map_or(filter.name.clone(), |a| a.name.clone());
    let mut note = |level, message: String| notes.push(Note::new(level, subject.clone(), message));

    let (kind, why) = match options.kind {
        Some(kind) => (kind, "--kind"),
        None => guess_kind(&filter.pattern, filter.log_group.as_deref()),
    };
    let mut log_groups: Vec<String> = Vec::new();
    for group in sources.iter().filter_map(|f| f.log_group.as_ref()) {
        if !log_groups.contains(group) {
            log_groups.push(group.clone());
        }
    }
    if let Some(text) = log_group_note(&log_groups, sources.len(), kind) {
        note(NoteLevel::Info, text);
    }
    if options.kind.is_none() && kind != KindSpec::Cloudtrail {
        // A term pattern with nothing else to go on fits any log: a wrong
        // guess is a rule that never fires, so it is a warning.
        let level = if why == "term pattern" {
            NoteLevel::Warning
        } else {
            NoteLevel::Info
        };
        note(
            level,
            format!(
                "kind {} guessed from the {why}; pass --kind to override",
                kind_name(kind)
            ),
        );
    }

    // Dimensions. A metric filter with dimensions publishes one series per
    // combination of dimension values, and a CloudWatch alarm watches
    // exactly one series: the one whose dimensions are all the alarm's
    // `Dimensions`. So a pinned dimension becomes a `where:` equality (only
    // that series counts) and an unpinned one a `group_by` key (every
    // series evaluated on its own, as one alarm per value would).
    let alarm_dims: &[(String, String)] = alarm.map_or(&[], |a| a.dimensions.as_slice());
    let mut group_by = Vec::new();
    let mut pinned = Vec::new();
    let mut unpinned = Vec::new();
    for (name, value) in &filter.dimensions {
        let Some(field) = dimension_field(value) else {
            note(
                NoteLevel::Skipped,
                format!("dimension {name} = {value:?} is not a field reference; not used as a group key"),
            );
            continue;
        };
        let pin = alarm_dims.iter().find(|(k, _)| k == name);
        // `$name` names a field of the space-delimited pattern, not of the
        // event: `group_by` and `where:` read event fields, so it must be
        // the flow-log field at that position, or the key is `-` for every
        // event (and a pinned value never matches).
        let field = if value.trim().starts_with("$.") {
            field
        } else {
            match delimited_field(&filter.pattern, &field, kind) {
                Ok((flow_field, remark)) => {
                    if let Some(remark) = remark {
                        note(
                            NoteLevel::Info,
                            format!("dimension {name} = {value}: {remark}"),
                        );
                    }
                    flow_field
                }
                Err(why) => {
                    let what = match pin {
                        Some((_, pin)) => format!(
                            "the alarm pins dimension {name} = {pin:?}, a field of the space-delimited pattern; \
                             {why}, so the series cannot be selected"
                        ),
                        None => format!(
                            "dimension {name} = {value} is a field of the space-delimited pattern; \
                             {why}, so the rule could not keep its values apart"
                        ),
                    };
                    note(NoteLevel::Skipped, what);
                    return None;
                }
            }
        };
        match pin {
            Some((_, pin)) => pinned.push((field, pin.clone())),
            None => {
                unpinned.push(name.clone());
                group_by.push(field);
            }
        }
    }
    if let Some(alarm) = alarm {
        let foreign: Vec<String> = alarm
            .dimensions
            .iter()
            .filter(|(k, _)| !filter.dimensions.iter().any(|(n, _)| n == k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !foreign.is_empty() {
            note(
                NoteLevel::Skipped,
                format!(
                    "the alarm selects the series {}, a dimension the metric filter does not publish: \
                     in CloudWatch the alarm never receives data",
                    foreign.join(", ")
                ),
            );
            return None;
        }
        if !unpinned.is_empty() {
            note(
                NoteLevel::Warning,
                format!(
                    "the alarm names no value for dimension(s) {}, so in CloudWatch it watches a series this \
                     metric filter never publishes (it stays INSUFFICIENT_DATA); the rule groups by them \
                     instead, one evaluation per value, as one alarm per value would",
                    unpinned.join(", ")
                ),
            );
        }
        if !pinned.is_empty() {
            let list: Vec<String> = pinned.iter().map(|(f, v)| format!("{f} = {v:?}")).collect();
            note(
                NoteLevel::Info,
                format!(
                    "the alarm's pinned dimension value(s) become `where:` equalities: {}",
                    list.join(", ")
                ),
            );
        }
    }
    if let Some(unit) = &filter.unit {
        note(
            NoteLevel::Info,
            format!("metric unit {unit} is descriptive only; not carried over"),
        );
    }

    let (aggregate, window_s, periods, datapoints, treat_missing, threshold, statistic_name) =
        match alarm {
            None => (
                "sum",
                DEFAULT_PERIOD_S,
                1,
                1,
                "missing",
                ">= 1".to_string(),
                "Sum",
            ),
            Some(alarm) => {
                if let Some(ext) = &alarm.extended_statistic {
                    note(
                        NoteLevel::Skipped,
                        format!(
                            "extended statistic {ext} (percentile) has no trailwatch aggregate"
                        ),
                    );
                    return None;
                }
                let statistic = alarm.statistic.as_deref().unwrap_or("");
                let Some(aggregate) = aggregate_of(statistic) else {
                    note(
                        NoteLevel::Skipped,
                        format!("unknown statistic {statistic:?}"),
                    );
                    return None;
                };
                let Some(op) = operator_of(&alarm.comparison) else {
                    note(
                        NoteLevel::Skipped,
                        format!(
                            "comparison operator {} (anomaly detection band) cannot be carried over",
                            alarm.comparison
                        ),
                    );
                    return None;
                };
                let Some(value) = alarm.threshold else {
                    note(
                        NoteLevel::Skipped,
                        "the alarm has no static threshold".to_string(),
                    );
                    return None;
                };
                let Some(period) = alarm.period_s.filter(|p| *p > 0) else {
                    note(NoteLevel::Skipped, "the alarm has no period".to_string());
                    return None;
                };
                let periods = alarm.evaluation_periods.unwrap_or(1).max(1);
                let datapoints = alarm.datapoints.unwrap_or(periods);
                if datapoints == 0 || datapoints > periods || periods > 1024 {
                    note(
                        NoteLevel::Skipped,
                        format!("DatapointsToAlarm {datapoints} of EvaluationPeriods {periods} is not a valid M of N"),
                    );
                    return None;
                }
                let Some(treat) = treat_missing_of(alarm.treat_missing.as_deref()) else {
                    note(
                        NoteLevel::Skipped,
                        format!(
                            "unknown TreatMissingData {:?}",
                            alarm.treat_missing.as_deref().unwrap_or_default()
                        ),
                    );
                    return None;
                };
                if statistic == "Average" && is_count_metric(&filter.value) {
                    note(
                        NoteLevel::Warning,
                        format!(
                            "Average of a count metric (MetricValue 1) is always 1 whenever any event matched, \
                             so the alarm can only compare 1 {op} {}: it never counts how many events happened. \
                             This is the Average-vs-Sum mistake; you almost certainly want Statistic Sum. \
                             Kept as avg to behave exactly like the alarm.",
                            crate::event::format_number(value)
                        ),
                    );
                }
                if matches!(op, "<" | "<=") {
                    note(
                        NoteLevel::Info,
                        "`<` thresholds breach only for periods with data, or through the metric default \
                         value and treat_missing (as in CloudWatch, where an empty period has no datapoint)"
                            .to_string(),
                    );
                }
                if !alarm.other_actions.is_empty() {
                    note(
                        NoteLevel::Skipped,
                        format!("non-SNS alarm actions: {}", alarm.other_actions.join(", ")),
                    );
                }
                if alarm.ok_or_insufficient_actions {
                    note(
                        NoteLevel::Info,
                        "OKActions / InsufficientDataActions are not separate routes: the rule emits Close \
                         on return to OK, routed like its Create"
                            .to_string(),
                    );
                }
                if !alarm.actions_enabled {
                    note(
                        NoteLevel::Info,
                        "ActionsEnabled is false: the rule is written with `enabled: false`"
                            .to_string(),
                    );
                }
                (
                    aggregate,
                    period,
                    periods,
                    datapoints,
                    treat,
                    format!("{op} {}", crate::event::format_number(value)),
                    match statistic {
                        "Sum" => "Sum",
                        "Average" => "Average",
                        "SampleCount" => "SampleCount",
                        "Minimum" => "Minimum",
                        _ => "Maximum",
                    },
                )
            }
        };
    let slide_s = (options.slide && window_s > 60 && window_s % 60 == 0).then_some(60);
    if options.slide && slide_s.is_none() && window_s % 60 != 0 {
        note(
            NoteLevel::Info,
            format!("period {window_s}s is not a whole number of minutes: evaluated tumbling, without slide"),
        );
    }
    let sns_topic = alarm.and_then(|a| (!a.sns_topics.is_empty()).then(|| a.sns_topics.join(",")));
    let enabled = alarm.is_none_or(|a| a.actions_enabled);
    let mut base = slugify(alarm.map_or(&filter.name, |a| &a.name));
    if builtin_ids.contains(&base) {
        let prefixed = format!("imported-{base}");
        note(
            NoteLevel::Info,
            format!(
                "id {base} is a built-in rule's id, and a rule file with that id would replace the \
                 built-in rule; written as {prefixed}, so both run"
            ),
        );
        base = prefixed;
    }
    let id = unique_id(base.clone(), used_ids);
    if id != base {
        note(
            NoteLevel::Info,
            format!("id {base} is taken by another rule of this import; written as {id}"),
        );
    }
    let settings = RuleSettings {
        kind,
        group_by,
        pinned,
        aggregate,
        window_s,
        slide_s,
        periods,
        datapoints,
        treat_missing,
        threshold,
        sns_topic,
        enabled,
        merged_from: if sources.len() > 1 {
            sources.iter().map(|f| f.name.clone()).collect()
        } else {
            Vec::new()
        },
        log_groups,
    };
    let yaml = render::rule_yaml(
        &id,
        filter,
        alarm,
        &settings,
        statistic_name,
        &options.format,
    );
    if let Err(problems) = crate::rules::parse_rule_text(&id, &yaml) {
        let mut text = String::new();
        for p in &problems {
            let _ = write!(text, "{}; ", p.message);
        }
        note(
            NoteLevel::Skipped,
            format!(
                "the generated rule does not validate: {}",
                text.trim_end_matches("; ")
            ),
        );
        return None;
    }
    Some(GeneratedRule {
        file_name: format!("{id}.yaml"),
        id,
        yaml,
        filter: filter.clone(),
        alarm: alarm.cloned(),
        settings,
    })
}

/// The YAML name of a kind.
pub fn kind_name(kind: KindSpec) -> &'static str {
    match kind {
        KindSpec::Cloudtrail => "cloudtrail",
        KindSpec::Vpcflow => "vpcflow",
        KindSpec::Hostlog => "hostlog",
    }
}

/// SNS topic name from an ARN (`arn:aws:sns:region:acct:Name` → `Name`),
/// or `None` when the text is not an SNS ARN.
pub fn sns_topic_from_arn(arn: &str) -> Option<String> {
    let rest = arn.strip_prefix("arn:")?;
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    if parts.len() == 5 && parts[1] == "sns" {
        let name = parts[4].rsplit(':').next().unwrap_or(parts[4]);
        return (!name.is_empty()).then(|| name.to_string());
    }
    None
}

/// A JSON number or numeric string as `f64`.
/// Where one input format keeps the parts of a metric transformation.
pub(crate) struct TransformKeys {
    pub name: &'static str,
    pub namespace: &'static str,
    pub value: &'static str,
    pub default: &'static str,
}

/// The metric filter described by one metric transformation `t` (a JSON
/// object), in a format whose key names are `keys`. Absent values take
/// CloudWatch's defaults (metric value `1`, no default value, no unit).
pub(crate) fn filter_from_transformation(
    t: &serde_json::Value,
    keys: &TransformKeys,
    name: &str,
    pattern: &str,
    log_group: Option<&str>,
    source: &str,
) -> ImportedFilter {
    let dimensions = t
        .get("dimensions")
        .and_then(serde_json::Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
                .collect()
        })
        .unwrap_or_default();
    ImportedFilter {
        name: name.to_string(),
        pattern: pattern.to_string(),
        log_group: log_group.map(str::to_string),
        metric_name: t.get(keys.name).and_then(text).unwrap_or_default(),
        namespace: t.get(keys.namespace).and_then(text).unwrap_or_default(),
        value: t
            .get(keys.value)
            .and_then(text)
            .unwrap_or_else(|| "1".to_string()),
        default: t.get(keys.default).and_then(number),
        dimensions,
        unit: t
            .get("unit")
            .and_then(text)
            .filter(|u| !u.is_empty() && u != "None"),
        source: source.to_string(),
    }
}

pub(crate) fn number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON string, number or bool as text.
pub(crate) fn text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("S3 Bucket Activity"), "s3-bucket-activity");
        assert_eq!(slugify("CloudTrailChanges"), "cloud-trail-changes");
        assert_eq!(
            slugify("CIS-4.6 ConsoleAuthFailures"),
            "cis-4.6-console-auth-failures"
        );
        assert_eq!(slugify("EC2InstanceChanges"), "ec2-instance-changes");
        assert_eq!(slugify("!!!"), "imported-rule");
        assert_eq!(slugify("UnauthorizedAPICalls"), "unauthorized-api-calls");
        assert_eq!(slugify("S3BucketActivity"), "s3-bucket-activity");
    }

    #[test]
    fn kinds() {
        assert_eq!(guess_kind("{ $.a = 1 }", None).0, KindSpec::Cloudtrail);
        assert_eq!(
            guess_kind("[version, account, eni, source, destination, srcport, dstport, protocol, packets, bytes, start, end, action = REJECT, status]", None).0,
            KindSpec::Vpcflow
        );
        assert_eq!(
            guess_kind(
                "[ip, id, user, timestamp, request, status_code = 404, size]",
                None
            )
            .0,
            KindSpec::Hostlog
        );
        assert_eq!(
            guess_kind("\"Failed password\"", Some("CloudTrail/Default")).0,
            KindSpec::Cloudtrail
        );
        assert_eq!(
            guess_kind("\"Failed password\"", Some("/var/log/secure")).0,
            KindSpec::Hostlog
        );
        // The lab's (seed 001) secret-access filter, on a log group named
        // after Secrets Manager: the term is an API call, so CloudTrail
        // (it was hostlog, a rule that never fired).
        assert_eq!(
            guess_kind("GetSecretValue", Some("nextwork-secretsmanager-loggroup")).0,
            KindSpec::Cloudtrail
        );
        assert_eq!(
            guess_kind("?ConsoleLogin ?DeleteTrail -AWSService", None).0,
            KindSpec::Cloudtrail
        );
        for host in [
            "ERROR",
            "\"authentication failure\"",
            "sshd Failed",
            "?GetObject ?error",
        ] {
            assert_eq!(guess_kind(host, None).0, KindSpec::Hostlog, "{host}");
        }
    }

    /// The full flow-field list does not misclassify the space-delimited
    /// patterns of the test corpus: the AWS documentation examples (see
    /// `tests/filter_conformance.rs`), the import fixtures and the rule
    /// tests, plus host-log shapes that share generic names with flow logs.
    #[test]
    fn flow_guess_on_the_corpus() {
        let flow = [
            // AWS VPC Flow Logs documentation / CIS style.
            "[version, account, eni, source, destination, srcport, destport=\"22\", protocol=\"6\", packets, bytes, windowstart, windowend, action=\"REJECT\", flowlogstatus]",
            "[version, account_id, interface_id, srcaddr, dstaddr, srcport, dstport=\"22\", protocol=\"6\", packets, bytes, start, end, action=\"REJECT\", log_status]",
            // tests/hostile.rs: abbreviated names, only generic ones known.
            "[version, account, eni, src, dst, sport, dport=\"22\", proto, pkts, bytes, start, end, action=\"REJECT\", status]",
            // v5 custom formats.
            "[..., pkt_srcaddr, pkt_dstaddr, flow_direction = egress]",
            "[..., vpc_id, subnet_id, ...]",
            "[..., dstport = 22, action = REJECT, ...]",
        ];
        let host = [
            // AWS filter-pattern pages.
            "[ip, user, username, timestamp, request, status_code, bytes]",
            "[ip, server, username, timestamp, request, status_code, bytes > 1000]",
            "[..., request =*.html*, status_code = 4*, bytes]",
            "[w1=ERROR, w2]",
            "[w1=ERROR || w1=WARNING, w2]",
            "[logLevel, date, time, method, url=%/service/resource/[0-9]+$%, response_time]",
            "[ip, id, user, timestamp, request, status_code = 404, size]",
            // Host logs that share generic words with flow logs.
            "[job, start, end, status]",
            "[date, time, type, region, message]",
            "[..., protocol, bytes]",
        ];
        for pattern in flow {
            assert_eq!(guess_kind(pattern, None).0, KindSpec::Vpcflow, "{pattern}");
        }
        for pattern in host {
            assert_eq!(guess_kind(pattern, None).0, KindSpec::Hostlog, "{pattern}");
        }
        // A plain count of the full list (>= 2 names) would take
        // `[job, start, end, status]` for a flow log: the weights matter.
        let names: Vec<String> = ["job", "start", "end", "status"].map(String::from).to_vec();
        assert_eq!(flow_score(&names), 2);
    }

    #[test]
    fn arns() {
        assert_eq!(
            sns_topic_from_arn("arn:aws:sns:us-east-1:111122223333:NotifyMe").as_deref(),
            Some("NotifyMe")
        );
        assert_eq!(
            sns_topic_from_arn("arn:aws:automate:us-east-1:ec2:stop"),
            None
        );
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(300), "5m");
        assert_eq!(format_duration(3600), "1h");
        assert_eq!(format_duration(90), "90s");
    }
}
