//! Splitting a file or stdin buffer into records.
//!
//! Contract: [`frame`] looks at `buf` and reports each complete record it
//! holds, returning how many bytes it consumed; the caller keeps the rest,
//! appends more input and calls again (`at_eof` once no more will come).
//!
//! - If the first non-whitespace byte is `{` or `[`, the buffer holds
//!   concatenated JSON values (JSON lines, pretty-printed objects, an S3
//!   `{"Records":[...]}` file): each value is one record. A syntax error
//!   yields one [`Frame::Invalid`] for the bytes up to the next line that
//!   opens a value (first non-blank byte `{` or `[`), so the rest of a
//!   broken pretty-printed object is one dead letter, and framing resumes
//!   there; an unfinished value at the end waits for more input, or at EOF
//!   is reported invalid whole. A line that does not start a JSON value
//!   is invalid too, on its own.
//!   Values are delimited by the allocation-free [`scan`](super::scan)
//!   scanner; whatever it refuses (errors, unfinished values, nesting
//!   deeper than it tracks) is delimited by serde_json, whose error decides.
//! - Otherwise each line (`\n`, `\r` stripped) is a record; blank lines are
//!   skipped; an unterminated last line waits for more input unless at EOF.
//! - An input that starts with the KPL magic (a captured Kinesis record)
//!   is one record, whole, at EOF.
//! - A UTF-8 byte order mark before a record is skipped (RFC 8259 lets a
//!   JSON parser ignore it; Windows tools write one at a file's start).

use serde::de::IgnoredAny;

use crate::decode::scan::Scanner;
use crate::decode::DecodeErrorReason;

/// One framed record, borrowing from the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete record.
    Record(&'a [u8]),
    /// Bytes that cannot form a record.
    Invalid {
        bytes: &'a [u8],
        reason: DecodeErrorReason,
        detail: String,
    },
}

/// A UTF-8 byte order mark, which Windows tools write at the start of a
/// file and RFC 8259 lets a JSON parser ignore.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Frames `buf`; returns the number of bytes consumed.
pub fn frame(buf: &[u8], at_eof: bool, out: &mut dyn FnMut(Frame<'_>)) -> usize {
    if let Some(rest) = buf.strip_prefix(BOM) {
        return BOM.len() + frame(rest, at_eof, out);
    }
    if buf.starts_with(&crate::decode::kpl::MAGIC) {
        // A captured Kinesis record, a KPL aggregate: binary (its protobuf
        // holds newlines), so the whole input is the one record.
        if !at_eof {
            return 0;
        }
        out(Frame::Record(buf));
        return buf.len();
    }
    let first = buf.iter().position(|b| !b.is_ascii_whitespace());
    match first.map(|at| buf[at]) {
        Some(b'{' | b'[') => frame_json(buf, at_eof, out),
        Some(_) => frame_lines(buf, at_eof, out),
        None => buf.len(),
    }
}

fn frame_json(buf: &[u8], at_eof: bool, out: &mut dyn FnMut(Frame<'_>)) -> usize {
    let mut pos = 0usize;
    loop {
        while pos < buf.len() && buf[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if buf[pos..].starts_with(BOM) {
            // Concatenated files, each with its mark.
            pos += BOM.len();
            continue;
        }
        if pos >= buf.len() {
            return buf.len();
        }
        let rest = &buf[pos..];
        if !matches!(rest[0], b'{' | b'[') {
            // A line of its own (a plain line in a JSON file is a record
            // of its own to re-drive): reported once it is complete.
            let end = line_end(rest);
            if end == rest.len() && !at_eof && !rest.ends_with(b"\n") {
                return pos;
            }
            out(Frame::Invalid {
                bytes: trim_line(&rest[..end]),
                reason: DecodeErrorReason::InvalidJson,
                detail: "expected a JSON object or array".to_string(),
            });
            pos += end;
            continue;
        }
        let mut scanner = Scanner::new(rest);
        if scanner.skip_value().is_ok() {
            let end = scanner.pos();
            out(Frame::Record(&rest[..end]));
            pos += end;
            continue;
        }
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<IgnoredAny>();
        match values.next() {
            Some(Ok(_)) => {
                let end = values.byte_offset();
                out(Frame::Record(&rest[..end]));
                pos += end;
            }
            Some(Err(e)) if e.is_eof() && !at_eof => return pos,
            Some(Err(e)) if e.is_eof() => {
                out(Frame::Invalid {
                    bytes: rest,
                    reason: DecodeErrorReason::InvalidJson,
                    detail: e.to_string(),
                });
                return buf.len();
            }
            Some(Err(e)) => {
                let Some(end) = invalid_span(rest, at_eof) else {
                    return pos;
                };
                let reason = if e.to_string().contains("recursion limit exceeded") {
                    DecodeErrorReason::TooDeep
                } else {
                    DecodeErrorReason::InvalidJson
                };
                out(Frame::Invalid {
                    bytes: trim_line(&rest[..end]),
                    reason,
                    detail: e.to_string(),
                });
                pos += end;
            }
            None => return buf.len(),
        }
    }
}

fn frame_lines(buf: &[u8], at_eof: bool, out: &mut dyn FnMut(Frame<'_>)) -> usize {
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let (line, consumed) = match memchr::memchr(b'\n', rest) {
            Some(newline) => (&rest[..newline], newline + 1),
            None if at_eof => (rest, rest.len()),
            None => return pos,
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            out(Frame::Record(line));
        }
        pos += consumed;
    }
    pos
}

/// Where framing resumes after an invalid value that starts `bytes`: at
/// the next line that opens a value (its first non-blank byte `{` or
/// `[`) or does not go on with one (a plain line), so the rest of a
/// broken pretty-printed object is one invalid span, not one per line,
/// while a record after it (an S3 file's next element included) is still
/// framed. `None`: the span's end is not in
/// `bytes` yet (more input will come).
fn invalid_span(bytes: &[u8], at_eof: bool) -> Option<usize> {
    let mut end = line_end(bytes);
    loop {
        if end == bytes.len() {
            return (at_eof || bytes.ends_with(b"\n")).then_some(end);
        }
        let next = &bytes[end..];
        let opens = next
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\r'))
            .is_some_and(|b| matches!(b, b'{' | b'['));
        // A pretty-printed value goes on indented, or with a closing
        // bracket, a key or a comma; a plain line is a record of its own.
        let continues = matches!(next.first(), Some(b' ' | b'\t' | b'}' | b']' | b'"' | b','));
        if opens || !continues {
            return Some(end);
        }
        end += line_end(next);
    }
}

/// Length of the first line of `bytes`, including its `\n`.
fn line_end(bytes: &[u8]) -> usize {
    memchr::memchr(b'\n', bytes).map_or(bytes.len(), |newline| newline + 1)
}

fn trim_line(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(buf: &[u8], at_eof: bool) -> (Vec<String>, usize) {
        let mut frames = Vec::new();
        let consumed = frame(buf, at_eof, &mut |f| {
            frames.push(match f {
                Frame::Record(r) => format!("R:{}", String::from_utf8_lossy(r)),
                Frame::Invalid { bytes, reason, .. } => {
                    format!("I:{}:{}", reason.as_str(), String::from_utf8_lossy(bytes))
                }
            })
        });
        (frames, consumed)
    }

    #[test]
    fn json_values_and_resync() {
        let buf = b"{\"a\":1}\n{\n  \"b\": [1,\n 2]\n}\n{bad json}\n{\"c\":3}\n";
        let (frames, consumed) = collect(buf, true);
        assert_eq!(consumed, buf.len());
        assert_eq!(frames[0], "R:{\"a\":1}");
        assert_eq!(frames[1], "R:{\n  \"b\": [1,\n 2]\n}");
        assert_eq!(frames[2], "I:invalid_json:{bad json}");
        assert_eq!(frames[3], "R:{\"c\":3}");
    }

    /// An audit helper's cases: a BOM-prefixed S3 file gave no event (it
    /// was line-framed and dead-lettered whole), and the first record of a
    /// BOM-prefixed JSON-lines file was lost.
    #[test]
    fn a_byte_order_mark_is_skipped() {
        let s3 = b"\xEF\xBB\xBF{\"Records\": [\n  {\"a\": 1}\n]}\n";
        let (frames, consumed) = collect(s3, true);
        assert_eq!(
            frames,
            vec!["R:{\"Records\": [\n  {\"a\": 1}\n]}".to_string()]
        );
        assert_eq!(consumed, s3.len());
        let lines = b"\xEF\xBB\xBF{\"a\":1}\n{\"b\":2}\n\xEF\xBB\xBF{\"c\":3}\n";
        let (frames, _) = collect(lines, true);
        assert_eq!(frames, vec!["R:{\"a\":1}", "R:{\"b\":2}", "R:{\"c\":3}"]);
        let syslog = b"\xEF\xBB\xBFMar  1 12:00:01 h sshd[1]: x\n";
        let (frames, _) = collect(syslog, true);
        assert_eq!(frames, vec!["R:Mar  1 12:00:01 h sshd[1]: x"]);
    }

    /// A broken pretty-printed object is one invalid span up to the next
    /// line that opens a value (an audit helper's file gave a dead letter
    /// per line, 20 for one record); the records around it are framed.
    #[test]
    fn a_broken_pretty_printed_object_is_one_invalid_span() {
        let buf =
            b"{\n  \"a\": 1\n}\n{\n  \"b\" 2,\n  \"c\": {\n    \"d\": 3\n  }\n}\n  {\"e\": 4}\n";
        let (frames, consumed) = collect(buf, true);
        assert_eq!(consumed, buf.len());
        assert_eq!(
            frames,
            vec![
                "R:{\n  \"a\": 1\n}".to_string(),
                "I:invalid_json:{\n  \"b\" 2,\n  \"c\": {\n    \"d\": 3\n  }\n}".to_string(),
                "R:{\"e\": 4}".to_string(),
            ]
        );
        // A plain line after a broken compact one is its own.
        let (frames, _) = collect(b"{\"a\" 1}\nplain line\n", true);
        assert_eq!(
            frames,
            vec!["I:invalid_json:{\"a\" 1}", "I:invalid_json:plain line"]
        );
        // Not at EOF, the span waits for the line that ends it.
        let cut = buf.windows(3).position(|w| w == b"\"d\"").expect("d");
        let (frames, consumed) = collect(&buf[..cut], false);
        assert_eq!(frames, vec!["R:{\n  \"a\": 1\n}".to_string()]);
        assert_eq!(&buf[consumed..consumed + 2], b"{\n");
    }

    /// A KPL aggregate replayed from a file was cut at the newline byte
    /// its protobuf starts with, losing every record in it (an audit
    /// helper's finding).
    #[test]
    fn a_kpl_aggregate_is_one_record() {
        let aggregate = crate::decode::kpl::aggregate(&[b"{\"a\":1}", b"{\"b\":2}"]);
        let mut frames = Vec::new();
        assert_eq!(frame(&aggregate, false, &mut |_| frames.push(())), 0);
        assert!(frames.is_empty());
        let mut records = Vec::new();
        let consumed = frame(&aggregate, true, &mut |f| {
            if let Frame::Record(bytes) = f {
                records.push(bytes.to_vec());
            }
        });
        assert_eq!(
            (consumed, records),
            (aggregate.len(), vec![aggregate.clone()])
        );
    }

    #[test]
    fn partial_json_waits_for_more() {
        let buf = b"{\"a\":1}\n{\"b\":";
        let (frames, consumed) = collect(buf, false);
        assert_eq!(frames, vec!["R:{\"a\":1}".to_string()]);
        assert_eq!(consumed, 8);
        let (frames, consumed) = collect(&buf[8..], true);
        assert_eq!(frames, vec!["I:invalid_json:{\"b\":".to_string()]);
        assert_eq!(consumed, buf.len() - 8);
    }

    #[test]
    fn values_the_scanner_refuses_are_framed_by_serde_json() {
        // Nesting past the scanner's depth, then an ordinary value.
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let buf = format!("{deep}\n{{\"a\":[1e999,{{\"b\":\"\\u00e9\"}}]}}\n[1,}}\n{{}}");
        let (frames, consumed) = collect(buf.as_bytes(), true);
        assert_eq!(consumed, buf.len());
        assert_eq!(frames.len(), 4, "{frames:?}");
        assert_eq!(frames[0], format!("R:{deep}"));
        assert_eq!(frames[1], "R:{\"a\":[1e999,{\"b\":\"\\u00e9\"}]}");
        assert_eq!(frames[2], "I:invalid_json:[1,}");
        assert_eq!(frames[3], "R:{}");
        // Bytes that are not UTF-8 inside a string do not stop framing
        // (the decoder reports them), as with serde_json's skipping.
        let (frames, _) = collect(b"{\"a\":\"\xff\"}\n{}", true);
        assert_eq!(frames.len(), 2, "{frames:?}");
    }

    #[test]
    fn lines() {
        let buf = b"a b c\r\n\n  \nd e\nf";
        let (frames, consumed) = collect(buf, false);
        assert_eq!(frames, vec!["R:a b c".to_string(), "R:d e".to_string()]);
        assert_eq!(consumed, 15);
        let (frames, consumed) = collect(buf, true);
        assert_eq!(frames.len(), 3);
        assert_eq!(consumed, buf.len());
    }
}
