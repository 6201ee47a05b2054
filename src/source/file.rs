//! File and stdin source: replays files, directories and `-` (stdin).
//!
//! Each file is one partition; its records are framed by
//! [`crate::decode::framing`] (JSON values or lines), offsets are record
//! ordinals. `.gz` files (or any gzip content) are decompressed on the fly.
//! Files are read in chunks, so replaying large archives needs bounded
//! memory. A file that cannot be opened or read (permissions, an I/O
//! error) is dead-lettered as `unreadable_input`, naming it, and the other
//! inputs are still read.
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
//! minutes). A followed file that is rotated (its path now names another
//! file) or truncated (copytruncate) is read to its end, and its path is
//! read again from the top as a new partition; the rotated file, found
//! under its new name, is not read twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;

use super::{PartitionEvent, PartitionRegistry, Poll, RawBatch, Rejected, Source, SourceDecoding};
use crate::decode::framing::{frame, Frame};
use crate::decode::DecodeErrorReason;
use crate::error::{Error, Result};

/// Bytes read per chunk.
const CHUNK_BYTES: usize = 1 << 20;

/// How often follow mode looks for new files in its directories.
const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// How long follow mode sleeps when there is nothing new.
const FOLLOW_SLEEP: Duration = Duration::from_millis(200);

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

/// A file's device and inode: what it is, whatever its name.
type Identity = (u64, u64);

fn identity(meta: &std::fs::Metadata) -> Identity {
    (meta.dev(), meta.ino())
}

/// An input waiting to be read, with its partition name (its path, `-`,
/// or `PATH#N` when a rotated or truncated path is read again).
struct Queued {
    input: FileInput,
    name: String,
}

/// An opened input being read.
struct OpenInput {
    name: String,
    /// The file's path (`None` for stdin).
    path: Option<PathBuf>,
    identity: Option<Identity>,
    reader: Box<dyn Read + Send>,
    /// Bytes read from the file (before gunzipping).
    bytes_read: u64,
    pending: Vec<u8>,
    at_eof: bool,
    next_offset: u64,
    partition: u32,
    /// The input is gzip-compressed (read errors are then data errors).
    gzip: bool,
    /// Set when reading failed part-way: reported once as a dead letter.
    failed: Option<(DecodeErrorReason, String)>,
    /// Discarding the rest of an oversized record, up to its newline.
    skipping: bool,
    /// Follow mode: the end was reported (an empty caught-up batch) since
    /// the last bytes read.
    reported_end: bool,
}

impl OpenInput {
    /// Follow mode, at the end: whether the path now names another file
    /// (rotated: the file read until now, if known) or a shorter one
    /// (truncated), so that it must be read again.
    fn replaced(&self) -> Option<Replaced> {
        let path = self.path.as_ref()?;
        // Gone: nothing new can appear under this name until it is back.
        let meta = std::fs::metadata(path).ok()?;
        if self.identity.is_some_and(|known| known != identity(&meta)) {
            return Some(Replaced::Rotated(self.identity));
        }
        (!self.gzip && meta.len() < self.bytes_read).then_some(Replaced::Truncated)
    }
}

/// How a followed file's path changed under it.
enum Replaced {
    /// Another file lives at the path now; the one read until now.
    Rotated(Option<Identity>),
    /// The same file, shorter than what was read (copytruncate).
    Truncated,
}

/// What [`FileSource::open_next`] found.
enum Next {
    Opened,
    /// The input could not be opened: its dead letter.
    Unreadable(RawBatch),
    Done,
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
    /// The read buffer, kept: a fresh zeroed MiB per read (every 200 ms
    /// while following) was work for nothing.
    chunk: Vec<u8>,
}

/// The inputs still to read, and how new ones are found.
struct Inputs {
    queue: VecDeque<Queued>,
    /// Inputs queued but not yet announced to the engine.
    unannounced: Vec<String>,
    /// Every path ever queued (a rescan queues only new ones).
    seen: HashSet<PathBuf>,
    /// Follow mode: the directories given, looked in again for new files.
    watched: Vec<PathBuf>,
    last_scan: Instant,
    /// Followed files that were rotated away: found again under a new
    /// name, they are not read twice.
    rotated: HashSet<Identity>,
    /// How many times each path was read again (its partition's suffix).
    reopened: HashMap<PathBuf, u32>,
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
            rotated: HashSet::new(),
            reopened: HashMap::new(),
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
            chunk: vec![0u8; CHUNK_BYTES],
        })
    }

    /// Sets the record size cap (the engine's `max_record_bytes`).
    pub fn with_max_record_bytes(mut self, max_record_bytes: usize) -> Self {
        self.max_record_bytes = max_record_bytes.max(1);
        self
    }

    fn open_next(&mut self, registry: &PartitionRegistry) -> Next {
        let Some(Queued { input, name }) = self.inputs.queue.pop_front() else {
            return Next::Done;
        };
        let partition = registry.id("file", &name);
        let (path, opened) = match input {
            FileInput::Stdin => (
                None,
                Ok((Box::new(std::io::stdin()) as Box<dyn Read + Send>, None)),
            ),
            FileInput::Path(path) => {
                let opened = File::open(&path).and_then(|file| {
                    let known = identity(&file.metadata()?);
                    Ok((Box::new(file) as Box<dyn Read + Send>, Some(known)))
                });
                (Some(path), opened)
            }
        };
        let mut magic = [0u8; 2];
        let opened = opened.and_then(|(raw, known)| {
            let mut buffered = BufReader::with_capacity(CHUNK_BYTES, raw);
            let peeked = peek(&mut buffered, &mut magic)?;
            Ok((buffered, known, peeked == 2 && magic == [0x1f, 0x8b]))
        });
        let (buffered, known, gzip) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(file = %name, %error, "input cannot be opened, dead-lettered");
                let mut batch = RawBatch::new(partition);
                batch.rejected.push(Rejected {
                    offset: 0,
                    bytes: Vec::new(),
                    reason: DecodeErrorReason::UnreadableInput,
                    detail: format!("{name}: {error}"),
                });
                batch.caught_up = true;
                batch.ends_partition = true;
                self.progressed = true;
                return Next::Unreadable(batch);
            }
        };
        let reader: Box<dyn Read + Send> = if gzip {
            Box::new(MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        tracing::debug!(file = %name, partition, "opened input");
        self.current = Some(OpenInput {
            name,
            path,
            identity: known,
            reader,
            bytes_read: 0,
            pending: Vec::new(),
            at_eof: false,
            next_offset: 0,
            partition,
            gzip,
            failed: None,
            skipping: false,
            reported_end: false,
        });
        Next::Opened
    }
}

impl Inputs {
    /// Queues an input under its own name, once, and marks it for
    /// announcement.
    fn enqueue(&mut self, input: FileInput) {
        if let FileInput::Path(path) = &input {
            if !self.seen.insert(path.clone()) {
                return;
            }
        }
        let name = match &input {
            FileInput::Stdin => "-".to_string(),
            FileInput::Path(path) => path.display().to_string(),
        };
        self.push(input, name);
    }

    fn push(&mut self, input: FileInput, name: String) {
        self.unannounced.push(name.clone());
        self.queue.push_back(Queued { input, name });
    }

    /// A followed file was rotated or truncated: its path is read again
    /// from the top, as a new partition. `rotated_away` is what was read
    /// until now, if it no longer lives at the path.
    fn reopen(&mut self, path: &Path, rotated_away: Option<Identity>) {
        self.rotated.extend(rotated_away);
        let generation = self.reopened.entry(path.to_path_buf()).or_insert(1);
        *generation += 1;
        let name = format!("{}#{generation}", path.display());
        self.push(FileInput::Path(path.to_path_buf()), name);
    }

    /// Follow mode: queues the files that appeared in the watched
    /// directories since they were last looked at, but not `followed` (the
    /// file being read) or a rotated file under its new name. Whether any
    /// was queued.
    fn rescan(&mut self, followed: Option<Identity>) -> bool {
        if self.watched.is_empty() || self.last_scan.elapsed() < RESCAN_INTERVAL {
            return false;
        }
        self.last_scan = Instant::now();
        let before = self.queue.len();
        for dir in self.watched.clone() {
            let files = match expand(&dir) {
                Ok(files) => files,
                // Gone or unreadable for now: look again next time.
                Err(error) => {
                    tracing::warn!(%error, "cannot look for new input files");
                    continue;
                }
            };
            for file in files {
                if self.seen.contains(&file) {
                    continue;
                }
                let known = std::fs::metadata(&file).ok().map(|meta| identity(&meta));
                if known
                    .is_some_and(|known| Some(known) == followed || self.rotated.contains(&known))
                {
                    tracing::debug!(file = %file.display(), "rotated input seen under a new name");
                    self.seen.insert(file);
                    continue;
                }
                tracing::info!(file = %file.display(), "new input file");
                self.enqueue(FileInput::Path(file));
            }
        }
        self.queue.len() > before
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
            if self.current.is_none() {
                match self.open_next(registry) {
                    Next::Opened => {}
                    Next::Unreadable(batch) => return Ok(Poll::Batch(batch)),
                    // Following directories: wait for files to appear.
                    Next::Done if self.follow && !self.inputs.watched.is_empty() => {
                        self.progressed = true;
                        if !self.inputs.rescan(None) {
                            std::thread::sleep(FOLLOW_SLEEP);
                            return Ok(Poll::Idle);
                        }
                        continue;
                    }
                    Next::Done => return Ok(Poll::End),
                }
            }
            let is_last = self.inputs.queue.is_empty();
            let Some(input) = self.current.as_mut() else {
                continue;
            };
            if !input.at_eof {
                let chunk = &mut self.chunk;
                let read = match input.reader.read(chunk) {
                    Ok(read) => read,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    // Bad input, not a failure of the service: dead-letter
                    // what cannot be read, keep the records decoded so far,
                    // and go on with the next file.
                    Err(error) => {
                        let reason = if input.gzip {
                            tracing::warn!(file = %input.name, %error, "gzip input is corrupt or truncated");
                            DecodeErrorReason::TruncatedGzip
                        } else {
                            tracing::warn!(file = %input.name, %error, "input cannot be read to its end");
                            DecodeErrorReason::UnreadableInput
                        };
                        input.failed = Some((reason, error.to_string()));
                        0
                    }
                };
                self.progressed = true;
                if !input.gzip {
                    input.bytes_read += read as u64;
                }
                if read > 0 {
                    input.reported_end = false;
                }
                if read == 0 && input.failed.is_some() {
                    input.at_eof = true;
                } else if read == 0 {
                    let followed = self.follow && is_last && input.path.is_some();
                    if followed && !input.reported_end {
                        // At its end for now: the partition is caught up
                        // (it stops holding the watermark once quiet).
                        input.reported_end = true;
                        let mut batch = RawBatch::new(input.partition);
                        batch.caught_up = true;
                        return Ok(Poll::Batch(batch));
                    }
                    if let Some(replaced) = followed.then(|| input.replaced()).flatten() {
                        let rotated_away = match replaced {
                            Replaced::Rotated(known) => known,
                            Replaced::Truncated => None,
                        };
                        if let Some(path) = &input.path {
                            tracing::info!(file = %path.display(), "followed input rotated or truncated, reading it again");
                            self.inputs.reopen(path, rotated_away);
                        }
                    } else if followed && !self.inputs.rescan(input.identity) {
                        std::thread::sleep(FOLLOW_SLEEP);
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
            let failed = input.failed.take();
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
                    reason: DecodeErrorReason::TooLarge,
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
            if let Some((reason, detail)) = failed {
                // Whatever followed the last complete record is lost with
                // the stream: report it once, after the records recovered.
                batch.rejected.push(Rejected {
                    offset,
                    bytes: Vec::new(),
                    reason,
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
                batch.ends_partition = true;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// What the source handed out: records as (partition name, text) and
    /// dead letters as (partition name, reason, detail).
    #[derive(Default)]
    struct Seen {
        records: Vec<(String, String)>,
        rejected: Vec<(String, DecodeErrorReason, String)>,
        /// Partitions whose last batch came (`ends_partition`).
        finished: Vec<String>,
        ended: bool,
    }

    /// Polls until the source ends, or until `done` holds (bounded: about
    /// ten seconds of follow-mode sleeps).
    fn poll_until(
        source: &mut FileSource,
        registry: &PartitionRegistry,
        seen: &mut Seen,
        done: impl Fn(&Seen) -> bool,
    ) {
        for _ in 0..500 {
            if done(seen) {
                return;
            }
            match source.poll(registry).unwrap() {
                Poll::Batch(batch) => {
                    let (_, name) = registry.name(batch.partition).unwrap();
                    for (range, _) in &batch.records {
                        let text = String::from_utf8_lossy(&batch.data[range.clone()]);
                        seen.records.push((name.clone(), text.into_owned()));
                    }
                    for rejected in &batch.rejected {
                        seen.rejected.push((
                            name.clone(),
                            rejected.reason,
                            rejected.detail.clone(),
                        ));
                    }
                    if batch.ends_partition {
                        seen.finished.push(name);
                    }
                }
                Poll::Idle => {}
                Poll::End => {
                    seen.ended = true;
                    return;
                }
            }
        }
    }

    fn texts(seen: &Seen) -> Vec<&str> {
        seen.records.iter().map(|(_, text)| text.as_str()).collect()
    }

    /// A file that cannot be opened (here a dangling link; as root,
    /// permissions do not refuse) is a dead letter naming it, and the
    /// files after it are read. Before, it ended the run with an I/O
    /// error: the files after it were never read.
    #[test]
    fn an_unopenable_file_is_dead_lettered_and_the_others_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log"), "one\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("b.log")).unwrap();
        std::fs::write(dir.path().join("c.log"), "three\n").unwrap();
        let registry = PartitionRegistry::default();
        let mut source =
            FileSource::new(&[FileInput::Path(dir.path().to_path_buf())], false).unwrap();
        let mut seen = Seen::default();
        poll_until(&mut source, &registry, &mut seen, |_| false);
        assert!(seen.ended);
        assert_eq!(texts(&seen), ["one", "three"]);
        // Each file, read or not, ends its partition (its decoder goes).
        assert_eq!(seen.finished.len(), 3, "{:?}", seen.finished);
        assert_eq!(seen.rejected.len(), 1);
        let (name, reason, detail) = &seen.rejected[0];
        assert!(name.ends_with("b.log"), "{name}");
        assert_eq!(*reason, DecodeErrorReason::UnreadableInput);
        assert!(detail.contains("b.log"), "{detail}");
    }

    /// Following an empty directory waits for files instead of ending.
    #[test]
    fn following_an_empty_directory_waits_for_files() {
        let dir = tempfile::tempdir().unwrap();
        let registry = PartitionRegistry::default();
        let mut source =
            FileSource::new(&[FileInput::Path(dir.path().to_path_buf())], true).unwrap();
        let mut seen = Seen::default();
        assert!(matches!(source.poll(&registry).unwrap(), Poll::Idle));
        std::fs::write(dir.path().join("a.log"), "one\n").unwrap();
        poll_until(&mut source, &registry, &mut seen, |seen| {
            !seen.records.is_empty()
        });
        assert!(!seen.ended);
        assert_eq!(texts(&seen), ["one"]);
    }

    /// logrotate's default: the followed file is renamed and a new one
    /// created under its name. The lines written to the old file before
    /// the rename and all of the new file are read, the renamed file is
    /// not read again, and the new file is a partition of its own.
    #[test]
    fn a_rotated_followed_file_is_read_on_and_not_twice() {
        let dir = tempfile::tempdir().unwrap();
        let secure = dir.path().join("secure");
        std::fs::write(&secure, "a1\na2\n").unwrap();
        let registry = PartitionRegistry::default();
        let mut source =
            FileSource::new(&[FileInput::Path(dir.path().to_path_buf())], true).unwrap();
        let mut seen = Seen::default();
        poll_until(&mut source, &registry, &mut seen, |seen| {
            seen.records.len() == 2
        });
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(&secure)
            .unwrap();
        writeln!(old, "a3").unwrap();
        std::fs::rename(&secure, dir.path().join("secure.1")).unwrap();
        std::fs::write(&secure, "b1\nb2\n").unwrap();
        poll_until(&mut source, &registry, &mut seen, |seen| {
            seen.records.len() >= 5
        });
        // Long enough for two more looks at the directory.
        let until = Instant::now() + RESCAN_INTERVAL * 2 + Duration::from_millis(500);
        poll_until(&mut source, &registry, &mut seen, |_| {
            Instant::now() > until
        });
        assert_eq!(texts(&seen), ["a1", "a2", "a3", "b1", "b2"]);
        let name = secure.display().to_string();
        assert_eq!(seen.records[2].0, name);
        assert_eq!(seen.records[3].0, format!("{name}#2"));
        assert!(seen.rejected.is_empty());
    }

    /// copytruncate: the followed file is emptied in place and written
    /// again. What is written after the truncation is read, from the top.
    /// Before, reading went on at the old offset: those lines were lost.
    #[test]
    fn a_truncated_followed_file_is_read_again_from_the_top() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "old line one\nold line two\n").unwrap();
        let registry = PartitionRegistry::default();
        let mut source = FileSource::new(&[FileInput::Path(log.clone())], true).unwrap();
        let mut seen = Seen::default();
        poll_until(&mut source, &registry, &mut seen, |seen| {
            seen.records.len() == 2
        });
        let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        file.set_len(0).unwrap();
        drop(file);
        std::fs::write(&log, "new\n").unwrap();
        poll_until(&mut source, &registry, &mut seen, |seen| {
            seen.records.len() == 3
        });
        assert_eq!(texts(&seen), ["old line one", "old line two", "new"]);
        assert_eq!(seen.records[2].0, format!("{}#2", log.display()));
    }
}
