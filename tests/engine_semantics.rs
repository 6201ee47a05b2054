//! Window, alarm and sliding semantics through the real engine (replay mode).

use trailwatch::alert::{Activity, Alert};
use trailwatch::rules::testing::run_rule;
use trailwatch::rules::RuleSpec;

fn rule(yaml: &str) -> RuleSpec {
    serde_yaml_ng::from_str(yaml).expect("rule yaml")
}

fn login_failure(time: &str, id: &str) -> Vec<u8> {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"{time}","eventName":"ConsoleLogin","errorMessage":"Failed authentication","recipientAccountId":"111122223333","sourceIPAddress":"203.0.113.9","eventID":"{id}"}}"#
    )
    .into_bytes()
}

fn burst(times: &[&str]) -> Vec<Vec<u8>> {
    times
        .iter()
        .enumerate()
        .map(|(i, t)| login_failure(t, &format!("e{i}")))
        .collect()
}

fn creates(alerts: &[Alert]) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|a| a.activity == Activity::Create)
        .collect()
}

const BASE: &str = r#"
id: burst
title: burst
kind: cloudtrail
filter: '{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }'
group_by: [sourceIPAddress]
window: 5m
threshold: ">= 5"
"#;

const STRADDLING: [&str; 5] = [
    "2024-03-01T12:03:30Z",
    "2024-03-01T12:04:30Z",
    "2024-03-01T12:05:10Z",
    "2024-03-01T12:05:40Z",
    "2024-03-01T12:06:30Z",
];

#[test]
fn tumbling_windows_miss_a_burst_straddling_the_boundary() {
    let alerts = run_rule(&rule(BASE), burst(&STRADDLING)).unwrap();
    assert!(creates(&alerts).is_empty(), "{alerts:?}");
}

#[test]
fn sliding_evaluation_catches_the_straddling_burst_exactly_once() {
    let spec = rule(&format!("{BASE}slide: 1m\n"));
    let alerts = run_rule(&spec, burst(&STRADDLING)).unwrap();
    let created = creates(&alerts);
    assert_eq!(created.len(), 1, "{alerts:?}");
    assert_eq!(created[0].value, 5.0);
    // The first step whose 5-minute window holds all five events ends at 12:07.
    assert_eq!(
        trailwatch::rules::testing::rfc3339(created[0].window_start_ms),
        "2024-03-01T12:02:00Z"
    );
    // Returning to OK closes the same finding.
    let closes: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.activity == Activity::Close)
        .collect();
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].id, created[0].id);
}

#[test]
fn one_create_per_window_even_far_past_the_threshold() {
    let times: Vec<String> = (0..40)
        .map(|i| format!("2024-03-01T12:00:{:02}Z", i))
        .collect();
    let refs: Vec<&str> = times.iter().map(String::as_str).collect();
    let alerts = run_rule(&rule(BASE), burst(&refs)).unwrap();
    let created = creates(&alerts);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].value, 5.0, "eager: fires at the crossing");
    assert_eq!(created[0].count, 5);
}

#[test]
fn one_event_short_does_not_alert() {
    let alerts = run_rule(&rule(BASE), burst(&STRADDLING[..4])).unwrap();
    assert!(alerts.is_empty());
}

#[test]
fn m_of_n_breaching_periods_need_not_be_consecutive() {
    // 2 of 3 periods with >= 2 failures: periods 12:00 and 12:10 breach,
    // 12:05 has one failure (not breaching).
    let spec = rule(
        r#"
id: m-of-n
title: m of n
kind: cloudtrail
filter: '{ $.eventName = ConsoleLogin }'
group_by: [recipientAccountId]
window: 5m
threshold: ">= 2"
evaluation: {periods: 3, datapoints: 2}
"#,
    );
    let records = burst(&[
        "2024-03-01T12:00:10Z",
        "2024-03-01T12:01:10Z",
        "2024-03-01T12:06:10Z",
        "2024-03-01T12:10:10Z",
        "2024-03-01T12:11:10Z",
    ]);
    let alerts = run_rule(&spec, records).unwrap();
    let created = creates(&alerts);
    assert_eq!(created.len(), 1, "{alerts:?}");
    assert_eq!(
        trailwatch::rules::testing::rfc3339(created[0].window_start_ms),
        "2024-03-01T12:10:00Z"
    );
}

#[test]
fn non_monotone_thresholds_fire_when_the_window_closes() {
    // avg of a field below a threshold is only known at window close.
    let spec = rule(
        r#"
id: avg-low
title: avg low
kind: cloudtrail
filter: '{ $.eventName = ConsoleLogin }'
group_by: [recipientAccountId]
window: 5m
metric: {value: "$.n"}
aggregate: avg
threshold: "< 2"
"#,
    );
    let records: Vec<Vec<u8>> = [1, 2, 1, "x".len()]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(r#"{{"eventTime":"2024-03-01T12:00:0{i}Z","eventName":"ConsoleLogin","recipientAccountId":"1","n":{n}}}"#)
                .into_bytes()
        })
        .collect();
    let alerts = run_rule(&spec, records.clone()).unwrap();
    let created = creates(&alerts);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].value, 1.25);
    assert_eq!(alerts.len(), 1, "no Close unless asked for");
    // With `emit_close`, the window that alerted at its close is closed
    // then too, under the same id (before, `emit_close` was ignored here).
    let mut closing = spec.clone();
    closing.evaluation.emit_close = true;
    let alerts = run_rule(&closing, records).unwrap();
    let activities: Vec<Activity> = alerts.iter().map(|a| a.activity).collect();
    assert_eq!(activities, [Activity::Create, Activity::Close]);
    assert_eq!(alerts[0].id, alerts[1].id);
}

/// CloudWatch's Sum and Average use the values as given: negative ones
/// are not raised to 0 (they were: -4 and 2 averaged 1).
#[test]
fn sum_and_avg_use_negative_values_as_given() {
    let spec = |aggregate: &str, threshold: &str| {
        rule(&format!(
            r#"
id: signed
title: signed
kind: cloudtrail
filter: '{{ $.eventName = ConsoleLogin }}'
group_by: [recipientAccountId]
window: 5m
metric: {{value: "$.n"}}
aggregate: {aggregate}
threshold: "{threshold}"
"#
        ))
    };
    let records = |values: &[(&str, i64)]| -> Vec<Vec<u8>> {
        values
            .iter()
            .enumerate()
            .map(|(i, (account, n))| {
                format!(r#"{{"eventTime":"2024-03-01T12:00:0{i}Z","eventName":"ConsoleLogin","recipientAccountId":"{account}","n":{n}}}"#)
                    .into_bytes()
            })
            .collect()
    };
    let input = records(&[("a", -4), ("a", 2), ("b", 5), ("b", -3)]);
    let by_key = |alerts: &[Alert]| -> Vec<(String, f64)> {
        creates(alerts)
            .iter()
            .map(|a| (a.key.join(","), a.value))
            .collect()
    };
    let avg_low = run_rule(&spec("avg", "< 0"), input.clone()).unwrap();
    assert_eq!(by_key(&avg_low), vec![("a".to_string(), -1.0)]);
    let avg_high = run_rule(&spec("avg", "> 0.5"), input.clone()).unwrap();
    assert_eq!(by_key(&avg_high), vec![("b".to_string(), 1.0)]);
    // `<` is not eager: evaluated on the closed window's sum.
    let sum_low = run_rule(&spec("sum", "< 3"), input).unwrap();
    assert_eq!(
        by_key(&sum_low),
        vec![("a".to_string(), -2.0), ("b".to_string(), 2.0)]
    );
}

#[test]
fn absent_or_non_numeric_metric_values_add_nothing() {
    let spec = rule(
        r#"
id: sum-bytes
title: sum bytes
kind: cloudtrail
filter: '{ $.eventName = ConsoleLogin }'
window: 5m
metric: {value: "$.bytes"}
aggregate: sum
threshold: ">= 10"
"#,
    );
    let records: Vec<Vec<u8>> = [
        r#""bytes":4"#,
        r#""bytes":"x""#,
        r#""other":1"#,
        r#""bytes":5"#,
    ]
    .iter()
    .map(|b| {
        format!(r#"{{"eventTime":"2024-03-01T12:00:00Z","eventName":"ConsoleLogin",{b}}}"#)
            .into_bytes()
    })
    .collect();
    let alerts = run_rule(&spec, records).unwrap();
    assert!(creates(&alerts).is_empty(), "4 + 5 < 10: {alerts:?}");
}

#[test]
fn alert_ids_are_deterministic_across_runs_and_input_order() {
    let mut records = burst(&STRADDLING);
    let spec = rule(&format!("{BASE}slide: 1m\n"));
    let first = run_rule(&spec, records.clone()).unwrap();
    records.reverse();
    let second = run_rule(&spec, records).unwrap();
    let ids = |a: &[Alert]| {
        a.iter()
            .map(|x| (x.id.clone(), x.activity))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&second));
}

#[test]
fn a_wildcard_selector_finds_a_world_open_ingress_rule_in_any_position() {
    // A security group opened to the world: the CIDR may be in any
    // permission and any range of the request.
    let spec = rule(
        r#"
id: world-open-ingress
title: Ingress opened to 0.0.0.0/0
kind: cloudtrail
filter: '{ ($.eventName = AuthorizeSecurityGroupIngress) && ($.requestParameters.ipPermissions.items[*].ipRanges.items[*].cidrIp = "0.0.0.0/0") }'
group_by: [recipientAccountId]
window: 5m
threshold: ">= 1"
"#,
    );
    let ingress = |id: &str, ranges: &str| {
        format!(
            r#"{{"eventTime":"2024-03-01T12:00:00Z","eventName":"AuthorizeSecurityGroupIngress","recipientAccountId":"111122223333","eventID":"{id}","requestParameters":{{"groupId":"sg-1","ipPermissions":{{"items":[{{"ipProtocol":"tcp","fromPort":443,"toPort":443,"ipRanges":{{"items":[{{"cidrIp":"10.0.0.0/8"}}]}}}},{{"ipProtocol":"tcp","fromPort":22,"toPort":22,"ipRanges":{{"items":[{ranges}]}}}}]}}}}}}"#
        )
        .into_bytes()
    };
    let closed = run_rule(&spec, vec![ingress("a", r#"{"cidrIp":"192.0.2.0/24"}"#)]).unwrap();
    assert!(creates(&closed).is_empty(), "{closed:?}");
    let open = run_rule(
        &spec,
        vec![ingress(
            "b",
            r#"{"cidrIp":"192.0.2.0/24"},{"cidrIp":"0.0.0.0/0"}"#,
        )],
    )
    .unwrap();
    assert_eq!(creates(&open).len(), 1, "{open:?}");
}

#[test]
fn interleaved_windows_each_count_only_their_own_events() {
    // Two adjacent windows, their events alternating: each match lands in
    // the window of its own time, whichever window the rule saw last.
    let times: Vec<String> = (0..5)
        .flat_map(|i| {
            [
                format!("2024-03-01T12:0{}:10Z", 5 + i % 5),
                format!("2024-03-01T12:0{}:20Z", i % 5),
            ]
        })
        .collect();
    let times: Vec<&str> = times.iter().map(String::as_str).collect();
    let alerts = run_rule(&rule(BASE), burst(&times)).unwrap();
    let mut windows: Vec<(i64, u64)> = creates(&alerts)
        .iter()
        .map(|a| (a.window_start_ms, a.count))
        .collect();
    windows.sort_unstable();
    let noon = 1_709_294_400_000; // 2024-03-01T12:00:00Z
    assert_eq!(windows, [(noon, 5), (noon + 300_000, 5)], "{alerts:?}");
}

// ─────────────── alarms in service mode (watermark-driven) ───────────────

/// Runs `spec` as a service (no flush at the end) over `records`, one per
/// input batch, with `shards` shards and `lateness_ms` of allowed lateness.
fn run_service(
    spec: &RuleSpec,
    records: Vec<Vec<u8>>,
    shards: usize,
    lateness_ms: i64,
) -> Vec<Alert> {
    let mut config = trailwatch::engine::EngineConfig::default();
    config.watermark.replay = false;
    config.watermark.allowed_lateness_ms = lateness_ms;
    config.flush_on_end = false;
    config.shards = shards;
    run_configured(spec, records, config)
}

/// Runs `spec` as `replay` does (every window closes at the end of input)
/// with `shards` shards.
fn run_replay(spec: &RuleSpec, records: Vec<Vec<u8>>, shards: usize) -> Vec<Alert> {
    let mut config = trailwatch::engine::EngineConfig::default();
    config.watermark.replay = true;
    config.flush_on_end = true;
    config.shards = shards;
    run_configured(spec, records, config)
}

fn run_configured(
    spec: &RuleSpec,
    records: Vec<Vec<u8>>,
    mut config: trailwatch::engine::EngineConfig,
) -> Vec<Alert> {
    config.decoders = 1;
    trailwatch::rules::testing::run_rule_with(spec, records, config, 1).expect("engine runs")
}

/// A sign-in event at `time` from `ip`; `name` other than ConsoleLogin
/// only moves the watermark.
fn sign_in(time: &str, ip: &str, name: &str) -> Vec<u8> {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"2024-03-01T{time}Z","eventName":"{name}","recipientAccountId":"1","sourceIPAddress":"{ip}"}}"#
    )
    .into_bytes()
}

const ALARM_BY_IP: &str = r#"
id: alarm-by-ip
title: alarm by ip
kind: cloudtrail
filter: '{ $.eventName = ConsoleLogin }'
group_by: [sourceIPAddress]
window: 5m
"#;

fn activities(alerts: &[Alert]) -> Vec<(Activity, String)> {
    alerts
        .iter()
        .map(|a| {
            (
                a.activity,
                trailwatch::rules::testing::rfc3339(a.window_start_ms),
            )
        })
        .collect()
}

/// 2 of 2: period 12:00 breaches, 12:05 and 12:10 do not, then 12:15
/// breaches while 12:05 and 12:10 are still open under the lateness. The
/// last two periods (12:10, 12:15) hold one breach: no alarm. The eager
/// check counted the last closed datapoint (12:00) as if it were 12:10.
#[test]
fn an_eager_alarm_counts_only_the_periods_just_before_the_open_one() {
    let spec = rule(&format!(
        "{ALARM_BY_IP}threshold: \">= 3\"\nevaluation: {{periods: 2, datapoints: 2}}\n"
    ));
    let ip = "203.0.113.9";
    let records = vec![
        sign_in("12:00:01", ip, "ConsoleLogin"),
        sign_in("12:00:02", ip, "ConsoleLogin"),
        sign_in("12:00:03", ip, "ConsoleLogin"),
        sign_in("12:05:01", ip, "ConsoleLogin"),
        sign_in("12:10:05", ip, "ConsoleLogin"),
        // Watermark 12:05 (lateness 10m): period 12:00 closes, alone.
        sign_in("12:15:00", ip, "ListRoles"),
        sign_in("12:15:10", ip, "ConsoleLogin"),
        sign_in("12:15:11", ip, "ConsoleLogin"),
        sign_in("12:15:12", ip, "ConsoleLogin"),
    ];
    let alerts = run_service(&spec, records, 1, 10 * 60_000);
    assert!(alerts.is_empty(), "{:?}", activities(&alerts));
}

/// Period 12:05 breaches first (eager Create), then the earlier period
/// 12:00 breaches and closes: one ALARM, so one Create, and the Close that
/// ends it carries the same id.
#[test]
fn an_alarm_raised_eagerly_by_a_later_period_sends_one_create() {
    let spec = rule(&format!(
        "{ALARM_BY_IP}threshold: \">= 2\"\nevaluation: {{periods: 1, treat_missing: not_breaching}}\n"
    ));
    let ip = "203.0.113.9";
    let records = vec![
        sign_in("12:05:01", ip, "ConsoleLogin"),
        sign_in("12:05:02", ip, "ConsoleLogin"),
        sign_in("12:00:01", ip, "ConsoleLogin"),
        sign_in("12:00:02", ip, "ConsoleLogin"),
        // Watermark 12:20 (lateness 10m, records of 12:30): 12:10 is empty.
        sign_in("12:30:00", ip, "ListRoles"),
    ];
    let alerts = run_service(&spec, records, 1, 10 * 60_000);
    let created: Vec<&Alert> = creates(&alerts);
    assert_eq!(created.len(), 1, "{:?}", activities(&alerts));
    let closes: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.activity == Activity::Close)
        .collect();
    assert_eq!(closes.len(), 1, "{:?}", activities(&alerts));
    assert_eq!(closes[0].id, created[0].id, "the Close ends that Create");
}

/// Period 12:15 breaches first (eager Create), then the earlier period
/// 12:00 breaches, and 12:05 (one event) does not. Two ALARM episodes, as
/// in time order: 12:00 (Create, then Close at 12:05) and 12:15. Before,
/// 12:00 took 12:15's eager Create for its own: it got no Create, 12:05
/// sent a Close with 12:15's id before 12:15 happened, and in service mode
/// 12:20 closed 12:15 a second time.
#[test]
fn an_earlier_alarm_that_clears_before_a_later_eager_one_gets_its_own_create() {
    let spec = rule(&format!(
        "{ALARM_BY_IP}threshold: \">= 3\"\nevaluation: {{periods: 1, treat_missing: not_breaching}}\n"
    ));
    let ip = "203.0.113.9";
    let records = vec![
        sign_in("12:15:10", ip, "ConsoleLogin"),
        sign_in("12:15:11", ip, "ConsoleLogin"),
        sign_in("12:15:12", ip, "ConsoleLogin"),
        sign_in("12:00:10", ip, "ConsoleLogin"),
        sign_in("12:00:11", ip, "ConsoleLogin"),
        sign_in("12:00:12", ip, "ConsoleLogin"),
        sign_in("12:06:00", ip, "ConsoleLogin"),
        // Watermark 12:30 (lateness 20m): 12:20 and 12:25 are empty.
        sign_in("12:50:00", ip, "ListRoles"),
    ];
    let sorted = |mut alerts: Vec<Alert>| {
        alerts.sort_by_key(|a| (a.window_start_ms, a.activity as u8));
        alerts
    };
    let service = sorted(run_service(&spec, records.clone(), 1, 20 * 60_000));
    let replay = sorted(run_replay(&spec, records, 1));
    for (mode, alerts) in [("service", &service), ("replay", &replay)] {
        let expected = [
            (Activity::Create, "2024-03-01T12:00:00Z".to_string()),
            (Activity::Close, "2024-03-01T12:05:00Z".to_string()),
            (Activity::Create, "2024-03-01T12:15:00Z".to_string()),
            (Activity::Close, "2024-03-01T12:20:00Z".to_string()),
        ];
        assert_eq!(activities(alerts), expected, "{mode}");
        assert_eq!(
            alerts[0].id, alerts[1].id,
            "{mode}: the first Close ends the first Create"
        );
        assert_eq!(
            alerts[2].id, alerts[3].id,
            "{mode}: the second Close ends the second Create"
        );
        assert_ne!(alerts[0].id, alerts[2].id, "{mode}");
        assert_eq!(
            alerts[0].count, 3,
            "{mode}: the deferred Create keeps its period's count"
        );
    }
}

/// As above, with `treat_missing: missing`: the earlier ALARM ends in
/// INSUFFICIENT_DATA (no Close, as in CloudWatch) before the eager period.
/// Its deferred Create goes out then; the alarm does not keep it (and the
/// input it holds) waiting for a Close that never comes.
#[test]
fn an_earlier_alarm_that_ends_in_insufficient_data_gets_its_own_create() {
    let spec = rule(&format!(
        "{ALARM_BY_IP}threshold: \">= 3\"\nevaluation: {{periods: 1, treat_missing: missing}}\n"
    ));
    let ip = "203.0.113.9";
    let records = vec![
        sign_in("12:15:10", ip, "ConsoleLogin"),
        sign_in("12:15:11", ip, "ConsoleLogin"),
        sign_in("12:15:12", ip, "ConsoleLogin"),
        sign_in("12:00:10", ip, "ConsoleLogin"),
        sign_in("12:00:11", ip, "ConsoleLogin"),
        sign_in("12:00:12", ip, "ConsoleLogin"),
        sign_in("12:50:00", ip, "ListRoles"),
    ];
    let mut alerts = run_service(&spec, records, 1, 20 * 60_000);
    alerts.sort_by_key(|a| a.window_start_ms);
    assert_eq!(
        activities(&alerts),
        [
            (Activity::Create, "2024-03-01T12:00:00Z".to_string()),
            (Activity::Create, "2024-03-01T12:15:00Z".to_string()),
        ]
    );
    assert_ne!(alerts[0].id, alerts[1].id);
}

/// A sliding rule in service mode: the burst at 12:15 raises eagerly,
/// then a burst at 12:03 arrives, within the allowed lateness. Both alert,
/// each with its Close, as in time order. Before, the steps before the
/// eager one were skipped: the 12:03 burst was neither alerted nor
/// counted late.
#[test]
fn a_sliding_alarm_alerts_an_earlier_burst_that_arrives_after_a_later_one() {
    let spec = rule(&format!(
        "{ALARM_BY_IP}threshold: \">= 3\"\nslide: 1m\nevaluation: {{periods: 1, treat_missing: not_breaching}}\n"
    ));
    let ip = "203.0.113.9";
    let records = vec![
        sign_in("12:15:10", ip, "ConsoleLogin"),
        sign_in("12:15:20", ip, "ConsoleLogin"),
        sign_in("12:15:30", ip, "ConsoleLogin"),
        sign_in("12:03:00", ip, "ConsoleLogin"),
        sign_in("12:03:10", ip, "ConsoleLogin"),
        sign_in("12:03:20", ip, "ConsoleLogin"),
        sign_in("12:06:00", ip, "ConsoleLogin"),
        // Watermark 12:45 (lateness 15m): every step of both bursts passed.
        sign_in("13:00:00", ip, "ListRoles"),
    ];
    let mut alerts = run_service(&spec, records.clone(), 1, 15 * 60_000);
    alerts.sort_by_key(|a| (a.window_start_ms, a.activity as u8));
    let mut in_order = run_service(&spec, sorted_by_time(records), 1, 15 * 60_000);
    in_order.sort_by_key(|a| (a.window_start_ms, a.activity as u8));
    let expected = [
        (Activity::Create, "2024-03-01T11:59:00Z".to_string()),
        (Activity::Close, "2024-03-01T12:04:00Z".to_string()),
        (Activity::Create, "2024-03-01T12:11:00Z".to_string()),
        (Activity::Close, "2024-03-01T12:16:00Z".to_string()),
    ];
    assert_eq!(activities(&in_order), expected, "in time order");
    assert_eq!(activities(&alerts), expected, "out of order");
    let ids = |alerts: &[Alert]| alerts.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&alerts), ids(&in_order));
}

/// The records in event-time order (`sign_in` puts the time first).
fn sorted_by_time(mut records: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let time = |r: &Vec<u8>| {
        let v: serde_json::Value = serde_json::from_slice(r).unwrap();
        v["eventTime"].as_str().unwrap().to_string()
    };
    records.sort_by_key(time);
    records
}

/// The alarm of one key clears in the first period without data (not
/// breaching), whatever other keys do and however many shards there are:
/// keys are evaluated as the watermark passes their periods, not only when
/// their shard closes a window then.
#[test]
fn an_alarm_clears_in_its_first_empty_period_on_any_shard_count() {
    let spec = rule(&format!(
        "{ALARM_BY_IP}threshold: \">= 2\"\nevaluation: {{periods: 1, treat_missing: not_breaching}}\n"
    ));
    for (shards, replay) in [1, 2, 4, 8]
        .into_iter()
        .flat_map(|n| [(n, false), (n, true)])
    {
        let records = vec![
            sign_in("12:00:01", "203.0.113.9", "ConsoleLogin"),
            sign_in("12:00:02", "203.0.113.9", "ConsoleLogin"),
            sign_in("12:40:00", "198.51.100.7", "ConsoleLogin"),
            // Watermark 12:45 (lateness 0): every period to 12:45 ended.
            // Replay: the input ends there.
            sign_in("12:45:00", "198.51.100.7", "ListRoles"),
        ];
        let alerts = if replay {
            run_replay(&spec, records, shards)
        } else {
            run_service(&spec, records, shards, 0)
        };
        let ours: Vec<(Activity, String)> = alerts
            .iter()
            .filter(|a| a.key.iter().any(|k| k == "203.0.113.9"))
            .map(|a| {
                (
                    a.activity,
                    trailwatch::rules::testing::rfc3339(a.window_start_ms),
                )
            })
            .collect();
        assert_eq!(
            ours,
            vec![
                (Activity::Create, "2024-03-01T12:00:00Z".to_string()),
                (Activity::Close, "2024-03-01T12:05:00Z".to_string()),
            ],
            "{shards} shards, replay {replay}"
        );
    }
}
