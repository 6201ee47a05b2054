//! `trailwatch gen cloudtrail|flows|hostlog N`: deterministic benchmark and
//! demo data (see [`crate::gen`]).

use std::io::Write;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::gen::{GenKind, GenOptions};

/// Which data to generate.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GenWhat {
    /// CloudTrail records, JSON lines.
    Cloudtrail,
    /// VPC flow records, default v2 lines.
    Flows,
    /// Host auth logs in CloudWatch Logs envelopes, JSON lines.
    Hostlog,
}

/// Arguments of `gen`.
#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// What to generate.
    #[arg(value_enum)]
    pub what: GenWhat,
    /// Number of events.
    pub count: u64,
    /// Seed of the random stream (same seed, same bytes).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Event time of the first event (RFC 3339).
    #[arg(long, default_value = "2024-03-01T12:00:00Z")]
    pub start: String,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Runs `gen`.
pub fn execute(args: GenArgs) -> Result<i32> {
    let start_ms = crate::decode::cloudtrail::parse_rfc3339_ms(&args.start)
        .ok_or_else(|| Error::Config(format!("--start {:?} is not RFC 3339", args.start)))?;
    let options = GenOptions {
        count: args.count,
        seed: args.seed,
        start_ms,
    };
    let kind = match args.what {
        GenWhat::Cloudtrail => GenKind::CloudTrail,
        GenWhat::Flows => GenKind::Flows,
        GenWhat::Hostlog => GenKind::HostLog,
    };
    match &args.out {
        Some(path) => {
            let name = path.display().to_string();
            let mut file = std::fs::File::create(path).map_err(|e| Error::io(&name, e))?;
            crate::gen::generate(kind, &options, &mut file).map_err(|e| Error::io(&name, e))?;
            file.flush().map_err(|e| Error::io(&name, e))?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            crate::gen::generate(kind, &options, &mut lock).map_err(|e| Error::io("stdout", e))?;
        }
    }
    Ok(0)
}
