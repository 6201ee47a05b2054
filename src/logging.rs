//! Log set-up: `tracing` with an env-filter and human or JSON lines.
//!
//! `RUST_LOG` overrides the configured level, when it passes the same
//! check as `log.level` ([`crate::config::check_log_level`]): one that
//! does not (`RUST_LOG=verbose` would filter out every message, warnings
//! included) is ignored with a warning, and the configured level applies.
//! Logs go to stderr, so they
//! never mix with alerts on stdout. Messages are lowercase with structured
//! fields; secrets are never passed to a log macro (config types that hold
//! secrets redact them in `Debug`, and `run --check` prints the config
//! through [`crate::cli::run::redact`]).
//!
//! Each component logs inside its own span, so every line says where it
//! came from: `source{component=..}`, `sink{component=..}`, `http{addr=..}`.
//! Human lines are coloured only when stderr is a terminal; JSON lines
//! carry the current span as a field and are meant for log shippers. A
//! span field is never called `name`: JSON lines write the span's own name
//! under that key, and a second `name` key would hide one of them.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Set once JSON logging is installed: the command's fatal error then goes
/// out as a JSON line too, not as the only plain line a log shipper drops.
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// Whether logs are JSON lines (set by [`init`]).
pub fn json_logs() -> bool {
    JSON_LOGS.load(Ordering::Relaxed)
}

/// The directives to log with: `RUST_LOG` when it is set and valid, else
/// `level`; and why `RUST_LOG` was ignored, if it was.
fn directives(level: &str, env: Option<&str>) -> (String, Option<String>) {
    match env.map(str::trim).filter(|env| !env.is_empty()) {
        None => (level.to_string(), None),
        Some(env) => match crate::config::check_log_level(env) {
            Ok(()) => (env.to_string(), None),
            Err(why) => (
                level.to_string(),
                Some(format!("RUST_LOG={env:?} ignored: {why}")),
            ),
        },
    }
}

/// Installs the global subscriber; later calls are no-ops.
pub fn init(level: &str, format: LogFormat) {
    let env = std::env::var("RUST_LOG").ok();
    let (directives, ignored) = directives(level, env.as_deref());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
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
        LogFormat::Json => {
            let installed = builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .try_init();
            JSON_LOGS.store(installed.is_ok(), Ordering::Relaxed);
            installed
        }
    };
    if let Some(ignored) = ignored {
        tracing::warn!(level, "{ignored}; logging at the configured level");
    }
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn an_invalid_rust_log_is_ignored_for_the_configured_level() {
        assert_eq!(directives("info", None), ("info".to_string(), None));
        assert_eq!(directives("info", Some(" ")), ("info".to_string(), None));
        assert_eq!(
            directives("info", Some("trailwatch=debug,rdkafka=warn")),
            ("trailwatch=debug,rdkafka=warn".to_string(), None)
        );
        // A bare word that is not a level would silence every message.
        let (used, ignored) = directives("warn", Some("verbose"));
        assert_eq!(used, "warn");
        let ignored = ignored.expect("a warning");
        assert!(
            ignored.starts_with("RUST_LOG=\"verbose\" ignored"),
            "{ignored}"
        );
    }

    /// The shipped pod leaves the level to the ConfigMap's `log.level`:
    /// a `RUST_LOG` in its environment would override it.
    #[test]
    fn the_shipped_deployment_does_not_set_rust_log() {
        let manifest: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(include_str!("../k8s/base/deployment.yaml")).unwrap();
        let containers = manifest["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .expect("containers");
        assert!(!containers.is_empty());
        for container in containers {
            let env = container["env"].as_sequence().cloned().unwrap_or_default();
            assert!(
                !env.iter()
                    .any(|var| var["name"].as_str() == Some("RUST_LOG")),
                "{env:?}"
            );
        }
    }
}
