//! An allocation-free, validating JSON scanner: the fast path under
//! [`json::extract`](super::json::extract) and [`framing`](super::framing).
//!
//! Contract: a [`Scanner`] walks bytes with a cursor and never allocates.
//! Everything it accepts, serde_json accepts too (RFC 8259 strictly: the
//! four whitespace bytes, no trailing commas, no comments, no control
//! bytes in strings, only the nine escapes, `\u` with four hex digits,
//! numbers `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` checked for
//! syntax only, so `1e999` is accepted exactly as serde_json's skipping
//! accepts it). It may refuse more than serde_json: a value nested deeper
//! than [`MAX_SKIP_DEPTH`] inside a skipped value is refused. A refusal is
//! [`Refused`], which says nothing about why: callers run serde_json
//! itself on the same input then, for its exact result or error message.
//! Like serde_json's skipping of ignored values, skipped strings are not
//! checked for lone surrogates in `\u` escapes.

/// Nesting the skipper tracks (bits of a fixed stack); deeper is refused.
pub const MAX_SKIP_DEPTH: usize = 4096;

/// The scanner gave up; the caller asks serde_json.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused;

/// A string the scanner read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Str {
    /// No escapes: the contents (between the quotes) are `bytes[start..end]`.
    Plain { start: usize, end: usize },
    /// Has escapes: valid to skip, but must be unescaped (by serde_json)
    /// to be read.
    Escaped,
}

const ONES: u64 = u64::MAX / 255;
const HIGHS: u64 = ONES << 7;

/// Bytes that end the plain run of a string: `"`, `\` or a control byte.
/// Bit 7 of byte `i` is set for the first such byte (bits above it may be
/// false positives, below it never).
#[inline(always)]
fn specials(word: u64) -> u64 {
    let ctrl = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (ctrl | quote | backslash) & HIGHS
}

/// [`specials`] for 16 bytes: bit `i` is set when byte `i` of `chunk` is
/// `"`, `\` or a control byte.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn specials16(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline, so the intrinsics are
    // available; the load is unaligned and reads exactly the 16 bytes of
    // `chunk`.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned `v <= 0x1f` as `max(v, 0x1f) == 0x1f`.
        let low = _mm_set1_epi8(0x1f);
        let ctrl = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), ctrl)) as u32
    }
}

/// A cursor over one JSON text.
#[derive(Debug)]
pub struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The skipper's stack of open containers, one bit each (set: an
    /// object). Kept here so that it is set up once per text, not once per
    /// skipped value.
    objects: [u64; MAX_SKIP_DEPTH / 64],
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Scanner {
            bytes,
            pos: 0,
            objects: [0; MAX_SKIP_DEPTH / 64],
        }
    }

    /// The 8 bytes at `at` (little-endian), when there are 8.
    #[inline(always)]
    pub fn word_at(&self, at: usize) -> Option<u64> {
        let chunk = self.bytes.get(at..at.checked_add(8)?)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        Some(u64::from_le_bytes(word))
    }

    /// The cursor, a byte offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Moves the cursor (to re-read a value).
    pub fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// Skips whitespace and returns the next byte, without consuming it.
    #[inline(always)]
    pub fn peek(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        // Every byte that starts or delimits a value is above a space.
        if b > b' ' {
            return Some(b);
        }
        loop {
            let b = *self.bytes.get(self.pos)?;
            if !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(b);
            }
            self.pos += 1;
        }
    }

    /// Consumes one byte (the one [`Scanner::peek`] returned).
    #[inline(always)]
    pub fn bump(&mut self) {
        self.pos += 1;
    }

    /// Skips whitespace, then consumes `byte` or refuses.
    #[inline(always)]
    pub fn expect(&mut self, byte: u8) -> Result<(), Refused> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Refused)
        }
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Reads a string whose opening quote was just consumed, through its
    /// closing quote.
    #[inline(always)]
    pub fn string(&mut self) -> Result<Str, Refused> {
        let start = self.pos;
        let end = plain_run(self.bytes, start);
        match self.bytes.get(end) {
            Some(b'"') => {
                self.pos = end + 1;
                Ok(Str::Plain { start, end })
            }
            Some(b'\\') => {
                self.pos = escaped_end(self.bytes, end)?;
                Ok(Str::Escaped)
            }
            _ => Err(Refused),
        }
    }

    /// Reads a number starting at the cursor (checked for syntax only);
    /// returns where it started.
    pub fn number(&mut self) -> Result<usize, Refused> {
        let start = self.pos;
        self.pos = number_end(self.bytes, start)?;
        Ok(start)
    }

    /// Consumes `word` (`true`, `false` or `null`) at the cursor.
    #[inline]
    pub fn literal(&mut self, word: &[u8]) -> Result<(), Refused> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Refused)
        }
    }

    /// Skips one value (after whitespace), however deeply nested up to
    /// [`MAX_SKIP_DEPTH`], without recursion and without allocating.
    ///
    /// A string, the most common value, is skipped inline; containers and
    /// the rest go to [`Scanner::skip_other`].
    #[inline(always)]
    pub fn skip_value(&mut self) -> Result<(), Refused> {
        if self.peek() == Some(b'"') {
            self.bump();
            self.string()?;
            return Ok(());
        }
        self.skip_other()
    }

    /// [`Scanner::skip_value`] for any value: one loop over the tokens,
    /// with the open containers as bits of `self.objects`.
    #[inline(never)]
    fn skip_other(&mut self) -> Result<(), Refused> {
        let mut depth = 0usize;
        // Whether the innermost open container is an object (cached from
        // `self.objects`, which is read again only when one closes).
        let mut object = false;
        'value: loop {
            match self.peek().ok_or(Refused)? {
                b'"' => {
                    self.bump();
                    self.string()?;
                }
                open @ (b'{' | b'[') => {
                    self.bump();
                    if depth == MAX_SKIP_DEPTH {
                        return Err(Refused);
                    }
                    object = open == b'{';
                    self.set_object(depth, object);
                    depth += 1;
                    let close = if object { b'}' } else { b']' };
                    if self.peek() != Some(close) {
                        if object {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    self.bump();
                    depth -= 1;
                    object = self.is_object(depth);
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                _ => return Err(Refused),
            }
            // After a value: close containers until one takes a comma.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                match self.peek() {
                    Some(b',') => {
                        self.bump();
                        if object {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if object => self.bump(),
                    Some(b']') if !object => self.bump(),
                    _ => return Err(Refused),
                }
                depth -= 1;
                object = self.is_object(depth);
            }
        }
    }

    /// Records whether the container opened at `depth` (0 for the
    /// outermost) is an object. `depth` is below [`MAX_SKIP_DEPTH`], so the
    /// word exists.
    #[inline(always)]
    fn set_object(&mut self, depth: usize, object: bool) {
        if let Some(word) = self.objects.get_mut(depth / 64) {
            let bit = 1u64 << (depth % 64);
            if object {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }

    /// Whether, with `depth` containers open, the innermost is an object.
    #[inline(always)]
    fn is_object(&self, depth: usize) -> bool {
        let Some(top) = depth.checked_sub(1) else {
            return false;
        };
        self.objects
            .get(top / 64)
            .is_some_and(|word| word & (1u64 << (top % 64)) != 0)
    }

    /// An object key and its colon (after whitespace).
    #[inline(always)]
    fn key(&mut self) -> Result<Str, Refused> {
        self.expect(b'"')?;
        let key = self.string()?;
        self.expect(b':')?;
        Ok(key)
    }
}

/// Offset of the first `"`, `\\` or control byte at or after `at` (or the
/// end of the input): 16 bytes a step with SSE2 (x86_64), then 8 with
/// SWAR, then one.
#[inline(always)]
fn plain_run(bytes: &[u8], mut at: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = bytes.get(at..).and_then(<[u8]>::first_chunk::<16>) {
        let found = specials16(chunk);
        if found != 0 {
            return at + found.trailing_zeros() as usize;
        }
        at += 16;
    }
    while let Some(chunk) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let found = specials(u64::from_le_bytes(*chunk));
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return at;
        }
        at += 1;
    }
    at
}

/// From a `\\` inside a string at `pos` to just past the closing quote.
#[cold]
fn escaped_end(bytes: &[u8], mut pos: usize) -> Result<usize, Refused> {
    loop {
        match bytes.get(pos) {
            Some(b'"') => return Ok(pos + 1),
            Some(b'\\') => {
                pos += 1;
                match bytes.get(pos) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => pos += 1,
                    Some(b'u') => {
                        let hex = bytes.get(pos + 1..pos + 5).ok_or(Refused)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err(Refused);
                        }
                        pos += 5;
                    }
                    _ => return Err(Refused),
                }
            }
            _ => return Err(Refused),
        }
        pos = plain_run(bytes, pos);
    }
}

/// Where the number starting at `start` ends (checked for syntax only).
fn number_end(bytes: &[u8], start: usize) -> Result<usize, Refused> {
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let digits = |mut i: usize| {
        while at(i).is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = start;
    if at(i) == b'-' {
        i += 1;
    }
    match at(i) {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(i + 1),
        _ => return Err(Refused),
    }
    if at(i) == b'.' {
        if !at(i + 1).is_ascii_digit() {
            return Err(Refused);
        }
        i = digits(i + 1);
    }
    if matches!(at(i), b'e' | b'E') {
        i += 1;
        if matches!(at(i), b'+' | b'-') {
            i += 1;
        }
        if !at(i).is_ascii_digit() {
            return Err(Refused);
        }
        i = digits(i);
    }
    // A digit right after a leading zero (`01`) is an error to serde.
    if at(i).is_ascii_digit() {
        return Err(Refused);
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json says about `text` as one value (trailing whitespace
    /// allowed), skipped as `IgnoredAny`.
    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    }

    fn scanner_accepts(text: &str) -> bool {
        let mut scanner = Scanner::new(text.as_bytes());
        scanner.skip_value().is_ok() && scanner.at_end()
    }

    #[test]
    fn skips_what_serde_skips() {
        for text in [
            "1e999",
            "-0.5E+3",
            "[1e999,{\"a\":[-1e-999]}]",
            "{}",
            "[]",
            " { \"a\" : [ 1 , 2 ] , \"b\" : { } } ",
            "\"\\u00e9\\ud800\\n\\\"\"",
            "\"\u{e9}\u{1F600} plain and long enough for a word\"",
            "true",
            "false",
            "null",
            "[[[[[[[[]]]]]]]]",
            "{\"\\u0041\":1}",
        ] {
            assert!(serde_accepts(text), "serde rejects {text:?}");
            assert!(scanner_accepts(text), "scanner rejects {text:?}");
        }
    }

    #[test]
    fn refuses_what_serde_refuses() {
        for text in [
            "01",
            "-",
            "1.",
            "1e",
            "1e+",
            ".5",
            "+1",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{a:1}",
            "[1 2]",
            "{\"a\":1 \"b\":2}",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12G4\"",
            "\"a\u{1}b\"",
            "\"tab\there\"",
            "\"open",
            "[",
            "{",
            "{\"a\":",
            "tru",
            "nul",
            "[}",
            "{]",
            "",
            "1 2",
            "[1]]",
            "\u{c}1",
            "{\"a\":1]",
            "[1}",
            "[{\"a\":[1}]}",
        ] {
            assert!(!serde_accepts(text), "serde accepts {text:?}");
            assert!(!scanner_accepts(text), "scanner accepts {text:?}");
        }
    }

    #[test]
    fn control_bytes_are_found_in_every_lane() {
        // A control byte, quote or backslash at each position of the SSE2,
        // SWAR and byte-at-a-time steps, with more or fewer bytes after it.
        for lane in 0..40 {
            for tail in [0usize, 5, 9, 20] {
                for special in [b'"', b'\\', 0x1f, 0x00, 0x7f, 0x80] {
                    let mut text = vec![b'"'];
                    text.extend(std::iter::repeat_n(b'a', lane));
                    text.push(special);
                    text.extend(std::iter::repeat_n(b'b', tail));
                    text.push(b'"');
                    let mut scanner = Scanner::new(&text);
                    scanner.bump();
                    let got = scanner.string();
                    let want = match special {
                        b'"' => Ok(Str::Plain {
                            start: 1,
                            end: 1 + lane,
                        }),
                        // `\b` is a valid escape; with no tail, `\"` leaves
                        // the string unterminated.
                        b'\\' if tail == 0 => Err(Refused),
                        b'\\' => Ok(Str::Escaped),
                        // DEL and bytes above ASCII are plain.
                        0x7f | 0x80 => Ok(Str::Plain {
                            start: 1,
                            end: text.len() - 1,
                        }),
                        _ => Err(Refused),
                    };
                    assert_eq!(got, want, "lane {lane} tail {tail} byte {special}");
                }
            }
        }
    }

    #[test]
    fn deep_nesting_is_skipped_up_to_the_limit_then_refused() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(scanner_accepts(&nested(MAX_SKIP_DEPTH)));
        assert!(!scanner_accepts(&nested(MAX_SKIP_DEPTH + 1)));
        let objects = format!("{}1{}", "{\"k\":[".repeat(1000), "]}".repeat(1000));
        assert!(scanner_accepts(&objects));
        // Mismatched closers deep inside are still caught.
        let wrong = format!("{}1{}", "{\"k\":[".repeat(100), "}]".repeat(100));
        assert!(!scanner_accepts(&wrong));
    }
}
