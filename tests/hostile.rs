//! Hostile and broken input, through the whole engine (library API).
//!
//! Every test mixes one kind of hostile input with a *good burst* (three
//! failed console logins from 203.0.113.9, enough for the `burst` rule) in
//! the same batch, then checks the three promises of issue 8:
//!
//! 1. the engine stays up (`Engine::run` returns `Ok`);
//! 2. every bad record is counted (`Metrics::failed_by_reason`) and
//!    dead-lettered with its offset (`MemoryDeadLetters`);
//! 3. the good burst is still processed and alerted on.
//!
//! Records are fed through [`MemorySource`] (one record per message, like
//! Kafka or Kinesis), in replay mode so the outcome does not depend on the
//! wall clock. No assertion is on elapsed time. Large inputs are built
//! cheaply (repeated bytes, repeated gzip members) and kept to a few
//! hundred MB at most. See RELIABILITY.md for the full list.

use std::io::Write as _;
use std::sync::Arc;

use flate2::write::GzEncoder;
use flate2::Compression;
use trailwatch::alert::{Activity, Alert};
use trailwatch::decode::DecodeErrorReason;
use trailwatch::engine::{Engine, EngineConfig};
use trailwatch::metrics::Metrics;
use trailwatch::rules::{RuleSet, RuleSpec};
use trailwatch::sink::writer::{MemoryDeadLetters, MemorySink};
use trailwatch::sink::DeadLetter;
use trailwatch::source::memory::MemorySource;

const BURST_RULE: &str = r#"
id: burst
title: console login failures
kind: cloudtrail
filter: '{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }'
group_by: [sourceIPAddress]
window: 5m
threshold: ">= 3"
"#;

const FLOW_RULE: &str = r#"
id: ssh-rejects
title: rejected ssh
kind: vpcflow
filter: '[version, account, eni, src, dst, sport, dport="22", proto, pkts, bytes, start, end, action="REJECT", status]'
group_by: [srcaddr]
window: 5m
threshold: ">= 3"
"#;

const REGEX_RULE: &str = r#"
id: hostile-regex
title: catastrophic-backtracking shaped regex
kind: hostlog
filter: '%(a+)+$%'
window: 5m
threshold: ">= 3"
"#;

const GOOD_IP: &str = "203.0.113.9";

fn rules(texts: &[&str]) -> Arc<RuleSet> {
    let specs: Vec<RuleSpec> = texts
        .iter()
        .map(|t| serde_yaml_ng::from_str(t).expect("rule yaml"))
        .collect();
    Arc::new(RuleSet::compile(&specs).expect("rules compile"))
}

fn login_failure(time: &str, ip: &str, id: &str) -> Vec<u8> {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"{time}","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","errorMessage":"Failed authentication","recipientAccountId":"111122223333","sourceIPAddress":"{ip}","eventID":"{id}"}}"#
    )
    .into_bytes()
}

/// Three failed logins from [`GOOD_IP`]: one alert from the `burst` rule.
fn good_burst() -> Vec<Vec<u8>> {
    (0..3)
        .map(|i| {
            login_failure(
                &format!("2024-03-01T12:00:0{i}Z"),
                GOOD_IP,
                &format!("good-{i}"),
            )
        })
        .collect()
}

/// What one engine run produced.
struct Outcome {
    alerts: Vec<Alert>,
    dead: Vec<DeadLetter>,
    metrics: Arc<Metrics>,
}

impl Outcome {
    fn failed(&self, reason: DecodeErrorReason) -> u64 {
        self.metrics
            .failed_by_reason()
            .into_iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| n)
    }

    fn failed_total(&self) -> u64 {
        self.metrics.failed_by_reason().iter().map(|(_, n)| n).sum()
    }

    fn events(&self) -> u64 {
        self.metrics.sum(|w| &w.events)
    }

    fn creates_for(&self, rule: &str, key: &str) -> usize {
        self.alerts
            .iter()
            .filter(|a| {
                a.activity == Activity::Create
                    && a.rule.id == rule
                    && a.key.iter().any(|k| k == key)
            })
            .count()
    }

    /// The good burst alerted exactly once.
    fn assert_good_burst_alerted(&self) {
        assert_eq!(
            self.creates_for("burst", GOOD_IP),
            1,
            "good burst not alerted: {:?}",
            self.alerts
        );
    }

    /// Record `offset` was dead-lettered, with a reason among `reasons`.
    fn assert_dead_lettered(&self, offset: u64, reasons: &[DecodeErrorReason]) {
        let labels: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
        let found = self.dead.iter().find(|d| d.offset == offset);
        match found {
            Some(d) => assert!(
                labels.contains(&d.reason),
                "offset {offset}: reason {} not in {labels:?} ({})",
                d.reason,
                d.detail
            ),
            None => panic!(
                "offset {offset} not dead-lettered; dead letters at {:?}",
                self.dead.iter().map(|d| d.offset).collect::<Vec<_>>()
            ),
        }
    }

    /// Every dead letter is counted and vice versa.
    fn assert_counts_match_dead_letters(&self) {
        assert_eq!(
            self.failed_total(),
            self.dead.len() as u64,
            "failed counters and dead letters disagree"
        );
        assert_eq!(
            self.metrics.sum(|w| &w.dead_lettered),
            self.dead.len() as u64
        );
    }
}

fn engine_config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.watermark.replay = true;
    config.flush_on_end = true;
    config.shards = 2;
    config.decoders = 1;
    config
}

fn run_with(config: EngineConfig, rule_set: Arc<RuleSet>, records: Vec<Vec<u8>>) -> Outcome {
    let engine = Engine::new(config, rule_set);
    let sink = MemorySink::default();
    let alerts = Arc::clone(&sink.alerts);
    let dead_letters = MemoryDeadLetters::default();
    let dead = Arc::clone(&dead_letters.records);
    let batch = records.len().max(1);
    engine
        .run(
            vec![Box::new(MemorySource::new("hostile", records, batch))],
            Box::new(sink),
            Box::new(dead_letters),
        )
        .expect("engine stays up");
    let alerts = alerts.lock().expect("alerts").clone();
    let dead = std::mem::take(&mut *dead.lock().expect("dead letters"));
    Outcome {
        alerts,
        dead,
        metrics: engine.metrics(),
    }
}

/// Runs `hostile` records followed by the good burst, in one batch.
/// Returns the outcome; hostile record `i` has offset `i`.
fn run_mixed(rule_texts: &[&str], hostile: Vec<Vec<u8>>) -> Outcome {
    let mut records = hostile;
    records.extend(good_burst());
    run_with(engine_config(), rules(rule_texts), records)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data).expect("gzip write");
    encoder.finish().expect("gzip finish")
}

// ───────────────────────────── size and shape ─────────────────────────────

#[test]
fn hundred_megabyte_record_is_dead_lettered_as_too_large() {
    let padding = "A".repeat(100 * 1024 * 1024);
    let huge = format!(
        r#"{{"eventVersion":"1.08","eventTime":"2024-03-01T12:00:00Z","eventName":"ConsoleLogin","userAgent":"{padding}"}}"#
    )
    .into_bytes();
    drop(padding);
    let size = huge.len();
    let out = run_mixed(&[BURST_RULE], vec![huge]);
    assert_eq!(out.failed(DecodeErrorReason::TooLarge), 1);
    out.assert_dead_lettered(0, &[DecodeErrorReason::TooLarge]);
    assert_eq!(out.dead[0].bytes.len(), size, "original kept whole");
    out.assert_counts_match_dead_letters();
    out.assert_good_burst_alerted();
}

#[test]
fn json_nested_100000_deep_is_decoded_or_dead_lettered_without_stack_overflow() {
    let depth = 100_000;
    // In a planned field, in an unplanned field, as the whole record, and
    // as an element of an S3 log file.
    let nested =
        |open: &str, close: &str| format!("{}1{}", open.repeat(depth), close.repeat(depth));
    let arrays = nested("[", "]");
    let objects = nested(r#"{"a":"#, "}");
    let hostile = vec![
        format!(
            r#"{{"eventVersion":"1.08","eventTime":"2024-03-01T12:00:00Z","requestParameters":{arrays}}}"#
        ),
        format!(
            r#"{{"eventVersion":"1.08","eventTime":"2024-03-01T12:00:00Z","sourceIPAddress":{objects}}}"#
        ),
        format!(
            r#"{{"eventVersion":"1.08","eventTime":"2024-03-01T12:00:00Z","errorMessage":{objects}}}"#
        ),
        arrays.clone(),
        objects.clone(),
        format!(r#"{{"Records":[{arrays}]}}"#),
    ];
    let count = hostile.len() as u64;
    let out = run_mixed(
        &[BURST_RULE],
        hostile.into_iter().map(String::into_bytes).collect(),
    );
    // Deep values inside a CloudTrail record are skipped or land on a
    // container (no comparison matches one): the record still decodes.
    // As the whole record they are dead-lettered: a deep object of no
    // known shape is `unknown_format` (serde_json skips ignored values
    // iteratively, so no stack is at risk), a top-level array's elements
    // are not objects (`wrong_type`), and what a typed parse reaches past
    // serde_json's recursion limit is `too_deep`.
    assert_eq!(out.events() + out.failed_total(), count + 3);
    for offset in 3..count {
        out.assert_dead_lettered(
            offset,
            &[
                DecodeErrorReason::TooDeep,
                DecodeErrorReason::WrongType,
                DecodeErrorReason::UnknownFormat,
            ],
        );
    }
    out.assert_counts_match_dead_letters();
    out.assert_good_burst_alerted();
}

#[test]
fn million_element_request_parameters_array_is_decoded() {
    let mut items = String::with_capacity(2_100_000);
    items.push('[');
    for i in 0..1_000_000 {
        if i > 0 {
            items.push(',');
        }
        items.push('0');
    }
    items.push(']');
    // A fourth failed login from another address, carrying the array.
    let other_ip = "198.51.100.1";
    let mut hostile = Vec::new();
    for i in 0..3 {
        hostile.push(
            format!(
                r#"{{"eventVersion":"1.08","eventTime":"2024-03-01T12:01:0{i}Z","eventName":"ConsoleLogin","errorMessage":"Failed authentication","sourceIPAddress":"{other_ip}","requestParameters":{{"items":{items}}},"eventID":"big-{i}"}}"#
            )
            .into_bytes(),
        );
    }
    let out = run_mixed(&[BURST_RULE], hostile);
    assert_eq!(
        out.failed_total(),
        0,
        "{:?}",
        out.dead.first().map(|d| &d.detail)
    );
    assert_eq!(out.events(), 6);
    assert_eq!(
        out.creates_for("burst", other_ip),
        1,
        "array records matched"
    );
    out.assert_good_burst_alerted();
}

/// `count` gzip members of `member` back to back: a multi-member stream
/// whose decompressed size is `count` times the member's, built in O(count)
/// copies of a ~1 KB member.
fn repeated_members(member: &[u8], count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(member.len() * count);
    for _ in 0..count {
        out.extend_from_slice(member);
    }
    out
}

#[test]
fn gzip_bombs_stop_at_the_decompression_cap() {
    // One member: 1 MiB of spaces inflates from about 1 KB.
    let member = gzip(&vec![b' '; 1 << 20]);
    assert!(member.len() < 2048, "member is {} bytes", member.len());
    // 10 GiB single layer (about 10 MB compressed).
    let ten_gib = repeated_members(&member, 10 * 1024);
    // Two layers: the outer ~1 KB-per-MiB stream inflates to the 10 MB
    // stream above, which would inflate to 10 GiB.
    let double = gzip(&ten_gib);
    // A bomb of JSON whitespace inside a CloudWatch Logs `awslogs` wrapper.
    use base64::Engine as _;
    let wrapped = format!(
        r#"{{"awslogs":{{"data":"{}"}}}}"#,
        base64::engine::general_purpose::STANDARD.encode(repeated_members(&member, 128))
    );
    let hostile = vec![ten_gib, double, wrapped.into_bytes()];
    let mut config = engine_config();
    config.decode.max_decompressed_bytes = 64 * 1024 * 1024;
    let mut records = hostile;
    records.extend(good_burst());
    let out = run_with(config, rules(&[BURST_RULE]), records);
    for offset in 0..3 {
        out.assert_dead_lettered(offset, &[DecodeErrorReason::DecompressedTooLarge]);
    }
    assert_eq!(out.failed(DecodeErrorReason::DecompressedTooLarge), 3);
    out.assert_counts_match_dead_letters();
    out.assert_good_burst_alerted();
}

/// CloudTrail string fields, as JSON text fragments `"key":"value"`.
const STRING_FIELDS: [&str; 14] = [
    "eventVersion",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "errorCode",
    "errorMessage",
    "eventID",
    "eventType",
    "recipientAccountId",
    "userIdentity.arn",
    "requestParameters.bucketName",
];

/// A login failure with `value` (raw JSON text) at `field`.
fn record_with(field: &str, value: &[u8]) -> Vec<u8> {
    let mut fields: Vec<(String, Vec<u8>)> = [
        ("eventVersion", "\"1.08\""),
        ("eventTime", "\"2024-03-01T12:02:00Z\""),
        ("eventSource", "\"signin.amazonaws.com\""),
        ("eventName", "\"ConsoleLogin\""),
        ("awsRegion", "\"us-east-1\""),
        ("sourceIPAddress", "\"198.51.100.2\""),
        ("userAgent", "\"agent\""),
        ("errorCode", "\"Denied\""),
        ("errorMessage", "\"Failed authentication\""),
        ("eventID", "\"x\""),
        ("eventType", "\"AwsConsoleSignIn\""),
        ("recipientAccountId", "\"111122223333\""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect();
    let mut nested = |parent: &str, child: &str, default: &[u8]| {
        let inner = if field == format!("{parent}.{child}") {
            value.to_vec()
        } else {
            default.to_vec()
        };
        let mut object = format!("{{\"{child}\":").into_bytes();
        object.extend_from_slice(&inner);
        object.push(b'}');
        fields.push((parent.to_string(), object));
    };
    nested("userIdentity", "arn", b"\"arn:aws:iam::1:user/a\"");
    nested("requestParameters", "bucketName", b"\"b\"");
    let mut out = b"{".to_vec();
    for (index, (key, default)) in fields.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!("\"{key}\":").as_bytes());
        if key == field {
            out.extend_from_slice(value);
        } else {
            out.extend_from_slice(default);
        }
    }
    out.push(b'}');
    out
}

#[test]
fn invalid_utf8_in_every_string_field_is_dead_lettered() {
    let mut hostile: Vec<Vec<u8>> = STRING_FIELDS
        .iter()
        .map(|f| record_with(f, b"\"ok\xff\xfe\xc0\x80bad\""))
        .collect();
    // Flow and host-log lines, and a CloudWatch Logs envelope (gzip).
    hostile.push(b"2 123456789012 eni-1 198.51.100.7 10.0.0.5 40000 22 6 10 840 1709294400 1709294460 REJ\xffECT OK".to_vec());
    hostile
        .push(b"2024-03-01T12:00:02Z host sshd[1]: Failed password for \xff from 1.2.3.4".to_vec());
    hostile.push(gzip(b"{\"messageType\":\"DATA_MESSAGE\",\"logEvents\":[{\"id\":\"1\",\"timestamp\":1,\"message\":\"\xff\"}]}"));
    let count = hostile.len() as u64;
    let out = run_mixed(&[BURST_RULE, FLOW_RULE], hostile);
    for offset in 0..count {
        out.assert_dead_lettered(offset, &[DecodeErrorReason::InvalidUtf8]);
    }
    assert_eq!(out.failed(DecodeErrorReason::InvalidUtf8), count);
    out.assert_counts_match_dead_letters();
    out.assert_good_burst_alerted();
}

#[test]
fn lone_surrogate_escapes_in_every_string_field_are_decoded_or_dead_lettered() {
    let hostile: Vec<Vec<u8>> = STRING_FIELDS
        .iter()
        .map(|f| record_with(f, br#""\ud800x\udfff""#))
        .collect();
    let count = hostile.len() as u64;
    let out = run_mixed(&[BURST_RULE], hostile);
    // Nothing silently dropped: every hostile record is an event or a
    // dead letter (the good burst adds three events).
    assert_eq!(out.events() + out.failed_total(), count + 3);
    out.assert_counts_match_dead_letters();
    out.assert_good_burst_alerted();
}

#[test]
fn nul_bytes_are_decoded_or_dead_lettered() {
    let hostile = vec![
        record_with("eventName", b"\"Console\0Login\""), // raw NUL: invalid JSON
        record_with("userAgent", br#""agent\u0000x""#),  // escaped NUL: fine
        b"\0\0\0\0".to_vec(),
        b"2 123456789012 eni-1 198.51.100.7 10.0.0.5 40000 22 6 10 840 1709294400 1709294460 REJECT\0 OK".to_vec(),
        b"{\"eventVersion\":\"1.08\",\0}".to_vec(),
    ];
    let out = run_mixed(&[BURST_RULE, FLOW_RULE], hostile);
    out.assert_dead_lettered(0, &[DecodeErrorReason::InvalidJson]);
    out.assert_dead_lettered(2, &[DecodeErrorReason::UnknownFormat]);
    out.assert_dead_lettered(4, &[DecodeErrorReason::InvalidJson]);
    assert_eq!(out.events() + out.failed_total(), 5 + 3);
    out.assert_counts_match_dead_letters();
    out.assert_good_burst_alerted();
}

#[test]
fn numbers_where_strings_are_expected_and_the_reverse() {
    let hostile = vec![
        record_with("eventTime", b"1709294400"),
        record_with("eventName", b"42"),
        record_with("sourceIPAddress", b"3405803776"),
        record_with("errorMessage", b"[1,2]"),
        record_with("userIdentity.arn", b"{\"x\":1}"),
        record_with("eventVersion", b"null"),
        // The reverse: strings (and other types) where numbers or
        // containers are expected.
        br#"{"eventVersion":"1.08","eventTime":"2024-03-01T12:00:00Z","readOnly":"true","requestParameters":"x","userIdentity":"root"}"#.to_vec(),
        br#"{"Records":"not an array"}"#.to_vec(),
        br#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":1,"timestamp":"soon","message":7}]}"#.to_vec(),
        b"2 123456789012 eni-1 198.51.100.7 10.0.0.5 forty 22 6 ten many 1709294400 1709294460 REJECT OK".to_vec(),
        b"2 123456789012 eni-1 198.51.100.7 10.0.0.5 40000 22 6 10 840 soon later REJECT OK".to_vec(),
    ];
    let count = hostile.len() as u64;
    let out = run_mixed(&[BURST_RULE, FLOW_RULE], hostile);
    out.assert_dead_lettered(
        0,
        &[
            DecodeErrorReason::WrongType,
            DecodeErrorReason::BadEventTime,
        ],
    );
    out.assert_dead_lettered(7, &[DecodeErrorReason::WrongType]);
    out.assert_dead_lettered(10, &[DecodeErrorReason::BadFlowRecord]);
    // Each hostile record yields one event or at least one dead letter.
    assert!(out.events() + out.failed_total() >= count + 3);
    out.assert_counts_match_dead_letters();
    out.assert_good_burst_alerted();
}

// ─────────────────────────────────── time ───────────────────────────────────

#[test]
fn extreme_timestamps_are_windowed_or_dead_lettered() {
    let far_future_ip = "198.51.100.9";
    let before_epoch_ip = "198.51.100.19";
    let mut hostile = Vec::new();
    for i in 0..3 {
        hostile.push(login_failure(
            &format!("9999-12-31T23:59:5{i}Z"),
            far_future_ip,
            &format!("f{i}"),
        ));
        hostile.push(login_failure(
            &format!("1969-12-31T23:58:0{i}Z"),
            before_epoch_ip,
            &format!("b{i}"),
        ));
    }
    // Year 0 is a valid (proleptic Gregorian) time: decoded, no alert.
    hostile.push(login_failure("0000-01-01T00:00:00Z", "198.51.100.98", "y0"));
    let unparsable = [
        "+275760-09-13T00:00:00Z",
        "99999-01-01T00:00:00Z",
        "2024-02-30T12:00:00Z",
        "2024-03-01T25:00:00Z",
        "",
    ];
    let first_bad = hostile.len() as u64;
    for (i, time) in unparsable.iter().enumerate() {
        hostile.push(login_failure(time, "198.51.100.99", &format!("u{i}")));
    }
    let out = run_mixed(&[BURST_RULE], hostile);
    // Far-future and pre-1970 bursts land in their own epoch-aligned
    // windows (replay never clamps) and alert like any other.
    assert_eq!(
        out.creates_for("burst", far_future_ip),
        1,
        "{:?}",
        out.alerts
    );
    let before = out
        .alerts
        .iter()
        .find(|a| a.activity == Activity::Create && a.key.iter().any(|k| k == before_epoch_ip))
        .expect("pre-1970 burst alerted");
    // 1969-12-31T23:55:00Z: windows stay aligned below zero.
    assert_eq!(before.window_start_ms, -300_000);
    for offset in first_bad..first_bad + unparsable.len() as u64 {
        out.assert_dead_lettered(
            offset,
            &[
                DecodeErrorReason::BadEventTime,
                DecodeErrorReason::MissingEventTime,
            ],
        );
    }
    out.assert_counts_match_dead_letters();
    out.assert_good_burst_alerted();
}

/// A flow `start` and a CloudWatch Logs timestamp are numbers, with no
/// calendar to bound them: outside the years 0000 to 9999 they are bad
/// event times, not windows near `i64::MIN` (whose arithmetic overflowed:
/// a panic in a debug build, a window ending at `i64::MAX` in release).
#[test]
fn flow_and_log_event_times_outside_years_0_to_9999_are_dead_lettered() {
    let flow = |start: &str| {
        format!("2 111122223333 eni-1 198.51.100.7 10.0.0.5 40000 22 6 1 40 {start} 1709295600 REJECT OK")
            .into_bytes()
    };
    let host_event = |timestamp: i64| {
        gzip(
            format!(
                r#"{{"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"/var/log/secure","logStream":"i-1","logEvents":[{{"id":"1","timestamp":{timestamp},"message":"ip-10-0-0-5 su: pam_unix(su:auth): authentication failure; logname=ec2-user uid=1000 euid=0 tty=pts/0 ruser=ec2-user rhost=  user=dbdev"}}]}}"#
            )
            .as_bytes(),
        )
    };
    let hostile = vec![
        flow("-9223372036854775808"),
        flow("-62167219201"),
        flow("253402300800"),
        flow("99999999999999999"),
        host_event(i64::MIN),
        host_event(i64::MAX),
        // The edges themselves are times.
        flow("-62167219200"),
        flow("253402300799"),
    ];
    let out = run_mixed(&[BURST_RULE, FLOW_RULE], hostile);
    for offset in 0..6 {
        out.assert_dead_lettered(offset, &[DecodeErrorReason::BadEventTime]);
    }
    assert!(
        out.dead.iter().all(|d| d.offset < 6),
        "the edges are decoded: {:?}",
        out.dead
    );
    out.assert_counts_match_dead_letters();
    out.assert_good_burst_alerted();
}

#[test]
fn leap_second_timestamp_is_accounted_for() {
    let leap_ip = "198.51.100.60";
    let hostile = (0..3)
        .map(|i| login_failure("2016-12-31T23:59:60Z", leap_ip, &format!("leap{i}")))
        .collect();
    let out = run_mixed(&[BURST_RULE], hostile);
    // A leap second is a valid RFC 3339 time: decoded (chrono folds it into
    // the previous second) or, at worst, dead-lettered: never lost.
    if out.failed_total() == 0 {
        let alert = out
            .alerts
            .iter()
            .find(|a| a.activity == Activity::Create && a.key.iter().any(|k| k == leap_ip))
            .expect("leap-second burst alerted");
        // chrono represents 23:59:60 as 23:59:59 plus 1000 ms, so the
        // event lands on 2017-01-01T00:00:00.000Z, the first instant of
        // the next window (or, with another representation, the last
        // second of the previous one). Either is an adjacent instant.
        assert!(
            [1_483_228_500_000, 1_483_228_800_000].contains(&alert.window_start_ms),
            "window start {}",
            alert.window_start_ms
        );
    } else {
        for offset in 0..3 {
            out.assert_dead_lettered(offset, &[DecodeErrorReason::BadEventTime]);
        }
    }
    out.assert_counts_match_dead_letters();
    out.assert_good_burst_alerted();
}

#[test]
fn an_ssh_user_name_cannot_choose_the_alerted_source_address() {
    const SSH_RULE: &str = r#"
id: ssh-invalid-users
title: invalid ssh users
kind: hostlog
filter: '"Invalid user"'
group_by: [src_ip]
window: 5m
threshold: ">= 3"
"#;
    // sshd writes the client's user name verbatim, spaces included: this
    // name reads like an address of the attacker's choosing.
    let hostile = (0..3)
        .map(|i| {
            format!("2024-03-01T12:00:0{i}Z ip-10-0-0-5 sshd[1234]: Invalid user x from 198.51.100.1 port 1 from 203.0.113.12 port 5000{i}")
                .into_bytes()
        })
        .collect();
    let out = run_mixed(&[BURST_RULE, SSH_RULE], hostile);
    assert_eq!(
        out.creates_for("ssh-invalid-users", "203.0.113.12"),
        1,
        "{:?}",
        out.alerts
    );
    assert_eq!(out.creates_for("ssh-invalid-users", "198.51.100.1"), 0);
    out.assert_counts_match_dead_letters();
    out.assert_good_burst_alerted();
}

#[test]
fn negative_flow_byte_counts_do_not_break_the_flow_rule() {
    let line = |src: &str, bytes: &str| {
        format!("2 123456789012 eni-1 {src} 10.0.0.5 40000 22 6 10 {bytes} 1709294400 1709294460 REJECT OK")
            .into_bytes()
    };
    let mut hostile = vec![
        line("198.51.100.70", "-840"),
        line("198.51.100.70", "-9223372036854775808"),
        line("198.51.100.70", "-1e308"),
        line("198.51.100.71", "-"),
    ];
    // A good flow burst too.
    for _ in 0..3 {
        hostile.push(line("198.51.100.72", "840"));
    }
    let out = run_mixed(&[BURST_RULE, FLOW_RULE], hostile);
    assert_eq!(out.events() + out.failed_total(), 7 + 3);
    assert_eq!(
        out.creates_for("ssh-rejects", "198.51.100.72"),
        1,
        "{:?}",
        out.alerts
    );
    out.assert_counts_match_dead_letters();
    out.assert_good_burst_alerted();
}

// ─────────────────────────────────── rules ──────────────────────────────────

/// Why this proves linear time without measuring time:
///
/// 1. Filters compile regexes with the `regex` crate only
///    (`src/filter/parser.rs::compile_regex`). That crate documents that
///    "all searches execute in linear time with respect to the size of the
///    regular expression and search text" (docs.rs/regex, "Untrusted
///    input"): it has no backtracking engine, only finite automata
///    (PikeVM, bounded backtracker with a visited set, lazy DFA).
/// 2. Structurally, the crate rejects the features that force
///    backtracking (backreferences, look-around): checked below on the
///    crate itself and through the filter parser. An engine able to
///    backtrack catastrophically on `(a+)+$` would accept them.
/// 3. The regex size `m` is capped (`size_limit`), checked below by a
///    pattern that would compile huge, so `O(m * n)` is `O(n)` per event.
/// 4. The hostile rule runs over 100 KB lines in the engine and gives the
///    right answer; an exponential matcher would need ~2^100000 steps and
///    this test would never finish (the harness, not an assertion, would
///    notice).
#[test]
fn catastrophic_backtracking_regex_is_linear() {
    // (2) No backtracking-only features, in the crate and in filters.
    // (Patterns go through a slice: clippy rejects them as literals, which
    // is the same evidence at lint time.)
    let backtracking_only: &[&str] = &[r"(a)\1", r"a(?=b)", r"(?<=b)a", r"a(?!b)"];
    for pattern in backtracking_only {
        assert!(regex::Regex::new(pattern).is_err(), "{pattern} compiled");
    }
    assert!(trailwatch::filter::Filter::parse(r"%(a)\1%").is_err());
    assert!(trailwatch::filter::Filter::parse(r"%a(?=b)%").is_err());
    // (3) Compiled size is capped.
    assert!(trailwatch::filter::Filter::parse(r"%(\w{100}){100}{100}%").is_err());

    // (4) Through the engine, on 100 KB hostile lines.
    let hostile_tail = "a".repeat(100 * 1024);
    let mut hostile = Vec::new();
    for i in 0..3 {
        // Matches: ends in `a`.
        hostile.push(format!("2024-03-01T12:00:0{i}Z host app: {hostile_tail}").into_bytes());
        // The worst case for a backtracker: all `a`, then a non-`a`.
        hostile.push(format!("2024-03-01T12:00:0{i}Z host app: {hostile_tail}!").into_bytes());
    }
    let out = run_mixed(&[BURST_RULE, REGEX_RULE], hostile);
    assert_eq!(out.failed_total(), 0);
    let regex_alerts: Vec<&Alert> = out
        .alerts
        .iter()
        .filter(|a| a.rule.id == "hostile-regex" && a.activity == Activity::Create)
        .collect();
    assert_eq!(regex_alerts.len(), 1, "{:?}", out.alerts);
    assert_eq!(
        regex_alerts[0].count, 3,
        "only the lines ending in `a` match"
    );
    out.assert_good_burst_alerted();
}

// ─────────────────────────────────── keys ───────────────────────────────────

#[test]
fn flood_of_unique_group_keys_is_shed_under_the_cap() {
    let keys = 200_000u32;
    let cap = 10_000usize;
    // The good burst first, so its eager alert fires before any shedding.
    let mut records = good_burst();
    for i in 0..keys {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        records.push(login_failure(
            "2024-03-01T12:00:05Z",
            &ip.to_string(),
            "flood",
        ));
    }
    let mut config = engine_config();
    config.max_open_windows = cap;
    // Small batches so the shards enforce the cap often.
    let engine = Engine::new(config, rules(&[BURST_RULE]));
    let sink = MemorySink::default();
    let alerts = Arc::clone(&sink.alerts);
    engine
        .run(
            vec![Box::new(MemorySource::new("flood", records, 1024))],
            Box::new(sink),
            Box::new(MemoryDeadLetters::default()),
        )
        .expect("engine stays up");
    let metrics = engine.metrics();
    assert!(metrics.sum(|w| &w.shed) > 0, "the cap was reached and shed");
    assert_eq!(metrics.sum(|w| &w.events), u64::from(keys) + 3);
    let alerts = alerts.lock().expect("alerts");
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.activity == Activity::Create && a.key.iter().any(|k| k == GOOD_IP))
            .count(),
        1
    );
    // No flood key reached the threshold of 3 (one event each).
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.activity == Activity::Create)
            .count(),
        1
    );
}

// ─────────────────────── key flood and the memory cap ───────────────────────

const FLOW_COUNT_RULE: &str = r#"
id: flow-by-source
title: flows by source address
kind: vpcflow
filter: '[version, account, eni, src, dst, sport, dport, proto, pkts, bytes, start, end, action="REJECT", status]'
group_by: [srcaddr]
window: 5m
threshold: ">= 3"
"#;

/// One rejected flow from the `i`-th address of 10.0.0.0/8 (wrapping),
/// `minute` minutes into 2024-03-01T12:00Z.
fn flood_line(i: u32, minute: u32) -> String {
    let ip = std::net::Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff));
    let start = 1_709_294_400 + minute * 60;
    format!(
        "2 123456789012 eni-1 {ip} 10.0.0.5 40000 22 6 1 40 {start} {} REJECT OK",
        start + 60
    )
}

/// Floods unique source addresses with a byte cap on window state and
/// samples the shard gauges while the engine runs: open windows and state
/// bytes stay under the cap (after each batch, which is when shards
/// enforce it), windows are shed, and good flows still alert.
#[test]
fn key_flood_respects_the_state_byte_cap() {
    let keys = 200_000u32;
    let max_state_bytes = 4 * 1024 * 1024;
    let mut records: Vec<Vec<u8>> = Vec::with_capacity(keys as usize + 3);
    // The good burst: one address, three flows, first in the input.
    for _ in 0..3 {
        records.push(flood_line(0x00ff_ffff, 0).into_bytes());
    }
    for i in 0..keys {
        // Spread over 30 minutes so there are several windows to shed.
        records.push(flood_line(i, i / 20_000).into_bytes());
    }
    let mut config = engine_config();
    config.max_state_bytes = max_state_bytes;
    let shards = config.shards;
    let engine = Engine::new(config, rules(&[FLOW_COUNT_RULE]));
    let metrics = engine.metrics();
    let sink = MemorySink::default();
    let alerts = Arc::clone(&sink.alerts);
    let done = std::sync::atomic::AtomicBool::new(false);
    let (max_windows, max_bytes, samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let (mut max_windows, mut max_bytes, mut samples) = (0u64, 0u64, 0u64);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for shard in &metrics.shards {
                    let relaxed = std::sync::atomic::Ordering::Relaxed;
                    max_windows = max_windows.max(shard.open_windows.load(relaxed));
                    max_bytes = max_bytes.max(shard.state_bytes.load(relaxed));
                }
                samples += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            (max_windows, max_bytes, samples)
        });
        engine
            .run(
                vec![Box::new(MemorySource::new("flood", records, 2048))],
                Box::new(sink),
                Box::new(MemoryDeadLetters::default()),
            )
            .expect("engine stays up");
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().expect("sampler")
    });
    assert!(samples > 0);
    let per_shard_bytes = (max_state_bytes / shards) as u64;
    // The cap in windows can never exceed the byte budget over the floor
    // on bytes per window.
    let per_shard_windows = per_shard_bytes / trailwatch::engine::shard::MIN_WINDOW_BYTES;
    assert!(
        max_windows <= per_shard_windows,
        "a shard held {max_windows} windows, cap {per_shard_windows}"
    );
    // Bytes: the cap converts with the previous batch's bytes per window,
    // so allow one batch of drift (10% headroom is what shedding leaves).
    assert!(
        max_bytes <= per_shard_bytes + per_shard_bytes / 10,
        "a shard held {max_bytes} bytes of window state, cap {per_shard_bytes}"
    );
    assert!(metrics.sum(|w| &w.shed) > 0, "nothing was shed");
    assert_eq!(metrics.sum(|w| &w.events), u64::from(keys) + 3);
    let alerts = alerts.lock().expect("alerts");
    let good: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.activity == Activity::Create && a.rule.id == "flow-by-source")
        .collect();
    assert_eq!(good.len(), 1, "only the repeated address alerts: {good:?}");
    assert_eq!(good[0].key, vec!["10.255.255.255".to_string()]);
}

/// Peak resident memory (KiB) of this process's waited-for children.
fn children_max_rss_kib() -> i64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    usage.ru_maxrss
}

/// The memory bound of a capped key flood in a separate process, so the
/// measurement is the engine's alone: peak RSS of `trailwatch replay
/// --max-open-windows 10000` over 1,000,000 unique source addresses,
/// minus the peak RSS of the same replay over a one-line file.
///
/// Bound (documented in RELIABILITY.md): 256 MiB of growth. What it covers:
/// the bounded channels (`channel_batches` = 64 batches per channel, up to
/// 1 MiB of raw records each, plus match batches), 10,000 windows of a few
/// hundred bytes, and allocator slack. Without the cap, the same input
/// holds 1,000,000 windows (several hundred MB more).
#[test]
fn key_flood_peak_rss_stays_bounded_in_a_separate_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).expect("rules dir");
    std::fs::write(rules_dir.join("flow.yaml"), FLOW_COUNT_RULE).expect("rule");
    let small = dir.path().join("small.log");
    std::fs::write(&small, flood_line(1, 0) + "\n").expect("small");
    let flood = dir.path().join("flood.log");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&flood).expect("flood"));
        for i in 0..1_000_000u32 {
            writeln!(out, "{}", flood_line(i, i / 100_000)).expect("write");
        }
        out.flush().expect("flush");
    }
    let replay = |input: &std::path::Path| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_trailwatch"))
            .arg("replay")
            .arg("--no-builtin")
            .arg("--rules")
            .arg(&rules_dir)
            .arg("--max-open-windows")
            .arg("10000")
            .arg("--shards")
            .arg("2")
            .arg("--output")
            .arg(dir.path().join("alerts.jsonl"))
            .arg(input)
            .output()
            .expect("spawn trailwatch replay");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    replay(&small);
    let baseline_kib = children_max_rss_kib();
    let summary = replay(&flood);
    let flood_kib = children_max_rss_kib();
    let growth_mib = (flood_kib - baseline_kib) / 1024;
    eprintln!("baseline {baseline_kib} KiB, flood {flood_kib} KiB, growth {growth_mib} MiB");
    let shed_line = summary
        .lines()
        .find(|l| l.starts_with("windows shed early"))
        .expect("summary has the shed line");
    let shed: u64 = shed_line
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .expect("shed count");
    assert!(shed > 0, "{summary}");
    assert!(growth_mib < 256, "peak RSS grew by {growth_mib} MiB");
}

// ─────────────────────────────── rule loading ───────────────────────────────

/// Rules cannot read files outside their directory: a symlinked rule file
/// or directory inside a rules directory is not followed.
#[test]
fn symlinks_in_a_rules_directory_are_ignored() {
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("evil.yaml"), BURST_RULE).expect("rule");
    std::fs::create_dir(outside.path().join("more")).expect("dir");
    std::fs::write(outside.path().join("more").join("evil2.yaml"), FLOW_RULE).expect("rule");
    let rules_dir = tempfile::tempdir().expect("rules");
    std::fs::write(rules_dir.path().join("own.yaml"), REGEX_RULE).expect("own rule");
    std::os::unix::fs::symlink(
        outside.path().join("evil.yaml"),
        rules_dir.path().join("linked.yaml"),
    )
    .expect("file symlink");
    std::os::unix::fs::symlink(
        outside.path().join("more"),
        rules_dir.path().join("linked-dir"),
    )
    .expect("dir symlink");
    let loaded = trailwatch::rules::load_dir(rules_dir.path()).expect("load");
    let ids: Vec<&str> = loaded.iter().map(|r| r.spec.id.as_str()).collect();
    assert_eq!(ids, vec!["hostile-regex"], "symlinks followed: {ids:?}");
}

// ─────────────────────────── file source findings ───────────────────────────

/// Regression (found while hardening): the file source used to keep an
/// unfinished record in memory without bound, re-scanning it on every
/// 1 MiB chunk, so a ~1 MB `.gz` inflating to a 256 MiB line without a
/// newline held it all. Now a record past `max_record_bytes` is
/// dead-lettered as `too_large` and skipped to its newline, and peak RSS
/// stays far below the record's size.
#[test]
fn file_source_caps_an_unterminated_gzip_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let member = gzip(&vec![b'A'; 1 << 20]);
    let bomb = dir.path().join("bomb.gz");
    std::fs::write(&bomb, repeated_members(&member, 256)).expect("bomb");
    let small = dir.path().join("small.log");
    std::fs::write(&small, flood_line(1, 0) + "\n").expect("small");
    let dead = dir.path().join("dead.jsonl");
    let replay = |input: &std::path::Path| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_trailwatch"))
            .args(["replay", "--quiet", "--output"])
            .arg(dir.path().join("alerts.jsonl"))
            .arg("--dead-letter")
            .arg(&dead)
            .arg(input)
            .output()
            .expect("spawn trailwatch replay");
        assert!(output.status.success(), "{output:?}");
    };
    replay(&small);
    let baseline_kib = children_max_rss_kib();
    replay(&bomb);
    let growth_mib = (children_max_rss_kib() - baseline_kib) / 1024;
    let dead_text = std::fs::read_to_string(&dead).expect("dead letters");
    assert!(
        dead_text.contains("too_large"),
        "not dead-lettered as too_large"
    );
    // 256 MiB of record; a capped framer holds at most max_record_bytes
    // (16 MiB) of it plus its chunk buffers.
    assert!(growth_mib < 100, "peak RSS grew by {growth_mib} MiB");
}
