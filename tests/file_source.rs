//! The file source as a service reads it (`trailwatch run` with a
//! `type: file` source over a directory): every file holds the watermark
//! until it is read, and follow mode picks up files created after start.
//!
//! The follow test waits for an alert in a bounded loop; the bound only
//! limits how long a broken service can hang the test.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BURST_RULE: &str = r#"
id: burst
title: console login failures
kind: cloudtrail
filter: '{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }'
window: 5m
threshold: ">= 3"
"#;

fn event(time: &str, name: &str, id: &str) -> String {
    let error = if name == "ConsoleLogin" {
        r#","errorMessage":"Failed authentication""#
    } else {
        ""
    };
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"{time}","eventName":"{name}","recipientAccountId":"111122223333","eventID":"{id}"{error}}}"#
    )
}

/// Three failed console logins at 12:MM:11-13, one JSON line each, with
/// event ids `fMM-1` to `fMM-3`.
fn burst(minute: u32) -> String {
    (1..=3)
        .map(|i| {
            event(
                &format!("2024-03-01T12:{minute:02}:1{i}Z"),
                "ConsoleLogin",
                &format!("f{minute}-{i}"),
            ) + "\n"
        })
        .collect()
}

/// Writes the rules and a config reading `input` (follow or not) into
/// `dir`; returns the config path and the alerts file.
fn config(dir: &Path, input: &Path, follow: bool) -> (std::path::PathBuf, std::path::PathBuf) {
    let rules = dir.join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("burst.yaml"), BURST_RULE).unwrap();
    let alerts = dir.join("alerts.jsonl");
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "rules: {{builtin: false, dirs: [{rules:?}]}}\n\
             engine: {{shards: 2, decoders: 2, shutdown_deadline: 10s}}\n\
             sources:\n  - {{type: file, paths: [{input:?}], follow: {follow}}}\n\
             sinks:\n  alerts: {{type: file, path: {alerts:?}}}\n  dead_letter: {{type: stderr}}\n\
             metrics: {{listen: \"\"}}\n"
        ),
    )
    .unwrap();
    (config, alerts)
}

fn spawn(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The first file of a directory (one region's trail) runs hours ahead of
/// the second: the second one's burst is still counted, because every
/// file held the watermark from the start. Before, a file joined the
/// watermark only when opened, so the first file's 23:00 made the burst
/// at 12:00 late, and no alert came.
#[test]
fn a_burst_in_a_later_file_is_not_late_because_an_earlier_file_is_newer() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("trail");
    std::fs::create_dir(&trail).unwrap();
    let newer: Vec<String> = (12..24)
        .map(|hour| {
            event(
                &format!("2024-03-01T{hour}:00:00Z"),
                "DescribeInstances",
                &format!("d{hour}"),
            )
        })
        .collect();
    std::fs::write(trail.join("a_us-east-1.jsonl"), newer.join("\n")).unwrap();
    let burst: Vec<String> = (1..=3)
        .map(|i| {
            event(
                &format!("2024-03-01T12:00:1{i}Z"),
                "ConsoleLogin",
                &format!("f{i}"),
            )
        })
        .collect();
    std::fs::write(trail.join("b_eu-west-1.jsonl"), burst.join("\n")).unwrap();
    let (config, alerts) = config(dir.path(), &trail, false);
    let output = spawn(&config).wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = std::fs::read_to_string(&alerts).unwrap();
    assert_eq!(written.lines().count(), 1, "{written}");
    assert!(written.contains("\"burst\""), "{written}");
}

/// Follow mode on a directory reads a file created after start (a trail
/// writes a new object every few minutes). Before, only the files there
/// at start were read, and the new file's burst never alerted.
#[test]
fn follow_on_a_directory_reads_a_file_created_after_start() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("trail");
    std::fs::create_dir(&trail).unwrap();
    std::fs::write(trail.join("a.jsonl"), burst(0)).unwrap();
    let (config, alerts) = config(dir.path(), &trail, true);
    let mut child = spawn(&config);
    // The first file's alert shows the directory was listed and read.
    wait_for_alerts(&mut child, &alerts, 1);
    // Written under a hidden name (skipped), then renamed: the service
    // sees the file whole, as a sync tool's rename makes it appear.
    std::fs::write(trail.join(".b.jsonl.tmp"), burst(10)).unwrap();
    std::fs::rename(trail.join(".b.jsonl.tmp"), trail.join("b.jsonl")).unwrap();
    let written = wait_for_alerts(&mut child, &alerts, 2);
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(written.contains("f10-3"), "{written}");
}

/// Waits (at most 60 s) until `alerts` holds `count` lines; returns them.
fn wait_for_alerts(child: &mut Child, alerts: &Path, count: usize) -> String {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let written = std::fs::read_to_string(alerts).unwrap_or_default();
        if written.lines().count() >= count {
            return written;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            panic!("not {count} alert(s) within 60 s: {written:?}");
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("trailwatch exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A source's own `allowed_lateness` overrides the engine's for its
/// partitions: with the engine at 1 minute and the source at 30, a burst
/// 20 minutes behind what the file already showed still alerts. (At the
/// engine's minute it is late: the test's second half.)
#[test]
fn a_sources_own_allowed_lateness_overrides_the_engines() {
    for (source_lateness, expected_alerts) in [("30m", 2), ("1m", 1)] {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        std::fs::write(rules.join("burst.yaml"), BURST_RULE).unwrap();
        let input = dir.path().join("trail.jsonl");
        std::fs::write(&input, burst(40)).unwrap();
        let alerts = dir.path().join("alerts.jsonl");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "rules: {{builtin: false, dirs: [{rules:?}]}}\n\
                 engine: {{shards: 1, decoders: 1, allowed_lateness: 1m, shutdown_deadline: 10s}}\n\
                 sources:\n  - {{type: file, paths: [{input:?}], follow: true, allowed_lateness: {source_lateness}}}\n\
                 sinks:\n  alerts: {{type: file, path: {alerts:?}}}\n  dead_letter: {{type: stderr}}\n\
                 metrics: {{listen: \"\"}}\n"
            ),
        )
        .unwrap();
        let mut child = spawn(&config);
        wait_for_alerts(&mut child, &alerts, 1);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&input)
            .unwrap();
        std::io::Write::write_all(&mut file, burst(20).as_bytes()).unwrap();
        drop(file);
        // A marker burst after it, in time order, shows the file was read
        // past the 12:20 burst.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&input)
            .unwrap();
        std::io::Write::write_all(&mut file, burst(45).as_bytes()).unwrap();
        drop(file);
        let written = wait_for_alerts(&mut child, &alerts, expected_alerts + 1);
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0));
        assert_eq!(
            written.contains("f20-3"),
            expected_alerts == 2,
            "source lateness {source_lateness}: {written}"
        );
    }
}
