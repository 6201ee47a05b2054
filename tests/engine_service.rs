//! Service-mode behaviour: watermarks, late events, clamping and the
//! commit positions the delivery contract allows.

use std::sync::Arc;

use trailwatch::alert::Alert;
use trailwatch::engine::{Engine, EngineConfig};
use trailwatch::rules::{RuleSet, RuleSpec};
use trailwatch::sink::writer::{MemoryDeadLetters, MemorySink};
use trailwatch::source::memory::MemorySource;

fn rules() -> Arc<RuleSet> {
    let spec: RuleSpec = serde_yaml_ng::from_str(
        r#"
id: logins
title: logins
kind: cloudtrail
filter: '{ $.eventName = ConsoleLogin }'
group_by: [recipientAccountId]
window: 5m
threshold: ">= 2"
"#,
    )
    .unwrap();
    Arc::new(RuleSet::compile(&[spec]).unwrap())
}

fn event(time: &str) -> Vec<u8> {
    format!(r#"{{"eventTime":"{time}","eventName":"ConsoleLogin","recipientAccountId":"1"}}"#)
        .into_bytes()
}

/// Runs `engine` over `records` (one partition) and returns the alerts
/// its sink received.
fn run(engine: &Engine, records: Vec<Vec<u8>>) -> Vec<Alert> {
    let sink = MemorySink::default();
    let alerts = Arc::clone(&sink.alerts);
    engine
        .run(
            vec![Box::new(MemorySource::new("p", records, 1))],
            Box::new(sink),
            Box::new(MemoryDeadLetters::default()),
        )
        .unwrap();
    let alerts = alerts.lock().unwrap();
    alerts.clone()
}

fn service_engine() -> Engine {
    service_engine_with_shards(2)
}

/// An engine whose decode worker sends every raw batch at once, so that
/// each record meets the watermark of the records before it and never a
/// later one's. With more shards, a worker under backlog sends a few
/// batches' matches together, with the watermark they move after them: a
/// record behind an earlier one by more than the allowed lateness then
/// counts when both come in one send, and is late otherwise, depending on
/// scheduling (never later than in order; see the README, "Late events").
/// The tests that pin which record is late use this one.
fn in_order_engine() -> Engine {
    service_engine_with_shards(1)
}

fn service_engine_with_shards(shards: usize) -> Engine {
    let mut config = EngineConfig::default();
    config.watermark.replay = false;
    config.watermark.allowed_lateness_ms = 0;
    config.flush_on_end = false;
    config.shards = shards;
    config.decoders = 1;
    Engine::new(config, rules())
}

/// An event that no rule can match is only read as far as the rule gate's
/// fields and its time, but its time still moves the watermark: here a
/// quiet `ListRoles` closes the window the logins opened, so they alert.
#[test]
fn ruled_out_events_are_counted_and_still_move_the_watermark() {
    let engine = service_engine();
    let quiet = |time: &str| {
        format!(r#"{{"eventTime":"{time}","eventName":"ListRoles","recipientAccountId":"1"}}"#)
            .into_bytes()
    };
    let records = vec![
        event("2024-03-01T12:00:00Z"),
        event("2024-03-01T12:01:00Z"),
        quiet("2024-03-01T12:02:00Z"),
        quiet("2024-03-01T12:20:00Z"), // closes window 12:00
    ];
    let alerts = run(&engine, records);
    let metrics = engine.metrics();
    assert_eq!(metrics.sum(|w| &w.events), 4);
    assert_eq!(metrics.sum(|w| &w.ruled_out), 2);
    assert_eq!(metrics.sum(|w| &w.matches), 2);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].count, 2);
    assert_eq!(alerts[0].window_start_ms, 1_709_294_400_000);
}

#[test]
fn late_events_are_counted_not_applied_and_open_windows_hold_commits() {
    let engine = in_order_engine();
    let records = vec![
        event("2024-03-01T12:00:00Z"), // offset 0: window 12:00, alone (no alert)
        event("2024-03-01T12:20:00Z"), // offset 1: watermark 12:20 closes 12:00
        event("2024-03-01T12:01:00Z"), // offset 2: late (its window closed)
        event("2024-03-01T12:21:00Z"), // offset 3: window 12:20 reaches 2 -> alert
    ];
    let alerts = run(&engine, records);
    let metrics = engine.metrics();
    assert_eq!(metrics.sum(|w| &w.late), 1);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].count, 2, "the late event was not added");
    // Window 12:20 is still open (service mode does not flush at the
    // end), so the first record feeding it, offset 1, is not committable.
    let tracker = engine.tracker();
    let positions = tracker.safe_positions();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].1, 1, "{positions:?}");
}

/// `trailwatch_events_late_total` counts late rule matches: one late
/// event that two rules match counts twice, and the metric's help says so
/// (its name, kept for dashboards and alerts, says events).
#[test]
fn a_late_event_counts_once_per_rule_it_matched() {
    let spec = |id: &str| -> RuleSpec {
        serde_yaml_ng::from_str(&format!(
            "id: {id}\ntitle: t\nkind: cloudtrail\nfilter: '{{ $.eventName = ConsoleLogin }}'\nwindow: 5m\nthreshold: \">= 2\"\n"
        ))
        .unwrap()
    };
    let mut config = EngineConfig::default();
    config.watermark.replay = false;
    config.watermark.allowed_lateness_ms = 0;
    config.flush_on_end = false;
    config.shards = 1;
    config.decoders = 1;
    let rules = Arc::new(RuleSet::compile(&[spec("a"), spec("b")]).unwrap());
    let engine = Engine::new(config, rules);
    run(
        &engine,
        vec![
            event("2024-03-01T12:00:00Z"),
            event("2024-03-01T12:20:00Z"), // closes window 12:00
            event("2024-03-01T12:01:00Z"), // late, for both rules
        ],
    );
    let metrics = engine.metrics();
    assert_eq!(metrics.sum(|w| &w.late), 2);
    let text = trailwatch::metrics::exposition::render(&metrics, &engine.registry()).unwrap();
    assert!(
        text.contains("\ntrailwatch_events_late_total 2\n"),
        "{text}"
    );
    let help = text
        .lines()
        .find(|line| line.starts_with("# HELP trailwatch_events_late_total "))
        .unwrap();
    assert!(
        help.contains("Rule matches dropped") && help.contains("once per rule it matched"),
        "{help}"
    );
}

#[test]
fn future_dated_events_are_clamped_and_do_not_close_windows() {
    let engine = in_order_engine();
    let records = vec![
        event("2024-03-01T12:00:00Z"),
        event("9999-12-31T23:59:59Z"), // clamped to now + skew
        event("2024-03-01T12:00:30Z"),
    ];
    let alerts = run(&engine, records);
    let metrics = engine.metrics();
    assert_eq!(metrics.sum(|w| &w.clamped), 1);
    // The clamped event moves the watermark to about now, which closes the
    // 2024 window before its second event: that event is late. What must
    // not happen is a watermark in year 9999.
    let watermark = metrics
        .watermark_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        watermark <= now + 10 * 60_000,
        "watermark {watermark} ran ahead of now {now}"
    );
    assert!(alerts.is_empty());
}

/// A dead-letter sink that blocks until the test lets it deliver.
struct GatedDeadLetters {
    called: crossbeam_channel::Sender<()>,
    permits: crossbeam_channel::Receiver<()>,
}

impl trailwatch::sink::DeadLetterSink for GatedDeadLetters {
    fn name(&self) -> &str {
        "gated"
    }

    fn send(&mut self, _records: &[trailwatch::sink::DeadLetter]) -> trailwatch::error::Result<()> {
        let _ = self.called.send(());
        self.permits
            .recv()
            .map_err(|_| trailwatch::error::Error::Sink("gate closed".into()))
    }
}

#[test]
fn dead_letters_hold_their_offset_until_the_dead_letter_sink_acknowledges() {
    let engine = service_engine();
    let mut records = vec![event("2024-03-01T12:00:00Z"), b"{not json".to_vec()];
    records.extend((0..6).map(|i| event(&format!("2024-03-01T12:30:0{i}Z"))));
    let (called_tx, called_rx) = crossbeam_channel::unbounded();
    let (permit_tx, permit_rx) = crossbeam_channel::unbounded();
    let tracker = engine.tracker();
    std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            engine.run(
                vec![Box::new(MemorySource::new("p", records, 1))],
                Box::new(MemorySink::default()),
                Box::new(GatedDeadLetters {
                    called: called_tx,
                    permits: permit_rx,
                }),
            )
        });
        called_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("dead-letter sink called");
        // Let every later batch through the pipeline while the dead letter
        // is unacknowledged: the commit position stays at its offset (1).
        std::thread::sleep(std::time::Duration::from_millis(300));
        let held = tracker.safe_positions();
        assert_eq!(held.len(), 1);
        assert!(
            held[0].1 <= 1,
            "committable past an unacknowledged dead letter: {held:?}"
        );
        permit_tx.send(()).unwrap();
        run.join().unwrap().unwrap();
    });
    let released = tracker.safe_positions();
    assert!(
        released[0].1 > 1,
        "acknowledged dead letter still holds: {released:?}"
    );
}

/// An M-of-N alarm whose breaching periods straddle a restart: the closed
/// period the alarm still counts holds the commit, so the restarted engine
/// replays it and raises as one uninterrupted run does.
#[test]
fn an_alarm_keeps_the_periods_it_counts_across_a_restart() {
    let spec: RuleSpec = serde_yaml_ng::from_str(
        r#"
id: logins-2-of-3
title: logins, 2 of 3 periods
kind: cloudtrail
filter: '{ $.eventName = ConsoleLogin }'
group_by: [recipientAccountId]
window: 5m
threshold: ">= 2"
evaluation: {periods: 3, datapoints: 2}
"#,
    )
    .unwrap();
    let rules = Arc::new(RuleSet::compile(&[spec]).unwrap());
    let engine = || {
        let mut config = EngineConfig::default();
        config.watermark.replay = false;
        config.watermark.allowed_lateness_ms = 0;
        config.flush_on_end = false;
        config.shards = 1;
        config.decoders = 1;
        Engine::new(config, Arc::clone(&rules))
    };
    let quiet = |time: &str| {
        format!(r#"{{"eventTime":"{time}","eventName":"ListRoles","recipientAccountId":"1"}}"#)
            .into_bytes()
    };
    let before = vec![
        event("2024-03-01T12:00:00Z"),
        event("2024-03-01T12:01:00Z"), // period 12:00 breaches
        quiet("2024-03-01T12:06:00Z"), // and closes: 1 of 3
    ];
    let after = vec![
        event("2024-03-01T12:07:00Z"),
        event("2024-03-01T12:08:00Z"), // period 12:05 breaches: 2 of 3
        quiet("2024-03-01T12:11:00Z"),
    ];
    let whole: Vec<Vec<u8>> = before.iter().chain(&after).cloned().collect();
    let reference = run(&engine(), whole.clone());
    assert_eq!(reference.len(), 1, "{reference:?}");

    // The first process stops after `before`, its commit where the
    // contract allows; the second reads from there.
    let first = engine();
    assert!(run(&first, before.clone()).is_empty());
    let committed = first.tracker().safe_positions()[0].1 as usize;
    let restarted = run(&engine(), whole[committed..].to_vec());
    let ids = |alerts: &[Alert]| alerts.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&restarted),
        ids(&reference),
        "restarted from offset {committed}: {restarted:?}"
    );
}
