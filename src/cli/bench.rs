//! `trailwatch bench`: the whole pipeline (decode → rules → windows →
//! alerts) over in-memory input, beside the naive baseline of
//! [`crate::bench_baseline`], in the same run.
//!
//! For each data set (generated with [`crate::gen`], or `--input` files
//! loaded into memory, one record per line) it reports:
//!
//! - `inline`: decode worker and shard driven on the calling thread, one
//!   core, no channels crossed between threads; the figure the per-core
//!   targets of issues 2 and 7 are about;
//! - `engine N`: the real [`Engine`] with `MemorySource` and `MemorySink`,
//!   N decode workers and N shards (plus the sink thread), the input dealt
//!   over N partitions (a partition is decoded by one worker, so this is
//!   how a Kafka topic with N partitions runs), each read by its own source
//!   thread ([`MemorySource::lanes`]); `--batch-bytes` also cuts raw
//!   batches by size, and `--thread-cpu` reports the run's CPU by thread
//!   role ([`super::thread_cpu`]);
//! - `baseline`: the naive engine, one thread;
//!
//! with events/s, MB/s, peak RSS of the run (VmHWM, reset before each run
//! through `/proc/self/clear_refs`; process-wide, so it includes the input
//! held in memory), peak open aggregates and the shards' estimate of state
//! bytes per open aggregate. `--state-keys N` also measures the RSS cost
//! of N distinct open count aggregates in one shard, first, while the
//! process is fresh (freed memory from earlier runs would hide growth).
//!
//! Throughput is given per CPU-second (the measured threads' on-CPU time,
//! from `/proc/thread-self/schedstat`; for the engine, the process's user +
//! system time) and per wall-second. On a shared machine the CPU figure is
//! the one to compare; the best of `--repeat` runs (by CPU time) is kept.
//! Measure in release mode, and compare ratios taken in the same run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::alert::Alert;
use crate::bench_baseline::Baseline;
use crate::decode::DecodeConfig;
use crate::engine::commit::CommitTracker;
use crate::engine::shard::{Match, MatchBatch, Shard, ShardConfig, ShardMsg};
use crate::engine::watermark::{WatermarkConfig, WatermarkTracker};
use crate::engine::window::EvidenceLimits;
use crate::engine::worker::DecodeWorker;
use crate::engine::{Engine, EngineConfig};
use crate::error::{Error, Result};
use crate::gen::{GenKind, GenOptions};
use crate::metrics::Metrics;
use crate::rules::RuleSet;
use crate::sink::writer::{MemoryDeadLetters, MemorySink};
use crate::sink::AlertSink;
use crate::source::memory::{Batching, MemorySource};
use crate::source::{PartitionRegistry, RawBatch, Source};

use super::gen::GenWhat;
use super::thread_cpu::{self, RoleCpu, RoleTotals};
use super::RuleArgs;

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Input files (JSON lines or flow lines), one record per line, loaded
    /// into memory. Without one, data is generated (see --kind).
    #[arg(long = "input", value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// What to generate when no --input is given (repeatable; default:
    /// cloudtrail and flows).
    #[arg(long = "kind", value_enum)]
    pub kinds: Vec<GenWhat>,
    /// Events to generate per kind (flows: 4 times this).
    #[arg(long, default_value_t = 400_000)]
    pub events: u64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Shard counts to run the engine with (comma-separated); 0 skips the
    /// engine runs.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub shards: Vec<usize>,
    /// Records per raw batch.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Engine runs: also cut a raw batch before it passes this many bytes
    /// (default: no byte limit).
    #[arg(long, value_name = "BYTES")]
    pub batch_bytes: Option<usize>,
    /// Runs of each measurement; the best is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Skip the naive baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Skip the inline run (engine runs only; the baseline ratio needs it).
    #[arg(long, conflicts_with = "ungated")]
    pub no_inline: bool,
    /// Also run the inline pipeline without the rule gate (every CloudTrail
    /// record read whole), alternating with the gated runs: what the gate
    /// saves, measured in the same run.
    #[arg(long)]
    pub ungated: bool,
    /// Replay semantics (windows stay open until the end of input) instead
    /// of service semantics (windows close as the watermark passes).
    #[arg(long)]
    pub replay: bool,
    /// Also report each engine run's CPU by thread role (source, decode,
    /// shard, sink), sampled from /proc every 10 ms.
    #[arg(long)]
    pub thread_cpu: bool,
    /// Also measure the RSS of this many distinct open count aggregates.
    #[arg(long, value_name = "N")]
    pub state_keys: Option<u64>,
    #[command(flatten)]
    pub rules: RuleArgs,
}

/// One measured run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunStats {
    pub elapsed: Duration,
    /// CPU time of the measured threads (on a shared machine, the wall
    /// clock also counts time other processes held the cores).
    pub cpu: Duration,
    pub events: u64,
    pub alerts: u64,
    pub peak_rss_bytes: u64,
    pub peak_open: u64,
    pub state_bytes_at_peak: u64,
    /// CPU time by thread role (`--thread-cpu`, engine runs only).
    pub roles: Option<RoleTotals>,
}

struct DataSet {
    name: String,
    records: Arc<[Vec<u8>]>,
    bytes: u64,
}

/// Runs `bench`.
pub fn execute(args: BenchArgs) -> Result<i32> {
    crate::logging::init("warn", crate::config::LogFormat::Human);
    let rules = super::replay::load_rules(&args.rules)?;
    // Measured first, in a fresh process: after the pipeline runs, freed
    // memory already counted in RSS would absorb the new state.
    let state_line = args.state_keys.map(|keys| state_cost(&rules, keys));
    let sets = load_sets(&args)?;
    outln!("# trailwatch bench")?;
    outln!(
        "rules: {} ({} cloudtrail, {} vpcflow, {} hostlog); batch {}; best of {}; {} semantics",
        rules.len(),
        rules.for_kind(crate::event::EventKind::CloudTrail).len(),
        rules.for_kind(crate::event::EventKind::VpcFlow).len(),
        rules.for_kind(crate::event::EventKind::HostLog).len(),
        args.batch,
        args.repeat.max(1),
        if args.replay { "replay" } else { "service" }
    )?;
    for set in &sets {
        outln!()?;
        outln!(
            "## {}: {} records, {:.1} MB, {:.0} bytes/record",
            set.name,
            set.records.len(),
            set.bytes as f64 / 1e6,
            set.bytes as f64 / set.records.len().max(1) as f64
        )?;
        outln!(
            "{:<12} {:>12} {:>9} {:>9} {:>12} {:>9} {:>9} {:>10} {:>11} {:>8}",
            "mode",
            "ev/cpu-s",
            "MB/cpu-s",
            "cpu s",
            "ev/wall-s",
            "wall s",
            "alerts",
            "peak RSS",
            "peak open",
            "B/open"
        )?;
        let inline = if args.ungated {
            // Alternating, so that the box's drift hits both alike.
            let ungated_rules = Arc::new(rules.without_gates());
            let (mut inline, mut ungated) = (None, None);
            for _ in 0..args.repeat.max(1) {
                let run = run_inline(&rules, set, args.batch, args.replay)?;
                inline = Some(faster(inline, run));
                let run = run_inline(&ungated_rules, set, args.batch, args.replay)?;
                ungated = Some(faster(ungated, run));
            }
            let (inline, ungated) = (inline.unwrap_or_default(), ungated.unwrap_or_default());
            print_row("inline", set, &inline)?;
            print_row("ungated", set, &ungated)?;
            outln!(
                "ratio inline/ungated: {:.2}x by CPU time",
                ungated.cpu.as_secs_f64() / inline.cpu.as_secs_f64().max(1e-9)
            )?;
            inline
        } else if args.no_inline {
            RunStats::default()
        } else {
            let inline = best_of(args.repeat, || {
                run_inline(&rules, set, args.batch, args.replay)
            })?;
            print_row("inline", set, &inline)?;
            inline
        };
        let batching = Batching {
            records: args.batch,
            bytes: args.batch_bytes.unwrap_or(usize::MAX),
        };
        for &shards in args.shards.iter().filter(|s| **s > 0) {
            let stats = best_of(args.repeat, || {
                run_engine(&rules, set, shards, batching, args.replay, args.thread_cpu)
            });
            print_row(&format!("engine {shards}"), set, &stats?)?;
        }
        if !args.no_baseline && !args.no_inline {
            let baseline = best_of(args.repeat, || Ok(run_baseline(&rules, set)))?;
            print_row("baseline", set, &baseline)?;
            outln!(
                "ratio inline/baseline: {:.1}x by CPU time, {:.1}x by wall time",
                baseline.cpu.as_secs_f64() / inline.cpu.as_secs_f64().max(1e-9),
                baseline.elapsed.as_secs_f64() / inline.elapsed.as_secs_f64().max(1e-9)
            )?;
        }
    }
    if let Some(line) = state_line {
        outln!()?;
        outln!("{line}")?;
    }
    Ok(0)
}

fn load_sets(args: &BenchArgs) -> Result<Vec<DataSet>> {
    let mut sets = Vec::new();
    for path in &args.inputs {
        let data = std::fs::read(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        let records: Vec<Vec<u8>> = data
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        sets.push(DataSet {
            name: path.display().to_string(),
            bytes: records.iter().map(|r| r.len() as u64 + 1).sum(),
            records: records.into(),
        });
    }
    if !sets.is_empty() {
        return Ok(sets);
    }
    let kinds = if args.kinds.is_empty() {
        vec![GenWhat::Cloudtrail, GenWhat::Flows]
    } else {
        args.kinds.clone()
    };
    for what in kinds {
        let (kind, count, name) = match what {
            GenWhat::Cloudtrail => (GenKind::CloudTrail, args.events, "cloudtrail"),
            GenWhat::Flows => (GenKind::Flows, args.events * 4, "flows"),
            GenWhat::Hostlog => (GenKind::HostLog, args.events, "hostlog"),
        };
        let options = GenOptions {
            count,
            seed: args.seed,
            ..GenOptions::default()
        };
        let records = crate::gen::generate_records(kind, &options);
        sets.push(DataSet {
            name: format!("{name} (generated, seed {})", args.seed),
            bytes: records.iter().map(|r| r.len() as u64 + 1).sum(),
            records: records.into(),
        });
    }
    Ok(sets)
}

fn best_of(repeat: usize, mut run: impl FnMut() -> Result<RunStats>) -> Result<RunStats> {
    let mut best: Option<RunStats> = None;
    for _ in 0..repeat.max(1) {
        best = Some(faster(best, run()?));
    }
    best.ok_or_else(|| Error::Internal("no run".into()))
}

/// The run of the two that took less CPU time.
fn faster(best: Option<RunStats>, run: RunStats) -> RunStats {
    match best {
        Some(best) if best.cpu <= run.cpu => best,
        _ => run,
    }
}

fn print_row(mode: &str, set: &DataSet, stats: &RunStats) -> Result<()> {
    let secs = stats.elapsed.as_secs_f64().max(1e-9);
    let cpu = stats.cpu.as_secs_f64().max(1e-9);
    let per_open = if stats.peak_open > 0 {
        format!(
            "{:.0}",
            stats.state_bytes_at_peak as f64 / stats.peak_open as f64
        )
    } else {
        "-".to_string()
    };
    outln!(
        "{:<12} {:>12.0} {:>9.1} {:>9.3} {:>12.0} {:>9.3} {:>9} {:>8.0}MB {:>11} {:>8}",
        mode,
        stats.events as f64 / cpu,
        set.bytes as f64 / cpu / 1e6,
        cpu,
        stats.events as f64 / secs,
        secs,
        stats.alerts,
        stats.peak_rss_bytes as f64 / 1e6,
        stats.peak_open,
        per_open
    )?;
    if let Some(roles) = &stats.roles {
        outln!("{}", thread_cpu::report(roles, stats.elapsed))?;
    }
    Ok(())
}

/// On-CPU nanoseconds of the calling thread (`/proc/thread-self/schedstat`).
pub fn thread_cpu() -> Duration {
    schedstat_ns("/proc/thread-self/schedstat")
}

/// On-CPU time of every thread of the process, alive now.
pub fn process_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .map(|task| schedstat_ns(&format!("{}/schedstat", task.path().display())))
        .sum()
}

/// The on-CPU time in a `schedstat` file (zero when unreadable).
pub(crate) fn schedstat_ns(path: &str) -> Duration {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Process CPU time from `/proc/self/stat` (user + system, clock ticks of
/// 10 ms), which also counts threads that have exited.
fn process_cpu_ticks() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall.
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Resets the process's peak RSS (Linux `clear_refs` 5); best effort.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `/proc/self/status` figure in bytes (`VmHWM`, `VmRSS`); 0 if unknown.
pub fn proc_status_bytes(field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

pub fn watermark_config(replay: bool) -> WatermarkConfig {
    WatermarkConfig {
        replay,
        ..WatermarkConfig::default()
    }
}

/// Encodes alerts as the JSON-lines sink would (so alert cost is counted).
fn encode_alerts(alerts: &[Alert]) -> usize {
    alerts
        .iter()
        .map(|a| a.ocsf_json().map_or(0, |line| line.len()))
        .sum()
}

/// The decode worker and one shard driven on the calling thread: the whole
/// pipeline (decode, rules, routing, windows, alerts) on one core, with no
/// thread hand-off. Used by `bench`, the criterion and allocation benches.
pub struct InlinePipeline {
    metrics: Arc<Metrics>,
    worker: DecodeWorker,
    shard: Shard,
    shard_rx: crossbeam_channel::Receiver<ShardMsg>,
    dead_rx: crossbeam_channel::Receiver<crate::engine::worker::DeadLetterBatch>,
    partition: crate::source::PartitionId,
    offset: u64,
    /// Alerts emitted so far.
    pub alerts: u64,
    /// Encode alerts to OCSF JSON as a sink would.
    pub encode: bool,
}

impl InlinePipeline {
    /// A pipeline for `rules`; `replay` keeps windows open until the end.
    pub fn new(rules: &Arc<RuleSet>, replay: bool) -> Self {
        let rule_ids = rules.rules().iter().map(|r| r.id.clone()).collect();
        let metrics = Metrics::new(1, 1, rule_ids);
        let tracker = CommitTracker::new(1);
        let watermark = Arc::new(WatermarkTracker::new(watermark_config(replay)));
        let registry = Arc::new(PartitionRegistry::default());
        let (shard_tx, shard_rx) = crossbeam_channel::unbounded();
        let (dead_tx, dead_rx) = crossbeam_channel::unbounded();
        let evidence = EvidenceLimits::default();
        let worker = DecodeWorker::new(
            Arc::clone(rules),
            DecodeConfig::default(),
            watermark,
            tracker.clone(),
            vec![shard_tx],
            Arc::clone(&metrics.decoders[0]),
            Arc::clone(&metrics),
            Arc::clone(&registry),
            dead_tx,
            evidence.max_sample_bytes,
        );
        let shard = Shard::new(
            0,
            Arc::clone(rules),
            ShardConfig {
                max_open_windows: EngineConfig::default().max_open_windows,
                max_state_bytes: usize::MAX,
                evidence,
                eager_sliding: false,
                drop_revoked: false,
            },
            tracker,
            Arc::clone(&metrics.shards[0]),
        );
        let partition = registry.id("memory", "bench");
        InlinePipeline {
            metrics,
            worker,
            shard,
            shard_rx,
            dead_rx,
            partition,
            offset: 0,
            alerts: 0,
            encode: true,
        }
    }

    /// Runs one raw batch of `records` through the pipeline.
    pub fn feed(&mut self, records: &[Vec<u8>]) {
        // Sized up front, as a source reading a known amount would: the
        // harness should not add its own growth to the per-batch figures.
        let bytes = records.iter().map(Vec::len).sum();
        let mut raw = RawBatch::with_capacity(self.partition, records.len(), bytes);
        for record in records {
            raw.push(record, self.offset);
            self.offset += 1;
        }
        self.worker.process(raw);
        while let Ok(message) = self.shard_rx.try_recv() {
            match message {
                ShardMsg::Matches(matches) => self.shard.process(matches),
                ShardMsg::Partials(partials) => self.shard.process_partials(partials),
                ShardMsg::FlushAll { until } => self.shard.flush_all(until),
            }
        }
        self.drain();
    }

    /// Closes every window (end of input).
    pub fn finish(&mut self) {
        self.shard.flush_all(None);
        self.drain();
    }

    fn drain(&mut self) {
        let emitted = self.shard.take_output();
        self.alerts += emitted.len() as u64;
        if self.encode && !emitted.is_empty() {
            let alerts: Vec<Alert> = emitted.into_iter().map(|e| e.alert).collect();
            encode_alerts(&alerts);
        }
        while self.dead_rx.try_recv().is_ok() {}
    }

    /// Open window aggregates.
    pub fn open_windows(&self) -> usize {
        self.shard.open_windows()
    }

    /// The shard's estimate of its state bytes.
    pub fn state_bytes(&self) -> u64 {
        self.metrics.shards[0].state_bytes.load(Ordering::Relaxed)
    }

    /// Events decoded so far.
    pub fn events(&self) -> u64 {
        self.metrics.sum(|w| &w.events)
    }
}

fn run_inline(rules: &Arc<RuleSet>, set: &DataSet, batch: usize, replay: bool) -> Result<RunStats> {
    let mut pipeline = InlinePipeline::new(rules, replay);
    let mut stats = RunStats::default();
    reset_peak_rss();
    let started = Instant::now();
    let cpu_started = thread_cpu();
    for chunk in set.records.chunks(batch.max(1)) {
        pipeline.feed(chunk);
        let open = pipeline.open_windows() as u64;
        if open > stats.peak_open {
            stats.peak_open = open;
            stats.state_bytes_at_peak = pipeline.state_bytes();
        }
    }
    pipeline.finish();
    stats.elapsed = started.elapsed();
    stats.cpu = thread_cpu().saturating_sub(cpu_started);
    stats.events = pipeline.events();
    stats.alerts = pipeline.alerts;
    stats.peak_rss_bytes = proc_status_bytes("VmHWM");
    Ok(stats)
}

/// A memory sink that also encodes each alert to OCSF JSON.
struct EncodingSink {
    inner: MemorySink,
}

impl AlertSink for EncodingSink {
    fn name(&self) -> &str {
        "memory"
    }

    fn send(&mut self, alerts: &[Alert]) -> Result<()> {
        encode_alerts(alerts);
        self.inner.send(alerts)
    }
}

fn run_engine(
    rules: &Arc<RuleSet>,
    set: &DataSet,
    shards: usize,
    batching: Batching,
    replay: bool,
    by_role: bool,
) -> Result<RunStats> {
    let config = EngineConfig {
        shards,
        decoders: shards,
        watermark: watermark_config(replay),
        flush_on_end: true,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, Arc::clone(rules));
    let metrics = engine.metrics();
    let sink = MemorySink::default();
    let stored = Arc::clone(&sink.alerts);
    // One input partition per decode worker, as a Kafka topic with that
    // many partitions would give (a partition is decoded on one worker),
    // each read by its own source thread: one thread copying every record
    // into raw batches capped the engine near 3 GB/s (BENCHMARKS.md,
    // "Scaling across cores").
    let sources: Vec<Box<dyn Source>> =
        MemorySource::lanes("bench", Arc::clone(&set.records), batching, shards)
            .into_iter()
            .map(|lane| Box::new(lane) as Box<dyn Source>)
            .collect();
    let done = Arc::new(AtomicBool::new(false));
    reset_peak_rss();
    let sampler = {
        let metrics = Arc::clone(&metrics);
        let done = Arc::clone(&done);
        let mut roles = by_role.then(RoleCpu::start);
        std::thread::spawn(move || {
            let mut peak = (0u64, 0u64);
            let mut samples = 0u32;
            while !done.load(Ordering::Relaxed) {
                samples += 1;
                if let Some(roles) = roles.as_mut().filter(|_| samples % 2 == 0) {
                    roles.sample();
                }
                let open: u64 = metrics
                    .shards
                    .iter()
                    .map(|s| s.open_windows.load(Ordering::Relaxed))
                    .sum();
                if open > peak.0 {
                    let bytes = metrics
                        .shards
                        .iter()
                        .map(|s| s.state_bytes.load(Ordering::Relaxed))
                        .sum();
                    peak = (open, bytes);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (peak, roles.map(|roles| roles.totals()))
        })
    };
    let cpu_started = process_cpu_ticks();
    let summary = engine.run(
        sources,
        Box::new(EncodingSink { inner: sink }),
        Box::new(MemoryDeadLetters::default()),
    )?;
    let cpu = process_cpu_ticks().saturating_sub(cpu_started);
    done.store(true, Ordering::Relaxed);
    let ((peak_open, state_bytes_at_peak), roles) = sampler.join().unwrap_or_default();
    let alerts = stored.lock().map(|a| a.len()).unwrap_or(0) as u64;
    Ok(RunStats {
        elapsed: summary.elapsed,
        cpu,
        events: metrics.sum(|w| &w.events),
        alerts,
        peak_rss_bytes: proc_status_bytes("VmHWM"),
        peak_open,
        state_bytes_at_peak,
        roles,
    })
}

fn run_baseline(rules: &Arc<RuleSet>, set: &DataSet) -> RunStats {
    let mut baseline = Baseline::new(Arc::clone(rules));
    reset_peak_rss();
    let started = Instant::now();
    let cpu_started = thread_cpu();
    for record in set.records.iter() {
        baseline.process(record);
    }
    baseline.finish();
    RunStats {
        elapsed: started.elapsed(),
        cpu: thread_cpu().saturating_sub(cpu_started),
        events: baseline.events,
        alerts: baseline.alerts,
        peak_rss_bytes: proc_status_bytes("VmHWM"),
        peak_open: baseline.open_windows() as u64,
        state_bytes_at_peak: 0,
        roles: None,
    }
}

/// Feeds `keys` distinct keys of one count rule into a shard and reports
/// the RSS growth per open aggregate (key bytes included and excluded).
fn state_cost(rules: &Arc<RuleSet>, keys: u64) -> String {
    let Some(rule) = rules
        .rules()
        .iter()
        .position(|r| r.aggregate == crate::rules::compile::Aggregate::Count && r.eager)
        .and_then(|i| u16::try_from(i).ok())
    else {
        return "state: no eager count rule loaded".to_string();
    };
    let rule_ids = rules.rules().iter().map(|r| r.id.clone()).collect();
    let metrics = Metrics::new(1, 1, rule_ids);
    let tracker = CommitTracker::new(1);
    let mut shard = Shard::new(
        0,
        Arc::clone(rules),
        ShardConfig {
            max_open_windows: usize::MAX,
            max_state_bytes: usize::MAX,
            evidence: EvidenceLimits {
                max_samples: 0,
                max_sample_bytes: 0,
            },
            eager_sliding: false,
            drop_revoked: false,
        },
        tracker,
        Arc::clone(&metrics.shards[0]),
    );
    let window_ms = rules.rule(rule).window_ms;
    let before = proc_status_bytes("VmRSS");
    let started = Instant::now();
    let mut key_bytes = 0u64;
    let mut next = 0u64;
    while next < keys {
        let mut batch = MatchBatch {
            watermark_ms: i64::MIN,
            ..MatchBatch::default()
        };
        for _ in 0..4096.min(keys - next) {
            // 12 bytes: fits CompactString's inline buffer, like an account id.
            let key = batch.intern(&format!("{next:012}"));
            key_bytes += 12;
            batch.matches.push(Match {
                rule,
                time_ms: window_ms / 2,
                value: 1.0,
                distinct_hash: 0,
                key,
                sample: crate::engine::shard::Span::NONE,
                id: crate::engine::shard::Span::NONE,
                account: crate::engine::shard::Span::NONE,
                region: crate::engine::shard::Span::NONE,
                partition: 0,
                offset: next,
            });
            next += 1;
        }
        shard.process(batch);
        shard.take_output();
    }
    let after = proc_status_bytes("VmRSS");
    let open = shard.open_windows() as u64;
    let grown = after.saturating_sub(before);
    format!(
        "## state: {open} open count aggregates of `{}` in {:.2}s: RSS +{:.0} MB, {:.0} bytes/aggregate ({:.0} excluding {} key bytes each)",
        rules.rule(rule).id,
        started.elapsed().as_secs_f64(),
        grown as f64 / 1e6,
        grown as f64 / open.max(1) as f64,
        grown.saturating_sub(key_bytes) as f64 / open.max(1) as f64,
        12
    )
}
