//! Prometheus text exposition of [`Metrics`], built at scrape time.
//!
//! Custom-collector style: nothing here runs on the hot path. A scrape
//! reads the per-worker atomics, sums them, snapshots the histograms and
//! encodes everything with the `prometheus` crate's [`TextEncoder`]
//! (text format 0.0.4, which Debian's `promtool check metrics` accepts; see
//! the README section "Why the `prometheus` crate" for why this crate and not `prometheus-client`).
//!
//! Naming follows GUIDE §7: one `trailwatch_` prefix, base units
//! (`_seconds`, `_bytes`), `_total` on counters, and only bounded labels
//! (reason, rule id, activity, sink, shard index, Kafka partition, Kinesis
//! shard, the fixed Kinesis read-error kinds and lease-loss reasons, and
//! `stage` when one listener serves both scale-out stages). The Kinesis
//! source's failure counters appear once a Kinesis source registered them.
//! Partitions of file-like sources (one per input file) are folded
//! into one `partition="all"` series, and any source is capped at
//! [`MAX_PARTITION_SERIES`] partition series.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram as PromHistogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::TextEncoder;

use super::{KinesisLeaseLoss, KinesisReadError, Metrics, SinkCounters, WorkerCounters};
use crate::alert::Activity;
use crate::error::{Error, Result};
use crate::source::PartitionRegistry;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Most partition series one source may expose; the rest fold into
/// `partition="other"`.
pub const MAX_PARTITION_SERIES: usize = 1024;

/// Upper bounds (seconds) of the event-time lag histogram buckets.
/// 900 s is a bound because the `TrailwatchEventTimeLagHigh` alert tests
/// the p99 against it: inside a wide bucket, the quantile is interpolated
/// and a lag of 650 s read as 1,788 s.
pub const EVENT_TIME_LAG_BOUNDS: [f64; 15] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0,
];

/// Upper bounds (seconds) of the processing-latency histogram buckets.
pub const PROCESSING_LATENCY_BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Each per-worker counter (by its field name in [`WorkerCounters`]) and
/// the metric that exposes it. A test checks that every field is listed.
pub const WORKER_COUNTERS: &[(&str, &str)] = &[
    ("records", "trailwatch_records_received_total"),
    ("bytes", "trailwatch_received_bytes_total"),
    ("events", "trailwatch_records_decoded_total"),
    ("ruled_out", "trailwatch_events_ruled_out_total"),
    ("failed", "trailwatch_records_failed_total"),
    ("control_messages", "trailwatch_control_messages_total"),
    ("digest_files", "trailwatch_cloudtrail_digests_total"),
    (
        "replayed_skipped",
        "trailwatch_records_replay_skipped_total",
    ),
    ("clamped", "trailwatch_events_clamped_total"),
    ("late", "trailwatch_events_late_total"),
    ("shed", "trailwatch_windows_shed_total"),
    ("matches", "trailwatch_rule_matches_total"),
    ("dead_lettered", "trailwatch_dead_letters_total"),
    ("open_windows", "trailwatch_open_windows"),
    ("state_bytes", "trailwatch_state_bytes"),
];

/// Each [`SinkCounters`] field and the metric that exposes it.
pub const SINK_COUNTERS: &[(&str, &str)] = &[
    ("sent", "trailwatch_sink_sends_total"),
    ("errors", "trailwatch_sink_errors_total"),
    ("retries", "trailwatch_sink_retries_total"),
];

/// Sources whose partitions are bounded and worth a series each.
fn partitioned_source(source: &str) -> bool {
    matches!(source, "kafka" | "kinesis")
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_string());
    pair.set_value(value.to_string());
    pair
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_string());
    family.set_help(help.to_string());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

fn sorted(mut labels: Vec<LabelPair>) -> Vec<LabelPair> {
    labels.sort_by(|a, b| a.name().cmp(b.name()));
    labels
}

fn counter(labels: Vec<LabelPair>, value: u64) -> Metric {
    let labels = sorted(labels);
    let mut c = Counter::default();
    c.set_value(value as f64);
    let mut m = Metric::from_label(labels);
    m.set_counter(c);
    m
}

fn gauge(labels: Vec<LabelPair>, value: f64) -> Metric {
    let labels = sorted(labels);
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = Metric::from_label(labels);
    m.set_gauge(g);
    m
}

/// A histogram of `snapshot` (values in `unit_per_second` units per
/// second) as cumulative buckets at `bounds` seconds.
fn histogram(snapshot: &Histogram<u64>, unit_per_second: f64, bounds: &[f64]) -> Metric {
    let buckets = bounds
        .iter()
        .map(|&bound| {
            let mut b = Bucket::default();
            b.set_upper_bound(bound);
            let high = (bound * unit_per_second) as u64;
            b.set_cumulative_count(snapshot.count_between(0, high));
            b
        })
        .collect();
    let mut h = PromHistogram::default();
    h.set_bucket(buckets);
    h.set_sample_count(snapshot.len());
    // hdrhistogram keeps no exact sum; mean × count is exact to the
    // histogram's precision (2 significant digits).
    h.set_sample_sum(snapshot.mean() * snapshot.len() as f64 / unit_per_second);
    let mut m = Metric::default();
    m.set_histogram(h);
    m
}

fn snapshot(h: &Mutex<Histogram<u64>>) -> Histogram<u64> {
    h.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn sum_workers(
    workers: &[std::sync::Arc<WorkerCounters>],
    pick: impl Fn(&WorkerCounters) -> &AtomicU64,
) -> u64 {
    workers
        .iter()
        .map(|w| pick(w).load(Ordering::Relaxed))
        .sum()
}

/// Records received per `(source, partition)` label pair, bounded.
fn partition_series(
    metrics: &Metrics,
    registry: &PartitionRegistry,
) -> BTreeMap<(String, String), u64> {
    let counts = metrics
        .partition_records
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut series: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut per_source: BTreeMap<String, usize> = BTreeMap::new();
    for (id, n) in counts.iter().enumerate() {
        let (source, partition) = registry
            .name(id as u32)
            .unwrap_or_else(|| ("unknown".to_string(), String::new()));
        let partition = if partitioned_source(&source) {
            let seen = per_source.entry(source.clone()).or_insert(0);
            if series.contains_key(&(source.clone(), partition.clone())) {
                partition
            } else if *seen < MAX_PARTITION_SERIES {
                *seen += 1;
                partition
            } else {
                "other".to_string()
            }
        } else {
            "all".to_string()
        };
        *series.entry((source, partition)).or_insert(0) += n;
    }
    series
}

/// Every metric family, read now.
pub fn gather(metrics: &Metrics, registry: &PartitionRegistry) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE, HISTOGRAM};
    let mut out = Vec::new();
    let all: Vec<std::sync::Arc<WorkerCounters>> = metrics
        .decoders
        .iter()
        .chain(metrics.shards.iter())
        .cloned()
        .collect();
    let total = |pick: fn(&WorkerCounters) -> &AtomicU64| sum_workers(&all, pick);

    let received: Vec<Metric> = partition_series(metrics, registry)
        .into_iter()
        .map(|((source, partition), n)| {
            counter(
                vec![label("source", &source), label("partition", &partition)],
                n,
            )
        })
        .collect();
    // Before any input, one zero series keeps the family (and its alerts) defined.
    let received = if received.is_empty() {
        vec![counter(
            vec![label("source", "none"), label("partition", "all")],
            0,
        )]
    } else {
        received
    };
    out.push(family(
        "trailwatch_records_received_total",
        "Raw records read from sources, including records that failed to decode.",
        COUNTER,
        received,
    ));
    out.push(family(
        "trailwatch_received_bytes_total",
        "Bytes of raw records read from sources.",
        COUNTER,
        vec![counter(vec![], total(|w| &w.bytes))],
    ));
    out.push(family(
        "trailwatch_records_decoded_total",
        "Events decoded from records (one record may hold many events).",
        COUNTER,
        vec![counter(vec![], total(|w| &w.events))],
    ));
    out.push(family(
        "trailwatch_records_failed_total",
        "Records that failed to decode, by reason.",
        COUNTER,
        metrics
            .failed_by_reason()
            .into_iter()
            .map(|(reason, n)| counter(vec![label("reason", reason.as_str())], n))
            .collect(),
    ));
    out.push(family(
        "trailwatch_dead_letters_total",
        "Records sent to the dead-letter sink.",
        COUNTER,
        vec![counter(vec![], total(|w| &w.dead_lettered))],
    ));
    out.push(family(
        "trailwatch_dead_letters_truncated_total",
        "Dead letters cut to fit the dead-letter output's record size limit (the whole record stays at its source position).",
        COUNTER,
        vec![counter(
            vec![],
            metrics.dead_letters_truncated.load(Ordering::Relaxed),
        )],
    ));
    out.push(family(
        "trailwatch_control_messages_total",
        "CloudWatch Logs control messages skipped.",
        COUNTER,
        vec![counter(vec![], total(|w| &w.control_messages))],
    ));
    out.push(family(
        "trailwatch_cloudtrail_digests_total",
        "CloudTrail digest files skipped (log file integrity digests, kept beside the logs: no events).",
        COUNTER,
        vec![counter(vec![], total(|w| &w.digest_files))],
    ));
    out.push(family(
        "trailwatch_records_replay_skipped_total",
        "Records skipped on a Kafka partition or Kinesis shard that came back to this process: already counted in its open windows.",
        COUNTER,
        vec![counter(vec![], total(|w| &w.replayed_skipped))],
    ));
    out.push(family(
        "trailwatch_events_ruled_out_total",
        "Decoded events the rule gate proved no rule can match, so only the gate's fields and the time were read.",
        COUNTER,
        vec![counter(vec![], total(|w| &w.ruled_out))],
    ));
    out.push(family(
        "trailwatch_events_late_total",
        "Rule matches dropped because their window had already closed: a late event counts once per rule it matched.",
        COUNTER,
        vec![counter(vec![], total(|w| &w.late))],
    ));
    out.push(family(
        "trailwatch_events_clamped_total",
        "Events whose time was too far in the future and was clamped to now + max_skew.",
        COUNTER,
        vec![counter(vec![], total(|w| &w.clamped))],
    ));
    out.push(family(
        "trailwatch_windows_shed_total",
        "Windows closed early because the open-window cap was reached.",
        COUNTER,
        vec![counter(vec![], total(|w| &w.shed))],
    ));
    out.push(family(
        "trailwatch_rule_matches_total",
        "Rule matches routed to shards.",
        COUNTER,
        vec![counter(vec![], total(|w| &w.matches))],
    ));
    let per_shard = |pick: fn(&WorkerCounters) -> &AtomicU64| -> Vec<Metric> {
        metrics
            .shards
            .iter()
            .enumerate()
            .map(|(i, w)| {
                gauge(
                    vec![label("shard", &i.to_string())],
                    pick(w).load(Ordering::Relaxed) as f64,
                )
            })
            .collect()
    };
    out.push(family(
        "trailwatch_open_windows",
        "Open window aggregates per shard.",
        GAUGE,
        per_shard(|w| &w.open_windows),
    ));
    out.push(family(
        "trailwatch_state_bytes",
        "Approximate bytes of window state per shard.",
        GAUGE,
        per_shard(|w| &w.state_bytes),
    ));
    let mut alerts = Vec::new();
    for (index, rule) in metrics.alerts.rule_ids.iter().enumerate() {
        for activity in Activity::ALL {
            alerts.push(counter(
                vec![label("rule", rule), label("activity", activity.as_str())],
                metrics.alerts.get(index, activity),
            ));
        }
    }
    if alerts.is_empty() {
        alerts.push(counter(
            vec![label("rule", "none"), label("activity", "create")],
            0,
        ));
    }
    out.push(family(
        "trailwatch_alerts_total",
        "Alerts delivered, by rule and OCSF activity.",
        COUNTER,
        alerts,
    ));
    let sinks: [(&str, &SinkCounters); 3] = [
        ("alerts", &metrics.sink),
        ("dead_letter", &metrics.dead_letter),
        ("repartition", &metrics.repartition.sink),
    ];
    let per_sink = |pick: fn(&SinkCounters) -> &AtomicU64| -> Vec<Metric> {
        sinks
            .iter()
            .map(|(name, c)| counter(vec![label("sink", name)], pick(c).load(Ordering::Relaxed)))
            .collect()
    };
    out.push(family(
        "trailwatch_sink_sends_total",
        "Items each output delivered: alerts, dead letters or partials (repartition).",
        COUNTER,
        per_sink(|c| &c.sent),
    ));
    out.push(family(
        "trailwatch_sink_errors_total",
        "Failed sink deliveries (each failed attempt).",
        COUNTER,
        per_sink(|c| &c.errors),
    ));
    out.push(family(
        "trailwatch_sink_retries_total",
        "Sink delivery retries.",
        COUNTER,
        per_sink(|c| &c.retries),
    ));
    let repartition = &metrics.repartition;
    for (name, help, value) in [
        (
            "trailwatch_repartition_partials_produced_total",
            "Partial aggregates stage 1 wrote to the repartition topic.",
            &repartition.produced,
        ),
        (
            "trailwatch_repartition_produced_bytes_total",
            "Key and value bytes stage 1 wrote to the repartition topic (partials and watermarks).",
            &repartition.produced_bytes,
        ),
        (
            "trailwatch_repartition_watermarks_produced_total",
            "Watermark records stage 1 wrote to the repartition topic.",
            &repartition.watermarks_produced,
        ),
        (
            "trailwatch_repartition_partials_consumed_total",
            "Partial aggregates stage 2 merged into windows.",
            &repartition.consumed,
        ),
        (
            "trailwatch_repartition_consumed_bytes_total",
            "Record bytes stage 2 read from the repartition topic.",
            &repartition.consumed_bytes,
        ),
        (
            "trailwatch_repartition_replayed_total",
            "Partials stage 2 skipped because their input was already merged (a stage-1 replay).",
            &repartition.replayed,
        ),
        (
            "trailwatch_repartition_trimmed_total",
            "Replayed partials stage 2 merged only in part: the matches past the input it had merged.",
            &repartition.trimmed,
        ),
        (
            "trailwatch_repartition_superseded_total",
            "Partials stage 2 skipped because a later stage-1 owner of their input had already sent what they straddle (a previous owner's flush that arrived late).",
            &repartition.superseded,
        ),
        (
            "trailwatch_repartition_overlaps_total",
            "Partials stage 2 merged whole although part of their input was already merged (possible over-count).",
            &repartition.overlaps,
        ),
        (
            "trailwatch_repartition_invalid_total",
            "Repartition records stage 2 could not read (dead-lettered).",
            &repartition.invalid,
        ),
    ] {
        out.push(family(
            name,
            help,
            COUNTER,
            vec![counter(vec![], value.load(Ordering::Relaxed))],
        ));
    }
    out.push(family(
        "trailwatch_repartition_inputs_at_floor",
        "Input partitions holding stage 2's watermark at its floor: known to exist or assigned, not yet reported with a watermark by their stage-1 owner.",
        GAUGE,
        vec![gauge(
            vec![],
            repartition.inputs_at_floor.load(Ordering::Relaxed) as f64,
        )],
    ));
    let kinesis = metrics
        .kinesis_source
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(kinesis) = kinesis {
        out.push(family(
            "trailwatch_kinesis_read_errors_total",
            "Failed Kinesis reads (GetShardIterator, GetRecords, SubscribeToShard and its event stream), by kind.",
            COUNTER,
            KinesisReadError::ALL
                .iter()
                .map(|kind| {
                    counter(
                        vec![label("kind", kind.as_str())],
                        kinesis.read_errors[*kind as usize].load(Ordering::Relaxed),
                    )
                })
                .collect(),
        ));
        out.push(family(
            "trailwatch_kinesis_lease_lost_total",
            "Kinesis shard leases this worker lost, by reason; its reader stops.",
            COUNTER,
            KinesisLeaseLoss::ALL
                .iter()
                .map(|why| {
                    counter(
                        vec![label("reason", why.as_str())],
                        kinesis.lease_lost[*why as usize].load(Ordering::Relaxed),
                    )
                })
                .collect(),
        ));
        for (name, help, value) in [
            (
                "trailwatch_kinesis_lease_renew_errors_total",
                "Kinesis lease renews that failed without losing the lease (retried until it expires).",
                &kinesis.lease_renew_errors,
            ),
            (
                "trailwatch_kinesis_checkpoint_errors_total",
                "Kinesis checkpoint writes that failed (written again at the next commit).",
                &kinesis.checkpoint_errors,
            ),
            (
                "trailwatch_kinesis_shards_gone_total",
                "Kinesis shards the stream no longer lists (trimmed past retention), ended so that their children are read; their records past the checkpoint were gone.",
                &kinesis.shards_gone,
            ),
            (
                "trailwatch_kinesis_consumer_errors_total",
                "Failed attempts to register the enhanced fan-out consumer again after it was deleted.",
                &kinesis.consumer_errors,
            ),
        ] {
            out.push(family(
                name,
                help,
                COUNTER,
                vec![counter(vec![], value.load(Ordering::Relaxed))],
            ));
        }
    }
    let watermark = metrics.watermark_ms.load(Ordering::Relaxed);
    if watermark != i64::MIN {
        out.push(family(
            "trailwatch_watermark_seconds",
            "Global event-time watermark, Unix seconds.",
            GAUGE,
            vec![gauge(vec![], watermark as f64 / 1000.0)],
        ));
    }
    out.push(family(
        "trailwatch_event_time_lag_seconds",
        "Alert delivery time minus the alert's event time.",
        HISTOGRAM,
        vec![histogram(
            &snapshot(&metrics.event_time_lag_ms),
            1_000.0,
            &EVENT_TIME_LAG_BOUNDS,
        )],
    ));
    out.push(family(
        "trailwatch_processing_latency_seconds",
        "Time from a batch's arrival to its matches being routed to shards.",
        HISTOGRAM,
        vec![histogram(
            &snapshot(&metrics.processing_latency_us),
            1_000_000.0,
            &PROCESSING_LATENCY_BOUNDS,
        )],
    ));
    let lag = metrics
        .lag
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for g in lag {
        let values: Vec<Metric> = (g.read)()
            .into_iter()
            .take(MAX_PARTITION_SERIES)
            .map(|(partition, n)| gauge(vec![label(g.label, &partition)], n as f64))
            .collect();
        if !values.is_empty() {
            out.push(family(g.name, g.help, GAUGE, values));
        }
    }
    let mut build = vec![label("version", env!("CARGO_PKG_VERSION"))];
    if let Some(sha) = option_env!("TRAILWATCH_GIT_SHA") {
        build.push(label("git_sha", sha));
    }
    out.push(family(
        "trailwatch_build_info",
        "Build information; the value is always 1.",
        GAUGE,
        vec![gauge(build, 1.0)],
    ));
    out.push(family(
        "trailwatch_ready",
        "1 when every source is assigned input and a batch was consumed (as /readyz).",
        GAUGE,
        vec![gauge(
            vec![],
            if metrics.health.is_ready() { 1.0 } else { 0.0 },
        )],
    ));
    out.push(family(
        "trailwatch_start_time_seconds",
        "Process start time, Unix seconds.",
        GAUGE,
        vec![gauge(vec![], metrics.started_unix_s)],
    ));
    out
}

/// Renders every metric in the Prometheus text format.
pub fn render(metrics: &Metrics, registry: &PartitionRegistry) -> Result<String> {
    encode(&gather(metrics, registry))
}

/// One engine's metrics on a shared listener.
#[derive(Debug, Clone)]
pub struct Served {
    /// The `stage` label of every series of this engine (scale-out: `"1"`,
    /// `"2"`); `None` adds no label (a single engine).
    pub stage: Option<&'static str>,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<PartitionRegistry>,
}

/// Renders several engines as one exposition: each engine's series carry
/// its `stage` label, and families of the same name are merged (the first
/// engine's help text stays), so every series stays unique.
pub fn render_all(served: &[Served]) -> Result<String> {
    if let [only] = served {
        if only.stage.is_none() {
            return render(&only.metrics, &only.registry);
        }
    }
    let mut merged: Vec<MetricFamily> = Vec::new();
    for engine in served {
        for mut family in gather(&engine.metrics, &engine.registry) {
            if let Some(stage) = engine.stage {
                for metric in family.mut_metric() {
                    let mut labels = metric.take_label();
                    labels.push(label("stage", stage));
                    metric.set_label(sorted(labels));
                }
            }
            match merged.iter_mut().find(|f| f.name() == family.name()) {
                Some(existing) => existing.mut_metric().extend(family.take_metric()),
                None => merged.push(family),
            }
        }
    }
    encode(&merged)
}

fn encode(families: &[MetricFamily]) -> Result<String> {
    let mut text = String::with_capacity(8 * 1024);
    TextEncoder::new()
        .encode_utf8(families, &mut text)
        .map_err(|e| Error::Internal(format!("cannot encode metrics: {e}")))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::decode::DecodeErrorReason;

    /// Field names of a struct from its derived `Debug` output.
    fn debug_fields(debug: &str) -> Vec<String> {
        let inner = debug
            .split_once('{')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let mut fields = Vec::new();
        let mut depth = 0i32;
        let mut token = String::new();
        for c in inner.chars() {
            match c {
                '[' | '{' | '(' => depth += 1,
                ']' | '}' | ')' => depth -= 1,
                ':' if depth == 0 => {
                    let name = token.trim().trim_start_matches(',').trim().to_string();
                    fields.push(name);
                    token.clear();
                    continue;
                }
                ',' if depth == 0 => token.clear(),
                _ => {}
            }
            if depth == 0 && c != ',' {
                token.push(c);
            }
        }
        fields
    }

    fn sample_metrics() -> (Arc<Metrics>, PartitionRegistry) {
        let metrics = Metrics::new(2, 2, vec!["rule-a".into(), "rule-b".into()]);
        let registry = PartitionRegistry::default();
        let k0 = registry.id("kafka", "cloudtrail-0");
        let f0 = registry.id("file", "/tmp/a.json");
        let f1 = registry.id("file", "/tmp/b.json");
        metrics.add_partition_records(k0, 5);
        metrics.add_partition_records(f0, 2);
        metrics.add_partition_records(f1, 3);
        metrics.decoders[0].records.fetch_add(10, Ordering::Relaxed);
        metrics.shards[1].records.fetch_add(1, Ordering::Relaxed);
        metrics.decoders[1].failed[DecodeErrorReason::BadGzip as usize]
            .fetch_add(4, Ordering::Relaxed);
        metrics.shards[1].open_windows.store(7, Ordering::Relaxed);
        metrics.alerts.inc(1, Activity::Create);
        metrics
            .dead_letters_truncated
            .fetch_add(2, Ordering::Relaxed);
        Metrics::record(&metrics.event_time_lag_ms, 2_000);
        Metrics::record(&metrics.processing_latency_us, 300);
        (metrics, registry)
    }

    /// The lag of an event a year old (a replayed archive) is summed as a
    /// year. The histogram's bound was 41.7 days, and every older lag was
    /// recorded as that: `_sum` said 41.7 days per event.
    #[test]
    fn a_year_old_events_lag_is_summed_as_a_year() {
        let metrics = Metrics::new(1, 1, Vec::new());
        let year_ms = 365 * 86_400_000;
        Metrics::record(&metrics.event_time_lag_ms, year_ms);
        let text = render(&metrics, &PartitionRegistry::default()).unwrap();
        let sum: f64 = text
            .lines()
            .find_map(|line| line.strip_prefix("trailwatch_event_time_lag_seconds_sum "))
            .unwrap()
            .parse()
            .unwrap();
        let year_s = (year_ms / 1000) as f64;
        // Two significant digits: within 1%.
        assert!((sum - year_s).abs() < year_s / 100.0, "{sum} vs {year_s}");
    }

    /// A p99 tested against a value inside a bucket is interpolated across
    /// it: the alert's threshold must be a bucket bound.
    #[test]
    fn the_lag_alert_threshold_is_a_bucket_bound() {
        for rules in [
            include_str!("../../deploy/prometheus/alerts.yaml"),
            include_str!("../../k8s/base/prometheusrule.yaml"),
        ] {
            let expr = rules
                .lines()
                .find(|l| l.contains("trailwatch_event_time_lag_seconds_bucket"))
                .expect("the lag alert");
            let threshold: f64 = expr
                .rsplit('>')
                .next()
                .and_then(|t| t.trim().parse().ok())
                .expect("a threshold");
            assert!(
                EVENT_TIME_LAG_BOUNDS.contains(&threshold),
                "{threshold} s is not a bucket bound of {EVENT_TIME_LAG_BOUNDS:?}"
            );
        }
    }

    #[test]
    fn two_stages_share_one_exposition_with_a_stage_label() {
        let (first, first_registry) = sample_metrics();
        let second = Metrics::new(1, 1, vec!["rule-a".into()]);
        let served = [
            Served {
                stage: Some("1"),
                metrics: first,
                registry: Arc::new(first_registry),
            },
            Served {
                stage: Some("2"),
                metrics: second,
                registry: Arc::new(PartitionRegistry::default()),
            },
        ];
        let text = render_all(&served).unwrap();
        let types: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("# TYPE trailwatch_records_received_total "))
            .collect();
        assert_eq!(types.len(), 1, "one family, not one per stage:\n{text}");
        let received: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("trailwatch_records_received_total{"))
            .collect();
        assert!(
            received
                .iter()
                .any(|l| l.contains(r#"stage="1""#) && l.ends_with(" 5")),
            "stage 1's records: {received:?}"
        );
        let ready: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("trailwatch_ready{"))
            .collect();
        assert_eq!(ready.len(), 2, "{ready:?}");
        assert!(ready.iter().any(|l| l.contains(r#"stage="2""#)));
        let mut series: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series))
            .collect();
        let total = series.len();
        series.sort_unstable();
        series.dedup();
        assert_eq!(series.len(), total, "every series is unique");
    }

    #[test]
    fn every_worker_and_sink_counter_is_exposed() {
        let (metrics, registry) = sample_metrics();
        let text = render(&metrics, &registry).unwrap();
        let worker_fields = debug_fields(&format!("{:?}", WorkerCounters::default()));
        assert!(worker_fields.len() >= 10, "{worker_fields:?}");
        for field in &worker_fields {
            let metric = WORKER_COUNTERS
                .iter()
                .find(|(f, _)| f == field)
                .map(|(_, m)| *m)
                .unwrap_or_else(|| panic!("worker counter `{field}` has no metric"));
            assert!(
                text.contains(&format!("\n{metric}")),
                "{metric} missing:\n{text}"
            );
        }
        let sink_fields = debug_fields(&format!("{:?}", SinkCounters::default()));
        assert_eq!(sink_fields, vec!["sent", "errors", "retries"]);
        for field in &sink_fields {
            let metric = SINK_COUNTERS
                .iter()
                .find(|(f, _)| f == field)
                .map(|(_, m)| *m)
                .unwrap_or_else(|| panic!("sink counter `{field}` has no metric"));
            for sink in ["alerts", "dead_letter"] {
                assert!(
                    text.contains(&format!("{metric}{{sink=\"{sink}\"}} 0")),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn values_are_summed_and_labelled() {
        let (metrics, registry) = sample_metrics();
        let text = render(&metrics, &registry).unwrap();
        for reason in DecodeErrorReason::ALL {
            let expected = if reason == DecodeErrorReason::BadGzip {
                4
            } else {
                0
            };
            let line = format!(
                "trailwatch_records_failed_total{{reason=\"{}\"}} {expected}\n",
                reason.as_str()
            );
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
        assert!(text.contains(
            "trailwatch_records_received_total{partition=\"cloudtrail-0\",source=\"kafka\"} 5\n"
        ));
        // Files fold into one bounded series.
        assert!(text
            .contains("trailwatch_records_received_total{partition=\"all\",source=\"file\"} 5\n"));
        assert!(!text.contains("/tmp/a.json"));
        assert!(text.contains("trailwatch_open_windows{shard=\"1\"} 7\n"));
        assert!(text.contains("trailwatch_open_windows{shard=\"0\"} 0\n"));
        assert!(text.contains("trailwatch_alerts_total{activity=\"create\",rule=\"rule-b\"} 1\n"));
        assert!(text.contains("trailwatch_alerts_total{activity=\"close\",rule=\"rule-a\"} 0\n"));
        assert!(text.contains("trailwatch_event_time_lag_seconds_bucket{le=\"1\"} 0\n"));
        assert!(text.contains("trailwatch_event_time_lag_seconds_bucket{le=\"2.5\"} 1\n"));
        assert!(text.contains("trailwatch_event_time_lag_seconds_count 1\n"));
        assert!(text.contains("trailwatch_processing_latency_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("trailwatch_build_info{version=\""));
        assert!(text.contains("trailwatch_ready 0\n"));
        assert!(text.contains("trailwatch_dead_letters_truncated_total 2\n"));
        assert!(!text.contains("trailwatch_watermark_seconds"));
        assert!(!text.contains("trailwatch_kafka_consumer_lag"));
    }

    #[test]
    fn lag_gauges_registered_by_sources_are_read_at_scrape_time() {
        let (metrics, registry) = sample_metrics();
        let lag = Arc::new(AtomicU64::new(3));
        let reader = Arc::clone(&lag);
        metrics.register_kafka_consumer_lag(Arc::new(move || {
            vec![("0".to_string(), reader.load(Ordering::Relaxed) as i64)]
        }));
        metrics.register_kinesis_millis_behind_latest(Arc::new(|| {
            vec![("shardId-000000000000".to_string(), 1500)]
        }));
        let text = render(&metrics, &registry).unwrap();
        assert!(
            text.contains("trailwatch_kafka_consumer_lag{partition=\"0\"} 3\n"),
            "{text}"
        );
        lag.store(9, Ordering::Relaxed);
        let text = render(&metrics, &registry).unwrap();
        assert!(text.contains("trailwatch_kafka_consumer_lag{partition=\"0\"} 9\n"));
        assert!(text.contains(
            "trailwatch_kinesis_millis_behind_latest{shard=\"shardId-000000000000\"} 1500\n"
        ));
        assert!(text.contains("# TYPE trailwatch_kafka_consumer_lag gauge\n"));
    }

    #[test]
    fn kinesis_source_counters_are_exposed_once_registered() {
        let (metrics, registry) = sample_metrics();
        let text = render(&metrics, &registry).unwrap();
        assert!(!text.contains("trailwatch_kinesis_"), "{text}");
        let counters = Arc::new(crate::metrics::KinesisSourceCounters::default());
        metrics.register_kinesis_source(Arc::clone(&counters));
        counters.read_error(KinesisReadError::ExpiredIterator);
        counters.lease_lost(KinesisLeaseLoss::Fenced);
        counters.checkpoint_errors.fetch_add(2, Ordering::Relaxed);
        let text = render(&metrics, &registry).unwrap();
        for line in [
            "trailwatch_kinesis_read_errors_total{kind=\"expired_iterator\"} 1\n",
            "trailwatch_kinesis_read_errors_total{kind=\"throttled\"} 0\n",
            "trailwatch_kinesis_read_errors_total{kind=\"not_found\"} 0\n",
            "trailwatch_kinesis_read_errors_total{kind=\"other\"} 0\n",
            "trailwatch_kinesis_lease_lost_total{reason=\"fenced\"} 1\n",
            "trailwatch_kinesis_lease_lost_total{reason=\"taken_over\"} 0\n",
            "trailwatch_kinesis_lease_renew_errors_total 0\n",
            "trailwatch_kinesis_checkpoint_errors_total 2\n",
            "trailwatch_kinesis_shards_gone_total 0\n",
            "trailwatch_kinesis_consumer_errors_total 0\n",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        let fields = debug_fields(&format!(
            "{:?}",
            crate::metrics::KinesisSourceCounters::default()
        ));
        assert_eq!(fields.len(), 6, "a new counter needs a metric: {fields:?}");
    }

    #[test]
    fn readiness_needs_every_source_and_a_consumed_batch() {
        let (metrics, _) = sample_metrics();
        let health = &metrics.health;
        assert!(!health.is_ready());
        health.begin(2);
        let (mut a, mut b) = (false, false);
        health.observe_source(&mut a, true);
        health.consumed();
        assert!(!health.is_ready(), "one source is not ready yet");
        health.observe_source(&mut b, true);
        assert!(health.is_ready());
        health.observe_source(&mut b, true);
        assert!(health.is_ready(), "repeated reports do not double count");
        health.observe_source(&mut a, false);
        assert!(!health.is_ready(), "a source lost its assignment");
    }
}
