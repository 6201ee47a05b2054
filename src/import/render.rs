//! Rendering of imported rules: the rule YAML, the `--dry-run` table and
//! `IMPORT_REPORT.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{
    format_duration, kind_name, ImportedAlarm, ImportedFilter, NoteLevel, Report, RuleSettings,
};

/// The rule file as written (field order is the file's order).
#[derive(Serialize)]
struct RuleOut<'a> {
    id: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    kind: &'static str,
    filter: &'a str,
    #[serde(rename = "where", skip_serializing_if = "Vec::is_empty")]
    predicates: Vec<WhereOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<MetricOut>,
    aggregate: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    group_by: Vec<String>,
    window: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    slide: Option<String>,
    threshold: &'a str,
    evaluation: EvaluationOut,
    #[serde(skip_serializing_if = "is_true")]
    enabled: bool,
    labels: BTreeMap<&'static str, String>,
}

fn is_true(value: &bool) -> bool {
    *value
}

/// A `where:` equality (an alarm's pinned dimension value).
#[derive(Serialize)]
struct WhereOut {
    field: String,
    equals: String,
}

#[derive(Serialize)]
struct MetricOut {
    value: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    default: Option<f64>,
}

#[derive(Serialize)]
struct EvaluationOut {
    periods: u32,
    datapoints: u32,
    treat_missing: &'static str,
}

/// The metric value as YAML: a number when it is one, else the text.
fn metric_value(text: &str) -> serde_json::Value {
    let trimmed = text.trim();
    if let Ok(n) = trimmed.parse::<i64>() {
        return serde_json::Value::from(n);
    }
    match trimmed
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
    {
        Some(n) => serde_json::Value::Number(n),
        None => serde_json::Value::String(trimmed.to_string()),
    }
}

/// Renders one rule file.
pub(super) fn rule_yaml(
    id: &str,
    filter: &ImportedFilter,
    alarm: Option<&ImportedAlarm>,
    settings: &RuleSettings,
    statistic: &str,
    format: &str,
) -> String {
    let title = alarm.map_or(filter.name.as_str(), |a| a.name.as_str());
    let description = match alarm {
        Some(a) => a.description.clone(),
        None => format!("Metric filter {} (no alarm)", filter.name),
    };
    let mut labels = BTreeMap::new();
    if let Some(topic) = &settings.sns_topic {
        labels.insert("sns_topic", topic.clone());
    }
    labels.insert(
        "imported_from",
        format!("{format}:{}", alarm.map_or(&filter.source, |a| &a.source)),
    );
    labels.insert(
        "cloudwatch_metric",
        format!("{}/{}", filter.namespace, filter.metric_name),
    );
    let plain_count = filter.value.trim() == "1" && filter.default.is_none();
    let out = RuleOut {
        id,
        title,
        description: &description,
        kind: kind_name(settings.kind),
        filter: &filter.pattern,
        predicates: settings
            .pinned
            .iter()
            .map(|(field, value)| WhereOut {
                field: field.clone(),
                equals: value.clone(),
            })
            .collect(),
        metric: (!plain_count).then(|| MetricOut {
            value: metric_value(&filter.value),
            default: filter.default,
        }),
        aggregate: settings.aggregate,
        group_by: settings.group_by.clone(),
        window: format_duration(settings.window_s),
        slide: settings.slide_s.map(format_duration),
        threshold: &settings.threshold,
        evaluation: EvaluationOut {
            periods: settings.periods,
            datapoints: settings.datapoints,
            treat_missing: settings.treat_missing,
        },
        enabled: settings.enabled,
        labels,
    };
    let body = match serde_yaml_ng::to_string(&out) {
        Ok(body) => body,
        Err(error) => format!("# could not render: {error}\n"),
    };
    // Every value below comes from the input (filter, metric, log group
    // names): a line break in one would end the comment and inject YAML
    // (`enabled: false`), so each line is escaped as a whole.
    let mut lines = vec![format!(
        "Imported by `trailwatch import` from {}.",
        labels_source(filter, alarm)
    )];
    lines.push(format!(
        "CloudWatch: metric {}/{}, Statistic {statistic}{}.",
        filter.namespace,
        filter.metric_name,
        alarm.map_or(" (no alarm: `>= 1` per period)".to_string(), |a| format!(
            ", Period {}s, {} of {} datapoints, {} {}",
            a.period_s.unwrap_or(0),
            settings.datapoints,
            settings.periods,
            a.comparison,
            a.threshold
                .map(crate::event::format_number)
                .unwrap_or_default()
        ))
    ));
    if plain_count {
        lines.push("MetricValue 1 (each matching event counts 1).".to_string());
    }
    if !settings.merged_from.is_empty() {
        lines.push(format!(
            "Metric filters {} publish this metric: their patterns are joined with ||.",
            settings.merged_from.join(", ")
        ));
    }
    if let Some(text) = super::log_group_note(
        &settings.log_groups,
        settings.merged_from.len(),
        settings.kind,
    ) {
        lines.push(format!("Log group: {text}."));
    }
    let mut header = String::new();
    for line in &lines {
        let _ = writeln!(header, "# {}", comment_text(line));
    }
    header + &body
}

/// `text` for one `#` comment line: control characters and the Unicode
/// line breaks YAML also honours (NEL, LS, PS) are written as escapes.
fn comment_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn labels_source(filter: &ImportedFilter, alarm: Option<&ImportedAlarm>) -> String {
    match alarm {
        Some(a) => format!("{} + {}", filter.source, a.source),
        None => filter.source.clone(),
    }
}

fn threshold_text(alarm: &ImportedAlarm) -> String {
    format!(
        "{} {}",
        alarm.comparison,
        alarm
            .threshold
            .map(crate::event::format_number)
            .unwrap_or_default()
    )
}

/// The `--dry-run` table: for each rule, CloudWatch settings (`-`) next to
/// the rule settings (`+`), then the notes.
pub fn render_dry_run(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "trailwatch import --dry-run: {}", report.input);
    let _ = writeln!(
        out,
        "{} rule(s) would be written; nothing is written.\n",
        report.rules.len()
    );
    for rule in &report.rules {
        let f = &rule.filter;
        let s = &rule.settings;
        let _ = writeln!(
            out,
            "== {} → {}",
            rule.alarm.as_ref().map_or(&f.name, |a| &a.name),
            rule.file_name
        );
        let mut rows: Vec<(&str, String, String)> = vec![
            (
                "metric filter",
                format!("{} ({}/{})", f.name, f.namespace, f.metric_name),
                format!("rule {}", rule.id),
            ),
            (
                "pattern",
                f.pattern.clone(),
                if s.merged_from.is_empty() {
                    format!("filter (verbatim), kind {}", kind_name(s.kind))
                } else {
                    format!(
                        "filter: the {} patterns joined with ||, kind {}",
                        s.merged_from.len(),
                        kind_name(s.kind)
                    )
                },
            ),
            (
                "value",
                format!(
                    "MetricValue {}, DefaultValue {}",
                    f.value,
                    f.default
                        .map_or("none".to_string(), crate::event::format_number)
                ),
                format!(
                    "metric: {{value: {}, default: {}}}",
                    f.value,
                    f.default
                        .map_or("none".to_string(), crate::event::format_number)
                ),
            ),
            (
                "dimensions",
                if f.dimensions.is_empty() {
                    "none".to_string()
                } else {
                    f.dimensions
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                format!("group_by: [{}]", s.group_by.join(", ")),
            ),
        ];
        if let Some(a) = rule.alarm.as_ref().filter(|a| !a.dimensions.is_empty()) {
            rows.push((
                "alarm series",
                a.dimensions
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                format!(
                    "where: [{}]",
                    s.pinned
                        .iter()
                        .map(|(f, v)| format!("{f} = {v:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        match &rule.alarm {
            Some(a) => {
                rows.push(("alarm", a.name.clone(), format!("title {:?}", a.name)));
                rows.push((
                    "statistic",
                    a.statistic.clone().unwrap_or_default(),
                    format!("aggregate: {}", s.aggregate),
                ));
                rows.push((
                    "period",
                    format!("{}s", a.period_s.unwrap_or(0)),
                    format!(
                        "window: {}{}",
                        format_duration(s.window_s),
                        s.slide_s.map_or(String::new(), |v| format!(
                            ", slide: {}",
                            format_duration(v)
                        ))
                    ),
                ));
                rows.push((
                    "evaluation",
                    format!(
                        "EvaluationPeriods {}, DatapointsToAlarm {}",
                        a.evaluation_periods.unwrap_or(1),
                        a.datapoints
                            .map_or("(= periods)".to_string(), |d| d.to_string())
                    ),
                    format!("{} of {}", s.datapoints, s.periods),
                ));
                rows.push((
                    "threshold",
                    threshold_text(a),
                    format!("threshold: \"{}\"", s.threshold),
                ));
                rows.push((
                    "missing data",
                    a.treat_missing
                        .clone()
                        .unwrap_or_else(|| "missing (default)".to_string()),
                    format!("treat_missing: {}", s.treat_missing),
                ));
                rows.push((
                    "actions",
                    if a.sns_topics.is_empty() {
                        "none".to_string()
                    } else {
                        a.sns_topics.join(", ")
                    },
                    s.sns_topic
                        .as_ref()
                        .map_or("no route label".to_string(), |t| {
                            format!("labels.sns_topic: {t}")
                        }),
                ));
            }
            None => rows.push((
                "alarm",
                "none".to_string(),
                format!(
                    "threshold: \"{}\" over {} (tumbling windows, slide {})",
                    s.threshold,
                    format_duration(s.window_s),
                    s.slide_s.map_or("none".to_string(), format_duration)
                ),
            )),
        }
        let width = rows
            .iter()
            .map(|r| r.1.chars().count().min(60))
            .max()
            .unwrap_or(0);
        for (label, from, to) in rows {
            let from = if from.chars().count() > 60 {
                format!("{}…", from.chars().take(59).collect::<String>())
            } else {
                from
            };
            let _ = writeln!(out, "  {label:<13} - {from:<width$}  + {to}");
        }
        for note in report.notes.iter().filter(|n| {
            n.subject
                == rule
                    .alarm
                    .as_ref()
                    .map_or(rule.filter.name.as_str(), |a| a.name.as_str())
        }) {
            let _ = writeln!(out, "  ! {}: {}", note.level.as_str(), note.message);
        }
        out.push('\n');
    }
    let skipped: Vec<_> = report
        .notes
        .iter()
        .filter(|n| {
            n.level == NoteLevel::Skipped
                && !report
                    .rules
                    .iter()
                    .any(|r| r.alarm.as_ref().is_some_and(|a| a.name == n.subject))
        })
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(out, "== not carried over");
        for note in skipped {
            let _ = writeln!(out, "  - {}: {}", note.subject, note.message);
        }
    }
    out
}

/// `IMPORT_REPORT.md`: the rules written and every note.
pub fn render_report_markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# trailwatch import report\n");
    let _ = writeln!(out, "Input: {}\n", report.input);
    let _ = writeln!(out, "## Rules written ({})\n", report.rules.len());
    let _ = writeln!(
        out,
        "| rule file | from | aggregate | window | evaluation | threshold | sns_topic |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for rule in &report.rules {
        let s = &rule.settings;
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {}{} | {} of {}, {} | `{}` | {} |",
            rule.file_name,
            rule.alarm
                .as_ref()
                .map_or(format!("filter {}", rule.filter.name), |a| format!(
                    "{} + {}",
                    rule.filter.name, a.name
                )),
            s.aggregate,
            format_duration(s.window_s),
            s.slide_s.map_or(String::new(), |v| format!(
                " (slide {})",
                format_duration(v)
            )),
            s.datapoints,
            s.periods,
            s.treat_missing,
            s.threshold,
            s.sns_topic.as_deref().unwrap_or("-"),
        );
    }
    for (level, heading) in [
        (NoteLevel::Skipped, "Not carried over"),
        (NoteLevel::Warning, "Warnings"),
        (NoteLevel::Info, "Notes"),
    ] {
        let notes: Vec<_> = report.notes.iter().filter(|n| n.level == level).collect();
        if notes.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n## {heading}\n");
        for note in notes {
            let _ = writeln!(out, "- **{}**: {}", note.subject, note.message);
        }
    }
    out
}

/// The report as printed on the terminal (one line per note).
pub fn render_summary(report: &Report) -> String {
    let mut out = String::new();
    for note in &report.notes {
        let _ = writeln!(
            out,
            "{:<16} {}: {}",
            note.level.as_str(),
            note.subject,
            note.message
        );
    }
    let _ = writeln!(
        out,
        "{} rule(s); {} not carried over, {} warning(s)",
        report.rules.len(),
        report
            .notes
            .iter()
            .filter(|n| n.level == NoteLevel::Skipped)
            .count(),
        report
            .notes
            .iter()
            .filter(|n| n.level == NoteLevel::Warning)
            .count()
    );
    out
}
