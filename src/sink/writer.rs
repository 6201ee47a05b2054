//! Line-oriented sinks: stdout, stderr and files.
//!
//! Alerts are written as one OCSF JSON object per line. Dead letters are
//! JSON lines with the reason, position and the original bytes (as UTF-8
//! text when valid, base64 otherwise; a dead letter cut to fit another
//! output also has `truncated: true` and `original_bytes`), or a one-line
//! human summary on stderr in replay. Lines have no size limit, so these
//! sinks never cut a dead letter. Each batch is flushed before `send`
//! returns.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use base64::Engine as _;
use serde_json::json;

use super::{AlertSink, DeadLetter, DeadLetterSink};
use crate::alert::Alert;
use crate::error::{Error, Result};

/// Writes each line and a newline, then flushes.
fn write_all_lines(out: &mut impl Write, lines: &[impl AsRef<[u8]>]) -> std::io::Result<()> {
    for line in lines {
        out.write_all(line.as_ref())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Where a line sink writes.
pub enum LineTarget {
    Stdout,
    Stderr,
    File(BufWriter<File>, String),
}

impl LineTarget {
    /// Opens `path` for appending (created if absent).
    pub fn append(path: &Path) -> Result<LineTarget> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path.display().to_string(), e))?;
        Ok(LineTarget::File(
            BufWriter::new(file),
            path.display().to_string(),
        ))
    }

    fn write_lines(&mut self, lines: &[impl AsRef<[u8]>]) -> Result<()> {
        let io_error = |target: &str, e: std::io::Error| match e.kind() {
            // The reader is gone (a closed pipe): retrying cannot help.
            std::io::ErrorKind::BrokenPipe => {
                Error::OutputClosed(format!("cannot write to {target}: {e}"))
            }
            _ => Error::Sink(format!("cannot write to {target}: {e}")),
        };
        match self {
            LineTarget::Stdout => write_all_lines(&mut std::io::stdout().lock(), lines)
                .map_err(|e| io_error("stdout", e)),
            LineTarget::Stderr => write_all_lines(&mut std::io::stderr().lock(), lines)
                .map_err(|e| io_error("stderr", e)),
            LineTarget::File(writer, path) => {
                write_all_lines(writer, lines).map_err(|e| io_error(path, e))?;
                writer.get_ref().sync_data().map_err(|e| io_error(path, e))
            }
        }
    }

    fn label(&self) -> &str {
        match self {
            LineTarget::Stdout => "stdout",
            LineTarget::Stderr => "stderr",
            LineTarget::File(_, _) => "file",
        }
    }
}

/// Writes alerts as OCSF JSON lines.
pub struct JsonLinesAlertSink {
    target: LineTarget,
}

impl JsonLinesAlertSink {
    /// A sink writing to `target`.
    pub fn new(target: LineTarget) -> Self {
        JsonLinesAlertSink { target }
    }
}

impl AlertSink for JsonLinesAlertSink {
    fn name(&self) -> &str {
        self.target.label()
    }

    fn send(&mut self, alerts: &[Alert]) -> Result<()> {
        let lines = alerts
            .iter()
            .map(Alert::ocsf_json)
            .collect::<std::result::Result<Vec<Vec<u8>>, _>>()
            .map_err(|e| Error::Internal(format!("cannot encode alert: {e}")))?;
        self.target.write_lines(&lines)
    }
}

/// Dead-letter output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterFormat {
    /// JSON lines with the original bytes.
    Json,
    /// One human-readable line per record (replay on stderr).
    Human,
}

/// Writes dead letters as lines.
pub struct LineDeadLetterSink {
    target: LineTarget,
    format: DeadLetterFormat,
}

impl LineDeadLetterSink {
    /// A sink writing `format` lines to `target`.
    pub fn new(target: LineTarget, format: DeadLetterFormat) -> Self {
        LineDeadLetterSink { target, format }
    }
}

/// The JSON form of a dead letter.
pub fn dead_letter_json(record: &DeadLetter) -> serde_json::Value {
    let (encoding, original) = match std::str::from_utf8(&record.bytes) {
        Ok(text) => ("utf8", text.to_string()),
        Err(_) => (
            "base64",
            base64::engine::general_purpose::STANDARD.encode(&record.bytes),
        ),
    };
    let mut value = json!({
        "source": record.partition,
        "offset": record.offset,
        "error_class": record.class.as_str(),
        "reason": record.reason,
        "detail": record.detail,
        "encoding": encoding,
        "original": original,
    });
    if let (Some(original_len), Some(object)) = (record.original_len, value.as_object_mut()) {
        object.insert("truncated".into(), true.into());
        object.insert("original_bytes".into(), original_len.into());
    }
    value
}

impl DeadLetterSink for LineDeadLetterSink {
    fn name(&self) -> &str {
        self.target.label()
    }

    fn send(&mut self, records: &[DeadLetter]) -> Result<()> {
        let lines: Vec<String> = records
            .iter()
            .map(|r| match self.format {
                DeadLetterFormat::Json => dead_letter_json(r).to_string(),
                DeadLetterFormat::Human => {
                    let preview: String =
                        String::from_utf8_lossy(&r.bytes[..r.bytes.len().min(80)])
                            .chars()
                            .map(|c| if c.is_control() { '.' } else { c })
                            .collect();
                    format!(
                        "dead-letter {}#{} {}: {} ({} bytes: {preview})",
                        r.partition,
                        r.offset,
                        r.reason,
                        r.detail,
                        r.bytes.len()
                    )
                }
            })
            .collect();
        self.target.write_lines(&lines)
    }
}

/// Keeps alerts in memory (tests, `rules test`, benchmarks).
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    pub alerts: std::sync::Arc<std::sync::Mutex<Vec<Alert>>>,
}

impl AlertSink for MemorySink {
    fn name(&self) -> &str {
        "memory"
    }

    fn send(&mut self, alerts: &[Alert]) -> Result<()> {
        let mut stored = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        stored.extend_from_slice(alerts);
        Ok(())
    }
}

/// Keeps dead letters in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryDeadLetters {
    pub records: std::sync::Arc<std::sync::Mutex<Vec<DeadLetter>>>,
}

impl DeadLetterSink for MemoryDeadLetters {
    fn name(&self) -> &str {
        "memory"
    }

    fn send(&mut self, records: &[DeadLetter]) -> Result<()> {
        let mut stored = self.records.lock().unwrap_or_else(|p| p.into_inner());
        stored.extend_from_slice(records);
        Ok(())
    }
}
