//! SIGTERM: `trailwatch run` stops intake, finishes in-flight batches,
//! flushes the alerts of completed windows to its sink, and exits 0 within
//! its `shutdown_deadline`.
//!
//! The service follows a file; the test appends records, waits (bounded
//! loop) until the service has consumed them, sends SIGTERM, and waits
//! (bounded loop, `shutdown_deadline` plus start-up slack) for the exit.
//! No assertion is on speed: the loops only bound how long a broken
//! service can hang the test.

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Fires eagerly: three failed logins from one address.
const BURST_RULE: &str = r#"
id: burst
title: console login failures
kind: cloudtrail
filter: '{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }'
group_by: [sourceIPAddress]
window: 5m
threshold: ">= 3"
"#;

/// Fires only when its window completes (a `<=` threshold is not
/// monotone, so it is evaluated when the watermark passes the window end).
const QUIET_RULE: &str = r#"
id: quiet
title: few logins
kind: cloudtrail
filter: '{ $.eventName = ConsoleLogin }'
group_by: [sourceIPAddress]
window: 5m
threshold: "<= 2"
"#;

const SHUTDOWN_DEADLINE_SECS: u64 = 10;

fn login(time: &str, ip: &str, id: &str, failed: bool) -> String {
    let error = if failed {
        r#","errorMessage":"Failed authentication""#
    } else {
        ""
    };
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"{time}","eventName":"ConsoleLogin","sourceIPAddress":"{ip}","recipientAccountId":"111122223333","eventID":"{id}"{error}}}"#
    )
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn sigterm_flushes_completed_windows_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("rules dir");
    std::fs::write(rules.join("burst.yaml"), BURST_RULE).expect("rule");
    std::fs::write(rules.join("quiet.yaml"), QUIET_RULE).expect("rule");
    let input = dir.path().join("input.jsonl");
    std::fs::write(&input, "").expect("input");
    let alerts = dir.path().join("alerts.jsonl");
    let dead = dir.path().join("dead.jsonl");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "rules:\n  builtin: false\n  dirs: [{rules}]\n\
             engine:\n  shards: 2\n  decoders: 1\n  allowed_lateness: 0s\n  \
             commit_interval: 1s\n  shutdown_deadline: {SHUTDOWN_DEADLINE_SECS}s\n\
             sources:\n  - type: file\n    paths: [{input}]\n    follow: true\n\
             sinks:\n  alerts: {{type: file, path: {alerts}}}\n  \
             dead_letter: {{type: file, path: {dead}}}\n\
             metrics:\n  listen: \"\"\n\
             log:\n  level: info\n",
            rules = rules.display(),
            input = input.display(),
            alerts = alerts.display(),
            dead = dead.display(),
        ),
    )
    .expect("config");

    let mut child = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trailwatch run");

    // Window 12:00 gets two quiet logins from .1; a login at 12:20 moves
    // the watermark (lateness 0) past 12:05, completing that window; then
    // an eager burst from .2, last, whose alert proves everything before
    // it was consumed. One bad line is dead-lettered on the way.
    let lines = [
        login("2024-03-01T12:00:01Z", "198.51.100.1", "q1", false),
        login("2024-03-01T12:00:02Z", "198.51.100.1", "q2", false),
        "{ not json".to_string(),
        login("2024-03-01T12:20:00Z", "198.51.100.3", "w1", false),
        login("2024-03-01T12:20:01Z", "198.51.100.2", "b1", true),
        login("2024-03-01T12:20:02Z", "198.51.100.2", "b2", true),
        login("2024-03-01T12:20:03Z", "198.51.100.2", "b3", true),
    ];
    {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&input)
            .expect("open input");
        for line in &lines {
            writeln!(file, "{line}").expect("append");
        }
        file.sync_all().expect("sync");
    }

    // Bounded wait for the eager burst alert.
    let until = Instant::now() + Duration::from_secs(60);
    while !read(&alerts).contains("198.51.100.2") {
        if Instant::now() >= until {
            let _ = child.kill();
            panic!("no burst alert within 60 s; alerts: {}", read(&alerts));
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("trailwatch exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed");
    let limit = Duration::from_secs(SHUTDOWN_DEADLINE_SECS + 5);
    let Some(status) = wait_for_exit(&mut child, limit) else {
        let _ = child.kill();
        panic!("trailwatch did not exit within {limit:?} of SIGTERM");
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read as _;
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; stderr:\n{stderr}"
    );
    assert!(stderr.contains("stop requested"), "{stderr}");

    let alerts_text = read(&alerts);
    let alerts: Vec<serde_json::Value> = alerts_text
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert json"))
        .collect();
    let has = |rule: &str, ip: &str| {
        alerts
            .iter()
            .any(|a| a["finding_info"]["analytic"]["uid"] == rule && a.to_string().contains(ip))
    };
    assert!(has("burst", "198.51.100.2"), "eager alert: {alerts_text}");
    assert!(
        has("quiet", "198.51.100.1"),
        "completed window 12:00 flushed: {alerts_text}"
    );
    // Open windows are not flushed in service mode: they are rebuilt from
    // the uncommitted input after a restart.
    assert!(!has("quiet", "198.51.100.3"), "{alerts_text}");
    assert!(read(&dead).contains("not json"), "dead letter written");
}
