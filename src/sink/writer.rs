//! Line-oriented sinks: stdout, stderr and files.
//!
//! Alerts are written as one OCSF JSON object per line. Dead letters are
//! JSON lines with the reason, position and the original bytes (as UTF-8
//! text when valid, base64 otherwise; a dead letter cut to fit another
//! output also has `truncated: true` and `original_bytes`), or a one-line
//! human summary on stderr in replay. Lines have no size limit, so these
//! sinks never cut a dead letter. Each batch is flushed before `send`
//! returns.
//!
//! # Retries after a partial write
//!
//! A write that fails part-way (a full disk) can leave the first part of a
//! line in the output, and the engine then sends the whole batch again.
//! Each sink tracks, from the byte counts its writer accepted, whether the
//! output ends inside a line; if it does, the next batch starts with a
//! newline. So the torn fragment stays a line of its own (readers skip it
//! as unparseable) and every record of the retried batch is one whole line.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use base64::Engine as _;
use serde_json::json;

use super::{AlertSink, DeadLetter, DeadLetterSink};
use crate::alert::Alert;
use crate::error::{Error, Result};

/// Writes each line and a newline, then flushes. `line_open` says whether
/// the output ends inside a line (a torn line, left by a write that failed
/// part-way): then a newline goes first. It is kept up to date with what
/// `out` accepted, failed writes included (module docs).
fn write_all_lines(
    out: &mut impl Write,
    lines: &[impl AsRef<[u8]>],
    line_open: &mut bool,
) -> std::io::Result<()> {
    if *line_open {
        write_tracked(out, b"\n", line_open)?;
    }
    for line in lines {
        write_tracked(out, line.as_ref(), line_open)?;
        write_tracked(out, b"\n", line_open)?;
    }
    out.flush()
}

/// `write_all` that records whether the last byte `out` accepted ended a
/// line. (`BufWriter::write_all` hands a long line to the inner writer's
/// `write_all`, which loses the count of what it wrote before an error.)
fn write_tracked(
    out: &mut impl Write,
    mut bytes: &[u8],
    line_open: &mut bool,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match out.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => {
                let (accepted, rest) = bytes.split_at(written.min(bytes.len()));
                *line_open = accepted.last() != Some(&b'\n');
                bytes = rest;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

    /// Writes `lines`; `line_open` is the sink's memory of whether this
    /// target ends inside a line ([`write_all_lines`]).
    fn write_lines(&mut self, lines: &[impl AsRef<[u8]>], line_open: &mut bool) -> Result<()> {
        let io_error = |target: &str, e: std::io::Error| match e.kind() {
            // The reader is gone (a closed pipe): retrying cannot help.
            std::io::ErrorKind::BrokenPipe => {
                Error::OutputClosed(format!("cannot write to {target}: {e}"))
            }
            _ => Error::Sink(format!("cannot write to {target}: {e}")),
        };
        match self {
            LineTarget::Stdout => write_all_lines(&mut std::io::stdout().lock(), lines, line_open)
                .map_err(|e| io_error("stdout", e)),
            LineTarget::Stderr => write_all_lines(&mut std::io::stderr().lock(), lines, line_open)
                .map_err(|e| io_error("stderr", e)),
            LineTarget::File(writer, path) => {
                write_all_lines(writer, lines, line_open).map_err(|e| io_error(path, e))?;
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
    /// Whether the output ends inside a torn line (module docs).
    line_open: bool,
}

impl JsonLinesAlertSink {
    /// A sink writing to `target`.
    pub fn new(target: LineTarget) -> Self {
        JsonLinesAlertSink {
            target,
            line_open: false,
        }
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
        self.target.write_lines(&lines, &mut self.line_open)
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
    /// Whether the output ends inside a torn line (module docs).
    line_open: bool,
}

impl LineDeadLetterSink {
    /// A sink writing `format` lines to `target`.
    pub fn new(target: LineTarget, format: DeadLetterFormat) -> Self {
        LineDeadLetterSink {
            target,
            format,
            line_open: false,
        }
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
    if let (Some(sequence_number), Some(object)) = (&record.sequence_number, value.as_object_mut())
    {
        object.insert("sequence_number".into(), sequence_number.as_str().into());
    }
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
        self.target.write_lines(&lines, &mut self.line_open)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;

    /// A disk that fills up once: it takes `budget` more bytes (the last
    /// write a short one), refuses the next write with an error, then takes
    /// everything (space was freed).
    #[derive(Debug)]
    struct FillsUpOnce {
        written: Vec<u8>,
        budget: Option<usize>,
    }

    impl Write for FillsUpOnce {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let take = match self.budget {
                None => buf.len(),
                Some(0) => {
                    self.budget = None;
                    return Err(std::io::Error::other("no space left on device"));
                }
                Some(left) => {
                    let take = left.min(buf.len());
                    self.budget = Some(left - take);
                    take
                }
            };
            self.written.extend_from_slice(&buf[..take]);
            Ok(take)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn dead_letter_line(offset: u64, len: usize) -> String {
        dead_letter_json(&DeadLetter {
            partition: "file:/var/log/ct.json".into(),
            offset,
            sequence_number: None,
            class: ErrorClass::User,
            reason: "invalid_json",
            detail: "expected value".into(),
            bytes: vec![b'a' + (offset % 26) as u8; len],
            original_len: None,
        })
        .to_string()
    }

    /// A Kinesis record's JSON dead letter names its sequence number; one
    /// whose offset is its position has none.
    #[test]
    fn a_kinesis_records_json_dead_letter_names_its_sequence_number() {
        let plain: serde_json::Value = serde_json::from_str(&dead_letter_line(4, 3)).unwrap();
        assert!(plain.get("sequence_number").is_none(), "{plain}");
        let kinesis = dead_letter_json(&DeadLetter {
            partition: "kinesis:trail/shardId-000000000000".into(),
            offset: 4,
            sequence_number: Some("4968055293600475845".into()),
            class: ErrorClass::User,
            reason: "invalid_json",
            detail: "expected value".into(),
            bytes: b"{oops".to_vec(),
            original_len: None,
        });
        assert_eq!(kinesis["sequence_number"], "4968055293600475845");
        assert_eq!(kinesis["source"], "kinesis:trail/shardId-000000000000");
    }

    #[test]
    fn a_retried_batch_never_glues_onto_a_torn_line() {
        // A small line, a 10 KB one (longer than the BufWriter's 8 KiB, so
        // written through to the file) and a small one again.
        let batch = vec![
            dead_letter_line(1, 100),
            dead_letter_line(2, 10_000),
            dead_letter_line(3, 100),
        ];
        let total: usize = batch.iter().map(|l| l.len() + 1).sum();
        for budget in [0, 50, 200, 4_000, 8_000, 10_000, total - 150, total - 1] {
            let disk = FillsUpOnce {
                written: Vec::new(),
                budget: Some(budget),
            };
            let mut out = BufWriter::new(disk);
            let mut line_open = false;
            assert!(write_all_lines(&mut out, &batch, &mut line_open).is_err());
            // The engine's retry: the same batch, on the same sink.
            write_all_lines(&mut out, &batch, &mut line_open).unwrap();
            assert!(!line_open);
            let written = String::from_utf8(out.into_inner().unwrap().written).unwrap();
            assert!(written.ends_with('\n'));
            let mut torn = 0;
            for line in written.lines() {
                if batch.iter().any(|l| l == line) {
                    assert!(serde_json::from_str::<serde_json::Value>(line).is_ok());
                } else {
                    torn += 1;
                    assert!(
                        !line.is_empty() && batch.iter().any(|l| l.starts_with(line)),
                        "budget {budget}: a line is neither a record nor a torn prefix of one: {}...",
                        &line[..line.len().min(120)]
                    );
                }
            }
            assert!(torn <= 1, "budget {budget}: {torn} torn lines");
            let copies: Vec<usize> = batch
                .iter()
                .map(|l| written.lines().filter(|w| w == l).count())
                .collect();
            assert!(
                copies.iter().all(|n| *n >= 1),
                "budget {budget}: whole copies {copies:?}"
            );
        }
    }
}
