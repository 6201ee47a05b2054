//! `trailwatch import`: what each front end keeps, that every generated
//! rule validates, that imported CIS rules alert like the built-in pack on
//! a shared CloudTrail fixture, and CloudWatch alarm semantics through the
//! real engine (`run_rule`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use trailwatch::alert::{Activity, Alert};
use trailwatch::import::{self, ImportOptions, NoteLevel, Report};
use trailwatch::rules::model::{AggregateSpec, KindSpec, Statistic, ThresholdSpec, TreatMissing};
use trailwatch::rules::testing::run_rule;
use trailwatch::rules::{parse_rule_text, RuleSpec};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/import")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn cfn(name: &str, params: &[(&str, &str)], options: &ImportOptions) -> Report {
    let doc = import::cloudformation::parse_template(&read(name)).unwrap();
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let set = import::cloudformation::import(&doc, &params, name).unwrap();
    import::convert(set, options, name)
}

fn cis_report() -> Report {
    let options = ImportOptions {
        format: "cloudformation".into(),
        ..ImportOptions::default()
    };
    cfn("cis_cloudwatch_alarms.yaml", &[], &options)
}

fn cli_report() -> Report {
    let filters: serde_json::Value =
        serde_json::from_str(&read("describe-metric-filters.json")).unwrap();
    let alarms: serde_json::Value = serde_json::from_str(&read("describe-alarms.json")).unwrap();
    let set = import::cli_json::import(&filters, &alarms, ("filters.json", "alarms.json")).unwrap();
    import::convert(set, &ImportOptions::default(), "cli")
}

fn terraform_report() -> Report {
    let doc: serde_json::Value = serde_json::from_str(&read("terraform-plan.json")).unwrap();
    let set = import::terraform::import(&doc, "terraform-plan.json").unwrap();
    import::convert(set, &ImportOptions::default(), "terraform")
}

/// The generated rule `id`, parsed back through the rule loader.
fn spec(report: &Report, id: &str) -> RuleSpec {
    let rule = report.rules.iter().find(|r| r.id == id).unwrap_or_else(|| {
        let ids: Vec<&str> = report.rules.iter().map(|r| r.id.as_str()).collect();
        panic!("no rule {id}; have {ids:?}")
    });
    parse_rule_text(&rule.file_name, &rule.yaml)
        .unwrap_or_else(|p| panic!("{}: {p:?}\n{}", rule.file_name, rule.yaml))
}

fn threshold(spec: &RuleSpec) -> String {
    match &spec.threshold {
        ThresholdSpec::Text(t) => t.clone(),
        ThresholdSpec::Parts { op, value } => format!("{op} {value}"),
    }
}

fn rule_from(yaml: &str) -> RuleSpec {
    parse_rule_text("test.yaml", yaml).unwrap_or_else(|p| panic!("{p:?}\n{yaml}"))
}

fn creates(alerts: &[Alert]) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|a| a.activity == Activity::Create)
        .collect()
}

fn closes(alerts: &[Alert]) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|a| a.activity == Activity::Close)
        .collect()
}

fn records(values: &[serde_json::Value]) -> Vec<Vec<u8>> {
    values.iter().map(|v| v.to_string().into_bytes()).collect()
}

/// A minimal CloudTrail event at `time` (RFC 3339).
fn ct(time: &str, id: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut event = serde_json::json!({
        "eventVersion": "1.08", "eventTime": time, "eventName": "ConsoleLogin",
        "eventSource": "signin.amazonaws.com", "errorMessage": "Failed authentication",
        "recipientAccountId": "111122223333", "eventID": id,
    });
    if let (Some(map), Some(extra)) = (event.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            map.insert(k.clone(), v.clone());
        }
    }
    event
}

// ---------------------------------------------------------------------
// CloudFormation
// ---------------------------------------------------------------------

/// The published CIS / Security Hub patterns, as in the fixture template.
const PATTERNS: &[(&str, &str)] = &[
    ("root-account-usage", r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#),
    ("console-sign-in-failures", r#"{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }"#),
    ("cloud-trail-changes", "{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || ($.eventName = StartLogging) || ($.eventName = StopLogging) }"),
    ("cloud-trail-ec2-instance-changes", "{ ($.eventName = RunInstances) || ($.eventName = RebootInstances) || ($.eventName = StartInstances) || ($.eventName = StopInstances) || ($.eventName = TerminateInstances) }"),
];

#[test]
fn cloudformation_yaml_keeps_every_field() {
    let report = cis_report();
    // 14 controls + S3 bucket activity + EC2 instance changes; the large
    // instance filter's Condition is false by default.
    assert_eq!(report.rules.len(), 16, "{:#?}", report.notes);
    for (id, pattern) in PATTERNS {
        assert_eq!(spec(&report, id).filter, *pattern, "{id}: pattern verbatim");
    }
    let s = spec(&report, "console-sign-in-failures");
    assert_eq!(s.title, "ConsoleSignInFailures");
    assert_eq!(
        s.description,
        "CloudWatch.6 / CIS 4.6: three or more console sign-in failures in five minutes."
    );
    assert_eq!(s.kind, KindSpec::Cloudtrail);
    assert!(
        s.metric.is_none(),
        "MetricValue 1 without default is plain counting"
    );
    assert_eq!(s.aggregate, AggregateSpec::Stat(Statistic::Sum));
    assert!(s.group_by.is_empty());
    assert_eq!(s.window.as_millis_i64(), 300_000);
    assert_eq!(s.slide.map(|d| d.as_millis_i64()), Some(60_000));
    assert_eq!(s.evaluation.periods, 1);
    assert_eq!(s.evaluation.datapoints, Some(1));
    assert_eq!(s.evaluation.treat_missing, Some(TreatMissing::NotBreaching));
    assert_eq!(threshold(&s), ">= 3");
    assert_eq!(
        s.labels.get("sns_topic").map(String::as_str),
        Some("NotifyMe")
    );
    assert_eq!(
        s.labels.get("imported_from").map(String::as_str),
        Some("cloudformation:cis_cloudwatch_alarms.yaml#ConsoleSignInFailuresAlarm")
    );
    // Every action form (!Ref, !GetAtt, !Join with pseudo parameters)
    // resolves to the topic name.
    for rule in &report.rules {
        let s = spec(&report, &rule.id);
        assert_eq!(
            s.labels.get("sns_topic").map(String::as_str),
            Some("NotifyMe"),
            "{}",
            rule.id
        );
    }
    // The seed's S3 alarm: 1-minute period, so no slide; !Sub in the
    // description resolves the LogGroupName default.
    let s3 = spec(&report, "s3-bucket-activity");
    assert_eq!(s3.window.as_millis_i64(), 60_000);
    assert!(s3.slide.is_none());
    assert!(
        s3.description
            .ends_with("(log group CloudTrail/DefaultLogGroup)."),
        "{}",
        s3.description
    );
    assert!(report
        .notes
        .iter()
        .any(|n| n.subject == "EC2LargeInstanceChangesMetricFilter"
            && n.message.contains("condition")));
}

#[test]
fn cloudformation_params_override_defaults_and_conditions() {
    let options = ImportOptions {
        slide: false,
        ..ImportOptions::default()
    };
    let report = cfn(
        "cis_cloudwatch_alarms.yaml",
        &[
            ("AlarmTopicName", "SecOps"),
            ("EnableLargeInstanceAlarm", "true"),
        ],
        &options,
    );
    // The large-instance filter now exists; it has no alarm, so it becomes
    // `>= 1` over 5 minutes with a note.
    assert_eq!(report.rules.len(), 17);
    let large = spec(&report, "ec2-large-instance-changes-metric-filter");
    assert_eq!(threshold(&large), ">= 1");
    assert_eq!(large.window.as_millis_i64(), 300_000);
    assert!(report
        .notes_for("EC2LargeInstanceChangesMetricFilter")
        .iter()
        .any(|n| n.message.contains("has no alarm")));
    let s = spec(&report, "root-account-usage");
    assert_eq!(
        s.labels.get("sns_topic").map(String::as_str),
        Some("SecOps")
    );
    assert!(s.slide.is_none(), "--no-slide");
}

#[test]
fn cloudformation_json_form_imports_like_yaml() {
    let json = cfn("cis_subset.json", &[], &ImportOptions::default());
    let yaml = cis_report();
    assert_eq!(json.rules.len(), 3);
    for rule in &json.rules {
        let a = spec(&json, &rule.id);
        let b = spec(&yaml, &rule.id);
        assert_eq!(a.filter, b.filter, "{}", rule.id);
        assert_eq!(a.title, b.title);
        assert_eq!(a.description, b.description);
        assert_eq!(threshold(&a), threshold(&b));
        assert_eq!(a.window, b.window);
        assert_eq!(a.slide, b.slide);
        assert_eq!(a.evaluation, b.evaluation);
        assert_eq!(a.aggregate, b.aggregate);
        assert_eq!(a.labels.get("sns_topic"), b.labels.get("sns_topic"));
    }
}

#[test]
fn cloudformation_unresolvable_ref_is_reported() {
    let template = r#"
Resources:
  F:
    Type: AWS::Logs::MetricFilter
    Properties:
      LogGroupName: g
      FilterPattern: !Ref PatternParam
      MetricTransformations: [{MetricNamespace: N, MetricName: M, MetricValue: '1'}]
"#;
    let doc = import::cloudformation::parse_template(template).unwrap();
    let set = import::cloudformation::import(&doc, &BTreeMap::new(), "t.yaml").unwrap();
    let report = import::convert(set, &ImportOptions::default(), "t");
    assert!(report.rules.is_empty());
    assert!(report
        .notes
        .iter()
        .any(|n| n.level == NoteLevel::Skipped && n.subject == "F"));
    assert!(report
        .notes
        .iter()
        .any(|n| n.message.contains("Ref PatternParam")));
}

// ---------------------------------------------------------------------
// AWS CLI JSON
// ---------------------------------------------------------------------

#[test]
fn cli_json_keeps_values_dimensions_and_evaluation() {
    let report = cli_report();
    let ids: Vec<&str> = report.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "secret-accessed",
            "denied-calls-per-principal",
            "ssh-reject-bytes",
            "unwatched-deletes",
            "low-bytes"
        ]
    );

    let secret = spec(&report, "secret-accessed");
    assert_eq!(secret.aggregate, AggregateSpec::Stat(Statistic::Avg));
    let metric = secret.metric.as_ref().unwrap();
    assert_eq!(metric.value, serde_json::json!(1));
    assert_eq!(metric.default, Some(0.0));
    assert_eq!(threshold(&secret), "> 1");
    assert_eq!(secret.evaluation.treat_missing, Some(TreatMissing::Missing));
    assert_eq!(
        secret.labels.get("sns_topic").map(String::as_str),
        Some("SecurityAlarms")
    );
    // The seed-001 mistake is flagged.
    let warning = report
        .notes_for("Secret accessed")
        .into_iter()
        .find(|n| n.level == NoteLevel::Warning)
        .expect("Average-on-count warning");
    assert!(warning.message.contains("Sum"), "{}", warning.message);

    let denied = spec(&report, "denied-calls-per-principal");
    assert_eq!(denied.group_by, vec!["userIdentity.arn", "awsRegion"]);
    assert_eq!(denied.evaluation.periods, 3);
    assert_eq!(denied.evaluation.datapoints, Some(2));
    assert_eq!(
        denied.evaluation.treat_missing,
        Some(TreatMissing::Breaching)
    );
    assert_eq!(threshold(&denied), ">= 10");
    assert!(report
        .notes_for("Denied calls per principal")
        .iter()
        .any(|n| n.message.contains("arn:aws:automate:us-east-1:ec2:stop")));

    let ssh = spec(&report, "ssh-reject-bytes");
    assert_eq!(ssh.kind, KindSpec::Vpcflow);
    assert_eq!(
        ssh.metric.as_ref().unwrap().value,
        serde_json::json!("$bytes")
    );
    assert_eq!(ssh.aggregate, AggregateSpec::Stat(Statistic::Max));
    assert_eq!(ssh.window.as_millis_i64(), 600_000);
    assert_eq!(ssh.evaluation.treat_missing, Some(TreatMissing::Ignore));
    assert!(!ssh.enabled, "ActionsEnabled false");
    assert_eq!(
        ssh.labels.get("sns_topic").map(String::as_str),
        Some("NetOps")
    );

    let unwatched = spec(&report, "unwatched-deletes");
    assert_eq!(threshold(&unwatched), ">= 1");
    assert!(!unwatched.labels.contains_key("sns_topic"));

    let low = spec(&report, "low-bytes");
    assert_eq!(threshold(&low), "< 1");
    assert_eq!(
        low.metric.as_ref().unwrap().value,
        serde_json::json!("$.additionalEventData.bytesTransferredOut")
    );

    let skipped: BTreeSet<&str> = report
        .notes
        .iter()
        .filter(|n| n.level == NoteLevel::Skipped)
        .map(|n| n.subject.as_str())
        .collect();
    for name in [
        "Large downloads p99",
        "Large downloads band",
        "CPU high",
        "Security composite",
    ] {
        assert!(skipped.contains(name), "{name} not reported: {skipped:?}");
    }
}

// ---------------------------------------------------------------------
// Terraform
// ---------------------------------------------------------------------

#[test]
fn terraform_plan_keeps_fields_and_resolves_topic_references() {
    let report = terraform_report();
    assert_eq!(report.rules.len(), 2, "{:#?}", report.notes);
    let failures = spec(&report, "cis-4.6-console-sign-in-failures");
    assert_eq!(
        failures.filter,
        r#"{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }"#
    );
    assert_eq!(threshold(&failures), ">= 3");
    assert_eq!(
        failures.evaluation.treat_missing,
        Some(TreatMissing::NotBreaching)
    );
    // The topic ARN is unknown in the plan: resolved through the
    // configuration's reference to aws_sns_topic.security.
    assert_eq!(
        failures.labels.get("sns_topic").map(String::as_str),
        Some("security-alerts")
    );
    let sg = spec(&report, "security-group-changes");
    assert_eq!(sg.group_by, vec!["userIdentity.arn"]);
    assert_eq!(sg.metric.as_ref().unwrap().default, Some(0.0));
    assert_eq!(sg.aggregate, AggregateSpec::Stat(Statistic::SampleCount));
    assert_eq!(sg.evaluation.periods, 2);
    assert_eq!(sg.evaluation.datapoints, Some(1));
    assert_eq!(threshold(&sg), "> 0");
    assert_eq!(sg.window.as_millis_i64(), 120_000);
    assert_eq!(sg.slide.map(|d| d.as_millis_i64()), Some(60_000));
    assert_eq!(
        sg.labels.get("sns_topic").map(String::as_str),
        Some("netops")
    );
}

// ---------------------------------------------------------------------
// Every output validates; files and dry run
// ---------------------------------------------------------------------

#[test]
fn every_generated_rule_passes_the_rule_loader() {
    let mut count = 0;
    for report in [
        cis_report(),
        cfn("cis_subset.json", &[], &ImportOptions::default()),
        cli_report(),
        terraform_report(),
    ] {
        for rule in &report.rules {
            parse_rule_text(&rule.file_name, &rule.yaml)
                .unwrap_or_else(|p| panic!("{}: {p:?}\n{}", rule.file_name, rule.yaml));
            count += 1;
        }
        assert!(
            !report
                .notes
                .iter()
                .any(|n| n.message.contains("does not validate")),
            "{:#?}",
            report.notes
        );
    }
    assert_eq!(count, 16 + 3 + 5 + 2);
}

#[test]
fn cli_writes_rule_files_and_report_and_dry_run_writes_nothing() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rules");
    let template = fixture("cis_cloudwatch_alarms.yaml");
    let cli = trailwatch::cli::Cli::parse_from([
        "trailwatch",
        "import",
        "cloudformation",
        template.to_str().unwrap(),
        "--param",
        "AlarmTopicName=Pager",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(trailwatch::cli::main_with(cli), 0);
    let loaded = trailwatch::rules::load_dir(&out).unwrap();
    assert_eq!(loaded.len(), 16);
    assert!(loaded
        .iter()
        .all(|r| r.spec.labels.get("sns_topic").map(String::as_str) == Some("Pager")));
    let report_md = std::fs::read_to_string(out.join("IMPORT_REPORT.md")).unwrap();
    assert!(report_md.contains("`console-sign-in-failures.yaml`"));

    let dry = dir.path().join("dry");
    let cli = trailwatch::cli::Cli::parse_from([
        "trailwatch",
        "import",
        "terraform",
        fixture("terraform-plan.json").to_str().unwrap(),
        "--out",
        dry.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(trailwatch::cli::main_with(cli), 0);
    assert!(!dry.exists(), "--dry-run wrote files");
}

#[test]
fn dry_run_table_maps_filter_to_rule_and_alarm_to_evaluation() {
    let table = import::render_dry_run(&cli_report());
    for line in [
        "== Denied calls per principal → denied-calls-per-principal.yaml",
        "dimensions    - Principal=$.userIdentity.arn, Region=$.awsRegion",
        "+ group_by: [userIdentity.arn, awsRegion]",
        "evaluation    - EvaluationPeriods 3, DatapointsToAlarm 2",
        "+ 2 of 3",
        "+ treat_missing: breaching",
        "+ labels.sns_topic: SecurityAlarms",
        "== not carried over",
    ] {
        assert!(table.contains(line), "missing {line:?} in\n{table}");
    }
}

// ---------------------------------------------------------------------
// The bar: imported CIS rules alert like the built-in pack
// ---------------------------------------------------------------------

/// (control, built-in id or `cis-N.` prefix, imported rule id, eventIDs of
/// the events at which the alarm must fire in shared_events.jsonl).
const CONTROLS: &[(&str, &str, &str, &[&str])] = &[
    (
        "CloudWatch.1",
        "cis-4.3-",
        "root-account-usage",
        &["cw1-hit"],
    ),
    (
        "CloudWatch.2",
        "cis-4.1-",
        "unauthorized-api-calls",
        &["cw2-hit-unauth", "cw2-hit-denied"],
    ),
    (
        "CloudWatch.3",
        "cis-4.2-",
        "console-sign-in-without-mfa",
        &["cw3-hit"],
    ),
    (
        "CloudWatch.4",
        "cis-4.4-",
        "cloud-trail-iam-policy-changes",
        &["cw4-hit", "cw4-hit-2"],
    ),
    (
        "CloudWatch.5",
        "cis-4.5-",
        "cloud-trail-changes",
        &["cw5-hit"],
    ),
    (
        "CloudWatch.6",
        "cis-4.6-",
        "console-sign-in-failures",
        &["cw6-hit-3"],
    ),
    (
        "CloudWatch.7",
        "cis-4.7-",
        "disable-or-delete-cmk",
        &["cw7-hit"],
    ),
    (
        "CloudWatch.8",
        "cis-4.8-",
        "s3-bucket-policy-changes",
        &["cw8-hit"],
    ),
    (
        "CloudWatch.9",
        "cis-4.9-",
        "aws-config-changes",
        &["cw9-hit"],
    ),
    (
        "CloudWatch.10",
        "cis-4.10-",
        "cloud-trail-security-group-changes",
        &["cw10-hit"],
    ),
    (
        "CloudWatch.11",
        "cis-4.11-",
        "cloud-trail-network-acl-changes",
        &["cw11-hit"],
    ),
    (
        "CloudWatch.12",
        "cis-4.12-",
        "cloud-trail-gateway-changes",
        &["cw12-hit"],
    ),
    (
        "CloudWatch.13",
        "cis-4.13-",
        "route-table-changes",
        &["cw13-hit"],
    ),
    (
        "CloudWatch.14",
        "cis-4.14-",
        "cloud-trail-vpc-changes",
        &["cw14-hit"],
    ),
    (
        "seed S3 bucket activity",
        "cis-4.8-",
        "s3-bucket-activity",
        &["cw8-hit"],
    ),
    (
        "seed EC2 instance changes",
        "ec2-instance-changes",
        "cloud-trail-ec2-instance-changes",
        &["ec2-hit"],
    ),
];

/// The shared fixture's records and a map from event time to eventID.
fn shared_events() -> (Vec<Vec<u8>>, BTreeMap<i64, String>) {
    let text = read("shared_events.jsonl");
    let mut by_time = BTreeMap::new();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let time = chrono::DateTime::parse_from_rfc3339(event["eventTime"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        let id = event["eventID"].as_str().unwrap().to_string();
        assert!(
            by_time.insert(time, id).is_none(),
            "event times must be unique"
        );
        out.push(line.as_bytes().to_vec());
    }
    (out, by_time)
}

/// How alerts are compared. The built-in rules group by
/// `recipientAccountId` and run 5-minute tumbling windows that fire
/// eagerly; the imported ones have no dimensions (key `[]`) and evaluate
/// the alarm (1 of 1, not_breaching) over 5-minute periods re-evaluated
/// every minute. Keys and window starts therefore differ by construction,
/// so each Create alert is identified by the event that made it fire: the
/// event at the alert's `last_seen` time (unique in the fixture). The
/// fixture keeps incidents 10 minutes apart, each inside one tumbling
/// window, with one account, so both rule families must fire on exactly
/// the same events. (A burst straddling a window boundary is where they
/// legitimately differ; see `sliding_catches_a_burst_straddling_a_boundary_once`.)
fn triggering_events(spec: &RuleSpec, by_time: &BTreeMap<i64, String>) -> BTreeSet<String> {
    let (records, _) = shared_events();
    let alerts = run_rule(spec, records).unwrap();
    creates(&alerts)
        .iter()
        .map(|a| {
            by_time
                .get(&a.last_seen_ms)
                .cloned()
                .unwrap_or_else(|| format!("<no event at {}>", a.last_seen_ms))
        })
        .collect()
}

#[test]
fn imported_controls_fire_on_exactly_the_expected_events() {
    let report = cis_report();
    let (_, by_time) = shared_events();
    let mut failures = Vec::new();
    for (control, _, id, expected) in CONTROLS {
        let got = triggering_events(&spec(&report, id), &by_time);
        let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        if got != want {
            failures.push(format!(
                "{control} ({id}): fired on {got:?}, expected {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn imported_rules_alert_like_the_builtin_pack() {
    let builtin = trailwatch::rules::builtin_rules().expect("built-in pack parses");
    let report = cis_report();
    let (_, by_time) = shared_events();
    let mut failures = Vec::new();
    let mut compared = 0;
    for (control, builtin_id, id, _) in CONTROLS {
        let found = builtin.iter().find(|r| {
            if builtin_id.ends_with('-') {
                r.spec.id.starts_with(builtin_id)
            } else {
                r.spec.id == *builtin_id
            }
        });
        let Some(builtin_rule) = found else {
            failures.push(format!("{control}: no built-in rule {builtin_id}*"));
            continue;
        };
        compared += 1;
        let imported = triggering_events(&spec(&report, id), &by_time);
        let native = triggering_events(&builtin_rule.spec, &by_time);
        if imported != native {
            failures.push(format!(
                "{control}: imported {id} fired on {imported:?}, built-in {} on {native:?}",
                builtin_rule.spec.id
            ));
        }
    }
    assert_eq!(
        compared,
        CONTROLS.len(),
        "every control has a built-in twin"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------
// Alarm semantics through the engine
// ---------------------------------------------------------------------

fn failures_rule(extra: &str) -> RuleSpec {
    rule_from(&format!(
        "id: t\ntitle: t\nkind: cloudtrail\nfilter: '{{ $.errorMessage = \"Failed authentication\" }}'\n{extra}"
    ))
}

#[test]
fn m_of_n_alarms_on_non_consecutive_breaches() {
    // 2 of 3 five-minute periods with >= 2 failures: breach, no breach
    // (one failure), breach → ALARM once, in the third period.
    let rule =
        failures_rule("window: 5m\nthreshold: '>= 2'\nevaluation: {periods: 3, datapoints: 2}\n");
    let events = [
        ct("2024-03-01T12:00:10Z", "a1", serde_json::json!({})),
        ct("2024-03-01T12:01:10Z", "a2", serde_json::json!({})),
        ct("2024-03-01T12:06:10Z", "b1", serde_json::json!({})),
        ct("2024-03-01T12:11:10Z", "c1", serde_json::json!({})),
        ct("2024-03-01T12:12:10Z", "c2", serde_json::json!({})),
    ];
    let alerts = run_rule(&rule, records(&events)).unwrap();
    let c = creates(&alerts);
    assert_eq!(c.len(), 1, "{alerts:#?}");
    assert_eq!(c[0].window_start_ms, 1_709_295_000_000, "the 12:10 period");
    // Breaches in periods 1 and 4 are never 2 within 3 periods.
    let events = [
        ct("2024-03-01T12:00:10Z", "a1", serde_json::json!({})),
        ct("2024-03-01T12:01:10Z", "a2", serde_json::json!({})),
        ct("2024-03-01T12:06:10Z", "b1", serde_json::json!({})),
        ct("2024-03-01T12:11:10Z", "c1", serde_json::json!({})),
        ct("2024-03-01T12:16:10Z", "d1", serde_json::json!({})),
        ct("2024-03-01T12:17:10Z", "d2", serde_json::json!({})),
    ];
    let alerts = run_rule(&rule, records(&events)).unwrap();
    assert!(creates(&alerts).is_empty(), "{alerts:#?}");
}

/// One failure at 12:01, nothing for two periods, one failure at 12:16;
/// a 1-of-1 alarm on `>= 1` per 5 minutes. The second key (`other`)
/// keeps periods closing in between.
fn treat_missing_run(mode: &str) -> Vec<Alert> {
    let rule = failures_rule(&format!(
        "group_by: [userName]\nwindow: 5m\nthreshold: '>= 1'\nevaluation: {{periods: 2, datapoints: 1, treat_missing: {mode}}}\n"
    ));
    let events = [
        ct(
            "2024-03-01T12:01:00Z",
            "a",
            serde_json::json!({"userName": "alice"}),
        ),
        ct(
            "2024-03-01T12:06:00Z",
            "o1",
            serde_json::json!({"userName": "other", "errorMessage": "x"}),
        ),
        ct(
            "2024-03-01T12:16:00Z",
            "b",
            serde_json::json!({"userName": "alice"}),
        ),
    ];
    run_rule(&rule, records(&events)).unwrap()
}

#[test]
fn treat_missing_not_breaching_returns_to_ok_and_alarms_again() {
    // CloudWatch: ALARM at 12:00 (Create), 12:05 still in the 2-period
    // range, 12:10 all missing → OK (Close), 12:15 ALARM again (Create).
    let alerts = treat_missing_run("not_breaching");
    assert_eq!(creates(&alerts).len(), 2, "{alerts:#?}");
    assert_eq!(closes(&alerts).len(), 1, "{alerts:#?}");
}

#[test]
fn treat_missing_breaching_stays_in_alarm() {
    // Missing periods count as breaching: ALARM from the first failure
    // and never back to OK, so one Create and no Close.
    let alerts = treat_missing_run("breaching");
    assert_eq!(creates(&alerts).len(), 1, "{alerts:#?}");
    assert!(closes(&alerts).is_empty(), "{alerts:#?}");
}

#[test]
fn treat_missing_ignore_keeps_the_state() {
    // All-missing ranges keep the last state (ALARM): one Create, no Close.
    let alerts = treat_missing_run("ignore");
    assert_eq!(creates(&alerts).len(), 1, "{alerts:#?}");
    assert!(closes(&alerts).is_empty(), "{alerts:#?}");
}

#[test]
fn treat_missing_missing_goes_insufficient_data_without_close() {
    // All-missing → INSUFFICIENT_DATA, which is not OK: no Close; the
    // 12:15 failure enters ALARM again from INSUFFICIENT_DATA (Create).
    let alerts = treat_missing_run("missing");
    assert_eq!(creates(&alerts).len(), 2, "{alerts:#?}");
    assert!(closes(&alerts).is_empty(), "{alerts:#?}");
}

/// 3 failures by alice in 12:00-12:05 → ALARM (Create, key alice); the
/// next period has data for alice below threshold → OK (Close, same alert
/// id). An explicit `treat_missing: missing` (what imports write for
/// CloudWatch's default) is alarm mode too: it ran in window mode, with
/// no Close, as if the key were absent.
#[test]
fn create_on_alarm_and_close_on_return_to_ok() {
    for treat_missing in ["not_breaching", "missing"] {
        create_on_alarm_and_close_on_return_to_ok_with(treat_missing);
    }
}

fn create_on_alarm_and_close_on_return_to_ok_with(treat_missing: &str) {
    let rule = failures_rule(&format!(
        "group_by: [userName]\nwindow: 5m\nthreshold: '>= 3'\nevaluation: {{periods: 1, treat_missing: {treat_missing}}}\n",
    ));
    let events = [
        ct(
            "2024-03-01T12:00:10Z",
            "1",
            serde_json::json!({"userName": "alice"}),
        ),
        ct(
            "2024-03-01T12:01:10Z",
            "2",
            serde_json::json!({"userName": "alice"}),
        ),
        ct(
            "2024-03-01T12:02:10Z",
            "3",
            serde_json::json!({"userName": "alice"}),
        ),
        ct(
            "2024-03-01T12:06:10Z",
            "4",
            serde_json::json!({"userName": "alice"}),
        ),
    ];
    let alerts = run_rule(&rule, records(&events)).unwrap();
    let c = creates(&alerts);
    let x = closes(&alerts);
    assert_eq!((c.len(), x.len()), (1, 1), "{treat_missing}: {alerts:#?}");
    assert_eq!(c[0].key, vec!["alice"]);
    assert_eq!(c[0].id, x[0].id, "Close carries the Create's alert id");
    assert_eq!(
        c[0].last_seen_ms, 1_709_294_530_000,
        "fires on the third failure"
    );
}

#[test]
fn metric_value_from_json_field_ignores_absent_and_non_numeric() {
    let rule = rule_from(
        "id: t\ntitle: t\nkind: cloudtrail\nfilter: '{ $.eventName = GetObject }'\nmetric: {value: $.bytes}\naggregate: Sum\nwindow: 5m\nthreshold: '>= 100'\n",
    );
    let events = [
        ct(
            "2024-03-01T12:00:10Z",
            "1",
            serde_json::json!({"eventName": "GetObject", "bytes": 60}),
        ),
        ct(
            "2024-03-01T12:00:20Z",
            "2",
            serde_json::json!({"eventName": "GetObject", "bytes": "many"}),
        ),
        ct(
            "2024-03-01T12:00:30Z",
            "3",
            serde_json::json!({"eventName": "GetObject"}),
        ),
        ct(
            "2024-03-01T12:00:40Z",
            "4",
            serde_json::json!({"eventName": "GetObject", "bytes": 50}),
        ),
    ];
    let alerts = run_rule(&rule, records(&events)).unwrap();
    let c = creates(&alerts);
    assert_eq!(c.len(), 1, "{alerts:#?}");
    assert_eq!(c[0].value, 110.0);
    // SampleCount counts only the two events that published a value.
    let count_rule = rule_from(
        "id: t\ntitle: t\nkind: cloudtrail\nfilter: '{ $.eventName = GetObject }'\nmetric: {value: $.bytes}\naggregate: SampleCount\nwindow: 5m\nthreshold: '>= 3'\n",
    );
    let alerts = run_rule(&count_rule, records(&events)).unwrap();
    assert!(creates(&alerts).is_empty(), "{alerts:#?}");
}

#[test]
fn metric_value_from_space_delimited_name() {
    let rule = rule_from(
        "id: t\ntitle: t\nkind: vpcflow\nfilter: '[version, account, eni, source, destination, srcport, destport=22, protocol, packets, bytes, windowstart, windowend, action=REJECT, flowlogstatus]'\nmetric: {value: $bytes}\naggregate: sum\nwindow: 5m\nthreshold: '>= 1000'\n",
    );
    let lines: Vec<Vec<u8>> = [
        "2 111122223333 eni-0a1 203.0.113.9 10.0.0.5 50000 22 6 10 600 1709294410 1709294470 REJECT OK",
        "2 111122223333 eni-0a1 203.0.113.9 10.0.0.5 50001 22 6 9 500 1709294420 1709294480 REJECT OK",
        "2 111122223333 eni-0a1 203.0.113.9 10.0.0.5 50002 22 6 90 9000 1709294430 1709294490 ACCEPT OK",
        "2 111122223333 eni-0a1 203.0.113.9 10.0.0.5 50003 443 6 90 9000 1709294440 1709294500 REJECT OK",
    ]
    .iter()
    .map(|l| l.as_bytes().to_vec())
    .collect();
    let alerts = run_rule(&rule, lines).unwrap();
    let c = creates(&alerts);
    assert_eq!(c.len(), 1, "{alerts:#?}");
    assert_eq!(c[0].value, 1100.0);
}

#[test]

fn default_value_fills_empty_periods() {
    // Alarm when a period has no failures at all. With default 0 the empty
    // 12:05 period is a 0 datapoint (< 1: ALARM); without it the period is
    // missing and nothing alarms.
    let with_default = failures_rule(
        "metric: {value: 1, default: 0}\naggregate: sum\nwindow: 5m\nthreshold: '< 1'\nevaluation: {periods: 1}\n",
    );
    let without = failures_rule("aggregate: sum\nwindow: 5m\nthreshold: '< 1'\nevaluation: {periods: 1, treat_missing: missing}\n");
    let events = [
        ct("2024-03-01T12:01:00Z", "a", serde_json::json!({})),
        ct("2024-03-01T12:11:00Z", "b", serde_json::json!({})),
    ];
    let alerts = run_rule(&with_default, records(&events)).unwrap();
    assert_eq!(creates(&alerts).len(), 1, "{alerts:#?}");
    let alerts = run_rule(&without, records(&events)).unwrap();
    assert!(creates(&alerts).is_empty(), "{alerts:#?}");
}

#[test]
fn average_and_sum_differ_on_the_same_data() {
    // Seed 001: three secret reads in five minutes; MetricValue 1.
    // Sum = 3 > 1 alarms; Average = 1, never > 1.
    let events = [
        ct(
            "2024-03-01T12:00:10Z",
            "1",
            serde_json::json!({"eventName": "GetSecretValue"}),
        ),
        ct(
            "2024-03-01T12:01:10Z",
            "2",
            serde_json::json!({"eventName": "GetSecretValue"}),
        ),
        ct(
            "2024-03-01T12:02:10Z",
            "3",
            serde_json::json!({"eventName": "GetSecretValue"}),
        ),
    ];
    let rule = |stat: &str| {
        rule_from(&format!(
            "id: t\ntitle: t\nkind: cloudtrail\nfilter: '{{ $.eventName = GetSecretValue }}'\nmetric: {{value: 1}}\naggregate: {stat}\nwindow: 5m\nthreshold: '> 1'\n"
        ))
    };
    let sum = run_rule(&rule("Sum"), records(&events)).unwrap();
    let avg = run_rule(&rule("Average"), records(&events)).unwrap();
    assert_eq!(creates(&sum).len(), 1);
    // Sum fires eagerly on the second read (2 > 1); Average stays at 1.
    assert_eq!(creates(&sum)[0].value, 2.0);
    assert!(creates(&avg).is_empty(), "{avg:#?}");
}

#[test]
fn sliding_catches_a_burst_straddling_a_boundary_once() {
    // Three failures at 12:03:30, 12:04:30 and 12:05:30: no 5-minute
    // tumbling window holds three, the sliding 5-minute window ending at
    // 12:06 does, and the next minutes' windows must not alert again.
    let events = [
        ct("2024-03-01T12:03:30Z", "1", serde_json::json!({})),
        ct("2024-03-01T12:04:30Z", "2", serde_json::json!({})),
        ct("2024-03-01T12:05:30Z", "3", serde_json::json!({})),
    ];
    let tumbling = failures_rule("window: 5m\nthreshold: '>= 3'\n");
    let sliding = failures_rule(
        "window: 5m\nslide: 1m\nthreshold: '>= 3'\nevaluation: {periods: 1, treat_missing: not_breaching}\n",
    );
    assert!(creates(&run_rule(&tumbling, records(&events)).unwrap()).is_empty());
    let alerts = run_rule(&sliding, records(&events)).unwrap();
    assert_eq!(creates(&alerts).len(), 1, "{alerts:#?}");
}

// ---------------------------------------------------------------------
// Terraform HCL
// ---------------------------------------------------------------------

fn hcl_module(vars: &[(&str, &str)]) -> (Report, String) {
    let dir = fixture("terraform-hcl");
    let source = |name: &str| import::hcl::SourceFile {
        name: name.to_string(),
        text: std::fs::read_to_string(dir.join(name)).unwrap(),
    };
    let files = [source("main.tf"), source("variables.tf")];
    let tfvars = [source("terraform.tfvars")];
    let vars: BTreeMap<String, serde_json::Value> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), import::hcl::var_value(v)))
        .collect();
    let set = import::hcl::import(&files, &tfvars, &vars).unwrap();
    let options = ImportOptions {
        format: "terraform".into(),
        ..ImportOptions::default()
    };
    (
        import::convert(set, &options, "terraform-hcl"),
        files[0].text.clone(),
    )
}

/// `main.tf:LINE:COLUMN` of the first occurrence of `needle` in `text`.
fn position(text: &str, needle: &str) -> String {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in main.tf"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap().chars().count() + 1;
    format!("main.tf:{line}:{column}")
}

fn note_with<'a>(report: &'a Report, subject: &str, level: NoteLevel, text: &str) -> &'a str {
    report
        .notes
        .iter()
        .find(|n| n.subject == subject && n.level == level && n.message.contains(text))
        .map(|n| n.message.as_str())
        .unwrap_or_else(|| {
            panic!(
                "no {level:?} note on {subject} with {text:?}: {:#?}",
                report.notes
            )
        })
}

#[test]
fn terraform_hcl_resolves_variables_locals_and_references() {
    let (report, main) = hcl_module(&[]);
    let ids: BTreeSet<&str> = report.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([
            "bastion-signin-failures",
            "cis-4.3-root-usage",
            "cis-4.6-console-sign-in-failures"
        ]),
        "{:#?}",
        report.notes
    );

    // The alarm's metric comes from the filter through references; the
    // threshold from terraform.tfvars; the topic from aws_sns_topic's name
    // (a variable default).
    let failures = spec(&report, "cis-4.6-console-sign-in-failures");
    assert_eq!(
        failures.filter,
        r#"{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }"#
    );
    assert_eq!(failures.title, "cis-4.6-console-sign-in-failures");
    assert_eq!(threshold(&failures), ">= 3");
    assert_eq!(failures.window.as_millis_i64(), 300_000);
    assert_eq!(
        failures.evaluation.treat_missing,
        Some(TreatMissing::NotBreaching)
    );
    assert_eq!(
        failures.labels.get("sns_topic").map(String::as_str),
        Some("cis-alarms")
    );
    assert_eq!(
        failures.labels.get("cloudwatch_metric").map(String::as_str),
        Some("CISBenchmark/ConsoleSigninFailureCount")
    );
    // What could not be resolved is dropped with its position.
    let subject = "aws_cloudwatch_metric_alarm.console_signin_failures";
    let description = note_with(&report, subject, NoteLevel::Warning, "alarm_description");
    assert!(
        description.contains(&position(&main, "var.environment"))
            && description
                .contains("variable `environment` has no default: pass --var environment=VALUE"),
        "{description}"
    );
    assert!(failures.description.is_empty());
    let pager = note_with(&report, subject, NoteLevel::Warning, "alarm_actions");
    assert!(
        pager.contains(&position(&main, "data.aws_sns_topic.pager.arn")),
        "{pager}"
    );

    // Heredoc pattern, default value, M of N.
    let root = spec(&report, "cis-4.3-root-usage");
    assert_eq!(root.filter, PATTERNS[0].1);
    assert_eq!(root.metric.as_ref().unwrap().default, Some(0.0));
    assert_eq!(root.evaluation.periods, 3);
    assert_eq!(root.evaluation.datapoints, Some(2));

    // Skipped, each with file:line:column and the reason.
    let from_file = note_with(
        &report,
        "aws_cloudwatch_log_metric_filter.from_file",
        NoteLevel::Skipped,
        "`pattern` cannot be resolved statically",
    );
    assert!(
        from_file.contains(&position(&main, "file(\"${path.module}/pattern.txt\")"))
            && from_file.contains("function call `file(...)`"),
        "{from_file}"
    );
    let for_each = note_with(
        &report,
        "aws_cloudwatch_log_metric_filter.controls",
        NoteLevel::Skipped,
        "for_each",
    );
    assert!(
        for_each.starts_with(&position(
            &main,
            "resource \"aws_cloudwatch_log_metric_filter\" \"controls\""
        )),
        "{for_each}"
    );
    note_with(
        &report,
        "aws_cloudwatch_log_metric_filter.ec2_changes",
        NoteLevel::Skipped,
        "`count` is 0",
    );
    let module = note_with(&report, "module.org_trail", NoteLevel::Info, "not followed");
    assert!(
        module.starts_with(&position(&main, "module \"org_trail\"")),
        "{module}"
    );
    // Attributes the importer does not read are not evaluated.
    assert!(
        report.notes.iter().all(|n| !n.message.contains("`tags`")),
        "{:#?}",
        report.notes
    );
    // Every generated rule loads.
    for rule in &report.rules {
        spec(&report, &rule.id);
    }
}

#[test]
fn terraform_hcl_var_overrides_win_over_tfvars() {
    let (report, _) = hcl_module(&[("console_failure_threshold", "5"), ("environment", "prod")]);
    let failures = spec(&report, "cis-4.6-console-sign-in-failures");
    assert_eq!(threshold(&failures), ">= 5");
    assert_eq!(failures.description, "Failed console sign-ins in prod");
    assert!(report
        .notes_for("aws_cloudwatch_metric_alarm.console_signin_failures")
        .iter()
        .all(|n| !n.message.contains("alarm_description")));
}

#[test]
fn terraform_hcl_unresolved_alarm_metric_skips_the_alarm_with_position() {
    let text = r#"
variable "ns" {}
resource "aws_cloudwatch_metric_alarm" "a" {
  alarm_name          = "a"
  metric_name         = "M"
  namespace           = var.ns
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
}
"#;
    let files = [import::hcl::SourceFile {
        name: "alarms.tf".into(),
        text: text.into(),
    }];
    let set = import::hcl::import(&files, &[], &BTreeMap::new()).unwrap();
    assert!(set.alarms.is_empty());
    assert_eq!(set.notes.len(), 1, "{:#?}", set.notes);
    assert_eq!(set.notes[0].level, NoteLevel::Skipped);
    assert_eq!(
        set.notes[0].message,
        "`namespace` cannot be resolved statically: alarms.tf:6:25: variable `ns` has no default: pass --var ns=VALUE"
    );
}

#[test]
fn terraform_hcl_actions_enabled_from_a_string_variable_is_a_bool() {
    // Terraform converts the strings "true" and "false" to a bool
    // attribute; `actions_enabled = var.paging` with a string default of
    // "false" is a disabled alarm.
    let text = |default: &str| {
        format!(
            r#"
variable "paging" {{ default = {default} }}
resource "aws_cloudwatch_metric_alarm" "a" {{
  alarm_name          = "a"
  metric_name         = "M"
  namespace           = "N"
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  actions_enabled     = var.paging
}}
"#
        )
    };
    for (default, enabled) in [
        ("\"false\"", false),
        ("\"true\"", true),
        ("false", false),
        ("true", true),
    ] {
        let files = [import::hcl::SourceFile {
            name: "alarms.tf".into(),
            text: text(default),
        }];
        let set = import::hcl::import(&files, &[], &BTreeMap::new()).unwrap();
        assert_eq!(set.alarms.len(), 1, "{:#?}", set.notes);
        assert_eq!(
            set.alarms[0].actions_enabled, enabled,
            "default = {default}"
        );
    }
}

#[test]
fn terraform_hcl_syntax_error_names_file_and_line() {
    let files = [import::hcl::SourceFile {
        name: "broken.tf".into(),
        text: "resource \"aws_cloudwatch_metric_alarm\" \"a\" {\n  alarm_name = \"a\"\n  threshold = \n}\n".into(),
    }];
    let e = import::hcl::import(&files, &[], &BTreeMap::new()).unwrap_err();
    assert_eq!(e.class(), trailwatch::error::ErrorClass::User);
    let text = e.to_string();
    // Line 3, right after `threshold = `.
    assert!(text.contains("broken.tf:3:15: invalid HCL"), "{text}");
}

#[test]
fn cli_imports_a_terraform_module_directory() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rules");
    let cli = trailwatch::cli::Cli::parse_from([
        "trailwatch",
        "import",
        "terraform",
        fixture("terraform-hcl").to_str().unwrap(),
        "--var",
        "environment=staging",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(trailwatch::cli::main_with(cli), 0);
    let loaded = trailwatch::rules::load_dir(&out).unwrap();
    assert_eq!(loaded.len(), 3);
    let failures = loaded
        .iter()
        .find(|r| r.spec.id == "cis-4.6-console-sign-in-failures")
        .unwrap();
    assert_eq!(
        failures.spec.description,
        "Failed console sign-ins in staging"
    );
    let report_md = std::fs::read_to_string(out.join("IMPORT_REPORT.md")).unwrap();
    assert!(report_md.contains("main.tf:"), "{report_md}");

    // Importing again into the same directory keeps a rule edited since:
    // nothing is written (exit 2) unless --force.
    let edited = out.join("cis-4.6-console-sign-in-failures.yaml");
    std::fs::write(&edited, "# tuned by hand\n").unwrap();
    let module = fixture("terraform-hcl");
    let again = |force: bool| {
        let mut args = vec![
            "trailwatch",
            "import",
            "terraform",
            module.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(force.then_some("--force"));
        trailwatch::cli::main_with(trailwatch::cli::Cli::parse_from(args))
    };
    assert_eq!(again(false), 2);
    assert_eq!(
        std::fs::read_to_string(&edited).unwrap(),
        "# tuned by hand\n"
    );
    assert_eq!(again(true), 0);
    assert!(std::fs::read_to_string(&edited)
        .unwrap()
        .contains("id: cis-4.6-console-sign-in-failures"));
}

// ---------------------------------------------------------------------
// Alarm dimensions: pinned values → where:, unpinned → group_by
// ---------------------------------------------------------------------

fn dimension_reports() -> Vec<(&'static str, Report)> {
    let read_dim = |name: &str| read(&format!("dimensions/{name}"));
    let doc = import::cloudformation::parse_template(&read_dim("cloudformation.yaml")).unwrap();
    let cfn =
        import::cloudformation::import(&doc, &BTreeMap::new(), "cloudformation.yaml").unwrap();
    let filters: serde_json::Value =
        serde_json::from_str(&read_dim("describe-metric-filters.json")).unwrap();
    let alarms: serde_json::Value =
        serde_json::from_str(&read_dim("describe-alarms.json")).unwrap();
    let cli = import::cli_json::import(&filters, &alarms, ("filters.json", "alarms.json")).unwrap();
    let plan: serde_json::Value = serde_json::from_str(&read_dim("terraform-plan.json")).unwrap();
    let tf = import::terraform::import(&plan, "terraform-plan.json").unwrap();
    [
        ("cloudformation", cfn),
        ("aws-cli", cli),
        ("terraform-json", tf),
    ]
    .into_iter()
    .map(|(format, set)| {
        (
            format,
            import::convert(set, &ImportOptions::default(), format),
        )
    })
    .collect()
}

#[test]
fn pinned_dimension_becomes_where_and_unpinned_becomes_group_by_in_every_format() {
    for (format, report) in dimension_reports() {
        let ids: BTreeSet<&str> = report.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            BTreeSet::from(["pinned-ip", "per-ip"]),
            "{format}: {:#?}",
            report.notes
        );

        let pinned = spec(&report, "pinned-ip");
        assert!(pinned.group_by.is_empty(), "{format}");
        assert_eq!(pinned.predicates.len(), 1, "{format}");
        assert_eq!(pinned.predicates[0].field, "sourceIPAddress", "{format}");
        assert_eq!(
            pinned.predicates[0].equals,
            Some(trailwatch::filter::Scalar::Text("203.0.113.9".into())),
            "{format}"
        );

        let per_ip = spec(&report, "per-ip");
        assert_eq!(per_ip.group_by, vec!["sourceIPAddress"], "{format}");
        assert!(per_ip.predicates.is_empty(), "{format}");
        let warning = note_with(&report, "PerIp", NoteLevel::Warning, "sourceIPAddress");
        assert!(warning.contains("INSUFFICIENT_DATA"), "{format}: {warning}");

        let foreign = note_with(
            &report,
            "ForeignDimension",
            NoteLevel::Skipped,
            "Region=us-east-1",
        );
        assert!(
            foreign.contains("never receives data"),
            "{format}: {foreign}"
        );
    }
}

#[test]
fn terraform_hcl_pinned_dimension_becomes_where() {
    let (report, _) = hcl_module(&[]);
    let bastion = spec(&report, "bastion-signin-failures");
    assert!(bastion.group_by.is_empty());
    assert_eq!(bastion.predicates.len(), 1);
    assert_eq!(bastion.predicates[0].field, "sourceIPAddress");
    assert_eq!(
        bastion.predicates[0].equals,
        Some(trailwatch::filter::Scalar::Text("203.0.113.9".into()))
    );
}

#[test]
fn pinned_series_alerts_only_for_its_value_and_unpinned_per_value() {
    let reports = dimension_reports();
    let report = &reports[0].1;
    let mut events = Vec::new();
    for (i, ip) in ["203.0.113.9", "198.51.100.7"].iter().enumerate() {
        for j in 0..3 {
            events.push(ct(
                &format!("2024-03-01T12:0{}:{}0Z", i, j + 1),
                &format!("{ip}-{j}"),
                serde_json::json!({"sourceIPAddress": ip}),
            ));
        }
    }
    // The pinned alarm's series: only 203.0.113.9's three failures count.
    let pinned = run_rule(&spec(report, "pinned-ip"), records(&events)).unwrap();
    let c = creates(&pinned);
    assert_eq!(c.len(), 1, "{pinned:#?}");
    assert_eq!(c[0].value, 3.0);
    assert!(
        c[0].sample_ids
            .iter()
            .all(|id| id.starts_with("203.0.113.9")),
        "{:?}",
        c[0].sample_ids
    );
    // Without the pin, each address is its own series.
    let per_ip = run_rule(&spec(report, "per-ip"), records(&events)).unwrap();
    let keys: BTreeSet<Vec<String>> = creates(&per_ip).iter().map(|a| a.key.clone()).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            vec!["198.51.100.7".to_string()],
            vec!["203.0.113.9".to_string()]
        ])
    );
    // Two failures of the pinned address are not enough, whatever the others do.
    let mut fewer = events.clone();
    fewer.remove(0);
    let pinned = run_rule(&spec(report, "pinned-ip"), records(&fewer)).unwrap();
    assert!(creates(&pinned).is_empty(), "{pinned:#?}");
}

fn delimited_pair(pattern: &str, dimension: (&str, &str), pin: (&str, &str)) -> Report {
    let filter = import::ImportedFilter {
        name: "F".into(),
        pattern: pattern.into(),
        metric_name: "M".into(),
        namespace: "N".into(),
        value: "1".into(),
        dimensions: vec![(dimension.0.into(), dimension.1.into())],
        source: "test".into(),
        ..Default::default()
    };
    let alarm = import::ImportedAlarm {
        name: "A".into(),
        metric_name: "M".into(),
        namespace: "N".into(),
        statistic: Some("Sum".into()),
        period_s: Some(300),
        comparison: "GreaterThanOrEqualToThreshold".into(),
        threshold: Some(1.0),
        actions_enabled: true,
        dimensions: vec![(pin.0.into(), pin.1.into())],
        source: "test".into(),
        ..Default::default()
    };
    let set = import::ImportSet {
        filters: vec![filter],
        alarms: vec![alarm],
        notes: Vec::new(),
    };
    import::convert(set, &ImportOptions::default(), "test")
}

#[test]
fn pinned_flow_field_becomes_where_on_a_vpcflow_rule() {
    let report = delimited_pair(
        "[version, account_id, interface_id, srcaddr, dstaddr, srcport, dstport, protocol, packets, bytes, start, end, action = REJECT, log_status]",
        ("Port", "$dstport"),
        ("Port", "22"),
    );
    let rule = spec(&report, "a");
    assert_eq!(rule.kind, KindSpec::Vpcflow);
    assert_eq!(rule.predicates.len(), 1, "{}", report.rules[0].yaml);
    assert_eq!(rule.predicates[0].field, "dstport");
    assert!(rule.group_by.is_empty());
    // Through the engine: only the port-22 reject counts.
    let line = |port: u16| {
        format!("2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 {port} 6 20 4249 1709294410 1709294470 REJECT OK")
            .into_bytes()
    };
    let alerts = run_rule(&rule, vec![line(80), line(443)]).unwrap();
    assert!(creates(&alerts).is_empty(), "{alerts:#?}");
    let alerts = run_rule(&rule, vec![line(80), line(22)]).unwrap();
    assert_eq!(creates(&alerts).len(), 1, "{alerts:#?}");
    assert_eq!(creates(&alerts)[0].value, 1.0);
}

#[test]
fn pinned_field_of_a_host_log_pattern_is_skipped_with_the_reason() {
    let report = delimited_pair(
        "[ip, user, username, timestamp, request, status_code, bytes]",
        ("Status", "$status_code"),
        ("Status", "404"),
    );
    assert!(report.rules.is_empty());
    let why = note_with(&report, "A", NoteLevel::Skipped, "Status");
    assert!(why.contains("only for vpcflow rules"), "{why}");
}

// ---------------------------------------------------------------------
// Audit fixes: ids, shared metrics, log groups, unresolved dimensions
// ---------------------------------------------------------------------

/// "IAM Policy Changes" and "IAMPolicyChanges" share a slug, and the
/// second's suffixed id is the third alarm's own slug: three distinct
/// files, none overwritten.
#[test]
fn colliding_slugs_get_distinct_ids_and_no_file_is_overwritten() {
    let report = cfn("slug_collision.yaml", &[], &ImportOptions::default());
    let ids: BTreeSet<&str> = report.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let dir = tempfile::tempdir().unwrap();
    import::write_out(&report, dir.path(), false).unwrap();
    let loaded = trailwatch::rules::load_dir(dir.path()).unwrap();
    let titles: BTreeSet<String> = loaded.iter().map(|r| r.spec.title.clone()).collect();
    assert_eq!(
        titles,
        BTreeSet::from([
            "IAM Policy Changes".to_string(),
            "IAMPolicyChanges".to_string(),
            "IAM Policy Changes 2".to_string()
        ])
    );
    assert!(report
        .notes
        .iter()
        .any(|n| n.subject == "IAMPolicyChanges" && n.message.contains("is taken")));

    // The writer's own guard: two rules with one file name write nothing.
    let mut twice = report.clone();
    twice.rules.push(twice.rules[0].clone());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rules");
    let error = import::write_out(&twice, &out, false).unwrap_err();
    assert!(
        error.to_string().contains("would both be written"),
        "{error}"
    );
    assert!(!out.exists());
}

/// An alarm dimension `!Ref WatchedUser` with no default and no --param:
/// the alarm is skipped with the Ref and the --param to pass, not written
/// as a rule for every user; with the --param it pins that user.
#[test]
fn unresolvable_alarm_dimension_skips_the_alarm_and_names_the_param() {
    let report = cfn("dim_unresolved.yaml", &[], &ImportOptions::default());
    assert!(report.rules.is_empty(), "{:#?}", report.rules);
    let skipped = note_with(
        &report,
        "BreakGlassSigninFailures",
        NoteLevel::Skipped,
        "cannot resolve Ref WatchedUser",
    );
    assert!(skipped.contains("--param WatchedUser=VALUE"), "{skipped}");
    assert!(
        !report
            .notes
            .iter()
            .any(|n| n.message.contains("names no value")),
        "{:#?}",
        report.notes
    );

    let report = cfn(
        "dim_unresolved.yaml",
        &[("WatchedUser", "breakglass")],
        &ImportOptions::default(),
    );
    let s = spec(&report, "break-glass-signin-failures");
    assert!(s.group_by.is_empty(), "{:?}", s.group_by);
    let rule = &report.rules[0];
    assert_eq!(
        rule.settings.pinned,
        vec![(
            "userIdentity.userName".to_string(),
            "breakglass".to_string()
        )]
    );
}

/// A filter dimension whose value cannot be resolved skips the filter
/// rather than dropping the dimension (which would count all users as one).
#[test]
fn unresolvable_filter_dimension_skips_the_filter() {
    let template = r#"
Parameters:
  UserField: {Type: String}
Resources:
  F:
    Type: AWS::Logs::MetricFilter
    Properties:
      LogGroupName: CloudTrail/DefaultLogGroup
      FilterPattern: '{ $.eventName = ConsoleLogin }'
      MetricTransformations:
        - MetricNamespace: N
          MetricName: M
          MetricValue: '1'
          Dimensions: [{Key: user, Value: !Ref UserField}]
"#;
    let doc = import::cloudformation::parse_template(template).unwrap();
    let set = import::cloudformation::import(&doc, &BTreeMap::new(), "t.yaml").unwrap();
    let report = import::convert(set, &ImportOptions::default(), "t");
    assert!(report.rules.is_empty(), "{:#?}", report.rules);
    let skipped = note_with(
        &report,
        "F",
        NoteLevel::Skipped,
        "cannot resolve Ref UserField",
    );
    assert!(skipped.contains("--param UserField=VALUE"), "{skipped}");
}

/// The filter's log group is not a scope trailwatch enforces (CloudTrail
/// from Kafka/S3/EventBridge has none), so the rule says so, in the file
/// and in the report, with the `where:` to add; the rule itself stays
/// unscoped and still validates.
#[test]
fn log_group_is_noted_in_the_rule_and_the_report_not_enforced() {
    let report = cfn("loggroup.yaml", &[], &ImportOptions::default());
    let expected =
        "the metric filter ran on log group /app/payments in CloudWatch; trailwatch applies \
                    the rule to every hostlog input; add `where: [{field: \"@log_group\", equals: \
                    \"/app/payments\"}]` if inputs from several log groups share the stream";
    note_with(&report, "PaymentsSshFailures", NoteLevel::Info, expected);
    let rule = &report.rules[0];
    assert!(
        rule.yaml.contains(&format!("# Log group: {expected}.\n")),
        "{}",
        rule.yaml
    );
    assert!(spec(&report, "payments-ssh-failures").predicates.is_empty());
    // The suggested scope is a valid `where:` for the rule.
    let scoped = rule_from(&format!(
        "{}where: [{{field: \"@log_group\", equals: \"/app/payments\"}}]\n",
        rule.yaml
    ));
    assert_eq!(scoped.predicates.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    import::write_out(&report, dir.path(), false).unwrap();
    let report_md = std::fs::read_to_string(dir.path().join("IMPORT_REPORT.md")).unwrap();
    assert!(report_md.contains(expected), "{report_md}");
}

/// Two JSON metric filters publishing the one metric an alarm watches:
/// CloudWatch sums both into its series (2 sign-in failures + 2 denied
/// calls = 4 >= 3), so the import is one rule with both patterns joined,
/// and it alerts on the audit's events.
#[test]
fn filters_sharing_a_metric_merge_into_one_rule_that_counts_both() {
    let report = cfn("shared_metric.yaml", &[], &ImportOptions::default());
    assert_eq!(report.rules.len(), 1, "{:#?}", report.notes);
    let s = spec(&report, "auth-failures");
    assert_eq!(
        s.filter,
        r#"{ (($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication")) || (($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*")) }"#
    );
    assert_eq!(
        report.rules[0].settings.merged_from,
        vec!["ConsoleFailFilter", "UnauthorizedFilter"]
    );
    note_with(
        &report,
        "AuthFailures",
        NoteLevel::Info,
        "published by 2 metric filters (ConsoleFailFilter, UnauthorizedFilter)",
    );
    // Both filters ran on the one log group: the note says filters.
    note_with(
        &report,
        "AuthFailures",
        NoteLevel::Info,
        "the metric filters ran on log group CloudTrail/DefaultLogGroup in CloudWatch",
    );
    let events: Vec<Vec<u8>> = read("shared_metric_events.jsonl")
        .lines()
        .map(|l| l.as_bytes().to_vec())
        .collect();
    let alerts = run_rule(&s, events).unwrap();
    let c = creates(&alerts);
    assert_eq!(c.len(), 1, "{alerts:#?}");
    assert_eq!(c[0].value, 4.0);
    // Precedence: `a && b` stays grouped, so a ConsoleLogin that is not a
    // failure does not count.
    let success = ct(
        "2024-03-01T12:00:00Z",
        "ok",
        serde_json::json!({"errorMessage": "Success"}),
    );
    assert!(
        creates(&run_rule(&s, records(&[success.clone(), success.clone(), success])).unwrap())
            .is_empty()
    );
}

/// Filters sharing a metric that cannot be merged (a term pattern beside a
/// JSON one) stay separate rules, with a warning in the dry run and the
/// report that the counts are split.
#[test]
fn filters_sharing_a_metric_that_cannot_merge_warn_that_counts_are_split() {
    let template = read("shared_metric.yaml").replace(
        r#"'{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }'"#,
        r#"'"AccessDenied"'"#,
    );
    let doc = import::cloudformation::parse_template(&template).unwrap();
    let set = import::cloudformation::import(&doc, &BTreeMap::new(), "t.yaml").unwrap();
    let report = import::convert(set, &ImportOptions::default(), "t");
    assert_eq!(report.rules.len(), 2, "{:#?}", report.notes);
    let warning = note_with(
        &report,
        "AuthFailures",
        NoteLevel::Warning,
        "published by 2 metric filters (ConsoleFailFilter, UnauthorizedFilter)",
    );
    assert!(warning.contains("the counts are split"), "{warning}");
    assert!(
        warning.contains("UnauthorizedFilter is not a JSON pattern"),
        "{warning}"
    );
    let dry = import::render_dry_run(&report);
    assert!(
        dry.contains("! warning: metric CloudTrailMetrics/AuthFailureCount is published by 2"),
        "{dry}"
    );
    let markdown = import::render_report_markdown(&report);
    assert!(
        markdown.contains(&format!("- **AuthFailures**: {warning}")),
        "{markdown}"
    );
}

// ---------------------------------------------------------------------
// Second import audit: skipped alarms, pseudo parameters, ids, output
// ---------------------------------------------------------------------

fn hcl_text(text: &str) -> Report {
    let files = [import::hcl::SourceFile {
        name: "main.tf".into(),
        text: text.into(),
    }];
    let set = import::hcl::import(&files, &[], &BTreeMap::new()).unwrap();
    import::convert(set, &ImportOptions::default(), "main.tf")
}

fn cli_text(filters: &str, alarms: &str) -> Report {
    let filters: serde_json::Value = serde_json::from_str(filters).unwrap();
    let alarms: serde_json::Value = serde_json::from_str(alarms).unwrap();
    let set = import::cli_json::import(&filters, &alarms, ("f.json", "a.json")).unwrap();
    import::convert(set, &ImportOptions::default(), "cli")
}

fn cfn_text(template: &str, params: &[(&str, &str)]) -> Report {
    let doc = import::cloudformation::parse_template(template).unwrap();
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let set = import::cloudformation::import(&doc, &params, "t.yaml").unwrap();
    import::convert(set, &ImportOptions::default(), "t.yaml")
}

const SIGNIN_FILTER: &str = r#"{"metricFilters": [{"filterName": "SigninFailures",
    "filterPattern": "{ ($.eventName = ConsoleLogin) && ($.errorMessage = \"Failed authentication\") }",
    "logGroupName": "CloudTrail/x",
    "metricTransformations": [{"metricName": "ConsoleSigninFailureCount",
        "metricNamespace": "CloudTrailMetrics", "metricValue": "1"}]}]}"#;

/// An alarm that is not carried over still watches its metric: the metric
/// filter must not become a `>= 1` rule firing on every matching event.
/// Terraform HCL whose alarm period needs arithmetic (and a pinned IP).
#[test]
fn filter_of_a_skipped_hcl_alarm_is_not_imported_as_a_catch_all() {
    let report = hcl_text(
        r#"
resource "aws_cloudwatch_log_metric_filter" "byip" {
  name           = "deny-by-ip"
  pattern        = "{ $.errorCode = \"AccessDenied\" }"
  log_group_name = "CloudTrail/x"
  metric_transformation {
    name       = "DenyByIp"
    namespace  = "Sec"
    value      = "1"
    dimensions = { SourceIp = "$.sourceIPAddress" }
  }
}
resource "aws_cloudwatch_metric_alarm" "byip" {
  alarm_name          = "deny-from-ip"
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 1
  metric_name         = aws_cloudwatch_log_metric_filter.byip.metric_transformation[0].name
  namespace           = "Sec"
  period              = 5 * 60
  statistic           = "Sum"
  threshold           = 10
  dimensions          = { SourceIp = "203.0.113.9" }
}
"#,
    );
    assert!(report.rules.is_empty(), "{:#?}", report.rules);
    note_with(
        &report,
        "aws_cloudwatch_metric_alarm.byip",
        NoteLevel::Skipped,
        "`period` cannot be resolved statically",
    );
    note_with(
        &report,
        "deny-by-ip",
        NoteLevel::Skipped,
        "watched by alarm aws_cloudwatch_metric_alarm.byip, which is not carried over",
    );
    assert!(
        !report
            .notes
            .iter()
            .any(|n| n.message.contains("has no alarm")),
        "{:#?}",
        report.notes
    );
}

/// An anomaly-detection alarm names its metric only in `Metrics`: the
/// filter is watched by it, so no `>= 1` rule is written.
#[test]
fn filter_watched_by_a_metric_math_alarm_is_not_imported_as_a_catch_all() {
    let alarms = r#"{"MetricAlarms": [{"AlarmName": "SigninFailureAnomaly", "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanUpperThreshold", "ThresholdMetricId": "ad1",
        "Metrics": [{"Id": "m1", "ReturnData": true, "MetricStat": {"Metric": {
            "Namespace": "CloudTrailMetrics", "MetricName": "ConsoleSigninFailureCount"},
            "Period": 300, "Stat": "Sum"}},
          {"Id": "ad1", "Expression": "ANOMALY_DETECTION_BAND(m1, 2)", "ReturnData": true}]}]}"#;
    let report = cli_text(SIGNIN_FILTER, alarms);
    assert!(report.rules.is_empty(), "{:#?}", report.rules);
    note_with(
        &report,
        "SigninFailures",
        NoteLevel::Skipped,
        "watched by alarm SigninFailureAnomaly",
    );
    // Named for what it is (it was called a metric math alarm, since it
    // has `Metrics` too).
    note_with(
        &report,
        "SigninFailureAnomaly",
        NoteLevel::Skipped,
        "anomaly detection alarm (ThresholdMetricId): not carried over",
    );
    // CloudFormation reads the same `Metrics` shape.
    let report = cfn_text(
        r#"
Resources:
  F:
    Type: AWS::Logs::MetricFilter
    Properties:
      LogGroupName: CloudTrail/x
      FilterPattern: '{ $.eventName = ConsoleLogin }'
      MetricTransformations:
        - {MetricNamespace: CloudTrailMetrics, MetricName: Logins, MetricValue: '1'}
  A:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: LoginRate
      ComparisonOperator: GreaterThanThreshold
      EvaluationPeriods: 1
      Threshold: 5
      Metrics:
        - Id: m1
          ReturnData: false
          MetricStat: {Metric: {Namespace: CloudTrailMetrics, MetricName: Logins}, Period: 300, Stat: Sum}
        - {Id: e1, Expression: m1 / 5, ReturnData: true}
"#,
        &[],
    );
    assert!(report.rules.is_empty(), "{:#?}", report.rules);
    note_with(
        &report,
        "F",
        NoteLevel::Skipped,
        "watched by alarm LoginRate",
    );
}

const PSEUDO_TEMPLATE: &str = r#"
Resources:
  RootArnFilter:
    Type: AWS::Logs::MetricFilter
    Properties:
      LogGroupName: CloudTrail/x
      FilterPattern: !Sub '{ $.userIdentity.arn = "arn:aws:iam::${AWS::AccountId}:root" }'
      MetricTransformations:
        - {MetricNamespace: CloudTrailMetrics, MetricName: RootArn, MetricValue: '1'}
  RootArnAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub '${AWS::StackName}-RootArnUsed'
      AlarmActions: [!Sub 'arn:aws:sns:${AWS::Region}:${AWS::AccountId}:NotifyMe']
      MetricName: RootArn
      Namespace: CloudTrailMetrics
      ComparisonOperator: GreaterThanOrEqualToThreshold
      EvaluationPeriods: 1
      Period: 300
      Statistic: Sum
      Threshold: 1
"#;

/// `${AWS::AccountId}` in `Fn::Sub` resolves from `--param` like `!Ref`
/// does; unset, the pattern is not imported with the literal text (it
/// would match nothing), and the warning names the `--param` to pass.
#[test]
fn pseudo_parameters_in_sub_resolve_from_param_or_skip_with_the_param() {
    let report = cfn_text(PSEUDO_TEMPLATE, &[]);
    assert!(report.rules.is_empty(), "{:#?}", report.rules);
    let warning = note_with(
        &report,
        "RootArnFilter",
        NoteLevel::Warning,
        "FilterPattern: cannot resolve",
    );
    assert!(
        warning.contains("pass --param AWS::AccountId=VALUE"),
        "{warning}"
    );
    note_with(
        &report,
        "RootArnAlarm",
        NoteLevel::Warning,
        "pass --param AWS::StackName=VALUE",
    );

    let report = cfn_text(
        PSEUDO_TEMPLATE,
        &[
            ("AWS::AccountId", "111122223333"),
            ("AWS::StackName", "prod"),
        ],
    );
    assert!(
        !report
            .notes
            .iter()
            .any(|n| n.subject.starts_with("--param")),
        "{:#?}",
        report.notes
    );
    let rule = spec(&report, "prod-root-arn-used");
    assert_eq!(
        rule.filter,
        r#"{ $.userIdentity.arn = "arn:aws:iam::111122223333:root" }"#
    );
    assert_eq!(rule.title, "prod-RootArnUsed");
    // The action's ARN needs no AWS::Region: it ends in the topic name.
    assert_eq!(
        rule.labels.get("sns_topic").map(String::as_str),
        Some("NotifyMe")
    );
    let root = |account: &str| {
        ct(
            "2024-03-01T12:00:00Z",
            account,
            serde_json::json!({"eventName": "ListBuckets",
                "userIdentity": {"arn": format!("arn:aws:iam::{account}:root")}}),
        )
    };
    let alerts = run_rule(&rule, records(&[root("444455556666")])).unwrap();
    assert!(creates(&alerts).is_empty(), "{alerts:#?}");
    let alerts = run_rule(&rule, records(&[root("111122223333")])).unwrap();
    assert_eq!(creates(&alerts).len(), 1, "{alerts:#?}");
}

const HEARTBEAT_TEMPLATE: &str = r#"
Parameters:
  DefaultParam: {Type: Number}
Resources:
  HeartbeatFilter:
    Type: AWS::Logs::MetricFilter
    Properties:
      LogGroupName: CloudTrail/x
      FilterPattern: '{ $.eventName = RunInstances }'
      MetricTransformations:
        - {MetricNamespace: Ops, MetricName: Launches, MetricValue: '1', DefaultValue: !Ref DefaultParam}
  SilentAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: Ec2Silent
      MetricName: Launches
      Namespace: Ops
      ComparisonOperator: LessThanThreshold
      EvaluationPeriods: 1
      Period: 300
      Statistic: Sum
      Threshold: 1
      TreatMissingData: breaching
"#;

/// A `DefaultValue` that cannot be resolved changes what a `<` alarm does
/// (without it, a quiet period has no datapoint): reported, and the pair
/// is skipped instead of silently written without the default.
#[test]
fn unresolvable_default_value_is_reported_and_skips_the_pair() {
    let report = cfn_text(HEARTBEAT_TEMPLATE, &[]);
    assert!(report.rules.is_empty(), "{:#?}", report.rules);
    note_with(
        &report,
        "HeartbeatFilter",
        NoteLevel::Warning,
        "DefaultValue: cannot resolve Ref DefaultParam; pass --param DefaultParam=VALUE",
    );
    note_with(
        &report,
        "HeartbeatFilter",
        NoteLevel::Skipped,
        "DefaultValue cannot be resolved",
    );
    let report = cfn_text(HEARTBEAT_TEMPLATE, &[("DefaultParam", "0")]);
    let rule = spec(&report, "ec2-silent");
    assert_eq!(rule.metric.and_then(|m| m.default), Some(0.0));
}

const NO_VALUE_TEMPLATE: &str = r#"
Parameters:
  Env: {Type: String, Default: dev}
  TopicArnParam: {Type: String, Default: ''}
Conditions:
  IsStrict: !Equals [!Ref Env, prod]
  HasTopic: !Not [!Equals [!Ref TopicArnParam, '']]
Resources:
  Topic:
    Type: AWS::SNS::Topic
    Properties: {TopicName: sec-prod}
  ChangesFilter:
    Type: AWS::Logs::MetricFilter
    Properties:
      LogGroupName: CloudTrail/x
      FilterPattern: '{ $.eventName = CreateTrail }'
      MetricTransformations:
        - {MetricNamespace: CloudTrailMetrics, MetricName: TrailChanges, MetricValue: '1'}
  ChangesAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: CloudTrailChanges
      AlarmActions:
        - !If [HasTopic, !Ref TopicArnParam, !Ref 'AWS::NoValue']
        - !Ref Topic
      OKActions: !If [IsStrict, [!Ref Topic], !Ref 'AWS::NoValue']
      MetricName: TrailChanges
      Namespace: CloudTrailMetrics
      ComparisonOperator: GreaterThanOrEqualToThreshold
      EvaluationPeriods: 1
      Period: 300
      Statistic: Sum
      Threshold: 1
      TreatMissingData: !If [IsStrict, breaching, !Ref 'AWS::NoValue']
"#;

/// `!Ref AWS::NoValue` (chosen by `Fn::If`) removes the property or the
/// list element, as CloudFormation does: not an unknown value, not a
/// `${AWS::NoValue}` topic.
#[test]
fn aws_no_value_removes_the_property_or_list_element() {
    let report = cfn_text(NO_VALUE_TEMPLATE, &[]);
    let rule = spec(&report, "cloud-trail-changes");
    assert_eq!(rule.evaluation.treat_missing, Some(TreatMissing::Missing));
    assert_eq!(
        rule.labels.get("sns_topic").map(String::as_str),
        Some("sec-prod")
    );
    assert!(
        !report.rules[0]
            .alarm
            .as_ref()
            .unwrap()
            .ok_or_insufficient_actions,
        "OKActions is absent"
    );
    assert!(
        report
            .notes
            .iter()
            .all(|n| !n.message.contains("Some(") && !n.message.contains("NoValue")),
        "{:#?}",
        report.notes
    );

    let report = cfn_text(
        NO_VALUE_TEMPLATE,
        &[
            ("Env", "prod"),
            ("TopicArnParam", "arn:aws:sns:us-east-1:111122223333:oncall"),
        ],
    );
    let rule = spec(&report, "cloud-trail-changes");
    assert_eq!(rule.evaluation.treat_missing, Some(TreatMissing::Breaching));
    assert_eq!(
        rule.labels.get("sns_topic").map(String::as_str),
        Some("oncall,sec-prod")
    );
    assert!(
        report.rules[0]
            .alarm
            .as_ref()
            .unwrap()
            .ok_or_insufficient_actions
    );

    // An unknown TreatMissingData names the value, not Rust's `Some(..)`.
    let report = cfn_text(
        &NO_VALUE_TEMPLATE.replace(
            "!If [IsStrict, breaching, !Ref 'AWS::NoValue']",
            "sometimes",
        ),
        &[],
    );
    let why = note_with(
        &report,
        "CloudTrailChanges",
        NoteLevel::Skipped,
        "unknown TreatMissingData",
    );
    assert_eq!(why, r#"unknown TreatMissingData "sometimes""#);
}

/// An alarm whose name slugs to a built-in rule's id would replace that
/// rule at load time (here, disabled: ActionsEnabled is false, switching
/// the built-in root-usage detection off). It gets a distinct id, noted.
#[test]
fn imported_id_never_replaces_a_builtin_rule() {
    let filters = r#"{"metricFilters": [{"filterName": "RootUsage",
        "filterPattern": "{ $.userIdentity.type = \"Root\" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != \"AwsServiceEvent\" }",
        "logGroupName": "CloudTrail/x",
        "metricTransformations": [{"metricName": "RootAccountUsage",
            "metricNamespace": "CISBenchmark", "metricValue": "1"}]}]}"#;
    let alarms = r#"{"MetricAlarms": [{"AlarmName": "CIS-4.3-RootAccountUsage",
        "ActionsEnabled": false, "MetricName": "RootAccountUsage", "Namespace": "CISBenchmark",
        "Statistic": "Sum", "Period": 300, "EvaluationPeriods": 1, "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold"}]}"#;
    let report = cli_text(filters, alarms);
    let ids: Vec<&str> = report.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["imported-cis-4.3-root-account-usage"]);
    note_with(
        &report,
        "CIS-4.3-RootAccountUsage",
        NoteLevel::Info,
        "id cis-4.3-root-account-usage is a built-in rule's id",
    );
    let dir = tempfile::tempdir().unwrap();
    import::write_out(&report, dir.path(), false).unwrap();
    let loaded = trailwatch::rules::load_all(&[dir.path().to_path_buf()], false).unwrap();
    let builtin = loaded
        .iter()
        .find(|r| r.spec.id == "cis-4.3-root-account-usage")
        .expect("the built-in rule is still loaded");
    assert!(builtin.spec.enabled, "the built-in rule stays enabled");
    let imported = loaded
        .iter()
        .find(|r| r.spec.id == "imported-cis-4.3-root-account-usage")
        .expect("the imported rule is loaded beside it");
    assert!(!imported.spec.enabled);
}

/// A line break in a filter name, metric name or log group written into
/// the rule's `#` header must not end the comment and inject YAML: the
/// rule stays enabled, and names in YAML values round-trip.
#[test]
fn names_in_the_header_comment_cannot_inject_yaml() {
    let filters = r#"{"metricFilters": [
        {"filterName": "A", "filterPattern": "{ $.eventName = StopLogging }",
         "logGroupName": "CloudTrail/x\nenabled: false",
         "metricTransformations": [{"metricName": "Tamper\nenabled: false",
             "metricNamespace": "Sec", "metricValue": "1"}]},
        {"filterName": "B\nenabled: false\n#", "filterPattern": "{ $.eventName = DeleteTrail }",
         "logGroupName": "CloudTrail/x\u2028enabled: false",
         "metricTransformations": [{"metricName": "Tamper\nenabled: false",
             "metricNamespace": "Sec", "metricValue": "1"}]}]}"#;
    let alarms = r#"{"MetricAlarms": [{"AlarmName": "Trail\ntampering", "AlarmDescription": "x\nenabled: false",
        "MetricName": "Tamper\nenabled: false", "Namespace": "Sec", "Statistic": "Sum",
        "Period": 300, "EvaluationPeriods": 1, "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold"}]}"#;
    let report = cli_text(filters, alarms);
    assert_eq!(report.rules.len(), 1, "{:#?}", report.notes);
    let yaml = &report.rules[0].yaml;
    let rule = spec(&report, "trail-tampering");
    assert!(rule.enabled, "{yaml}");
    assert_eq!(rule.title, "Trail\ntampering");
    assert_eq!(rule.description, "x\nenabled: false");
    assert_eq!(
        rule.labels.get("cloudwatch_metric").map(String::as_str),
        Some("Sec/Tamper\nenabled: false")
    );
    // The header is comment lines only, the names escaped in them.
    let header: Vec<&str> = yaml.lines().take_while(|l| !l.starts_with("id:")).collect();
    assert!(header.iter().all(|l| l.starts_with("# ")), "{yaml}");
    assert!(
        header
            .iter()
            .any(|l| l.contains(r"A, B\nenabled: false\n# publish this metric")),
        "{yaml}"
    );
    assert!(!yaml.contains('\u{2028}'), "{yaml}");
}

/// A rule already in `--out` under another file name with an id the
/// import writes would leave a directory the loader rejects (duplicate
/// id): refused, naming both files, with or without `--force`.
#[test]
fn import_refuses_an_id_already_in_out_under_another_file() {
    let report = cli_report();
    let rule = &report.rules[0];
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("my-tuned-copy.yaml");
    let text = rule.yaml.clone();
    std::fs::write(&mine, &text).unwrap();
    for force in [false, true] {
        let error = import::write_out(&report, dir.path(), force).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        let message = error.to_string();
        assert!(message.contains(&rule.id), "{message}");
        assert!(message.contains("my-tuned-copy.yaml"), "{message}");
        assert!(message.contains(&rule.file_name), "{message}");
        // Nothing written: the directory still loads.
        assert!(!dir.path().join(&rule.file_name).exists());
        assert!(!dir.path().join("IMPORT_REPORT.md").exists());
        trailwatch::rules::load_dir(dir.path()).unwrap();
    }
    // Under the import's own file name, --force overwrites it (no clash).
    std::fs::remove_file(&mine).unwrap();
    std::fs::write(dir.path().join(&rule.file_name), &text).unwrap();
    assert!(import::write_out(&report, dir.path(), false).is_err());
    import::write_out(&report, dir.path(), true).unwrap();
    trailwatch::rules::load_dir(dir.path()).unwrap();
}

/// AWS's own flow-log example names its fields `source`, `destination`:
/// a dimension `$source` must group by the flow field at that position
/// (srcaddr), not by a `source` field no flow record has (one key `-`
/// for every address), and a pinned `$destination` must select dstaddr.
#[test]
fn dimension_on_a_pattern_named_flow_field_maps_to_the_flow_field() {
    const AWS_EXAMPLE: &str = r#"[version, account, eni, source, destination, srcport, destport="22", protocol="6", packets, bytes, windowstart, windowend, action="REJECT", flowlogstatus]"#;
    let pair = |alarm_dims: Vec<(String, String)>| {
        let filter = import::ImportedFilter {
            name: "F".into(),
            pattern: AWS_EXAMPLE.into(),
            metric_name: "M".into(),
            namespace: "N".into(),
            value: "1".into(),
            dimensions: vec![("Source".into(), "$source".into())],
            source: "test".into(),
            ..Default::default()
        };
        let alarm = import::ImportedAlarm {
            name: "A".into(),
            metric_name: "M".into(),
            namespace: "N".into(),
            statistic: Some("Sum".into()),
            period_s: Some(300),
            comparison: "GreaterThanOrEqualToThreshold".into(),
            threshold: Some(2.0),
            actions_enabled: true,
            dimensions: alarm_dims,
            source: "test".into(),
            ..Default::default()
        };
        let set = import::ImportSet {
            filters: vec![filter],
            alarms: vec![alarm],
            notes: Vec::new(),
        };
        import::convert(set, &ImportOptions::default(), "test")
    };
    let line = |source: &str| {
        format!("2 123456789010 eni-1235b8ca123456789 {source} 10.0.1.5 20641 22 6 20 4249 1709294410 1709294470 REJECT OK")
            .into_bytes()
    };

    // Per source: three sources with one reject each stay apart.
    let report = pair(Vec::new());
    let rule = spec(&report, "a");
    assert_eq!(rule.group_by, ["srcaddr"], "{}", report.rules[0].yaml);
    note_with(&report, "A", NoteLevel::Info, "mapped to srcaddr");
    let spread = vec![
        line("198.51.100.1"),
        line("198.51.100.2"),
        line("198.51.100.3"),
    ];
    assert!(creates(&run_rule(&rule, spread).unwrap()).is_empty());
    let alerts = run_rule(&rule, vec![line("198.51.100.1"), line("198.51.100.1")]).unwrap();
    assert_eq!(creates(&alerts).len(), 1, "{alerts:#?}");

    // Pinned: only that source's series counts.
    let report = pair(vec![("Source".into(), "198.51.100.1".into())]);
    let rule = spec(&report, "a");
    assert_eq!(rule.predicates.len(), 1);
    assert_eq!(rule.predicates[0].field, "srcaddr");
    let alerts = run_rule(&rule, vec![line("198.51.100.1"), line("198.51.100.1")]).unwrap();
    assert_eq!(creates(&alerts).len(), 1, "{alerts:#?}");
    let alerts = run_rule(&rule, vec![line("198.51.100.2"), line("198.51.100.2")]).unwrap();
    assert!(creates(&alerts).is_empty(), "{alerts:#?}");
}

/// A `$name` dimension that cannot be mapped to a flow field (an
/// abbreviated pattern; a host-log pattern) skips the pair, with the
/// reason, instead of grouping every event under one `-` key.
#[test]
fn unmappable_pattern_field_dimension_skips_the_pair() {
    let unpinned = |pattern: &str, dimension: (&str, &str)| {
        // As `delimited_pair`, but the alarm pins nothing.
        let filter = import::ImportedFilter {
            name: "F".into(),
            pattern: pattern.into(),
            metric_name: "M".into(),
            namespace: "N".into(),
            value: "1".into(),
            dimensions: vec![(dimension.0.into(), dimension.1.into())],
            source: "test".into(),
            ..Default::default()
        };
        let alarm = import::ImportedAlarm {
            name: "A".into(),
            metric_name: "M".into(),
            namespace: "N".into(),
            statistic: Some("Sum".into()),
            period_s: Some(300),
            comparison: "GreaterThanOrEqualToThreshold".into(),
            threshold: Some(3.0),
            actions_enabled: true,
            source: "test".into(),
            ..Default::default()
        };
        let set = import::ImportSet {
            filters: vec![filter],
            alarms: vec![alarm],
            notes: Vec::new(),
        };
        import::convert(set, &ImportOptions::default(), "test")
    };
    let report = unpinned(
        "[ip, id, user, timestamp, request, status_code = 404, size]",
        ("ClientIp", "$ip"),
    );
    assert!(report.rules.is_empty(), "{}", report.rules[0].yaml);
    let why = note_with(&report, "A", NoteLevel::Skipped, "ClientIp");
    assert!(why.contains("only for vpcflow rules"), "{why}");

    let report = unpinned(
        r#"[version, account, eni, source, destination, srcport, dstport, ..., action="REJECT", status]"#,
        ("Source", "$source"),
    );
    assert!(report.rules.is_empty(), "{}", report.rules[0].yaml);
    note_with(
        &report,
        "A",
        NoteLevel::Skipped,
        "its position cannot be mapped",
    );
}

/// A plan whose alarms come from a `for_each` block (each planned alarm is
/// `aws_cloudwatch_metric_alarm.cis["KEY"]`, while the configuration names
/// the block `aws_cloudwatch_metric_alarm.cis`) and from a child module
/// handed the topic's ARN as `var.topic_arn`. The topic, created in the
/// same plan (so its ARN is unknown), is every rule's `sns_topic`. Before,
/// the indexed address missed the configuration's, module blocks were not
/// read, and the label was silently lost. A module reference that leads
/// nowhere is a warning.
#[test]
fn for_each_and_module_alarms_in_a_plan_keep_their_topic() {
    let mut doc: serde_json::Value =
        serde_json::from_str(&read("terraform-plan-for-each.json")).unwrap();
    let set = import::terraform::import(&doc, "terraform-plan-for-each.json").unwrap();
    let report = import::convert(set, &ImportOptions::default(), "terraform");
    assert_eq!(
        report.rules.len(),
        3,
        "two for_each alarms and the module's"
    );
    for rule in &report.rules {
        let spec = spec(&report, &rule.id);
        assert_eq!(
            spec.labels.get("sns_topic").map(String::as_str),
            Some("security-alerts"),
            "{}",
            rule.yaml
        );
    }
    // Without the module call's input, the module alarm's `var.topic_arn`
    // leads nowhere: said, not silent.
    doc["configuration"]["root_module"]["module_calls"]["cis"]
        .as_object_mut()
        .unwrap()
        .remove("expressions");
    let set = import::terraform::import(&doc, "terraform-plan-for-each.json").unwrap();
    let report = import::convert(set, &ImportOptions::default(), "terraform");
    assert!(
        report.notes.iter().any(|n| n.level == NoteLevel::Warning
            && n.subject == "RootUsage"
            && n.message.contains("var.topic_arn")),
        "{:#?}",
        report.notes
    );
}

/// A topic with no `TopicName` gets a name CloudFormation makes up: the
/// label can only say its logical id, and a warning says so (the
/// Terraform reader already warned in the same case; this one was silent).
#[test]
fn a_cloudformation_topic_without_a_name_is_a_warning() {
    let template = r#"
Resources:
  AlertTopic:
    Type: AWS::SNS::Topic
  Failures:
    Type: AWS::Logs::MetricFilter
    Properties:
      LogGroupName: CloudTrail/logs
      FilterPattern: '{ $.errorCode = "AccessDenied" }'
      MetricTransformations:
        - {MetricName: Denied, MetricNamespace: Sec, MetricValue: "1"}
  DeniedAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: Denied
      MetricName: Denied
      Namespace: Sec
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
      AlarmActions: [!Ref AlertTopic]
"#;
    let doc = import::cloudformation::parse_template(template).unwrap();
    let set = import::cloudformation::import(&doc, &BTreeMap::new(), "t.yaml").unwrap();
    let report = import::convert(set, &ImportOptions::default(), "t.yaml");
    let rule = spec(&report, "denied");
    assert_eq!(
        rule.labels.get("sns_topic").map(String::as_str),
        Some("AlertTopic")
    );
    assert!(
        report.notes.iter().any(|n| n.level == NoteLevel::Warning
            && n.subject == "AlertTopic"
            && n.message.contains("no TopicName")),
        "{:#?}",
        report.notes
    );
}

/// An input file with a UTF-8 byte order mark (a Windows editor's) imports
/// as without one; a UTF-16 file (PowerShell 5's `aws ... > file.json`)
/// is a usage error (exit 2) that says so. Before, the first was "not
/// valid JSON" at line 1 column 1 and the second an I/O error (exit 4).
#[test]
fn an_input_with_a_byte_order_mark_imports_and_utf16_says_so() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let template = read("cis_cloudwatch_alarms.yaml");
    let bom = dir.path().join("bom.yaml");
    std::fs::write(&bom, format!("\u{feff}{template}")).unwrap();
    let utf16 = dir.path().join("utf16.yaml");
    let mut wide = vec![0xFF, 0xFE];
    wide.extend(template.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(&utf16, wide).unwrap();
    let run = |path: &std::path::Path| {
        let cli = trailwatch::cli::Cli::parse_from([
            "trailwatch",
            "import",
            "cloudformation",
            path.to_str().unwrap(),
            "--dry-run",
        ]);
        trailwatch::cli::main_with(cli)
    };
    assert_eq!(run(&bom), 0);
    assert_eq!(run(&utf16), 2);
}

/// An alarm whose `EvaluationPeriods` (or `DatapointsToAlarm`,
/// `TreatMissingData`) cannot be resolved is skipped, naming the
/// `--param`: it was imported as 1 of 1, another alarm than the template's
/// 3 of 5, with only a warning. With the `--param` it is imported as written.
#[test]
fn an_alarm_with_unresolvable_evaluation_settings_is_skipped() {
    let template = r#"
Parameters:
  Periods: {Type: Number}
Resources:
  F:
    Type: AWS::Logs::MetricFilter
    Properties:
      LogGroupName: CloudTrail/x
      FilterPattern: '{ $.errorCode = "AccessDenied" }'
      MetricTransformations:
        - {MetricNamespace: Sec, MetricName: Denied, MetricValue: '1'}
  A:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: Denied
      MetricName: Denied
      Namespace: Sec
      Statistic: Sum
      Period: 300
      EvaluationPeriods: !Ref Periods
      DatapointsToAlarm: 3
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
"#;
    let report = cfn_text(template, &[]);
    assert!(report.rules.is_empty(), "{:#?}", report.rules);
    note_with(
        &report,
        "Denied",
        NoteLevel::Warning,
        "--param Periods=VALUE",
    );
    note_with(
        &report,
        "Denied",
        NoteLevel::Skipped,
        "EvaluationPeriods cannot be resolved",
    );
    let report = cfn_text(template, &[("Periods", "5")]);
    let rule = spec(&report, "denied");
    assert_eq!(rule.evaluation.periods, 5);
    assert_eq!(rule.evaluation.datapoints, Some(3));
}

/// A filter CloudWatch applied to transformed logs (`applyOnTransformedLogs`)
/// matched fields a transformer made: trailwatch sees the raw event, so the
/// import warns (it said nothing).
#[test]
fn a_filter_on_transformed_logs_is_a_warning() {
    let filters = r#"{"metricFilters": [{"filterName": "Transformed",
        "filterPattern": "{ $.user = root }", "logGroupName": "CloudTrail/x",
        "applyOnTransformedLogs": true,
        "metricTransformations": [{"metricName": "Root", "metricNamespace": "Sec", "metricValue": "1"}]}]}"#;
    let report = cli_text(filters, r#"{"MetricAlarms": []}"#);
    assert_eq!(report.rules.len(), 1);
    note_with(
        &report,
        "Transformed",
        NoteLevel::Warning,
        "applyOnTransformedLogs",
    );
}

/// `Fn::FindInMap` is resolved from the template's `Mappings` (its keys
/// may be `Ref`s). It was not: the threshold was "unresolvable", with a
/// `--param` hint that could not help, and the alarm was skipped.
#[test]
fn find_in_map_resolves_from_the_mappings() {
    let template = r#"
Parameters:
  Env: {Type: String, Default: prod}
Mappings:
  Limits:
    prod: {Denied: 10}
    dev: {Denied: 50}
Resources:
  F:
    Type: AWS::Logs::MetricFilter
    Properties:
      LogGroupName: CloudTrail/x
      FilterPattern: '{ $.errorCode = "AccessDenied" }'
      MetricTransformations:
        - {MetricNamespace: Sec, MetricName: Denied, MetricValue: '1'}
  A:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: Denied
      MetricName: Denied
      Namespace: Sec
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 1
      Threshold: !FindInMap [Limits, !Ref Env, Denied]
      ComparisonOperator: GreaterThanOrEqualToThreshold
"#;
    assert_eq!(
        threshold(&spec(&cfn_text(template, &[]), "denied")),
        ">= 10"
    );
    assert_eq!(
        threshold(&spec(&cfn_text(template, &[("Env", "dev")]), "denied")),
        ">= 50"
    );
    let report = cfn_text(template, &[("Env", "test")]);
    assert!(report.rules.is_empty());
    let message = note_with(&report, "Denied", NoteLevel::Warning, "Fn::FindInMap");
    assert!(!message.contains("--param"), "{message}");
}
