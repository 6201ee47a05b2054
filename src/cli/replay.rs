//! `trailwatch replay PATH...`: the embedded default, no infrastructure.
//!
//! Replay reads finite, known input. Archives are often read region by
//! region, days out of order, so nothing is ever dropped as late: windows
//! stay open until the end of input (unless the state cap forces an early
//! close, which is counted and reported), and eager alerts still fire as
//! thresholds are crossed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, EngineConfig};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::rules::RuleSet;
use crate::sink::writer::{DeadLetterFormat, JsonLinesAlertSink, LineDeadLetterSink, LineTarget};
use crate::source::file::{FileInput, FileSource};

use super::RuleArgs;

/// Arguments of `replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Files, directories (recursive) or `-` for stdin; `.gz` is handled.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Shard workers (default: available cores).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Write alerts to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write dead letters as JSON lines to this file instead of a
    /// one-line summary each on stderr.
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// The VPC flow log format of the input when it is not the default v2
    /// one and no header line declares it (flow logs read through
    /// CloudWatch Logs have none), as in AWS's `LogFormat`:
    /// `'${version} ${vpc-id} ${srcaddr} ...'`.
    #[arg(long, value_name = "FORMAT")]
    pub flow_format: Option<String>,
    /// Cap on open window aggregates (oldest windows close early beyond it).
    #[arg(long)]
    pub max_open_windows: Option<usize>,
    /// Do not print the summary.
    #[arg(long)]
    pub quiet: bool,
    /// Serve `/metrics`, `/livez` and `/readyz` on this address (e.g.
    /// `127.0.0.1:9464`) while replaying.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// With `--metrics-listen`: keep serving this many seconds after the
    /// replay ends, so a scraper can read the final values (SIGINT or
    /// SIGTERM ends it early).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub linger: u64,
}

/// Loads and compiles rules per the shared flags.
pub fn load_rules(args: &RuleArgs) -> Result<Arc<RuleSet>> {
    let loaded = crate::rules::load_all(&args.rules, args.no_builtin)?;
    let set = crate::rules::compile_all(&loaded).map_err(|p| Error::Rules(p.to_string()))?;
    Ok(Arc::new(set))
}

/// Runs `replay`.
pub fn execute(args: ReplayArgs) -> Result<i32> {
    crate::logging::init("warn", crate::config::LogFormat::Human);
    let rules = load_rules(&args.rules)?;
    let mut config = EngineConfig::default();
    config.watermark.replay = true;
    config.flush_on_end = true;
    if let Some(shards) = args.shards {
        config.shards = shards.max(1);
        config.decoders = shards.max(1);
    }
    if let Some(cap) = args.max_open_windows {
        config.max_open_windows = cap;
    }
    if let Some(format) = &args.flow_format {
        let format = crate::decode::flow::FlowFormat::parse(format)
            .map_err(|e| Error::Config(format!("--flow-format: {e}")))?;
        config.decode.flow_format = Some(format);
    }
    let inputs: Vec<FileInput> = args.paths.iter().map(|p| FileInput::from_arg(p)).collect();
    let source =
        FileSource::new(&inputs, false)?.with_max_record_bytes(config.decode.max_record_bytes);
    let alert_target = match &args.output {
        Some(path) => LineTarget::append(path)?,
        None => LineTarget::Stdout,
    };
    let (dead_target, dead_format) = match &args.dead_letter {
        Some(path) => (LineTarget::append(path)?, DeadLetterFormat::Json),
        None => (LineTarget::Stderr, DeadLetterFormat::Human),
    };
    let engine = Engine::new(config, Arc::clone(&rules));
    let http = match &args.metrics_listen {
        Some(listen) => {
            crate::http::HttpServer::start(listen, engine.metrics(), engine.registry())?
        }
        None => None,
    };
    let summary = engine.run(
        vec![Box::new(source)],
        Box::new(JsonLinesAlertSink::new(alert_target)),
        Box::new(LineDeadLetterSink::new(dead_target, dead_format)),
    )?;
    if !args.quiet {
        err!(
            "{}",
            render_summary(&engine.metrics(), &rules, summary.elapsed)
        );
    }
    if http.is_some() && args.linger > 0 {
        linger(Duration::from_secs(args.linger))?;
    }
    drop(http);
    Ok(0)
}

/// Sleeps up to `duration`, ending early on SIGINT or SIGTERM.
fn linger(duration: Duration) -> Result<()> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Error::Internal(format!("cannot install signal handler: {e}")))?;
    }
    let until = std::time::Instant::now() + duration;
    while std::time::Instant::now() < until && !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The human summary printed after a replay.
pub fn render_summary(metrics: &Metrics, rules: &RuleSet, elapsed: Duration) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let records = metrics.sum(|w| &w.records);
    let bytes = metrics.sum(|w| &w.bytes);
    let events = metrics.sum(|w| &w.events);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(out, "── trailwatch replay summary ──");
    let _ = writeln!(out, "records read        {records}");
    let _ = writeln!(out, "events decoded      {events}");
    let _ = writeln!(out, "  ruled out by gate {}", metrics.sum(|w| &w.ruled_out));
    let failed = metrics.failed_by_reason();
    let failed_total: u64 = failed.iter().map(|(_, n)| n).sum();
    let _ = writeln!(out, "records failed      {failed_total}");
    for (reason, n) in failed.iter().filter(|(_, n)| *n > 0) {
        let _ = writeln!(out, "  {:<26}{n}", reason.as_str());
    }
    let _ = writeln!(
        out,
        "dead-lettered       {}",
        metrics.sum(|w| &w.dead_lettered)
    );
    let _ = writeln!(
        out,
        "control messages    {}",
        metrics.sum(|w| &w.control_messages)
    );
    let _ = writeln!(
        out,
        "digest files        {}",
        metrics.sum(|w| &w.digest_files)
    );
    let _ = writeln!(out, "late rule matches   {}", metrics.sum(|w| &w.late));
    let _ = writeln!(out, "future-clamped      {}", metrics.sum(|w| &w.clamped));
    let _ = writeln!(out, "windows shed early  {}", metrics.sum(|w| &w.shed));
    let mut total_alerts = 0;
    let mut lines = Vec::new();
    for (index, rule) in rules.rules().iter().enumerate() {
        let n = metrics.alerts.get(index, crate::alert::Activity::Create);
        total_alerts += n;
        if n > 0 {
            lines.push(format!("  {:<40}{n}", rule.id));
        }
    }
    let _ = writeln!(out, "alerts (create)     {total_alerts}");
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "throughput          {:.0} records/s, {:.1} MB/s over {:.2}s",
        records as f64 / secs,
        bytes as f64 / secs / 1e6,
        secs
    );
    out
}
