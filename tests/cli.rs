//! The command line as a user meets it: exit codes, positions in rule
//! errors, replay from stdin, overrides and `run --check`.

use std::io::Write;
use std::process::{Command, Stdio};

fn trailwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trailwatch"))
}

/// Runs `trailwatch run --config` on `yaml` (written to `dir`), stdin
/// closed, to completion.
fn run_with_config(dir: &std::path::Path, yaml: &str) -> std::process::Output {
    let config = dir.join("config.yaml");
    std::fs::write(&config, yaml).unwrap();
    trailwatch()
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const GOOD_RULE: &str = r#"id: my-rule
title: My rule
kind: cloudtrail
filter: '{ $.eventName = ConsoleLogin }'
window: 5m
threshold: ">= 2"
"#;

#[test]
fn rules_check_reports_every_error_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.yaml", GOOD_RULE);
    write(
        dir.path(),
        "bad-filter.yaml",
        "id: bad-filter\ntitle: t\nkind: cloudtrail\nfilter: '{ $.eventName = ConsoleLogin && ( }'\nwindow: 5m\nthreshold: \">= 1\"\n",
    );
    write(
        dir.path(),
        "typo.yaml",
        "id: typo\ntitle: t\nkind: cloudtrail\nwindwo: 5m\nthreshold: \">= 1\"\n",
    );
    let output = trailwatch()
        .args(["rules", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad-filter.yaml:4:"), "{stderr}");
    assert!(stderr.contains("typo.yaml:4:"), "{stderr}");
    assert!(stderr.contains("windwo"), "{stderr}");
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
}

#[test]
fn rules_check_accepts_a_valid_directory() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.yaml", GOOD_RULE);
    let output = trailwatch()
        .args(["rules", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A rules directory that cannot be read is named without a position:
/// there is no line to point at.
#[test]
fn an_unreadable_rules_directory_is_named_without_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-rules");
    let output = trailwatch()
        .args(["rules", "check"])
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: cannot read rules directory: ",
            missing.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(":0:0:"), "{stderr}");
}

#[test]
fn replay_reads_stdin_and_user_rules_override_and_disable_builtins() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "mine.yaml", GOOD_RULE);
    // Disable the built-in console failure rule by id.
    write(
        dir.path(),
        "off.yaml",
        "id: cis-4.6-console-auth-failures\ntitle: off\nkind: cloudtrail\nwindow: 5m\nthreshold: \">= 1\"\nenabled: false\n",
    );
    let mut child = trailwatch()
        .args(["replay", "--rules"])
        .arg(dir.path())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = (0..3)
        .map(|i| {
            format!(
                r#"{{"eventVersion":"1.08","eventTime":"2024-03-01T12:00:0{i}Z","eventName":"ConsoleLogin","errorMessage":"Failed authentication","recipientAccountId":"111122223333"}}"#
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rules: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["finding_info"]["analytic"]["uid"]
                .to_string()
        })
        .collect();
    assert!(rules.contains(&"\"my-rule\"".to_string()), "{stdout}");
    assert!(
        !rules.iter().any(|r| r.contains("cis-4.6")),
        "disabled built-in fired: {stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("records read        3"), "{stderr}");
}

/// Replay keeps a future-dated event's own time. It clamped it to the
/// wall clock, as a service does to protect its watermark (replay has
/// none): three failures months apart in 2099 then shared one window and
/// raised CIS 4.6, and each run dated its alert differently.
#[test]
fn replay_keeps_the_time_of_future_dated_events() {
    let dir = tempfile::tempdir().unwrap();
    let failure = |time: &str, id: &str| {
        format!(
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","userName":"alice"}},"eventTime":"{time}","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","responseElements":{{"ConsoleLogin":"Failure"}},"errorMessage":"Failed authentication","eventID":"{id}","recipientAccountId":"111122223333"}}"#
        )
    };
    let spread = [
        failure("2099-01-01T12:00:00Z", "a"),
        failure("2099-06-01T12:00:00Z", "b"),
        failure("2099-12-01T12:00:00Z", "c"),
    ];
    let burst = [
        failure("2099-03-01T12:00:10Z", "d"),
        failure("2099-03-01T12:00:20Z", "e"),
        failure("2099-03-01T12:00:30Z", "f"),
    ];
    write(dir.path(), "spread.jsonl", &spread.join("\n"));
    write(dir.path(), "burst.jsonl", &burst.join("\n"));
    let replay = |file: &str| {
        let output = trailwatch()
            .args(["replay", "--no-builtin", "--rules"])
            .arg(dir.path().join("rules"))
            .arg(dir.path().join(file))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    write(
        &dir.path().join("rules"),
        "failures.yaml",
        "id: failures\ntitle: t\nkind: cloudtrail\nfilter: '{ $.eventName = ConsoleLogin && $.errorMessage = \"Failed authentication\" }'\nwindow: 5m\nthreshold: \">= 3\"\n",
    );
    assert_eq!(
        replay("spread.jsonl"),
        "",
        "events months apart share no window"
    );
    let alerts = replay("burst.jsonl");
    let alert: serde_json::Value = serde_json::from_str(alerts.trim()).unwrap();
    // 2099-03-01T12:00:00Z, the window of the events' own time.
    assert_eq!(alert["start_time"], 4_076_049_600_000_i64, "{alerts}");
    assert_eq!(alerts, replay("burst.jsonl"), "a replay repeats itself");
}

#[test]
fn replay_of_a_missing_file_is_an_io_error() {
    let output = trailwatch()
        .args(["replay", "/nonexistent/trailwatch/input"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/trailwatch/input"));
}

#[test]
fn run_check_validates_config_keys() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "sources:\n  - type: file\n    paths: [\"-\"]\n").unwrap();
    let output = trailwatch()
        .args(["run", "--check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The settings the file leaves out are shown as the run will use them.
    let stdout = String::from_utf8_lossy(&output.stdout);
    for default in [
        "allowed_lateness=15m",
        "idle_timeout=1m",
        "max_state_bytes=1073741824",
        "shutdown_deadline=30s",
    ] {
        assert!(stdout.contains(default), "{default} not in {stdout}");
    }
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "sources:\n  - type: file\n    paths: [\"-\"]\nengine:\n  shardz: 2\n",
    )
    .unwrap();
    let output = trailwatch()
        .args(["run", "--check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("shardz"));
}

/// A config file that cannot be read is a configuration error (exit 2),
/// named, as README's exit-code table says; not an input error (exit 4).
#[test]
fn an_unreadable_config_file_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    for config in [missing.as_path(), dir.path()] {
        for check in [true, false] {
            let mut command = trailwatch();
            command.arg("run");
            if check {
                command.arg("--check");
            }
            let output = command
                .arg("--config")
                .arg(config)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{stderr}");
            assert!(
                stderr.starts_with(&format!(
                    "trailwatch: config error: {}: cannot read the config file: ",
                    config.display()
                )),
                "{stderr}"
            );
        }
    }
}

/// JSON log lines name a source's or sink's component in its own span
/// field: a field called `name` would repeat the span's `name` key, and a
/// JSON reader keeps only one of the two.
#[test]
fn json_logs_name_the_component_without_a_duplicate_key() {
    let dir = tempfile::tempdir().unwrap();
    let input = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/cloudtrail/api-activity.jsonl"
    );
    let yaml = format!(
        "sources:\n  - {{type: file, paths: [{input:?}]}}\nsinks:\n  alerts: {{type: file, path: {:?}}}\nmetrics: {{listen: \"\"}}\nlog: {{level: debug, format: json}}\n",
        dir.path().join("alerts.jsonl").display().to_string()
    );
    let output = run_with_config(dir.path(), &yaml);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let in_source: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("\"message\":\"opened input\""))
        .collect();
    assert!(!in_source.is_empty(), "no source line: {stderr}");
    for line in in_source {
        assert!(
            line.contains("\"span\":{\"component\":\"file\",\"name\":\"source\"}"),
            "{line}"
        );
    }
}

/// With JSON logs, the error that ends `run` is a JSON line too (it was
/// the one plain line, which a JSON log pipeline drops).
#[test]
fn with_json_logs_the_fatal_error_is_a_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "sources:\n  - {type: file, paths: [\"-\"]}\nsinks:\n  alerts: {type: file, path: /proc/trailwatch-alerts.jsonl}\nmetrics: {listen: \"\"}\nlog: {format: json}\n";
    let output = run_with_config(dir.path(), yaml);
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let line: serde_json::Value = serde_json::from_str(last).expect(last);
    assert_eq!(line["level"], "ERROR", "{last}");
    assert_eq!(line["exit_code"], 4, "{last}");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("cannot create files in /proc"),
        "{last}"
    );
}

/// `run --check` on `yaml` (written to `dir`): exit code, stdout, stderr.
fn check_config(dir: &std::path::Path, yaml: &str) -> (Option<i32>, String, String) {
    let config = dir.join("config.yaml");
    std::fs::write(&config, yaml).unwrap();
    let output = trailwatch()
        .args(["run", "--check", "--config"])
        .arg(&config)
        .env_remove("TW_TEST_UNSET_PW")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A config that `run` refuses at start-up is refused by `--check` with
/// the same error (exit 2), and "config ok" is never printed for it.
#[test]
fn run_check_refuses_what_run_refuses_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = "sources:\n  - {type: file, paths: [\"-\"]}\n";
    let kafka = "sources:\n  - {type: kafka, brokers: 127.0.0.1:1, topics: [ct], group_id: g}\n";
    for (yaml, expected) in [
        (
            format!("{file}metrics: {{listen: notanaddr}}\n"),
            "metrics.listen: \"notanaddr\" is not an address",
        ),
        (
            format!("{kafka}scaleout: {{brokers: 127.0.0.1:1, topic: rp, group_id: g}}\n"),
            "scaleout.group_id must differ",
        ),
        (
            format!("{file}sinks: {{dead_letter: {{type: kinesis, stream: dl}}}}\n"),
            "sinks.dead_letter: kinesis is only supported for alerts",
        ),
        (
            format!("{file}log: {{level: verbose}}\n"),
            "log.level: invalid directive \"verbose\"",
        ),
        (
            "sources:\n  - {type: file, paths: [], follow: true}\n".to_string(),
            "sources[0].paths: no path",
        ),
        (
            format!("{file}engine: {{shards: 5000}}\n"),
            "engine.shards: must be at most 512 (got 5000)",
        ),
        (
            format!("{file}engine: {{channel_batches: 1000000000000}}\n"),
            "engine.channel_batches: must be at most 4096",
        ),
    ] {
        let (code, stdout, stderr) = check_config(dir.path(), &yaml);
        assert_eq!(code, Some(2), "{yaml}{stdout}{stderr}");
        assert!(!stdout.contains("config ok"), "{yaml}{stdout}");
        assert!(stderr.contains(expected), "{yaml}{stderr}");
        let run = run_with_config(dir.path(), &yaml);
        let run_stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{yaml}{run_stderr}");
        assert_eq!(run_stderr, stderr, "run and --check give the same error");
    }
}

/// A file output in a directory where no file can be created (a pod's
/// read-only root filesystem; `/proc` here, which refuses even root) is
/// refused by `--check` as by `run`. Before, `--check` said "config ok"
/// since the directory existed.
#[test]
fn run_check_refuses_an_output_directory_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "sources:\n  - {type: file, paths: [\"-\"]}\nsinks:\n  alerts: {type: file, path: /proc/trailwatch-alerts.jsonl}\nmetrics: {listen: \"\"}\n";
    let (code, stdout, stderr) = check_config(dir.path(), yaml);
    assert_eq!(code, Some(4), "{stdout}{stderr}");
    assert!(stderr.contains("cannot create files in /proc"), "{stderr}");
    let run = run_with_config(dir.path(), yaml);
    assert_eq!(run.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&run.stderr), stderr);
}

/// A config error never quotes a value that may be a secret: Kafka
/// properties written as one string (Java-properties style) are refused
/// at their field, without the string.
#[test]
fn a_config_error_does_not_show_the_refused_value() {
    let dir = tempfile::tempdir().unwrap();
    let properties = "properties: \"sasl.password=Hunter2LiteralPW\"";
    for (yaml, field) in [
        (
            format!("sources:\n  - type: kafka\n    brokers: 127.0.0.1:1\n    topics: [ct]\n    group_id: g\n    {properties}\n"),
            "config.yaml:6:17: sources[0].properties: invalid type: string (value not shown), expected a map",
        ),
        (
            format!("sources:\n  - {{type: file, paths: [\"-\"]}}\nsinks:\n  alerts:\n    topic: a\n    type: kafka\n    brokers: 127.0.0.1:1\n    {properties}\n"),
            "sinks.alerts: invalid type: string (value not shown), expected a map",
        ),
    ] {
        let (code, stdout, stderr) = check_config(dir.path(), &yaml);
        assert_eq!(code, Some(2), "{yaml}{stdout}{stderr}");
        assert!(stderr.contains(field), "{yaml}{stderr}");
        assert!(!stderr.contains("Hunter2"), "{stderr}");
        let run = run_with_config(dir.path(), &yaml);
        let run_stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{run_stderr}");
        assert!(!run_stderr.contains("Hunter2"), "{run_stderr}");
    }
}

/// `--check` makes `run`'s start-up checks that need no network: Kafka
/// secret references resolve (their values never shown), librdkafka
/// accepts the properties and the clients they make, file inputs exist. It names what it left to
/// the running service.
#[test]
fn run_check_resolves_secrets_and_checks_clients_as_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("password");
    std::fs::write(&secret, "hunter2-from-a-file\n").unwrap();
    let kafka = |properties: &str| {
        format!(
            "sources:\n  - type: kafka\n    brokers: 127.0.0.1:1\n    topics: [ct]\n    group_id: g\n    properties: {{{properties}}}\nmetrics: {{listen: \"\"}}\n"
        )
    };
    for (yaml, code_expected, expected) in [
        (
            kafka("sasl.password: \"${env:TW_TEST_UNSET_PW}\""),
            2,
            "config.yaml: sources[0]: kafka property sasl.password: environment variable TW_TEST_UNSET_PW is not set".to_string(),
        ),
        (
            kafka("no.such.property: x"),
            2,
            "sources[0]: kafka consumer: No such configuration property: \"no.such.property\"".to_string(),
        ),
        // librdkafka checks these only when it creates a client.
        (
            kafka("security.protocol: SASL_SSL, sasl.mechanism: FOO"),
            2,
            "sources[0]: kafka consumer: Client creation error: Unsupported SASL mechanism: FOO".to_string(),
        ),
        (
            "sources:\n  - {type: file, paths: [\"-\"]}\nsinks:\n  alerts: {type: kafka, brokers: 127.0.0.1:1, topic: a, properties: {security.protocol: SSL, ssl.ca.location: /nonexistent/ca.pem}}\nmetrics: {listen: \"\"}\n".to_string(),
            2,
            "sinks.alerts: kafka producer: Client creation error: ssl.ca.location failed".to_string(),
        ),
        (
            "sources:\n  - {type: file, paths: [/nonexistent/trailwatch/input]}\nmetrics: {listen: \"\"}\n".to_string(),
            4,
            "i/o error on /nonexistent/trailwatch/input".to_string(),
        ),
    ] {
        let (code, stdout, stderr) = check_config(dir.path(), &yaml);
        assert_eq!(code, Some(code_expected), "{yaml}{stdout}{stderr}");
        assert!(!stdout.contains("config ok"), "{yaml}{stdout}");
        assert!(stderr.contains(&expected), "{yaml}{stderr}");
        let run = trailwatch()
            .args(["run", "--config"])
            .arg(dir.path().join("config.yaml"))
            .env_remove("TW_TEST_UNSET_PW")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(code_expected), "{yaml}");
        assert_eq!(String::from_utf8_lossy(&run.stderr), stderr, "{yaml}");
    }
    let file_secret = format!("sasl.password: \"${{file:{}}}\"", secret.display());
    let (code, stdout, stderr) = check_config(dir.path(), &kafka(&file_secret));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        !format!("{stdout}{stderr}").contains("hunter2"),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains("not checked (needs the network of the running service):\n  sources[0] (kafka): brokers 127.0.0.1:1"),
        "{stdout}"
    );
}

#[test]
fn run_reads_a_custom_flow_format_from_config_and_writes_alerts_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    write(
        &rules,
        "rejects.yaml",
        "id: rejects\ntitle: rejects\nkind: vpcflow\nwhere:\n  - {field: action, equals: REJECT}\ngroup_by: [srcaddr]\nwindow: 5m\nthreshold: \">= 2\"\n",
    );
    // Custom order: srcaddr first, no header line in the file.
    let flows = dir.path().join("flows.log");
    std::fs::write(
        &flows,
        "198.51.100.7 10.0.0.5 22 REJECT 1709294400\n198.51.100.7 10.0.0.5 23 REJECT 1709294410\n198.51.100.8 10.0.0.5 22 ACCEPT 1709294420\n",
    )
    .unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let output = run_with_config(
        dir.path(),
        &format!(
            "rules: {{builtin: false, dirs: [{rules:?}]}}\nsources:\n  - type: file\n    paths: [{flows:?}]\n    decoder: vpc_flow\n    flow_format: '${{srcaddr}} ${{dstaddr}} ${{dstport}} ${{action}} ${{start}}'\nsinks:\n  alerts: {{type: file, path: {alerts:?}}}\nmetrics: {{listen: \"\"}}\n"
        ),
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = std::fs::read_to_string(&alerts).unwrap();
    let lines: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{written}");
    assert_eq!(lines[0]["observables"][0]["value"], "198.51.100.7");
}

#[test]
fn run_refuses_to_start_on_a_bad_rule_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    write(&rules, "good.yaml", GOOD_RULE);
    write(
        &rules,
        "bad.yaml",
        "id: bad\ntitle: t\nkind: cloudtrail\nfilter: '{ $.eventName = }'\nwindow: 5m\nthreshold: \">= 1\"\n",
    );
    let alerts = dir.path().join("alerts.jsonl");
    let output = run_with_config(
        dir.path(),
        &format!(
            "rules: {{builtin: true, dirs: [{rules:?}]}}\nsources:\n  - type: file\n    paths: [\"-\"]\nsinks:\n  alerts: {{type: file, path: {alerts:?}}}\nmetrics: {{listen: \"\"}}\n"
        ),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("bad.yaml:4:"), "{stderr}");
    assert!(!alerts.exists(), "nothing ran");
}

/// `trailwatch replay … | head -1`: once the reader is gone the replay ends
/// with a clear error (exit 4) instead of retrying the write for ever.
#[test]
fn replay_into_a_closed_pipe_stops_with_an_output_error() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("flows.log");
    // About 2,000 alerts, far more than a pipe buffer holds: the replay is
    // still writing when the reader goes away.
    let generated = trailwatch()
        .args(["gen", "flows", "200000"])
        .output()
        .unwrap();
    assert!(generated.status.success());
    std::fs::write(&input, &generated.stdout).unwrap();
    let mut child = trailwatch()
        .arg("replay")
        .arg(&input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"activity_name\":\"Create\""), "{first}");
    // The reader is dropped here. Bound a hang (this times nothing).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("replay kept running after its output closed");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("output closed: cannot write to stdout"),
        "{stderr}"
    );
}

/// `trailwatch rules list | head -1`: a report into a closed pipe is an i/o
/// error (exit 4), never a panic.
#[test]
fn a_report_into_a_closed_pipe_is_an_output_error_not_a_panic() {
    for args in [&["rules", "list"][..], &["gen", "flows", "10"][..]] {
        // The reader is closed before the command starts: its first write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = trailwatch().args(args).stdout(writer).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(stderr.contains("i/o error on stdout"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// With stderr a closed pipe, nothing can be reported there: the exit
/// status still says what happened, and nothing panics (a panic exits 101,
/// or 70 through the engine). `replay` writes its dead letters to stderr,
/// so they had nowhere to go (4); `rules check` found a problem (3).
#[test]
fn a_closed_stderr_changes_the_exit_status_only() {
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("bad.yaml"), "id: [\n").unwrap();
    let broken_dir = broken.path().to_str().unwrap();
    let cases: [(&[&str], i32); 3] = [
        (&["replay", "samples/"], 4),
        (&["rules", "check", broken_dir], 3),
        (
            &["replay", "--quiet", "samples/cloudtrail/eventbridge.jsonl"],
            0,
        ),
    ];
    for (args, code) in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = trailwatch()
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::null())
            .stderr(writer)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(code), "{args:?}");
    }
}

/// `RUST_LOG=verbose` (a bare word env-filter reads as a target) would
/// filter out every message, warnings included: it is ignored, with a
/// warning, for the configured level.
#[test]
fn an_invalid_rust_log_does_not_silence_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"eventTime\":\"2024-03-01T12:00:00Z\",\"eventName\":\"X\"}\n",
    )
    .unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "sources:\n  - {{type: file, paths: [{input:?}]}}\nsinks:\n  alerts: {{type: file, path: {out:?}}}\nmetrics: {{listen: \"\"}}\nlog: {{level: info}}\n",
            out = dir.path().join("out.jsonl")
        ),
    )
    .unwrap();
    let output = trailwatch()
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "verbose")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("RUST_LOG=\"verbose\" ignored"), "{stderr}");
    assert!(stderr.contains("trailwatch starting"), "{stderr}");
}
