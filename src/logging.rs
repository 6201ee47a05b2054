//! Log set-up: `tracing` with an env-filter and human or JSON lines.
//!
//! `RUST_LOG` overrides the configured level. Logs go to stderr, so they
//! never mix with alerts on stdout. Messages are lowercase with structured
//! fields; secrets are never passed to a log macro (config types that hold
//! secrets redact them in `Debug`, and `run --check` prints the config
//! through [`crate::cli::run::redact`]).
//!
//! Each component logs inside its own span, so every line says where it
//! came from: `source{name=..}`, `sink{name=..}`, `http{addr=..}`. Human
//! lines are coloured only when stderr is a terminal; JSON lines carry the
//! current span as a field and are meant for log shippers.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; later calls are no-ops.
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true)
        // A log line that cannot be written (stderr is a closed pipe) has
        // nowhere else to go: by default the subscriber reports that with
        // `eprintln!`, which panics on the same closed stderr.
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
