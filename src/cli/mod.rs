//! The command line: `replay`, `run`, `rules`, `import`.
//!
//! # Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (dead-lettered records do not change this; see the summary) |
//! | 1 | `rules test`: at least one rule test failed |
//! | 2 | usage or configuration error (`run --check` included) |
//! | 3 | rule file error (syntax, unknown key, bad filter) |
//! | 4 | input/output error (unreadable file, sink failed at shutdown, stdout closed) |
//! | 70 | internal error (a bug) |

/// `print!` for a command's report: a closed stdout (`trailwatch rules list
/// | head -1`) is an i/o error on `stdout` (exit 4), never a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*).map_err(|e| $crate::error::Error::io("stdout", e))
    }};
}

/// `println!` for a command's report (see `out!`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(|e| $crate::error::Error::io("stdout", e))
    }};
}

/// `eprint!` without its panic when stderr is closed (`2>&-`): there is
/// nowhere left to report that, so the write error is dropped. The exit
/// status still tells what happened.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprintln!` without its panic when stderr is closed (see `err!`).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod backends;
pub mod bench;
pub mod gen;
pub mod import;
pub mod replay;
pub mod rules_cmd;
pub mod run;
pub mod scaleout;
pub mod thread_cpu;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// trailwatch: real-time security detection for AWS CloudTrail, VPC Flow
/// Logs and host auth logs.
#[derive(Debug, Parser)]
#[command(name = "trailwatch", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Rule-loading flags shared by several commands.
#[derive(Debug, Clone, clap::Args)]
pub struct RuleArgs {
    /// Extra rule directory (repeatable). A rule with an existing id
    /// replaces it; `enabled: false` disables it.
    #[arg(long = "rules", value_name = "DIR")]
    pub rules: Vec<PathBuf>,
    /// Do not load the built-in rule pack.
    #[arg(long)]
    pub no_builtin: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay files, directories or `-` (stdin) through the rules; alerts
    /// go to stdout as OCSF JSON lines, a summary to stderr.
    Replay(replay::ReplayArgs),
    /// Run as a long-lived service from a config file.
    Run(run::RunArgs),
    /// List, check or test rules.
    #[command(subcommand)]
    Rules(rules_cmd::RulesCommand),
    /// Import CloudWatch metric filters and alarms (CloudFormation, AWS
    /// CLI JSON, Terraform HCL or JSON) as rule files.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Generate deterministic benchmark data.
    Gen(gen::GenArgs),
    /// Benchmark the whole pipeline against a naive baseline.
    Bench(bench::BenchArgs),
}

/// Runs the parsed command; returns the process exit code.
pub fn main_with(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Replay(args) => replay::execute(args),
        Command::Run(args) => run::execute(args),
        Command::Rules(cmd) => rules_cmd::execute(cmd),
        Command::Import(cmd) => import::execute(cmd),
        Command::Gen(args) => gen::execute(args),
        Command::Bench(args) => bench::execute(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            let code = error.exit_code();
            if crate::logging::json_logs() && tracing::enabled!(tracing::Level::ERROR) {
                tracing::error!(exit_code = code, "trailwatch: {error}");
            } else {
                errln!("trailwatch: {error}");
            }
            code
        }
    }
}
