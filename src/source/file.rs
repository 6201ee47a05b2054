//! File and stdin source: replays files, directories and `-` (stdin).
//!
//! Each file is one partition; its records are framed by
//! [`crate::decode::framing`] (JSON values or lines), offsets are record
//! ordinals. `.gz` files (or any gzip content) are decompressed on the fly.
//! Files are read in chunks, so replaying large archives needs bounded
//! memory.
//!
//! Every file is announced as assigned before any is read
//! ([`PartitionEvent::Assigned`]), so in service mode each one holds the
//! watermark until it has been read: events in the tenth file of a
//! directory are not late because the first one was newer. A file's last
//! batch reports it caught up.
//!
//! Follow mode keeps polling the last file for appended lines, and looks
//! again (at most once a second) in the directories it was given: a new
//! file is queued and announced, and the file followed until then is read
//! to its end and finished (a trail writes a new object every few
//! minutes; a rotated log is not written again).

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;

use super::{PartitionEvent, PartitionRegistry, Poll, RawBatch, Rejected, Source, SourceDecoding};
use crate::decode::framing::{frame, Frame};
use crate::error::{Error, Result};

/// Bytes read per chunk.
const CHUNK_BYTES: usize = 1 << 20;

/// How often follow mode looks for new files in its directories.
const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// One input given on the command line or in config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileInput {
    Path(PathBuf),
    Stdin,
}

impl FileInput {
    /// A command-line path argument: `-` is stdin.
    pub fn from_arg(arg: &str) -> FileInput {
        if arg == "-" {
            FileInput::Stdin
        } else {
            FileInput::Path(PathBuf::from(arg))
        }
    }
}

/// An opened input being read.
struct OpenInput {
    name: String,
    reader: Box<dyn Read + Send>,
    pending: Vec<u8>,
    at_eof: bool,
    next_offset: u64,
    partition: u32,
    /// The input is gzip-compressed (read errors are then data errors).
    gzip: bool,
    /// Set when the gzip stream failed: reported once as a dead letter.
    corrupt: Option<String>,
    /// Discarding the rest of an oversized record, up to its newline.
    skipping: bool,
    /// Follow mode: the end was reported (an empty caught-up batch) since
    /// the last bytes read.
    reported_end: bool,
}

/// Replays files, directories and stdin.
pub struct FileSource {
    inputs: Inputs,
    current: Option<OpenInput>,
    follow: bool,
    decoding: Option<Arc<SourceDecoding>>,
    /// Set once anything was read (bytes or an end of input): the source
    /// has consumed its input as far as it goes (readiness).
    progressed: bool,
    /// A record that grows past this without ending is dead-lettered as
    /// `too_large` and skipped to the next line, so an unterminated record
    /// cannot hold unbounded memory.
    max_record_bytes: usize,
}

/// The inputs still to read, and how new ones are found.
struct Inputs {
    queue: VecDeque<FileInput>,
    /// Inputs queued but not yet announced to the engine.
    unannounced: Vec<String>,
    /// Every file ever queued (follow mode queues only new ones).
    seen: HashSet<PathBuf>,
    /// Follow mode: the directories given, looked in again for new files.
    watched: Vec<PathBuf>,
    last_scan: Instant,
}

impl FileSource {
    /// Expands directories (recursively, sorted) into files.
    pub fn new(inputs: &[FileInput], follow: bool) -> Result<FileSource> {
        Self::with_decoding(inputs, follow, None)
    }

    /// Like [`FileSource::new`], with the source's decoding settings.
    pub fn with_decoding(
        inputs: &[FileInput],
        follow: bool,
        decoding: Option<SourceDecoding>,
    ) -> Result<FileSource> {
        let mut queued = Inputs {
            queue: VecDeque::new(),
            unannounced: Vec::new(),
            seen: HashSet::new(),
            watched: Vec::new(),
            last_scan: Instant::now(),
        };
        for input in inputs {
            match input {
                FileInput::Stdin => queued.enqueue(FileInput::Stdin),
                FileInput::Path(path) => {
                    for file in expand(path)? {
                        queued.enqueue(FileInput::Path(file));
                    }
                    if follow && path.is_dir() {
                        queued.watched.push(path.clone());
                    }
                }
            }
        }
        Ok(FileSource {
            inputs: queued,
            current: None,
            follow,
            decoding: decoding.map(Arc::new),
            progressed: false,
            max_record_bytes: crate::decode::DecodeConfig::default().max_record_bytes,
        })
    }

    /// Sets the record size cap (the engine's `max_record_bytes`).
    pub fn with_max_record_bytes(mut self, max_record_bytes: usize) -> Self {
        self.max_record_bytes = max_record_bytes.max(1);
        self
    }
}

impl Inputs {
    /// Queues an input and marks it for announcement.
    fn enqueue(&mut self, input: FileInput) {
        if let FileInput::Path(path) = &input {
            if !self.seen.insert(path.clone()) {
                return;
            }
        }
        self.unannounced.push(input_name(&input));
        self.queue.push_back(input);
    }

    /// Follow mode: queues the files that appeared in the watched
    /// directories since they were last looked at. Whether any did.
    fn rescan(&mut self) -> bool {
        if self.watched.is_empty() || self.last_scan.elapsed() < RESCAN_INTERVAL {
            return false;
        }
        self.last_scan = Instant::now();
        let before = self.queue.len();
        for dir in self.watched.clone() {
            match expand(&dir) {
                Ok(files) => {
                    for file in files {
                        if !self.seen.contains(&file) {
                            tracing::info!(file = %file.display(), "new input file");
                            self.enqueue(FileInput::Path(file));
                        }
                    }
                }
                // Gone or unreadable for now: look again next time.
                Err(error) => tracing::warn!(%error, "cannot look for new input files"),
            }
        }
        self.queue.len() > before
    }
}

impl FileSource {
    fn open_next(&mut self, registry: &PartitionRegistry) -> Result<bool> {
        let Some(input) = self.inputs.queue.pop_front() else {
            return Ok(false);
        };
        let name = input_name(&input);
        let raw: Box<dyn Read + Send> = match input {
            FileInput::Stdin => Box::new(std::io::stdin()),
            FileInput::Path(path) => Box::new(File::open(&path).map_err(|e| Error::io(&name, e))?),
        };
        let mut buffered = BufReader::with_capacity(CHUNK_BYTES, raw);
        let mut magic = [0u8; 2];
        let peeked = peek(&mut buffered, &mut magic).map_err(|e| Error::io(&name, e))?;
        let gzip = peeked == 2 && magic == [0x1f, 0x8b];
        let reader: Box<dyn Read + Send> = if gzip {
            Box::new(MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        let partition = registry.id("file", &name);
        tracing::debug!(file = %name, partition, "opened input");
        self.current = Some(OpenInput {
            name,
            reader,
            pending: Vec::new(),
            at_eof: false,
            next_offset: 0,
            partition,
            gzip,
            corrupt: None,
            skipping: false,
            reported_end: false,
        });
        Ok(true)
    }
}

/// An input's partition name: its path as given, or `-`.
fn input_name(input: &FileInput) -> String {
    match input {
        FileInput::Stdin => "-".to_string(),
        FileInput::Path(path) => path.display().to_string(),
    }
}

/// Fills `magic` from the reader's buffer without consuming it.
fn peek<R: Read>(reader: &mut BufReader<R>, magic: &mut [u8; 2]) -> std::io::Result<usize> {
    use std::io::BufRead;
    let buffer = reader.fill_buf()?;
    let n = buffer.len().min(2);
    magic[..n].copy_from_slice(&buffer[..n]);
    Ok(n)
}

fn expand(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                pending.push(p);
            } else if is_log_file(&p) {
                files.push(p);
            } else {
                tracing::debug!(file = %p.display(), "skipping non-log file in input directory");
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Whether a file found while expanding a directory is log input. Hidden
/// files and documentation or code next to the data (`.md`, `.py`, `.sh`,
/// `.yaml`, ...) are skipped; files named explicitly are always read.
fn is_log_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with('.') {
        return false;
    }
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    !matches!(
        extension.to_ascii_lowercase().as_str(),
        "md" | "py" | "sh" | "rs" | "toml" | "yaml" | "yml" | "html" | "png"
    )
}

impl Source for FileSource {
    fn name(&self) -> &str {
        "file"
    }

    fn poll(&mut self, registry: &PartitionRegistry) -> Result<Poll> {
        loop {
            if self.current.is_none() && !self.open_next(registry)? {
                return Ok(Poll::End);
            }
            let is_last = self.inputs.queue.is_empty();
            let Some(input) = self.current.as_mut() else {
                continue;
            };
            if !input.at_eof {
                let mut chunk = vec![0u8; CHUNK_BYTES];
                let read = match input.reader.read(&mut chunk) {
                    Ok(read) => read,
                    // A corrupt or truncated gzip file is bad input, not an
                    // I/O failure: dead-letter what cannot be read, keep the
                    // records decoded so far, and go on with the next file.
                    Err(error) if input.gzip => {
                        tracing::warn!(file = %input.name, %error, "gzip input is corrupt or truncated");
                        input.corrupt = Some(error.to_string());
                        0
                    }
                    Err(error) => return Err(Error::io(&input.name, error)),
                };
                self.progressed = true;
                if read > 0 {
                    input.reported_end = false;
                }
                if read == 0 && input.corrupt.is_some() {
                    input.at_eof = true;
                } else if read == 0 {
                    let followed = self.follow && is_last && input.name != "-";
                    if followed && !input.reported_end {
                        // At its end for now: the partition is caught up
                        // (it stops holding the watermark once quiet).
                        input.reported_end = true;
                        let mut batch = RawBatch::new(input.partition);
                        batch.caught_up = true;
                        return Ok(Poll::Batch(batch));
                    }
                    if followed && !self.inputs.rescan() {
                        std::thread::sleep(Duration::from_millis(200));
                        return Ok(Poll::Idle);
                    }
                    // Not followed, or no longer the last file.
                    input.at_eof = true;
                } else if input.skipping {
                    // Drop the tail of an oversized record up to its end.
                    match memchr::memchr(b'\n', &chunk[..read]) {
                        Some(newline) => {
                            input.skipping = false;
                            input.pending.extend_from_slice(&chunk[newline + 1..read]);
                        }
                        None => continue,
                    }
                } else {
                    input.pending.extend_from_slice(&chunk[..read]);
                }
            }
            let mut batch = RawBatch::new(input.partition);
            batch.decoding.clone_from(&self.decoding);
            let corrupt = input.corrupt.take();
            let mut offset = input.next_offset;
            let consumed = frame(&input.pending, input.at_eof, &mut |f| {
                match f {
                    Frame::Record(bytes) => batch.push(bytes, offset),
                    Frame::Invalid {
                        bytes,
                        reason,
                        detail,
                    } => batch.rejected.push(Rejected {
                        offset,
                        bytes: bytes.to_vec(),
                        reason,
                        detail,
                    }),
                }
                offset += 1;
            });
            input.pending.drain(..consumed.min(input.pending.len()));
            if !input.at_eof && input.pending.len() > self.max_record_bytes {
                // An unfinished record already larger than any record may
                // be: keep a preview for the dead letter, drop the rest up
                // to the next newline.
                let preview_len = input.pending.len().min(4096);
                batch.rejected.push(Rejected {
                    offset,
                    bytes: input.pending[..preview_len].to_vec(),
                    reason: crate::decode::DecodeErrorReason::TooLarge,
                    detail: format!(
                        "record exceeds max_record_bytes ({}) before its end; skipped to the next line",
                        self.max_record_bytes
                    ),
                });
                offset += 1;
                match memchr::memchr(b'\n', &input.pending) {
                    Some(newline) => {
                        input.pending.drain(..=newline);
                    }
                    None => {
                        input.pending.clear();
                        input.skipping = true;
                    }
                }
            }
            if let Some(detail) = corrupt {
                // Whatever followed the last complete record is lost with
                // the stream: report it once, after the records recovered.
                batch.rejected.push(Rejected {
                    offset,
                    bytes: Vec::new(),
                    reason: crate::decode::DecodeErrorReason::TruncatedGzip,
                    detail: format!("{}: {detail}", input.name),
                });
                offset += 1;
            }
            input.next_offset = offset;
            let finished = input.at_eof;
            if finished {
                tracing::debug!(file = %input.name, records = input.next_offset, "finished input");
                self.current = None;
                // Sent even when empty: the file is read, and no longer
                // holds the watermark once quiet.
                batch.caught_up = true;
                return Ok(Poll::Batch(batch));
            }
            if !batch.is_empty() || !batch.rejected.is_empty() {
                return Ok(Poll::Batch(batch));
            }
        }
    }

    fn take_partition_events(&mut self, registry: &PartitionRegistry) -> Vec<PartitionEvent> {
        self.inputs
            .unannounced
            .drain(..)
            .map(|name| PartitionEvent::Assigned(registry.id("file", &name)))
            .collect()
    }

    fn is_ready(&self) -> bool {
        self.progressed
    }

    fn commit(&mut self, _positions: &[(u32, u64)]) -> Result<()> {
        // Files have no checkpoint store: replay always starts at the top.
        Ok(())
    }
}
