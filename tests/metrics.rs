//! Operating checks with real tools: `promtool check metrics` on the
//! exposition, a real Prometheus scraping a running trailwatch, the
//! health endpoints, and no secret in `run --check` output or logs.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package
//! (`scripts/install-ops-tools.sh`). Without them the tests that need them
//! print why and pass, unless `CI` is set: in CI they must run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_trailwatch");

/// Kills and reaps a child process when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `tool` runs; panics in CI when it does not.
fn have_tool(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required in CI: run scripts/install-ops-tools.sh"
        );
        eprintln!("skipping: {tool} not installed (scripts/install-ops-tools.sh installs it)");
    }
    found
}

/// CloudTrail records: six console sign-in failures (one alert) and one
/// line that is not JSON (one decode failure, one dead letter).
fn fixture(dir: &Path) -> PathBuf {
    let path = dir.join("cloudtrail.json");
    let mut text = String::new();
    for i in 0..6 {
        text.push_str(&format!(
            "{{\"eventVersion\":\"1.08\",\"eventTime\":\"2024-03-01T12:0{i}:01Z\",\"eventName\":\"ConsoleLogin\",\"errorMessage\":\"Failed authentication\",\"recipientAccountId\":\"111122223333\",\"eventID\":\"e{i}\"}}\n"
        ));
    }
    text.push_str("{not json\n");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `cmd` (which must log `metrics listener started` at info) and
/// returns it with the address the listener bound.
fn spawn_with_listener(mut cmd: Command) -> (ChildGuard, SocketAddr, mpsc::Receiver<String>) {
    if !cmd.get_envs().any(|(key, _)| key == "RUST_LOG") {
        cmd.env("RUST_LOG", "info");
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = ChildGuard(cmd.spawn().unwrap());
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("trailwatch never reported its metrics listener");
        if line.contains("metrics listener started") {
            let addr = line
                .split_whitespace()
                .find_map(|t| t.strip_prefix("addr="))
                .unwrap();
            break addr.trim_matches('"').parse().unwrap();
        }
    };
    (child, addr, rx)
}

/// A plain HTTP/1.1 GET; returns (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` up to 120 times, 500 ms apart, until it returns `Some`.
fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..120 {
        if let Some(value) = check() {
            return value;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("gave up waiting for {what}");
}

#[test]
fn promtool_accepts_the_exposition_after_a_replay() {
    if !have_tool("promtool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = fixture(dir.path());
    let mut cmd = Command::new(BIN);
    cmd.args(["replay", "--quiet", "--metrics-listen", "127.0.0.1:0"])
        .args(["--linger", "60"])
        .arg(&input);
    let (_child, addr, _logs) = spawn_with_listener(cmd);
    // The replay ends quickly; wait until the final values are visible.
    let body = poll("the replay's alert to be counted", || {
        let (status, body) = get(addr, "/metrics");
        assert_eq!(status, 200);
        body.contains(
            "trailwatch_alerts_total{activity=\"create\",rule=\"cis-4.6-console-auth-failures\"} 1\n",
        )
        .then_some(body)
    });
    assert!(
        body.contains("trailwatch_records_received_total{partition=\"all\",source=\"file\"} 7\n"),
        "{body}"
    );
    assert!(body.contains("trailwatch_records_failed_total{reason=\"invalid_json\"} 1\n"));
    assert!(body.contains(
        "trailwatch_alerts_total{activity=\"create\",rule=\"cis-4.6-console-auth-failures\"} 1\n"
    ));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_real_prometheus_scrapes_trailwatch() {
    if !have_tool("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = fixture(dir.path());
    let mut cmd = Command::new(BIN);
    cmd.args(["replay", "--quiet", "--metrics-listen", "127.0.0.1:0"])
        .args(["--linger", "120"])
        .arg(&input);
    let (_trailwatch, addr, _logs) = spawn_with_listener(cmd);

    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: trailwatch\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .unwrap();
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _prometheus = ChildGuard(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let query = |q: &str| -> Option<f64> {
        let stream = TcpStream::connect(web).ok()?;
        drop(stream);
        let (status, body) = get(web, &format!("/api/v1/query?query={q}"));
        if status != 200 {
            return None;
        }
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let up = poll("prometheus to report the target up", || {
        query("up%7Bjob%3D%22trailwatch%22%7D").filter(|v| *v == 1.0)
    });
    assert_eq!(up, 1.0);
    let received = poll("a scrape with the replay's records", || {
        query("sum(trailwatch_records_received_total%7Bjob%3D%22trailwatch%22%7D)")
            .filter(|v| *v > 0.0)
    });
    assert_eq!(received, 7.0);
}

#[test]
fn readyz_turns_ready_after_input_is_consumed_and_livez_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "sources:\n  - type: file\n    paths: ['-']\nmetrics:\n  listen: 127.0.0.1:0\nsinks:\n  alerts: {type: file, path: alerts.json}\n  dead_letter: {type: file, path: dead.json}\n",
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .stdin(Stdio::piped());
    let (mut child, addr, _logs) = spawn_with_listener(cmd);
    let mut stdin = child.0.stdin.take().unwrap();
    assert_eq!(get(addr, "/livez").0, 200);
    let (status, body) = get(addr, "/readyz");
    assert_eq!(status, 503, "ready before any input: {body}");
    assert!(get(addr, "/metrics").1.contains("trailwatch_ready 0\n"));
    assert_eq!(get(addr, "/nope").0, 404);
    let input = std::fs::read(fixture(dir.path())).unwrap();
    stdin.write_all(&input).unwrap();
    stdin.flush().unwrap();
    poll("readyz to turn 200", || {
        (get(addr, "/readyz").0 == 200).then_some(())
    });
    assert_eq!(get(addr, "/livez").0, 200);
    assert!(get(addr, "/metrics").1.contains("trailwatch_ready 1\n"));
    drop(stdin);
    let status = poll("run to exit at end of stdin", || {
        child.0.try_wait().unwrap()
    });
    assert!(status.success());
}

const SECRET: &str = "hunter2-do-not-log-7f3a";

#[test]
fn check_prints_effective_settings_and_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.yaml");
    std::fs::write(
        &ok,
        "sources:\n  - type: file\n    paths: ['-']\nmetrics:\n  listen: ''\nlog:\n  level: trace\n  format: json\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", "--check", "--config"])
        .arg(&ok)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("metrics listen: disabled"), "{stdout}");
    assert!(stdout.contains("format: json"), "{stdout}");

    // A misplaced secret is rejected without being echoed.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!("sources:\n  - type: file\n    paths: ['-']\n    sasl_password: {SECRET}\n"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", "--check", "--config"])
        .arg(&bad)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(all.contains("sasl_password"), "{all}");
    assert!(!all.contains(SECRET), "secret leaked: {all}");
    // A real SASL-configured run is covered by
    // `sasl_run_never_logs_the_password_and_livez_survives_a_broker_outage`.
}

/// A SASL-configured Kafka run against a broker that is down: the password
/// (given literally and through `${env:..}`) never appears in any log line
/// or in `--check`, `/livez` stays 200 through the outage and `/readyz`
/// stays 503 (nothing assigned, nothing consumed).
#[test]
#[cfg(feature = "kafka")]
fn sasl_run_never_logs_the_password_and_livez_survives_a_broker_outage() {
    const ENV_SECRET: &str = "env-secret-9c1d-never-logged";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kafka.yaml");
    let down = free_port();
    std::fs::write(
        &config,
        format!(
            "sources:\n  - type: kafka\n    brokers: \"127.0.0.1:{down}\"\n    topics: [cloudtrail]\n    group_id: tw-secret-test\n    properties:\n      security.protocol: SASL_PLAINTEXT\n      sasl.mechanism: PLAIN\n      sasl.username: trailwatch\n      sasl.password: {SECRET}\nsinks:\n  alerts:\n    type: kafka\n    brokers: \"127.0.0.1:{down}\"\n    topic: findings\n    properties:\n      security.protocol: SASL_PLAINTEXT\n      sasl.mechanism: PLAIN\n      sasl.username: trailwatch\n      sasl.password: \"${{env:TW_TEST_KAFKA_PASSWORD}}\"\n  dead_letter: {{type: file, path: dead.json}}\nmetrics:\n  listen: 127.0.0.1:0\nlog:\n  level: trace\n"
        ),
    )
    .unwrap();

    let check = Command::new(BIN)
        .args(["run", "--check", "--config"])
        .arg(&config)
        .env("TW_TEST_KAFKA_PASSWORD", ENV_SECRET)
        .output()
        .unwrap();
    let check_text = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(check.status.success(), "{check_text}");
    assert!(check_text.contains("sasl.password"), "{check_text}");
    assert!(
        !check_text.contains(SECRET) && !check_text.contains(ENV_SECRET),
        "secret in --check: {check_text}"
    );

    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env("RUST_LOG", "trace")
        .env("TW_TEST_KAFKA_PASSWORD", ENV_SECRET);
    let (child, addr, logs) = spawn_with_listener(cmd);
    // Let librdkafka try (and fail) to reach the broker for a while.
    let mut lines = Vec::new();
    for _ in 0..10 {
        assert_eq!(
            get(addr, "/livez").0,
            200,
            "livez failed during the broker outage"
        );
        assert_eq!(get(addr, "/readyz").0, 503, "ready without a broker");
        std::thread::sleep(Duration::from_millis(300));
        lines.extend(logs.try_iter());
    }
    let pid = child.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    // Collect what it logs while shutting down (bounded; the guard kills it).
    for _ in 0..40 {
        lines.extend(logs.try_iter());
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(child);
    lines.extend(logs.try_iter());
    assert!(lines.len() > 3, "expected trace logs, got {lines:?}");
    for line in &lines {
        assert!(
            !line.contains(SECRET) && !line.contains(ENV_SECRET),
            "secret logged: {line}"
        );
    }
}
